import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import { Effect, type Scope } from "effect"
import type { ParquetError } from "../domain/errors.js"
import { type DimensionTables, duplicateTieBreakFields } from "../domain/finalAggregate.js"
import {
  type ColumnSpec,
  column,
  finalAggregateSchema,
  type TableRow,
  type TableSchema
} from "../domain/rows.js"
import { makeDuckDb, quoteIdentifier, quoteLiteral, type SqlError } from "../layers/DuckDb.js"
import type { ParquetCodec } from "../layers/ParquetCodec.js"

/** Where a SQL final aggregate reads and works. */
export interface SqlFinalAggregateInput {
  /** Local paths of the committed transaction index files (batch, streaming, late). */
  readonly transactionFiles: ReadonlyArray<string>
  /** Local paths of the committed fraud signal index files. */
  readonly signalFiles: ReadonlyArray<string>
  readonly dimensions: DimensionTables
  /** The Parquet codec the dimension tables are handed over with. */
  readonly codec: ParquetCodec
  /** A scratch directory the caller removes: spool, spill and output files. */
  readonly directory: string
  /** DuckDB's `memory_limit` (e.g. `2GB`); beyond it DuckDB spills to `directory`. */
  readonly memoryLimit: string
  /** The COPY options output files are written with (format, compression, row group size). */
  readonly copyOptions: string
}

/** The buckets a pass keeps: rows whose `transaction_id_hash` is `bucket` modulo `buckets`. */
export interface PassSelection {
  readonly buckets: number
  readonly bucket: number
}

/** One output file of a pass: the rows of one dt (at most `maxRowsPerFile`), sorted by transaction_id. */
export interface SqlOutputFile {
  readonly dt: string
  readonly path: string
  readonly rows: number
}

/** What one pass read and wrote. */
export interface SqlPassOutcome {
  readonly eventsRead: number
  readonly signalsRead: number
  readonly rows: number
  readonly files: ReadonlyArray<SqlOutputFile>
}

/** The contract §6 aggregation in DuckDB over local index files, a pass at a time. */
export interface SqlFinalAggregator {
  /** Counts the input files without a `transaction_id_hash` column (written before it existed). */
  readonly filesWithoutHash: Effect.Effect<number, SqlError>
  readonly runPass: (
    selection: PassSelection | undefined,
    maxRowsPerFile: number
  ) => Effect.Effect<SqlPassOutcome, SqlError>
}

const fileList = (files: ReadonlyArray<string>) => `[${files.map(quoteLiteral).join(", ")}]`

const parquetSource = (files: ReadonlyArray<string>) =>
  `read_parquet(${fileList(files)}, union_by_name = true, hive_partitioning = false)`

const eventColumns = `event_id::VARCHAR AS event_id, transaction_id::VARCHAR AS transaction_id,
  sequence::BIGINT AS sequence, make_timestamp(epoch_us(event_time)) AS event_time, status::VARCHAR AS status,
  amount_minor::BIGINT AS amount_minor, currency::VARCHAR AS currency, user_id::VARCHAR AS user_id,
  merchant_id::VARCHAR AS merchant_id, payment_method::VARCHAR AS payment_method, card_bin::VARCHAR AS card_bin,
  card_last4::VARCHAR AS card_last4, processor::VARCHAR AS processor,
  processor_reference::VARCHAR AS processor_reference, country::VARCHAR AS country, device_id::VARCHAR AS device_id`

const signalColumns = `signal_id::VARCHAR AS signal_id, transaction_id::VARCHAR AS transaction_id,
  make_timestamp(epoch_us(event_time)) AS event_time, source::VARCHAR AS source, score::DOUBLE AS score,
  reasons::VARCHAR[] AS reasons, confirmed_fraud::BOOLEAN AS confirmed_fraud`

const emptyEvents = `SELECT NULL::VARCHAR AS event_id, NULL::VARCHAR AS transaction_id, NULL::BIGINT AS sequence,
  NULL::TIMESTAMP AS event_time, NULL::VARCHAR AS status, NULL::BIGINT AS amount_minor, NULL::VARCHAR AS currency,
  NULL::VARCHAR AS user_id, NULL::VARCHAR AS merchant_id, NULL::VARCHAR AS payment_method,
  NULL::VARCHAR AS card_bin, NULL::VARCHAR AS card_last4, NULL::VARCHAR AS processor,
  NULL::VARCHAR AS processor_reference, NULL::VARCHAR AS country, NULL::VARCHAR AS device_id WHERE false`

const emptySignals = `SELECT NULL::VARCHAR AS signal_id, NULL::VARCHAR AS transaction_id, NULL::TIMESTAMP AS event_time,
  NULL::VARCHAR AS source, NULL::DOUBLE AS score, NULL::VARCHAR[] AS reasons, NULL::BOOLEAN AS confirmed_fraud WHERE false`

/** Copies of one event_id: the greatest by the contract order, then by the tie-break fields, is kept. */
export const duplicateOrder = [
  "sequence DESC",
  "event_time DESC",
  ...duplicateTieBreakFields.map((field) => `${field} DESC NULLS LAST`)
].join(", ")

const sqlType: Record<ColumnSpec["type"], string> = {
  string: "VARCHAR",
  int64: "BIGINT",
  double: "DOUBLE",
  boolean: "BOOLEAN",
  timestamp: "TIMESTAMPTZ",
  string_list: "VARCHAR[]"
}

/** Each §6 column (and extension) as an expression over `t` (per transaction), `f` (fraud), `u`, `m`. */
const columnExpressions: Record<string, string> = {
  transaction_id: "t.transaction_id",
  status: "t.latest.status",
  sequence: "t.latest.sequence",
  amount_minor: "t.latest.amount_minor",
  currency: "t.latest.currency",
  user_id: "t.latest.user_id",
  merchant_id: "t.latest.merchant_id",
  payment_method: "t.latest.payment_method",
  card_bin: "t.latest.card_bin",
  card_last4: "t.latest.card_last4",
  processor: "t.latest.processor",
  processor_reference: "t.latest.processor_reference",
  country: "t.latest.country",
  first_event_time: "t.first_event_time",
  last_event_time: "t.last_event_time",
  authorized_at: "t.authorized_at",
  captured_at: "t.captured_at",
  settled_at: "t.settled_at",
  refunded_at: "t.refunded_at",
  chargeback_at: "t.chargeback_at",
  event_count: "t.event_count",
  fraud_signal_count: "coalesce(f.fraud_signal_count, 0)",
  fraud_max_score: "f.fraud_max_score",
  fraud_reasons: "coalesce(f.fraud_reasons, []::VARCHAR[])",
  confirmed_fraud: "coalesce(f.confirmed_fraud, false)",
  user_country: "u.country",
  user_kyc_level: "u.kyc_level",
  user_risk_tier: "u.risk_tier",
  user_created_at: "u.created_at",
  merchant_name: "m.name",
  merchant_mcc: "m.mcc",
  merchant_country: "m.country",
  merchant_risk_level: "m.risk_level",
  first_amount_minor: "t.earliest.amount_minor",
  first_currency: "t.earliest.currency",
  device_id: "t.earliest.device_id",
  fraud_prior_signal_max_score: "f.prior_signal_max_score"
}

const outputProjection = finalAggregateSchema
  .map((column) => {
    const expression = columnExpressions[column.name]
    if (expression === undefined) throw new Error(`no SQL expression for final_aggregate.${column.name}`)
    // Timestamps are UTC TIMESTAMP inside; the session is in UTC, so the cast keeps the instant.
    return `CAST(${expression} AS ${sqlType[column.type]}) AS ${quoteIdentifier(column.name)}`
  })
  .join(",\n    ")

const finalColumns = finalAggregateSchema.map((column) => quoteIdentifier(column.name)).join(", ")

/**
 * Contract §6 over the pass's events and signals (the same rules as `buildFinalAggregate`): copies of an
 * event_id reduced to one, the latest state the greatest by (sequence, event_time, event_id), the earliest
 * event the least by (event_time, sequence, event_id), fraud facts folded over every copy of every signal
 * of a transaction that has events, dimensions joined on the latest user_id and merchant_id, and each row's
 * dt.
 */
const passRowsSql = `
CREATE OR REPLACE TEMP TABLE pass_rows AS
WITH
repeated AS (SELECT transaction_id, event_id FROM pass_events GROUP BY ALL HAVING count(*) > 1),
events AS (
  SELECT * FROM pass_events ANTI JOIN repeated USING (transaction_id, event_id)
  UNION ALL
  SELECT * FROM (
    SELECT * FROM pass_events SEMI JOIN repeated USING (transaction_id, event_id)
    QUALIFY row_number() OVER (PARTITION BY transaction_id, event_id ORDER BY ${duplicateOrder}) = 1
  )
),
per_transaction AS (
  SELECT
    transaction_id,
    max_by(
      struct_pack(status, sequence, amount_minor, currency, user_id, merchant_id, payment_method, card_bin,
        card_last4, processor, processor_reference, country),
      (sequence, event_time, event_id)
    ) AS latest,
    min_by(struct_pack(amount_minor, currency, device_id), (event_time, sequence, event_id)) AS earliest,
    min(event_time) AS first_event_time,
    max(event_time) AS last_event_time,
    min(event_time) FILTER (WHERE status = 'authorized') AS authorized_at,
    min(event_time) FILTER (WHERE status = 'captured') AS captured_at,
    min(event_time) FILTER (WHERE status = 'settled') AS settled_at,
    min(event_time) FILTER (WHERE status IN ('refunded', 'partially_refunded')) AS refunded_at,
    min(event_time) FILTER (WHERE status = 'chargeback') AS chargeback_at,
    count(*) AS event_count
  FROM events
  GROUP BY transaction_id
),
fraud AS (
  SELECT
    s.transaction_id,
    count(DISTINCT s.signal_id) AS fraud_signal_count,
    max(s.score) AS fraud_max_score,
    list_sort(list_distinct(flatten(list(s.reasons)))) AS fraud_reasons,
    bool_or(coalesce(s.confirmed_fraud, false)) AS confirmed_fraud,
    max(s.score) FILTER (
      WHERE s.source IN ('rules', 'model', 'partner') AND s.confirmed_fraud IS NOT TRUE
        AND s.event_time <= t.first_event_time
    ) AS prior_signal_max_score
  FROM pass_signals s JOIN per_transaction t USING (transaction_id)
  GROUP BY s.transaction_id
),
final_rows AS (
  SELECT
    ${outputProjection},
    strftime(t.first_event_time, '%Y-%m-%d') AS dt
  FROM per_transaction t
  LEFT JOIN fraud f USING (transaction_id)
  LEFT JOIN users u ON u.user_id = t.latest.user_id
  LEFT JOIN merchants m ON m.merchant_id = t.latest.merchant_id
)
SELECT * FROM final_rows`

/** The dimension columns the final aggregate joins, handed to DuckDB through the Parquet codec. */
const userColumns: TableSchema = [
  column("user_id", "string"),
  column("country", "string"),
  column("kyc_level", "string"),
  column("risk_tier", "string"),
  column("created_at", "timestamp")
]
const merchantColumns: TableSchema = [
  column("merchant_id", "string"),
  column("name", "string"),
  column("mcc", "string"),
  column("country", "string"),
  column("risk_level", "string")
]

/**
 * Opens a DuckDB database for the final aggregate (memory bounded by `memoryLimit`, spilling under
 * `directory`), loads the dimension tables and gives the pass runner. Closed with the scope.
 */
export const openSqlFinalAggregator = (
  input: SqlFinalAggregateInput
): Effect.Effect<SqlFinalAggregator, SqlError | ParquetError, Scope.Scope> =>
  Effect.gen(function* () {
    const { run, query } = yield* makeDuckDb({
      memory_limit: input.memoryLimit,
      temp_directory: NodePath.join(input.directory, "spill"),
      preserve_insertion_order: "false"
    })
    yield* run("SET TimeZone = 'UTC'")
    // The validated snapshots, through the Parquet codec, as two tables.
    for (const [table, schema, rows] of [
      ["users", userColumns, [...input.dimensions.users.values()]],
      ["merchants", merchantColumns, [...input.dimensions.merchants.values()]]
    ] as const) {
      const body = yield* input.codec.encode(schema, rows as unknown as ReadonlyArray<TableRow>)
      const path = NodePath.join(input.directory, `${table}.parquet`)
      yield* Effect.promise(() => NodeFs.writeFile(path, body))
      yield* run(`CREATE TEMP TABLE ${table} AS SELECT * FROM read_parquet(${quoteLiteral(path)})`)
    }
    const allFiles = [...new Set([...input.transactionFiles, ...input.signalFiles])]
    const filesWithoutHash =
      allFiles.length === 0
        ? Effect.succeed(0)
        : Effect.map(
            query(
              `SELECT count(DISTINCT file_name) AS files FROM parquet_schema(${fileList(allFiles)}) WHERE name = 'transaction_id_hash'`
            ),
            (rows) => allFiles.length - Number(rows[0]?.["files"] ?? 0)
          )
    let passNumber = 0
    const runPass = (selection: PassSelection | undefined, maxRowsPerFile: number) =>
      Effect.gen(function* () {
        const where =
          selection === undefined
            ? ""
            : ` WHERE transaction_id_hash % ${selection.buckets} = ${selection.bucket}`
        const source = (files: ReadonlyArray<string>, columns: string, empty: string) =>
          files.length === 0 ? empty : `SELECT ${columns} FROM ${parquetSource(files)}${where}`
        yield* run(
          `CREATE OR REPLACE TEMP TABLE pass_events AS ${source(input.transactionFiles, eventColumns, emptyEvents)}`
        )
        yield* run(
          `CREATE OR REPLACE TEMP TABLE pass_signals AS ${source(input.signalFiles, signalColumns, emptySignals)}`
        )
        yield* run(passRowsSql)
        const [counts] = yield* query(
          "SELECT (SELECT count(*) FROM pass_events) AS events, (SELECT count(*) FROM pass_signals) AS signals, " +
            "(SELECT count(*) FROM pass_rows) AS rows"
        )
        const partitions = yield* query("SELECT dt, count(*) AS rows FROM pass_rows GROUP BY dt ORDER BY dt")
        const output = NodePath.join(input.directory, `pass-${passNumber++}`)
        yield* Effect.promise(() => NodeFs.mkdir(output, { recursive: true }))
        const files: Array<SqlOutputFile> = []
        const perFile = Math.max(1, Math.floor(maxRowsPerFile))
        for (const partition of partitions) {
          const dt = String(partition["dt"])
          const rows = Number(partition["rows"])
          const inDt = `dt = ${quoteLiteral(dt)}`
          if (rows <= perFile) {
            const path = NodePath.join(output, `${dt}-0.parquet`)
            yield* run(
              `COPY (SELECT ${finalColumns} FROM pass_rows WHERE ${inDt} ORDER BY transaction_id) ` +
                `TO ${quoteLiteral(path)} (${input.copyOptions})`
            )
            files.push({ dt: dt, path, rows })
            continue
          }
          // A dt larger than a file: numbered once in transaction_id order, then a file per slice.
          yield* run(
            `CREATE OR REPLACE TEMP TABLE dt_parts AS SELECT *, ` +
              `(row_number() OVER (ORDER BY transaction_id) - 1) // ${perFile} AS part FROM pass_rows WHERE ${inDt}`
          )
          for (let part = 0; part * perFile < rows; part++) {
            const path = NodePath.join(output, `${dt}-${part}.parquet`)
            yield* run(
              `COPY (SELECT ${finalColumns} FROM dt_parts WHERE part = ${part} ORDER BY transaction_id) ` +
                `TO ${quoteLiteral(path)} (${input.copyOptions})`
            )
            files.push({ dt: dt, path, rows: Math.min(perFile, rows - part * perFile) })
          }
          yield* run("DROP TABLE dt_parts")
        }
        yield* run("DROP TABLE pass_events; DROP TABLE pass_signals; DROP TABLE pass_rows")
        return {
          eventsRead: Number(counts?.["events"] ?? 0),
          signalsRead: Number(counts?.["signals"] ?? 0),
          rows: Number(counts?.["rows"] ?? 0),
          files
        } satisfies SqlPassOutcome
      })
    return { filesWithoutHash, runPass } satisfies SqlFinalAggregator
  })
