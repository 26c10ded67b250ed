import { constants, gunzipSync } from "node:zlib"
import { Effect, Either, type Schema } from "effect"
import { redactCardNumbersInText } from "../domain/card.js"
import { decodeJsonRecord, decodeValue, type RejectedRecord } from "../domain/validation.js"
import { readParquetRecords } from "./parquetRecords.js"

/**
 * One record read from a producer file, before validation; `cut` when the file ended in the middle of it
 * (a truncated gzip file), which refuses it with that reason.
 */
export type RawRecord =
  | { readonly location: string; readonly text: string; readonly cut?: string }
  | { readonly location: string; readonly value: Record<string, unknown> }

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

/** Splits JSON Lines text into records; blank lines are not records; a leading BOM is dropped. */
export const splitJsonLines = (text: string, key: string): Array<RawRecord> => {
  const records: Array<RawRecord> = []
  const lines = text.replace(/^\uFEFF/, "").split("\n")
  lines.forEach((line, index) => {
    const trimmed = line.endsWith("\r") ? line.slice(0, -1) : line
    if (trimmed.trim().length > 0) records.push({ location: `${key}:${index + 1}`, text: trimmed })
  })
  return records
}

/**
 * The lines of a gzipped JSON Lines file. A file cut short (an interrupted upload or copy) keeps the lines
 * it holds whole; the line it ends in becomes one record refused as cut, so the run neither loses the lines
 * before it nor takes half a line for a record. A file that is not gzip at all, or corrupt within, is
 * unreadable as a whole.
 */
const readGzipLines = (key: string, body: Uint8Array): Either.Either<Array<RawRecord>, UnreadableFile> => {
  try {
    return Either.right(splitJsonLines(new TextDecoder().decode(gunzipSync(body)), key))
  } catch (error) {
    let partial: Buffer
    try {
      partial = gunzipSync(body, { finishFlush: constants.Z_SYNC_FLUSH })
    } catch {
      return Either.left({ location: key, reason: `not a readable gzip file: ${String(error)}` })
    }
    const text = new TextDecoder().decode(partial)
    const wholeLines = text.slice(0, text.lastIndexOf("\n") + 1)
    const records = splitJsonLines(wholeLines, key)
    const lineNumber = wholeLines.split("\n").length
    const tail = text.slice(wholeLines.length)
    records.push({
      location: `${key}:${lineNumber}`,
      text: tail,
      cut:
        `the gzip file ends early (${String(error)}): ` +
        (tail !== ""
          ? `line ${lineNumber} is cut off`
          : lineNumber > 1
            ? `nothing after line ${lineNumber - 1} could be read`
            : "no whole line could be read")
    })
    return Either.right(records)
  }
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
      return Effect.succeed(Either.right(splitJsonLines(new TextDecoder().decode(body), key)))
    case "jsonl.gz":
      return Effect.sync(() => readGzipLines(key, body))
    case "parquet":
      return readParquetRecords(body).pipe(
        Effect.map((values) =>
          Either.right(values.map((value, index) => ({ location: `${key}#row=${index + 1}`, value })))
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

/** Validates one raw record against a contract schema. */
export const decodeRawRecord = <A, I>(
  schema: Schema.Schema<A, I>,
  record: RawRecord
): Either.Either<A, RejectedRecord> =>
  "value" in record
    ? decodeValue(schema, record.value)
    : record.cut === undefined
      ? decodeJsonRecord(schema, record.text)
      : Either.left({
          problems: [{ field: "(file)", reason: record.cut }],
          redactedPayload: safePayload(record.text)
        })

/** Text safe to keep of an arbitrary payload. */
export const safePayload = (text: string): string => redactCardNumbersInText(text)
