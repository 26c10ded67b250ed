import { Config, Effect, Layer } from "effect"
import { DuckDb } from "../layers/DuckDb.js"
import * as DynamoDbKeyValueStore from "../layers/DynamoDbKeyValueStore.js"
import { EventLogService } from "../layers/EventLog.js"
import { layerKafkaConfig } from "../layers/KafkaEventLog.js"
import * as KeyValueStore from "../layers/KeyValueStore.js"
import { ProcessedBucket, RawBucket } from "../layers/ObjectStore.js"
import { Parquet } from "../layers/ParquetCodec.js"
import * as RedisKeyValueStore from "../layers/RedisKeyValueStore.js"
import * as S3Buckets from "../layers/S3ObjectStore.js"
import { Tensorflow } from "../layers/Tensorflow.js"

/** Bucket locations given on the command line; unset ones come from config (env) or defaults. */
export interface BucketDirectories {
  readonly raw?: string | undefined
  readonly processed?: string | undefined
  /** Directory of the embedded key-value store. */
  readonly keyValue?: string | undefined
}

/**
 * Raw and processed buckets plus the Parquet codec: directories given on the command line win; otherwise
 * S3 when `RECON_S3_ENDPOINT` is set, else local directories (`RECON_RAW_DIR`, `RECON_PROCESSED_DIR`).
 */
export const storageLayer = (directories: BucketDirectories = {}) =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const endpoint = yield* Config.string("RECON_S3_ENDPOINT").pipe(Config.withDefault(""))
      if (endpoint !== "" && directories.raw === undefined && directories.processed === undefined) {
        yield* Effect.logInfo(`object store: S3 at ${endpoint}`)
        return Layer.merge(S3Buckets.layerBucketsConfig, Parquet.layerConfig)
      }
      return Layer.mergeAll(
        directories.raw === undefined ? RawBucket.layerConfig : RawBucket.layerLocal(directories.raw),
        directories.processed === undefined
          ? ProcessedBucket.layerConfig
          : ProcessedBucket.layerLocal(directories.processed),
        Parquet.layerConfig
      )
    })
  )

/**
 * The event log: Kafka when `RECON_KAFKA_BROKERS` is set, otherwise the embedded log. Says which one it
 * uses in its first log line.
 */
export const eventLogLayer = Layer.unwrapEffect(
  Effect.gen(function* () {
    const brokers = yield* Config.string("RECON_KAFKA_BROKERS").pipe(Config.withDefault(""))
    if (brokers !== "") {
      yield* Effect.logInfo(`event log: Kafka at ${brokers}`)
      return layerKafkaConfig
    }
    yield* Effect.logInfo(
      "no Kafka configured (RECON_KAFKA_BROKERS unset): using the embedded in-memory event log"
    )
    return EventLogService.layerMemoryConfig
  })
)

const keyValueLayerOf = (expiring: boolean) =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const backend = yield* Config.literal(
        "directory",
        "memory",
        "redis",
        "dynamodb"
      )("RECON_KV_BACKEND").pipe(Config.withDefault("directory" as const))
      yield* Effect.logInfo(`key-value store: ${backend}`)
      switch (backend) {
        case "memory":
          return KeyValueStore.layerMemory
        case "redis":
          return expiring ? RedisKeyValueStore.layerConfigExpiring : RedisKeyValueStore.layerConfig
        case "dynamodb":
          return expiring ? DynamoDbKeyValueStore.layerConfigExpiring : DynamoDbKeyValueStore.layerConfig
        default:
          return KeyValueStore.layerConfig
      }
    })
  )

/**
 * The key-value store by `RECON_KV_BACKEND`: `directory` (default, `RECON_KV_DIR`), `memory`, `redis`
 * (`RECON_REDIS_URL`) or `dynamodb` (`RECON_DYNAMODB_ENDPOINT`, `RECON_DYNAMODB_TABLE`). Keys do not expire
 * (cursors, state).
 */
export const keyValueLayer = keyValueLayerOf(false)

/** {@link keyValueLayer} for the aggregation's figures: Redis and DynamoDB keys expire after `RECON_KV_TTL_SECONDS`. */
export const expiringKeyValueLayer = keyValueLayerOf(true)

/** Everything the full flow needs, on embedded defaults. */
export const embeddedLayer = (directories: BucketDirectories = {}) =>
  Layer.mergeAll(
    storageLayer(directories),
    eventLogLayer,
    directories.keyValue === undefined ? keyValueLayer : KeyValueStore.layerDirectory(directories.keyValue),
    DuckDb.layer,
    Tensorflow.layer
  )
