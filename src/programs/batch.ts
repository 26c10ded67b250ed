import { NodeRuntime } from "@effect/platform-node"
import { Effect, Logger } from "effect"
import { runBatchIndex } from "../streams/batchIndex.js"
import { storageLayer } from "./layers.js"

/** The batch job: raw/ → batch_index/ (RECON_RAW_DIR → RECON_PROCESSED_DIR). */
runBatchIndex.pipe(
  Effect.tap((summary) => Effect.logInfo("batch index done", summary)),
  Effect.provide(storageLayer()),
  Effect.provide(Logger.logFmt),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
