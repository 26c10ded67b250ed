import { Schema } from "effect"
import { isoCountryCodes } from "./country.js"
import { isKnownCurrency } from "./currency.js"
import { type EpochMicros, microsToIso, parseRfc3339ToMicros, rfc3339Problem } from "./time.js"

/** An RFC 3339 timestamp with offset on the wire, UTC epoch microseconds inside. */
export const Rfc3339Micros: Schema.Schema<EpochMicros, string> = Schema.transform(
  Schema.String.pipe(Schema.filter((text) => rfc3339Problem(text) ?? true)),
  Schema.Number,
  { strict: true, decode: parseRfc3339ToMicros, encode: microsToIso }
)

/**
 * Why a text is not well-formed Unicode, or undefined when it is. JSON can escape half of a surrogate pair
 * (`"\ud800"`); such a text has no UTF-8 form, so no Parquet file, Kafka consumer or SQL engine downstream
 * could take it.
 */
export const unicodeProblem = (text: string): string | undefined =>
  text.isWellFormed()
    ? undefined
    : "is not valid Unicode: holds an unpaired surrogate (a \\uD800–\\uDFFF escape without its pair)"

/** Any text with a UTF-8 form (see {@link unicodeProblem}). */
export const UnicodeString = Schema.String.pipe(Schema.filter((text) => unicodeProblem(text) ?? true))

/** Characters (Unicode code points) of a text: a surrogate pair counts once, as JSON Schema's maxLength does. */
export const characterCount = (text: string): number => {
  let count = text.length
  for (let index = 0; index < text.length - 1; index++) {
    const code = text.charCodeAt(index)
    if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(index + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        count--
        index++
      }
    }
  }
  return count
}

/** A safe integer ≥ 0: the check behind money and sequence numbers. */
export const isNonNegativeSafeInteger = (value: number): boolean => Number.isSafeInteger(value) && value >= 0

/** Integer minor units of a currency, 0 … 2^53−1. */
export const AmountMinor = Schema.Number.pipe(
  Schema.filter((value) =>
    isNonNegativeSafeInteger(value) ? true : "must be an integer from 0 to 2^53-1 (minor units)"
  )
)

/**
 * A whole number ≥ 0 that a JSON number holds exactly (a sequence). The contract sets no upper bound; past
 * 2^53−1 a number parsed from JSON is already rounded (2^53+1 reads as 2^53), so it is refused with that
 * reason rather than stored as a different number.
 */
export const NonNegativeInteger = Schema.Number.pipe(
  Schema.filter((value) =>
    isNonNegativeSafeInteger(value)
      ? true
      : Number.isInteger(value) && value > 0
        ? "must be at most 2^53-1 (9007199254740991): larger integers are not exact as JSON numbers"
        : "must be an integer >= 0"
  )
)

const upperAlpha3 = /^[A-Z]{3}$/
const upperAlpha2 = /^[A-Z]{2}$/

/** Why a text is not a known ISO 4217 alpha-3 code in upper case, or undefined when it is one. */
export const currencyCodeProblem = (code: string): string | undefined =>
  !upperAlpha3.test(code)
    ? "must be an ISO 4217 alpha-3 code in upper case"
    : isKnownCurrency(code)
      ? undefined
      : "unknown ISO 4217 currency code"

/** ISO 4217 alpha-3, upper case. */
export const CurrencyCode = Schema.String.pipe(Schema.filter((code) => currencyCodeProblem(code) ?? true))

/** Why a text is not a known ISO 3166-1 alpha-2 code in upper case, or undefined when it is one. */
export const countryCodeProblem = (code: string): string | undefined =>
  !upperAlpha2.test(code)
    ? "must be an ISO 3166-1 alpha-2 code in upper case"
    : isoCountryCodes.has(code)
      ? undefined
      : "unknown ISO 3166-1 country code"

/** ISO 3166-1 alpha-2, upper case. */
export const CountryCode = Schema.String.pipe(Schema.filter((code) => countryCodeProblem(code) ?? true))

/** Why a text is not `min` to `max` ASCII digits, or undefined when it is. */
export const digitsProblem = (min: number, max: number) => {
  const pattern = new RegExp(`^\\d{${min},${max}}$`)
  const problem = min === max ? `must be exactly ${min} digits` : `must be ${min} to ${max} digits`
  return (text: string): string | undefined => (pattern.test(text) ? undefined : problem)
}

/** A string made of a fixed range of ASCII digits. */
export const Digits = (min: number, max: number) => {
  const problemOf = digitsProblem(min, max)
  return Schema.String.pipe(Schema.filter((text) => problemOf(text) ?? true))
}

/** A string literal enum whose error lists the allowed values. */
export const Enum = <const Values extends ReadonlyArray<string>>(...values: Values) =>
  Schema.Literal(...values).annotations({
    message: () => ({ message: `must be one of ${values.join(", ")}`, override: true })
  })

/** Optional on the wire: absent or null both mean "not given". */
export const optional = <A, I>(schema: Schema.Schema<A, I>) => Schema.optionalWith(schema, { nullable: true })
