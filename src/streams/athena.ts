import { Config } from "effect"
import {
  type ColumnType,
  finalAggregateSchema,
  indexedFraudSignalSchema,
  indexedTransactionSchema,
  scoredTransactionSchema,
  type TableSchema
} from "../domain/rows.js"
import { batchIndexPrefixes } from "./batchIndex.js"
import { prefixes, symlinkManifestKey } from "./datasets.js"
import { signalJoinSchema } from "./signalJoin.js"
import { streamingPrefixes } from "./streamingIndex.js"

/**
 * How a table finds its files: `symlink` reads the Hive symlink manifests a snapshot publish writes (only
 * committed files); `files` reads every Parquet file under the prefix (micro-batches that are not committed
 * yet can show up; a replayed batch rewrites the same keys).
 */
export type AthenaFileSource = "symlink" | "files"

/** One external table over a dataset of the processed bucket. */
export interface AthenaTable {
  readonly name: string
  readonly prefix: string
  readonly schema: TableSchema
  readonly source: AthenaFileSource
  readonly description: string
}

/** The tables: final_aggregate and batch_index through symlink manifests, streaming_index over its files. */
export const athenaTables: ReadonlyArray<AthenaTable> = [
  {
    name: "final_aggregate",
    prefix: prefixes.finalAggregate,
    schema: finalAggregateSchema,
    source: "symlink",
    description: "contract §6: one row per transaction_id (committed snapshot)"
  },
  {
    name: "batch_index_transactions",
    prefix: batchIndexPrefixes.transactions,
    schema: indexedTransactionSchema,
    source: "symlink",
    description: "every valid transaction event from raw/ (committed snapshot)"
  },
  {
    name: "batch_index_fraud_signals",
    prefix: batchIndexPrefixes.fraudSignals,
    schema: indexedFraudSignalSchema,
    source: "symlink",
    description: "every valid fraud signal from raw/ (committed snapshot)"
  },
  {
    name: "streaming_index_transactions",
    prefix: streamingPrefixes.transactions,
    schema: scoredTransactionSchema,
    source: "files",
    description: "transaction events indexed by the streaming service (fresh, micro-batches)"
  },
  {
    name: "streaming_index_fraud_signals",
    prefix: streamingPrefixes.fraudSignals,
    schema: indexedFraudSignalSchema,
    source: "files",
    description: "fraud signals indexed by the streaming service"
  },
  {
    name: "streaming_index_fraud_signal_joins",
    prefix: streamingPrefixes.signalJoins,
    schema: signalJoinSchema,
    source: "files",
    description: "fraud signals joined to their transactions in the stream"
  }
]

/** The Athena (Hive DDL) type of a column type: int64 money stays bigint, timestamps are UTC. */
export const athenaType = (type: ColumnType): string => {
  switch (type) {
    case "string":
      return "string"
    case "int64":
      return "bigint"
    case "double":
      return "double"
    case "boolean":
      return "boolean"
    case "timestamp":
      return "timestamp"
    case "string_list":
      return "array<string>"
  }
}

/** Where the tables live and what they are called. */
export interface AthenaDdlOptions {
  readonly database: string
  /** The processed bucket as a URI, e.g. `s3://recon-processed` (a key prefix may follow). */
  readonly location: string
  /** First day partition projection covers. */
  readonly projectionStart: string
}

const quoteName = (name: string) => `\`${name.replaceAll("`", "``")}\``
const quoteText = (text: string) => `'${text.replaceAll("'", "''")}'`

/** `CREATE EXTERNAL TABLE` for one table: partitioned by dt with partition projection, Parquet. */
export const athenaTableDdl = (table: AthenaTable, options: AthenaDdlOptions): string => {
  const base = options.location.replace(/\/+$/, "")
  const symlinkRoot = `${base}/${symlinkManifestKey(table.prefix, "DT").replace(/dt=DT\/manifest$/, "")}`
  const root = table.source === "symlink" ? symlinkRoot : `${base}/${table.prefix}`
  const columns = table.schema.map((column) => `  ${quoteName(column.name)} ${athenaType(column.type)}`)
  const storage =
    table.source === "symlink"
      ? [
          "ROW FORMAT SERDE 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe'",
          "STORED AS INPUTFORMAT 'org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat'",
          "OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'"
        ]
      : ["STORED AS PARQUET"]
  const properties = [
    ["projection.enabled", "true"],
    ["projection.dt.type", "date"],
    ["projection.dt.format", "yyyy-MM-dd"],
    ["projection.dt.range", `${options.projectionStart},NOW`],
    ["projection.dt.interval", "1"],
    ["projection.dt.interval.unit", "DAYS"],
    ["storage.location.template", `${root}dt=\${dt}/`],
    ["comment", table.description]
  ]
  return [
    `CREATE EXTERNAL TABLE IF NOT EXISTS ${quoteName(options.database)}.${quoteName(table.name)} (`,
    columns.join(",\n"),
    ")",
    "PARTITIONED BY (`dt` string)",
    ...storage,
    `LOCATION ${quoteText(root)}`,
    "TBLPROPERTIES (",
    properties.map(([key, value]) => `  ${quoteText(key ?? "")} = ${quoteText(value ?? "")}`).join(",\n"),
    ");"
  ].join("\n")
}

/** Every statement, database first, separated by blank lines: paste into Athena or run one by one. */
export const athenaDdl = (options: AthenaDdlOptions): string =>
  [
    `CREATE DATABASE IF NOT EXISTS ${quoteName(options.database)};`,
    ...athenaTables.map((table) => athenaTableDdl(table, options))
  ].join("\n\n")

/**
 * `RECON_ATHENA_DATABASE` [recon], `RECON_ATHENA_LOCATION` [s3://`RECON_S3_PROCESSED_BUCKET`, default
 * recon-processed], `RECON_ATHENA_PROJECTION_START` [2020-01-01].
 */
export const athenaDdlOptionsConfig: Config.Config<AthenaDdlOptions> = Config.all({
  database: Config.string("RECON_ATHENA_DATABASE").pipe(
    Config.withDefault("recon"),
    Config.validate({ message: "must be [a-z0-9_]+", validation: (name) => /^[a-z0-9_]+$/.test(name) })
  ),
  location: Config.string("RECON_ATHENA_LOCATION").pipe(
    Config.orElse(() =>
      Config.string("RECON_S3_PROCESSED_BUCKET").pipe(
        Config.withDefault("recon-processed"),
        Config.map((bucket) => `s3://${bucket}`)
      )
    ),
    Config.validate({ message: "must be an s3:// URI", validation: (uri) => /^s3:\/\/[^/]+/.test(uri) })
  ),
  projectionStart: Config.string("RECON_ATHENA_PROJECTION_START").pipe(
    Config.withDefault("2020-01-01"),
    Config.validate({ message: "must be YYYY-MM-DD", validation: (day) => /^\d{4}-\d{2}-\d{2}$/.test(day) })
  )
})
