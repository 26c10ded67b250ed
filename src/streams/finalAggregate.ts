import { Clock, Effect, Option } from "effect"
import {
  buildFinalAggregate,
  type FraudSignalFacts,
  type TransactionEventFacts
} from "../domain/finalAggregate.js"
import { finalAggregateSchema, type TableRow } from "../domain/rows.js"
import { ProcessedBucket, RawBucket } from "../layers/ObjectStore.js"
import { Parquet } from "../layers/ParquetCodec.js"
import { batchIndexPrefixes } from "./batchIndex.js"
import {
  contentTag,
  prefixes,
  publishSnapshot,
  readCommittedFile,
  readManifest,
  writePartitioned
} from "./datasets.js"
import { loadDimensions } from "./dimensions.js"
import { readCommittedBatches } from "./streamingIndex.js"

/** What one final-aggregate run read and published. */
export interface FinalAggregateSummary {
  readonly version: string
  readonly transactionEventsRead: number
  readonly fraudSignalsRead: number
  readonly streamingBatches: number
  readonly rows: number
  readonly partitions: number
  readonly filesWritten: number
  readonly staleFilesRemoved: number
}

/**
 * The final aggregator: merges the committed `batch_index/`, the committed micro-batches of
 * `streaming_index/` and `late/`, and the newest dimension snapshots into `final_aggregate/`, one row per
 * transaction_id (contract §6), partitioned by the UTC date of its earliest event. The file names derive
 * from the inputs, so re-running on the same inputs rewrites the same snapshot.
 */
export const runFinalAggregate = Effect.gen(function* () {
  const raw = yield* RawBucket
  const processed = yield* ProcessedBucket
  const codec = yield* Parquet
  const dimensions = yield* loadDimensions(raw)

  const transactionKeys: Array<string> = []
  const signalKeys: Array<string> = []
  const inputVersions: Array<string> = [
    `users:${dimensions.usersSnapshot}`,
    `merchants:${dimensions.merchantsSnapshot}`
  ]
  for (const [prefix, keys] of [
    [batchIndexPrefixes.transactions, transactionKeys],
    [batchIndexPrefixes.fraudSignals, signalKeys]
  ] as const) {
    const manifest = yield* readManifest(processed, prefix)
    if (Option.isSome(manifest)) {
      keys.push(...manifest.value.files.map((file) => file.key))
      inputVersions.push(`${prefix}:${manifest.value.version}`)
    }
  }
  const batches = yield* readCommittedBatches(processed)
  for (const batch of batches) {
    inputVersions.push(`stream:${batch.batch_id}`)
    for (const file of batch.files) {
      if (file.dataset === "transactions" || file.dataset === "late_transactions")
        transactionKeys.push(file.key)
      if (file.dataset === "fraud_signals" || file.dataset === "late_fraud_signals") signalKeys.push(file.key)
    }
  }

  const events: Array<TransactionEventFacts> = []
  for (const key of transactionKeys) {
    const rows = yield* readCommittedFile(processed, codec, "transaction index", key)
    for (const row of rows) events.push(row as TableRow as unknown as TransactionEventFacts)
  }
  const signals: Array<FraudSignalFacts> = []
  for (const key of signalKeys) {
    const rows = yield* readCommittedFile(processed, codec, "fraud signal index", key)
    for (const row of rows) signals.push(row as TableRow as unknown as FraudSignalFacts)
  }

  const rows = buildFinalAggregate(events, signals, dimensions.tables)
  const version = contentTag(inputVersions.sort().join("\n"))
  const files = yield* writePartitioned(
    processed,
    codec,
    prefixes.finalAggregate,
    finalAggregateSchema,
    rows as unknown as ReadonlyArray<TableRow & { readonly dt: string }>,
    version
  )
  const { removed } = yield* publishSnapshot(processed, prefixes.finalAggregate, {
    dataset: "final_aggregate",
    version,
    committed_at: new Date(yield* Clock.currentTimeMillis).toISOString(),
    files
  })
  return {
    version,
    transactionEventsRead: events.length,
    fraudSignalsRead: signals.length,
    streamingBatches: batches.length,
    rows: rows.length,
    partitions: new Set(files.map((file) => file.dt)).size,
    filesWritten: files.length,
    staleFilesRemoved: removed
  } satisfies FinalAggregateSummary
}).pipe(Effect.withSpan("runFinalAggregate"))
