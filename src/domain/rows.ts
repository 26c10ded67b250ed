import type { EpochMicros } from "./time.js"

/** Column types the system writes to Parquet; each maps to a standard Parquet type. */
export type ColumnType = "string" | "int64" | "double" | "boolean" | "timestamp" | "string_list"

/** One column of a tabular dataset. `timestamp` is UTC epoch microseconds (Parquet TIMESTAMP_MICROS). */
export interface ColumnSpec {
  readonly name: string
  readonly type: ColumnType
  readonly optional: boolean
}

/** The ordered columns of a dataset. */
export type TableSchema = ReadonlyArray<ColumnSpec>

/** A value as it sits in a row in memory: money and counts as safe integers, time as epoch micros. */
export type CellValue = string | number | boolean | null | ReadonlyArray<string>

/** A row in memory, keyed by column name. */
export type TableRow = Readonly<Record<string, CellValue>>

/** A column of a {@link TableSchema}. */
export const column = (name: string, type: ColumnType, optional = false): ColumnSpec => ({
  name,
  type,
  optional
})

/** Dimension attributes carried on index and aggregate rows; null when the key is unknown. */
export interface DimensionColumns {
  readonly user_country: string | null
  readonly user_kyc_level: string | null
  readonly user_risk_tier: string | null
  readonly user_created_at: EpochMicros | null
  readonly merchant_name: string | null
  readonly merchant_mcc: string | null
  readonly merchant_country: string | null
  readonly merchant_risk_level: string | null
}

const dimensionColumns: TableSchema = [
  column("user_country", "string", true),
  column("user_kyc_level", "string", true),
  column("user_risk_tier", "string", true),
  column("user_created_at", "timestamp", true),
  column("merchant_name", "string", true),
  column("merchant_mcc", "string", true),
  column("merchant_country", "string", true),
  column("merchant_risk_level", "string", true)
]

/** Where an indexed record came from: the stream, a raw file, or the late-data path. */
export type IngestPath = "stream" | "batch" | "late"

/** A validated transaction event in `streaming_index/`, `batch_index/` or `late/`, joined to dimensions. */
export interface IndexedTransaction extends DimensionColumns {
  readonly event_id: string
  readonly transaction_id: string
  readonly sequence: number
  readonly event_time: EpochMicros
  readonly status: string
  readonly amount_minor: number
  readonly currency: string
  readonly user_id: string
  readonly merchant_id: string
  readonly payment_method: string
  readonly card_bin: string | null
  readonly card_last4: string | null
  readonly processor: string
  readonly processor_reference: string
  readonly country: string | null
  readonly device_id: string | null
  readonly ip_address: string | null
  readonly ingest_path: IngestPath
  /** Topic/partition/offset or object key and line: enough to find the original record. */
  readonly source_location: string
  /** FNV-1a of transaction_id (see `idHashOf`): a shard's rows are those with hash mod n = i. */
  readonly transaction_id_hash: number
}

export const indexedTransactionSchema: TableSchema = [
  column("event_id", "string"),
  column("transaction_id", "string"),
  column("sequence", "int64"),
  column("event_time", "timestamp"),
  column("status", "string"),
  column("amount_minor", "int64"),
  column("currency", "string"),
  column("user_id", "string"),
  column("merchant_id", "string"),
  column("payment_method", "string"),
  column("card_bin", "string", true),
  column("card_last4", "string", true),
  column("processor", "string"),
  column("processor_reference", "string"),
  column("country", "string", true),
  column("device_id", "string", true),
  column("ip_address", "string", true),
  ...dimensionColumns,
  column("ingest_path", "string"),
  column("source_location", "string"),
  column("transaction_id_hash", "int64")
]

/** A transaction event in `streaming_index/transactions/`: an index row with its live fraud score. */
export interface ScoredTransaction extends IndexedTransaction {
  /** The promoted model's fraud probability when the row was indexed; null when no model was promoted. */
  readonly model_score: number | null
  /** The model version that scored the row; null when none did. */
  readonly model_version: string | null
}

export const scoredTransactionSchema: TableSchema = [
  ...indexedTransactionSchema,
  column("model_score", "double", true),
  column("model_version", "string", true)
]

/** A validated fraud signal in an index dataset. */
export interface IndexedFraudSignal {
  readonly signal_id: string
  readonly transaction_id: string
  readonly event_time: EpochMicros
  readonly source: string
  readonly score: number
  readonly reasons: ReadonlyArray<string>
  readonly confirmed_fraud: boolean | null
  readonly ingest_path: IngestPath
  readonly source_location: string
  /** FNV-1a of transaction_id, as on transaction index rows. */
  readonly transaction_id_hash: number
}

export const indexedFraudSignalSchema: TableSchema = [
  column("signal_id", "string"),
  column("transaction_id", "string"),
  column("event_time", "timestamp"),
  column("source", "string"),
  column("score", "double"),
  column("reasons", "string_list"),
  column("confirmed_fraud", "boolean", true),
  column("ingest_path", "string"),
  column("source_location", "string"),
  column("transaction_id_hash", "int64")
]

/** Contract §6: one row per transaction_id with its latest state, lifecycle times, fraud and dimensions. */
export interface FinalAggregateRow extends DimensionColumns {
  readonly transaction_id: string
  readonly status: string
  readonly sequence: number
  readonly amount_minor: number
  readonly currency: string
  readonly user_id: string
  readonly merchant_id: string
  readonly payment_method: string
  readonly card_bin: string | null
  readonly card_last4: string | null
  readonly processor: string
  readonly processor_reference: string
  readonly country: string | null
  readonly first_event_time: EpochMicros
  readonly last_event_time: EpochMicros
  readonly authorized_at: EpochMicros | null
  readonly captured_at: EpochMicros | null
  readonly settled_at: EpochMicros | null
  readonly refunded_at: EpochMicros | null
  readonly chargeback_at: EpochMicros | null
  readonly event_count: number
  readonly fraud_signal_count: number
  readonly fraud_max_score: number | null
  readonly fraud_reasons: ReadonlyArray<string>
  readonly confirmed_fraud: boolean
  /** Extension: amount_minor of the earliest event (by event_time, then contract order): the authorised amount. */
  readonly first_amount_minor: number
  /** Extension: currency of the earliest event. */
  readonly first_currency: string
  /** Extension: device_id of the earliest event; null when it has none. */
  readonly device_id: string | null
  /**
   * Extension: max score of the non-label signals (sources rules, model, partner, not confirmed_fraud)
   * timed at or before first_event_time, so known when the transaction happened; null when none.
   */
  readonly fraud_prior_signal_max_score: number | null
  /** The partition value, UTC date of first_event_time; stored in the path `dt=YYYY-MM-DD/`, not the file. */
  readonly dt: string
}

/** Columns of a final_aggregate Parquet file (dt comes from the partition path). */
export const finalAggregateSchema: TableSchema = [
  column("transaction_id", "string"),
  column("status", "string"),
  column("sequence", "int64"),
  column("amount_minor", "int64"),
  column("currency", "string"),
  column("user_id", "string"),
  column("merchant_id", "string"),
  column("payment_method", "string"),
  column("card_bin", "string", true),
  column("card_last4", "string", true),
  column("processor", "string"),
  column("processor_reference", "string"),
  column("country", "string", true),
  column("first_event_time", "timestamp"),
  column("last_event_time", "timestamp"),
  column("authorized_at", "timestamp", true),
  column("captured_at", "timestamp", true),
  column("settled_at", "timestamp", true),
  column("refunded_at", "timestamp", true),
  column("chargeback_at", "timestamp", true),
  column("event_count", "int64"),
  column("fraud_signal_count", "int64"),
  column("fraud_max_score", "double", true),
  column("fraud_reasons", "string_list"),
  column("confirmed_fraud", "boolean"),
  ...dimensionColumns,
  column("first_amount_minor", "int64"),
  column("first_currency", "string"),
  column("device_id", "string", true),
  column("fraud_prior_signal_max_score", "double", true)
]
