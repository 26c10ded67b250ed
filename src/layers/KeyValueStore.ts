import { KeyValueStore } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { Config, Effect, Layer, type Option } from "effect"

/**
 * The key-value store the aggregation service writes to: Effect's own `KeyValueStore` interface, so the
 * Redis and DynamoDB layers plug in beside the embedded ones.
 */
export { KeyValueStore }

/** In process memory: tests. */
export const layerMemory = KeyValueStore.layerMemory

/**
 * A directory of files, one per key: the embedded default, so results outlive the process. Removing a
 * missing key is a no-op, as in the memory store and Redis.
 */
export const layerDirectory = (directory: string) =>
  Layer.effect(
    KeyValueStore.KeyValueStore,
    Effect.map(KeyValueStore.KeyValueStore, (files) =>
      KeyValueStore.make({
        get: files.get,
        getUint8Array: files.getUint8Array,
        set: files.set,
        clear: files.clear,
        size: files.size,
        remove: (key) =>
          files.remove(key).pipe(
            Effect.catchIf(
              (error) => error._tag === "SystemError" && error.reason === "NotFound",
              () => Effect.void
            )
          )
      })
    )
  ).pipe(Layer.provide(KeyValueStore.layerFileSystem(directory)), Layer.provide(NodeContext.layer))

/** `RECON_KV_DIR` (default `data/kv`). */
export const layerConfig = Layer.unwrapEffect(
  Effect.map(Config.string("RECON_KV_DIR").pipe(Config.withDefault("data/kv")), layerDirectory)
)

/**
 * `RECON_KV_TTL_SECONDS`: how long a key written to Redis or DynamoDB lives (the aggregation rewrites its keys
 * on every refresh, so a stopped service's figures expire instead of lingering). Unset: no expiry.
 */
export const kvTtlSecondsConfig: Config.Config<Option.Option<number>> = Config.option(
  Config.integer("RECON_KV_TTL_SECONDS").pipe(
    Config.validate({ message: "must be a positive number of seconds", validation: (seconds) => seconds > 0 })
  )
)
