import { Schema } from "effect"
import { currencyExponent } from "../../domain/currency.js"
import { kycLevels, paymentMethods, riskLevels } from "../../domain/events.js"
import { compareCodePoints } from "../../domain/order.js"
import type { FinalAggregateRow } from "../../domain/rows.js"
import { ActivityTracker, type PastActivity } from "./activity.js"

/**
 * The only final_aggregate columns the features read: facts known when the transaction happens.
 * Outcome columns (status, settled_at, refunded_at, chargeback_at, fraud_signal_count, fraud_max_score,
 * fraud_reasons, confirmed_fraud) are the label or leak it, and the latest state's amount can be a
 * refund's, so they are left out by type: the amount and device are the earliest event's; the one signal
 * column kept, fraud_prior_signal_max_score, only counts non-label signals timed before the transaction.
 * Dimension columns come from the newest snapshot, not the one in force at the time (documented).
 */
export const transactionTimeColumns = [
  "first_amount_minor",
  "first_currency",
  "merchant_id",
  "payment_method",
  "card_bin",
  "country",
  "first_event_time",
  "user_country",
  "user_kyc_level",
  "user_risk_tier",
  "user_created_at",
  "merchant_mcc",
  "merchant_risk_level",
  "user_id",
  "device_id",
  "fraud_prior_signal_max_score"
] as const satisfies ReadonlyArray<keyof FinalAggregateRow>

/** The part of a final_aggregate row features may use. */
export type TransactionTimeFacts = Pick<FinalAggregateRow, (typeof transactionTimeColumns)[number]>

/** What the model scores: the transaction's own facts and its past activity. */
export type ScoringFacts = TransactionTimeFacts & PastActivity

/** A training or validation example: scoring facts, the id and the label. */
export type LabeledExample = ScoringFacts & Pick<FinalAggregateRow, "transaction_id" | "confirmed_fraud">

/** The columns a training run reads from final_aggregate. */
export const exampleColumns: ReadonlyArray<keyof FinalAggregateRow> = [
  "transaction_id",
  ...transactionTimeColumns,
  "confirmed_fraud"
]

/** Merchant category codes treated as risky: gambling, direct marketing, quasi-cash, money transfer. */
export const riskyMccs: ReadonlyArray<string> = ["7995", "5967", "6051", "4829"]

const microsPerDay = 86_400_000_000
const millisPerDay = 86_400_000
const maxTenureDays = 3650
const newUserDays = 30
const minMerchantRows = 5
const maxAbsMerchantZ = 10

/** Mean and standard deviation of log1p(major amount) over training rows. */
export const AmountStats = Schema.Struct({ count: Schema.Number, mean: Schema.Number, std: Schema.Number })
export type AmountStats = typeof AmountStats.Type

/** Everything needed to turn a row into the model's input, fitted on the training split only. */
export const FeatureSpec = Schema.Struct({
  formatVersion: Schema.Literal(2),
  featureNames: Schema.Array(Schema.String),
  /** Per feature; mean 0 and std 1 for features left as they are (one-hots, flags, sin/cos). */
  standardization: Schema.Struct({ mean: Schema.Array(Schema.Number), std: Schema.Array(Schema.Number) }),
  merchantAmountStats: Schema.Record({ key: Schema.String, value: AmountStats }),
  globalAmountStats: AmountStats,
  /** Merchants with fewer training rows than this use the global amount statistics. */
  minMerchantRows: Schema.Number,
  maxTenureDays: Schema.Number,
  riskyMccs: Schema.Array(Schema.String),
  /** 95th percentile of training log amounts: "high amount" for the rules baseline. */
  highAmountLogThreshold: Schema.Number
})
export type FeatureSpec = typeof FeatureSpec.Type

const oneHotNames = (prefix: string, values: ReadonlyArray<string>, withUnknown: boolean) => [
  ...values.map((value) => `${prefix}_${value}`),
  ...(withUnknown ? [`${prefix}_unknown`] : [])
]

/** Feature names in vector order. */
export const featureNames: ReadonlyArray<string> = [
  "log_amount",
  "amount_merchant_z",
  "hour_sin",
  "hour_cos",
  ...oneHotNames("payment_method", paymentMethods, false),
  ...oneHotNames("merchant_risk", riskLevels, true),
  "risky_mcc",
  ...oneHotNames("user_kyc", kycLevels, true),
  ...oneHotNames("user_risk_tier", riskLevels, true),
  "user_tenure_log_days",
  "user_tenure_unknown",
  "country_mismatch",
  "card_bin_present",
  "user_txn_1h_log",
  "user_txn_24h_log",
  "device_txn_24h_log",
  "device_missing",
  "device_known_for_user",
  "prior_signal_score",
  "prior_signal_present"
]

const standardizedFeatures = new Set([
  "log_amount",
  "amount_merchant_z",
  "user_tenure_log_days",
  "user_txn_1h_log",
  "user_txn_24h_log",
  "device_txn_24h_log"
])

/** log1p of the amount in major units of its currency (JPY 0, USD 2, KWD 3 minor digits). */
export const logMajorAmount = (amountMinor: number, currency: string): number =>
  Math.log1p(Math.max(0, amountMinor) / 10 ** currencyExponent(currency))

const oneHot = (value: string | null, values: ReadonlyArray<string>, withUnknown: boolean): Array<number> => {
  const position = value === null ? -1 : values.indexOf(value)
  const encoded = values.map((_, index) => (index === position ? 1 : 0))
  return withUnknown ? [...encoded, position < 0 ? 1 : 0] : encoded
}

const merchantStats = (spec: Pick<FeatureSpec, "merchantAmountStats" | "globalAmountStats">, id: string) =>
  Object.hasOwn(spec.merchantAmountStats, id)
    ? (spec.merchantAmountStats[id] ?? spec.globalAmountStats)
    : spec.globalAmountStats

const merchantZ = (
  spec: Pick<FeatureSpec, "merchantAmountStats" | "globalAmountStats">,
  row: TransactionTimeFacts
): number => {
  const stats = merchantStats(spec, row.merchant_id)
  const z = (logMajorAmount(row.first_amount_minor, row.first_currency) - stats.mean) / stats.std
  return Math.max(-maxAbsMerchantZ, Math.min(maxAbsMerchantZ, z))
}

/** Days from the user's creation to the transaction, clipped to [0, maxTenureDays]; null when unknown. */
const tenureDays = (row: TransactionTimeFacts, maxDays: number): number | null =>
  row.user_created_at === null
    ? null
    : Math.max(0, Math.min(maxDays, (row.first_event_time - row.user_created_at) / microsPerDay))

/** Features before standardisation, in {@link featureNames} order. */
export const rawFeatures = (
  row: ScoringFacts,
  spec: Pick<FeatureSpec, "merchantAmountStats" | "globalAmountStats" | "maxTenureDays">
): Array<number> => {
  const millisOfDay =
    (((Math.floor(row.first_event_time / 1000) % millisPerDay) + millisPerDay) % millisPerDay) / millisPerDay
  const angle = 2 * Math.PI * millisOfDay
  const tenure = tenureDays(row, spec.maxTenureDays)
  return [
    logMajorAmount(row.first_amount_minor, row.first_currency),
    merchantZ(spec, row),
    Math.sin(angle),
    Math.cos(angle),
    ...oneHot(row.payment_method, paymentMethods, false),
    ...oneHot(row.merchant_risk_level, riskLevels, true),
    row.merchant_mcc !== null && riskyMccs.includes(row.merchant_mcc) ? 1 : 0,
    ...oneHot(row.user_kyc_level, kycLevels, true),
    ...oneHot(row.user_risk_tier, riskLevels, true),
    tenure === null ? 0 : Math.log1p(tenure),
    tenure === null ? 1 : 0,
    row.country !== null && row.user_country !== null && row.country !== row.user_country ? 1 : 0,
    row.card_bin !== null && row.card_bin !== "" ? 1 : 0,
    Math.log1p(row.user_txn_1h),
    Math.log1p(row.user_txn_24h),
    Math.log1p(row.device_txn_24h),
    row.device_id === null ? 1 : 0,
    row.device_known_for_user ? 1 : 0,
    row.fraud_prior_signal_max_score ?? 0,
    row.fraud_prior_signal_max_score === null ? 0 : 1
  ]
}

/** Mean and population standard deviation; `fallbackStd` when the values (nearly) do not vary. */
const meanAndStd = (values: ReadonlyArray<number>, fallbackStd = 1): { mean: number; std: number } => {
  if (values.length === 0) return { mean: 0, std: fallbackStd }
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length
  const variance = values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / values.length
  const std = Math.sqrt(variance)
  return { mean, std: std > 1e-9 ? std : fallbackStd }
}

const quantile = (values: ReadonlyArray<number>, q: number): number => {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))] as number
}

/** Fits merchant amount statistics, standardisation and baseline thresholds on the training rows. */
export const fitFeatureSpec = (trainRows: ReadonlyArray<ScoringFacts>): FeatureSpec => {
  const logAmounts = trainRows.map((row) => logMajorAmount(row.first_amount_minor, row.first_currency))
  const global = { count: trainRows.length, ...meanAndStd(logAmounts) }
  const byMerchant = new Map<string, Array<number>>()
  trainRows.forEach((row, index) => {
    const amounts = byMerchant.get(row.merchant_id) ?? []
    amounts.push(logAmounts[index] as number)
    byMerchant.set(row.merchant_id, amounts)
  })
  const merchantAmountStats = Object.fromEntries(
    [...byMerchant.entries()]
      .filter(([, amounts]) => amounts.length >= minMerchantRows)
      .sort(([a], [b]) => compareCodePoints(a, b))
      .map(([id, amounts]): [string, AmountStats] => {
        return [id, { count: amounts.length, ...meanAndStd(amounts, global.std) }]
      })
  )
  const partial = { merchantAmountStats, globalAmountStats: global, maxTenureDays }
  const raw = trainRows.map((row) => rawFeatures(row, partial))
  const columns = featureNames.map((name, column) =>
    standardizedFeatures.has(name)
      ? meanAndStd(raw.map((vector) => vector[column] as number))
      : { mean: 0, std: 1 }
  )
  return {
    formatVersion: 2,
    featureNames,
    standardization: { mean: columns.map((c) => c.mean), std: columns.map((c) => c.std) },
    merchantAmountStats,
    globalAmountStats: global,
    minMerchantRows,
    maxTenureDays,
    riskyMccs,
    highAmountLogThreshold: quantile(logAmounts, 0.95)
  }
}

/** The standardised model input for one row. */
export const featureVector = (row: ScoringFacts, spec: FeatureSpec): Float32Array => {
  const raw = rawFeatures(row, spec)
  return Float32Array.from(
    raw,
    (value, index) =>
      (value - (spec.standardization.mean[index] ?? 0)) / (spec.standardization.std[index] ?? 1)
  )
}

/** Row-major n × d matrix of {@link featureVector}s. */
export const featureMatrix = (rows: ReadonlyArray<ScoringFacts>, spec: FeatureSpec): Float32Array => {
  const width = spec.featureNames.length
  const matrix = new Float32Array(rows.length * width)
  rows.forEach((row, index) => {
    matrix.set(featureVector(row, spec), index * width)
  })
  return matrix
}

/**
 * The rules baseline: one point each for a risky MCC, a high amount (training p95 or merchant z ≥ 2)
 * and a user younger than 30 days; plus 1 for a high-risk merchant and 0.5 for a medium-risk one.
 */
export const baselineScore = (row: TransactionTimeFacts, spec: FeatureSpec): number => {
  const tenure = tenureDays(row, spec.maxTenureDays)
  const highAmount =
    logMajorAmount(row.first_amount_minor, row.first_currency) >= spec.highAmountLogThreshold ||
    merchantZ(spec, row) >= 2
  return (
    (row.merchant_mcc !== null && spec.riskyMccs.includes(row.merchant_mcc) ? 1 : 0) +
    (highAmount ? 1 : 0) +
    (tenure !== null && tenure < newUserDays ? 1 : 0) +
    (row.merchant_risk_level === "high" ? 1 : row.merchant_risk_level === "medium" ? 0.5 : 0)
  )
}

/** Rows with their time-of-transaction order: by first_event_time, then transaction_id. */
export const sortByTime = <R extends Pick<FinalAggregateRow, "first_event_time" | "transaction_id">>(
  rows: ReadonlyArray<R>
): Array<R> =>
  [...rows].sort(
    (a, b) => a.first_event_time - b.first_event_time || compareCodePoints(a.transaction_id, b.transaction_id)
  )

/** Time-based split: the oldest rows train, the newest `validationFraction` validate. */
export const splitByTime = <R extends Pick<FinalAggregateRow, "first_event_time" | "transaction_id">>(
  rows: ReadonlyArray<R>,
  validationFraction: number
): { readonly train: Array<R>; readonly validation: Array<R> } => {
  const sorted = sortByTime(rows)
  const trainCount = Math.floor(sorted.length * (1 - validationFraction))
  return { train: sorted.slice(0, trainCount), validation: sorted.slice(trainCount) }
}

/**
 * Examples in time order, each with the past activity of its user and device computed from the rows
 * before it. `tracker` carries activity across calls (one per dt partition, in dt order).
 */
export const examplesInTimeOrder = <R extends Omit<LabeledExample, keyof PastActivity>>(
  rows: ReadonlyArray<R>,
  tracker: ActivityTracker = new ActivityTracker()
): Array<R & PastActivity> => sortByTime(rows).map((row) => ({ ...row, ...tracker.observe(row) }))
