/** Microseconds since the Unix epoch, UTC. The one time representation inside the system. */
export type EpochMicros = number

const isLeapYear = (year: number): boolean => (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0

const daysInMonth = (year: number, month: number): number =>
  month === 2
    ? isLeapYear(year)
      ? 29
      : 28
    : month === 4 || month === 6 || month === 9 || month === 11
      ? 30
      : 31

/** Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil), any year. */
const daysFromCivil = (year: number, month: number, day: number): number => {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yearOfEra = y - era * 400
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear
  return era * 146_097 + dayOfEra - 719_468
}

const syntaxProblem = "expected an RFC 3339 timestamp with offset, e.g. 2026-11-24T10:15:30.123+05:30"

/** The fields of an RFC 3339 timestamp; `problem` set when the text is not one. */
interface Rfc3339Fields {
  problem: string | undefined
  year: number
  month: number
  day: number
  hour: number
  minute: number
  second: number
  fractionMicros: number
  offsetMinutes: number
}

/** Reused by every parse: the fields are read right after, never kept. */
const fields: Rfc3339Fields = {
  problem: undefined,
  year: 0,
  month: 0,
  day: 0,
  hour: 0,
  minute: 0,
  second: 0,
  fractionMicros: 0,
  offsetMinutes: 0
}

/** The number of `count` ASCII digits at `at`, or -1 when any of them is not a digit. */
const digitsAt = (text: string, at: number, count: number): number => {
  let value = 0
  for (let index = at; index < at + count; index++) {
    const code = text.charCodeAt(index) - 48
    if (code < 0 || code > 9) return -1
    value = value * 10 + code
  }
  return value
}

/**
 * Reads `YYYY-MM-DD(T|t)HH:MM:SS[.fraction of 1 or more digits, past microseconds truncated](Z|z|(+|-)HH:MM)` in one pass over the char
 * codes, then checks the ranges; the result is in {@link fields}.
 */
const readRfc3339 = (text: string): Rfc3339Fields => {
  fields.problem = syntaxProblem
  const length = text.length
  if (length < 20) return fields
  const year = digitsAt(text, 0, 4)
  const month = digitsAt(text, 5, 2)
  const day = digitsAt(text, 8, 2)
  const hour = digitsAt(text, 11, 2)
  const minute = digitsAt(text, 14, 2)
  const second = digitsAt(text, 17, 2)
  const separator = text.charCodeAt(10)
  if (
    year < 0 ||
    month < 0 ||
    day < 0 ||
    hour < 0 ||
    minute < 0 ||
    second < 0 ||
    text.charCodeAt(4) !== 45 ||
    text.charCodeAt(7) !== 45 ||
    (separator !== 84 && separator !== 116) ||
    text.charCodeAt(13) !== 58 ||
    text.charCodeAt(16) !== 58
  ) {
    return fields
  }
  let at = 19
  let fractionMicros = 0
  if (text.charCodeAt(at) === 46) {
    const start = ++at
    while (at < length) {
      const code = text.charCodeAt(at) - 48
      if (code < 0 || code > 9) break
      if (at - start < 6) fractionMicros = fractionMicros * 10 + code
      at++
    }
    const count = at - start
    if (count === 0) return fields
    for (let scale = count; scale < 6; scale++) fractionMicros *= 10
  }
  const zone = text.charCodeAt(at)
  let offsetMinutes = 0
  let offsetHour = 0
  let offsetMinute = 0
  if (zone === 90 || zone === 122) {
    if (at + 1 !== length) return fields
  } else if (zone === 43 || zone === 45) {
    offsetHour = digitsAt(text, at + 1, 2)
    offsetMinute = digitsAt(text, at + 4, 2)
    if (at + 6 !== length || offsetHour < 0 || offsetMinute < 0 || text.charCodeAt(at + 3) !== 58)
      return fields
    offsetMinutes = (zone === 45 ? -1 : 1) * (offsetHour * 60 + offsetMinute)
  } else {
    return fields
  }
  if (month < 1 || month > 12) fields.problem = "month out of range"
  else if (day < 1 || day > daysInMonth(year, month)) fields.problem = "day out of range for the month"
  else if (hour > 23) fields.problem = "hour out of range"
  else if (minute > 59) fields.problem = "minute out of range"
  else if (second > 59) fields.problem = "second out of range"
  else if (offsetHour > 23 || offsetMinute > 59) fields.problem = "offset out of range"
  else fields.problem = undefined
  fields.year = year
  fields.month = month
  fields.day = day
  fields.hour = hour
  fields.minute = minute
  fields.second = second
  fields.fractionMicros = fractionMicros
  fields.offsetMinutes = offsetMinutes
  return fields
}

/** Why a string is not an RFC 3339 timestamp with offset, or undefined when it is one. */
export const rfc3339Problem = (text: string): string | undefined => readRfc3339(text).problem

/**
 * Parses an RFC 3339 timestamp with offset into UTC epoch microseconds. Digits below a microsecond are
 * truncated. Returns NaN for invalid text ({@link rfc3339Problem} says why).
 */
export const parseRfc3339ToMicros = (text: string): EpochMicros => {
  const read = readRfc3339(text)
  if (read.problem !== undefined) return Number.NaN
  const utcMillis =
    daysFromCivil(read.year, read.month, read.day) * 86_400_000 +
    read.hour * 3_600_000 +
    read.minute * 60_000 +
    read.second * 1000
  return (utcMillis - read.offsetMinutes * 60_000) * 1000 + read.fractionMicros
}

/** Formats epoch microseconds as an ISO 8601 UTC string with microsecond precision. */
export const microsToIso = (micros: EpochMicros): string => {
  const millis = Math.floor(micros / 1000)
  const rest = micros - millis * 1000
  const iso = new Date(millis).toISOString()
  return rest === 0 ? iso : iso.replace("Z", String(rest).padStart(3, "0") + "Z")
}

/** The UTC calendar date (YYYY-MM-DD) of an instant: the `dt` partition value. */
export const utcDate = (micros: EpochMicros): string => {
  const day = Math.floor(micros / 86_400_000_000)
  let date = utcDateByDay.get(day)
  if (date === undefined) {
    date = new Date(day * 86_400_000).toISOString().slice(0, 10)
    if (utcDateByDay.size >= 4096) utcDateByDay.clear()
    utcDateByDay.set(day, date)
  }
  return date
}

/** Formatting a Date per row showed in profiles; partition dates repeat, so they are formatted once. */
const utcDateByDay = new Map<number, string>()

/** Epoch microseconds to a JavaScript Date (millisecond precision). */
export const microsToDate = (micros: EpochMicros): Date => new Date(Math.floor(micros / 1000))
