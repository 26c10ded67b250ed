import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as fc from "fast-check"
import {
  containsCardNumber,
  findCardNumberPaths,
  redactCardNumbers,
  redactCardNumbersInText
} from "../src/domain/card.js"
import { FraudSignal, TransactionEvent } from "../src/domain/events.js"
import { decodeJsonRecord, decodeValue } from "../src/domain/validation.js"

/** Appends the Luhn check digit to a digit string (independent of the code under test). */
const withLuhnCheckDigit = (body: string): string => {
  let sum = 0
  for (let index = 0; index < body.length; index++) {
    let digit = Number(body[body.length - 1 - index])
    if (index % 2 === 0) {
      digit *= 2
      if (digit > 9) digit -= 9
    }
    sum += digit
  }
  return body + String((10 - (sum % 10)) % 10)
}

const passesLuhnByHand = (digits: string): boolean => withLuhnCheckDigit(digits.slice(0, -1)) === digits

/** The same digits with the last one changed, so the Luhn check fails. */
const breakLuhn = (pan: string): string => pan.slice(0, -1) + String((Number(pan.at(-1)) + 1) % 10)

const panOfLength = (length: number): string => withLuhnCheckDigit("4".padEnd(length - 1, "7"))

const visa = "4111111111111111"
const amex = "378282246310005"
const visa13 = "4222222222222"

const validEvent = {
  event_id: "evt-1",
  transaction_id: "tx-1",
  sequence: 1,
  event_time: "2026-11-24T10:15:30.123+05:30",
  status: "authorized",
  amount_minor: 1250,
  currency: "USD",
  user_id: "u-1",
  merchant_id: "m-1",
  payment_method: "card",
  card_bin: "411111",
  card_last4: "1111",
  processor: "adyen",
  processor_reference: "psp-1"
}

describe("test fixtures", () => {
  it("are Luhn-valid by an independent computation", () => {
    for (const pan of [visa, amex, visa13]) expect(withLuhnCheckDigit(pan.slice(0, -1))).toBe(pan)
  })
})

describe("containsCardNumber", () => {
  it.each([13, 14, 15, 16, 17, 18, 19])("finds a Luhn-valid PAN of %i digits", (length) => {
    const pan = panOfLength(length)
    expect(pan).toHaveLength(length)
    expect(containsCardNumber(pan)).toBe(true)
    expect(containsCardNumber(breakLuhn(pan))).toBe(false)
  })

  it("finds well-known test PANs", () => {
    expect(containsCardNumber(visa)).toBe(true)
    expect(containsCardNumber(amex)).toBe(true)
    expect(containsCardNumber(visa13)).toBe(true)
  })

  it("finds a PAN inside other text", () => {
    expect(containsCardNumber(`card=${visa};`)).toBe(true)
    expect(containsCardNumber(`paid with ${visa} yesterday`)).toBe(true)
    expect(containsCardNumber(`ref${visa}x`)).toBe(true)
  })

  it("finds a PAN written with spaces or dashes", () => {
    expect(containsCardNumber("4111 1111 1111 1111")).toBe(true)
    expect(containsCardNumber("4111-1111-1111-1111")).toBe(true)
    expect(containsCardNumber("3782 822463 10005")).toBe(true)
    const grouped19 = panOfLength(19).replace(/^(\d{4})(\d{4})(\d{4})(\d{4})/, "$1 $2 $3 $4 ")
    expect(grouped19).toMatch(/^\d{4} \d{4} \d{4} \d{4} \d{3}$/)
    expect(containsCardNumber(grouped19)).toBe(true)
    expect(containsCardNumber("(4111-1111-1111-1111)")).toBe(true)
  })

  it("does not take other digit groupings or UUIDs for card numbers", () => {
    // Each holds a Luhn-valid sequence of 13–19 digits once its groups are joined.
    const uuid = "59af83fa-cea8-43e2-8299-446944639158"
    expect(passesLuhnByHand("2" + "8299" + "446944639158")).toBe(true)
    expect(containsCardNumber(uuid)).toBe(false)
    expect(containsCardNumber("4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1")).toBe(false)
    expect(containsCardNumber("ab4111 1111 1111 1111")).toBe(false)
    expect(containsCardNumber("4111 1111 1111 1111cd")).toBe(false)
    expect(containsCardNumber("ab4111111111111111cd")).toBe(true)
    const pan16 = panOfLength(16)
    const grouped = (...sizes: ReadonlyArray<number>) => {
      let rest = pan16
      return sizes
        .map((size) => {
          const group = rest.slice(0, size)
          rest = rest.slice(size)
          return group
        })
        .join(" ")
    }
    expect(containsCardNumber(grouped(4, 4, 4, 4))).toBe(true)
    expect(containsCardNumber(grouped(4, 6, 6))).toBe(true)
    expect(containsCardNumber(grouped(4, 7, 5))).toBe(false)
    expect(containsCardNumber(grouped(3, 5, 4, 4))).toBe(false)
    expect(containsCardNumber(grouped(4, 4, 2, 6))).toBe(false)
  })

  it("finds a PAN followed or preceded by other digit groups", () => {
    expect(containsCardNumber("4111 1111 1111 1111 12 25")).toBe(true)
    expect(containsCardNumber("no 12 4111-1111-1111-1111")).toBe(true)
    expect(containsCardNumber(`${visa} ${amex}`)).toBe(true)
  })

  it("ignores Luhn-invalid numbers of card length", () => {
    expect(containsCardNumber(breakLuhn(visa))).toBe(false)
    expect(containsCardNumber("4111 1111 1111 1112")).toBe(false)
    expect(containsCardNumber("1234567890123")).toBe(false)
  })

  it("ignores Luhn-valid runs of 12 digits and of 20 digits", () => {
    const twelve = withLuhnCheckDigit("41111111111")
    const twenty = withLuhnCheckDigit("4111111111111111111")
    expect(twelve).toHaveLength(12)
    expect(twenty).toHaveLength(20)
    expect(containsCardNumber(twelve)).toBe(false)
    expect(containsCardNumber(twenty)).toBe(false)
  })

  it("does not join digit runs separated by other characters or by two separators", () => {
    expect(containsCardNumber("4111111.111111111")).toBe(false)
    expect(containsCardNumber("4111  1111  1111  1111")).toBe(false)
    expect(containsCardNumber("4111/1111/1111/1111")).toBe(false)
  })

  it("ignores ordinary contract values", () => {
    for (const text of [
      "2026-11-24T10:15:30.123+05:30",
      "411111",
      "1111",
      "192.168.0.1",
      "psp-2026-000123"
    ]) {
      expect(containsCardNumber(text), text).toBe(false)
    }
  })

  it("agrees with a brute-force definition on random text around real PANs", () => {
    // Every substring that starts and ends a digit group is a card number when it is 13–19 digits passing
    // Luhn, and either a whole unbroken digit run, or written as groups of 4, 4–6, …, 1–6 joined by single
    // spaces or dashes with no letter or digit glued to either end.
    const passesLuhn = (digits: string) => withLuhnCheckDigit(digits.slice(0, -1)) === digits
    const glued = (char: string | undefined) => char !== undefined && /[\p{L}\p{N}]/u.test(char)
    const isDigit = (char: string | undefined) => char !== undefined && /\d/.test(char)
    const byBruteForce = (text: string) => {
      for (let start = 0; start < text.length; start++) {
        if (!isDigit(text[start]) || isDigit(text[start - 1])) continue
        for (let end = start + 13; end <= Math.min(text.length, start + 23); end++) {
          if (!isDigit(text[end - 1]) || isDigit(text[end])) continue
          const candidate = text.slice(start, end)
          const digits = candidate.replace(/[ -]/g, "")
          if (digits.length < 13 || digits.length > 19 || !passesLuhn(digits)) continue
          if (/^\d+$/.test(candidate)) return true
          if (
            /^\d{4}(?:[ -]\d{4,6})*[ -]\d{1,6}$/.test(candidate) &&
            !glued(text[start - 1]) &&
            !glued(text[end])
          )
            return true
        }
      }
      return false
    }
    const piece = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.constantFrom(
          "0",
          "1",
          "4",
          "7",
          "9",
          "123",
          "1234",
          "1234567",
          " ",
          "-",
          "a",
          "é",
          ".",
          "  ",
          "--",
          "x-"
        )
      },
      { weight: 1, arbitrary: fc.integer({ min: 13, max: 19 }).map(panOfLength) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          visa,
          amex,
          visa13,
          "4111 1111 1111 1111",
          "3782-822463-10005",
          "4222 2222 2222 2",
          "59af83fa-cea8-43e2-8299-446944639158"
        )
      }
    )
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }), (pieces) => {
        const text = pieces.join("")
        expect(containsCardNumber(text), text).toBe(byBruteForce(text))
      }),
      { seed: 20261127, numRuns: 5000 }
    )
  })
})

describe("findCardNumberPaths", () => {
  it("names every string field, nested object key and array index holding a PAN", () => {
    const record = {
      note: `card ${visa}`,
      clean: "nothing here",
      meta: { deep: { pan: "4111-1111-1111-1111" }, fine: "123" },
      list: ["a", amex, { inner: visa13 }]
    }
    expect(findCardNumberPaths(record)).toEqual(["note", "meta.deep.pan", "list[1]", "list[2].inner"])
  })

  it("scans integer numbers as their digits", () => {
    expect(findCardNumberPaths({ amount: 4111111111111111, ok: 12 })).toEqual(["amount"])
  })

  it("finds a PAN used as a field name, naming the place but not the number", () => {
    const paths = findCardNumberPaths({ extra: { [visa]: "x" }, [amex]: 1 })
    expect(paths).toEqual(["extra.(field name)", "(field name)"])
    expect(paths.join()).not.toContain(visa.slice(0, 6))
  })

  it("names a bare string value as the root", () => {
    expect(findCardNumberPaths(visa)).toEqual(["(root)"])
  })

  it("finds nothing in a clean record", () => {
    expect(findCardNumberPaths(validEvent)).toEqual([])
  })
})

describe("redaction", () => {
  it("removes the digits of every PAN and keeps the rest of the text", () => {
    const text = `a ${visa} b 4111-1111-1111-1111 c ${amex} d 1234`
    const redacted = redactCardNumbersInText(text)
    expect(redacted).toBe("a [REDACTED-PAN] b [REDACTED-PAN] c [REDACTED-PAN] d 1234")
  })

  it("removes a PAN that is followed by other digit groups and keeps those groups", () => {
    const redacted = redactCardNumbersInText("4111 1111 1111 1111 12 25")
    expect(redacted).toBe("[REDACTED-PAN] 12 25")
  })

  it("redacts a PAN used as a field name", () => {
    expect(redactCardNumbers({ [visa]: "x", [`id-${amex}`]: { ok: 1 } })).toEqual({
      "[REDACTED-PAN]": "x",
      "id-[REDACTED-PAN]": { ok: 1 }
    })
  })

  it("redacts nested values in a document", () => {
    const redacted = redactCardNumbers({ a: [visa, { b: `x ${amex}` }], n: 4111111111111111, keep: 7 })
    expect(redacted).toEqual({
      a: ["[REDACTED-PAN]", { b: "x [REDACTED-PAN]" }],
      n: "[REDACTED-PAN]",
      keep: 7
    })
  })
})

describe("a record holding a PAN", () => {
  const digitsOf = (text: string) => text.replace(/\D/g, "")

  it.each([
    ["card_last4", { ...validEvent, card_last4: visa }],
    ["device_id", { ...validEvent, device_id: `dev ${visa}` }],
    ["processor_reference", { ...validEvent, processor_reference: "4111 1111 1111 1111" }],
    ["extra.nested[0]", { ...validEvent, extra: { nested: [amex] } }]
  ])("is refused naming %s, and the payload no longer holds the digits", (field, record) => {
    const text = JSON.stringify(record)
    const result = decodeJsonRecord(TransactionEvent, text)
    const rejected = Either.getLeft(result)
    expect(rejected._tag).toBe("Some")
    if (rejected._tag !== "Some") return
    expect(rejected.value.problems).toEqual([{ field, reason: expect.stringContaining("card number") }])
    expect(rejected.value.redactedPayload).toContain("[REDACTED-PAN]")
    expect(digitsOf(rejected.value.redactedPayload)).not.toContain("41111111111111111")
    expect(rejected.value.redactedPayload).not.toMatch(/4111[ -]?1111[ -]?1111[ -]?1111|378282246310005/)
    expect(JSON.parse(rejected.value.redactedPayload)).toMatchObject({ event_id: "evt-1" })
  })

  it("is refused as a number in an unknown field, while amounts and sequences may hold any integer", () => {
    const luhnValid13To16 = [withLuhnCheckDigit("900719925474099"), withLuhnCheckDigit("173244333044")]
    for (const number of luhnValid13To16) expect(containsCardNumber(number)).toBe(true)
    const [amount, sequence] = luhnValid13To16.map(Number)
    const accepted = decodeJsonRecord(
      TransactionEvent,
      JSON.stringify({ ...validEvent, amount_minor: amount, sequence })
    )
    expect(Either.isRight(accepted)).toBe(true)
    const refused = decodeJsonRecord(TransactionEvent, JSON.stringify({ ...validEvent, extra: Number(visa) }))
    expect(Either.isLeft(refused) && refused.left.problems).toEqual([
      { field: "extra", reason: expect.stringContaining("card number") }
    ])
    // Another record kind's number field is an unknown field here.
    const scored = decodeValue(TransactionEvent, { ...validEvent, score: Number(visa) })
    expect(Either.isLeft(scored) && scored.left.problems[0]?.field).toBe("score")
    const signal = {
      signal_id: "s-1",
      transaction_id: "tx-1",
      event_time: "2026-11-24T10:15:30Z",
      source: "rules",
      score: 0.5,
      reasons: []
    }
    expect(Either.isRight(decodeValue(FraudSignal, signal))).toBe(true)
    const withAmount = decodeValue(FraudSignal, { ...signal, amount_minor: Number(visa) })
    expect(Either.isLeft(withAmount) && withAmount.left.problems[0]?.field).toBe("amount_minor")
  })

  it("is refused in a fraud signal's reasons too", () => {
    const text = JSON.stringify({
      signal_id: "s-1",
      transaction_id: "tx-1",
      event_time: "2026-11-24T10:15:30Z",
      source: "manual_review",
      score: 0.9,
      reasons: ["ok", `customer said card ${visa}`]
    })
    const rejected = Either.getLeft(decodeJsonRecord(FraudSignal, text))
    expect(rejected._tag === "Some" && rejected.value.problems.map((problem) => problem.field)).toEqual([
      "reasons[1]"
    ])
  })

  it("lists every field that holds a PAN", () => {
    const record = { ...validEvent, device_id: visa, ip_address: amex }
    const rejected = Either.getLeft(decodeValue(TransactionEvent, record))
    expect(rejected._tag === "Some" && rejected.value.problems.map((problem) => problem.field)).toEqual([
      "device_id",
      "ip_address"
    ])
  })

  it("is redacted even when the line is not valid JSON", () => {
    const text = `{"event_id": "evt-1", "note": "${visa}", broken`
    const rejected = Either.getLeft(decodeJsonRecord(TransactionEvent, text))
    expect(rejected._tag).toBe("Some")
    if (rejected._tag !== "Some") return
    expect(rejected.value.problems[0]?.reason).toContain("not valid JSON")
    expect(rejected.value.redactedPayload).not.toContain(visa)
    expect(rejected.value.redactedPayload).toContain("[REDACTED-PAN]")
    expect(rejected.value.problems[0]?.reason).not.toContain(visa)
  })

  it("does not leak a PAN hidden behind a JSON unicode escape", () => {
    const text = `{"event_id":"evt-1","note":"\\u0034111111111111111"}`
    expect(JSON.parse(text).note).toBe(visa)
    const rejected = Either.getLeft(decodeJsonRecord(TransactionEvent, text))
    expect(rejected._tag).toBe("Some")
    if (rejected._tag !== "Some") return
    expect(rejected.value.problems).toEqual([
      { field: "note", reason: expect.stringContaining("card number") }
    ])
    expect(findCardNumberPaths(JSON.parse(rejected.value.redactedPayload))).toEqual([])
  })

  it("does not keep a PAN spelled with JSON escapes in a line that is not valid JSON", () => {
    for (const text of [
      `{"event_id":"evt-1","note":"\\u0034111111111111111", broken`,
      `{"note":"4111\\u00201111\\u002D1111\\u00201111" broken`,
      // Escapes that end in a letter or digit right before the number.
      `{"note":"\\n4111 1111 1111 1111", broken`,
      `{"note":"\\t4111-1111-1111-1111", broken`,
      `{"note":"\\u00a04111 1111 1111 1111", broken`
    ]) {
      const rejected = Either.getLeft(decodeJsonRecord(TransactionEvent, text))
      expect(rejected._tag).toBe("Some")
      if (rejected._tag !== "Some") return
      expect(rejected.value.problems[0]?.reason).toContain("not valid JSON")
      const unescaped = rejected.value.redactedPayload.replace(/\\u([0-9a-fA-F]{4})/g, (_, code: string) =>
        String.fromCharCode(Number.parseInt(code, 16))
      )
      expect(containsCardNumber(unescaped), rejected.value.redactedPayload).toBe(false)
      expect(rejected.value.redactedPayload).toContain("[REDACTED-PAN]")
    }
    // An escaped backslash before "u0034" is text, not an escape, and stays as it is; so does a text
    // without a card number, escapes and all.
    expect(redactCardNumbersInText(`"a\\\\u0034b"`)).toBe(`"a\\\\u0034b"`)
    expect(redactCardNumbersInText(`{"n":"\\u0031\\u0032", bad`)).toBe(`{"n":"\\u0031\\u0032", bad`)
  })

  it("is redacted when an already parsed value is refused", () => {
    const rejected = Either.getLeft(decodeValue(TransactionEvent, { ...validEvent, device_id: visa }))
    expect(rejected._tag === "Some" && rejected.value.redactedPayload).not.toContain(visa)
  })

  it("is redacted when the refusal is for another reason", () => {
    const text = JSON.stringify({ junk: ["4111", "1111"], amount_minor: "x" })
    const rejected = Either.getLeft(decodeJsonRecord(TransactionEvent, `[${text}, "${visa}"]`))
    expect(rejected._tag === "Some" && rejected.value.redactedPayload).not.toContain(visa)
  })

  it("a clean record with a 6-digit bin and 4-digit last4 is accepted", () => {
    expect(Either.isRight(decodeJsonRecord(TransactionEvent, JSON.stringify(validEvent)))).toBe(true)
  })
})

describe("documents nested past any call stack", () => {
  const nested = (depth: number, inner: unknown): unknown => {
    let value = inner
    for (let level = 0; level < depth; level++) value = level % 2 === 0 ? [value] : { more: value }
    return value
  }

  it("are scanned without overflowing: a PAN 100 000 levels down is found", () => {
    const paths = findCardNumberPaths({ event_id: "e-1", extra: nested(100_000, visa) })
    expect(paths).toHaveLength(1)
    expect(paths[0]).toMatch(/^extra(\.more|\[0\])+$/)
    expect(findCardNumberPaths({ extra: nested(100_000, "clean") })).toEqual([])
  })

  it("name every PAN in document order, across the depth where the scan stops recursing", () => {
    let document: Record<string, unknown> = { last: visa }
    for (let level = 399; level >= 0; level--)
      document = level % 50 === 0 ? { pan: visa, [amex]: 1, more: document } : { more: document }
    const paths = findCardNumberPaths(document)
    const chain = (levels: number) => Array.from({ length: levels }, () => "more").join(".")
    const expected = Array.from({ length: 8 }, (_, index) => {
      const prefix = index === 0 ? "" : `${chain(index * 50)}.`
      return [`${prefix}pan`, `${prefix}(field name)`]
    }).flat()
    expect(paths).toEqual([...expected, `${chain(400)}.last`])
  })

  it("are redacted down to 1000 levels, deeper parts replaced by a marker", () => {
    const redacted = JSON.stringify(redactCardNumbers({ shallow: visa, extra: nested(100_000, visa) }))
    expect(redacted).not.toContain(visa)
    expect(redacted).toContain("[NESTED-TOO-DEEP]")
    expect(JSON.stringify(redactCardNumbers(nested(900, visa)))).toContain("[REDACTED-PAN]")
  })
})
