import { NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Logger } from "effect"
import { Tensorflow } from "../layers/Tensorflow.js"
import { trainFraudModel } from "../streams/train.js"
import { storageLayer } from "./layers.js"

/** Fraud-model training on final_aggregate/ (RECON_TRAIN_SEED, RECON_TRAIN_SAMPLE_SIZE). */
Effect.gen(function* () {
  const seed = yield* Config.integer("RECON_TRAIN_SEED").pipe(Config.withDefault(42))
  const sampleSize = yield* Config.option(Config.integer("RECON_TRAIN_SAMPLE_SIZE"))
  const report = yield* trainFraudModel({
    seed,
    ...(sampleSize._tag === "Some" ? { sampleSize: sampleSize.value } : {})
  })
  yield* Effect.logInfo("model trained", report)
}).pipe(
  Effect.provide(Layer.merge(storageLayer(), Tensorflow.layer)),
  Effect.provide(Logger.logFmt),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
