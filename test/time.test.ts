import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import {
  microsToDate,
  microsToIso,
  parseRfc3339ToMicros,
  rfc3339Problem,
  utcDate
} from "../src/domain/time.js"

const utcMicros = (
  year: number,
  month: number,
  day: number,
  hour = 0,
  minute = 0,
  second = 0,
  millis = 0
): number => Date.UTC(year, month - 1, day, hour, minute, second, millis) * 1000

describe("parseRfc3339ToMicros", () => {
  it("converts a positive offset to UTC", () => {
    expect(parseRfc3339ToMicros("2026-11-24T10:15:30.123+05:30")).toBe(
      utcMicros(2026, 11, 24, 4, 45, 30, 123)
    )
  })

  it("converts a negative offset to UTC, crossing midnight forward", () => {
    expect(parseRfc3339ToMicros("2026-11-24T22:00:00-03:00")).toBe(utcMicros(2026, 11, 25, 1))
  })

  it("converts an offset that crosses midnight backward", () => {
    expect(parseRfc3339ToMicros("2026-11-24T01:00:00+05:30")).toBe(utcMicros(2026, 11, 23, 19, 30))
  })

  it("treats Z, z, +00:00 and -00:00 as UTC", () => {
    const expected = utcMicros(2026, 1, 2, 3, 4, 5)
    for (const text of [
      "2026-01-02T03:04:05Z",
      "2026-01-02T03:04:05z",
      "2026-01-02T03:04:05+00:00",
      "2026-01-02T03:04:05-00:00"
    ]) {
      expect(parseRfc3339ToMicros(text), text).toBe(expected)
    }
  })

  it("accepts a lower-case t as the date-time separator", () => {
    expect(parseRfc3339ToMicros("2026-01-02t03:04:05Z")).toBe(utcMicros(2026, 1, 2, 3, 4, 5))
  })

  it("keeps fractional seconds to the microsecond", () => {
    const base = utcMicros(2026, 1, 2, 3, 4, 5)
    expect(parseRfc3339ToMicros("2026-01-02T03:04:05.1Z")).toBe(base + 100_000)
    expect(parseRfc3339ToMicros("2026-01-02T03:04:05.12Z")).toBe(base + 120_000)
    expect(parseRfc3339ToMicros("2026-01-02T03:04:05.000001Z")).toBe(base + 1)
    expect(parseRfc3339ToMicros("2026-01-02T03:04:05.123456Z")).toBe(base + 123_456)
  })

  it("truncates digits below a microsecond instead of rounding", () => {
    const base = utcMicros(2026, 1, 2, 3, 4, 5)
    expect(parseRfc3339ToMicros("2026-01-02T03:04:05.1234569Z")).toBe(base + 123_456)
    expect(parseRfc3339ToMicros("2026-01-02T03:04:05.999999999Z")).toBe(base + 999_999)
  })

  it('takes any number of fraction digits, as RFC 3339 does (`time-secfrac = "." 1*DIGIT`)', () => {
    const base = utcMicros(2026, 1, 2, 3, 4, 5)
    expect(parseRfc3339ToMicros("2026-01-02T03:04:05.1234567891Z")).toBe(base + 123_456)
    expect(parseRfc3339ToMicros(`2026-01-02T03:04:05.${"9".repeat(40)}+00:00`)).toBe(base + 999_999)
    expect(rfc3339Problem("2026-01-02T03:04:05.1234567891Z")).toBeUndefined()
  })

  it("handles instants before the epoch with fractions", () => {
    expect(parseRfc3339ToMicros("1969-12-31T23:59:59.5Z")).toBe(-500_000)
  })

  it("reads two-digit and zero years literally, not as 19xx", () => {
    expect(microsToIso(parseRfc3339ToMicros("0050-01-01T00:00:00Z"))).toBe("0050-01-01T00:00:00.000Z")
    expect(rfc3339Problem("0000-02-29T00:00:00Z")).toBeUndefined()
    expect(microsToIso(parseRfc3339ToMicros("0000-02-29T12:00:00Z"))).toBe("0000-02-29T12:00:00.000Z")
  })

  it("returns NaN for text that is not a valid timestamp", () => {
    expect(parseRfc3339ToMicros("2026-01-02T03:04:05")).toBeNaN()
    expect(parseRfc3339ToMicros("2025-02-29T00:00:00Z")).toBeNaN()
  })
})

describe("rfc3339Problem", () => {
  it.each([
    "2026-11-24T10:15:30.123+05:30",
    "2026-11-24T10:15:30Z",
    "2026-11-24t10:15:30z",
    "2024-02-29T00:00:00Z",
    "2000-02-29T00:00:00Z",
    "2026-12-31T23:59:59.999999-23:59",
    "2026-04-30T00:00:00Z"
  ])("accepts %s", (text) => {
    expect(rfc3339Problem(text)).toBeUndefined()
  })

  it.each([
    ["2026-11-24T10:15:30", "expected an RFC 3339 timestamp with offset"],
    ["2026-11-24 10:15:30Z", "expected an RFC 3339 timestamp with offset"],
    ["2026-11-24", "expected an RFC 3339 timestamp with offset"],
    ["yesterday", "expected an RFC 3339 timestamp with offset"],
    ["", "expected an RFC 3339 timestamp with offset"],
    ["2026-11-24T10:15:30+0530", "expected an RFC 3339 timestamp with offset"],
    ["2026-11-24T10:15:30.Z", "expected an RFC 3339 timestamp with offset"],
    ["2026-11-24T10:15:30Z ", "expected an RFC 3339 timestamp with offset"],
    ["2026-11-24T10:15:30Z\n", "expected an RFC 3339 timestamp with offset"],
    ["２０２６-11-24T10:15:30Z", "expected an RFC 3339 timestamp with offset"],
    ["2026-00-10T00:00:00Z", "month out of range"],
    ["2026-13-10T00:00:00Z", "month out of range"],
    ["2026-01-00T00:00:00Z", "day out of range for the month"],
    ["2026-01-32T00:00:00Z", "day out of range for the month"],
    ["2026-04-31T00:00:00Z", "day out of range for the month"],
    ["2025-02-29T00:00:00Z", "day out of range for the month"],
    ["1900-02-29T00:00:00Z", "day out of range for the month"],
    ["2026-01-01T24:00:00Z", "hour out of range"],
    ["2026-01-01T23:60:00Z", "minute out of range"],
    ["2026-01-01T23:59:61Z", "second out of range"],
    ["2026-01-01T00:00:00+24:00", "offset out of range"],
    ["2026-01-01T00:00:00+05:60", "offset out of range"]
  ])("refuses %j: %s", (text, reason) => {
    expect(rfc3339Problem(text)).toContain(reason)
  })
})

describe("microsToIso", () => {
  it("prints microsecond precision when there are sub-millisecond digits", () => {
    expect(microsToIso(utcMicros(2026, 11, 24, 4, 45, 30, 123) + 456)).toBe("2026-11-24T04:45:30.123456Z")
    expect(microsToIso(utcMicros(2026, 11, 24) + 7)).toBe("2026-11-24T00:00:00.000007Z")
  })

  it("prints millisecond precision when the microseconds are whole milliseconds", () => {
    expect(microsToIso(utcMicros(2026, 11, 24, 4, 45, 30, 123))).toBe("2026-11-24T04:45:30.123Z")
  })

  it("handles instants before the epoch", () => {
    expect(microsToIso(-1)).toBe("1969-12-31T23:59:59.999999Z")
  })

  it("round-trips through parseRfc3339ToMicros", () => {
    for (const micros of [
      0,
      1,
      999,
      1_795_495_530_123_456,
      -500_000,
      utcMicros(2024, 2, 29, 23, 59, 59) + 1
    ]) {
      expect(parseRfc3339ToMicros(microsToIso(micros))).toBe(micros)
    }
  })
})

describe("utcDate", () => {
  it("is the UTC calendar date, not the local date of the offset", () => {
    expect(utcDate(parseRfc3339ToMicros("2026-11-24T01:00:00+05:30"))).toBe("2026-11-23")
    expect(utcDate(parseRfc3339ToMicros("2026-11-24T23:30:00-02:00"))).toBe("2026-11-25")
  })

  it("changes exactly at UTC midnight", () => {
    expect(utcDate(utcMicros(2026, 11, 24) - 1)).toBe("2026-11-23")
    expect(utcDate(utcMicros(2026, 11, 24))).toBe("2026-11-24")
  })

  it("floors instants before the epoch", () => {
    expect(utcDate(-1)).toBe("1969-12-31")
  })
})

describe("microsToDate", () => {
  it("drops the sub-millisecond digits", () => {
    expect(microsToDate(utcMicros(2026, 1, 1) + 1_999).getTime()).toBe(utcMicros(2026, 1, 1) / 1000 + 1)
  })
})

/** The definition the one-pass parser replaced: a regular expression, range checks and Date arithmetic. */
const referencePattern =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/
const referenceDaysInMonth = (year: number, month: number) =>
  new Date(Date.UTC(2000, month, 0)).getUTCDate() +
  (month === 2 && !((year % 4 === 0 && year % 100 !== 0) || year % 400 === 0) ? -1 : 0)
const referenceProblem = (text: string): string | undefined => {
  const match = referencePattern.exec(text)
  if (match === null) return "expected an RFC 3339 timestamp with offset, e.g. 2026-11-24T10:15:30.123+05:30"
  const [, y, mo, d, h, mi, s, , , , oh, om] = match
  const month = Number(mo)
  const day = Number(d)
  if (month < 1 || month > 12) return "month out of range"
  if (day < 1 || day > referenceDaysInMonth(Number(y), month)) return "day out of range for the month"
  if (Number(h) > 23) return "hour out of range"
  if (Number(mi) > 59) return "minute out of range"
  if (Number(s) > 59) return "second out of range"
  if (oh !== undefined && (Number(oh) > 23 || Number(om) > 59)) return "offset out of range"
  return undefined
}
const referenceMicros = (text: string): number => {
  const match = referencePattern.exec(text)
  if (match === null || referenceProblem(text) !== undefined) return Number.NaN
  const [, y, mo, d, h, mi, s, frac, , sign, oh, om] = match
  const date = new Date(0)
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d))
  date.setUTCHours(Number(h), Number(mi), Number(s), 0)
  const fractionMicros = frac === undefined ? 0 : Number(frac.padEnd(6, "0").slice(0, 6))
  const offsetMinutes = sign === undefined ? 0 : (sign === "-" ? -1 : 1) * (Number(oh) * 60 + Number(om))
  return (date.getTime() - offsetMinutes * 60_000) * 1000 + fractionMicros
}

describe("the one-pass RFC 3339 parser", () => {
  const digits = (min: number, max: number) =>
    fc.integer({ min, max }).map((value) => String(value).padStart(String(max).length, "0"))
  const noisy = (part: fc.Arbitrary<string>) =>
    fc.oneof({ weight: 8, arbitrary: part }, { weight: 1, arbitrary: fc.string({ maxLength: 3 }) })
  const timestamp = fc
    .tuple(
      noisy(digits(0, 9999)),
      noisy(fc.constantFrom("-")),
      noisy(digits(0, 13)),
      noisy(digits(0, 32)),
      noisy(fc.constantFrom("T", "t", " ")),
      noisy(digits(0, 24)),
      noisy(digits(0, 60)),
      noisy(digits(0, 60)),
      fc.oneof(fc.constant(""), fc.stringMatching(/^\.[0-9]{0,14}$/)),
      noisy(fc.constantFrom("Z", "z", "+05:30", "-03:00", "+24:00", "+00:60", "+0530", "", "+05:3"))
    )
    .map(
      ([year, dash, month, day, separator, hour, minute, second, fraction, zone]) =>
        `${year}${dash}${month}-${day}${separator}${hour}:${minute}:${second}${fraction}${zone}`
    )

  it("agrees with the regular-expression definition on valid, out-of-range and malformed text", () => {
    fc.assert(
      fc.property(fc.oneof(timestamp, fc.string({ maxLength: 40 })), (text) => {
        expect(rfc3339Problem(text), text).toBe(referenceProblem(text))
        expect(Object.is(parseRfc3339ToMicros(text), referenceMicros(text)), text).toBe(true)
      }),
      { numRuns: 20_000, seed: 20261127 }
    )
  })
})
