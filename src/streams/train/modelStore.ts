import type * as Tf from "@tensorflow/tfjs"
import { Cause, Effect, Exit, Option, Runtime } from "effect"
import type { ObjectStore } from "../../layers/ObjectStore.js"
import type { TfModule } from "../../layers/Tensorflow.js"
import { TrainError } from "./errors.js"

/** File names inside `models/<version>/`. */
export const modelFiles = {
  modelJson: "model.json",
  weights: "weights.bin",
  featureSpec: "feature_spec.json",
  card: "model_card.json",
  cardMarkdown: "model_card.md",
  prCurve: "pr_curve.svg",
  calibrationChart: "calibration.svg",
  metrics: "metrics.json"
} as const

const toArrayBuffer = (bytes: Uint8Array): ArrayBuffer =>
  bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer

const storeFailure = (operation: string) => (cause: unknown) =>
  new TrainError({ reason: `model store ${operation} failed`, cause })

/** Writes a tfjs model's artifacts as `model.json` (topology + weights manifest) and `weights.bin`. */
export const writeModelArtifacts = (
  tf: TfModule,
  store: ObjectStore,
  prefix: string,
  artifacts: Tf.io.ModelArtifacts
): Effect.Effect<void, TrainError> =>
  Effect.gen(function* () {
    if (artifacts.modelTopology === undefined || artifacts.weightSpecs === undefined)
      return yield* new TrainError({ reason: "model artifacts have no topology or weight specs" })
    const weights = new Uint8Array(
      tf.io.CompositeArrayBuffer.join(artifacts.weightData ?? new ArrayBuffer(0))
    )
    const modelJson: Tf.io.ModelJSON = {
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths: [modelFiles.weights], weights: artifacts.weightSpecs }],
      format: artifacts.format ?? "layers-model",
      ...(artifacts.generatedBy === undefined ? {} : { generatedBy: artifacts.generatedBy }),
      ...(artifacts.convertedBy === undefined ? {} : { convertedBy: artifacts.convertedBy }),
      ...(artifacts.trainingConfig === undefined ? {} : { trainingConfig: artifacts.trainingConfig })
    }
    yield* store.put(prefix + modelFiles.weights, weights).pipe(Effect.mapError(storeFailure("put")))
    yield* store
      .put(prefix + modelFiles.modelJson, new TextEncoder().encode(JSON.stringify(modelJson)))
      .pipe(Effect.mapError(storeFailure("put")))
  })

/**
 * A tfjs save handler (`tf.io.withSaveHandler`) that writes the artifacts under `prefix` through the
 * object store, running the write on the caller's runtime.
 */
export const objectStoreSaveHandler = (
  tf: TfModule,
  store: ObjectStore,
  prefix: string
): Effect.Effect<Tf.io.IOHandler> =>
  Effect.map(Effect.runtime<never>(), (runtime) =>
    tf.io.withSaveHandler(async (artifacts) => {
      const exit = await Runtime.runPromiseExit(runtime)(writeModelArtifacts(tf, store, prefix, artifacts))
      if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) }
    })
  )

/** Saves a model under `prefix` through {@link objectStoreSaveHandler}. */
export const saveLayersModel = (
  tf: TfModule,
  store: ObjectStore,
  prefix: string,
  model: Tf.LayersModel
): Effect.Effect<void, TrainError> =>
  Effect.flatMap(objectStoreSaveHandler(tf, store, prefix), (handler) =>
    Effect.tryPromise({
      try: () => model.save(handler),
      catch: (cause) =>
        cause instanceof TrainError ? cause : new TrainError({ reason: `saving ${prefix} failed`, cause })
    })
  ).pipe(Effect.asVoid)

/** Reads an object the saved model must have. */
export const readModelFile = (
  store: ObjectStore,
  prefix: string,
  name: string
): Effect.Effect<Uint8Array, TrainError> =>
  Effect.flatMap(store.get(prefix + name).pipe(Effect.mapError(storeFailure("get"))), (body) =>
    Option.match(body, {
      onNone: () => Effect.fail(new TrainError({ reason: `${prefix}${name} is missing`, kind: "missing" })),
      onSome: Effect.succeed
    })
  )

/** Loads a model saved by {@link saveLayersModel}, reading model.json and weights.bin through the store. */
export const loadLayersModel = (
  tf: TfModule,
  store: ObjectStore,
  prefix: string
): Effect.Effect<Tf.LayersModel, TrainError> =>
  Effect.gen(function* () {
    const modelJsonBytes = yield* readModelFile(store, prefix, modelFiles.modelJson)
    const weights = yield* readModelFile(store, prefix, modelFiles.weights)
    const modelJson = yield* Effect.try({
      try: () => JSON.parse(new TextDecoder().decode(modelJsonBytes)) as Tf.io.ModelJSON,
      catch: (cause) => new TrainError({ reason: `${prefix}${modelFiles.modelJson} is not JSON`, cause })
    })
    if (typeof modelJson !== "object" || modelJson === null || !Array.isArray(modelJson.weightsManifest))
      return yield* new TrainError({ reason: `${prefix}${modelFiles.modelJson} has no weights manifest` })
    return yield* Effect.tryPromise({
      try: async () => {
        const artifacts = await tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => [
          manifest.flatMap((group) => group.weights),
          toArrayBuffer(weights)
        ])
        return tf.loadLayersModel(tf.io.fromMemory(artifacts))
      },
      catch: (cause) => new TrainError({ reason: `loading ${prefix} failed`, cause })
    })
  })
