import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Exit, Layer, Option } from "effect"
import { type FinalAggregateRow, finalAggregateSchema, type TableRow } from "../src/domain/rows.js"
import { makeMemoryObjectStore, ProcessedBucket } from "../src/layers/ObjectStore.js"
import { Parquet } from "../src/layers/ParquetCodec.js"
import { Tensorflow } from "../src/layers/Tensorflow.js"
import { prefixes, writeManifest } from "../src/streams/datasets.js"
import { ActivityTracker } from "../src/streams/train/activity.js"
import {
  examplesInTimeOrder,
  featureVector,
  fitFeatureSpec,
  logMajorAmount,
  type ScoringFacts,
  splitByTime
} from "../src/streams/train/features.js"
import {
  atAlertRate,
  averagePrecision,
  calibration,
  classificationMetrics,
  precisionRecallCurve,
  rocAuc
} from "../src/streams/train/metrics.js"
import { reservoirSample } from "../src/streams/train/random.js"
import {
  disposeFraudModel,
  fitFraudModel,
  loadFraudModel,
  modelKeyPrefix,
  promotedModel,
  promoteFraudModel,
  readTrainingExamples,
  resolveTrainOptions,
  saveFraudModel,
  scoreRows,
  TrainError,
  trainFraudModel
} from "../src/streams/train.js"
import { baseFacts, baseRow, dayMicros, noActivity, startMicros, syntheticRows } from "./support/fraudRows.js"
import { runSmallPipeline } from "./support/smallPipeline.js"

/** Writes rows as a committed final_aggregate: one Parquet file per dt, then the manifest. */
const commitFinalAggregate = (rows: ReadonlyArray<FinalAggregateRow>) =>
  Effect.gen(function* () {
    const store = yield* ProcessedBucket
    const codec = yield* Parquet
    const byDt = new Map<string, Array<TableRow>>()
    for (const { dt, ...row } of rows) byDt.set(dt, [...(byDt.get(dt) ?? []), row])
    const files = []
    for (const [dt, partition] of [...byDt.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const key = `${prefixes.finalAggregate}dt=${dt}/part-00000.parquet`
      yield* store.put(key, yield* codec.encode(finalAggregateSchema, partition))
      files.push({ key, dt, rows: partition.length })
    }
    yield* writeManifest(store, prefixes.finalAggregate, {
      dataset: "final_aggregate",
      version: "test-1",
      committed_at: "2026-02-01T00:00:00Z",
      files
    })
  })

const syntheticData = syntheticRows(3000, 20260101)
const syntheticExamples = examplesInTimeOrder(syntheticData)

const BucketWithData = Layer.effect(
  ProcessedBucket,
  Effect.gen(function* () {
    const store = makeMemoryObjectStore()
    yield* commitFinalAggregate(syntheticData).pipe(Effect.provideService(ProcessedBucket, store))
    return store
  })
)

const codecLayer = Parquet.layer()
const trainingLayer = Layer.mergeAll(
  Tensorflow.layerWasm,
  codecLayer,
  BucketWithData.pipe(Layer.provide(codecLayer))
)

describe("fraud metrics", () => {
  it("ROC-AUC is 1 for a perfect ranking, 0 for a reversed one and counts ties as one half", () => {
    const labels = [false, false, true, true]
    assert.strictEqual(rocAuc([0.1, 0.2, 0.8, 0.9], labels), 1)
    assert.strictEqual(rocAuc([0.9, 0.8, 0.2, 0.1], labels), 0)
    assert.strictEqual(rocAuc([0.5, 0.5, 0.5, 0.5], labels), 0.5)
    assert.strictEqual(rocAuc([0.9, 0.8, 0.7, 0.6], [true, false, true, false]), 0.75)
    assert.strictEqual(rocAuc([0.3, 0.5, 0.5, 0.9], labels), 0.875)
    assert.isNaN(rocAuc([0.1, 0.2], [false, false]))
  })

  it("average precision matches hand-computed values", () => {
    assert.strictEqual(averagePrecision([0.1, 0.2, 0.8, 0.9], [false, false, true, true]), 1)
    // P@1 = 1 at recall 1/2, P@3 = 2/3 at recall 1: 0.5·1 + 0.5·2/3.
    assert.closeTo(averagePrecision([0.9, 0.8, 0.7, 0.6], [true, false, true, false]), 5 / 6, 1e-12)
    // Reversed: positives at ranks 3 and 4: 0.5·1/3 + 0.5·2/4.
    assert.closeTo(averagePrecision([0.9, 0.8, 0.2, 0.1], [false, false, true, true]), 5 / 12, 1e-12)
    // All tied: one threshold, precision 2/4 at recall 1.
    assert.strictEqual(averagePrecision([0.5, 0.5, 0.5, 0.5], [true, false, true, false]), 0.5)
    assert.isNaN(averagePrecision([0.5], [false]))
  })

  it("precision and recall at an alert rate alert the top ceil(rate·n) rows", () => {
    const scores = Array.from({ length: 200 }, (_, index) => index / 200)
    const labels = scores.map((_, index) => index >= 190 || index === 5)
    const top1 = atAlertRate(scores, labels, 0.01)
    assert.deepStrictEqual(top1, { alertRate: 0.01, alerts: 2, precision: 1, recall: 2 / 11 })
    const top5 = atAlertRate(scores, labels, 0.05)
    assert.deepStrictEqual(top5, { alertRate: 0.05, alerts: 10, precision: 1, recall: 10 / 11 })
    const metrics = classificationMetrics(scores, labels)
    assert.strictEqual(metrics.positives, 11)
    assert.strictEqual(metrics.negatives, 189)
    assert.deepStrictEqual(
      metrics.atAlertRates.map((entry) => entry.alerts),
      [2, 10]
    )
  })

  it("reservoir sampling is seeded, bounded and keeps input order", () => {
    const items = Array.from({ length: 1000 }, (_, index) => index)
    const sample = reservoirSample(items, 100, 7)
    assert.strictEqual(sample.length, 100)
    assert.deepStrictEqual(reservoirSample(items, 100, 7), sample)
    assert.notDeepEqual(reservoirSample(items, 100, 8), sample)
    assert.deepStrictEqual(
      sample,
      [...sample].sort((a, b) => a - b)
    )
    assert.deepStrictEqual(reservoirSample(items.slice(0, 10), 100, 7), items.slice(0, 10))
  })
})

describe("fraud features", () => {
  const trainRows = syntheticExamples.slice(0, 500)
  const spec = fitFeatureSpec(trainRows)

  it("ignore status, the latest state's amount, lifecycle outcomes, fraud_* and confirmed_fraud (no label leakage)", () => {
    const outcomes: Partial<FinalAggregateRow> = {
      status: "chargeback",
      sequence: 9,
      // A partial refund as the latest state: its amount is an outcome too.
      amount_minor: 17,
      currency: "JPY",
      last_event_time: baseRow.last_event_time + 40 * dayMicros,
      captured_at: null,
      settled_at: baseRow.first_event_time + dayMicros,
      refunded_at: baseRow.first_event_time + 2 * dayMicros,
      chargeback_at: baseRow.first_event_time + 30 * dayMicros,
      event_count: 7,
      fraud_signal_count: 3,
      fraud_max_score: 0.99,
      fraud_reasons: ["velocity", "chargeback"],
      confirmed_fraud: true
    }
    const leaked = { ...baseFacts, ...outcomes }
    assert.deepStrictEqual(
      Array.from(featureVector(leaked, spec)),
      Array.from(featureVector(baseFacts, spec))
    )
    const relabelled = trainRows.map((row) => ({ ...row, ...outcomes }))
    assert.deepStrictEqual(fitFeatureSpec(relabelled), spec)
    // Control: a transaction-time fact does change the vector.
    assert.notDeepEqual(
      Array.from(featureVector({ ...baseFacts, first_amount_minor: baseRow.first_amount_minor * 50 }, spec)),
      Array.from(featureVector(baseFacts, spec))
    )
  })

  it("scale amounts by the currency exponent and encode unknown dimensions", () => {
    assert.strictEqual(logMajorAmount(1000, "JPY"), logMajorAmount(100_000, "USD"))
    assert.strictEqual(logMajorAmount(1_000_000, "KWD"), logMajorAmount(100_000, "USD"))
    const names = spec.featureNames
    const raw = (row: ScoringFacts) => {
      const vector = featureVector(row, spec)
      return (name: string) => {
        const index = names.indexOf(name)
        return (
          (vector[index] as number) * (spec.standardization.std[index] as number) +
          (spec.standardization.mean[index] as number)
        )
      }
    }
    const unknownUser = raw({
      ...baseFacts,
      user_country: null,
      user_kyc_level: null,
      user_risk_tier: null,
      user_created_at: null,
      merchant_risk_level: null,
      merchant_mcc: "7995",
      country: "BR",
      card_bin: null
    })
    assert.closeTo(unknownUser("user_kyc_unknown"), 1, 1e-6)
    assert.closeTo(unknownUser("user_risk_tier_unknown"), 1, 1e-6)
    assert.closeTo(unknownUser("merchant_risk_unknown"), 1, 1e-6)
    assert.closeTo(unknownUser("user_tenure_unknown"), 1, 1e-6)
    assert.closeTo(unknownUser("risky_mcc"), 1, 1e-6)
    assert.closeTo(unknownUser("country_mismatch"), 0, 1e-6)
    assert.closeTo(unknownUser("card_bin_present"), 0, 1e-6)
    const known = raw({ ...baseFacts, country: "DE" })
    assert.closeTo(known("country_mismatch"), 1, 1e-6)
    assert.closeTo(known("user_kyc_basic"), 1, 1e-6)
    assert.closeTo(known("user_tenure_log_days"), Math.log1p(400 + 13 / 24), 1e-4)
    // 13:00 UTC
    assert.closeTo(known("hour_sin"), Math.sin((2 * Math.PI * 13) / 24), 1e-6)
  })

  it("fit merchant amount statistics on the training split only", () => {
    const { train, validation } = splitByTime(syntheticExamples, 0.2)
    const fitted = fitFeatureSpec(train)
    assert.strictEqual(fitted.globalAmountStats.count, train.length)
    const merchantTrain = train.filter((row) => row.merchant_id === "m-0")
    const stats = fitted.merchantAmountStats["m-0"]
    assert.isDefined(stats)
    assert.strictEqual(stats?.count, merchantTrain.length)
    const mean =
      merchantTrain.reduce(
        (sum, row) => sum + logMajorAmount(row.first_amount_minor, row.first_currency),
        0
      ) / merchantTrain.length
    assert.closeTo(stats?.mean ?? Number.NaN, mean, 1e-9)
    assert.isTrue((validation[0]?.first_event_time ?? 0) >= (train.at(-1)?.first_event_time ?? Infinity))
  })
})

describe("past activity features", () => {
  const hour = 3_600_000_000
  const at = (hours: number) => startMicros + Math.round(hours * hour)
  const key = (user: string, device: string | null, hours: number) => ({
    user_id: user,
    device_id: device,
    first_event_time: at(hours)
  })

  it("count only earlier transactions inside each window, never the row itself or one at the same instant", () => {
    const tracker = new ActivityTracker()
    assert.deepStrictEqual(tracker.observe(key("u", "d", 0)), noActivity)
    assert.deepStrictEqual(tracker.observe(key("u", "d", 0)), noActivity)
    assert.deepStrictEqual(tracker.observe(key("u", "d", 0.5)), {
      user_txn_1h: 2,
      user_txn_24h: 2,
      device_txn_24h: 2,
      device_known_for_user: true
    })
    // 1h15 after the first two: they fall out of [t − 1h, t), the one at 0h30 stays.
    assert.deepStrictEqual(tracker.observe(key("u", "other", 1.25)), {
      user_txn_1h: 1,
      user_txn_24h: 3,
      device_txn_24h: 0,
      device_known_for_user: false
    })
    assert.deepStrictEqual(tracker.observe(key("v", "d", 2)), {
      user_txn_1h: 0,
      user_txn_24h: 0,
      device_txn_24h: 3,
      device_known_for_user: false
    })
    assert.strictEqual(tracker.observe(key("u", null, 30)).device_known_for_user, false)
    tracker.evictBefore(at(24 * 40))
    assert.strictEqual(tracker.size, 0)
  })

  it("cannot see the future: changing or adding later rows leaves every earlier row's features unchanged", () => {
    const cut = syntheticExamples[1500]!.first_event_time
    const spec = fitFeatureSpec(syntheticExamples.slice(0, 1000))
    const vectorsBefore = (examples: ReadonlyArray<ScoringFacts>) =>
      examples
        .filter((example) => example.first_event_time < cut)
        .map((example) => Array.from(featureVector(example, spec)))
    const future = syntheticData.map((row) =>
      row.first_event_time < cut
        ? row
        : {
            ...row,
            first_amount_minor: row.first_amount_minor * 7,
            device_id: "d-shared",
            confirmed_fraud: !row.confirmed_fraud
          }
    )
    const burst = Array.from({ length: 50 }, (_, index) => ({
      ...syntheticData[0]!,
      transaction_id: `tx-future-${index}`,
      first_event_time: cut + index
    }))
    const shuffled = [...future, ...burst].reverse()
    assert.deepStrictEqual(vectorsBefore(examplesInTimeOrder(shuffled)), vectorsBefore(syntheticExamples))
    // Control: the same burst before the cut does change the activity of later rows.
    const early = burst.map((row, index) => ({
      ...row,
      first_event_time: syntheticData[0]!.first_event_time + index
    }))
    assert.notDeepEqual(
      vectorsBefore(examplesInTimeOrder([...syntheticData, ...early])),
      vectorsBefore(syntheticExamples)
    )
  })
})

describe("calibration and curves", () => {
  it("bins scores, with Brier score and expected calibration error", () => {
    const result = calibration([0.05, 0.05, 0.95, 0.95, 1], [false, true, true, true, true], 10)
    assert.strictEqual(result.bins.length, 10)
    assert.deepStrictEqual(
      result.bins.map((bin) => bin.count),
      [2, 0, 0, 0, 0, 0, 0, 0, 0, 3]
    )
    assert.closeTo(result.bins[0]!.observedRate, 0.5, 1e-12)
    assert.closeTo(result.bins[9]!.meanScore, (0.95 + 0.95 + 1) / 3, 1e-12)
    assert.closeTo(result.brierScore, (0.05 ** 2 + 0.95 ** 2 + 0.05 ** 2 + 0.05 ** 2 + 0) / 5, 1e-12)
    assert.closeTo(result.expectedCalibrationError, (2 / 5) * 0.45 + (3 / 5) * Math.abs(2.9 / 3 - 1), 1e-12)
  })

  it("the precision-recall curve steps through distinct thresholds and is thinned", () => {
    const curve = precisionRecallCurve([0.9, 0.8, 0.8, 0.1], [true, false, true, false])
    assert.deepStrictEqual(curve, [
      { threshold: 0.9, precision: 1, recall: 0.5 },
      { threshold: 0.8, precision: 2 / 3, recall: 1 },
      { threshold: 0.1, precision: 0.5, recall: 1 }
    ])
    const many = Array.from({ length: 1000 }, (_, index) => index / 1000)
    assert.strictEqual(
      precisionRecallCurve(
        many,
        many.map((value) => value > 0.5),
        50
      ).length,
      50
    )
  })
})

describe("Tensorflow layer", () => {
  it.effect("uses tfjs-node when it can be imported and the wasm backend otherwise", () =>
    Effect.gen(function* () {
      const nativeName: string = "@tensorflow/tfjs-node"
      const nativeInstalled = yield* Effect.promise(() =>
        import(/* @vite-ignore */ nativeName).then(
          () => true,
          () => false
        )
      )
      const { tf, backend } = yield* Tensorflow
      assert.strictEqual(backend, nativeInstalled ? "tensorflow" : "wasm")
      assert.strictEqual(tf.getBackend(), backend)
      assert.deepStrictEqual(Array.from(tf.tidy(() => tf.tensor1d([1, 2]).add(1).dataSync())), [2, 3])
    }).pipe(Effect.provide(Tensorflow.layer))
  )
})

layer(trainingLayer, { timeout: 120_000 })("fraud model training", (it) => {
  it.effect("trains deterministically, beats chance on validation and saves the model", () =>
    Effect.gen(function* () {
      const { tf } = yield* Tensorflow
      const first = yield* trainFraudModel({ seed: 11, epochs: 10, batchSize: 64 })
      const tensorsAfterFirst = tf.memory().numTensors
      const second = yield* trainFraudModel({ seed: 11, epochs: 10, batchSize: 64 })
      assert.strictEqual(tf.memory().numTensors, tensorsAfterFirst)
      assert.strictEqual(first.backend, "wasm")
      assert.deepStrictEqual(second.metrics, first.metrics)
      assert.deepStrictEqual(second.baselineMetrics, first.baselineMetrics)
      assert.strictEqual(second.version, first.version)
      assert.match(first.version, /^v-11-[0-9a-f]{16}$/)
      assert.strictEqual(first.key, `models/${first.version}/`)
      assert.strictEqual(first.rows.train, 2400)
      assert.strictEqual(first.rows.validation, 600)
      assert.isAbove(first.positives.validation, 10)
      assert.isAbove(first.metrics.rocAuc, 0.7)
      assert.isAbove(first.baselineMetrics.rocAuc, 0.5)
      assert.strictEqual(first.metrics.positives + first.metrics.negatives, 600)
      assert.closeTo(first.positiveClassWeight, (2400 - first.positives.train) / first.positives.train, 1e-12)
      const store = yield* ProcessedBucket
      const saved = (yield* store.list(first.key)).map((info) => info.key.slice(first.key.length))
      assert.deepStrictEqual(saved, [
        "calibration.svg",
        "feature_spec.json",
        "metrics.json",
        "model.json",
        "model_card.json",
        "model_card.md",
        "pr_curve.svg",
        "weights.bin"
      ])
      assert.deepStrictEqual(second.logisticMetrics, first.logisticMetrics)
      assert.isAbove(first.logisticMetrics.rocAuc, 0.5)
      const card = JSON.parse(
        new TextDecoder().decode(Option.getOrThrow(yield* store.get(`${first.key}model_card.json`)))
      ) as { metrics: { model: unknown; logisticRegression: unknown; rules: unknown }; dataRange: unknown }
      assert.deepStrictEqual(card.metrics.model, JSON.parse(JSON.stringify(first.metrics)))
      assert.deepStrictEqual(card.dataRange, first.dataRange)
      const chart = new TextDecoder().decode(Option.getOrThrow(yield* store.get(`${first.key}pr_curve.svg`)))
      assert.match(chart, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/)
      assert.include(chart, "<polyline")
      const report = new TextDecoder().decode(
        Option.getOrThrow(yield* store.get(`${first.key}model_card.md`))
      )
      assert.include(report, "| logistic regression |")
      assert.include(report, "pr_curve.svg")
      const other = yield* trainFraudModel({ seed: 12, epochs: 10, batchSize: 64 })
      assert.notStrictEqual(other.version, first.version)
    })
  )

  it.effect("the saved model reloads through the object store and scores like the in-memory model", () =>
    Effect.gen(function* () {
      const { examples: rows } = yield* readTrainingExamples({ seed: 1 })
      assert.strictEqual(rows.length, 3000)
      const options = yield* resolveTrainOptions({ seed: 5, epochs: 4 })
      const fitted = yield* fitFraudModel(rows, options)
      const { validation } = splitByTime(rows, options.validationFraction)
      const inMemory = yield* scoreRows(fitted.model, fitted.featureSpec, validation)
      yield* saveFraudModel(fitted, "reload-test")
      disposeFraudModel(fitted.model)
      const loaded = yield* loadFraudModel("reload-test")
      const reloaded = yield* scoreRows(loaded.model, loaded.featureSpec, validation)
      disposeFraudModel(loaded.model)
      assert.deepStrictEqual(loaded.featureSpec, fitted.featureSpec)
      assert.strictEqual(reloaded.length, validation.length)
      assert.deepStrictEqual(Array.from(reloaded), Array.from(inMemory))
      assert.strictEqual(
        rocAuc(
          reloaded,
          validation.map((row) => row.confirmed_fraud)
        ),
        fitted.metrics.rocAuc
      )
    })
  )

  it.effect("samples a seeded subset when sampleSize is set", () =>
    Effect.gen(function* () {
      const report = yield* trainFraudModel({ seed: 3, epochs: 2, sampleSize: 1500, version: "sampled" })
      assert.strictEqual(report.rows.train + report.rows.validation, 1500)
      assert.strictEqual(report.version, "sampled")
    })
  )

  it.effect("fails with a TrainError on too few rows, a split without positives, or a missing model", () =>
    Effect.gen(function* () {
      const options = yield* resolveTrainOptions({ seed: 1, epochs: 1 })
      const tooFew = yield* Effect.flip(fitFraudModel(syntheticExamples.slice(0, 50), options))
      assert.instanceOf(tooFew, TrainError)
      assert.match(tooFew.reason, /too few rows: 50/)
      const noFraud = syntheticExamples.map((row) => ({ ...row, confirmed_fraud: false }))
      const noPositives = yield* Effect.flip(fitFraudModel(noFraud, options))
      assert.match(noPositives.reason, /no positives .* training split/)
      const lateFraudOnly = syntheticExamples.map((row, index) => ({ ...row, confirmed_fraud: index < 100 }))
      const noValidationPositives = yield* Effect.flip(fitFraudModel(lateFraudOnly, options))
      assert.match(noValidationPositives.reason, /no positives .* validation split/)
      const missing = yield* Effect.exit(loadFraudModel("never-saved"))
      assert.isTrue(Exit.isFailure(missing))
      const badVersion = yield* Effect.flip(trainFraudModel({ version: "../escape" }))
      assert.match(badVersion.reason, /not a safe path segment/)
    })
  )

  it.effect(
    "promotes the first model, then only a model that beats the promoted one on its validation window",
    () =>
      Effect.gen(function* () {
        assert.isTrue(Option.isNone(yield* promotedModel))
        const weak = yield* trainFraudModel({
          seed: 21,
          epochs: 1,
          hiddenUnits: [1],
          learningRate: 0.0005,
          version: "weak"
        })
        assert.deepStrictEqual(weak.promotion, {
          promoted: true,
          reason: "first model: nothing was promoted",
          promotedVersion: "weak"
        })
        const strong = yield* trainFraudModel({ seed: 21, epochs: 10, batchSize: 64, version: "strong" })
        assert.isAbove(strong.metrics.prAuc, weak.metrics.prAuc)
        assert.isTrue(strong.promotion.promoted)
        assert.match(
          strong.promotion.reason,
          /^beats the promoted model: PR-AUC [0-9.]+ vs [0-9.]+ of weak on /
        )
        assert.strictEqual(Option.getOrThrow(yield* promotedModel).version, "strong")
        const again = yield* trainFraudModel({
          seed: 21,
          epochs: 1,
          hiddenUnits: [1],
          learningRate: 0.0005,
          version: "weak-2"
        })
        assert.isFalse(again.promotion.promoted)
        assert.match(again.promotion.reason, /^does not beat the promoted model/)
        assert.strictEqual(again.promotion.promotedVersion, "strong")
        const manual = yield* trainFraudModel({ seed: 22, epochs: 2, version: "manual", autoPromote: false })
        assert.isFalse(manual.promotion.promoted)
        assert.strictEqual(Option.getOrThrow(yield* promotedModel).version, "strong")
        yield* promoteFraudModel("weak-2")
        const pointer = Option.getOrThrow(yield* promotedModel)
        assert.strictEqual(pointer.version, "weak-2")
        assert.strictEqual(pointer.reason, "promoted by command")
        const missing = yield* Effect.flip(promoteFraudModel("never-trained"))
        assert.match(missing.reason, /models\/never-trained\/metrics.json is missing/)
        assert.strictEqual(Option.getOrThrow(yield* promotedModel).version, "weak-2")
      }).pipe(Effect.provide(BucketWithData.pipe(Layer.provide(codecLayer))))
  )

  it.effect("replaces a promoted model it cannot load, and never overwrites a saved version", () =>
    Effect.gen(function* () {
      const store = yield* ProcessedBucket
      yield* store.put(
        "models/promoted.json",
        new TextEncoder().encode(
          JSON.stringify({ version: "ghost", promoted_at: "2026-01-01T00:00:00Z", reason: "test" })
        )
      )
      const first = yield* trainFraudModel({ seed: 31, epochs: 1 })
      assert.isTrue(first.promotion.promoted)
      assert.match(
        first.promotion.reason,
        /^promoted ghost cannot score the validation window \(models\/ghost\/metrics.json is missing\)/
      )
      const again = yield* trainFraudModel({ seed: 31, epochs: 1 })
      assert.strictEqual(again.version, first.version)
      assert.isFalse(again.saved)
      assert.deepStrictEqual(again.metrics, first.metrics)
      const options = yield* resolveTrainOptions({ seed: 31, epochs: 1 })
      const { examples } = yield* readTrainingExamples({ seed: 31 })
      const fitted = yield* fitFraudModel(examples, options)
      const overwrite = yield* Effect.flip(saveFraudModel(fitted, first.version))
      disposeFraudModel(fitted.model)
      assert.match(overwrite.reason, /already holds a complete model/)
    }).pipe(Effect.provide(BucketWithData.pipe(Layer.provide(codecLayer))))
  )

  it.effect("fails with a TrainError when no final_aggregate is committed", () =>
    Effect.gen(function* () {
      const failure = yield* Effect.flip(trainFraudModel({ seed: 1 }))
      assert.instanceOf(failure, TrainError)
      assert.match(failure.reason, /too few rows: 0/)
      const manifest = yield* (yield* ProcessedBucket).get(`${prefixes.finalAggregate}_manifest.json`)
      assert.isTrue(Option.isNone(manifest))
      assert.strictEqual(modelKeyPrefix("x"), "models/x/")
    }).pipe(Effect.provide(ProcessedBucket.layerMemory))
  )
})

describe("fraud model on generated data", () => {
  it.effect(
    "beats the logistic-regression and rules baselines on PR-AUC on the held-out newest window",
    () =>
      Effect.gen(function* () {
        const { processed } = yield* runSmallPipeline("fraud-generated", 30_000, 42)
        const report = yield* trainFraudModel({ seed: 42 }).pipe(
          Effect.provide(
            Layer.mergeAll(Layer.succeed(ProcessedBucket, processed), Parquet.layer(), Tensorflow.layerWasm)
          )
        )
        assert.isAbove(report.positives.validation, 50)
        assert.isAbove(report.metrics.prAuc, report.logisticMetrics.prAuc)
        assert.isAbove(report.metrics.prAuc, report.baselineMetrics.prAuc)
        assert.isAbove(report.metrics.rocAuc, 0.8)
        assert.isTrue(report.dataRange.train.to <= report.dataRange.validation.from)
      }),
    300_000
  )
})
