/** Microseconds since the Unix epoch, UTC. The one time representation inside the system. */
export type EpochMicros = number

const rfc3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/

const isLeapYear = (year: number): boolean => (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0

const daysInMonth = (year: number, month: number): number =>
  month === 2
    ? isLeapYear(year)
      ? 29
      : 28
    : month === 4 || month === 6 || month === 9 || month === 11
      ? 30
      : 31

/** Date.UTC maps years 0–99 to 1900–1999; setUTCFullYear takes the year as written. */
const utcMillisOf = (
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number
) => {
  const date = new Date(0)
  date.setUTCFullYear(year, month - 1, day)
  date.setUTCHours(hour, minute, second, 0)
  return date.getTime()
}

/** Why a string is not an RFC 3339 timestamp with offset, or undefined when it is one. */
export const rfc3339Problem = (text: string): string | undefined => {
  const match = rfc3339.exec(text)
  if (match === null) return "expected an RFC 3339 timestamp with offset, e.g. 2026-11-24T10:15:30.123+05:30"
  const [, y, mo, d, h, mi, s, , , , oh, om] = match
  const year = Number(y)
  const month = Number(mo)
  const day = Number(d)
  if (month < 1 || month > 12) return "month out of range"
  if (day < 1 || day > daysInMonth(year, month)) return "day out of range for the month"
  if (Number(h) > 23) return "hour out of range"
  if (Number(mi) > 59) return "minute out of range"
  if (Number(s) > 59) return "second out of range"
  if (oh !== undefined && (Number(oh) > 23 || Number(om) > 59)) return "offset out of range"
  return undefined
}

/**
 * Parses an RFC 3339 timestamp with offset into UTC epoch microseconds. Digits below a microsecond are
 * truncated. Call {@link rfc3339Problem} first; this returns NaN for invalid text.
 */
export const parseRfc3339ToMicros = (text: string): EpochMicros => {
  const match = rfc3339.exec(text)
  if (match === null || rfc3339Problem(text) !== undefined) return Number.NaN
  const [, y, mo, d, h, mi, s, frac, , sign, oh, om] = match
  const utcMillis = utcMillisOf(Number(y), Number(mo), Number(d), Number(h), Number(mi), Number(s))
  const fractionMicros = frac === undefined ? 0 : Number(frac.padEnd(6, "0").slice(0, 6))
  const offsetMinutes = sign === undefined ? 0 : (sign === "-" ? -1 : 1) * (Number(oh) * 60 + Number(om))
  return (utcMillis - offsetMinutes * 60_000) * 1000 + fractionMicros
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
