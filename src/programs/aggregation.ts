import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Logger } from "effect"
import { aggregateMerchantTotals } from "../streams/aggregate.js"
import { keyValueLayer, storageLayer } from "./layers.js"

/** The aggregation job: final_aggregate/ → per-merchant totals in the key-value store (RECON_KV_DIR). */
aggregateMerchantTotals().pipe(
  Effect.tap((summary) => Effect.logInfo("aggregation published", summary)),
  Effect.provide(Layer.merge(storageLayer(), keyValueLayer)),
  Effect.provide(Logger.logFmt),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
