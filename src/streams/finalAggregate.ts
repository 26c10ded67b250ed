import { createHash } from "node:crypto"
import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import { Clock, Effect, Option, Schema } from "effect"
import { type Shard as BucketShard, bucketOf, shardProblem } from "../domain/buckets.js"
import { DatasetError, type ObjectStoreError, type ParquetError } from "../domain/errors.js"
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
import { bytesOfSize, type SqlError } from "../layers/DuckDb.js"
import { ProcessedBucket, RawBucket } from "../layers/ObjectStore.js"
import { Parquet, type ParquetCodec, type RowSelection } from "../layers/ParquetCodec.js"
import { scopedScratchDirectory } from "../layers/scratch.js"
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
import { openSqlFinalAggregator } from "./finalAggregateSql.js"
import { makeProgress, type Progress } from "./progress.js"
import { committedFilePaths } from "./sql.js"
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
  /**
   * Input rows (events and signals) one pass may hold when `passes` is not given. Default 700 000 in
   * JavaScript (10M transactions then peak near 3.2 GB); in SQL 1.5M per GB of `memoryLimit` (3M with 2GB).
   */
  readonly rowsPerPass?: number
  /** The most rows in one output file. Default 1 000 000. */
  readonly maxRowsPerFile?: number
  /**
   * Where the aggregation runs: `sql` in DuckDB over the index files (the default with the DuckDB Parquet
   * codec), `js` in JavaScript over decoded rows (the default with parquetjs). Both give the same rows.
   */
  readonly engine?: "sql" | "js"
  /** DuckDB's memory limit for the SQL engine, beyond which it spills to local disk. Default `2GB`. */
  readonly memoryLimit?: string
}

/** What one final-aggregate run read and published. */
export interface FinalAggregateSummary {
  readonly version: string
  readonly shard: Shard
  /** Where the aggregation ran (see {@link FinalAggregateOptions.engine}). */
  readonly engine: "sql" | "js"
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

/** Where the final aggregate runs unless told: in SQL when the codec writes through DuckDB. */
export const defaultFinalAggregateEngine = (codec: ParquetCodec): "sql" | "js" =>
  codec.duckDbCopyOptions === undefined ? "js" : "sql"

const jsRowsPerPass = 700_000
/**
 * Input rows a SQL pass holds per byte of DuckDB's memory limit: 1.5M per GB (2 GB held 2.5M rows of a
 * 10M-transaction input in one pass and refused 6.3M).
 */
const sqlRowsPerLimitByte = 1_500_000 / 2 ** 30
const maxSqlPasses = 4096
/** What both engines need to know about a run. */
interface AggregationRun {
  readonly shard: Shard
  readonly inputs: Effect.Effect.Success<typeof listInputs>
  /** Keys of the current snapshot's files: an output file with one of these keys is kept, not rewritten. */
  readonly current: ReadonlySet<string>
  readonly maxRowsPerFile: number
}

/** What an engine read and wrote for this worker. */
interface AggregationOutcome {
  readonly passes: number
  readonly files: ReadonlyArray<ManifestFile>
  readonly written: number
  readonly eventsRead: number
  readonly signalsRead: number
  readonly rowsRead: number
  readonly rowCount: number
}

/**
 * The aggregation in JavaScript: every input file decoded (only the shard's rows where the file carries
 * `transaction_id_hash`), one pass in memory or, with several passes, each owned fact spilled to its pass's
 * file on local disk by one read of the input, then a pass at a time.
 */
const aggregateInJs = (run: AggregationRun, passes: number) =>
  Effect.gen(function* () {
    const { shard, inputs, current, maxRowsPerFile } = run
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
      yield* Effect.scoped(
        Effect.gen(function* () {
          const spill = new FactSpill(yield* scopedScratchDirectory("recon-final-spill-"), passes)
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
        })
      )
    }
    yield* progress.done
    return {
      passes,
      files,
      written,
      eventsRead,
      signalsRead,
      rowsRead,
      rowCount
    } satisfies AggregationOutcome
  })

/** Where the SQL engine works: the committed index files on local disk and how to write output. */
interface SqlDatabase {
  readonly transactionFiles: ReadonlyArray<string>
  readonly signalFiles: ReadonlyArray<string>
  readonly memoryLimit: string
  readonly codec: ParquetCodec
  readonly copyOptions: string
}

/**
 * The aggregation in DuckDB SQL over the committed index files: a pass at a time over the buckets of this
 * shard, selected through `transaction_id_hash`, each pass's files written by DuckDB and named by the
 * SHA-256 of their bytes (DuckDB writes the same rows to the same bytes, so an unchanged partition keeps its
 * key). None when a sharded or multi-pass run meets index files without `transaction_id_hash`.
 */
const aggregateInSql = (run: AggregationRun, passes: number, database: SqlDatabase) =>
  Effect.scoped(
    Effect.gen(function* () {
      const { shard, inputs, current, maxRowsPerFile } = run
      const processed = yield* ProcessedBucket
      const buckets = shard.count * passes
      const aggregator = yield* openSqlFinalAggregator({
        ...database,
        dimensions: inputs.dimensions.tables,
        directory: yield* scopedScratchDirectory("recon-final-sql-")
      })
      if (buckets > 1 && (yield* aggregator.filesWithoutHash) > 0) return Option.none<AggregationOutcome>()
      const progress = yield* makeProgress("final aggregate (SQL)", passes, "passes")
      const files: Array<ManifestFile> = []
      let written = 0
      let eventsRead = 0
      let signalsRead = 0
      let rowCount = 0
      for (let pass = 0; pass < passes; pass++) {
        const outcome = yield* aggregator.runPass(
          buckets > 1 ? { buckets, bucket: pass * shard.count + shard.index } : undefined,
          maxRowsPerFile
        )
        eventsRead += outcome.eventsRead
        signalsRead += outcome.signalsRead
        rowCount += outcome.rows
        for (const file of outcome.files) {
          const body = yield* Effect.promise(() => NodeFs.readFile(file.path))
          const hash = createHash("sha256").update(body).digest("hex").slice(0, 24)
          const key = `${prefixes.finalAggregate}dt=${file.dt}/part-${hash}.parquet`
          if (!current.has(key)) {
            yield* processed.put(key, new Uint8Array(body.buffer, body.byteOffset, body.byteLength))
            written++
          }
          files.push({ key, dt: file.dt, rows: file.rows })
        }
        yield* progress.advance(outcome.eventsRead + outcome.signalsRead)
      }
      yield* progress.done
      return Option.some<AggregationOutcome>({
        passes,
        files,
        written,
        eventsRead,
        signalsRead,
        rowsRead: eventsRead + signalsRead,
        rowCount
      })
    })
  )

/**
 * The final aggregator: merges the committed `batch_index/`, the committed micro-batches of
 * `streaming_index/` and `late/`, and the newest dimension snapshots into `final_aggregate/`, one row per
 * transaction_id (contract §6), partitioned by the UTC date of its earliest event.
 *
 * A worker owns the transactions whose bucket (FNV-1a of transaction_id) falls in its shard, reads every
 * input file keeping only those, optionally in several passes of fewer buckets each to bound memory, and
 * writes content-addressed files. The aggregation runs in DuckDB SQL with the DuckDB codec and in
 * JavaScript otherwise (`engine`); both apply the same rules and give the same rows. It then records what
 * it wrote under `_shards/<version>/`; the shard that finds every shard of the version done writes the
 * dataset manifest, the one atomic step that publishes (readers see the old or the new snapshot, never a
 * mix). N shards produce exactly the rows of one run; a
 * re-run on the same input rewrites nothing.
 */
export const runFinalAggregateWith = (options: FinalAggregateOptions = {}) =>
  Effect.gen(function* () {
    const shard = options.shard ?? { index: 0, count: 1 }
    const problem = shardProblem(shard)
    if (problem !== undefined) return yield* new DatasetError({ dataset: "final_aggregate", reason: problem })
    const processed = yield* ProcessedBucket
    const codec = yield* Parquet
    const inputs = yield* listInputs
    const currentManifest = yield* readManifest(processed, prefixes.finalAggregate)
    const current = new Set(
      Option.match(currentManifest, {
        onNone: () => [],
        onSome: (manifest) => manifest.files.map((f) => f.key)
      })
    )
    const engine = options.engine ?? defaultFinalAggregateEngine(codec)
    if (engine === "sql" && codec.duckDbCopyOptions === undefined)
      return yield* new DatasetError({
        dataset: "final_aggregate",
        reason:
          "the SQL engine writes through DuckDB, which the parquetjs codec cannot read back; " +
          "use the JavaScript engine with RECON_PARQUET_WRITER=parquetjs"
      })
    const memoryLimit = options.memoryLimit ?? "2GB"
    const memoryLimitBytes = bytesOfSize(memoryLimit)
    if (memoryLimitBytes === undefined)
      return yield* new DatasetError({
        dataset: "final_aggregate",
        reason: `memory limit must be a size such as 512MB or 2GB, got "${memoryLimit}"`
      })
    const passesFor = (defaultRowsPerPass: number) =>
      Math.max(
        1,
        Math.floor(
          options.passes ??
            Math.ceil(inputs.inputRows / shard.count / (options.rowsPerPass ?? defaultRowsPerPass))
        )
      )
    const run: AggregationRun = {
      shard,
      inputs,
      current,
      maxRowsPerFile: options.maxRowsPerFile ?? 1_000_000
    }
    // A pass DuckDB cannot hold within its memory limit is run again with twice the passes, unless the
    // caller fixed the count.
    const aggregateWithPasses = (
      passes: number,
      database: SqlDatabase
    ): Effect.Effect<
      Option.Option<AggregationOutcome>,
      SqlError | ObjectStoreError | ParquetError,
      ProcessedBucket
    > =>
      aggregateInSql(run, passes, database).pipe(
        Effect.catchIf(
          (error) =>
            error._tag === "SqlError" &&
            options.passes === undefined &&
            passes < maxSqlPasses &&
            error.message.includes("Out of Memory"),
          () =>
            Effect.zipRight(
              Effect.logWarning(
                `final aggregate: DuckDB ran out of memory (${memoryLimit}) with ${passes} passes; again with ${passes * 2}`
              ),
              aggregateWithPasses(passes * 2, database)
            )
        )
      )
    const copyOptions = codec.duckDbCopyOptions
    const sqlOutcome =
      engine === "sql" && copyOptions !== undefined
        ? yield* Effect.scoped(
            Effect.gen(function* () {
              // Copied to local disk once (when the store is not a directory), whatever the retries.
              const localFiles = (keys: ReadonlyArray<string>) =>
                committedFilePaths(processed, { files: keys.map((key) => ({ key })) })
              return yield* aggregateWithPasses(
                passesFor(Math.max(100_000, sqlRowsPerLimitByte * memoryLimitBytes)),
                {
                  transactionFiles: yield* localFiles(inputs.transactionKeys),
                  signalFiles: yield* localFiles(inputs.signalKeys),
                  memoryLimit,
                  codec,
                  copyOptions
                }
              )
            })
          )
        : Option.none()
    if (engine === "sql" && Option.isNone(sqlOutcome))
      yield* Effect.logWarning(
        "final aggregate: some index files have no transaction_id_hash column (written before it existed), " +
          "so this sharded or multi-pass run aggregates in JavaScript"
      )
    const outcome = Option.isSome(sqlOutcome)
      ? sqlOutcome.value
      : yield* aggregateInJs(run, passesFor(jsRowsPerPass))
    const { files, rowCount } = outcome

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
      engine: Option.isSome(sqlOutcome) ? "sql" : "js",
      passes: outcome.passes,
      transactionEventsRead: outcome.eventsRead,
      fraudSignalsRead: outcome.signalsRead,
      inputRowsRead: outcome.rowsRead,
      streamingBatches: inputs.streamingBatches,
      rows: rowCount,
      partitions: new Set(files.map((file) => file.dt)).size,
      filesWritten: outcome.written,
      filesKept: files.length - outcome.written,
      published: Option.isSome(done),
      staleFilesRemoved: removed
    } satisfies FinalAggregateSummary
  }).pipe(Effect.withSpan("runFinalAggregate"))

/** The final aggregator as one worker doing everything (see {@link runFinalAggregateWith}). */
export const runFinalAggregate = runFinalAggregateWith()
