import type { EpochMicros } from "../../domain/time.js"

const pad = (value: number, width: number): string => String(value).padStart(width, "0")

/** Offsets (minutes east of UTC) used on the wire so UTC conversion matters downstream. */
export type UtcOffsetMinutes = number

const offsetSuffix = (offsetMinutes: UtcOffsetMinutes, zulu: boolean): string => {
  if (offsetMinutes === 0 && zulu) return "Z"
  const sign = offsetMinutes < 0 ? "-" : "+"
  const absolute = Math.abs(offsetMinutes)
  return `${sign}${pad(Math.floor(absolute / 60), 2)}:${pad(absolute % 60, 2)}`
}

/**
 * Formats epoch microseconds as RFC 3339 in the given offset, e.g. `2026-11-24T10:15:30.123+05:30`.
 * `fractionDigits` 3 keeps milliseconds, 6 microseconds; the instant is preserved exactly when the time
 * has no finer digits than that.
 */
export const formatRfc3339 = (
  micros: EpochMicros,
  offsetMinutes: UtcOffsetMinutes,
  fractionDigits: 0 | 3 | 6 = 3,
  zulu = true
): string => {
  const localMicros = micros + offsetMinutes * 60_000_000
  const wholeSeconds = Math.floor(localMicros / 1_000_000)
  const fraction = localMicros - wholeSeconds * 1_000_000
  const date = new Date(wholeSeconds * 1000)
  const base =
    `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)}` +
    `T${pad(date.getUTCHours(), 2)}:${pad(date.getUTCMinutes(), 2)}:${pad(date.getUTCSeconds(), 2)}`
  const fractionText = fractionDigits === 0 ? "" : "." + pad(fraction, 6).slice(0, fractionDigits)
  return base + fractionText + offsetSuffix(offsetMinutes, zulu)
}

/** `YYYYMMDDTHHMMSSZ` for a dimension snapshot folder. */
export const snapshotStamp = (micros: EpochMicros): string => formatRfc3339(micros, 0, 0).replace(/[-:]/g, "")

/** Base-36 text of a non-negative integer, left-padded with zeros. */
export const base36 = (value: number, width: number): string => value.toString(36).padStart(width, "0")
