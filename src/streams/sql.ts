import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import { Clock, Data, Effect, Option, type Scope } from "effect"
import { currencyExponents } from "../domain/currency.js"
import { DatasetError, ObjectStoreError } from "../domain/errors.js"
import { type ColumnType, finalAggregateSchema, type TableSchema } from "../domain/rows.js"
import type { EpochMicros } from "../domain/time.js"
import { DuckDb, quoteIdentifier, quoteLiteral, type SqlError, type SqlRow } from "../layers/DuckDb.js"
import { getRequired, type ObjectStore, ProcessedBucket } from "../layers/ObjectStore.js"
import { makeScratchDirectory } from "../layers/scratch.js"
import { athenaTables } from "./athena.js"
import { type DatasetManifest, prefixes, readManifest } from "./datasets.js"
import { readCommittedBatches, replayedRanges } from "./streamingIndex.js"

/** What {@link registerFinalAggregateView} put behind the view. */
export interface RegisteredView {
  readonly viewName: string
  /** The committed manifest version the view shows; null when nothing was committed (the view is empty). */
  readonly manifestVersion: string | null
  /** The Parquet files DuckDB reads: exactly the committed ones, local or copied. */
  readonly files: ReadonlyArray<string>
}

/** A ready query name that {@link readyQueries} does not hold. */
export class ReadyQueryNotFound extends Data.TaggedError("ReadyQueryNotFound")<{
  readonly name: string
  readonly known: ReadonlyArray<string>
}> {
  override get message(): string {
    return `no ready query named ${this.name}; known: ${this.known.join(", ")}`
  }
}

export { quoteIdentifier, quoteLiteral }

const duckDbType: Record<ColumnType, string> = {
  string: "VARCHAR",
  int64: "BIGINT",
  double: "DOUBLE",
  boolean: "BOOLEAN",
  timestamp: "TIMESTAMP",
  string_list: "VARCHAR[]"
}

const emptyViewSql = (viewName: string, schema: TableSchema = finalAggregateSchema): string => {
  const columns = schema.map(
    (column) => `CAST(NULL AS ${duckDbType[column.type]}) AS ${quoteIdentifier(column.name)}`
  )
  return `CREATE OR REPLACE VIEW ${quoteIdentifier(viewName)} AS SELECT ${columns.join(", ")}, CAST(NULL AS DATE) AS dt WHERE false`
}

const parquetViewSql = (viewName: string, files: ReadonlyArray<string>): string =>
  `CREATE OR REPLACE VIEW ${quoteIdentifier(viewName)} AS SELECT * FROM read_parquet([${files
    .map(quoteLiteral)
    .join(", ")}], hive_partitioning = true, hive_types = {'dt': DATE}, union_by_name = true)`

/**
 * A view over streaming files that drops rows whose `source_location` (`topic/partition@offset`) falls in a
 * replayed range of their file's batch (see `replayedRanges`).
 */
const withoutReplaysViewSql = (
  viewName: string,
  files: ReadonlyArray<string>,
  replays: ReadonlyArray<{
    readonly path: string
    readonly topic: string
    readonly partition: number
    readonly below: number
  }>
): string => {
  const ranges = replays
    .map(
      (range) =>
        `(${quoteLiteral(range.path)}, ${quoteLiteral(`${range.topic}/${range.partition}`)}, ${range.below})`
    )
    .join(", ")
  return `CREATE OR REPLACE VIEW ${quoteIdentifier(viewName)} AS SELECT * EXCLUDE (filename) FROM read_parquet([${files
    .map(quoteLiteral)
    .join(
      ", "
    )}], hive_partitioning = true, hive_types = {'dt': DATE}, union_by_name = true, filename = true) AS rows
  WHERE NOT EXISTS (SELECT 1 FROM (VALUES ${ranges}) AS replayed(path, partition_key, below)
    WHERE replayed.path = rows.filename AND split_part(rows.source_location, '@', 1) = replayed.partition_key
      AND CAST(split_part(rows.source_location, '@', 2) AS BIGINT) < replayed.below)`
}

/**
 * `currency_exponent(currency, exponent)` (ISO 4217 minor-unit digits) and the macro
 * `format_minor_units(amount, exponent)`, which writes integer minor units as a major-unit decimal string
 * with integer arithmetic only. The ready queries use both.
 */
export const registerSqlHelpers = (): Effect.Effect<void, SqlError, DuckDb> =>
  Effect.gen(function* () {
    const duckDb = yield* DuckDb
    const rows = Object.entries(currencyExponents)
      .map(([currency, exponent]) => `(${quoteLiteral(currency)}, ${exponent})`)
      .join(", ")
    yield* duckDb.run(
      `CREATE OR REPLACE TABLE currency_exponent AS SELECT * FROM (VALUES ${rows}) AS known(currency, exponent)`
    )
    const magnitude = "abs(CAST(amount AS HUGEINT))"
    const scale = "CAST(pow(10, exponent) AS HUGEINT)"
    yield* duckDb.run(
      `CREATE OR REPLACE MACRO format_minor_units(amount, exponent) AS CASE
         WHEN amount IS NULL THEN NULL
         WHEN exponent = 0 THEN CAST(amount AS VARCHAR)
         ELSE (CASE WHEN amount < 0 THEN '-' ELSE '' END)
           || CAST(${magnitude} // ${scale} AS VARCHAR) || '.'
           || lpad(CAST(${magnitude} % ${scale} AS VARCHAR), CAST(exponent AS INTEGER), '0')
       END`
    )
  })

const checkPartitionPaths = (
  manifest: Pick<DatasetManifest, "dataset" | "files">
): Effect.Effect<void, DatasetError> => {
  const misplaced = manifest.files.find((file) => !file.key.includes(`/dt=${file.dt}/`))
  return misplaced === undefined
    ? Effect.void
    : Effect.fail(
        new DatasetError({
          dataset: manifest.dataset,
          reason: `committed file ${misplaced.key} is not under dt=${misplaced.dt}/`
        })
      )
}

const copyFailure = (key: string) => (cause: unknown) =>
  new ObjectStoreError({ operation: "copy", key, cause })

const temporaryDirectory: Effect.Effect<string, ObjectStoreError, Scope.Scope> = Effect.acquireRelease(
  Effect.tryPromise({
    try: () => makeScratchDirectory("recon-sql-"),
    catch: copyFailure("<temporary directory>")
  }),
  (directory) => Effect.promise(() => NodeFs.rm(directory, { recursive: true, force: true }))
)

/** Local paths of committed files: the store's own when it is a directory, else copies living as long as the scope. */
export const committedFilePaths = (
  store: ObjectStore,
  manifest: { readonly files: ReadonlyArray<{ readonly key: string }> }
): Effect.Effect<ReadonlyArray<string>, ObjectStoreError, Scope.Scope> => {
  const local = Option.all(manifest.files.map((file) => store.localPath(file.key)))
  if (Option.isSome(local)) return Effect.succeed(local.value)
  return Effect.gen(function* () {
    const directory = yield* temporaryDirectory
    return yield* Effect.forEach(
      manifest.files,
      (file) =>
        Effect.gen(function* () {
          const body = yield* getRequired(store, file.key)
          const target = NodePath.join(directory, ...file.key.split("/"))
          yield* Effect.tryPromise({
            try: async () => {
              await NodeFs.mkdir(NodePath.dirname(target), { recursive: true })
              await NodeFs.writeFile(target, body)
            },
            catch: copyFailure(file.key)
          })
          return target
        }),
      { concurrency: 8 }
    )
  })
}

/**
 * A view over exactly the committed `files` (copied locally when the store is not a directory), or an empty
 * view with every column of `schema` when there are none.
 */
const registerCommittedView = (
  viewName: string,
  schema: TableSchema,
  committed: Pick<DatasetManifest, "dataset" | "files"> & { readonly version: string | null },
  viewSql: (paths: ReadonlyArray<string>) => string = (paths) => parquetViewSql(viewName, paths)
): Effect.Effect<
  RegisteredView,
  SqlError | ObjectStoreError | DatasetError,
  DuckDb | ProcessedBucket | Scope.Scope
> =>
  Effect.gen(function* () {
    const duckDb = yield* DuckDb
    if (committed.files.length === 0) {
      yield* duckDb.run(emptyViewSql(viewName, schema))
      return { viewName, manifestVersion: committed.version, files: [] }
    }
    yield* checkPartitionPaths(committed)
    const files = yield* committedFilePaths(yield* ProcessedBucket, committed)
    yield* duckDb.run(viewSql(files))
    return { viewName, manifestVersion: committed.version, files }
  })

/**
 * Creates (or replaces) a DuckDB view over the committed final_aggregate: exactly the files its manifest
 * lists, so a file written but not committed stays invisible. `dt` (DATE) comes from the `dt=YYYY-MM-DD/`
 * path segment through hive partitioning. When the store is not a local directory the committed objects
 * are copied to a temporary directory that lives as long as the scope. With no committed manifest (or
 * one with no files) the view is empty but has every contract column, so queries still run. The view
 * reads a snapshot: register again after a new commit. Also registers {@link registerSqlHelpers}.
 */
export const registerFinalAggregateView = (
  viewName = "final_aggregate"
): Effect.Effect<
  RegisteredView,
  SqlError | ObjectStoreError | DatasetError,
  DuckDb | ProcessedBucket | Scope.Scope
> =>
  Effect.gen(function* () {
    const store = yield* ProcessedBucket
    yield* registerSqlHelpers()
    const manifest = yield* readManifest(store, prefixes.finalAggregate)
    return yield* registerCommittedView(viewName, finalAggregateSchema, {
      dataset: Option.match(manifest, { onNone: () => "final_aggregate", onSome: (m) => m.dataset }),
      version: Option.match(manifest, { onNone: () => null, onSome: (m) => m.version }),
      files: Option.match(manifest, { onNone: () => [], onSome: (m) => m.files })
    })
  })

/**
 * Views over the committed files of the index datasets, named like the Athena tables
 * (`batch_index_transactions`, `batch_index_fraud_signals`, `streaming_index_transactions`,
 * `streaming_index_fraud_signals`, `streaming_index_fraud_signal_joins`): batch_index through its snapshot
 * manifest, streaming_index through the committed micro-batch manifests. An empty dataset gives an empty
 * view with every column. Like {@link registerFinalAggregateView}, a snapshot: register again to refresh.
 */
export const registerIndexViews = (): Effect.Effect<
  ReadonlyArray<RegisteredView>,
  SqlError | ObjectStoreError | DatasetError,
  DuckDb | ProcessedBucket | Scope.Scope
> =>
  Effect.gen(function* () {
    const store = yield* ProcessedBucket
    const batches = yield* readCommittedBatches(store)
    const replayed = replayedRanges(batches)
    const batchOfFile = new Map(
      batches.flatMap((batch) => batch.files.map((file) => [file.key, batch.batch_id]))
    )
    return yield* Effect.forEach(
      athenaTables.filter((table) => table.prefix !== prefixes.finalAggregate),
      (table) =>
        Effect.gen(function* () {
          const manifest: Option.Option<{
            readonly version: string | null
            readonly files: ReadonlyArray<DatasetManifest["files"][number]>
          }> =
            table.source === "symlink"
              ? Option.map(yield* readManifest(store, table.prefix), (committed) => ({
                  version: committed.version,
                  files: committed.files
                }))
              : Option.some({
                  version: batches.at(-1)?.batch_id ?? null,
                  files: batches.flatMap((batch) =>
                    batch.files.filter((file) => file.key.startsWith(table.prefix))
                  )
                })
          const files = Option.match(manifest, { onNone: () => [], onSome: (committed) => committed.files })
          const hasLocations = table.schema.some((column) => column.name === "source_location")
          return yield* registerCommittedView(
            table.name,
            table.schema,
            {
              dataset: table.name,
              version: files.length === 0 ? null : (Option.getOrNull(manifest)?.version ?? null),
              files
            },
            (paths) => {
              const replays = files.flatMap((file, index) =>
                replayed
                  .filter((range) => range.batchId === batchOfFile.get(file.key))
                  .map((range) => ({ ...range, path: paths[index] ?? "" }))
              )
              return table.source === "files" && hasLocations && replays.length > 0
                ? withoutReplaysViewSql(table.name, paths, replays)
                : parquetViewSql(table.name, paths)
            }
          )
        })
    )
  })

/** A named query over the `final_aggregate` view. */
export interface ReadyQuery {
  readonly name: string
  readonly description: string
  /**
   * DuckDB SQL. It reads the view `final_aggregate`, the helpers of {@link registerSqlHelpers}, and the
   * variables `recon_as_of` (TIMESTAMP) and `recon_stale_after_days` (INTEGER) that {@link runReadyQuery}
   * sets (in a DuckDB shell: `SET VARIABLE recon_as_of = now()::TIMESTAMP`).
   */
  readonly sql: string
}

/** Recon and risk questions, ready to run. Money stays integer minor units; `*_major` columns are text. */
export const readyQueries: ReadonlyArray<ReadyQuery> = [
  {
    name: "volume_by_status_currency",
    description: "Transactions and volume by latest status and currency",
    sql: `SELECT status, currency, count(*) AS transactions, sum(amount_minor) AS amount_minor,
  format_minor_units(sum(amount_minor), coalesce(any_value(exponent), 2)) AS amount_major
FROM final_aggregate LEFT JOIN currency_exponent USING (currency)
GROUP BY status, currency
ORDER BY status, currency`
  },
  {
    name: "top_merchants_by_volume",
    description: "Top 10 merchants per currency by captured and settled volume",
    sql: `SELECT currency, merchant_id, any_value(merchant_name) AS merchant_name, count(*) AS transactions,
  sum(amount_minor) AS volume_minor,
  format_minor_units(sum(amount_minor), coalesce(any_value(exponent), 2)) AS volume_major,
  row_number() OVER (PARTITION BY currency ORDER BY sum(amount_minor) DESC, merchant_id) AS rank
FROM final_aggregate LEFT JOIN currency_exponent USING (currency)
WHERE status IN ('captured', 'settled')
GROUP BY currency, merchant_id
QUALIFY rank <= 10
ORDER BY currency, rank`
  },
  {
    name: "refund_chargeback_rate_by_risk_level",
    description: "Refund and chargeback rates by merchant risk level (null level: unknown merchant)",
    sql: `SELECT merchant_risk_level, count(*) AS transactions,
  count(refunded_at) AS refunded, count(chargeback_at) AS chargebacks,
  count(refunded_at) / count(*) AS refund_rate, count(chargeback_at) / count(*) AS chargeback_rate
FROM final_aggregate
GROUP BY merchant_risk_level
ORDER BY merchant_risk_level NULLS LAST`
  },
  {
    name: "confirmed_fraud_rate_by_mcc",
    description: "Confirmed-fraud rate by merchant category code",
    sql: `SELECT merchant_mcc, count(*) AS transactions, count_if(confirmed_fraud) AS confirmed_fraud,
  count_if(confirmed_fraud) / count(*) AS confirmed_fraud_rate, max(fraud_max_score) AS max_fraud_score
FROM final_aggregate
GROUP BY merchant_mcc
ORDER BY confirmed_fraud_rate DESC, merchant_mcc NULLS LAST`
  },
  {
    name: "daily_counts",
    description: "Transactions per partition day, with how many were captured, refunded or charged back",
    sql: `SELECT dt, count(*) AS transactions, count(captured_at) AS captured, count(refunded_at) AS refunded,
  count(chargeback_at) AS chargebacks, count_if(confirmed_fraud) AS confirmed_fraud
FROM final_aggregate
GROUP BY dt
ORDER BY dt`
  },
  {
    name: "authorized_never_captured",
    description:
      "Open authorizations: authorized more than recon_stale_after_days before recon_as_of, never captured or settled, not voided or declined",
    sql: `SELECT transaction_id, merchant_id, processor, processor_reference, status, amount_minor, currency,
  authorized_at, date_diff('day', authorized_at, getvariable('recon_as_of')) AS age_days
FROM final_aggregate
WHERE authorized_at IS NOT NULL AND captured_at IS NULL AND settled_at IS NULL
  AND status NOT IN ('voided', 'declined')
  AND authorized_at < getvariable('recon_as_of') - to_days(getvariable('recon_stale_after_days'))
ORDER BY authorized_at, transaction_id`
  }
]

/** Inputs of the ready queries that depend on time. */
export interface ReadyQueryParameters {
  /** Days after which an authorization without capture counts as stale; default 7. */
  readonly staleAfterDays?: number
  /** The reference instant; default the `Clock` (so `TestClock` drives it). */
  readonly asOf?: EpochMicros
}

const setParameters = (parameters: ReadyQueryParameters): Effect.Effect<void, SqlError, DuckDb> =>
  Effect.gen(function* () {
    const duckDb = yield* DuckDb
    const asOf = parameters.asOf ?? (yield* Clock.currentTimeMillis) * 1000
    const staleAfterDays = parameters.staleAfterDays ?? 7
    yield* duckDb.run(`SET VARIABLE recon_as_of = make_timestamp(CAST(${Math.trunc(asOf)} AS BIGINT))`)
    yield* duckDb.run(`SET VARIABLE recon_stale_after_days = CAST(${Math.trunc(staleAfterDays)} AS INTEGER)`)
  })

/**
 * Runs one of {@link readyQueries} by name, after setting its time parameters. Needs the view from
 * {@link registerFinalAggregateView}.
 */
export const runReadyQuery = (
  name: string,
  parameters: ReadyQueryParameters = {}
): Effect.Effect<ReadonlyArray<SqlRow>, SqlError | ReadyQueryNotFound, DuckDb> =>
  Effect.gen(function* () {
    const ready = readyQueries.find((query) => query.name === name)
    if (ready === undefined) {
      return yield* new ReadyQueryNotFound({ name, known: readyQueries.map((query) => query.name) })
    }
    yield* setParameters(parameters)
    return yield* runSql(ready.sql)
  })

/** Runs any SQL against the database (the registered views included). */
export const runSql = (sql: string): Effect.Effect<ReadonlyArray<SqlRow>, SqlError, DuckDb> =>
  Effect.flatMap(DuckDb, (duckDb) => duckDb.query(sql))
