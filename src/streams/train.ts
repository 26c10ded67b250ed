import { createHash } from "node:crypto"
import type * as Tf from "@tensorflow/tfjs"
import { Effect, Schema } from "effect"
import type { FinalAggregateRow } from "../domain/rows.js"
import { ProcessedBucket } from "../layers/ObjectStore.js"
import { Parquet } from "../layers/ParquetCodec.js"
import { Tensorflow, type TfModule } from "../layers/Tensorflow.js"
import { prefixes, readFinalAggregate } from "./datasets.js"
import { TrainError } from "./train/errors.js"
import {
  baselineScore,
  FeatureSpec,
  featureMatrix,
  fitFeatureSpec,
  splitByTime,
  type TransactionTimeFacts,
  transactionTimeColumns
} from "./train/features.js"
import { type ClassificationMetrics, classificationMetrics } from "./train/metrics.js"
import { loadLayersModel, modelFiles, readModelFile, saveLayersModel } from "./train/modelStore.js"
import { makePrng, permutation, reservoirSample } from "./train/random.js"

export { TrainError } from "./train/errors.js"
export type { FeatureSpec, TransactionTimeFacts } from "./train/features.js"
export type { AlertRateMetrics, ClassificationMetrics } from "./train/metrics.js"

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

/** A trained model in memory with what it was fitted and evaluated on. */
export interface FittedFraudModel {
  readonly model: Tf.LayersModel
  readonly featureSpec: FeatureSpec
  readonly options: ResolvedTrainOptions
  readonly rows: SplitCounts
  readonly positives: SplitCounts
  /** negatives / positives on the training split. */
  readonly positiveClassWeight: number
  readonly finalLoss: number
  /** Validation metrics of the model and of the rules baseline. */
  readonly metrics: ClassificationMetrics
  readonly baselineMetrics: ClassificationMetrics
  readonly samplesPerSecond: number
  /** Identifies the data and options: same hash, same model. */
  readonly dataHash: string
}

/** What {@link trainFraudModel} reports. */
export interface TrainingReport {
  readonly backend: string
  readonly version: string
  /** Key prefix of the saved model in the processed bucket, `models/<version>/`. */
  readonly key: string
  readonly rows: SplitCounts
  readonly positives: SplitCounts
  readonly metrics: ClassificationMetrics
  readonly baselineMetrics: ClassificationMetrics
  readonly positiveClassWeight: number
  readonly finalLoss: number
  readonly epochs: number
  readonly samplesPerSecond: number
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

/** A hash of the rows (pass them in time order), their feature columns and labels, and of the options. */
export const hashTrainingData = (
  rows: ReadonlyArray<FinalAggregateRow>,
  options: ResolvedTrainOptions
): string => {
  const hash = createHash("sha256")
  hash.update(JSON.stringify(options))
  for (const row of rows) {
    hash.update(
      JSON.stringify([
        row.transaction_id,
        ...transactionTimeColumns.map((column) => row[column]),
        row.confirmed_fraud
      ])
    )
    hash.update("\n")
  }
  return hash.digest("hex").slice(0, 16)
}

const labelsOf = (rows: ReadonlyArray<FinalAggregateRow>): Array<boolean> =>
  rows.map((row) => row.confirmed_fraud === true)

const countTrue = (labels: ReadonlyArray<boolean>): number => labels.filter(Boolean).length

const checkSplit = (name: string, labels: ReadonlyArray<boolean>): Effect.Effect<void, TrainError> => {
  const positives = countTrue(labels)
  if (positives === 0)
    return invalid(`no positives (confirmed_fraud) in the ${name} split of ${labels.length} rows`)
  if (positives === labels.length)
    return invalid(`no negatives in the ${name} split of ${labels.length} rows`)
  return Effect.void
}

const buildModel = (tf: TfModule, inputWidth: number, options: ResolvedTrainOptions): Tf.Sequential => {
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

/**
 * Fits the fraud model on rows already loaded: time-based split, features fitted on the training split,
 * a seeded dense network trained with class weighting, then the model and the rules baseline evaluated
 * on the validation split. The caller owns `model` and frees it with {@link disposeFraudModel}.
 */
export const fitFraudModel = Effect.fn("Train.fitFraudModel")(function* (
  rows: ReadonlyArray<FinalAggregateRow>,
  options: ResolvedTrainOptions
) {
  const { tf } = yield* Tensorflow
  if (rows.length < options.minRows)
    return yield* invalid(
      `too few rows: ${rows.length} final_aggregate rows, need at least ${options.minRows}`
    )
  const { train, validation } = splitByTime(rows, options.validationFraction)
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

  const model = buildModel(tf, width, options)
  const training = yield* Effect.tryPromise({
    try: async () => {
      const features = tf.tensor2d(trainMatrix, [train.length, width])
      const labels = tf.tensor2d(Float32Array.from(trainLabels, Number), [train.length, 1])
      const random = makePrng(options.seed ^ 0x5bd1e995)
      const started = performance.now()
      let finalLoss = Number.NaN
      try {
        for (let epoch = 0; epoch < options.epochs; epoch++) {
          const order = tf.tensor1d(permutation(random, train.length), "int32")
          const shuffledFeatures = tf.gather(features, order)
          const shuffledLabels = tf.gather(labels, order)
          try {
            const history = await model.fit(shuffledFeatures, shuffledLabels, {
              epochs: 1,
              batchSize: options.batchSize,
              shuffle: false,
              classWeight: { 0: 1, 1: positiveClassWeight },
              verbose: 0
            })
            finalLoss = Number(history.history["loss"]?.[0] ?? Number.NaN)
          } finally {
            tf.dispose([order, shuffledFeatures, shuffledLabels])
          }
        }
      } finally {
        tf.dispose([features, labels])
      }
      const seconds = (performance.now() - started) / 1000
      return { finalLoss, samplesPerSecond: seconds > 0 ? (train.length * options.epochs) / seconds : 0 }
    },
    catch: (cause) => new TrainError({ reason: "training failed", cause })
  }).pipe(Effect.tapError(() => Effect.sync(() => disposeFraudModel(model))))
  if (!Number.isFinite(training.finalLoss)) {
    disposeFraudModel(model)
    return yield* invalid(`training diverged: final loss ${training.finalLoss}`)
  }

  const validationScores = predict(tf, model, validationMatrix, width)
  const fitted: FittedFraudModel = {
    model,
    featureSpec,
    options,
    rows: { train: train.length, validation: validation.length },
    positives: { train: trainPositives, validation: countTrue(validationLabels) },
    positiveClassWeight,
    finalLoss: training.finalLoss,
    metrics: classificationMetrics(validationScores, validationLabels),
    baselineMetrics: classificationMetrics(
      validation.map((row) => baselineScore(row, featureSpec)),
      validationLabels
    ),
    samplesPerSecond: training.samplesPerSecond,
    dataHash: hashTrainingData([...train, ...validation], options)
  }
  return fitted
})

const encodeJson = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value, null, 2))

/**
 * Writes `models/<version>/`: model.json and weights.bin through a tfjs save handler on the object store,
 * then feature_spec.json, then metrics.json last (its presence marks a complete model).
 */
export const saveFraudModel = Effect.fn("Train.saveFraudModel")(function* (
  fitted: FittedFraudModel,
  version: string
) {
  const { tf, backend } = yield* Tensorflow
  const store = yield* ProcessedBucket
  if (!versionPattern.test(version)) return yield* invalid(`version ${JSON.stringify(version)} is not safe`)
  const prefix = modelKeyPrefix(version)
  const put = (name: string, value: unknown) =>
    store
      .put(prefix + name, encodeJson(value))
      .pipe(Effect.mapError((cause) => new TrainError({ reason: `writing ${prefix}${name} failed`, cause })))
  yield* saveLayersModel(tf, store, prefix, fitted.model)
  yield* put(modelFiles.featureSpec, fitted.featureSpec)
  yield* put(modelFiles.metrics, {
    version,
    backend,
    dataHash: fitted.dataHash,
    options: fitted.options,
    rows: fitted.rows,
    positives: fitted.positives,
    positiveClassWeight: fitted.positiveClassWeight,
    finalLoss: fitted.finalLoss,
    metrics: fitted.metrics,
    baselineMetrics: fitted.baselineMetrics
  })
  return prefix
})

/**
 * Trains the fraud model on the committed final_aggregate (optionally a seeded sample), saves it under
 * `models/<version>/` in the processed bucket and reports validation metrics beside the rules baseline.
 * The same data, options and seed give the same metrics and version.
 */
export const trainFraudModel = (
  options: TrainOptions = {}
): Effect.Effect<TrainingReport, TrainError, ProcessedBucket | Parquet | Tensorflow> =>
  Effect.gen(function* () {
    const resolved = yield* resolveTrainOptions(options)
    const { backend } = yield* Tensorflow
    const store = yield* ProcessedBucket
    const codec = yield* Parquet
    const committed = yield* readFinalAggregate(store, codec).pipe(
      Effect.mapError(
        (cause) => new TrainError({ reason: `reading final_aggregate failed: ${cause.message}`, cause })
      )
    )
    const rows =
      resolved.sampleSize !== undefined && committed.length > resolved.sampleSize
        ? reservoirSample(committed, resolved.sampleSize, resolved.seed)
        : committed
    const fitted = yield* fitFraudModel(rows, resolved)
    return yield* Effect.gen(function* () {
      const version = options.version ?? `v-${resolved.seed}-${fitted.dataHash}`
      const key = yield* saveFraudModel(fitted, version)
      const report: TrainingReport = {
        backend,
        version,
        key,
        rows: fitted.rows,
        positives: fitted.positives,
        metrics: fitted.metrics,
        baselineMetrics: fitted.baselineMetrics,
        positiveClassWeight: fitted.positiveClassWeight,
        finalLoss: fitted.finalLoss,
        epochs: resolved.epochs,
        samplesPerSecond: fitted.samplesPerSecond
      }
      return report
    }).pipe(Effect.ensuring(Effect.sync(() => disposeFraudModel(fitted.model))))
  }).pipe(Effect.withSpan("Train.trainFraudModel"))

const decodeFeatureSpec = Schema.decodeUnknown(Schema.parseJson(FeatureSpec))

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
        (cause) => new TrainError({ reason: `${prefix}${modelFiles.featureSpec}: ${cause.message}`, cause })
      )
    )
    const model = yield* loadLayersModel(tf, store, prefix)
    const loaded: LoadedFraudModel = { version, model, featureSpec }
    return loaded
  }).pipe(Effect.withSpan("Train.loadFraudModel"))

/** Fraud probabilities for rows, in row order, using the feature spec the model was trained with. */
export const scoreRows = (
  model: Tf.LayersModel,
  featureSpec: FeatureSpec,
  rows: ReadonlyArray<TransactionTimeFacts>
): Effect.Effect<Float32Array, TrainError, Tensorflow> =>
  Effect.flatMap(Tensorflow, ({ tf }) =>
    Effect.try({
      try: () => predict(tf, model, featureMatrix(rows, featureSpec), featureSpec.featureNames.length),
      catch: (cause) => new TrainError({ reason: "scoring failed", cause })
    })
  )
