import { isUtf8 } from "node:buffer"
import { constants, gunzipSync } from "node:zlib"
import { Effect, Either, type Schema } from "effect"
import { utf8Problem, utf8Text } from "../domain/bytes.js"
import { redactCardNumbersInText } from "../domain/card.js"
import { sortedFieldsOf } from "../domain/fingerprint.js"
import {
  decodeJsonRecord,
  decodeValue,
  type RecordProblem,
  type RejectedRecord,
  redactedPayloadOf
} from "../domain/validation.js"
import { readParquetRecords } from "./parquetRecords.js"

/**
 * One record read from a producer file, before validation; `refused` when the line is unusable as it stands
 * (its bytes are not UTF-8, or a truncated gzip file ended in the middle of it), with the problem.
 */
export type RawRecord =
  | { readonly location: string; readonly text: string; readonly refused?: RecordProblem }
  | {
      readonly location: string
      readonly value: Record<string, unknown>
      /** Binary texts in the row that are not UTF-8: they refuse it when they sit in a field of the record kind. */
      readonly textProblems?: ReadonlyArray<RecordProblem>
    }

/** A whole file that could not be read (corrupt gzip or Parquet): quarantined as one entry. */
export interface UnreadableFile {
  readonly location: string
  readonly reason: string
}

/** File name endings the batch layer reads; anything else under a data prefix is skipped and reported. */
export const rawFileKind = (key: string): "jsonl" | "jsonl.gz" | "parquet" | undefined => {
  if (key.endsWith(".jsonl") || key.endsWith(".json") || key.endsWith(".ndjson")) return "jsonl"
  if (key.endsWith(".jsonl.gz") || key.endsWith(".json.gz") || key.endsWith(".ndjson.gz")) return "jsonl.gz"
  if (key.endsWith(".parquet")) return "parquet"
  return undefined
}

/**
 * Whether a path below a dataset prefix belongs to a writer's private files: any part starting `_` or `.`
 * (`_temporary/`, `.spark-staging/`, `_SUCCESS`), which Hadoop and Spark readers skip as well.
 */
export const isHiddenPath = (path: string): boolean =>
  path.split("/").some((part) => part.startsWith("_") || part.startsWith("."))

/**
 * Splits JSON Lines text into records; blank lines (only JSON's whitespace: space, tab, CR) are not records,
 * while a line of other white space (U+00A0, U+3000, a BOM) is one, refused as not JSON; a BOM at the start
 * of the file is dropped (here only: the text was decoded keeping every BOM, wherever a segment starts).
 */
const splitJsonLines = (text: string, key: string, firstLine = 1): Array<RawRecord> => {
  const records: Array<RawRecord> = []
  const lines = (firstLine === 1 ? text.replace(/^\uFEFF/, "") : text).split("\n")
  lines.forEach((line, index) => {
    const trimmed = line.endsWith("\r") ? line.slice(0, -1) : line
    if (!/^[ \t\r]*$/.test(trimmed)) records.push({ location: `${key}:${firstLine + index}`, text: trimmed })
  })
  return records
}

/**
 * The records of JSON Lines bytes. Lines must be UTF-8 (RFC 8259): a line that is not is refused naming
 * the first bad byte instead of being read with U+FFFD in place of its bytes, which would silently merge
 * ids that differ only there ("id-\xff" and "id-\xfe"). Valid files take one native check.
 */
export const jsonLinesRecords = (bytes: Uint8Array, key: string): Array<RawRecord> => {
  if (isUtf8(bytes)) return splitJsonLines(utf8Text(bytes), key)
  const records: Array<RawRecord> = []
  let lineNumber = 1
  let start = 0
  let validFrom = 0
  let validFromLine = 1
  const flushValid = (end: number) => {
    if (end > validFrom)
      for (const record of splitJsonLines(utf8Text(bytes.subarray(validFrom, end)), key, validFromLine))
        records.push(record)
  }
  while (start <= bytes.length) {
    const newline = bytes.indexOf(10, start)
    const end = newline === -1 ? bytes.length : newline
    const line = bytes.subarray(start, end)
    const problem = utf8Problem(line)
    if (problem !== undefined) {
      flushValid(start)
      const text = utf8Text(line)
      records.push({
        location: `${key}:${lineNumber}`,
        text: text.endsWith("\r") ? text.slice(0, -1) : text,
        refused: { field: "(record)", reason: `${problem} of the line` }
      })
      validFrom = end + 1
      validFromLine = lineNumber + 1
    }
    if (newline === -1) break
    start = newline + 1
    lineNumber++
  }
  flushValid(bytes.length)
  return records
}

/**
 * The lines of a gzipped JSON Lines file. A file cut short (an interrupted upload or copy) keeps the lines
 * it holds whole; the line it ends in becomes one record refused as cut, so the run neither loses the lines
 * before it nor takes half a line for a record. A file that is not gzip at all, or corrupt within, is
 * unreadable as a whole.
 */
const readGzipLines = (key: string, body: Uint8Array): Either.Either<Array<RawRecord>, UnreadableFile> => {
  let whole: Buffer | undefined
  let error: unknown
  try {
    whole = gunzipSync(body)
  } catch (gunzipError) {
    error = gunzipError
  }
  if (whole !== undefined) return Either.right(jsonLinesRecords(whole, key))
  let partial: Buffer
  try {
    partial = gunzipSync(body, { finishFlush: constants.Z_SYNC_FLUSH })
  } catch {
    return Either.left({ location: key, reason: `not a readable gzip file: ${String(error)}` })
  }
  const wholeLinesEnd = partial.lastIndexOf(10) + 1
  const records = jsonLinesRecords(partial.subarray(0, wholeLinesEnd), key)
  let lineNumber = 1
  for (let at = partial.indexOf(10); at !== -1 && at < wholeLinesEnd; at = partial.indexOf(10, at + 1))
    lineNumber++
  const tail = utf8Text(partial.subarray(wholeLinesEnd))
  records.push({
    location: `${key}:${lineNumber}`,
    text: tail,
    refused: {
      field: "(file)",
      reason:
        `the gzip file ends early (${String(error)}): ` +
        (tail !== ""
          ? `line ${lineNumber} is cut off`
          : lineNumber > 1
            ? `nothing after line ${lineNumber - 1} could be read`
            : "no whole line could be read")
    }
  })
  return Either.right(records)
}

/**
 * Reads the records of one producer file (JSON Lines, gzipped JSON Lines or Parquet). A file that cannot be
 * read at all is returned as unreadable instead of failing the run.
 */
export const readRawRecords = (
  key: string,
  body: Uint8Array
): Effect.Effect<Either.Either<Array<RawRecord>, UnreadableFile>> => {
  const kind = rawFileKind(key)
  switch (kind) {
    case "jsonl":
      return Effect.sync(() => Either.right(jsonLinesRecords(body, key)))
    case "jsonl.gz":
      return Effect.sync(() => readGzipLines(key, body))
    case "parquet":
      return readParquetRecords(body).pipe(
        Effect.map((values) =>
          Either.right(
            values.map(({ value, problems }, index) => ({
              location: `${key}#row=${index + 1}`,
              value,
              ...(problems.length === 0 ? {} : { textProblems: problems })
            }))
          )
        ),
        Effect.catchAll((error) =>
          Effect.succeed(
            Either.left({ location: key, reason: `not a readable Parquet file: ${String(error.cause)}` })
          )
        )
      )
    default:
      return Effect.succeed(Either.left({ location: key, reason: "unsupported file type" }))
  }
}

const fieldsBySchema = new WeakMap<object, ReadonlySet<string>>()

/**
 * A producer's Parquet row: refused when a binary text in one of the record kind's fields is not UTF-8; the
 * same in an unknown column (a `logo` BLOB) is ignored with the column, as §1 ignores unknown fields.
 */
const decodeParquetRow = <A, I>(
  schema: Schema.Schema<A, I>,
  value: Record<string, unknown>,
  textProblems: ReadonlyArray<RecordProblem>
): Either.Either<A, RejectedRecord> => {
  let fields = fieldsBySchema.get(schema)
  if (fields === undefined) {
    fields = new Set(sortedFieldsOf(schema))
    fieldsBySchema.set(schema, fields)
  }
  const known = fields
  const problems = textProblems.filter((problem) => known.has(problem.field.split(/[.[]/)[0] ?? ""))
  return problems.length === 0
    ? decodeValue(schema, value)
    : Either.left({ problems, redactedPayload: redactedPayloadOf(value) })
}

/** Validates one raw record against a contract schema. */
export const decodeRawRecord = <A, I>(
  schema: Schema.Schema<A, I>,
  record: RawRecord
): Either.Either<A, RejectedRecord> =>
  "value" in record
    ? decodeParquetRow(schema, record.value, record.textProblems ?? [])
    : record.refused === undefined
      ? decodeJsonRecord(schema, record.text)
      : Either.left({ problems: [record.refused], redactedPayload: safePayload(record.text) })

/** Text safe to keep of an arbitrary payload. */
export const safePayload = (text: string): string => redactCardNumbersInText(text)
