import { Either, ParseResult, Schema, type SchemaAST } from "effect"
import { utf8Problem, utf8Text } from "./bytes.js"
import { findCardNumberPaths, redactCardNumbers, redactCardNumbersInText } from "./card.js"
import { fastDecoderOf } from "./fastDecode.js"

/** Why one input record was refused: every failing field with its reason. */
export interface RecordProblem {
  readonly field: string
  readonly reason: string
}

/** A record that failed validation, safe to store: card numbers are already redacted from the payload. */
export interface RejectedRecord {
  readonly problems: ReadonlyArray<RecordProblem>
  /** The original payload text with every full card number replaced. */
  readonly redactedPayload: string
}

/** One line of a human-readable reason: `field: reason; field: reason`. */
export const describeProblems = (problems: ReadonlyArray<RecordProblem>): string =>
  problems.map((problem) => `${problem.field}: ${problem.reason}`).join("; ")

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (text, key) =>
      typeof key === "number" ? `${text}[${key}]` : text ? `${text}.${String(key)}` : String(key),
    ""
  ) || "(record)"

const reasonOf = (message: string): string => (message === "is missing" ? "is required" : message)

/** An optional field accepts null and absence too; those alternatives only add noise next to the real reason. */
const isNullableAlternative = (message: string): boolean =>
  /^Expected (null|undefined), actual /.test(message)

const withoutNullableNoise = (problems: ReadonlyArray<RecordProblem>): ReadonlyArray<RecordProblem> =>
  problems.filter(
    (problem) =>
      !isNullableAlternative(problem.reason) ||
      !problems.some((other) => other.field === problem.field && !isNullableAlternative(other.reason))
  )

/**
 * Decodes one JSON text against a contract schema. Refuses, naming the field and reason: text that is
 * not JSON, a value that is not an object, any full card number anywhere in the record, and every
 * schema violation. Unknown fields are ignored.
 */
export const decodeJsonRecord = <A, I>(
  schema: Schema.Schema<A, I>,
  text: string
): Either.Either<A, RejectedRecord> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error)
    return Either.left({
      problems: [{ field: "(record)", reason: `not valid JSON: ${redactCardNumbersInText(detail)}` }],
      redactedPayload: redactCardNumbersInText(text)
    })
  }
  return decodeValue(schema, json, text)
}

/**
 * {@link decodeJsonRecord} for a message's bytes (a Kafka value): bytes that are not UTF-8 are refused naming
 * the first bad byte, instead of being read with U+FFFD in their place; a leading BOM is kept, so such a
 * message is refused as not JSON, as a line of a file is.
 */
export const decodeJsonRecordBytes = <A, I>(
  schema: Schema.Schema<A, I>,
  bytes: Uint8Array
): Either.Either<A, RejectedRecord> => {
  const problem = utf8Problem(bytes)
  if (problem === undefined) return decodeJsonRecord(schema, utf8Text(bytes))
  return Either.left({
    problems: [{ field: "(record)", reason: problem }],
    redactedPayload: redactCardNumbersInText(utf8Text(bytes))
  })
}

const decodeOptions = { errors: "all", onExcessProperty: "ignore" } as const

/**
 * The top-level fields a schema takes as JSON numbers (§1's amount_minor and sequence, §2's score): they may
 * hold any integer the contract allows, so their digits are not taken for a card number (one in ten 13–16-digit
 * amounts, or epoch-millisecond sequences, would pass Luhn). A number in any other field, one of another
 * record kind's included, still is.
 */
const numberFieldsOf = <A, I>(schema: Schema.Schema<A, I>): ReadonlySet<string> => {
  const cached = numberFields.get(schema.ast)
  if (cached !== undefined) return cached
  const ast = Schema.encodedSchema(schema).ast
  const fields = new Set(
    ast._tag === "TypeLiteral"
      ? ast.propertySignatures
          .filter((field) => field.type._tag === "NumberKeyword")
          .map((field) => String(field.name))
      : []
  )
  numberFields.set(schema.ast, fields)
  return fields
}
const numberFields = new WeakMap<SchemaAST.AST, ReadonlySet<string>>()

/**
 * How deeply a record's values may nest (the record itself is level 1). Past it a record is refused: deeper
 * documents overflow recursive JSON writers (V8's JSON.stringify fails near 5000 levels, Python's json near
 * 1000), and no contract field nests at all.
 */
export const maxRecordNesting = 1000

/** Whether objects and arrays inside `value` nest more than `limit` levels deep (without recursion). */
const nestedDeeperThan = (value: unknown, limit: number): boolean => {
  const pending: Array<readonly [object, number]> = []
  if (value !== null && typeof value === "object") pending.push([value, 1])
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [container, depth] = next
    if (depth > limit) return true
    for (const key in container) {
      const item: unknown = (container as Record<string, unknown>)[key]
      if (item !== null && typeof item === "object") pending.push([item, depth + 1])
    }
  }
  return false
}

/** Like {@link decodeJsonRecord} for an already parsed value (a Parquet row, an HTTP body item). */
export const decodeValue = <A, I>(
  schema: Schema.Schema<A, I>,
  value: unknown,
  originalText?: string
): Either.Either<A, RejectedRecord> => {
  const redactedPayload = () => redactedPayloadOf(value, originalText)
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return Either.left({
      problems: [{ field: "(record)", reason: "must be a JSON object" }],
      redactedPayload: redactedPayload()
    })
  }
  if (nestedDeeperThan(value, maxRecordNesting)) {
    return Either.left({
      problems: [{ field: "(record)", reason: `nested deeper than ${maxRecordNesting} levels` }],
      redactedPayload: redactedPayload()
    })
  }
  const cardPaths = findCardNumberPaths(value, "", numberFieldsOf(schema))
  if (cardPaths.length > 0) {
    return Either.left({
      problems: cardPaths.map((field) => ({ field, reason: "contains a full card number (PAN); refused" })),
      redactedPayload: redactedPayload()
    })
  }
  const fast = fastDecoderOf(schema)?.(value as Readonly<Record<string, unknown>>)
  if (fast !== undefined) return Either.right(fast)
  const decoded = Schema.decodeUnknownEither(schema, decodeOptions)(value)
  if (Either.isRight(decoded)) return Either.right(decoded.right)
  const problems = ParseResult.ArrayFormatter.formatErrorSync(decoded.left).map((issue) => ({
    field: formatPath(issue.path),
    reason: reasonOf(issue.message)
  }))
  return Either.left({ problems: withoutNullableNoise(problems), redactedPayload: redactedPayload() })
}

/** A refused record as text safe to store: its original text (or JSON) with every card number redacted. */
export const redactedPayloadOf = (value: unknown, originalText?: string): string => {
  const redacted = redactCardNumbersInText(originalText ?? safeStringify(value))
  return stillHoldsCardNumber(redacted) ? safeStringify(redactCardNumbers(value)) : redacted
}

/** JSON escapes (`"\u0034111…"`) hide digits from a text scan; decoding the redacted text finds them. */
const stillHoldsCardNumber = (redactedText: string): boolean => {
  try {
    return findCardNumberPaths(JSON.parse(redactedText)).length > 0
  } catch {
    return false
  }
}

const safeStringify = (value: unknown): string => {
  try {
    return (
      JSON.stringify(value, (_key, item) => (typeof item === "bigint" ? item.toString() : item)) ?? "null"
    )
  } catch {
    try {
      return JSON.stringify(redactCardNumbers(value)) ?? "null"
    } catch {
      return String(value)
    }
  }
}
