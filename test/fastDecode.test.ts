import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import fc from "fast-check"
import { FraudSignal, Merchant, TransactionEvent, User } from "../src/domain/events.js"
import { fastDecoderOf } from "../src/domain/fastDecode.js"

const decodeOptions = { errors: "all", onExcessProperty: "ignore" } as const

interface Field {
  readonly valid: fc.Arbitrary<unknown>
  readonly nearMisses: ReadonlyArray<unknown>
}
const field = (valid: fc.Arbitrary<unknown>, nearMisses: ReadonlyArray<unknown>): Field => ({
  valid,
  nearMisses
})

/**
 * A valid record with up to three fields spoilt: set to a near miss, to anything at all, to undefined, or
 * left out; about a third of the records stay valid.
 */
const inputOf = (fields: Record<string, Field>) => {
  const names = Object.keys(fields)
  const valid = fc.record(
    Object.fromEntries(names.map((name) => [name, fields[name]!.valid])) as Record<
      string,
      fc.Arbitrary<unknown>
    >
  )
  const spoil = fc
    .constantFrom(...names)
    .chain((name) =>
      fc.tuple(
        fc.constant(name),
        fc.oneof(
          fc.constantFrom(...fields[name]!.nearMisses),
          fc.anything(),
          fc.constant(undefined),
          fc.constant("(absent)")
        )
      )
    )
  return fc.tuple(valid, fc.array(spoil, { maxLength: 3 }), fc.anything()).map(([record, spoilt, extra]) => {
    const input: Record<string, unknown> = { ...record, unknown_extra: extra }
    for (const [name, value] of spoilt) {
      if (value === "(absent)") delete input[name]
      else input[name] = value
    }
    return input
  })
}

// Lengths count characters: 128 astral characters (256 UTF-16 code units) are an id, 129 are not.
const id = fc.oneof(
  fc.string({ minLength: 1, maxLength: 128 }),
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 16 }),
  fc.constant("😀".repeat(128))
)
const loneSurrogates = ["\ud800", "a\udc00b", "😀\ud83d"]
const idMisses = ["", "x".repeat(129), "😀".repeat(129), 7, null, ["a"], ...loneSurrogates]
const text = fc.oneof(fc.string(), fc.string({ unit: "grapheme", maxLength: 8 }))
const textMisses = [1, null, ...loneSurrogates]
const timestamp = fc
  .date({ min: new Date("1970-01-01T00:00:00Z"), max: new Date("2100-01-01T00:00:00Z"), noInvalidDate: true })
  .map((date) => date.toISOString())
const timestampMisses = [
  "2026-02-30T10:00:00Z",
  "2026-11-24 10:00:00",
  "2026-11-24T24:00:00Z",
  "2026-11-24T10:00:00+25:00",
  "2026-11-24T10:00:00.1234567891Z",
  "2026-11-24T10:00:00.1234567+05:30",
  1_764_000_000_000
]
const integerMisses = [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, "12", null]

const transactionInput = inputOf({
  event_id: field(id, idMisses),
  transaction_id: field(id, idMisses),
  sequence: field(fc.nat(), integerMisses),
  event_time: field(timestamp, timestampMisses),
  status: field(fc.constantFrom("authorized", "captured", "refunded", "chargeback"), ["Captured", "x"]),
  amount_minor: field(fc.maxSafeNat(), integerMisses),
  currency: field(fc.constantFrom("USD", "EUR", "JPY", "BHD"), ["usd", "ZZZ", "US", "USDD"]),
  user_id: field(id, idMisses),
  merchant_id: field(id, idMisses),
  payment_method: field(fc.constantFrom("card", "wallet", "bank_transfer"), ["cash"]),
  card_bin: field(fc.stringMatching(/^\d{6,8}$/), ["41111", "411111111", "4111a1", null]),
  card_last4: field(fc.stringMatching(/^\d{4}$/), ["111", "11111", null]),
  processor: field(text, textMisses),
  processor_reference: field(text, textMisses),
  country: field(fc.constantFrom("DE", "US", "JP"), ["de", "XX", "DEU", null]),
  device_id: field(text, textMisses),
  ip_address: field(text, [false, ...textMisses])
})

const signalInput = inputOf({
  signal_id: field(id, idMisses),
  // Contract §2 gives a signal's transaction_id no length rule.
  transaction_id: field(fc.oneof(id, fc.constantFrom("", "x".repeat(200))), textMisses),
  event_time: field(timestamp, timestampMisses),
  source: field(fc.constantFrom("rules", "model", "partner", "chargeback", "manual_review"), ["Model"]),
  score: field(fc.double({ min: 0, max: 1, noNaN: true }), [-0.1, 1.01, Number.NaN, "0.5", null]),
  reasons: field(fc.array(text, { maxLength: 32 }), [
    Array(33).fill("r"),
    ["a", 1],
    "a",
    null,
    ["a", "\udfff"]
  ]),
  confirmed_fraud: field(fc.boolean(), ["true", 1, null])
})

const userInput = inputOf({
  user_id: field(id, idMisses),
  created_at: field(timestamp, timestampMisses),
  country: field(fc.constantFrom("DE", "US", "JP"), ["de", "XX", "DEU", null]),
  kyc_level: field(fc.constantFrom("none", "basic", "full"), ["Full", "", null]),
  risk_tier: field(fc.constantFrom("low", "medium", "high"), ["LOW", "critical", null])
})

const merchantInput = inputOf({
  merchant_id: field(id, idMisses),
  name: field(text, textMisses),
  mcc: field(fc.stringMatching(/^\d{4}$/), ["541", "54111", "54a1", 5411, null]),
  country: field(fc.constantFrom("DE", "US", "JP"), ["de", "XX", "DEU", null]),
  risk_level: field(fc.constantFrom("low", "medium", "high"), ["LOW", "critical", null]),
  settlement_currency: field(fc.constantFrom("USD", "EUR", "JPY", "BHD"), ["usd", "ZZZ", "US", null])
})

/** The fast decoder agrees with the schema: never accepts what it refuses, and returns what it returns. */
const agreesWithSchema = <A, I>(schema: Schema.Schema<A, I>, input: Record<string, unknown>) => {
  const fast = fastDecoderOf(schema)?.(input)
  const slow = Schema.decodeUnknownEither(schema, decodeOptions)(input)
  if (fast === undefined) {
    // Only JSON's values reach the fast path; an explicit undefined is left to the schema.
    if (Either.isRight(slow)) expect(Object.values(input)).toContain(undefined)
    return Either.isRight(slow) ? "declined" : "refused"
  }
  expect(Either.isRight(slow)).toBe(true)
  if (Either.isRight(slow)) {
    expect(fast).toStrictEqual(slow.right)
    expect(Object.keys(fast as object)).toStrictEqual(Object.keys(slow.right as object))
  }
  return "accepted"
}

const cases = [
  {
    name: "TransactionEvent",
    check: (input: Record<string, unknown>) => agreesWithSchema(TransactionEvent, input),
    input: transactionInput
  },
  {
    name: "FraudSignal",
    check: (input: Record<string, unknown>) => agreesWithSchema(FraudSignal, input),
    input: signalInput
  },
  {
    name: "User",
    check: (input: Record<string, unknown>) => agreesWithSchema(User, input),
    input: userInput
  },
  {
    name: "Merchant",
    check: (input: Record<string, unknown>) => agreesWithSchema(Merchant, input),
    input: merchantInput
  }
] as const

describe("fast decoders", () => {
  for (const { name, check, input: arbitrary } of cases) {
    it(`${name}: the fast path returns exactly the schema's value, and only for records it accepts`, () => {
      const outcomes = { accepted: 0, refused: 0, declined: 0 }
      fc.assert(
        fc.property(arbitrary, (input) => {
          outcomes[check(input)]++
        }),
        { seed: 20261126, numRuns: 5000 }
      )
      expect(outcomes.accepted).toBeGreaterThan(500)
      expect(outcomes.refused).toBeGreaterThan(500)
      expect(outcomes.declined).toBeLessThan(outcomes.accepted / 5)
    })
  }
})
