import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import { Writable } from "node:stream"
import parquet from "@dsnp/parquetjs"
import { type DuckDBConnection, DuckDBInstance, type DuckDBValue } from "@duckdb/node-api"
import { Config, Context, Effect, Layer } from "effect"
import { ParquetError } from "../domain/errors.js"
import { forEachJsonLine } from "../domain/jsonLines.js"
import type { CellValue, ColumnSpec, TableRow, TableSchema } from "../domain/rows.js"
import { quoteIdentifier, quoteLiteral } from "./DuckDb.js"
import { writeSpoolParquet } from "./parquetSpool.js"
import { makeScratchDirectory } from "./scratch.js"

/**
 * The rows a reader wants from a file: those whose integer `column` is `remainder` modulo `modulus` (a
 * shard's share of the transactions). A file without that column gives every row: readers still check.
 */
export interface RowSelection {
  readonly column: string
  readonly modulus: number
  readonly remainder: number
}

const checkedSelection = (selection: RowSelection): RowSelection => {
  const { modulus, remainder } = selection
  if (
    !Number.isSafeInteger(modulus) ||
    modulus < 1 ||
    !Number.isSafeInteger(remainder) ||
    remainder < 0 ||
    remainder >= modulus
  )
    throw new Error(`row selection needs 0 <= remainder < modulus, got ${remainder} of ${modulus}`)
  return selection
}

/** Encodes rows of a {@link TableSchema} into Parquet files and back. */
export interface ParquetCodec {
  readonly encode: (
    schema: TableSchema,
    rows: ReadonlyArray<TableRow>
  ) => Effect.Effect<Uint8Array, ParquetError>
  /**
   * Decodes every row; int64 and timestamps come back as numbers (safe integers), absent values as null.
   * With `columns`, rows hold only those columns (the others may not be read at all); with `selection`,
   * only the rows it selects (filtered inside the reader, before rows become JavaScript values).
   */
  readonly decode: (
    body: Uint8Array,
    columns?: ReadonlyArray<string>,
    selection?: RowSelection
  ) => Effect.Effect<ReadonlyArray<TableRow>, ParquetError>
  /**
   * The options of DuckDB's `COPY … TO` this codec writes with (format, compression, row group size), when
   * it writes through DuckDB; a SQL job writing the same datasets in DuckDB uses them. Undefined otherwise.
   */
  readonly duckDbCopyOptions: string | undefined
}

type ParquetFieldDefinition = {
  type: string
  optional?: boolean
  repeated?: boolean
  compression?: "UNCOMPRESSED" | "SNAPPY" | "GZIP" | "BROTLI"
}

const parquetType: Record<ColumnSpec["type"], string> = {
  string: "UTF8",
  int64: "INT64",
  double: "DOUBLE",
  boolean: "BOOLEAN",
  timestamp: "TIMESTAMP_MICROS",
  string_list: "UTF8"
}

const toParquetSchema = (
  schema: TableSchema,
  compression: NonNullable<ParquetFieldDefinition["compression"]>
) => {
  const fields: Record<string, ParquetFieldDefinition> = {}
  for (const column of schema) {
    fields[column.name] =
      column.type === "string_list"
        ? { type: parquetType[column.type], repeated: true, compression }
        : { type: parquetType[column.type], optional: column.optional, compression }
  }
  return new parquet.ParquetSchema(fields as ConstructorParameters<typeof parquet.ParquetSchema>[0])
}

const toParquetValue = (column: ColumnSpec, value: CellValue | undefined): unknown => {
  if (value === null || value === undefined) return undefined
  switch (column.type) {
    case "int64":
    case "timestamp":
      return BigInt(value as number)
    case "string_list":
      return [...(value as ReadonlyArray<string>)]
    default:
      return value
  }
}

const fromParquetValue = (value: unknown, repeated: boolean): CellValue => {
  if (value === null || value === undefined) return repeated ? [] : null
  if (typeof value === "bigint") return Number(value)
  if (value instanceof Date) return value.getTime() * 1000
  if (Array.isArray(value)) return value.map(String)
  return value as CellValue
}

class ChunkCollector extends Writable {
  readonly chunks: Array<Buffer> = []
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.chunks.push(chunk)
    callback()
  }
}

/** Options of the @dsnp/parquetjs codec. */
export interface ParquetCodecOptions {
  /** Rows per row group: bounds memory while writing and sets the unit readers can skip. */
  readonly rowGroupSize: number
  readonly compression: "UNCOMPRESSED" | "SNAPPY" | "GZIP" | "BROTLI"
}

/** The codec on @dsnp/parquetjs (pure JavaScript). */
export const makeParquetjsCodec = (options: ParquetCodecOptions): ParquetCodec => ({
  duckDbCopyOptions: undefined,
  encode: (schema, rows) =>
    Effect.tryPromise({
      try: async () => {
        const output = new ChunkCollector()
        const writer = await parquet.ParquetWriter.openStream(
          toParquetSchema(schema, options.compression),
          output as unknown as Parameters<typeof parquet.ParquetWriter.openStream>[1],
          { rowGroupSize: options.rowGroupSize }
        )
        for (const row of rows) {
          const record: Record<string, unknown> = {}
          for (const column of schema) {
            const value = toParquetValue(column, row[column.name])
            if (value !== undefined) record[column.name] = value
          }
          await writer.appendRow(record)
        }
        await writer.close()
        return new Uint8Array(Buffer.concat(output.chunks))
      },
      catch: (cause) => new ParquetError({ operation: "write", cause })
    }),
  decode: (body, columns, selection) =>
    Effect.tryPromise({
      try: async () => {
        const selected = selection === undefined ? undefined : checkedSelection(selection)
        const wanted = columns === undefined ? undefined : new Set(columns)
        const reader = await parquet.ParquetReader.openBuffer(
          Buffer.from(body.buffer, body.byteOffset, body.byteLength)
        )
        try {
          const fields = reader
            .getSchema()
            .fieldList.filter((field) => wanted === undefined || wanted.has(field.name))
          // Read timestamps as their raw INT64 microseconds: the library's Date conversion drops precision.
          for (const field of fields) {
            if (field.originalType === "TIMESTAMP_MICROS")
              delete (field as { originalType?: string }).originalType
          }
          const repeated = new Set(
            fields.filter((field) => field.repetitionType === "REPEATED").map((f) => f.name)
          )
          const cursor = reader.getCursor()
          const rows: Array<TableRow> = []
          for (let record = await cursor.next(); record; record = await cursor.next()) {
            if (selected !== undefined) {
              const value = fromParquetValue((record as Record<string, unknown>)[selected.column], false)
              if (typeof value === "number" && value % selected.modulus !== selected.remainder) continue
            }
            const row: Record<string, CellValue> = {}
            for (const field of fields) {
              row[field.name] = fromParquetValue(
                (record as Record<string, unknown>)[field.name],
                repeated.has(field.name)
              )
            }
            rows.push(row)
          }
          return rows
        } finally {
          await reader.close()
        }
      },
      catch: (cause) => new ParquetError({ operation: "read", cause })
    })
})

let sharedInstance: Promise<DuckDBInstance> | undefined

/** A connection to the process's in-memory DuckDB used for Parquet files, with the session in UTC. */
const connectDuckDb = async () => {
  sharedInstance ??= DuckDBInstance.create(":memory:", { threads: "2" })
  const connection = await (await sharedInstance).connect()
  await connection.run("SET TimeZone = 'UTC'")
  return connection
}

const withTemporaryDirectory = <A>(use: (directory: string) => Promise<A>): Promise<A> =>
  makeScratchDirectory("recon-duckdb-parquet-").then((directory) =>
    use(directory).finally(() => NodeFs.rm(directory, { recursive: true, force: true }))
  )

/** DuckDB's scalar timestamp types (a list of them is `TIMESTAMP[]`, a struct `STRUCT(…)`). */
const scalarTimestampType = /^TIMESTAMP(_S|_MS|_NS| WITH TIME ZONE)?$/

/**
 * Writes a Parquet body to a temporary file and runs `use` with a DuckDB connection and the SELECT that
 * reads `columns` of it (every column when not given), each timestamp column (a scalar one: lists and structs
 * of timestamps stay as they are) as `timestampAs` makes it from the column and its DuckDB type.
 */
const withParquetSelect = <A>(
  body: Uint8Array,
  timestampAs: (quotedColumn: string, type: string) => string,
  columns: ReadonlyArray<string> | undefined,
  use: (connection: DuckDBConnection, select: string, directory: string) => Promise<A>,
  selection?: RowSelection
): Promise<A> =>
  withTemporaryDirectory(async (directory) => {
    const file = NodePath.join(directory, "input.parquet")
    await NodeFs.writeFile(file, body)
    const connection = await connectDuckDb()
    try {
      const source = `read_parquet(${quoteLiteral(file)})`
      const wanted = columns === undefined ? undefined : new Set(columns)
      const described = (await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`)).getRows()
      const where =
        selection !== undefined && described.some((row) => String(row[0]) === selection.column)
          ? ` WHERE ${quoteIdentifier(selection.column)} % ${selection.modulus} = ${selection.remainder}`
          : ""
      const projection = described
        .filter((row) => wanted === undefined || wanted.has(String(row[0])))
        .map((row) => {
          const name = quoteIdentifier(String(row[0]))
          const type = String(row[1])
          return scalarTimestampType.test(type) ? `${timestampAs(name, type)} AS ${name}` : name
        })
        .join(", ")
      return await use(connection, `SELECT ${projection || "*"} FROM ${source}${where}`, directory)
    } finally {
      connection.closeSync()
    }
  })

/**
 * Reads every row of a Parquet file with DuckDB, which understands every writer's encodings (dictionary,
 * data page v2, zstd, nested LIST types, logical timestamps in any unit). `timestampAs` turns a quoted
 * timestamp column into the SQL expression to select instead (e.g. `epoch_us(…)`).
 */
export const readParquetRows = (
  body: Uint8Array,
  timestampAs: (quotedColumn: string, type: string) => string
): Promise<ReadonlyArray<Record<string, DuckDBValue>>> =>
  withParquetSelect(body, timestampAs, undefined, async (connection, select) =>
    (await connection.runAndReadAll(select)).getRowObjects()
  )

/**
 * Reads a file this codec wrote: DuckDB copies it to JSON Lines (timestamps as epoch microseconds) and
 * V8's JSON.parse builds the rows, several times faster than converting DuckDB values one by one through
 * the bindings. Only for our own files, whose integers are within 2^53 (money is checked on the way in);
 * producers' files go through {@link readParquetRows}, which keeps every integer exact.
 */
const readOwnParquetRows = (
  body: Uint8Array,
  columns?: ReadonlyArray<string>,
  selection?: RowSelection
): Promise<ReadonlyArray<TableRow>> =>
  withParquetSelect(
    body,
    (column) => `epoch_us(${column})`,
    columns,
    async (connection, select, directory) => {
      const output = NodePath.join(directory, "rows.jsonl")
      await connection.run(`COPY (${select}) TO ${quoteLiteral(output)} (FORMAT json)`)
      const rows: Array<TableRow> = []
      forEachJsonLine(await NodeFs.readFile(output), (row) => rows.push(row as TableRow))
      return rows
    },
    selection === undefined ? undefined : checkedSelection(selection)
  )

/** Options of the DuckDB codec. */
export interface DuckDbCodecOptions {
  readonly rowGroupSize: number
  /**
   * Rows per spool file handed to DuckDB. Default 10 000: DuckDB parses each file (one JSON object) on
   * one thread, so several smaller files parse in parallel (200k rows: 160–210k rows/s instead of 110k
   * with 100 000-row files).
   */
  readonly spoolRows?: number
  readonly compression: "zstd" | "snappy" | "uncompressed"
}

/**
 * The codec on DuckDB (`COPY … TO … (FORMAT parquet)`): rows go through a spool file holding one JSON
 * object of columns that DuckDB reads with explicit column types and unnests in row order, so money stays exact int64 and timestamps are written as
 * UTC-adjusted TIMESTAMP (microseconds) logical types; string lists as standard 3-level LISTs.
 */
export const makeDuckDbCodec = (options: DuckDbCodecOptions): ParquetCodec => {
  const spoolRows = Math.max(1, options.spoolRows ?? 10_000)
  const copyOptions = `FORMAT parquet, COMPRESSION ${options.compression}, ROW_GROUP_SIZE ${options.rowGroupSize}`
  return {
    duckDbCopyOptions: copyOptions,
    encode: (schema, rows) =>
      Effect.tryPromise({
        try: () =>
          withTemporaryDirectory(async (directory) => {
            const output = NodePath.join(directory, "rows.parquet")
            const spool = NodePath.join(directory, "rows.spool.parquet")
            const handle = await NodeFs.open(spool, "w")
            try {
              await writeSpoolParquet(schema, rows, spoolRows, async (bytes) => {
                for (let written = 0; written < bytes.length; )
                  written += (await handle.write(bytes, written)).bytesWritten
              })
            } finally {
              await handle.close()
            }
            const projection = schema
              .map((column) =>
                column.type === "timestamp"
                  ? `CAST(make_timestamp(${quoteIdentifier(column.name)}) AS TIMESTAMPTZ) AS ${quoteIdentifier(column.name)}`
                  : column.type === "string_list"
                    ? `coalesce(${quoteIdentifier(column.name)}, []::VARCHAR[]) AS ${quoteIdentifier(column.name)}`
                    : quoteIdentifier(column.name)
              )
              .join(", ")
            const source = `read_parquet(${quoteLiteral(spool)})`
            const connection = await connectDuckDb()
            try {
              await connection.run(
                `COPY (SELECT ${projection} FROM ${source}) TO ${quoteLiteral(output)} (${copyOptions})`
              )
            } finally {
              connection.closeSync()
            }
            return new Uint8Array(await NodeFs.readFile(output))
          }),
        catch: (cause) => new ParquetError({ operation: "write", cause })
      }),
    decode: (body, columns, selection) =>
      Effect.tryPromise({
        try: () => readOwnParquetRows(body, columns, selection),
        catch: (cause) => new ParquetError({ operation: "read", cause })
      })
  }
}

/** The Parquet codec service: DuckDB by default, @dsnp/parquetjs on request (see README and bench/). */
export class Parquet extends Context.Tag("ParquetCodec")<Parquet, ParquetCodec>() {
  /** DuckDB, zstd, 64k-row groups. */
  static readonly layer = (options: Partial<DuckDbCodecOptions> = {}) =>
    Layer.succeed(Parquet, makeDuckDbCodec({ rowGroupSize: 65_536, compression: "zstd", ...options }))
  /** @dsnp/parquetjs, snappy, 64k-row groups. */
  static readonly layerParquetjs = (options: Partial<ParquetCodecOptions> = {}) =>
    Layer.succeed(Parquet, makeParquetjsCodec({ rowGroupSize: 65_536, compression: "SNAPPY", ...options }))
  /**
   * `RECON_PARQUET_WRITER` (`duckdb`, default, or `parquetjs`), `RECON_PARQUET_ROW_GROUP_SIZE` (default
   * 65536) and, for parquetjs, `RECON_PARQUET_COMPRESSION` (default SNAPPY; DuckDB writes zstd).
   */
  static readonly layerConfig = Layer.effect(
    Parquet,
    Effect.gen(function* () {
      const writer = yield* Config.literal(
        "duckdb",
        "parquetjs"
      )("RECON_PARQUET_WRITER").pipe(Config.withDefault("duckdb" as const))
      const rowGroupSize = yield* Config.integer("RECON_PARQUET_ROW_GROUP_SIZE").pipe(
        Config.withDefault(65_536)
      )
      if (writer === "duckdb") return makeDuckDbCodec({ rowGroupSize, compression: "zstd" })
      const compression = yield* Config.literal(
        "UNCOMPRESSED",
        "SNAPPY",
        "GZIP",
        "BROTLI"
      )("RECON_PARQUET_COMPRESSION").pipe(Config.withDefault("SNAPPY" as const))
      return makeParquetjsCodec({ rowGroupSize, compression })
    })
  )
}
