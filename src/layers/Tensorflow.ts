import type * as Tf from "@tensorflow/tfjs"
import { Context, Data, Effect, Layer } from "effect"

/** The tfjs API; `@tensorflow/tfjs-node` re-exports the same surface. */
export type TfModule = typeof Tf

/** A ready tfjs module and the backend it computes on. */
export interface TensorflowService {
  readonly tf: TfModule
  /** Active backend name: `tensorflow` (native tfjs-node) or `wasm`. */
  readonly backend: string
}

/** tfjs could not be loaded or its backend could not be initialised. */
export class TensorflowError extends Data.TaggedError("TensorflowError")<{
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `tensorflow: ${this.reason}`
  }
}

const nativeModuleName = "@tensorflow/tfjs-node"

const isTfModule = (candidate: unknown): candidate is TfModule =>
  typeof candidate === "object" &&
  candidate !== null &&
  typeof (candidate as { getBackend?: unknown }).getBackend === "function" &&
  typeof (candidate as { sequential?: unknown }).sequential === "function"

/** The native binding when it is installed; none when the import fails (the usual case here). */
const loadNative = Effect.promise(async (): Promise<TfModule | undefined> => {
  try {
    const specifier: string = nativeModuleName
    const imported: unknown = await import(/* @vite-ignore */ specifier)
    const module = (imported as { default?: unknown }).default ?? imported
    return isTfModule(module) ? module : isTfModule(imported) ? imported : undefined
  } catch {
    return undefined
  }
})

const loadWasm = Effect.tryPromise({
  try: async (): Promise<TensorflowService> => {
    const tf = await import("@tensorflow/tfjs")
    await import("@tensorflow/tfjs-backend-wasm")
    if (!(await tf.setBackend("wasm"))) throw new Error("setBackend('wasm') returned false")
    await tf.ready()
    return { tf, backend: tf.getBackend() }
  },
  catch: (cause) => new TensorflowError({ reason: "wasm backend failed to initialise", cause })
})

const loadNativeOrWasm = Effect.flatMap(loadNative, (native) =>
  native === undefined
    ? loadWasm
    : Effect.tryPromise({
        try: async (): Promise<TensorflowService> => {
          await native.ready()
          return { tf: native, backend: native.getBackend() }
        },
        catch: (cause) => new TensorflowError({ reason: "tfjs-node failed to initialise", cause })
      })
)

/**
 * A ready tfjs module. `layer` uses `@tensorflow/tfjs-node` when it can be imported and otherwise
 * `@tensorflow/tfjs` on the wasm backend; `layerWasm` always uses wasm (reproducible across machines).
 * tfjs keeps one engine per process, so the layer only selects and initialises the backend.
 */
export class Tensorflow extends Context.Tag("Tensorflow")<Tensorflow, TensorflowService>() {
  static readonly layer: Layer.Layer<Tensorflow, TensorflowError> = Layer.effect(
    Tensorflow,
    Effect.withSpan(loadNativeOrWasm, "Tensorflow.load")
  )
  static readonly layerWasm: Layer.Layer<Tensorflow, TensorflowError> = Layer.effect(
    Tensorflow,
    Effect.withSpan(loadWasm, "Tensorflow.loadWasm")
  )
}
