import { Clock, Effect, Either } from "effect"
import { FraudSignal, TransactionEvent } from "../domain/events.js"
import { indexedFraudSignalSchema, indexedTransactionSchema } from "../domain/rows.js"
import { getRequired, ProcessedBucket, RawBucket } from "../layers/ObjectStore.js"
import { Parquet } from "../layers/ParquetCodec.js"
import { contentTag, prefixes, publishSnapshot, writePartitioned } from "./datasets.js"
import { loadDimensions } from "./dimensions.js"
import { asTableRow, indexFraudSignal, indexTransaction, type Partitioned } from "./indexRows.js"
import { type QuarantineEntry, quarantineEntry, writeQuarantine } from "./quarantine.js"
import { decodeRawRecord, rawFileKind, readRawRecords } from "./rawRecords.js"

/** Records in = accepted + quarantined, per input dataset. */
export interface RecordCounts {
  readonly recordsIn: number
  readonly accepted: number
  readonly quarantined: number
}

/** What one batch-index run read and wrote. */
export interface BatchIndexSummary {
  readonly filesRead: number
  /** Keys under the data prefixes that are not data files (wrong extension): listed, never read. */
  readonly filesSkipped: ReadonlyArray<string>
  readonly transactions: RecordCounts
  readonly fraudSignals: RecordCounts
  readonly dimensions: RecordCounts
  readonly usersSnapshot: string | null
  readonly merchantsSnapshot: string | null
  readonly filesWritten: number
  readonly quarantineKeys: ReadonlyArray<string>
}

/** Prefixes of the batch index datasets in the processed bucket. */
export const batchIndexPrefixes = {
  transactions: `${prefixes.batchIndex}transactions/`,
  fraudSignals: `${prefixes.batchIndex}fraud_signals/`
} as const

const rawPrefixes = { transactions: "raw/transactions/", fraudSignals: "raw/fraud_signals/" } as const

const counter = () => ({ recordsIn: 0, accepted: 0, quarantined: 0 })

/**
 * The batch layer: reads every producer file under `raw/transactions/` and `raw/fraud_signals/` (JSON
 * Lines, gzip, Parquet), validates each record, joins the newest dimension snapshots and publishes
 * `batch_index/` as Parquet partitioned by the UTC date of event_time. Bad records and unreadable files go
 * to `quarantine/batch/` with their reason; the run goes on.
 */
export const runBatchIndex = Effect.gen(function* () {
  const raw = yield* RawBucket
  const processed = yield* ProcessedBucket
  const codec = yield* Parquet
  const dimensions = yield* loadDimensions(raw)
  const quarantined: Array<QuarantineEntry> = [...dimensions.quarantined]
  const transactionRows: Array<Partitioned<ReturnType<typeof indexTransaction>>> = []
  const signalRows: Array<Partitioned<ReturnType<typeof indexFraudSignal>>> = []
  const counts = { transactions: counter(), fraudSignals: counter() }
  const filesSkipped: Array<string> = []
  let filesRead = 0
  const inputFingerprint: Array<string> = []

  for (const dataset of ["transactions", "fraudSignals"] as const) {
    const datasetName = dataset === "transactions" ? "transactions" : "fraud_signals"
    const count = counts[dataset]
    for (const info of yield* raw.list(rawPrefixes[dataset])) {
      if (rawFileKind(info.key) === undefined) {
        filesSkipped.push(info.key)
        continue
      }
      filesRead++
      inputFingerprint.push(`${info.key}:${info.size}`)
      const records = yield* readRawRecords(info.key, yield* getRequired(raw, info.key))
      if (Either.isLeft(records)) {
        count.recordsIn++
        count.quarantined++
        quarantined.push(
          quarantineEntry(datasetName, info.key, [{ field: "(file)", reason: records.left.reason }], "")
        )
        continue
      }
      for (const record of records.right) {
        count.recordsIn++
        const decoded =
          dataset === "transactions"
            ? Either.map(decodeRawRecord(TransactionEvent, record), (event) =>
                transactionRows.push(indexTransaction(event, dimensions.tables, "batch", record.location))
              )
            : Either.map(decodeRawRecord(FraudSignal, record), (signal) =>
                signalRows.push(indexFraudSignal(signal, "batch", record.location))
              )
        if (Either.isLeft(decoded)) {
          count.quarantined++
          quarantined.push(
            quarantineEntry(datasetName, record.location, decoded.left.problems, decoded.left.redactedPayload)
          )
        } else {
          count.accepted++
        }
      }
    }
  }

  if (filesRead === 0) {
    yield* Effect.logWarning(`no data files under raw/transactions/ or raw/fraud_signals/ in ${raw.describe}`)
  }
  const tag = contentTag(inputFingerprint.join("\n"))
  const committedAt = new Date(yield* Clock.currentTimeMillis).toISOString()
  const transactionFiles = yield* writePartitioned(
    processed,
    codec,
    batchIndexPrefixes.transactions,
    indexedTransactionSchema,
    transactionRows.map(asTableRow),
    tag
  )
  const signalFiles = yield* writePartitioned(
    processed,
    codec,
    batchIndexPrefixes.fraudSignals,
    indexedFraudSignalSchema,
    signalRows.map(asTableRow),
    tag
  )
  yield* publishSnapshot(processed, batchIndexPrefixes.transactions, {
    dataset: "batch_index/transactions",
    version: tag,
    committed_at: committedAt,
    files: transactionFiles
  })
  yield* publishSnapshot(processed, batchIndexPrefixes.fraudSignals, {
    dataset: "batch_index/fraud_signals",
    version: tag,
    committed_at: committedAt,
    files: signalFiles
  })
  const quarantineKeys = yield* writeQuarantine(processed, "batch", tag, quarantined)
  const dimensionQuarantined = dimensions.quarantined.length
  return {
    filesRead,
    filesSkipped,
    transactions: counts.transactions,
    fraudSignals: counts.fraudSignals,
    dimensions: {
      recordsIn: dimensions.recordsIn,
      accepted: dimensions.recordsIn - dimensionQuarantined,
      quarantined: dimensionQuarantined
    },
    usersSnapshot: dimensions.usersSnapshot,
    merchantsSnapshot: dimensions.merchantsSnapshot,
    filesWritten: transactionFiles.length + signalFiles.length,
    quarantineKeys
  } satisfies BatchIndexSummary
}).pipe(Effect.withSpan("runBatchIndex"))
