import { Clock, Effect, Either, Option, Schema } from "effect"
import { assignFilesToShards, type Shard, shardProblem } from "../domain/buckets.js"
import { DatasetError } from "../domain/errors.js"
import { FraudSignal, TransactionEvent } from "../domain/events.js"
import { compareCodePoints } from "../domain/order.js"
import type { TableRow } from "../domain/rows.js"
import { indexedFraudSignalSchema, indexedTransactionSchema } from "../domain/rows.js"
import { getRequired, ProcessedBucket, RawBucket } from "../layers/ObjectStore.js"
import { Parquet } from "../layers/ParquetCodec.js"
import {
  clearShardManifests,
  contentTag,
  ManifestFile,
  prefixes,
  publishSnapshot,
  recordShardDone,
  writePartitioned
} from "./datasets.js"
import { loadDimensions } from "./dimensions.js"
import { asTableRow, indexFraudSignal, indexTransaction } from "./indexRows.js"
import { makeProgress } from "./progress.js"
import { type QuarantineEntry, quarantineEntry, writeQuarantine } from "./quarantine.js"
import { decodeRawRecord, isHiddenPath, rawFileKind, readRawRecords } from "./rawRecords.js"

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
  /** This worker's share of the raw files (0/1: all of them). */
  readonly shard: Shard
  /** Whether this run published the batch index (a shard publishes once every shard of the input is done). */
  readonly published: boolean
}

/** Prefixes of the batch index datasets in the processed bucket. */
export const batchIndexPrefixes = {
  transactions: `${prefixes.batchIndex}transactions/`,
  fraudSignals: `${prefixes.batchIndex}fraud_signals/`
} as const

const rawPrefixes = { transactions: "raw/transactions/", fraudSignals: "raw/fraud_signals/" } as const

/** Roughly how many bytes of JSON Lines one byte of each kind of raw file holds (gzip ~6×, Parquet ~5×). */
const compressionWeight = { jsonl: 1, "jsonl.gz": 6, parquet: 5 } as const

const counter = () => ({ recordsIn: 0, accepted: 0, quarantined: 0 })

/**
 * The batch layer: reads every producer file under `raw/transactions/` and `raw/fraud_signals/` (JSON
 * Lines, gzip, Parquet), validates each record, joins the newest dimension snapshots and publishes
 * `batch_index/` as Parquet partitioned by the UTC date of event_time. Bad records and unreadable files go
 * to `quarantine/batch/` with their reason; the run goes on.
 */
export const runBatchIndex = runBatchIndexWith()

/** Options of a batch-index run. */
export interface BatchIndexOptions {
  /** Rows held in memory before they are written out as a part; bounds memory at any input size. Default 250 000. */
  readonly flushRows?: number
  /**
   * This worker's share of the raw files, e.g. a Kubernetes Indexed Job or AWS Batch array index: files are
   * split by size (see `assignFilesToShards`); the last shard to finish publishes. Default 0 of 1.
   */
  readonly shard?: Shard
}

/** Where the shards of an input leave what they wrote until the last one publishes. */
export const batchShardManifestPrefix = (version: string): string =>
  `${prefixes.batchIndex}_shards/${version}/`

const BatchShardManifest = Schema.Struct({
  version: Schema.String,
  shard: Schema.Struct({ index: Schema.Number, count: Schema.Number }),
  transactions: Schema.Array(ManifestFile),
  fraudSignals: Schema.Array(ManifestFile)
})
const decodeBatchShardManifest = Schema.decodeUnknownOption(Schema.parseJson(BatchShardManifest))

/**
 * {@link runBatchIndex} with options. Rows are written as they accumulate, `flushRows` at a time (one file
 * per dt per flush, named by the input fingerprint and the flush number), so memory stays bounded and
 * files stay large; the manifests are written last.
 */
export function runBatchIndexWith(options: BatchIndexOptions = {}) {
  return Effect.gen(function* () {
    const raw = yield* RawBucket
    const processed = yield* ProcessedBucket
    const codec = yield* Parquet
    const flushRows = Math.max(1, options.flushRows ?? 250_000)
    const shard = options.shard ?? { index: 0, count: 1 }
    const problem = shardProblem(shard)
    if (problem !== undefined) return yield* new DatasetError({ dataset: "batch_index", reason: problem })
    const dimensions = yield* loadDimensions(raw)
    // Dimension problems are the same for every shard: the first one reports them.
    const quarantined: Array<QuarantineEntry> = shard.index === 0 ? [...dimensions.quarantined] : []
    const counts = { transactions: counter(), fraudSignals: counter() }
    const filesSkipped: Array<string> = []
    let filesRead = 0

    const listed = {
      transactions: yield* raw.list(rawPrefixes.transactions),
      fraudSignals: yield* raw.list(rawPrefixes.fraudSignals)
    }
    const isDataFile = (dataset: keyof typeof listed, key: string) =>
      rawFileKind(key) !== undefined && !isHiddenPath(key.slice(rawPrefixes[dataset].length))
    const dataFiles = [
      ...listed.transactions.filter((info) => isDataFile("transactions", info.key)),
      ...listed.fraudSignals.filter((info) => isDataFile("fraudSignals", info.key))
    ]
    // The rows depend on the raw files and on the dimension snapshots they are joined to.
    const tag = contentTag(
      [
        ...dataFiles.map((info) => `${info.key}:${info.size}`),
        `users:${dimensions.usersSnapshot}`,
        `merchants:${dimensions.merchantsSnapshot}`
      ].join("\n")
    )
    // Compressed files hold several times more records per byte: weigh them by a typical ratio.
    const owner = assignFilesToShards(
      dataFiles.map((info) => ({
        key: info.key,
        size: info.size * compressionWeight[rawFileKind(info.key) ?? "jsonl"]
      })),
      shard.count
    )
    const isMine = (key: string) => owner.get(key) === shard.index
    const runName = shard.count === 1 ? tag : `${tag}-s${shard.index}of${shard.count}`
    const progress = yield* makeProgress("batch index", dataFiles.filter((info) => isMine(info.key)).length)
    const written = { transactions: [] as Array<ManifestFile>, fraudSignals: [] as Array<ManifestFile> }

    for (const dataset of ["transactions", "fraudSignals"] as const) {
      const datasetName = dataset === "transactions" ? "transactions" : "fraud_signals"
      const schema = dataset === "transactions" ? indexedTransactionSchema : indexedFraudSignalSchema
      const count = counts[dataset]
      let buffer: Array<TableRow & { readonly dt: string }> = []
      let flushes = 0
      const flush = Effect.suspend(() => {
        const rows = buffer
        buffer = []
        const part = flushes++
        return Effect.map(
          writePartitioned(processed, codec, batchIndexPrefixes[dataset], schema, rows, `${runName}-${part}`),
          (files) => {
            written[dataset].push(...files)
          }
        )
      })
      for (const info of listed[dataset]) {
        if (!isDataFile(dataset, info.key)) {
          filesSkipped.push(info.key)
          continue
        }
        if (!isMine(info.key)) continue
        filesRead++
        const records = yield* readRawRecords(info.key, yield* getRequired(raw, info.key))
        if (Either.isLeft(records)) {
          count.recordsIn++
          count.quarantined++
          quarantined.push(
            quarantineEntry(datasetName, info.key, [{ field: "(file)", reason: records.left.reason }], "")
          )
          yield* progress.advance(0)
          continue
        }
        for (const record of records.right) {
          count.recordsIn++
          const decoded =
            dataset === "transactions"
              ? Either.map(decodeRawRecord(TransactionEvent, record), (event) =>
                  buffer.push(
                    asTableRow(indexTransaction(event, dimensions.tables, "batch", record.location))
                  )
                )
              : Either.map(decodeRawRecord(FraudSignal, record), (signal) =>
                  buffer.push(asTableRow(indexFraudSignal(signal, "batch", record.location)))
                )
          if (Either.isLeft(decoded)) {
            count.quarantined++
            quarantined.push(
              quarantineEntry(
                datasetName,
                record.location,
                decoded.left.problems,
                decoded.left.redactedPayload
              )
            )
          } else {
            count.accepted++
            if (buffer.length >= flushRows) yield* flush
          }
        }
        yield* progress.advance(records.right.length)
      }
      if (buffer.length > 0 || flushes === 0) yield* flush
    }
    yield* progress.done

    if (dataFiles.length === 0) {
      yield* Effect.logWarning(
        `no data files under raw/transactions/ or raw/fraud_signals/ in ${raw.describe}`
      )
    }
    const publish = (
      transactionFiles: ReadonlyArray<ManifestFile>,
      signalFiles: ReadonlyArray<ManifestFile>
    ) =>
      Effect.gen(function* () {
        const committedAt = new Date(yield* Clock.currentTimeMillis).toISOString()
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
        // The same input run earlier with another shard count left its own quarantine files: drop them, so
        // every refused record of this input is on record once.
        const names = new Set(
          shard.count === 1
            ? [tag]
            : Array.from({ length: shard.count }, (_, index) => `${tag}-s${index}of${shard.count}`)
        )
        for (const info of yield* processed.list(`${prefixes.quarantine}batch/`)) {
          const name = info.key.slice(info.key.lastIndexOf("/") + 1).replace(/\.jsonl$/, "")
          if (name.startsWith(tag) && !names.has(name)) yield* processed.delete(info.key)
        }
      })
    // Quarantine first: once the index is published, its refused records are already on record.
    const quarantineKeys = yield* writeQuarantine(processed, "batch", runName, quarantined)
    let published = true
    if (shard.count === 1) yield* publish(written.transactions, written.fraudSignals)
    else {
      const shardPrefix = batchShardManifestPrefix(tag)
      const done = yield* recordShardDone(
        processed,
        shardPrefix,
        shard,
        { version: tag, shard, transactions: written.transactions, fraudSignals: written.fraudSignals },
        decodeBatchShardManifest
      )
      published = Option.isSome(done)
      if (Option.isSome(done)) {
        const byKey = (a: ManifestFile, b: ManifestFile) => compareCodePoints(a.key, b.key)
        yield* publish(
          done.value.flatMap((manifest) => manifest.transactions).sort(byKey),
          done.value.flatMap((manifest) => manifest.fraudSignals).sort(byKey)
        )
        yield* clearShardManifests(processed, shardPrefix)
      }
    }
    const transactionFiles = written.transactions
    const signalFiles = written.fraudSignals
    const dimensionQuarantined = dimensions.quarantined.length
    return {
      filesRead,
      filesSkipped,
      transactions: counts.transactions,
      fraudSignals: counts.fraudSignals,
      // Counted by the first shard only, so the shards' counts add up to one run's.
      dimensions:
        shard.index === 0
          ? {
              recordsIn: dimensions.recordsIn,
              accepted: dimensions.recordsIn - dimensionQuarantined,
              quarantined: dimensionQuarantined
            }
          : counter(),
      usersSnapshot: dimensions.usersSnapshot,
      merchantsSnapshot: dimensions.merchantsSnapshot,
      filesWritten: transactionFiles.length + signalFiles.length,
      quarantineKeys,
      shard,
      published
    } satisfies BatchIndexSummary
  }).pipe(Effect.withSpan("runBatchIndex"))
}
