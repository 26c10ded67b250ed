import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, TestClock } from "effect"
import { EventLogService } from "../src/layers/EventLog.js"
import { ProcessedBucket, RawBucket } from "../src/layers/ObjectStore.js"
import { Parquet } from "../src/layers/ParquetCodec.js"
import { Tensorflow } from "../src/layers/Tensorflow.js"
import { readCommittedFile } from "../src/streams/datasets.js"
import { runFinalAggregate } from "../src/streams/finalAggregate.js"
import { FraudScoring, LiveScoringState } from "../src/streams/liveScoring.js"
import { readCommittedBatches, runStreamingIndex } from "../src/streams/streamingIndex.js"
import { examplesInTimeOrder } from "../src/streams/train/features.js"
import { makePrng } from "../src/streams/train/random.js"
import {
  disposeFraudModel,
  fitFraudModel,
  loadFraudModel,
  promoteFraudModel,
  readTrainingExamples,
  resolveTrainOptions,
  saveFraudModel,
  scoreRows
} from "../src/streams/train.js"
import { jsonLines, merchantJson, signalJson, transactionJson, userJson } from "./support/fixtures.js"
import { syntheticRows } from "./support/fraudRows.js"

/** Trains a small model on synthetic rows and saves it under models/<version>/. */
const saveTrainedModel = (version: string, seed: number) =>
  Effect.gen(function* () {
    const options = yield* resolveTrainOptions({ seed, epochs: 3, batchSize: 128 })
    const fitted = yield* fitFraudModel(examplesInTimeOrder(syntheticRows(2000, seed)), options)
    yield* saveFraudModel(fitted, version)
    disposeFraudModel(fitted.model)
  })

const hour = 3_600_000
const start = Date.UTC(2026, 10, 24, 8)
const iso = (millis: number) => new Date(millis).toISOString()

/** Seeded producer records in event-time order: bursts per user, shared and new devices, prior and later signals. */
const producerRecords = (count: number, seed: number) => {
  const random = makePrng(seed)
  const records: Array<{ topic: "transactions" | "fraud_signals"; value: Record<string, unknown> }> = []
  let time = start
  for (let index = 0; index < count; index++) {
    time += Math.floor(random() < 0.3 ? random() * 60_000 : random() * 2 * hour)
    const user = `u-${Math.floor(random() * 5)}`
    const transactionId = `t-${String(index).padStart(3, "0")}`
    if (random() < 0.25)
      records.push({
        topic: "fraud_signals",
        value: signalJson({
          signal_id: `s-prior-${index}`,
          transaction_id: transactionId,
          event_time: iso(time - 1000),
          source: "partner",
          score: Math.round(random() * 100) / 100
        })
      })
    records.push({
      topic: "transactions",
      value: transactionJson({
        event_id: `e-${index}`,
        transaction_id: transactionId,
        event_time: iso(time),
        amount_minor: 100 + Math.floor(random() * 200_000),
        user_id: user,
        merchant_id: `m-${Math.floor(random() * 3)}`,
        country: random() < 0.8 ? "US" : "BR",
        ...(random() < 0.85 ? { device_id: random() < 0.8 ? `d-${user}` : `d-new-${index}` } : {})
      })
    })
    if (random() < 0.3)
      records.push({
        topic: "fraud_signals",
        value: signalJson({
          signal_id: `s-after-${index}`,
          transaction_id: transactionId,
          event_time: iso(time + 5000),
          source: random() < 0.5 ? "rules" : "chargeback",
          score: 0.9,
          ...(random() < 0.5 ? { confirmed_fraud: true } : {})
        })
      })
  }
  return records
}

const putDimensions = Effect.gen(function* () {
  const raw = yield* RawBucket
  yield* raw.put(
    "raw/dimensions/users/users.jsonl",
    jsonLines(
      ...Array.from({ length: 4 }, (_, index) =>
        userJson({
          user_id: `u-${index}`,
          created_at: iso(start - index * 40 * 24 * hour),
          kyc_level: "basic"
        })
      )
    )
  )
  yield* raw.put(
    "raw/dimensions/merchants/merchants.jsonl",
    jsonLines(
      merchantJson({ merchant_id: "m-0", mcc: "7995", risk_level: "high" }),
      merchantJson({ merchant_id: "m-1" })
    )
  )
})

const produceInOrder = (records: ReturnType<typeof producerRecords>) =>
  Effect.flatMap(EventLogService, (log) =>
    Effect.forEach(
      records,
      ({ topic, value }) =>
        log.produce(topic, [
          { key: String(value["transaction_id"]), value: new TextEncoder().encode(JSON.stringify(value)) }
        ]),
      { discard: true }
    )
  )

/** model_score and model_version of every committed streaming_index transaction row, by transaction_id. */
const streamedScores = Effect.gen(function* () {
  const processed = yield* ProcessedBucket
  const codec = yield* Parquet
  const scores = new Map<string, { score: unknown; version: unknown }>()
  for (const batch of yield* readCommittedBatches(processed))
    for (const file of batch.files.filter((entry) => entry.dataset === "transactions"))
      for (const row of yield* readCommittedFile(processed, codec, "streaming_index", file.key))
        scores.set(String(row["transaction_id"]), {
          score: row["model_score"],
          version: row["model_version"]
        })
  return scores
})

const baseLayers = Layer.mergeAll(
  RawBucket.layerMemory,
  ProcessedBucket.layerMemory,
  EventLogService.layerMemory(1),
  Parquet.layerParquetjs({ rowGroupSize: 1000 }),
  Tensorflow.layerWasm
)

describe("live scoring in the streaming index", () => {
  it.scoped(
    "scores each transaction exactly like offline scoring of its final_aggregate row, across a restart",
    () =>
      Effect.gen(function* () {
        yield* saveTrainedModel("live-a", 7)
        yield* promoteFraudModel("live-a")
        yield* putDimensions
        const records = producerRecords(80, 3)
        const restartAt = records.findIndex((record) => record.value["transaction_id"] === "t-050")
        // Two runs: the second starts from the committed batches like a restarted service.
        yield* produceInOrder(records.slice(0, restartAt))
        yield* runStreamingIndex({ stopAtEnd: true, maxBatchRecords: 1000 }).pipe(
          Effect.provide(FraudScoring.layer("1 hour"))
        )
        yield* produceInOrder(records.slice(restartAt))
        yield* runStreamingIndex({ stopAtEnd: true, maxBatchRecords: 1000 }).pipe(
          Effect.provide(FraudScoring.layer("1 hour"))
        )
        const streamed = yield* streamedScores
        assert.strictEqual(streamed.size, 80)
        yield* runFinalAggregate
        const { examples } = yield* readTrainingExamples({ seed: 1 })
        assert.strictEqual(examples.length, 80)
        assert.isTrue(examples.some((example) => example.user_txn_1h > 0))
        assert.isTrue(examples.some((example) => example.device_known_for_user))
        assert.isTrue(examples.some((example) => example.fraud_prior_signal_max_score !== null))
        const loaded = yield* loadFraudModel("live-a")
        const offline = yield* scoreRows(loaded.model, loaded.featureSpec, examples)
        disposeFraudModel(loaded.model)
        examples.forEach((example, index) => {
          const live = streamed.get(example.transaction_id)
          assert.strictEqual(live?.version, "live-a")
          assert.closeTo(Number(live?.score), offline[index] as number, 1e-6, example.transaction_id)
        })
      }).pipe(Effect.provide(baseLayers)),
    120_000
  )

  it.scoped(
    "scores null until a model is promoted and switches to a newly promoted model without a restart",
    () =>
      Effect.gen(function* () {
        yield* saveTrainedModel("live-a", 7)
        yield* saveTrainedModel("live-b", 8)
        const scoring = yield* FraudScoring
        const records = producerRecords(30, 5).filter((record) => record.topic === "transactions")
        const options = { maxBatchRecords: 1000, maxBatchWait: "5 seconds", stopAtEnd: false } as const
        const fiber = yield* Effect.fork(runStreamingIndex(options))
        const batchOf = (from: number, to: number) =>
          Effect.gen(function* () {
            yield* produceInOrder(records.slice(from, to))
            yield* TestClock.adjust("5 seconds")
            const streamed = yield* streamedScores
            return records
              .slice(from, to)
              .map((record) => streamed.get(String(record.value["transaction_id"])))
          })
        const before = yield* batchOf(0, 10)
        assert.deepStrictEqual(
          before.map((entry) => entry?.version),
          Array(10).fill(null)
        )
        yield* promoteFraudModel("live-a")
        yield* scoring.refresh
        const afterA = yield* batchOf(10, 20)
        assert.isTrue(afterA.every((entry) => entry?.version === "live-a" && typeof entry.score === "number"))
        yield* promoteFraudModel("live-b")
        yield* scoring.refresh
        const afterB = yield* batchOf(20, 30)
        assert.isTrue(afterB.every((entry) => entry?.version === "live-b"))
        yield* Fiber.interrupt(fiber)
      }).pipe(Effect.provide(Layer.provideMerge(FraudScoring.layer("1 hour"), baseLayers))),
    120_000
  )

  it("counts a transaction once, at its opening event; later events of a forgotten transaction add nothing", () => {
    const state = new LiveScoringState()
    const micros = (millis: number) => millis * 1000
    const event = (id: string, status: string, sequence: number, millis: number, amount = 1000) => ({
      transaction_id: id,
      user_id: "u-1",
      device_id: "d-1",
      event_time: micros(millis),
      status,
      sequence,
      amount_minor: amount,
      currency: "USD"
    })
    state.observeSignal({
      transaction_id: "t-1",
      event_time: micros(start + 500),
      source: "rules",
      score: 0.9
    })
    state.observeSignal({
      transaction_id: "t-1",
      event_time: micros(start - 500),
      source: "partner",
      score: 0.4
    })
    // Captured arrives before its authorization: read, not counted; the authorization then counts it once.
    const captured = state.observeTransaction(event("t-1", "captured", 1, start + 5000, 1000))
    assert.isFalse(captured.recorded)
    const authorized = state.observeTransaction(event("t-1", "authorized", 0, start, 1200))
    assert.isTrue(authorized.recorded)
    assert.strictEqual(authorized.firstEventTime, micros(start))
    assert.strictEqual(authorized.firstAmountMinor, 1200)
    const next = state.observeTransaction(event("t-2", "authorized", 0, start + 10_000))
    assert.strictEqual(next.activity.user_txn_1h, 1)
    // Two days later t-1 is forgotten; its settlement reads the activity without adding a transaction.
    state.evict(micros(start + 2 * 24 * hour))
    const settled = state.observeTransaction(event("t-1", "settled", 2, start + 2 * 24 * hour))
    assert.isFalse(settled.recorded)
    const after = state.observeTransaction(event("t-3", "authorized", 0, start + 2 * 24 * hour + 1000))
    assert.strictEqual(after.activity.user_txn_1h, 0)
  })

  it("keeps state bounded: activity, seen transactions and signals behind the watermark are evicted", () => {
    const state = new LiveScoringState()
    const micros = (millis: number) => millis * 1000
    for (let index = 0; index < 100; index++) {
      state.observeSignal({
        transaction_id: `t-${index}`,
        event_time: micros(start + index * hour),
        source: "partner",
        score: 0.5,
        confirmed_fraud: undefined
      })
      state.observeTransaction({
        transaction_id: `t-${index}`,
        user_id: `u-${index % 7}`,
        device_id: `d-${index}`,
        event_time: micros(start + index * hour),
        status: "authorized",
        sequence: 0,
        amount_minor: 100,
        currency: "EUR"
      })
    }
    assert.isAbove(state.size, 200)
    state.evict(micros(start + 200 * 24 * hour))
    assert.strictEqual(state.size, 0)
  })
})
