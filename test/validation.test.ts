import { describe, expect, it } from "@effect/vitest"
import { Either, type Schema } from "effect"
import * as fc from "fast-check"
import { firstInvalidUtf8Offset, utf8Problem } from "../src/domain/bytes.js"
import { FraudSignal, Merchant, TransactionEvent, User } from "../src/domain/events.js"
import {
  decodeJsonRecord,
  decodeJsonRecordBytes,
  decodeValue,
  describeProblems,
  type RecordProblem,
  type RejectedRecord
} from "../src/domain/validation.js"

const validEvent = {
  event_id: "evt-1",
  transaction_id: "tx-1",
  sequence: 3,
  event_time: "2026-11-24T10:15:30.123456+05:30",
  status: "captured",
  amount_minor: 1250,
  currency: "USD",
  user_id: "u-1",
  merchant_id: "m-1",
  payment_method: "card",
  card_bin: "411111",
  card_last4: "1111",
  processor: "adyen",
  processor_reference: "psp-1",
  country: "DE",
  device_id: "dev-1",
  ip_address: "203.0.113.7"
}

const validSignal = {
  signal_id: "sig-1",
  transaction_id: "tx-1",
  event_time: "2026-11-24T10:16:00Z",
  source: "model",
  score: 0.87,
  reasons: ["velocity", "new_device"],
  confirmed_fraud: false
}

const validUser = {
  user_id: "u-1",
  created_at: "2025-01-31T08:00:00-05:00",
  country: "US",
  kyc_level: "full",
  risk_tier: "low"
}

const validMerchant = {
  merchant_id: "m-1",
  name: "Café 東京 Кафе",
  mcc: "5812",
  country: "JP",
  risk_level: "medium",
  settlement_currency: "JPY"
}

const eventTimeMicros = Date.UTC(2026, 10, 24, 4, 45, 30, 123) * 1000 + 456

const rejectionOf = <A, I>(schema: Schema.Schema<A, I>, record: unknown): RejectedRecord => {
  const result = decodeJsonRecord(schema, typeof record === "string" ? record : JSON.stringify(record))
  if (Either.isRight(result)) throw new Error(`expected a refusal, got ${JSON.stringify(result.right)}`)
  return result.left
}

const problemsOf = <A, I>(schema: Schema.Schema<A, I>, record: unknown): ReadonlyArray<RecordProblem> =>
  rejectionOf(schema, record).problems

const decoded = <A, I>(schema: Schema.Schema<A, I>, record: unknown): A => {
  const result = decodeJsonRecord(schema, JSON.stringify(record))
  if (Either.isLeft(result)) throw new Error(describeProblems(result.left.problems))
  return result.right
}

const without = (record: Record<string, unknown>, field: string) =>
  Object.fromEntries(Object.entries(record).filter(([key]) => key !== field))

/** Exactly one problem, on this field, whose reason contains the text. */
const expectOnlyProblem = (problems: ReadonlyArray<RecordProblem>, field: string, reason: string) => {
  expect(problems).toHaveLength(1)
  expect(problems[0]?.field).toBe(field)
  expect(problems[0]?.reason).toContain(reason)
}

describe("a valid transaction event", () => {
  it("decodes with event_time as UTC epoch microseconds", () => {
    const event = decoded(TransactionEvent, validEvent)
    expect(event.event_time).toBe(eventTimeMicros)
    expect(event).toEqual({ ...validEvent, event_time: eventTimeMicros })
  })

  it("ignores unknown fields", () => {
    const event = decoded(TransactionEvent, { ...validEvent, loyalty_tier: "gold", nested: { a: 1 } })
    expect(event).not.toHaveProperty("loyalty_tier")
    expect(event).not.toHaveProperty("nested")
    expect(event.event_id).toBe("evt-1")
  })

  it("treats null optional fields as absent", () => {
    const event = decoded(TransactionEvent, {
      ...validEvent,
      card_bin: null,
      card_last4: null,
      country: null,
      device_id: null,
      ip_address: null
    })
    for (const field of ["card_bin", "card_last4", "country", "device_id", "ip_address"]) {
      expect(event).not.toHaveProperty(field)
    }
  })

  it("accepts absent optional fields", () => {
    const minimal = ["card_bin", "card_last4", "country", "device_id", "ip_address"].reduce(
      without,
      validEvent
    )
    expect(decoded(TransactionEvent, minimal)).toEqual({ ...minimal, event_time: eventTimeMicros })
  })

  it("accepts the limits: amount 0 and 2^53-1, sequence 0, 8-digit bin, 128-char ids", () => {
    const longId = "e".repeat(128)
    for (const patch of [
      { amount_minor: 0 },
      { amount_minor: Number.MAX_SAFE_INTEGER },
      { sequence: 0 },
      { card_bin: "41111111" },
      { event_id: longId, transaction_id: longId, user_id: longId, merchant_id: longId }
    ]) {
      expect(decoded(TransactionEvent, { ...validEvent, ...patch })).toMatchObject(patch)
    }
  })

  it("accepts every status and payment method of the contract", () => {
    for (const status of [
      "authorized",
      "captured",
      "settled",
      "refunded",
      "partially_refunded",
      "voided",
      "declined",
      "chargeback"
    ]) {
      expect(decoded(TransactionEvent, { ...validEvent, status }).status).toBe(status)
    }
    for (const payment_method of ["card", "bank_transfer", "wallet"]) {
      expect(decoded(TransactionEvent, { ...validEvent, payment_method }).payment_method).toBe(payment_method)
    }
  })

  it("decodes an already parsed value the same way", () => {
    const result = decodeValue(TransactionEvent, validEvent)
    expect(Either.isRight(result) && result.right.event_time).toBe(eventTimeMicros)
  })
})

describe("a valid fraud signal", () => {
  it("decodes with event_time in UTC micros", () => {
    expect(decoded(FraudSignal, validSignal)).toEqual({
      ...validSignal,
      event_time: Date.UTC(2026, 10, 24, 10, 16) * 1000
    })
  })

  it("accepts scores 0 and 1, 32 reasons, no reasons, and null or absent confirmed_fraud", () => {
    expect(decoded(FraudSignal, { ...validSignal, score: 0 }).score).toBe(0)
    expect(decoded(FraudSignal, { ...validSignal, score: 1 }).score).toBe(1)
    const reasons = Array.from({ length: 32 }, (_, index) => `r${index}`)
    expect(decoded(FraudSignal, { ...validSignal, reasons }).reasons).toEqual(reasons)
    expect(decoded(FraudSignal, { ...validSignal, reasons: [] }).reasons).toEqual([])
    expect(decoded(FraudSignal, { ...validSignal, confirmed_fraud: null })).not.toHaveProperty(
      "confirmed_fraud"
    )
    expect(decoded(FraudSignal, without(validSignal, "confirmed_fraud"))).not.toHaveProperty(
      "confirmed_fraud"
    )
  })

  it("accepts every source of the contract", () => {
    for (const source of ["rules", "model", "partner", "chargeback", "manual_review"]) {
      expect(decoded(FraudSignal, { ...validSignal, source }).source).toBe(source)
    }
  })
})

describe("records that are not a JSON object", () => {
  it.each([
    ["not JSON", "{event_id: evt-1", "not valid JSON"],
    ["empty text", "", "not valid JSON"],
    ["truncated JSON", JSON.stringify(validEvent).slice(0, 40), "not valid JSON"],
    ["an array", JSON.stringify([validEvent]), "must be a JSON object"],
    ["a number", "42", "must be a JSON object"],
    ["a string", '"evt-1"', "must be a JSON object"],
    ["null", "null", "must be a JSON object"],
    ["true", "true", "must be a JSON object"]
  ])("refuses %s", (_name, text, reason) => {
    const rejection = rejectionOf(TransactionEvent, text)
    expectOnlyProblem(rejection.problems, "(record)", reason)
    expect(rejection.redactedPayload).toBe(text)
  })

  it("refuses a parsed value that is not an object", () => {
    for (const value of [null, 7, "x", [validEvent]]) {
      const result = decodeValue(TransactionEvent, value)
      expect(Either.isLeft(result) && result.left.problems).toEqual([
        { field: "(record)", reason: "must be a JSON object" }
      ])
    }
  })
})

describe("transaction event field rules", () => {
  it.each([
    "event_id",
    "transaction_id",
    "sequence",
    "event_time",
    "status",
    "amount_minor",
    "currency",
    "user_id",
    "merchant_id",
    "payment_method",
    "processor",
    "processor_reference"
  ])("refuses a missing %s", (field) => {
    expect(problemsOf(TransactionEvent, without(validEvent, field))).toEqual([
      { field, reason: "is required" }
    ])
  })

  it.each([
    "event_id",
    "transaction_id",
    "sequence",
    "event_time",
    "status",
    "amount_minor",
    "currency",
    "user_id",
    "merchant_id",
    "payment_method",
    "processor",
    "processor_reference"
  ])("refuses a null %s", (field) => {
    const problems = problemsOf(TransactionEvent, { ...validEvent, [field]: null })
    expect(problems.map((problem) => problem.field)).toEqual([field])
  })

  it.each([
    ["event_id", 17, "Expected string"],
    ["transaction_id", ["tx-1"], "Expected string"],
    ["user_id", { id: "u" }, "Expected string"],
    ["merchant_id", true, "Expected string"],
    ["processor", 5, "Expected string"],
    ["processor_reference", 12345, "Expected string"],
    ["sequence", "3", "Expected number"],
    ["event_time", 1_795_495_530_123, "Expected string"],
    ["status", 1, "must be one of"],
    ["card_bin", 411111, "Expected string"],
    ["card_last4", 1111, "Expected string"],
    ["country", 49, "Expected string"],
    ["device_id", 9, "Expected string"]
  ])("refuses %s of the wrong type (%j)", (field, value, reason) => {
    expectOnlyProblem(problemsOf(TransactionEvent, { ...validEvent, [field]: value }), field, reason)
  })

  it.each([
    ["status", "CAPTURED"],
    ["status", "pending"],
    ["status", ""],
    ["payment_method", "cash"],
    ["payment_method", "Card"]
  ])("refuses %s %j, listing the allowed values", (field, value) => {
    const problems = problemsOf(TransactionEvent, { ...validEvent, [field]: value })
    expectOnlyProblem(problems, field, "must be one of")
    expect(problems[0]?.reason).toContain(field === "status" ? "partially_refunded" : "bank_transfer")
  })

  it.each([
    ["negative", -1],
    ["fractional", 12.5],
    ["above 2^53-1", 2 ** 53],
    ["far above 2^53-1", 1e20],
    ["a string", "1250"]
  ])("refuses an amount_minor that is %s", (_name, amount) => {
    const problems = problemsOf(TransactionEvent, { ...validEvent, amount_minor: amount })
    expectOnlyProblem(
      problems,
      "amount_minor",
      typeof amount === "string" ? "Expected number" : "0 to 2^53-1"
    )
  })

  it("refuses an amount_minor written one above 2^53-1 in the JSON text", () => {
    const text = JSON.stringify(validEvent).replace('"amount_minor":1250', '"amount_minor":9007199254740992')
    expectOnlyProblem(problemsOf(TransactionEvent, text), "amount_minor", "0 to 2^53-1")
  })

  it.each([
    ["usd", "upper case"],
    ["Usd", "upper case"],
    ["US", "alpha-3"],
    ["USDD", "alpha-3"],
    ["", "alpha-3"],
    ["U$D", "alpha-3"],
    ["ABC", "unknown ISO 4217"],
    ["XYZ", "unknown ISO 4217"]
  ])("refuses currency %j", (currency, reason) => {
    expectOnlyProblem(problemsOf(TransactionEvent, { ...validEvent, currency }), "currency", reason)
  })

  it("accepts currencies with exponents 0, 2 and 3, and the codes ISO 4217 lists without minor units", () => {
    for (const currency of ["JPY", "USD", "KWD", "EUR", "XAU", "XDR", "XTS", "XXX"]) {
      expect(decoded(TransactionEvent, { ...validEvent, currency }).currency).toBe(currency)
    }
  })

  it.each([
    ["de", "upper case"],
    ["DEU", "alpha-2"],
    ["D", "alpha-2"],
    ["XX", "unknown ISO 3166-1"],
    ["UK", "unknown ISO 3166-1"]
  ])("refuses country %j", (country, reason) => {
    expectOnlyProblem(problemsOf(TransactionEvent, { ...validEvent, country }), "country", reason)
  })

  it.each([
    ["card_bin", "41a111", "6 to 8 digits"],
    ["card_bin", "41111", "6 to 8 digits"],
    ["card_bin", "411111111", "6 to 8 digits"],
    ["card_bin", " 411111", "6 to 8 digits"],
    ["card_bin", "", "6 to 8 digits"],
    ["card_last4", "111", "exactly 4 digits"],
    ["card_last4", "11111", "exactly 4 digits"],
    ["card_last4", "11a1", "exactly 4 digits"],
    ["card_last4", "١١١١", "exactly 4 digits"]
  ])("refuses %s %j", (field, value, reason) => {
    expectOnlyProblem(problemsOf(TransactionEvent, { ...validEvent, [field]: value }), field, reason)
  })

  it.each([
    ["negative", -1, "integer >= 0"],
    ["fractional", 1.5, "integer >= 0"],
    ["unsafe", 2 ** 53, "must be at most 2^53-1"],
    ["an epoch in nanoseconds", 1_794_353_400_123_456_800, "must be at most 2^53-1"]
  ])("refuses a sequence that is %s", (_name, sequence, reason) => {
    expectOnlyProblem(problemsOf(TransactionEvent, { ...validEvent, sequence }), "sequence", reason)
  })

  it.each([
    ["without offset", "2026-11-24T10:15:30.123", "with offset"],
    ["date only", "2026-11-24", "with offset"],
    ["garbage", "soon", "with offset"],
    ["epoch text", "1795495530", "with offset"],
    ["invalid month", "2026-13-01T00:00:00Z", "month out of range"],
    ["invalid day", "2026-02-30T00:00:00Z", "day out of range"],
    ["no leap day", "2025-02-29T00:00:00Z", "day out of range"],
    ["invalid hour", "2026-01-01T25:00:00Z", "hour out of range"]
  ])("refuses an event_time %s", (_name, eventTime, reason) => {
    expectOnlyProblem(
      problemsOf(TransactionEvent, { ...validEvent, event_time: eventTime }),
      "event_time",
      reason
    )
  })

  it.each(["event_id", "transaction_id", "user_id", "merchant_id"])(
    "refuses an empty or 129-char %s",
    (field) => {
      expectOnlyProblem(
        problemsOf(TransactionEvent, { ...validEvent, [field]: "" }),
        field,
        "must not be empty"
      )
      expectOnlyProblem(
        problemsOf(TransactionEvent, { ...validEvent, [field]: "x".repeat(129) }),
        field,
        "at most 128 characters"
      )
    }
  )

  it("reports every problem of a record at once, each with its field", () => {
    const record = {
      ...without(validEvent, "user_id"),
      event_id: "",
      sequence: -1,
      event_time: "2026-11-24T10:15:30",
      status: "pending",
      amount_minor: 1.5,
      currency: "usd",
      card_bin: "12a456",
      country: "XX"
    }
    const problems = problemsOf(TransactionEvent, record)
    expect(problems.map((problem) => problem.field)).toEqual([
      "event_id",
      "sequence",
      "event_time",
      "status",
      "amount_minor",
      "currency",
      "user_id",
      "card_bin",
      "country"
    ])
    expect(problems.find((problem) => problem.field === "user_id")?.reason).toBe("is required")
    expect(describeProblems(problems)).toContain(
      "card_bin: must be 6 to 8 digits; country: unknown ISO 3166-1"
    )
  })

  it("refuses a record nested deeper than 1000 levels, keeping its payload, and takes one of 1000", () => {
    const withExtra = (depth: number) =>
      `${JSON.stringify(validEvent).slice(0, -1)},"extra":${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}`
    expect(decoded(TransactionEvent, JSON.parse(withExtra(1000))).event_id).toBe("evt-1")
    for (const depth of [1001, 200_000]) {
      const rejected = rejectionOf(TransactionEvent, withExtra(depth))
      expectOnlyProblem(rejected.problems, "(record)", "nested deeper than 1000 levels")
      expect(rejected.redactedPayload).toBe(withExtra(depth))
      const parsed = decodeValue(TransactionEvent, JSON.parse(withExtra(depth)))
      const payload = Either.isLeft(parsed) ? parsed.left.redactedPayload : "accepted"
      // Without the original text the payload is written again: JSON.stringify fails near 5000 levels.
      if (depth === 1001) expect(payload).toBe(withExtra(depth))
      else expect(payload).toContain('"extra":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[')
      if (depth > 5000) expect(payload).toContain("[NESTED-TOO-DEEP]")
    }
  })

  it("keeps the original payload of a refused record", () => {
    const text = JSON.stringify({ ...validEvent, currency: "usd" })
    expect(rejectionOf(TransactionEvent, text).redactedPayload).toBe(text)
  })
})

describe("text: counted in characters, and only valid Unicode", () => {
  it("counts id lengths in characters: 128 astral characters are an id, 129 are not", () => {
    const emoji = "😀"
    expect(decoded(TransactionEvent, { ...validEvent, event_id: emoji.repeat(128) }).event_id).toBe(
      emoji.repeat(128)
    )
    expectOnlyProblem(
      problemsOf(TransactionEvent, { ...validEvent, user_id: emoji.repeat(129) }),
      "user_id",
      "at most 128 characters"
    )
  })

  it.each(["event_id", "transaction_id", "user_id", "processor", "processor_reference", "device_id"])(
    "refuses an unpaired surrogate escape in %s, naming the field",
    (field) => {
      const text = JSON.stringify({ ...validEvent, [field]: "X" }).replace('"X"', '"a\\ud800b"')
      expectOnlyProblem(problemsOf(TransactionEvent, text), field, "not valid Unicode")
    }
  )

  it("refuses an unpaired surrogate in a reason or a merchant name, and keeps escaped pairs", () => {
    const signal = JSON.stringify({ ...validSignal, reasons: ["velocity", "X"] }).replace('"X"', '"\\udfff"')
    expectOnlyProblem(problemsOf(FraudSignal, signal), "reasons[1]", "not valid Unicode")
    const merchant = JSON.stringify({ ...validMerchant, name: "X" }).replace('"X"', '"Caf\\udce9"')
    expectOnlyProblem(problemsOf(Merchant, merchant), "name", "not valid Unicode")
    const paired = JSON.stringify({ ...validMerchant, name: "X" }).replace('"X"', '"Caf\\ud83d\\ude00"')
    expect(decoded(Merchant, JSON.parse(paired)).name).toBe("Caf😀")
  })

  it("takes any text as a signal's transaction_id (contract §2 sets no length)", () => {
    for (const transactionId of ["", "t".repeat(200)])
      expect(decoded(FraudSignal, { ...validSignal, transaction_id: transactionId }).transaction_id).toBe(
        transactionId
      )
  })
})

describe("fraud signal field rules", () => {
  it.each(["signal_id", "transaction_id", "event_time", "source", "score", "reasons"])(
    "refuses a missing %s",
    (field) => {
      expect(problemsOf(FraudSignal, without(validSignal, field))).toEqual([{ field, reason: "is required" }])
    }
  )

  it.each([
    ["below 0", -0.01, "from 0 to 1"],
    ["above 1", 1.0001, "from 0 to 1"],
    ["a string", "0.5", "Expected number"],
    ["null", null, "Expected number"]
  ])("refuses a score %s", (_name, score, reason) => {
    expectOnlyProblem(problemsOf(FraudSignal, { ...validSignal, score }), "score", reason)
  })

  it("refuses NaN and infinite scores given as parsed values", () => {
    for (const score of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const result = decodeValue(FraudSignal, { ...validSignal, score })
      expect(Either.isLeft(result) && result.left.problems).toEqual([
        { field: "score", reason: "must be from 0 to 1" }
      ])
    }
  })

  it("refuses more than 32 reasons", () => {
    const reasons = Array.from({ length: 33 }, (_, index) => `r${index}`)
    expectOnlyProblem(problemsOf(FraudSignal, { ...validSignal, reasons }), "reasons", "at most 32")
  })

  it("refuses non-string reasons, naming the index", () => {
    const problems = problemsOf(FraudSignal, { ...validSignal, reasons: ["ok", 7, null] })
    expect(problems.map((problem) => problem.field)).toEqual(["reasons[1]", "reasons[2]"])
    expect(problems[0]?.reason).toContain("Expected string")
  })

  it("refuses reasons that are not an array", () => {
    expectOnlyProblem(problemsOf(FraudSignal, { ...validSignal, reasons: "velocity" }), "reasons", "Expected")
  })

  it.each(["yes", 1, "true", 0])("refuses confirmed_fraud %j", (confirmed) => {
    expectOnlyProblem(
      problemsOf(FraudSignal, { ...validSignal, confirmed_fraud: confirmed }),
      "confirmed_fraud",
      "Expected boolean"
    )
  })

  it.each(["Model", "ml", ""])("refuses source %j", (source) => {
    expectOnlyProblem(problemsOf(FraudSignal, { ...validSignal, source }), "source", "must be one of")
  })

  it("refuses a bad signal_id and event_time", () => {
    const problems = problemsOf(FraudSignal, {
      ...validSignal,
      signal_id: "s".repeat(129),
      event_time: "today"
    })
    expect(problems.map((problem) => problem.field)).toEqual(["signal_id", "event_time"])
  })

  it("reports several problems at once", () => {
    const problems = problemsOf(FraudSignal, {
      ...validSignal,
      source: "ml",
      score: 2,
      reasons: [1],
      confirmed_fraud: "no"
    })
    expect(problems.map((problem) => problem.field)).toEqual([
      "source",
      "score",
      "reasons[0]",
      "confirmed_fraud"
    ])
  })
})

describe("user dimension records", () => {
  it("decodes a valid user with created_at in UTC micros", () => {
    expect(decoded(User, validUser)).toEqual({
      ...validUser,
      created_at: Date.UTC(2025, 0, 31, 13) * 1000
    })
  })

  it.each([
    ["kyc_level", "partial", "must be one of none, basic, full"],
    ["risk_tier", "extreme", "must be one of low, medium, high"],
    ["created_at", "2025-01-31", "with offset"],
    ["created_at", "2025-02-29T00:00:00Z", "day out of range"],
    ["country", "usa", "ISO 3166-1"],
    ["user_id", "", "must not be empty"]
  ])("refuses %s %j", (field, value, reason) => {
    expectOnlyProblem(problemsOf(User, { ...validUser, [field]: value }), field, reason)
  })

  it.each(["user_id", "created_at", "country", "kyc_level", "risk_tier"])("refuses a missing %s", (field) => {
    expect(problemsOf(User, without(validUser, field))).toEqual([{ field, reason: "is required" }])
  })
})

describe("merchant dimension records", () => {
  it("decodes a valid merchant with a non-Latin UTF-8 name", () => {
    expect(decoded(Merchant, validMerchant)).toEqual(validMerchant)
  })

  it.each([
    ["mcc", "581", "exactly 4 digits"],
    ["mcc", "58120", "exactly 4 digits"],
    ["mcc", "58a2", "exactly 4 digits"],
    ["mcc", 5812, "Expected string"],
    ["risk_level", "none", "must be one of low, medium, high"],
    ["country", "Japan", "ISO 3166-1"],
    ["settlement_currency", "yen", "ISO 4217"],
    ["settlement_currency", "QQQ", "unknown ISO 4217"],
    ["name", 42, "Expected string"],
    ["merchant_id", "m".repeat(129), "at most 128"]
  ])("refuses %s %j", (field, value, reason) => {
    expectOnlyProblem(problemsOf(Merchant, { ...validMerchant, [field]: value }), field, reason)
  })

  it.each(["merchant_id", "name", "mcc", "country", "risk_level", "settlement_currency"])(
    "refuses a missing %s",
    (field) => {
      expect(problemsOf(Merchant, without(validMerchant, field))).toEqual([{ field, reason: "is required" }])
    }
  )
})

describe("UTF-8 checks", () => {
  it("find the first bad byte exactly where the WHATWG decoder fails (property)", () => {
    const fatal = new TextDecoder("utf-8", { fatal: true })
    const interesting = fc.constantFrom(
      0x00,
      0x41,
      0x7f,
      0x80,
      0xbf,
      0xc0,
      0xc1,
      0xc2,
      0xdf,
      0xe0,
      0xed,
      0xef,
      0xf0,
      0xf4,
      0xf5,
      0xff,
      0x9f,
      0xa0,
      0x8f,
      0x90
    )
    fc.assert(
      fc.property(
        fc.array(fc.oneof(interesting, fc.integer({ min: 0, max: 255 })), { maxLength: 12 }),
        (values) => {
          const bytes = Uint8Array.from(values)
          const offset = firstInvalidUtf8Offset(bytes)
          let valid = true
          try {
            fatal.decode(bytes)
          } catch {
            valid = false
          }
          expect(offset === -1).toBe(valid)
          if (offset >= 0) {
            expect(() => fatal.decode(bytes.subarray(0, offset))).not.toThrow()
            // Every longer prefix that ends on a character boundary fails: the bad sequence starts at offset.
            for (let end = offset + 1; end <= Math.min(bytes.length, offset + 4); end++)
              expect(() => fatal.decode(bytes.subarray(0, end)), `${values} to ${end}`).toThrow()
          }
        }
      ),
      { numRuns: 20_000, seed: 20261127 }
    )
    expect(utf8Problem(new TextEncoder().encode("Café 東京 😀"))).toBeUndefined()
    expect(utf8Problem(Uint8Array.of(0x61, 0xed, 0xa0, 0x80))).toBe("not valid UTF-8: byte 0xed at byte 2")
  })

  it("refuse a Kafka message that is not UTF-8 naming the byte, and keep a redacted payload", () => {
    const json = new TextEncoder().encode(
      JSON.stringify({ ...validEvent, device_id: "4111111111111111", event_id: "X" })
    )
    const result = decodeJsonRecordBytes(
      TransactionEvent,
      Uint8Array.from(json, (byte) => (byte === 0x58 ? 0xc0 : byte))
    )
    if (Either.isRight(result)) throw new Error("accepted")
    expect(result.left.problems).toEqual([
      { field: "(record)", reason: `not valid UTF-8: byte 0xc0 at byte ${json.indexOf(0x58) + 1}` }
    ])
    expect(result.left.redactedPayload).not.toContain("4111111111111111")
    expect(
      Either.isRight(
        decodeJsonRecordBytes(TransactionEvent, new TextEncoder().encode(JSON.stringify(validEvent)))
      )
    ).toBe(true)
  })

  it("refuse a message starting with a BOM as not JSON, as a line of a file is, keeping the BOM", () => {
    const withBom = decodeJsonRecordBytes(
      TransactionEvent,
      new TextEncoder().encode(`\uFEFF${JSON.stringify(validEvent)}`)
    )
    if (Either.isRight(withBom)) throw new Error("accepted")
    expect(withBom.left.problems[0]?.reason).toContain("not valid JSON")
    expect(withBom.left.redactedPayload.startsWith("\uFEFF")).toBe(true)
  })
})
