/** Digits with at most one space or dash between them: how card numbers are written by people. */
const digitRun = /\d(?:[ -]?\d)*/g

const passesLuhn = (digits: string): boolean => {
  let sum = 0
  let double = false
  for (let index = digits.length - 1; index >= 0; index--) {
    let digit = digits.charCodeAt(index) - 48
    if (double) {
      digit *= 2
      if (digit > 9) digit -= 9
    }
    sum += digit
    double = !double
  }
  return sum % 10 === 0
}

/**
 * Character ranges [start, end) of the card numbers inside one digit run. The run is split into groups at its
 * separators; any sequence of whole consecutive groups with 13–19 digits that passes Luhn is a card number, so
 * a PAN followed by other digits ("4111 1111 1111 1111 12 25") is still found, while an unbroken run of 20
 * digits is not a card number.
 */
const cardNumberRanges = (run: string): Array<readonly [number, number]> => {
  const groups = [...run.matchAll(/\d+/g)].map((group) => ({ start: group.index, digits: group[0] }))
  const ranges: Array<readonly [number, number]> = []
  for (let first = 0; first < groups.length; first++) {
    let digits = ""
    for (let last = first; last < groups.length && digits.length <= 19; last++) {
      const group = groups[last]!
      digits += group.digits
      if (digits.length >= 13 && digits.length <= 19 && passesLuhn(digits)) {
        ranges.push([groups[first]!.start, group.start + group.digits.length])
      }
    }
  }
  return ranges
}

const isDigitCode = (code: number): boolean => code >= 48 && code <= 57

/**
 * True when the text holds a full card number: a run of 13–19 digits that passes the Luhn check. The runs
 * are the matches of {@link digitRun}, found by one scan of char codes that allocates nothing until a run
 * holds 13 digits (every value is scanned, almost none holds one).
 */
export const containsCardNumber = (text: string): boolean => {
  const length = text.length
  if (length < 13) return false
  let index = 0
  while (index < length) {
    if (!isDigitCode(text.charCodeAt(index))) {
      index++
      continue
    }
    const start = index
    let digits = 1
    index++
    while (index < length) {
      const code = text.charCodeAt(index)
      if (isDigitCode(code)) {
        digits++
        index++
      } else if (
        (code === 32 || code === 45) &&
        index + 1 < length &&
        isDigitCode(text.charCodeAt(index + 1))
      ) {
        digits++
        index += 2
      } else break
    }
    if (digits >= 13 && cardNumberRanges(text.slice(start, index)).length > 0) return true
  }
  return false
}

const redactText = (text: string): string =>
  text.replace(digitRun, (run) => {
    if (run.length < 13) return run
    const ranges = cardNumberRanges(run)
    if (ranges.length === 0) return run
    const covered = new Array<boolean>(run.length).fill(false)
    for (const [start, end] of ranges) covered.fill(true, start, end)
    let redacted = ""
    for (let index = 0; index < run.length; index++) {
      if (!covered[index]) redacted += run[index]
      else if (index === 0 || !covered[index - 1]) redacted += "[REDACTED-PAN]"
    }
    return redacted
  })

/**
 * Paths (dotted, with [i] for arrays) of every value in a decoded JSON document that holds a full card
 * number. Strings are scanned for digit runs; integer numbers are scanned as their decimal digits.
 */
export const findCardNumberPaths = (value: unknown, path = ""): ReadonlyArray<string> => {
  const found: Array<string> = []
  collectCardNumberPaths(value, path, found)
  return found
}

/** Walks a document without building paths until a card number is found: most values hold none. */
const collectCardNumberPaths = (value: unknown, path: string, found: Array<string>): void => {
  if (typeof value === "string") {
    if (containsCardNumber(value)) found.push(path || "(root)")
  } else if (typeof value === "number") {
    if (Number.isInteger(value) && Math.abs(value) >= 1e12 && containsCardNumber(String(value)))
      found.push(path)
  } else if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++)
      if (mayHoldCardNumber(value[index])) collectCardNumberPaths(value[index], `${path}[${index}]`, found)
  } else if (value !== null && typeof value === "object") {
    for (const key in value) {
      if (!Object.hasOwn(value, key)) continue
      // A field name can hold one too; the path names where, never the number itself.
      if (key.length >= 13 && containsCardNumber(key)) {
        found.push(path ? `${path}.(field name)` : "(field name)")
        continue
      }
      const item: unknown = (value as Record<string, unknown>)[key]
      if (mayHoldCardNumber(item)) collectCardNumberPaths(item, path ? `${path}.${key}` : key, found)
    }
  }
}

const mayHoldCardNumber = (value: unknown): boolean =>
  typeof value === "string"
    ? value.length >= 13
    : typeof value === "number"
      ? Math.abs(value) >= 1e12
      : value !== null && typeof value === "object"

/** Replaces every full card number in a JSON document (or raw text) so it can be stored in quarantine. */
export const redactCardNumbers = (value: unknown): unknown => {
  if (typeof value === "string") return redactText(value)
  if (typeof value === "number")
    return Number.isInteger(value) && containsCardNumber(String(value)) ? "[REDACTED-PAN]" : value
  if (Array.isArray(value)) return value.map(redactCardNumbers)
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [redactText(key), redactCardNumbers(item)])
    )
  }
  return value
}

/** Redacts card numbers in raw text that may not even be valid JSON. */
export const redactCardNumbersInText = redactText
