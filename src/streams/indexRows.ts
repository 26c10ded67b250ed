import { idHashOf } from "../domain/buckets.js"
import type { FraudSignal, TransactionEvent } from "../domain/events.js"
import { type DimensionTables, dimensionColumnsFor } from "../domain/finalAggregate.js"
import type { IndexedFraudSignal, IndexedTransaction, IngestPath, TableRow } from "../domain/rows.js"
import { utcDate } from "../domain/time.js"

/** An index row with its partition value. */
export type Partitioned<R> = R & { readonly dt: string }

/**
 * A validated event as an index row, joined to the dimension snapshot (nulls for unknown keys). The
 * dimension columns are copied by name: spreading `dimensionColumnsFor`'s object into each row made building
 * rows 3× slower (330 vs 107 ms per 200k rows).
 */
export const indexTransaction = (
  event: TransactionEvent,
  dimensions: DimensionTables,
  ingestPath: IngestPath,
  sourceLocation: string
): Partitioned<IndexedTransaction> => {
  const joined = dimensionColumnsFor(dimensions, event.user_id, event.merchant_id)
  return {
    event_id: event.event_id,
    transaction_id: event.transaction_id,
    sequence: event.sequence,
    event_time: event.event_time,
    status: event.status,
    amount_minor: event.amount_minor,
    currency: event.currency,
    user_id: event.user_id,
    merchant_id: event.merchant_id,
    payment_method: event.payment_method,
    card_bin: event.card_bin ?? null,
    card_last4: event.card_last4 ?? null,
    processor: event.processor,
    processor_reference: event.processor_reference,
    country: event.country ?? null,
    device_id: event.device_id ?? null,
    ip_address: event.ip_address ?? null,
    user_country: joined.user_country,
    user_kyc_level: joined.user_kyc_level,
    user_risk_tier: joined.user_risk_tier,
    user_created_at: joined.user_created_at,
    merchant_name: joined.merchant_name,
    merchant_mcc: joined.merchant_mcc,
    merchant_country: joined.merchant_country,
    merchant_risk_level: joined.merchant_risk_level,
    ingest_path: ingestPath,
    source_location: sourceLocation,
    transaction_id_hash: idHashOf(event.transaction_id),
    dt: utcDate(event.event_time)
  }
}

/** A validated fraud signal as an index row. */
export const indexFraudSignal = (
  signal: FraudSignal,
  ingestPath: IngestPath,
  sourceLocation: string
): Partitioned<IndexedFraudSignal> => ({
  signal_id: signal.signal_id,
  transaction_id: signal.transaction_id,
  event_time: signal.event_time,
  source: signal.source,
  score: signal.score,
  reasons: signal.reasons,
  confirmed_fraud: signal.confirmed_fraud ?? null,
  ingest_path: ingestPath,
  source_location: sourceLocation,
  transaction_id_hash: idHashOf(signal.transaction_id),
  dt: utcDate(signal.event_time)
})

/** Index rows are table rows: every field is a cell value. */
export const asTableRow = <R extends object>(row: R): TableRow & { readonly dt: string } =>
  row as unknown as TableRow & { readonly dt: string }
