import { DuckDBArrayValue, DuckDBListValue, DuckDBStructValue, type DuckDBValue } from "@duckdb/node-api"
import { Effect } from "effect"
import { ParquetError } from "../domain/errors.js"
import { readParquetRows } from "../layers/ParquetCodec.js"

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
 * Reads a producer's Parquet file with DuckDB. Timestamps become RFC 3339 UTC strings with microseconds,
 * integers numbers when safe (else their decimal string, which validation refuses), lists arrays; the
 * records then go through the same validation as JSON Lines.
 */
export const readParquetRecords = (
  body: Uint8Array
): Effect.Effect<ReadonlyArray<Record<string, unknown>>, ParquetError> =>
  Effect.tryPromise({
    try: async () =>
      (
        await readParquetRows(
          body,
          (column) => `strftime(CAST(${column} AS TIMESTAMP), '%Y-%m-%dT%H:%M:%S.%fZ')`
        )
      ).map((row) => Object.fromEntries(Object.entries(row).map(([key, value]) => [key, toPlain(value)]))),
    catch: (cause) => new ParquetError({ operation: "read", cause })
  })
