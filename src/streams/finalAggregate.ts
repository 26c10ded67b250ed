import { createHash } from "node:crypto"
import * as NodeFs from "node:fs/promises"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { Clock, Effect, Option, Schema } from "effect"
import { type Shard as BucketShard, bucketOf, shardProblem } from "../domain/buckets.js"
import { DatasetError } from "../domain/errors.js"
import {
  buildFinalAggregate,
  type FraudSignalFacts,
  fraudSignalFactColumns,
  type TransactionEventFacts,
  transactionEventFactColumns
} from "../domain/finalAggregate.js"
import { forEachJsonLine } from "../domain/jsonLines.js"
import { compareCodePoints } from "../domain/order.js"
import { type FinalAggregateRow, finalAggregateSchema, type TableRow } from "../domain/rows.js"
import { ProcessedBucket, RawBucket } from "../layers/ObjectStore.js"
import { Parquet, type RowSelection } from "../layers/ParquetCodec.js"
import { batchIndexPrefixes } from "./batchIndex.js"
import {
  clearShardManifests,
  contentTag,
  dtSlices,
  ManifestFile,
  prefixes,
  publishSnapshot,
  readCommittedFile,
  readManifest,
  recordShardDone
} from "./datasets.js"
import { loadDimensions } from "./dimensions.js"
import { makeProgress, type Progress } from "./progress.js"
import { readCommittedBatches } from "./streamingIndex.js"

/** This worker's share of the transactions: the buckets `b` with `b mod count = index`. */
export type Shard = BucketShard

/** Options of a final-aggregate run. */
export interface FinalAggregateOptions {
  /** The share of a worker among `count` (a Kubernetes Indexed Job or AWS Batch array); default 0 of 1. */
  readonly shard?: Shard
  /**
   * Passes over the inputs, each keeping only a slice of the shard's transactions in memory (bucket at a
   * time): memory shrinks by this factor, input is read this many times. Default: enough passes that each
   * holds about `rowsPerPass` input rows.
   */
  readonly passes?: number
  /** Input rows (events and signals) one pass may hold when `passes` is not given. Default 700 000 (10M transactions then peak near 3.2 GB). */
  readonly rowsPerPass?: number
  /** The most rows in one output file. Default 1 000 000. */
  readonly maxRowsPerFile?: number
}

/** What one final-aggregate run read and published. */
export interface FinalAggregateSummary {
  readonly version: string
  readonly shard: Shard
  /** Passes over the input this worker made (bucket at a time). */
  readonly passes: number
  readonly transactionEventsRead: number
  readonly fraudSignalsRead: number
  /**
   * Input rows the reader handed over, this shard's or not: with several shards, inputs that carry
   * `transaction_id_hash` give only the shard's rows, so the shards together read the input once.
   */
  readonly inputRowsRead: number
  readonly streamingBatches: number
  readonly rows: number
  readonly partitions: number
  /** Files this run wrote; a file whose rows did not change since the current snapshot is kept, not rewritten. */
  readonly filesWritten: number
  readonly filesKept: number
  /** Whether this run published the snapshot (a shard publishes once every shard of the version is done). */
  readonly published: boolean
  readonly staleFilesRemoved: number
}

/** Where the shards of a version leave the files they wrote until the last one publishes. */
export const shardManifestPrefix = (version: string): string =>
  `${prefixes.finalAggregate}_shards/${version}/`

const ShardManifest = Schema.Struct({
  version: Schema.String,
  shard: Schema.Struct({ index: Schema.Number, count: Schema.Number }),
  files: Schema.Array(ManifestFile),
  rows: Schema.Number
})
const decodeShardManifest = Schema.decodeUnknownOption(Schema.parseJson(ShardManifest))

/** The committed input files of the final aggregate and a version naming exactly that input. */
const listInputs = Effect.gen(function* () {
  const raw = yield* RawBucket
  const processed = yield* ProcessedBucket
  const dimensions = yield* loadDimensions(raw)
  const transactionKeys: Array<string> = []
  const signalKeys: Array<string> = []
  let inputRows = 0
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
      for (const file of manifest.value.files) inputRows += file.rows
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
      if (file.dataset !== "fraud_signal_joins") inputRows += file.rows
    }
  }
  return {
    dimensions,
    transactionKeys,
    signalKeys,
    streamingBatches: batches.length,
    streamingBatchIds: batches.map((batch) => batch.batch_id),
    inputRows,
    version: contentTag(inputVersions.sort().join("\n"))
  }
})

/**
 * Writes one dt's rows as content-addressed files (`part-<hash of the rows>.parquet`): rows that did not
 * change since the current snapshot map to a key it already lists, and that file is kept as it is. So a
 * run rewrites only the partitions whose transactions changed, including those that lost or gained rows
 * that moved to an earlier dt.
 */
const writeContentAddressed = (
  rows: ReadonlyArray<FinalAggregateRow>,
  current: ReadonlySet<string>,
  maxRowsPerFile: number
) =>
  Effect.gen(function* () {
    const processed = yield* ProcessedBucket
    const codec = yield* Parquet
    const parts = dtSlices(rows, maxRowsPerFile).map(({ dt, slice }) => {
      const hash = createHash("sha256")
      for (const row of slice) hash.update(JSON.stringify(row)).update("\n")
      return {
        key: `${prefixes.finalAggregate}dt=${dt}/part-${hash.digest("hex").slice(0, 24)}.parquet`,
        dt,
        slice
      }
    })
    let written = 0
    const files = yield* Effect.forEach(
      parts,
      ({ key, dt, slice }) =>
        Effect.as(
          current.has(key)
            ? Effect.void
            : Effect.flatMap(
                codec.encode(finalAggregateSchema, slice as unknown as ReadonlyArray<TableRow>),
                (body) => {
                  written++
                  return processed.put(key, body)
                }
              ),
          { key, dt, rows: slice.length }
        ),
      { concurrency: 4 }
    )
    return { files, written }
  })

/**
 * Reads every input file once (only the columns §6 reads, and with `selection` only the rows of the
 * worker's shard where the file carries `transaction_id_hash`), handing each event and signal on; gives
 * the number of rows the reader handed over.
 */
const readInputFacts = (
  inputs: { readonly transactionKeys: ReadonlyArray<string>; readonly signalKeys: ReadonlyArray<string> },
  progress: Progress,
  selection: RowSelection | undefined,
  onEvent: (event: TransactionEventFacts) => void,
  onSignal: (signal: FraudSignalFacts) => void,
  afterFile: Effect.Effect<void> = Effect.void
) =>
  Effect.gen(function* () {
    const processed = yield* ProcessedBucket
    const codec = yield* Parquet
    let rowsRead = 0
    for (const key of inputs.transactionKeys) {
      const rows = yield* readCommittedFile(
        processed,
        codec,
        "transaction index",
        key,
        transactionEventFactColumns,
        selection
      )
      rowsRead += rows.length
      for (const row of rows) onEvent(row as TableRow as unknown as TransactionEventFacts)
      yield* progress.advance(rows.length)
      yield* afterFile
    }
    for (const key of inputs.signalKeys) {
      const rows = yield* readCommittedFile(
        processed,
        codec,
        "fraud signal index",
        key,
        fraudSignalFactColumns,
        selection
      )
      rowsRead += rows.length
      for (const row of rows) onSignal(row as TableRow as unknown as FraudSignalFacts)
      yield* progress.advance(rows.length)
      yield* afterFile
    }
    return rowsRead
  })

/** Facts spilled to one JSON Lines file per pass; lines are `["e", event]` or `["s", signal]`. */
class FactSpill {
  private readonly pending: Array<Array<string>>
  constructor(
    private readonly directory: string,
    passes: number
  ) {
    this.pending = Array.from({ length: passes }, () => [])
  }

  private pathOf(pass: number): string {
    return NodePath.join(this.directory, `pass-${pass}.jsonl`)
  }

  add(pass: number, kind: "e" | "s", fact: TransactionEventFacts | FraudSignalFacts): void {
    this.pending[pass]!.push(JSON.stringify([kind, fact]))
  }

  readonly flush: Effect.Effect<void> = Effect.promise(async () => {
    for (let pass = 0; pass < this.pending.length; pass++) {
      const lines = this.pending[pass]!
      if (lines.length === 0) continue
      this.pending[pass] = []
      await NodeFs.appendFile(this.pathOf(pass), `${lines.join("\n")}\n`)
    }
  })

  read(pass: number) {
    return Effect.promise(async () => {
      const events: Array<TransactionEventFacts> = []
      const signals: Array<FraudSignalFacts> = []
      const bytes = await NodeFs.readFile(this.pathOf(pass)).catch(() => Buffer.alloc(0))
      forEachJsonLine(bytes, (line) => {
        const [kind, fact] = line as ["e", TransactionEventFacts] | ["s", FraudSignalFacts]
        if (kind === "e") events.push(fact)
        else signals.push(fact)
      })
      return { events, signals }
    })
  }
}

/**
 * The final aggregator: merges the committed `batch_index/`, the committed micro-batches of
 * `streaming_index/` and `late/`, and the newest dimension snapshots into `final_aggregate/`, one row per
 * transaction_id (contract §6), partitioned by the UTC date of its earliest event.
 *
 * A worker owns the transactions whose bucket (FNV-1a of transaction_id) falls in its shard, reads every
 * input file keeping only those, optionally in several passes of fewer buckets each to bound memory, and
 * writes content-addressed files. It then records what it wrote under `_shards/<version>/`; the shard that
 * finds every shard of the version done writes the dataset manifest, the one atomic step that publishes
 * (readers see the old or the new snapshot, never a mix). N shards produce exactly the rows of one run; a
 * re-run on the same input rewrites nothing.
 */
export const runFinalAggregateWith = (options: FinalAggregateOptions = {}) =>
  Effect.gen(function* () {
    const shard = options.shard ?? { index: 0, count: 1 }
    const problem = shardProblem(shard)
    if (problem !== undefined) return yield* new DatasetError({ dataset: "final_aggregate", reason: problem })
    const maxRowsPerFile = options.maxRowsPerFile ?? 1_000_000
    const processed = yield* ProcessedBucket
    const inputs = yield* listInputs
    const passes = Math.max(
      1,
      Math.floor(
        options.passes ?? Math.ceil(inputs.inputRows / shard.count / (options.rowsPerPass ?? 700_000))
      )
    )
    const currentManifest = yield* readManifest(processed, prefixes.finalAggregate)
    const current = new Set(
      Option.match(currentManifest, {
        onNone: () => [],
        onSome: (manifest) => manifest.files.map((f) => f.key)
      })
    )
    const buckets = shard.count * passes
    const progress = yield* makeProgress(
      "final aggregate",
      inputs.transactionKeys.length + inputs.signalKeys.length
    )

    const files: Array<ManifestFile> = []
    let eventsRead = 0
    let rowsRead = 0
    let signalsRead = 0
    let rowCount = 0
    let written = 0
    // Inputs written with transaction_id_hash give only this shard's rows (hash mod n = bucket mod n, as
    // n divides the bucket count); passOf still decides for every row.
    const shardSelection: RowSelection | undefined =
      shard.count > 1
        ? { column: "transaction_id_hash", modulus: shard.count, remainder: shard.index }
        : undefined
    const passOf = (transactionId: string): number | undefined => {
      const bucket = bucketOf(transactionId, buckets)
      return bucket % shard.count === shard.index ? Math.floor(bucket / shard.count) : undefined
    }
    const aggregatePass = (events: Array<TransactionEventFacts>, signals: Array<FraudSignalFacts>) =>
      Effect.gen(function* () {
        eventsRead += events.length
        signalsRead += signals.length
        const rows = buildFinalAggregate(events, signals, inputs.dimensions.tables)
        rowCount += rows.length
        const outcome = yield* writeContentAddressed(rows, current, maxRowsPerFile)
        files.push(...outcome.files)
        written += outcome.written
      })
    if (passes === 1) {
      const events: Array<TransactionEventFacts> = []
      const signals: Array<FraudSignalFacts> = []
      rowsRead = yield* readInputFacts(
        inputs,
        progress,
        shardSelection,
        (event) => {
          if (passOf(event.transaction_id) !== undefined) events.push(event)
        },
        (signal) => {
          if (passOf(signal.transaction_id) !== undefined) signals.push(signal)
        }
      )
      yield* aggregatePass(events, signals)
    } else {
      // Bucket at a time: one read of the input spills each owned fact to its pass's file on local disk,
      // then each pass reads back only its own file.
      yield* Effect.acquireUseRelease(
        Effect.promise(() => NodeFs.mkdtemp(NodePath.join(NodeOs.tmpdir(), "recon-final-spill-"))),
        (directory) =>
          Effect.gen(function* () {
            const spill = new FactSpill(directory, passes)
            rowsRead = yield* readInputFacts(
              inputs,
              progress,
              shardSelection,
              (event) => {
                const pass = passOf(event.transaction_id)
                if (pass !== undefined) spill.add(pass, "e", event)
              },
              (signal) => {
                const pass = passOf(signal.transaction_id)
                if (pass !== undefined) spill.add(pass, "s", signal)
              },
              spill.flush
            )
            yield* spill.flush
            for (let pass = 0; pass < passes; pass++) {
              const { events, signals } = yield* spill.read(pass)
              yield* aggregatePass(events, signals)
            }
          }),
        (directory) => Effect.promise(() => NodeFs.rm(directory, { recursive: true, force: true }))
      )
    }
    yield* progress.done

    const shardPrefix = shardManifestPrefix(inputs.version)
    const done = yield* recordShardDone(
      processed,
      shardPrefix,
      shard,
      { version: inputs.version, shard, files, rows: rowCount },
      decodeShardManifest
    )
    let removed = 0
    if (Option.isSome(done)) {
      const allFiles = done.value
        .flatMap((manifest) => manifest.files)
        .sort((a, b) => compareCodePoints(a.dt, b.dt) || compareCodePoints(a.key, b.key))
      removed = (yield* publishSnapshot(processed, prefixes.finalAggregate, {
        dataset: "final_aggregate",
        version: inputs.version,
        committed_at: new Date(yield* Clock.currentTimeMillis).toISOString(),
        streaming_batches: inputs.streamingBatchIds,
        files: allFiles
      })).removed
      yield* clearShardManifests(processed, shardPrefix)
    }
    return {
      version: inputs.version,
      shard,
      passes,
      transactionEventsRead: eventsRead,
      fraudSignalsRead: signalsRead,
      inputRowsRead: rowsRead,
      streamingBatches: inputs.streamingBatches,
      rows: rowCount,
      partitions: new Set(files.map((file) => file.dt)).size,
      filesWritten: written,
      filesKept: files.length - written,
      published: Option.isSome(done),
      staleFilesRemoved: removed
    } satisfies FinalAggregateSummary
  }).pipe(Effect.withSpan("runFinalAggregate"))

/** The final aggregator as one worker doing everything (see {@link runFinalAggregateWith}). */
export const runFinalAggregate = runFinalAggregateWith()
