import type { FraudSignal, TransactionEvent } from "../domain/events.js"
import type { TableSchema } from "../domain/rows.js"
import { utcDate } from "../domain/time.js"

/** A fraud signal matched to its transaction by the stream, in whichever order the two arrived. */
export interface SignalJoinRow {
  readonly signal_id: string
  readonly transaction_id: string
  readonly signal_event_time: number
  readonly transaction_event_time: number
  readonly merchant_id: string
  readonly user_id: string
  readonly amount_minor: number
  readonly currency: string
  readonly score: number
  /** `signal_after_transaction` or `transaction_after_signal`. */
  readonly arrival_order: string
  readonly dt: string
}

export const signalJoinSchema: TableSchema = [
  { name: "signal_id", type: "string", optional: false },
  { name: "transaction_id", type: "string", optional: false },
  { name: "signal_event_time", type: "timestamp", optional: false },
  { name: "transaction_event_time", type: "timestamp", optional: false },
  { name: "merchant_id", type: "string", optional: false },
  { name: "user_id", type: "string", optional: false },
  { name: "amount_minor", type: "int64", optional: false },
  { name: "currency", type: "string", optional: false },
  { name: "score", type: "double", optional: false },
  { name: "arrival_order", type: "string", optional: false }
]

/** What a join returns when nothing joined: shared, as most events join nothing. */
const noRows: ReadonlyArray<SignalJoinRow> = Object.freeze([])

interface WaitingSignal {
  readonly signal: FraudSignal
}

/**
 * The stream-side join of fraud signals to transactions within a window, whichever arrives first. A
 * signal whose transaction was seen joins at once; otherwise it waits, and joins when the transaction's
 * first event arrives. Join rows are emitted at once (nothing is held back across a commit, so a crash
 * loses no row); state older than the watermark minus the window is evicted, so memory stays bounded.
 */
export class SignalJoinWindow {
  private readonly transactions = new Map<string, TransactionEvent>()
  private readonly waiting = new Map<string, Array<WaitingSignal>>()

  constructor(private readonly windowMicros: number) {}

  get size(): number {
    return this.transactions.size + this.waiting.size
  }

  /** Records a transaction event; returns join rows for signals that were waiting for it. */
  addTransaction(event: TransactionEvent): ReadonlyArray<SignalJoinRow> {
    if (!this.transactions.has(event.transaction_id)) this.transactions.set(event.transaction_id, event)
    const waiting = this.waiting.get(event.transaction_id)
    if (waiting === undefined) return noRows
    this.waiting.delete(event.transaction_id)
    return waiting.map(({ signal }) => joinRow(signal, event, "transaction_after_signal"))
  }

  /** Records a signal; returns its join row when the transaction is already known. */
  addSignal(signal: FraudSignal): ReadonlyArray<SignalJoinRow> {
    const transaction = this.transactions.get(signal.transaction_id)
    if (transaction !== undefined) return [joinRow(signal, transaction, "signal_after_transaction")]
    const list = this.waiting.get(signal.transaction_id) ?? []
    list.push({ signal })
    this.waiting.set(signal.transaction_id, list)
    return noRows
  }

  /** Forgets transactions and waiting signals older than the watermark minus the window. */
  evict(watermark: number): void {
    const horizon = watermark - this.windowMicros
    for (const [id, event] of this.transactions) if (event.event_time < horizon) this.transactions.delete(id)
    for (const [id, list] of this.waiting) {
      const kept = list.filter(({ signal }) => signal.event_time >= horizon)
      if (kept.length === 0) this.waiting.delete(id)
      else this.waiting.set(id, kept)
    }
  }
}

const joinRow = (
  signal: FraudSignal,
  transaction: TransactionEvent,
  arrivalOrder: "signal_after_transaction" | "transaction_after_signal"
): SignalJoinRow => ({
  signal_id: signal.signal_id,
  transaction_id: signal.transaction_id,
  signal_event_time: signal.event_time,
  transaction_event_time: transaction.event_time,
  merchant_id: transaction.merchant_id,
  user_id: transaction.user_id,
  amount_minor: transaction.amount_minor,
  currency: transaction.currency,
  score: signal.score,
  arrival_order: arrivalOrder,
  dt: utcDate(signal.event_time)
})
