import { NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Logger } from "effect"
import { FraudScoring } from "../streams/liveScoring.js"
import { operationsPortConfig } from "../streams/operationsServer.js"
import { streamingIndexOptionsConfig } from "../streams/streamingIndex.js"
import { runStreamingService } from "../streams/streamingService.js"
import { eventLogLayer, storageLayer } from "./layers.js"

/**
 * The streaming index service, long-lived. With no Kafka configured it runs on the embedded log, fed with
 * `RECON_STREAM_FEED_TRANSACTIONS` (default 1000) generated transactions. Options: see
 * `streamingIndexOptionsConfig`. The operations server (`/healthz`, `/readyz`, `/metrics`) listens on
 * 127.0.0.1:`RECON_OPS_PORT` (default 9464).
 */
const program = Effect.gen(function* () {
  const brokers = yield* Config.string("RECON_KAFKA_BROKERS").pipe(Config.withDefault(""))
  const feedTransactions = yield* Config.integer("RECON_STREAM_FEED_TRANSACTIONS").pipe(
    Config.withDefault(1000)
  )
  const options = yield* streamingIndexOptionsConfig
  const operationsPort = yield* operationsPortConfig
  return yield* runStreamingService({
    ...options,
    operationsPort,
    ...(brokers === "" ? { feed: { generate: feedTransactions, seed: 42 } } : {})
  })
})

program.pipe(
  Effect.provide(
    Layer.provideMerge(FraudScoring.layerForService, Layer.merge(storageLayer(), eventLogLayer))
  ),
  Effect.provide(Logger.logFmt),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
