import {
  DuckDBArrayValue,
  DuckDBDecimalValue,
  DuckDBListValue,
  DuckDBStructValue,
  type DuckDBValue
} from "@duckdb/node-api"
import { Effect } from "effect"
import { ParquetError } from "../domain/errors.js"
import { readParquetRows } from "../layers/ParquetCodec.js"

/** An exact integer as a number when it is safe, else its decimal string (which validation refuses). */
const integerOf = (value: bigint): number | string =>
  Number.isSafeInteger(Number(value)) ? Number(value) : value.toString()

/**
 * A DECIMAL (databases export money as NUMERIC(p, s)): a whole value is that integer, whatever its scale
 * (`1250.00` is 1250); any other is its nearest double, so an amount of `12.50` is refused as not whole
 * while a score of `0.50` is 0.5.
 */
const decimalOf = (decimal: DuckDBDecimalValue): number | string => {
  const unit = 10n ** BigInt(decimal.scale)
  return decimal.value % unit === 0n ? integerOf(decimal.value / unit) : decimal.toDouble()
}

const toPlain = (value: DuckDBValue): unknown => {
  if (value === null) return null
  if (typeof value === "bigint") return integerOf(value)
  if (value instanceof DuckDBDecimalValue) return decimalOf(value)
  if (value instanceof DuckDBListValue || value instanceof DuckDBArrayValue) return value.items.map(toPlain)
  if (value instanceof DuckDBStructValue) {
    return Object.fromEntries(Object.entries(value.entries).map(([key, item]) => [key, toPlain(item)]))
  }
  if (typeof value === "object") return String(value)
  return value
}

/**
 * Reads a producer's Parquet file with DuckDB. Timestamps become RFC 3339 UTC strings with microseconds,
 * integers numbers when safe (else their decimal string, which validation refuses), DECIMALs numbers (see
 * `decimalOf`), lists arrays; the records then go through the same validation as JSON Lines.
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
