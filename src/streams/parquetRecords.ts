import {
  DuckDBArrayValue,
  DuckDBBlobValue,
  DuckDBDecimalValue,
  DuckDBListValue,
  DuckDBStructValue,
  type DuckDBValue
} from "@duckdb/node-api"
import { Effect } from "effect"
import { utf8Problem, utf8Text } from "../domain/bytes.js"
import { redactCardNumbersInText } from "../domain/card.js"
import { ParquetError } from "../domain/errors.js"
import type { RecordProblem } from "../domain/validation.js"
import { readParquetRows } from "../layers/ParquetCodec.js"
import { type TimestampUnit, withPlainColumns } from "../layers/parquetFooter.js"

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

/**
 * A DuckDB value as a JSON-like one. A BLOB (a BINARY column without the UTF8 annotation, as Impala and old
 * Hive write strings) is its UTF-8 text; when its bytes are not UTF-8, `onBadText` hears of it (with the
 * field's path) and the text has U+FFFD in their place.
 */
const toPlain = (value: DuckDBValue, path: string, onBadText: (problem: RecordProblem) => void): unknown => {
  if (value === null) return null
  if (typeof value === "bigint") return integerOf(value)
  if (value instanceof DuckDBDecimalValue) return decimalOf(value)
  if (value instanceof DuckDBBlobValue) {
    const problem = utf8Problem(value.bytes)
    if (problem !== undefined) onBadText({ field: path, reason: problem })
    return utf8Text(value.bytes)
  }
  if (value instanceof DuckDBListValue || value instanceof DuckDBArrayValue)
    return value.items.map((item, index) => toPlain(item, `${path}[${index}]`, onBadText))
  if (value instanceof DuckDBStructValue) {
    return Object.fromEntries(
      Object.entries(value.entries).map(([key, item]) => [key, toPlain(item, `${path}.${key}`, onBadText)])
    )
  }
  if (typeof value === "object") return String(value)
  return value
}

/** One row of a producer's Parquet file; `problems` when a binary text in it is not UTF-8. */
export interface ParquetRecord {
  readonly value: Record<string, unknown>
  readonly problems: ReadonlyArray<RecordProblem>
}

/**
 * A timestamp column as RFC 3339 UTC text with microseconds. Nanoseconds are floored to the microsecond, as
 * an RFC 3339 text's extra digits are (DuckDB's cast to TIMESTAMP truncates toward 1970: −500 ns became 0).
 */
const timestampText = (column: string, type: string): string => {
  const format = "'%Y-%m-%dT%H:%M:%S.%fZ'"
  if (type !== "TIMESTAMP_NS") return `strftime(CAST(${column} AS TIMESTAMP), ${format})`
  const nanos = `epoch_ns(${column})`
  return `strftime(make_timestamp((${nanos} - ((${nanos} % 1000) + 1000) % 1000) // 1000), ${format})`
}

/** The earliest and latest instants RFC 3339 can write (years 0000 to 9999), in microseconds. */
const rfc3339Micros = { min: -62_167_219_200_000_000n, max: 253_402_300_799_999_999n }
const floorDiv = (value: bigint, divisor: bigint): bigint => {
  const quotient = value / divisor
  return value % divisor < 0n ? quotient - 1n : quotient
}

/**
 * An INT64 timestamp read as a plain integer (see `withPlainColumns`) as the RFC 3339 text the normal path
 * gives (`timestampText`); one past what RFC 3339 can write is a problem of its field.
 */
const timestampOfInteger = (
  value: DuckDBValue,
  unit: TimestampUnit,
  path: string,
  onProblem: (problem: RecordProblem) => void
): unknown => {
  if (typeof value !== "bigint") return toPlain(value, path, onProblem)
  // DuckDB reads a UTC-adjusted NANOS column as microseconds itself, rounding toward 1970 (see the README);
  // the same here, so a value's text does not depend on whether another value made the file be read again.
  const micros =
    unit.unit === "millis"
      ? value * 1000n
      : unit.unit === "nanos"
        ? unit.adjustedToUtc === true
          ? value / 1000n
          : floorDiv(value, 1000n)
        : value
  if (micros < rfc3339Micros.min || micros > rfc3339Micros.max) {
    // The value is an integer a producer wrote: redacted like any refused value, in case it is a card number.
    onProblem({
      field: path,
      reason: `timestamp out of range: ${redactCardNumbersInText(String(value))} ${unit.unit} from 1970`
    })
    return null
  }
  const millis = floorDiv(micros, 1000n)
  const iso = new Date(Number(millis)).toISOString()
  return `${iso.slice(0, 23)}${String(micros - millis * 1000n).padStart(3, "0")}Z`
}

/**
 * The rows of a producer's Parquet file. DuckDB refuses a whole file when one value of a text column is not
 * UTF-8, or one millisecond timestamp is past what microseconds hold. The file is then read again with its
 * text columns declared binary and, if that is not enough, its top-level timestamps as plain integers; each
 * value is then checked on its own (`toPlain`, `timestampOfInteger`), so only the rows holding a bad value
 * are refused. Any other failure stands.
 */
const readTolerantly = async (body: Uint8Array) => {
  try {
    return { rows: await readParquetRows(body, timestampText), timestampUnits: noUnits }
  } catch (error) {
    for (const timestamps of [false, true]) {
      const plain = withPlainColumns(body, { timestamps })
      if (plain === undefined) continue
      try {
        return {
          rows: await readParquetRows(plain.file, timestampText),
          timestampUnits: plain.timestampUnits
        }
      } catch {
        // The next rewrite may do; otherwise the first failure stands.
      }
    }
    throw error
  }
}
const noUnits: ReadonlyMap<string, TimestampUnit> = new Map()

/**
 * Reads a producer's Parquet file with DuckDB. Timestamps become RFC 3339 UTC strings with microseconds,
 * integers numbers when safe (else their decimal string, which validation refuses), DECIMALs numbers (see
 * `decimalOf`), lists arrays; the records then go through the same validation as JSON Lines.
 */
export const readParquetRecords = (
  body: Uint8Array
): Effect.Effect<ReadonlyArray<ParquetRecord>, ParquetError> =>
  Effect.tryPromise({
    try: async () => {
      const { rows, timestampUnits } = await readTolerantly(body)
      return rows.map((row) => {
        const problems: Array<RecordProblem> = []
        const onProblem = (problem: RecordProblem) => problems.push(problem)
        const value = Object.fromEntries(
          Object.entries(row).map(([key, item]) => {
            const unit = timestampUnits.get(key)
            return [
              key,
              unit === undefined
                ? toPlain(item, key, onProblem)
                : timestampOfInteger(item, unit, key, onProblem)
            ]
          })
        )
        return { value, problems }
      })
    },
    catch: (cause) => new ParquetError({ operation: "read", cause })
  })
