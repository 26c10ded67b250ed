import cluster from "node:cluster"
import { createServer } from "node:http"
import { HttpMiddleware, HttpServer } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, ConfigError, Effect, Layer, Logger } from "effect"
import { EventLogService } from "../layers/EventLog.js"
import { IdempotencyStoreService } from "../layers/IdempotencyStore.js"
import { RecordPublisherService } from "../layers/RecordPublisher.js"
import { runClusterWorkers } from "../streams/clusterWorkers.js"
import {
  IngestionApiConfig,
  IngestionHandlerService,
  IngestionServerLive,
  ingestionApiConfig,
  layerNativeIngestionServer
} from "../streams/ingestionApi.js"
import { deadLetterTopic } from "../streams/streamingIndex.js"
import { eventLogLayer } from "./layers.js"

/**
 * The ingestion API (`POST /v1/transactions`, `POST /v1/fraud-signals`, `GET /openapi.json`) on
 * `RECON_API_HOST`:`RECON_API_PORT` (default 127.0.0.1:8080). Kafka when `RECON_KAFKA_BROKERS` is set,
 * idempotency in Redis when `RECON_REDIS_URL` is set; credentials and limits: see `ingestionApiConfig`.
 * `RECON_API_MAX_PENDING_RECORDS` (default 50000) records may wait for Kafka before requests get 429.
 * `RECON_API_SERVER=platform` serves the POST routes through the HttpApi handlers too (default `native`:
 * straight from node:http, same handler; see README, ingestion). `RECON_API_WORKERS` (default 1) runs that
 * many node:cluster workers on the one port; more than one needs Kafka and Redis.
 */
const ensureTopics = Layer.effectDiscard(
  Effect.gen(function* () {
    const log = yield* EventLogService
    const settings = yield* IngestionApiConfig
    for (const topic of [settings.topics.transactions, settings.topics.fraudSignals]) {
      yield* log.ensureTopic(topic, 4)
      yield* log.ensureTopic(deadLetterTopic(topic), 1)
    }
  })
)

const publisherLayer = Layer.unwrapEffect(
  Effect.map(
    Config.integer("RECON_API_MAX_PENDING_RECORDS").pipe(Config.withDefault(50_000)),
    (maxPendingRecords) => RecordPublisherService.layer({ maxPendingRecords, maxRecordsPerSend: 5_000 })
  )
)

const httpServerLayer = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      port: Config.integer("RECON_API_PORT").pipe(Config.withDefault(8080)),
      host: Config.string("RECON_API_HOST").pipe(Config.withDefault("127.0.0.1")),
      server: Config.literal("native", "platform")("RECON_API_SERVER").pipe(Config.withDefault("native"))
    }),
    ({ port, host, server }) =>
      server === "native"
        ? Layer.merge(layerNativeIngestionServer({ port, host }), NodeHttpServer.layerContext)
        : NodeHttpServer.layer(createServer, { port, host })
  )
)

const settingsLayer = Layer.effect(IngestionApiConfig, ingestionApiConfig)

const handlerLayer = IngestionHandlerService.layer.pipe(
  Layer.provideMerge(Layer.mergeAll(publisherLayer, settingsLayer)),
  Layer.provideMerge(IdempotencyStoreService.layerConfig),
  Layer.provideMerge(Layer.merge(eventLogLayer, settingsLayer))
)

const apiLayer = Layer.mergeAll(
  HttpServer.withLogAddress(IngestionServerLive).pipe(HttpMiddleware.withTracerDisabledWhen(() => true)),
  ensureTopics
).pipe(Layer.provide(httpServerLayer), Layer.provide(handlerLayer))

const workersConfig = Config.integer("RECON_API_WORKERS").pipe(
  Config.withDefault(1),
  Config.validate({ message: "must be from 1 to 64", validation: (count) => count >= 1 && count <= 64 })
)

/** Several workers share nothing in memory: they need Kafka and Redis, or ids would be sent twice. */
const sharedServicesConfig = Config.all([
  Config.nonEmptyString("RECON_KAFKA_BROKERS"),
  Config.nonEmptyString("RECON_REDIS_URL")
]).pipe(
  Effect.mapError((error) =>
    ConfigError.InvalidData(
      ["RECON_API_WORKERS"],
      `more than one worker needs RECON_KAFKA_BROKERS and RECON_REDIS_URL (the embedded log and idempotency store live in one process): ${error}`
    )
  )
)

const main = Effect.gen(function* () {
  const workers = yield* workersConfig
  if (workers > 1 && cluster.isPrimary) {
    yield* sharedServicesConfig
    yield* Effect.logInfo(`ingestion API: ${workers} workers`)
    return yield* runClusterWorkers(workers)
  }
  return yield* Layer.launch(apiLayer)
})

main.pipe(
  Effect.ensuring(Effect.logInfo("ingestion API stopped")),
  Effect.provide(Logger.logFmt),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
