import * as NodeFs from "node:fs/promises"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import {
  DuckDBArrayValue,
  DuckDBInstance,
  DuckDBListValue,
  DuckDBStructValue,
  type DuckDBValue
} from "@duckdb/node-api"
import { Effect } from "effect"
import { ParquetError } from "../domain/errors.js"

const timestampType = /^TIMESTAMP/

const quoteIdentifier = (name: string) => `"${name.replaceAll('"', '""')}"`

const toPlain = (value: DuckDBValue): unknown => {
  if (value === null) return null
  if (typeof value === "bigint") return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString()
  if (value instanceof DuckDBListValue || value instanceof DuckDBArrayValue) return value.items.map(toPlain)
  if (value instanceof DuckDBStructValue) {
    return Object.fromEntries(Object.entries(value.entries).map(([key, item]) => [key, toPlain(item)]))
  }
  if (typeof value === "object") return String(value)
  return value
}

/**
 * Reads a producer's Parquet file with DuckDB, which understands every writer's encodings (dictionary,
 * data page v2, zstd, nested LIST types, logical timestamps in any unit). Timestamps become RFC 3339 UTC
 * strings with microseconds, integers numbers when safe (else their decimal string, which validation
 * refuses), lists arrays; the records then go through the same validation as JSON Lines.
 */
export const readParquetRecords = (
  body: Uint8Array
): Effect.Effect<ReadonlyArray<Record<string, unknown>>, ParquetError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const directory = yield* Effect.acquireRelease(
        Effect.promise(() => NodeFs.mkdtemp(NodePath.join(NodeOs.tmpdir(), "recon-parquet-"))),
        (path) => Effect.promise(() => NodeFs.rm(path, { recursive: true, force: true }))
      )
      const file = NodePath.join(directory, "input.parquet")
      return yield* Effect.tryPromise({
        try: async () => {
          await NodeFs.writeFile(file, body)
          const instance = await DuckDBInstance.create(":memory:", { threads: "1" })
          const connection = await instance.connect()
          try {
            await connection.run("SET TimeZone = 'UTC'")
            const source = `read_parquet('${file.replaceAll("'", "''")}')`
            const columns = (await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`))
              .getRows()
              .map((row) => ({ name: String(row[0]), type: String(row[1]) }))
            const projection = columns
              .map(({ name, type }) =>
                timestampType.test(type)
                  ? `strftime(CAST(${quoteIdentifier(name)} AS TIMESTAMP), '%Y-%m-%dT%H:%M:%S.%fZ') AS ${quoteIdentifier(name)}`
                  : quoteIdentifier(name)
              )
              .join(", ")
            const result = await connection.runAndReadAll(`SELECT ${projection || "*"} FROM ${source}`)
            return result
              .getRowObjects()
              .map((row) =>
                Object.fromEntries(Object.entries(row).map(([key, value]) => [key, toPlain(value)]))
              )
          } finally {
            connection.closeSync()
            instance.closeSync()
          }
        },
        catch: (cause) => new ParquetError({ operation: "read", cause })
      })
    })
  )
