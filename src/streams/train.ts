import { createHash } from "node:crypto"
import type * as Tf from "@tensorflow/tfjs"
import { Effect, Option, Schema } from "effect"
import { microsToIso } from "../domain/time.js"
import { ProcessedBucket } from "../layers/ObjectStore.js"
import { Parquet } from "../layers/ParquetCodec.js"
import { Tensorflow, type TfModule } from "../layers/Tensorflow.js"
import { prefixes, readCommittedFile, readManifest } from "./datasets.js"
import { ActivityTracker, activityWindows } from "./train/activity.js"
import { TrainError } from "./train/errors.js"
import {
  baselineScore,
  exampleColumns,
  examplesInTimeOrder,
  FeatureSpec,
  featureMatrix,
  featureNames,
  fitFeatureSpec,
  type LabeledExample,
  type ScoringFacts,
  splitByTime
} from "./train/features.js"
import {
  type Calibration,
  type ClassificationMetrics,
  calibration,
  classificationMetrics,
  type PrecisionRecallPoint,
  precisionRecallCurve
} from "./train/metrics.js"
import {
  calibrationChart,
  type ModelCardSummary,
  modelCardMarkdown,
  precisionRecallChart
} from "./train/modelCard.js"
import { loadLayersModel, modelFiles, readModelFile, saveLayersModel } from "./train/modelStore.js"
import { makePrng, permutation, Reservoir } from "./train/random.js"
import {
  decidePromotion,
  type PromotedPointer,
  type PromotionDecision,
  readPromotedPointer,
  writePromotedPointer
} from "./train/registry.js"

export { TrainError } from "./train/errors.js"
export type { FeatureSpec, LabeledExample, ScoringFacts, TransactionTimeFacts } from "./train/features.js"
export type { AlertRateMetrics, Calibration, ClassificationMetrics } from "./train/metrics.js"
export type { PromotedPointer } from "./train/registry.js"

/** Options of {@link trainFraudModel}; every field has a default. */
export interface TrainOptions {
  /** Seeds weight initialisers, epoch shuffling and sampling. Default 42. */
  readonly seed?: number
  /** Default 8. */
  readonly epochs?: number
  /** Default 512. */
  readonly batchSize?: number
  /** Adam learning rate. Default 0.005. */
  readonly learningRate?: number
  /** Units of the hidden relu layers. Default [16, 8]. */
  readonly hiddenUnits?: ReadonlyArray<number>
  /** Train on a seeded uniform sample of at most this many rows. Default: all rows. */
  readonly sampleSize?: number
  /** Share of the newest rows held out for validation. Default 0.2. */
  readonly validationFraction?: number
  /** Fewer committed rows than this fail with a TrainError. Default 100. */
  readonly minRows?: number
  /** Model version (a path segment); default `v-<seed>-<hash of data and options>`. */
  readonly version?: string
  /** Promote the new model when it beats the promoted one on its validation window. Default true. */
  readonly autoPromote?: boolean
}

/** {@link TrainOptions} with defaults applied. */
export interface ResolvedTrainOptions {
  readonly seed: number
  readonly epochs: number
  readonly batchSize: number
  readonly learningRate: number
  readonly hiddenUnits: ReadonlyArray<number>
  readonly sampleSize: number | undefined
  readonly validationFraction: number
  readonly minRows: number
}

/** Row and positive counts of the two splits. */
export interface SplitCounts {
  readonly train: number
  readonly validation: number
}

/** First and last first_event_time (RFC 3339, UTC) of a split. */
export interface TimeRange {
  readonly from: string
  readonly to: string
}

/** A trained model in memory with what it was fitted and evaluated on. */
export interface FittedFraudModel {
  readonly model: Tf.LayersModel
  readonly featureSpec: FeatureSpec
  readonly options: ResolvedTrainOptions
  readonly rows: SplitCounts
  readonly positives: SplitCounts
  readonly dataRange: { readonly train: TimeRange; readonly validation: TimeRange }
  /** The validation examples (newest rows), kept to compare with the promoted model on the same window. */
  readonly validation: ReadonlyArray<LabeledExample>
  /** negatives / positives on the training split. */
  readonly positiveClassWeight: number
  readonly finalLoss: number
  /** Validation metrics of the model, of the logistic-regression baseline and of the rules baseline. */
  readonly metrics: ClassificationMetrics
  readonly logisticMetrics: ClassificationMetrics
  readonly baselineMetrics: ClassificationMetrics
  readonly calibration: Calibration
  readonly logisticCalibration: Calibration
  readonly curves: {
    readonly model: ReadonlyArray<PrecisionRecallPoint>
    readonly logisticRegression: ReadonlyArray<PrecisionRecallPoint>
    readonly rules: ReadonlyArray<PrecisionRecallPoint>
  }
  /** Training samples per second of the network (examples × epochs / seconds). */
  readonly samplesPerSecond: number
  /** Identifies the data and options: same hash, same model. */
  readonly dataHash: string
}

/** Whether a training run moved the promoted pointer, and why. */
export interface PromotionOutcome {
  readonly promoted: boolean
  readonly reason: string
  /** The promoted version after the run (none when nothing is promoted). */
  readonly promotedVersion: string | null
}

/** What {@link trainFraudModel} reports. */
export interface TrainingReport {
  readonly backend: string
  readonly version: string
  /** Key prefix of the saved model in the processed bucket, `models/<version>/`. */
  readonly key: string
  readonly rows: SplitCounts
  readonly positives: SplitCounts
  readonly dataRange: { readonly train: TimeRange; readonly validation: TimeRange }
  readonly metrics: ClassificationMetrics
  readonly logisticMetrics: ClassificationMetrics
  readonly baselineMetrics: ClassificationMetrics
  readonly calibration: { readonly brierScore: number; readonly expectedCalibrationError: number }
  readonly positiveClassWeight: number
  readonly finalLoss: number
  readonly epochs: number
  readonly samplesPerSecond: number
  /** final_aggregate rows read (before sampling). */
  readonly rowsRead: number
  /** False when this exact model (same default version) was already saved and was left as it is. */
  readonly saved: boolean
  readonly promotion: PromotionOutcome
}

/** A saved model read back from the processed bucket. */
export interface LoadedFraudModel {
  readonly version: string
  readonly model: Tf.LayersModel
  readonly featureSpec: FeatureSpec
}

/** Key prefix of a saved model version. */
export const modelKeyPrefix = (version: string): string => `${prefixes.models}${version}/`

const versionPattern = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,128}$/

const invalid = (reason: string) => Effect.fail(new TrainError({ reason }))

/** Applies defaults and checks ranges. */
export const resolveTrainOptions = (
  options: TrainOptions
): Effect.Effect<ResolvedTrainOptions, TrainError> => {
  const resolved: ResolvedTrainOptions = {
    seed: options.seed ?? 42,
    epochs: options.epochs ?? 8,
    batchSize: options.batchSize ?? 512,
    learningRate: options.learningRate ?? 0.005,
    hiddenUnits: options.hiddenUnits ?? [16, 8],
    sampleSize: options.sampleSize,
    validationFraction: options.validationFraction ?? 0.2,
    minRows: options.minRows ?? 100
  }
  const positiveInteger = (value: number) => Number.isSafeInteger(value) && value >= 1
  if (!Number.isSafeInteger(resolved.seed)) return invalid(`seed must be an integer, got ${resolved.seed}`)
  if (!positiveInteger(resolved.epochs)) return invalid(`epochs must be a positive integer`)
  if (!positiveInteger(resolved.batchSize)) return invalid(`batchSize must be a positive integer`)
  if (!(resolved.learningRate > 0 && Number.isFinite(resolved.learningRate)))
    return invalid("learningRate must be positive")
  if (resolved.hiddenUnits.length === 0 || !resolved.hiddenUnits.every(positiveInteger))
    return invalid("hiddenUnits must be positive integers")
  if (resolved.sampleSize !== undefined && !positiveInteger(resolved.sampleSize))
    return invalid("sampleSize must be a positive integer")
  if (!(resolved.validationFraction > 0 && resolved.validationFraction < 1))
    return invalid("validationFraction must be between 0 and 1")
  if (!(Number.isSafeInteger(resolved.minRows) && resolved.minRows >= 2))
    return invalid("minRows must be an integer of at least 2")
  if (options.version !== undefined && !versionPattern.test(options.version))
    return invalid(`version ${JSON.stringify(options.version)} is not a safe path segment`)
  return Effect.succeed(resolved)
}

const activityKeys = ["user_txn_1h", "user_txn_24h", "device_txn_24h", "device_known_for_user"] as const

/** A hash of the examples (pass them in time order), their features and labels, and of the options. */
export const hashTrainingData = (
  examples: ReadonlyArray<LabeledExample>,
  options: ResolvedTrainOptions
): string => {
  const hash = createHash("sha256")
  hash.update(JSON.stringify(options))
  for (const example of examples) {
    hash.update(
      JSON.stringify([
        ...exampleColumns.map((column) => example[column as keyof LabeledExample]),
        ...activityKeys.map((key) => example[key])
      ])
    )
    hash.update("\n")
  }
  return hash.digest("hex").slice(0, 16)
}

const labelsOf = (examples: ReadonlyArray<LabeledExample>): Array<boolean> =>
  examples.map((example) => example.confirmed_fraud === true)

const countTrue = (labels: ReadonlyArray<boolean>): number => labels.filter(Boolean).length

const checkSplit = (name: string, labels: ReadonlyArray<boolean>): Effect.Effect<void, TrainError> => {
  const positives = countTrue(labels)
  if (positives === 0)
    return invalid(`no positives (confirmed_fraud) in the ${name} split of ${labels.length} rows`)
  if (positives === labels.length)
    return invalid(`no negatives in the ${name} split of ${labels.length} rows`)
  return Effect.void
}

const buildNetwork = (tf: TfModule, inputWidth: number, options: ResolvedTrainOptions): Tf.Sequential => {
  const model = tf.sequential({ name: "fraud_model" })
  options.hiddenUnits.forEach((units, index) => {
    model.add(
      tf.layers.dense({
        name: `hidden_${index + 1}`,
        units,
        activation: "relu",
        kernelInitializer: tf.initializers.glorotUniform({ seed: options.seed + index }),
        ...(index === 0 ? { inputShape: [inputWidth] } : {})
      })
    )
  })
  model.add(
    tf.layers.dense({
      name: "fraud_probability",
      units: 1,
      activation: "sigmoid",
      kernelInitializer: tf.initializers.glorotUniform({ seed: options.seed + options.hiddenUnits.length })
    })
  )
  model.compile({ optimizer: tf.train.adam(options.learningRate), loss: "binaryCrossentropy" })
  return model
}

/** The logistic-regression baseline: one sigmoid unit over the same standardised features. */
const buildLogisticRegression = (
  tf: TfModule,
  inputWidth: number,
  options: ResolvedTrainOptions
): Tf.Sequential => {
  const model = tf.sequential({ name: "logistic_regression" })
  model.add(
    tf.layers.dense({
      name: "fraud_probability",
      units: 1,
      activation: "sigmoid",
      inputShape: [inputWidth],
      kernelInitializer: tf.initializers.glorotUniform({ seed: options.seed + 1000 })
    })
  )
  model.compile({ optimizer: tf.train.adam(options.learningRate * 4), loss: "binaryCrossentropy" })
  return model
}

const predict = (tf: TfModule, model: Tf.LayersModel, matrix: Float32Array, width: number): Float32Array => {
  const rowCount = matrix.length / width
  if (rowCount === 0) return new Float32Array(0)
  return tf.tidy(() => {
    const output = model.predict(tf.tensor2d(matrix, [rowCount, width]), { batchSize: 4096 }) as Tf.Tensor
    return output.dataSync() as Float32Array
  })
}

/** Frees a model's weights and its optimizer state (an optimizer passed to compile is not owned by the model). */
export const disposeFraudModel = (model: Tf.LayersModel): void => {
  if (model.optimizer !== undefined) model.optimizer.dispose()
  model.dispose()
}

const firstNonFinite = (matrix: Float32Array): number => matrix.findIndex((value) => !Number.isFinite(value))

/** Trains a compiled model with seeded per-epoch shuffling and class weighting; the final loss and speed. */
const trainNetwork = (
  tf: TfModule,
  model: Tf.LayersModel,
  matrix: Float32Array,
  labels: ReadonlyArray<boolean>,
  width: number,
  options: ResolvedTrainOptions,
  positiveClassWeight: number,
  seed: number
) =>
  Effect.tryPromise({
    try: async () => {
      const rowCount = labels.length
      const features = tf.tensor2d(matrix, [rowCount, width])
      const targets = tf.tensor2d(Float32Array.from(labels, Number), [rowCount, 1])
      const random = makePrng(seed)
      const started = performance.now()
      let finalLoss = Number.NaN
      try {
        for (let epoch = 0; epoch < options.epochs; epoch++) {
          const order = tf.tensor1d(permutation(random, rowCount), "int32")
          const shuffledFeatures = tf.gather(features, order)
          const shuffledTargets = tf.gather(targets, order)
          try {
            const history = await model.fit(shuffledFeatures, shuffledTargets, {
              epochs: 1,
              batchSize: options.batchSize,
              shuffle: false,
              classWeight: { 0: 1, 1: positiveClassWeight },
              verbose: 0
            })
            finalLoss = Number(history.history["loss"]?.[0] ?? Number.NaN)
          } finally {
            tf.dispose([order, shuffledFeatures, shuffledTargets])
          }
        }
      } finally {
        tf.dispose([features, targets])
      }
      const seconds = (performance.now() - started) / 1000
      return { finalLoss, samplesPerSecond: seconds > 0 ? (rowCount * options.epochs) / seconds : 0 }
    },
    catch: (cause) => new TrainError({ reason: `training ${model.name} failed`, cause })
  }).pipe(
    Effect.flatMap((result) =>
      Number.isFinite(result.finalLoss)
        ? Effect.succeed(result)
        : invalid(`training ${model.name} diverged: final loss ${result.finalLoss}`)
    ),
    Effect.tapError(() => Effect.sync(() => disposeFraudModel(model)))
  )

const timeRange = (examples: ReadonlyArray<LabeledExample>): TimeRange => ({
  from: examples.length === 0 ? "" : microsToIso(examples[0]!.first_event_time),
  to: examples.length === 0 ? "" : microsToIso(examples.at(-1)!.first_event_time)
})

/**
 * Fits the fraud model on examples already loaded: time-based split (train older, validate newer),
 * features fitted on the training split, a seeded dense network and a logistic-regression baseline
 * trained with class weighting, then both and the rules baseline evaluated on the validation split.
 * The caller owns `model` and frees it with {@link disposeFraudModel}.
 */
export const fitFraudModel = Effect.fn("Train.fitFraudModel")(function* (
  examples: ReadonlyArray<LabeledExample>,
  options: ResolvedTrainOptions
) {
  const { tf } = yield* Tensorflow
  if (examples.length < options.minRows)
    return yield* invalid(
      `too few rows: ${examples.length} final_aggregate rows, need at least ${options.minRows}`
    )
  const { train, validation } = splitByTime(examples, options.validationFraction)
  const trainLabels = labelsOf(train)
  const validationLabels = labelsOf(validation)
  yield* checkSplit("training", trainLabels)
  yield* checkSplit("validation", validationLabels)

  const featureSpec = fitFeatureSpec(train)
  const width = featureSpec.featureNames.length
  const trainMatrix = featureMatrix(train, featureSpec)
  const validationMatrix = featureMatrix(validation, featureSpec)
  for (const [name, matrix] of [
    ["training", trainMatrix],
    ["validation", validationMatrix]
  ] as const) {
    const bad = firstNonFinite(matrix)
    if (bad >= 0)
      return yield* invalid(
        `non-finite feature ${featureSpec.featureNames[bad % width]} in ${name} row ${Math.floor(bad / width)}`
      )
  }
  const trainPositives = countTrue(trainLabels)
  const positiveClassWeight = (train.length - trainPositives) / trainPositives

  const logistic = buildLogisticRegression(tf, width, options)
  yield* trainNetwork(
    tf,
    logistic,
    trainMatrix,
    trainLabels,
    width,
    options,
    positiveClassWeight,
    options.seed ^ 0x2545f491
  )
  const logisticScores = predict(tf, logistic, validationMatrix, width)
  disposeFraudModel(logistic)

  const model = buildNetwork(tf, width, options)
  const training = yield* trainNetwork(
    tf,
    model,
    trainMatrix,
    trainLabels,
    width,
    options,
    positiveClassWeight,
    options.seed ^ 0x5bd1e995
  )
  const validationScores = predict(tf, model, validationMatrix, width)
  const rulesScores = validation.map((example) => baselineScore(example, featureSpec))
  const fitted: FittedFraudModel = {
    model,
    featureSpec,
    options,
    rows: { train: train.length, validation: validation.length },
    positives: { train: trainPositives, validation: countTrue(validationLabels) },
    dataRange: { train: timeRange(train), validation: timeRange(validation) },
    validation,
    positiveClassWeight,
    finalLoss: training.finalLoss,
    metrics: classificationMetrics(validationScores, validationLabels),
    logisticMetrics: classificationMetrics(logisticScores, validationLabels),
    baselineMetrics: classificationMetrics(rulesScores, validationLabels),
    calibration: calibration(validationScores, validationLabels),
    logisticCalibration: calibration(logisticScores, validationLabels),
    curves: {
      model: precisionRecallCurve(validationScores, validationLabels),
      logisticRegression: precisionRecallCurve(logisticScores, validationLabels),
      rules: precisionRecallCurve(rulesScores, validationLabels)
    },
    samplesPerSecond: training.samplesPerSecond,
    dataHash: hashTrainingData([...train, ...validation], options)
  }
  return fitted
})

const encodeJson = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value, null, 2))

/** The model card of a fitted model: data range, features, metrics beside both baselines, calibration. */
export const modelCardOf = (
  fitted: FittedFraudModel,
  version: string,
  backend: string,
  promotion: string
) => {
  const summary: ModelCardSummary = {
    version,
    backend,
    dataRange: fitted.dataRange,
    rows: fitted.rows,
    positives: fitted.positives,
    features: fitted.featureSpec.featureNames,
    metrics: {
      model: fitted.metrics,
      logisticRegression: fitted.logisticMetrics,
      rules: fitted.baselineMetrics
    },
    calibration: { model: fitted.calibration },
    promotion
  }
  return {
    ...summary,
    label: "confirmed_fraud",
    split: { kind: "time", validationFraction: fitted.options.validationFraction },
    activityWindows,
    options: fitted.options,
    dataHash: fitted.dataHash,
    positiveClassWeight: fitted.positiveClassWeight,
    finalLoss: fitted.finalLoss,
    calibration: { model: fitted.calibration, logisticRegression: fitted.logisticCalibration },
    precisionRecallCurves: fitted.curves,
    charts: { precisionRecall: modelFiles.prCurve, calibration: modelFiles.calibrationChart },
    report: modelFiles.cardMarkdown
  }
}

/**
 * Writes `models/<version>/`: model.json and weights.bin through a tfjs save handler on the object store,
 * feature_spec.json, the model card (JSON, Markdown, precision-recall and calibration SVGs), then
 * metrics.json last (its presence marks a complete model).
 */
export const saveFraudModel = Effect.fn("Train.saveFraudModel")(function* (
  fitted: FittedFraudModel,
  version: string,
  promotion = "not evaluated for promotion"
) {
  const { tf, backend } = yield* Tensorflow
  const store = yield* ProcessedBucket
  if (!versionPattern.test(version)) return yield* invalid(`version ${JSON.stringify(version)} is not safe`)
  const prefix = modelKeyPrefix(version)
  if (yield* modelExists(version))
    return yield* invalid(`${prefix} already holds a complete model; a saved version is never overwritten`)
  const putBytes = (name: string, bytes: Uint8Array) =>
    store
      .put(prefix + name, bytes)
      .pipe(Effect.mapError((cause) => new TrainError({ reason: `writing ${prefix}${name} failed`, cause })))
  const putText = (name: string, text: string) => putBytes(name, new TextEncoder().encode(text))
  yield* saveLayersModel(tf, store, prefix, fitted.model)
  yield* putBytes(modelFiles.featureSpec, encodeJson(fitted.featureSpec))
  const card = modelCardOf(fitted, version, backend, promotion)
  yield* putBytes(modelFiles.card, encodeJson(card))
  yield* putText(modelFiles.cardMarkdown, modelCardMarkdown(card))
  yield* putText(
    modelFiles.prCurve,
    precisionRecallChart([
      { name: "model", color: "#1f77b4", curve: fitted.curves.model },
      { name: "logistic regression", color: "#ff7f0e", curve: fitted.curves.logisticRegression },
      { name: "rules", color: "#2ca02c", curve: fitted.curves.rules }
    ])
  )
  yield* putText(
    modelFiles.calibrationChart,
    calibrationChart([
      { name: "model", color: "#1f77b4", calibration: fitted.calibration },
      { name: "logistic regression", color: "#ff7f0e", calibration: fitted.logisticCalibration }
    ])
  )
  yield* putBytes(
    modelFiles.metrics,
    encodeJson({
      version,
      backend,
      dataHash: fitted.dataHash,
      options: fitted.options,
      rows: fitted.rows,
      positives: fitted.positives,
      dataRange: fitted.dataRange,
      positiveClassWeight: fitted.positiveClassWeight,
      finalLoss: fitted.finalLoss,
      metrics: fitted.metrics,
      logisticMetrics: fitted.logisticMetrics,
      baselineMetrics: fitted.baselineMetrics
    })
  )
  return prefix
})

/**
 * Streams the committed final_aggregate one dt partition at a time (in dt order, each sorted by time),
 * computing every row's past activity from all rows before it, and keeps all examples or a seeded
 * uniform sample of `sampleSize`: memory holds one partition, the activity state and the sample.
 */
export const readTrainingExamples = (options: {
  readonly sampleSize?: number | undefined
  readonly seed: number
}) =>
  Effect.gen(function* () {
    const store = yield* ProcessedBucket
    const codec = yield* Parquet
    const manifest = yield* readManifest(store, prefixes.finalAggregate)
    const files = Option.match(manifest, { onNone: () => [], onSome: (committed) => committed.files })
    const byDt = new Map<string, Array<string>>()
    for (const file of files) byDt.set(file.dt, [...(byDt.get(file.dt) ?? []), file.key])
    const tracker = new ActivityTracker()
    const kept = new Reservoir<LabeledExample>(options.sampleSize ?? Number.MAX_SAFE_INTEGER, options.seed)
    for (const dt of [...byDt.keys()].sort()) {
      const rows: Array<Omit<LabeledExample, (typeof activityKeys)[number]>> = []
      for (const key of byDt.get(dt) ?? []) {
        const part = yield* readCommittedFile(store, codec, "final_aggregate", key, exampleColumns)
        for (const row of part)
          rows.push(row as unknown as Omit<LabeledExample, (typeof activityKeys)[number]>)
      }
      const examples = examplesInTimeOrder(rows, tracker)
      for (const example of examples) kept.add(example)
      const last = examples.at(-1)
      if (last !== undefined) tracker.evictBefore(last.first_event_time)
    }
    return { examples: kept.items(), rowsRead: kept.offered }
  }).pipe(
    Effect.mapError((cause) =>
      cause instanceof TrainError
        ? cause
        : new TrainError({ reason: `reading final_aggregate failed: ${cause.message}`, cause })
    ),
    Effect.withSpan("Train.readTrainingExamples")
  )

type PromotedScore =
  | { readonly _tag: "None" }
  | { readonly _tag: "Unusable"; readonly version: string; readonly reason: string }
  | { readonly _tag: "Scored"; readonly version: string; readonly prAuc: number }

/** The promoted model's PR-AUC on the given validation examples, or why it cannot be scored. */
const scorePromotedOn = (
  pointer: Option.Option<PromotedPointer>,
  validation: ReadonlyArray<LabeledExample>
) =>
  Option.match(pointer, {
    onNone: (): Effect.Effect<PromotedScore, never, ProcessedBucket | Tensorflow> =>
      Effect.succeed({ _tag: "None" }),
    onSome: (promoted) =>
      Effect.acquireUseRelease(
        loadFraudModel(promoted.version),
        (loaded) =>
          Effect.map(
            scoreRows(loaded.model, loaded.featureSpec, validation),
            (scores): PromotedScore => ({
              _tag: "Scored",
              version: promoted.version,
              prAuc: classificationMetrics(scores, labelsOf(validation)).prAuc
            })
          ),
        (loaded) => Effect.sync(() => disposeFraudModel(loaded.model))
      ).pipe(
        Effect.catchIf(
          (error) => error.kind !== undefined,
          (error) =>
            Effect.succeed<PromotedScore>({
              _tag: "Unusable",
              version: promoted.version,
              reason: error.reason
            })
        )
      )
  })

/**
 * Trains the fraud model on the committed final_aggregate (optionally a seeded sample), saves it with its
 * model card under `models/<version>/` in the processed bucket, and promotes it when it beats the
 * promoted model on its own validation window (or nothing is promoted). The same data, options and seed
 * give the same metrics and version.
 */
export const trainFraudModel = (
  options: TrainOptions = {}
): Effect.Effect<TrainingReport, TrainError, ProcessedBucket | Parquet | Tensorflow> =>
  Effect.gen(function* () {
    const resolved = yield* resolveTrainOptions(options)
    const { backend } = yield* Tensorflow
    const store = yield* ProcessedBucket
    const { examples, rowsRead } = yield* readTrainingExamples({
      sampleSize: resolved.sampleSize,
      seed: resolved.seed
    })
    const fitted = yield* fitFraudModel(examples, resolved)
    return yield* Effect.gen(function* () {
      const version =
        options.version ??
        `v-${resolved.seed}-${createHash("sha256").update(`${fitted.dataHash}/${backend}`).digest("hex").slice(0, 16)}`
      // The default version names the data, options, seed and backend: when it exists it is this model.
      const alreadySaved = options.version === undefined && (yield* modelExists(version))
      const pointer = yield* readPromotedPointer(store)
      const window = `${fitted.dataRange.validation.from} … ${fitted.dataRange.validation.to}`
      const decision: PromotionDecision =
        options.autoPromote === false
          ? { promote: false, reason: "automatic promotion is off; promote with `recon promote <version>`" }
          : decidePromotion(
              { version, prAuc: fitted.metrics.prAuc },
              yield* scorePromotedOn(pointer, fitted.validation),
              window
            )
      const key = alreadySaved
        ? modelKeyPrefix(version)
        : yield* saveFraudModel(fitted, version, decision.reason)
      // Re-read just before moving the pointer: a promotion made meanwhile is not silently replaced.
      const pointerNow = yield* readPromotedPointer(store)
      const moved =
        Option.getOrNull(Option.map(pointerNow, (p) => p.version)) !==
        Option.getOrNull(Option.map(pointer, (p) => p.version))
      const promote = decision.promote && !moved
      if (promote) yield* writePromotedPointer(store, version, decision.reason)
      const report: TrainingReport = {
        backend,
        version,
        key,
        rows: fitted.rows,
        positives: fitted.positives,
        dataRange: fitted.dataRange,
        metrics: fitted.metrics,
        logisticMetrics: fitted.logisticMetrics,
        baselineMetrics: fitted.baselineMetrics,
        calibration: {
          brierScore: fitted.calibration.brierScore,
          expectedCalibrationError: fitted.calibration.expectedCalibrationError
        },
        positiveClassWeight: fitted.positiveClassWeight,
        finalLoss: fitted.finalLoss,
        epochs: resolved.epochs,
        samplesPerSecond: fitted.samplesPerSecond,
        rowsRead,
        saved: !alreadySaved,
        promotion: {
          promoted: promote,
          reason:
            decision.promote && moved
              ? "the promoted pointer moved while training; not promoted (train again to compare)"
              : decision.reason,
          promotedVersion: promote ? version : Option.getOrNull(Option.map(pointerNow, (p) => p.version))
        }
      }
      return report
    }).pipe(Effect.ensuring(Effect.sync(() => disposeFraudModel(fitted.model))))
  }).pipe(Effect.withSpan("Train.trainFraudModel"))

/** Moves the promoted pointer to a complete saved model (explicit promotion, e.g. `recon promote`). */
export const promoteFraudModel = (
  version: string,
  reason = "promoted by command"
): Effect.Effect<PromotedPointer, TrainError, ProcessedBucket> =>
  Effect.gen(function* () {
    if (!versionPattern.test(version)) return yield* invalid(`version ${JSON.stringify(version)} is not safe`)
    const store = yield* ProcessedBucket
    yield* readModelFile(store, modelKeyPrefix(version), modelFiles.metrics)
    return yield* writePromotedPointer(store, version, reason)
  })

/** The promoted pointer, if any model was promoted. */
export const promotedModel: Effect.Effect<
  Option.Option<PromotedPointer>,
  TrainError,
  ProcessedBucket
> = Effect.flatMap(ProcessedBucket, readPromotedPointer)

const decodeFeatureSpec = Schema.decodeUnknown(Schema.parseJson(FeatureSpec))

/** Whether `models/<version>/` holds a complete model (its metrics.json). */
const modelExists = (version: string): Effect.Effect<boolean, TrainError, ProcessedBucket> =>
  Effect.flatMap(ProcessedBucket, (store) =>
    store.get(`${modelKeyPrefix(version)}${modelFiles.metrics}`).pipe(
      Effect.map(Option.isSome),
      Effect.mapError(
        (cause) => new TrainError({ reason: `checking ${modelKeyPrefix(version)} failed`, cause })
      )
    )
  )

/** Reads `models/<version>/` back through the object store; fails when the save never completed. */
export const loadFraudModel = (
  version: string
): Effect.Effect<LoadedFraudModel, TrainError, ProcessedBucket | Tensorflow> =>
  Effect.gen(function* () {
    if (!versionPattern.test(version)) return yield* invalid(`version ${JSON.stringify(version)} is not safe`)
    const { tf } = yield* Tensorflow
    const store = yield* ProcessedBucket
    const prefix = modelKeyPrefix(version)
    yield* readModelFile(store, prefix, modelFiles.metrics)
    const specBytes = yield* readModelFile(store, prefix, modelFiles.featureSpec)
    const featureSpec = yield* decodeFeatureSpec(new TextDecoder().decode(specBytes)).pipe(
      Effect.mapError(
        (cause) =>
          new TrainError({
            reason: `${prefix}${modelFiles.featureSpec}: ${cause.message}`,
            cause,
            kind: "incompatible"
          })
      )
    )
    if (JSON.stringify(featureSpec.featureNames) !== JSON.stringify(featureNames))
      return yield* new TrainError({
        reason: `${prefix}${modelFiles.featureSpec} lists other features than this code computes`,
        kind: "incompatible"
      })
    const model = yield* loadLayersModel(tf, store, prefix)
    const loaded: LoadedFraudModel = { version, model, featureSpec }
    return loaded
  }).pipe(Effect.withSpan("Train.loadFraudModel"))

/** Fraud probabilities for facts, in order, in one predict call with the model's own feature spec. */
export const predictFacts = (
  tf: TfModule,
  model: Tf.LayersModel,
  featureSpec: FeatureSpec,
  facts: ReadonlyArray<ScoringFacts>
): Float32Array => predict(tf, model, featureMatrix(facts, featureSpec), featureSpec.featureNames.length)

/** Fraud probabilities for examples, in order, using the feature spec the model was trained with. */
export const scoreRows = (
  model: Tf.LayersModel,
  featureSpec: FeatureSpec,
  rows: ReadonlyArray<ScoringFacts>
): Effect.Effect<Float32Array, TrainError, Tensorflow> =>
  Effect.flatMap(Tensorflow, ({ tf }) =>
    Effect.try({
      try: () => predictFacts(tf, model, featureSpec, rows),
      catch: (cause) => new TrainError({ reason: "scoring failed", cause })
    })
  )
