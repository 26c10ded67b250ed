import type { Merchant, User } from "./events.js"
import { compareCodePoints } from "./order.js"
import type { DimensionColumns, FinalAggregateRow, IndexedFraudSignal, IndexedTransaction } from "./rows.js"
import { type EpochMicros, utcDate } from "./time.js"

/** The index columns of a transaction event the final aggregate reads; the rest of a row is not decoded. */
export const transactionEventFactColumns = [
  "event_id",
  "transaction_id",
  "sequence",
  "event_time",
  "status",
  "amount_minor",
  "currency",
  "user_id",
  "merchant_id",
  "payment_method",
  "card_bin",
  "card_last4",
  "processor",
  "processor_reference",
  "country",
  "device_id"
] as const satisfies ReadonlyArray<keyof IndexedTransaction>

/** The fields of a transaction event the final aggregate reads. */
export type TransactionEventFacts = Pick<IndexedTransaction, (typeof transactionEventFactColumns)[number]>

/** The index columns of a fraud signal the final aggregate reads. */
export const fraudSignalFactColumns = [
  "signal_id",
  "transaction_id",
  "event_time",
  "source",
  "score",
  "reasons",
  "confirmed_fraud"
] as const satisfies ReadonlyArray<keyof IndexedFraudSignal>

/** The fields of a fraud signal the final aggregate reads. */
export type FraudSignalFacts = Pick<IndexedFraudSignal, (typeof fraudSignalFactColumns)[number]>

/** The newest users and merchants snapshots, by id. */
export interface DimensionTables {
  readonly users: ReadonlyMap<string, User>
  readonly merchants: ReadonlyMap<string, Merchant>
}

/** Contract §6 order of a transaction's events: (sequence, event_time, event_id); the last is the latest state. */
export const compareEvents = (left: TransactionEventFacts, right: TransactionEventFacts): number =>
  left.sequence - right.sequence ||
  left.event_time - right.event_time ||
  compareCodePoints(left.event_id, right.event_id)

/**
 * Content fields that break a tie between two copies of one event_id with equal (sequence, event_time),
 * compared in this order, strings by code point, an absent value lowest. SQL engines order the same way
 * (`… DESC NULLS LAST`), so the SQL final aggregate keeps the same copy.
 */
export const duplicateTieBreakFields = [
  "status",
  "amount_minor",
  "currency",
  "user_id",
  "merchant_id",
  "payment_method",
  "card_bin",
  "card_last4",
  "processor",
  "processor_reference",
  "country",
  "device_id"
] as const satisfies ReadonlyArray<keyof TransactionEventFacts>

const compareContent = (left: TransactionEventFacts, right: TransactionEventFacts): number => {
  for (const field of duplicateTieBreakFields) {
    const a = left[field] ?? null
    const b = right[field] ?? null
    if (a === b) continue
    if (a === null) return -1
    if (b === null) return 1
    return typeof a === "number" && typeof b === "number" ? a - b : compareCodePoints(String(a), String(b))
  }
  return 0
}

/**
 * Two records with one event_id are one event. When a replay differs in content, the copy kept is the
 * greatest by the contract order and then by {@link duplicateTieBreakFields}, so the choice never
 * depends on arrival order.
 */
export const preferDuplicate = <E extends TransactionEventFacts>(kept: E, candidate: E): E => {
  const order = compareEvents(candidate, kept) || compareContent(candidate, kept)
  return order > 0 ? candidate : kept
}

/** The fraud roll-up of one transaction (contract §6). */
export interface FraudRollup {
  readonly signalIds: Set<string>
  readonly reasons: Set<string>
  maxScore: number | null
  confirmed: boolean
  /** (event_time, score) of the non-label signals: sources rules, model, partner without confirmed_fraud. */
  readonly screening: Array<readonly [EpochMicros, number]>
}

/** Signal sources that are evidence, not the fraud label (chargeback and manual_review confirm fraud). */
export const screeningSources: ReadonlyArray<string> = ["rules", "model", "partner"]

/** Whether a signal is screening evidence a model may use: a non-label source and not a confirmation. */
export const isScreeningSignal = (signal: Pick<FraudSignalFacts, "source" | "confirmed_fraud">): boolean =>
  screeningSources.includes(signal.source) && signal.confirmed_fraud !== true

/** Max score of the screening signals timed at or before `transactionTime`; null when there are none. */
export const priorScreeningMaxScore = (
  screening: ReadonlyArray<readonly [EpochMicros, number]>,
  transactionTime: EpochMicros
): number | null => {
  let max: number | null = null
  for (const [time, score] of screening)
    if (time <= transactionTime && (max === null || score > max)) max = score
  return max
}

/**
 * Accumulates the events and signals of one transaction. Events are deduplicated by event_id. Signals
 * are counted by distinct signal_id; score, reasons and the confirmed label are folded over every copy
 * (max, union, any), so a replayed signal whose copies differ never loses a confirmed label.
 */
export class TransactionAccumulator {
  readonly events = new Map<string, TransactionEventFacts>()
  readonly fraud: FraudRollup = {
    signalIds: new Set(),
    reasons: new Set(),
    maxScore: null,
    confirmed: false,
    screening: []
  }

  addEvent(event: TransactionEventFacts): void {
    const kept = this.events.get(event.event_id)
    this.events.set(event.event_id, kept === undefined ? event : preferDuplicate(kept, event))
  }

  addSignal(signal: FraudSignalFacts): void {
    this.fraud.signalIds.add(signal.signal_id)
    for (const reason of signal.reasons) this.fraud.reasons.add(reason)
    if (this.fraud.maxScore === null || signal.score > this.fraud.maxScore) this.fraud.maxScore = signal.score
    if (signal.confirmed_fraud === true) this.fraud.confirmed = true
    if (isScreeningSignal(signal)) this.fraud.screening.push([signal.event_time, signal.score])
  }
}

const earliestWithStatus = (
  events: ReadonlyArray<TransactionEventFacts>,
  statuses: ReadonlyArray<string>
): EpochMicros | null => {
  let earliest: EpochMicros | null = null
  for (const event of events) {
    if (statuses.includes(event.status) && (earliest === null || event.event_time < earliest)) {
      earliest = event.event_time
    }
  }
  return earliest
}

/** Dimension columns for a user and merchant id; nulls where the id is not in the snapshot. */
export const dimensionColumnsFor = (
  dimensions: DimensionTables,
  userId: string,
  merchantId: string
): DimensionColumns => {
  const user = dimensions.users.get(userId)
  const merchant = dimensions.merchants.get(merchantId)
  return {
    user_country: user?.country ?? null,
    user_kyc_level: user?.kyc_level ?? null,
    user_risk_tier: user?.risk_tier ?? null,
    user_created_at: user?.created_at ?? null,
    merchant_name: merchant?.name ?? null,
    merchant_mcc: merchant?.mcc ?? null,
    merchant_country: merchant?.country ?? null,
    merchant_risk_level: merchant?.risk_level ?? null
  }
}

/**
 * Contract §6 for one transaction: the latest state, lifecycle timestamps, counts, fraud roll-up,
 * dimensions and the `dt` partition. Undefined when the transaction has no event (signals only).
 */
export const finalRowOf = (
  transactionId: string,
  accumulator: TransactionAccumulator,
  dimensions: DimensionTables
): FinalAggregateRow | undefined => {
  const events = [...accumulator.events.values()]
  if (events.length === 0) return undefined
  let latest = events[0]!
  let earliest = latest
  let last = latest.event_time
  for (const event of events) {
    if (compareEvents(event, latest) > 0) latest = event
    if (
      event.event_time < earliest.event_time ||
      (event.event_time === earliest.event_time && compareEvents(event, earliest) < 0)
    )
      earliest = event
    if (event.event_time > last) last = event.event_time
  }
  const first = earliest.event_time
  const fraud = accumulator.fraud
  return {
    transaction_id: transactionId,
    status: latest.status,
    sequence: latest.sequence,
    amount_minor: latest.amount_minor,
    currency: latest.currency,
    user_id: latest.user_id,
    merchant_id: latest.merchant_id,
    payment_method: latest.payment_method,
    card_bin: latest.card_bin,
    card_last4: latest.card_last4,
    processor: latest.processor,
    processor_reference: latest.processor_reference,
    country: latest.country,
    first_event_time: first,
    last_event_time: last,
    authorized_at: earliestWithStatus(events, ["authorized"]),
    captured_at: earliestWithStatus(events, ["captured"]),
    settled_at: earliestWithStatus(events, ["settled"]),
    refunded_at: earliestWithStatus(events, ["refunded", "partially_refunded"]),
    chargeback_at: earliestWithStatus(events, ["chargeback"]),
    event_count: events.length,
    fraud_signal_count: fraud.signalIds.size,
    fraud_max_score: fraud.maxScore,
    fraud_reasons: [...fraud.reasons].sort(compareCodePoints),
    confirmed_fraud: fraud.confirmed,
    ...dimensionColumnsFor(dimensions, latest.user_id, latest.merchant_id),
    first_amount_minor: earliest.amount_minor,
    first_currency: earliest.currency,
    device_id: earliest.device_id,
    fraud_prior_signal_max_score: priorScreeningMaxScore(fraud.screening, first),
    dt: utcDate(first)
  }
}

/**
 * Contract §6 over whole inputs: one row per transaction_id that has at least one event, sorted by
 * (dt, transaction_id). Signals for unknown transactions (orphans) make no row.
 */
export const buildFinalAggregate = (
  events: Iterable<TransactionEventFacts>,
  signals: Iterable<FraudSignalFacts>,
  dimensions: DimensionTables
): Array<FinalAggregateRow> => {
  const byTransaction = new Map<string, TransactionAccumulator>()
  const accumulatorFor = (transactionId: string) => {
    let accumulator = byTransaction.get(transactionId)
    if (accumulator === undefined) {
      accumulator = new TransactionAccumulator()
      byTransaction.set(transactionId, accumulator)
    }
    return accumulator
  }
  for (const event of events) accumulatorFor(event.transaction_id).addEvent(event)
  for (const signal of signals) byTransaction.get(signal.transaction_id)?.addSignal(signal)
  const rows: Array<FinalAggregateRow> = []
  for (const [transactionId, accumulator] of byTransaction) {
    const row = finalRowOf(transactionId, accumulator, dimensions)
    if (row !== undefined) rows.push(row)
  }
  return rows.sort(
    (a, b) => compareCodePoints(a.dt, b.dt) || compareCodePoints(a.transaction_id, b.transaction_id)
  )
}
