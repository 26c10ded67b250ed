import { NodeRuntime } from "@effect/platform-node"
import { Effect, Logger } from "effect"
import { runFinalAggregate } from "../streams/finalAggregate.js"
import { storageLayer } from "./layers.js"

/** The final aggregator: committed indexes → final_aggregate/. */
runFinalAggregate.pipe(
  Effect.tap((summary) => Effect.logInfo("final aggregate published", summary)),
  Effect.provide(storageLayer()),
  Effect.provide(Logger.logFmt),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
