import type { Schema } from "effect"
import { countryCodeProblem, currencyCodeProblem, digitsProblem, isNonNegativeSafeInteger } from "./fields.js"
import { isBoundedId } from "./ids.js"
import { parseRfc3339ToMicros } from "./time.js"

/**
 * Annotation key of a schema's fast decoder: a hand-written function that decodes the common, valid case
 * without Effect Schema's generic machinery and returns `undefined` whenever it is not sure. The schema stays
 * the specification: a record the fast decoder declines is decoded by the schema, which then names every
 * problem. A fast decoder must never accept what the schema refuses and must return exactly what the schema
 * would (test/fastDecode.test.ts checks both on valid, invalid and randomly mutated records).
 */
export const FastDecodeId: unique symbol = Symbol.for("payment-recon-index/FastDecode")

/** Decodes an object the way its schema would, or returns undefined to defer to the schema. */
export type FastDecode<A> = (input: Readonly<Record<string, unknown>>) => A | undefined

/** The fast decoder annotated on a schema, if any. */
export const fastDecoderOf = <A, I>(schema: Schema.Schema<A, I>): FastDecode<A> | undefined => {
  const decoder: unknown = schema.ast.annotations[FastDecodeId]
  return typeof decoder === "function" ? (decoder as FastDecode<A>) : undefined
}

/** The reason a fast decoder gives up. */
export const Defer: unique symbol = Symbol.for("payment-recon-index/FastDecode/Defer")
export type Defer = typeof Defer

export const boundedId = (value: unknown): string | Defer =>
  typeof value === "string" && isBoundedId(value) ? value : Defer

export const unicodeString = (value: unknown): string | Defer =>
  typeof value === "string" && value.isWellFormed() ? value : Defer

export const nonNegativeInteger = (value: unknown): number | Defer =>
  typeof value === "number" && isNonNegativeSafeInteger(value) ? value : Defer

export const rfc3339Micros = (value: unknown): number | Defer => {
  if (typeof value !== "string") return Defer
  const micros = parseRfc3339ToMicros(value)
  return Number.isNaN(micros) ? Defer : micros
}

export const oneOf =
  <const Values extends ReadonlyArray<string>>(values: Values) =>
  (value: unknown): Values[number] | Defer =>
    typeof value === "string" && values.includes(value) ? (value as Values[number]) : Defer

export const currencyCode = (value: unknown): string | Defer =>
  typeof value === "string" && currencyCodeProblem(value) === undefined ? value : Defer

export const countryCode = (value: unknown): string | Defer =>
  typeof value === "string" && countryCodeProblem(value) === undefined ? value : Defer

export const digits = (min: number, max: number) => {
  const problemOf = digitsProblem(min, max)
  return (value: unknown): string | Defer =>
    typeof value === "string" && problemOf(value) === undefined ? value : Defer
}

export const booleanValue = (value: unknown): boolean | Defer => (typeof value === "boolean" ? value : Defer)

/** An optional-nullable field: absent or null decode to absent (undefined), anything else as `field` says. */
export const optionalField = <A>(
  input: Readonly<Record<string, unknown>>,
  name: string,
  field: (value: unknown) => A | Defer
): A | undefined | Defer => {
  const value = input[name]
  if (value === null || (value === undefined && !Object.hasOwn(input, name))) return undefined
  return value === undefined ? Defer : field(value)
}
