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

/** Integer minor units of a currency, 0 … 2^53−1. */
export const AmountMinor = Schema.Number.pipe(
  Schema.filter((value) =>
    Number.isSafeInteger(value) && value >= 0 ? true : "must be an integer from 0 to 2^53-1 (minor units)"
  )
)

/** A whole number ≥ 0. */
export const NonNegativeInteger = Schema.Number.pipe(
  Schema.filter((value) => (Number.isSafeInteger(value) && value >= 0 ? true : "must be an integer >= 0"))
)

/** ISO 4217 alpha-3, upper case. */
export const CurrencyCode = Schema.String.pipe(
  Schema.filter((code) =>
    !/^[A-Z]{3}$/.test(code)
      ? "must be an ISO 4217 alpha-3 code in upper case"
      : isKnownCurrency(code)
        ? true
        : "unknown ISO 4217 currency code"
  )
)

/** ISO 3166-1 alpha-2, upper case. */
export const CountryCode = Schema.String.pipe(
  Schema.filter((code) =>
    !/^[A-Z]{2}$/.test(code)
      ? "must be an ISO 3166-1 alpha-2 code in upper case"
      : isoCountryCodes.has(code)
        ? true
        : "unknown ISO 3166-1 country code"
  )
)

/** A string made of a fixed range of ASCII digits. */
export const Digits = (min: number, max: number) =>
  Schema.String.pipe(
    Schema.filter((text) =>
      new RegExp(`^\\d{${min},${max}}$`).test(text)
        ? true
        : min === max
          ? `must be exactly ${min} digits`
          : `must be ${min} to ${max} digits`
    )
  )

/** A string literal enum whose error lists the allowed values. */
export const Enum = <const Values extends ReadonlyArray<string>>(...values: Values) =>
  Schema.Literal(...values).annotations({
    message: () => ({ message: `must be one of ${values.join(", ")}`, override: true })
  })

/** Optional on the wire: absent or null both mean "not given". */
export const optional = <A, I>(schema: Schema.Schema<A, I>) => Schema.optionalWith(schema, { nullable: true })
