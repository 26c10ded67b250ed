import { createServer } from "node:http"
import { HttpServer } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Duration, Effect, Layer, Logger } from "effect"
import { DuckDb } from "../layers/DuckDb.js"
import { aggregateMerchantTotals } from "../streams/aggregate.js"
import { aggregationServiceLayer } from "../streams/aggregationService.js"
import { expiringKeyValueLayer, storageLayer } from "./layers.js"

/**
 * The aggregation service: final_aggregate/ → per-merchant totals, rates and hourly volumes in the
 * key-value store (`RECON_KV_BACKEND`: Redis, DynamoDB, directory), versioned with an atomic pointer swap.
 * With `RECON_AGGREGATION_INTERVAL_MS` set it keeps refreshing on that interval and serves the dashboard on
 * `RECON_DASHBOARD_HOST`:`RECON_DASHBOARD_PORT` [127.0.0.1:8090]; without it, it refreshes once and exits
 * (a job).
 */
const program = Effect.gen(function* () {
  const interval = yield* Config.integer("RECON_AGGREGATION_INTERVAL_MS").pipe(Config.option)
  if (interval._tag === "None") {
    const summary = yield* aggregateMerchantTotals()
    return yield* Effect.logInfo("aggregation published").pipe(Effect.annotateLogs({ ...summary }))
  }
  const server = NodeHttpServer.layerConfig(createServer, {
    port: Config.integer("RECON_DASHBOARD_PORT").pipe(Config.withDefault(8090)),
    host: Config.string("RECON_DASHBOARD_HOST").pipe(Config.withDefault("127.0.0.1"))
  })
  return yield* Layer.launch(
    HttpServer.withLogAddress(aggregationServiceLayer({ interval: Duration.millis(interval.value) })).pipe(
      Layer.provide(server)
    )
  )
})

program.pipe(
  Effect.provide(Layer.mergeAll(storageLayer(), expiringKeyValueLayer, DuckDb.layer)),
  Effect.provide(Logger.logFmt),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
