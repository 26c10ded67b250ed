import { Config, Effect, Layer } from "effect"
import { DuckDb } from "../layers/DuckDb.js"
import { EventLogService } from "../layers/EventLog.js"
import * as KeyValueStore from "../layers/KeyValueStore.js"
import { ProcessedBucket, RawBucket } from "../layers/ObjectStore.js"
import { Parquet } from "../layers/ParquetCodec.js"
import { Tensorflow } from "../layers/Tensorflow.js"

/** Bucket locations given on the command line; unset ones come from config (env) or defaults. */
export interface BucketDirectories {
  readonly raw?: string | undefined
  readonly processed?: string | undefined
  /** Directory of the embedded key-value store. */
  readonly keyValue?: string | undefined
}

/** Raw and processed buckets plus the Parquet codec. */
export const storageLayer = (directories: BucketDirectories = {}) =>
  Layer.mergeAll(
    directories.raw === undefined ? RawBucket.layerConfig : RawBucket.layerLocal(directories.raw),
    directories.processed === undefined
      ? ProcessedBucket.layerConfig
      : ProcessedBucket.layerLocal(directories.processed),
    Parquet.layerConfig
  )

/**
 * The event log: Kafka when `RECON_KAFKA_BROKERS` is set (issue 3), otherwise the embedded log. Logs which
 * one it uses as its first line.
 */
export const eventLogLayer = Layer.unwrapEffect(
  Effect.gen(function* () {
    const brokers = yield* Config.string("RECON_KAFKA_BROKERS").pipe(Config.withDefault(""))
    if (brokers !== "") {
      yield* Effect.logWarning(
        `RECON_KAFKA_BROKERS=${brokers} is set but the Kafka layer is not built yet; using the embedded log`
      )
    } else {
      yield* Effect.logInfo(
        "no Kafka configured (RECON_KAFKA_BROKERS unset): using the embedded in-memory event log"
      )
    }
    return EventLogService.layerMemoryConfig
  })
)

/** Everything the full flow needs, on embedded defaults. */
export const embeddedLayer = (directories: BucketDirectories = {}) =>
  Layer.mergeAll(
    storageLayer(directories),
    eventLogLayer,
    directories.keyValue === undefined
      ? KeyValueStore.layerConfig
      : KeyValueStore.layerDirectory(directories.keyValue),
    DuckDb.layer,
    Tensorflow.layer
  )
