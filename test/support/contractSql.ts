import * as NodeFs from "node:fs"
import * as NodePath from "node:path"

/**
 * An independent implementation of contract §6 in DuckDB SQL, used as a cross-check of the published
 * `final_aggregate/`. It reads the validated index Parquet files the pipelines write and the raw dimension
 * snapshots, and shares no code with the TypeScript aggregator.
 */

/** The files the SQL reference reads; any list may be empty. */
export interface ContractSqlSources {
  /** Parquet files with indexedTransactionSchema rows (batch_index/, streaming_index/, late/). */
  readonly transactionFiles: ReadonlyArray<string>
  /** Parquet files with indexedFraudSignalSchema rows. */
  readonly fraudSignalFiles: ReadonlyArray<string>
  /** Files of the newest users snapshot (JSON Lines, gzipped JSON Lines or Parquet). */
  readonly userFiles: ReadonlyArray<string>
  /** Files of the newest merchants snapshot. */
  readonly merchantFiles: ReadonlyArray<string>
}

/** Where the buckets live on disk: `processedDir` holds `batch_index/` etc., `rawDir` holds `raw/`. */
export interface ContractSqlDirectories {
  readonly processedDir: string
  readonly rawDir: string
}

/** Columns of the §6 table in contract order, `dt` last. */
export const contractColumns = [
  "transaction_id",
  "status",
  "sequence",
  "amount_minor",
  "currency",
  "user_id",
  "merchant_id",
  "payment_method",
  "card_bin",
  "card_last4",
  "processor",
  "processor_reference",
  "country",
  "first_event_time",
  "last_event_time",
  "authorized_at",
  "captured_at",
  "settled_at",
  "refunded_at",
  "chargeback_at",
  "event_count",
  "fraud_signal_count",
  "fraud_max_score",
  "fraud_reasons",
  "confirmed_fraud",
  "user_country",
  "user_kyc_level",
  "user_risk_tier",
  "user_created_at",
  "merchant_name",
  "merchant_mcc",
  "merchant_country",
  "merchant_risk_level",
  "dt"
] as const

const timestampColumns = new Set<string>([
  "first_event_time",
  "last_event_time",
  "authorized_at",
  "captured_at",
  "settled_at",
  "refunded_at",
  "chargeback_at",
  "user_created_at"
])

const indexDatasetRoots = ["batch_index", "streaming_index", "late"] as const

const isJsonLines = (name: string) => /\.(jsonl|json|ndjson)(\.gz)?$/.test(name)
const isDataFile = (name: string) => isJsonLines(name) || name.endsWith(".parquet")

const filesIn = (directory: string, keep: (name: string) => boolean): Array<string> =>
  NodeFs.existsSync(directory)
    ? NodeFs.readdirSync(directory, { withFileTypes: true })
        .filter((entry) => entry.isFile() && !entry.name.startsWith(".tmp-") && keep(entry.name))
        .map((entry) => NodePath.join(directory, entry.name))
        .sort()
    : []

const subdirectories = (directory: string, pattern: RegExp): Array<string> =>
  NodeFs.existsSync(directory)
    ? NodeFs.readdirSync(directory, { withFileTypes: true })
        .filter((entry) => entry.isDirectory() && pattern.test(entry.name))
        .map((entry) => entry.name)
        .sort()
    : []

/** `<processed>/{batch_index,streaming_index,late}/<dataset>/dt=*\/*.parquet`, missing folders skipped. */
export const indexParquetFiles = (
  processedDir: string,
  dataset: "transactions" | "fraud_signals"
): Array<string> =>
  indexDatasetRoots.flatMap((root) => {
    const datasetDir = NodePath.join(processedDir, root, dataset)
    return subdirectories(datasetDir, /^dt=\d{4}-\d{2}-\d{2}$/).flatMap((partition) =>
      filesIn(NodePath.join(datasetDir, partition), (name) => name.endsWith(".parquet"))
    )
  })

/**
 * Contract §3: the data files of the newest `snapshot=YYYYMMDDTHHMMSSZ/` folder of a dimension (the
 * stamp's fixed width makes text order time order); files directly under the prefix are the oldest
 * snapshot, used only when no named folder holds data files.
 */
export const newestSnapshotFiles = (dimensionDir: string): Array<string> => {
  for (const folder of subdirectories(dimensionDir, /^snapshot=\d{8}T\d{6}Z$/).reverse()) {
    const files = filesIn(NodePath.join(dimensionDir, folder), isDataFile)
    if (files.length > 0) return files
  }
  return filesIn(dimensionDir, isDataFile)
}

/** The files the reference reads from the two bucket directories. */
export const contractSqlSources = (directories: ContractSqlDirectories): ContractSqlSources => ({
  transactionFiles: indexParquetFiles(directories.processedDir, "transactions"),
  fraudSignalFiles: indexParquetFiles(directories.processedDir, "fraud_signals"),
  userFiles: newestSnapshotFiles(NodePath.join(directories.rawDir, "raw", "dimensions", "users")),
  merchantFiles: newestSnapshotFiles(NodePath.join(directories.rawDir, "raw", "dimensions", "merchants"))
})

/** A SQL string literal. */
export const sqlLiteral = (text: string): string => `'${text.replaceAll("'", "''")}'`

const fileList = (files: ReadonlyArray<string>) => `[${files.map(sqlLiteral).join(", ")}]`

type Columns = ReadonlyArray<readonly [name: string, type: string]>

const transactionColumns: Columns = [
  ["event_id", "VARCHAR"],
  ["transaction_id", "VARCHAR"],
  ["sequence", "BIGINT"],
  ["event_time", "TIMESTAMP"],
  ["status", "VARCHAR"],
  ["amount_minor", "BIGINT"],
  ["currency", "VARCHAR"],
  ["user_id", "VARCHAR"],
  ["merchant_id", "VARCHAR"],
  ["payment_method", "VARCHAR"],
  ["card_bin", "VARCHAR"],
  ["card_last4", "VARCHAR"],
  ["processor", "VARCHAR"],
  ["processor_reference", "VARCHAR"],
  ["country", "VARCHAR"]
]

const signalColumns: Columns = [
  ["signal_id", "VARCHAR"],
  ["transaction_id", "VARCHAR"],
  ["event_time", "TIMESTAMP"],
  ["score", "DOUBLE"],
  ["reasons", "VARCHAR[]"],
  ["confirmed_fraud", "BOOLEAN"]
]

const userColumns: Columns = [
  ["user_id", "VARCHAR"],
  ["created_at", "VARCHAR"],
  ["country", "VARCHAR"],
  ["kyc_level", "VARCHAR"],
  ["risk_tier", "VARCHAR"]
]

const merchantColumns: Columns = [
  ["merchant_id", "VARCHAR"],
  ["name", "VARCHAR"],
  ["mcc", "VARCHAR"],
  ["country", "VARCHAR"],
  ["risk_level", "VARCHAR"],
  ["settlement_currency", "VARCHAR"]
]

/** A typed relation with no rows, for a source without files. */
const emptyRelation = (columns: Columns) =>
  `SELECT ${columns.map(([name, type]) => `CAST(NULL AS ${type}) AS ${name}`).join(", ")} WHERE false`

/**
 * Index Parquet files with their columns cast to the contract types. Timestamps go through their epoch
 * microseconds, so a file that marks them UTC-adjusted (read as TIMESTAMPTZ) gives the same UTC value.
 */
const indexRelation = (files: ReadonlyArray<string>, columns: Columns) =>
  files.length === 0
    ? emptyRelation(columns)
    : `SELECT ${columns
        .map(([name, type]) =>
          type === "TIMESTAMP"
            ? `make_timestamp(epoch_us(${name})) AS ${name}`
            : `CAST(${name} AS ${type}) AS ${name}`
        )
        .join(", ")} FROM read_parquet(${fileList(files)}, hive_partitioning = false, union_by_name = true)`

/**
 * Raw dimension rows, every column as text, from JSON Lines (plain or gzip) and Parquet files. A Parquet
 * `created_at` stored as a TIMESTAMP (not RFC 3339 text) is not supported.
 */
const dimensionRelation = (files: ReadonlyArray<string>, columns: Columns) => {
  const jsonFiles = files.filter((file) => isJsonLines(NodePath.basename(file)))
  const parquetFiles = files.filter((file) => file.endsWith(".parquet"))
  const asText = columns.map(([name]) => `CAST(${name} AS VARCHAR) AS ${name}`).join(", ")
  const parts: Array<string> = []
  if (jsonFiles.length > 0) {
    const declared = columns.map(([name]) => `${name}: 'VARCHAR'`).join(", ")
    parts.push(
      `SELECT ${asText}, filename FROM read_json(${fileList(jsonFiles)}, format = 'newline_delimited', columns = {${declared}}, filename = true, ignore_errors = true)`
    )
  }
  if (parquetFiles.length > 0) {
    parts.push(
      `SELECT ${asText}, filename FROM read_parquet(${fileList(parquetFiles)}, filename = true, union_by_name = true, hive_partitioning = false)`
    )
  }
  return parts.length === 0
    ? emptyRelation([...columns, ["filename", "VARCHAR"]])
    : parts.join("\nUNION ALL\n")
}

/** RFC 3339 with an offset (contract §3), parsed to a UTC TIMESTAMP; null when it does not parse. */
const rfc3339ToUtc = (column: string) =>
  `CASE WHEN regexp_full_match(${column}, '\\d{4}-\\d{2}-\\d{2}[Tt]\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?([Zz]|[+-]\\d{2}:\\d{2})')
     THEN make_timestamp(epoch_us(TRY_CAST(regexp_replace(upper(${column}), '^(.*\\.\\d{6})\\d+', '\\1') AS TIMESTAMPTZ))) END`

/**
 * The contract §6 table as one DuckDB query over `sources`, column for column as {@link contractColumns}:
 * events deduplicated by (transaction_id, event_id), the latest state the last by
 * (sequence, event_time, event_id) in DuckDB's byte order, lifecycle times, fraud facts, dimensions joined
 * on the latest user_id / merchant_id, and `dt` the UTC date of the first event. Dimension rows that break
 * §3's basic rules are dropped; a key listed twice in one snapshot takes the row of the last file by path.
 * Run {@link contractSessionSetup} on the connection first.
 */
export const contractFinalAggregateSql = (sources: ContractSqlSources): string => `
WITH
indexed_events AS (${indexRelation(sources.transactionFiles, transactionColumns)}),
events AS (
  SELECT * FROM indexed_events
  QUALIFY row_number() OVER (
    PARTITION BY transaction_id, event_id
    ORDER BY sequence, event_time, status, amount_minor, currency, user_id, merchant_id, payment_method,
      card_bin NULLS FIRST, card_last4 NULLS FIRST, processor, processor_reference, country NULLS FIRST
  ) = 1
),
latest_state AS (
  SELECT * FROM events
  QUALIFY row_number() OVER (
    PARTITION BY transaction_id ORDER BY sequence DESC, event_time DESC, event_id DESC
  ) = 1
),
lifecycle AS (
  SELECT
    transaction_id,
    min(event_time) AS first_event_time,
    max(event_time) AS last_event_time,
    min(event_time) FILTER (WHERE status = 'authorized') AS authorized_at,
    min(event_time) FILTER (WHERE status = 'captured') AS captured_at,
    min(event_time) FILTER (WHERE status = 'settled') AS settled_at,
    min(event_time) FILTER (WHERE status IN ('refunded', 'partially_refunded')) AS refunded_at,
    min(event_time) FILTER (WHERE status = 'chargeback') AS chargeback_at,
    count(DISTINCT event_id) AS event_count
  FROM events
  GROUP BY transaction_id
),
indexed_signals AS (${indexRelation(sources.fraudSignalFiles, signalColumns)}),
signals AS (
  SELECT * FROM indexed_signals
  QUALIFY row_number() OVER (
    PARTITION BY transaction_id, signal_id
    ORDER BY score, event_time, confirmed_fraud NULLS FIRST, CAST(reasons AS VARCHAR)
  ) = 1
),
signal_facts AS (
  SELECT
    transaction_id,
    count(DISTINCT signal_id) AS fraud_signal_count,
    max(score) AS fraud_max_score,
    coalesce(bool_or(confirmed_fraud), false) AS confirmed_fraud
  FROM signals
  GROUP BY transaction_id
),
signal_reasons AS (
  SELECT transaction_id, list(DISTINCT reason ORDER BY reason) AS fraud_reasons
  FROM (SELECT transaction_id, unnest(reasons) AS reason FROM signals)
  GROUP BY transaction_id
),
user_rows AS (${dimensionRelation(sources.userFiles, userColumns)}),
users AS (
  SELECT user_id, country, kyc_level, risk_tier, created_at_utc AS created_at
  FROM (SELECT *, ${rfc3339ToUtc("created_at")} AS created_at_utc FROM user_rows)
  WHERE length(user_id) BETWEEN 1 AND 128
    AND created_at_utc IS NOT NULL
    AND regexp_full_match(country, '[A-Z]{2}')
    AND kyc_level IN ('none', 'basic', 'full')
    AND risk_tier IN ('low', 'medium', 'high')
  QUALIFY row_number() OVER (
    PARTITION BY user_id ORDER BY filename DESC, created_at_utc DESC, country DESC, kyc_level DESC, risk_tier DESC
  ) = 1
),
merchant_rows AS (${dimensionRelation(sources.merchantFiles, merchantColumns)}),
merchants AS (
  SELECT merchant_id, name, mcc, country, risk_level
  FROM merchant_rows
  WHERE length(merchant_id) BETWEEN 1 AND 128
    AND name IS NOT NULL
    AND regexp_full_match(mcc, '\\d{4}')
    AND regexp_full_match(country, '[A-Z]{2}')
    AND risk_level IN ('low', 'medium', 'high')
    AND regexp_full_match(settlement_currency, '[A-Z]{3}')
  QUALIFY row_number() OVER (
    PARTITION BY merchant_id ORDER BY filename DESC, name DESC, mcc DESC, country DESC, risk_level DESC
  ) = 1
)
SELECT
  s.transaction_id,
  s.status,
  s.sequence,
  s.amount_minor,
  s.currency,
  s.user_id,
  s.merchant_id,
  s.payment_method,
  s.card_bin,
  s.card_last4,
  s.processor,
  s.processor_reference,
  s.country,
  l.first_event_time,
  l.last_event_time,
  l.authorized_at,
  l.captured_at,
  l.settled_at,
  l.refunded_at,
  l.chargeback_at,
  l.event_count,
  coalesce(f.fraud_signal_count, 0) AS fraud_signal_count,
  f.fraud_max_score,
  coalesce(r.fraud_reasons, CAST([] AS VARCHAR[])) AS fraud_reasons,
  coalesce(f.confirmed_fraud, false) AS confirmed_fraud,
  u.country AS user_country,
  u.kyc_level AS user_kyc_level,
  u.risk_tier AS user_risk_tier,
  u.created_at AS user_created_at,
  m.name AS merchant_name,
  m.mcc AS merchant_mcc,
  m.country AS merchant_country,
  m.risk_level AS merchant_risk_level,
  CAST(l.first_event_time AS DATE) AS dt
FROM latest_state s
JOIN lifecycle l USING (transaction_id)
LEFT JOIN signal_facts f USING (transaction_id)
LEFT JOIN signal_reasons r USING (transaction_id)
LEFT JOIN users u ON u.user_id = s.user_id
LEFT JOIN merchants m ON m.merchant_id = s.merchant_id
`

/** Statements to run on the connection before {@link contractFinalAggregateSql}. */
export const contractSessionSetup: ReadonlyArray<string> = ["SET TimeZone = 'UTC'"]

/** The published `final_aggregate/` as a relation, `dt` from the partition path. */
export const publishedFinalAggregateSql = (processedDir: string): string =>
  `SELECT * FROM read_parquet(${sqlLiteral(
    NodePath.join(processedDir, "final_aggregate", "dt=*", "*.parquet")
  )}, hive_partitioning = true)`

/**
 * A §6 relation in a form compared with IS DISTINCT FROM: timestamps as epoch microseconds, lists sorted,
 * integers as BIGINT, `dt` as its text.
 */
const comparableSql = (relation: string) =>
  `SELECT ${contractColumns
    .map((name) => {
      if (timestampColumns.has(name)) return `epoch_us(${name}) AS ${name}`
      if (name === "fraud_reasons") return `list_sort(${name}) AS ${name}`
      if (name === "dt") return `CAST(${name} AS VARCHAR) AS ${name}`
      if (name === "sequence" || name === "amount_minor" || name.endsWith("_count"))
        return `CAST(${name} AS BIGINT) AS ${name}`
      if (name === "fraud_max_score") return `CAST(${name} AS DOUBLE) AS ${name}`
      return name
    })
    .join(", ")} FROM (${relation})`

/**
 * One row per transaction_id on which two §6 relations disagree: `presence` is `both`,
 * `expected_only` or `actual_only`, `differences` lists `column: expected ≠ actual` (values as JSON).
 * Also checks each relation for repeated transaction_ids (`presence` = `repeated_expected` /
 * `repeated_actual`). Ordered by transaction_id.
 */
export const finalAggregateDifferencesSql = (expected: string, actual: string): string => {
  const differences = contractColumns
    .filter((name) => name !== "transaction_id")
    .map(
      (name) =>
        `CASE WHEN e.${name} IS DISTINCT FROM a.${name} THEN '${name}: ' || coalesce(CAST(to_json(e.${name}) AS VARCHAR), 'null') || ' ≠ ' || coalesce(CAST(to_json(a.${name}) AS VARCHAR), 'null') END`
    )
    .join(",\n      ")
  return `
WITH
e AS (${comparableSql(expected)}),
a AS (${comparableSql(actual)}),
repeated AS (
  SELECT transaction_id, 'repeated_expected' AS presence, [count(*) || ' rows'] AS differences FROM e GROUP BY ALL HAVING count(*) > 1
  UNION ALL
  SELECT transaction_id, 'repeated_actual', [count(*) || ' rows'] FROM a GROUP BY ALL HAVING count(*) > 1
),
joined AS (
  SELECT
    coalesce(e.transaction_id, a.transaction_id) AS transaction_id,
    CASE WHEN a.transaction_id IS NULL THEN 'expected_only' WHEN e.transaction_id IS NULL THEN 'actual_only' ELSE 'both' END AS presence,
    list_filter([
      ${differences}
    ], item -> item IS NOT NULL) AS differences
  FROM e FULL OUTER JOIN a ON e.transaction_id = a.transaction_id
)
SELECT transaction_id, presence, differences FROM joined WHERE presence <> 'both' OR len(differences) > 0
UNION ALL
SELECT * FROM repeated
ORDER BY transaction_id, presence
`
}

/** One transaction on which the reference and the published table disagree. */
export interface FinalAggregateDifference {
  readonly transaction_id: string
  readonly presence: string
  readonly differences: ReadonlyArray<string>
}

/** A readable report of the first `limit` differences, with the total. */
export const describeDifferences = (
  differences: ReadonlyArray<FinalAggregateDifference>,
  limit = 5
): string =>
  [
    `${differences.length} transaction(s) differ between the SQL reference (expected) and final_aggregate (actual):`,
    ...differences
      .slice(0, limit)
      .map(
        (row) =>
          `  ${JSON.stringify(row.transaction_id)} [${row.presence}]${row.differences
            .map((item) => `\n      ${item}`)
            .join("")}`
      ),
    ...(differences.length > limit ? [`  … and ${differences.length - limit} more`] : [])
  ].join("\n")
