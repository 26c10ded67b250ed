import { FetchHttpClient } from "@effect/platform"
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Logger } from "effect"
import { IdempotencyStoreService } from "../layers/IdempotencyStore.js"
import { partnerPullOptionsConfig, runPartnerPull } from "../streams/partnerPull.js"
import { eventLogLayer, keyValueLayer } from "./layers.js"

/**
 * The partner pull connector for one partner feed (see `partnerPullOptionsConfig`): polls until stopped,
 * or until caught up with `RECON_PARTNER_ONCE=true`. The cursor lives in the key-value store
 * (`RECON_KV_BACKEND`), records go to Kafka when `RECON_KAFKA_BROKERS` is set.
 */
Effect.flatMap(partnerPullOptionsConfig, runPartnerPull).pipe(
  Effect.tap((summary) => Effect.logInfo("partner pull finished").pipe(Effect.annotateLogs({ ...summary }))),
  Effect.provide(
    Layer.mergeAll(FetchHttpClient.layer, eventLogLayer, keyValueLayer, IdempotencyStoreService.layerConfig)
  ),
  Effect.provide(Logger.logFmt),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
