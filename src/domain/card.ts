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

/** 13–19 digits that pass Luhn: a full card number once its digits are joined. */
const isCardDigits = (digits: string): boolean =>
  digits.length >= 13 && digits.length <= 19 && passesLuhn(digits)

/** The digit groups of a run (digits joined by single spaces or dashes), each with its offset in the run. */
const digitGroupsOf = (run: string) =>
  [...run.matchAll(/\d+/g)].map((group) => ({ start: group.index, digits: group[0] }))

/** A letter or digit: a digit group next to one is part of a longer token (`43e2`, `1234ab`). */
const isAlphanumeric = (char: string | undefined): boolean => char !== undefined && /[\p{L}\p{N}]/u.test(char)

/**
 * Character ranges [start, end) of the card numbers inside one digit run (digit groups joined by single
 * spaces or dashes). A card number is either one group of 13–19 digits, or the way people write one: groups
 * of 4, then 4–6, ending in a group of 1–6 (4-4-4-4, 4-6-5, 4-4-4-4-3, …), 13–19 digits in all, whose ends
 * are not glued to letters or digits (`attachedBefore`/`attachedAfter`: the run's neighbours are). Either way
 * the digits must pass Luhn. So a PAN followed by other digits ("4111 1111 1111 1111 12 25") is found, while
 * an unbroken run of 20 digits is not a card number, and neither are the digit groups of a UUID
 * (`…-43e2-8299-446944639158`).
 */
const cardNumberRanges = (
  run: string,
  attachedBefore: boolean,
  attachedAfter: boolean
): Array<readonly [number, number]> => {
  const groups = digitGroupsOf(run)
  const last = groups.length - 1
  const ranges: Array<readonly [number, number]> = []
  for (let first = 0; first <= last; first++) {
    const group = groups[first]!
    if (isCardDigits(group.digits)) {
      ranges.push([group.start, group.start + group.digits.length])
    }
    if (group.digits.length !== 4 || (first === 0 && attachedBefore)) continue
    let digits = group.digits
    for (let end = first + 1; end <= last && digits.length < 19; end++) {
      const next = groups[end]!
      if (next.digits.length > 6) break
      digits += next.digits
      const canEnd = !(end === last && attachedAfter)
      if (canEnd && isCardDigits(digits)) {
        ranges.push([group.start, next.start + next.digits.length])
      }
      if (next.digits.length < 4) break
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
    if (
      digits >= 13 &&
      cardNumberRanges(text.slice(start, index), isAlphanumeric(text[start - 1]), isAlphanumeric(text[index]))
        .length > 0
    )
      return true
  }
  return false
}

/** A JSON escape of a digit, space or dash (`\u0034`), not itself behind an escaped backslash. */
const escapedDigitOrSeparator = /(?<!\\)((?:\\\\)*)\\u00(3[0-9]|20|2[dD])/g

/**
 * Text whose JSON escapes of digits, spaces and dashes are written out, so that a card number spelled with
 * them (`"\u0034111 1111…"`) is found in text that may not even parse as JSON.
 */
const withDigitEscapesDecoded = (text: string): string =>
  text.includes("\\u00")
    ? text.replace(
        escapedDigitOrSeparator,
        (_escape, backslashes: string, code: string) =>
          `${backslashes}${String.fromCharCode(Number.parseInt(code, 16))}`
      )
    : text

/**
 * Character ranges of every 13–19-digit Luhn-valid sequence of whole consecutive groups in a digit run, in
 * any layout and whatever stands next to it: what redaction removes. Wider than {@link cardNumberRanges} on
 * purpose: text may be raw JSON, where an escape such as `\n` glues a letter to the number, and removing a few
 * digits too many from a quarantined payload costs nothing.
 */
const redactedRanges = (run: string): Array<readonly [number, number]> => {
  const groups = digitGroupsOf(run)
  const ranges: Array<readonly [number, number]> = []
  for (let first = 0; first < groups.length; first++) {
    let digits = ""
    for (let last = first; last < groups.length && digits.length <= 19; last++) {
      const group = groups[last]!
      digits += group.digits
      if (isCardDigits(digits)) {
        ranges.push([groups[first]!.start, group.start + group.digits.length])
      }
    }
  }
  return ranges
}

/** The text with every card number replaced; the text itself, escapes and all, when it holds none. */
const redactText = (text: string): string => {
  let redactedAny = false
  const redacted = withDigitEscapesDecoded(text).replace(digitRun, (run: string) => {
    if (run.length < 13) return run
    const ranges = redactedRanges(run)
    if (ranges.length === 0) return run
    redactedAny = true
    const covered = new Array<boolean>(run.length).fill(false)
    for (const [start, end] of ranges) covered.fill(true, start, end)
    let result = ""
    for (let index = 0; index < run.length; index++) {
      if (!covered[index]) result += run[index]
      else if (index === 0 || !covered[index - 1]) result += "[REDACTED-PAN]"
    }
    return result
  })
  return redactedAny ? redacted : text
}

const noFields: ReadonlySet<string> = new Set()

/**
 * Paths (dotted, with [i] for arrays) of every value in a decoded JSON document that holds a full card
 * number. Strings are scanned for digit runs; integer numbers are scanned as their decimal digits, except
 * the numbers of the top-level fields in `numberFields` (a record's own amounts and counters, which the
 * contract lets hold any integer).
 */
export const findCardNumberPaths = (
  value: unknown,
  path = "",
  numberFields: ReadonlySet<string> = noFields
): ReadonlyArray<string> => {
  const found: Array<string> = []
  collectCardNumberPaths(value, path, found, numberFields)
  return found
}

/**
 * Walks a document without building paths until a card number is found: most values hold none. The numbers
 * of this object's fields in `numberFields` are not scanned (nested objects get none). Recursive, as that
 * allocates nothing; past {@link recursionLimit} levels a subtree is walked with an explicit stack instead,
 * so no nesting overflows the call stack.
 */
const collectCardNumberPaths = (
  value: unknown,
  path: string,
  found: Array<string>,
  numberFields: ReadonlySet<string> = noFields,
  depth = 0
): void => {
  if (scannedScalar(value, path, found)) return
  if (depth >= recursionLimit) {
    collectCardNumberPathsIteratively(value, path, found)
  } else if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++)
      if (mayHoldCardNumber(value[index]))
        collectCardNumberPaths(value[index], `${path}[${index}]`, found, noFields, depth + 1)
  } else if (value !== null && typeof value === "object") {
    for (const key in value) {
      if (!Object.hasOwn(value, key)) continue
      if (fieldNameHoldsCardNumber(key)) {
        found.push(fieldNamePath(path))
        continue
      }
      const item: unknown = (value as Record<string, unknown>)[key]
      if (mayHoldCardNumber(item) && !(typeof item === "number" && numberFields.has(key)))
        collectCardNumberPaths(item, path ? `${path}.${key}` : key, found, noFields, depth + 1)
    }
  }
}

const recursionLimit = 200

/**
 * Scans a string (its text) or a number (an integer's digits), recording `path` when it holds a card number;
 * false for anything else, which the walkers descend into.
 */
const scannedScalar = (value: unknown, path: string, found: Array<string>): boolean => {
  if (typeof value === "string") {
    if (containsCardNumber(value)) found.push(path || "(root)")
    return true
  }
  if (typeof value === "number") {
    if (Number.isInteger(value) && Math.abs(value) >= 1e12 && containsCardNumber(String(value)))
      found.push(path)
    return true
  }
  return false
}

/** A field name can hold one too; the path then names where, never the number itself. */
const fieldNameHoldsCardNumber = (key: string): boolean => key.length >= 13 && containsCardNumber(key)

const fieldNamePath = (path: string): string => (path ? `${path}.(field name)` : "(field name)")

/** {@link collectCardNumberPaths} with an explicit stack, in the same order, for deeply nested documents. */
const collectCardNumberPathsIteratively = (root: unknown, rootPath: string, found: Array<string>): void => {
  // A string is a path already known to hold one, kept in place so paths come out in document order.
  type Pending = { readonly value: unknown; readonly path: string } | string
  const pending: Array<Pending> = [{ value: root, path: rootPath }]
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (typeof next === "string") {
      found.push(next)
      continue
    }
    const { value, path } = next
    if (scannedScalar(value, path, found)) continue
    if (Array.isArray(value)) {
      for (let index = value.length - 1; index >= 0; index--)
        if (mayHoldCardNumber(value[index])) pending.push({ value: value[index], path: `${path}[${index}]` })
    } else if (value !== null && typeof value === "object") {
      const children: Array<Pending> = []
      for (const key in value) {
        if (!Object.hasOwn(value, key)) continue
        if (fieldNameHoldsCardNumber(key)) {
          children.push(fieldNamePath(path))
          continue
        }
        const item: unknown = (value as Record<string, unknown>)[key]
        if (mayHoldCardNumber(item)) children.push({ value: item, path: path ? `${path}.${key}` : key })
      }
      for (let index = children.length - 1; index >= 0; index--) pending.push(children[index] as Pending)
    }
  }
}

const mayHoldCardNumber = (value: unknown): boolean =>
  typeof value === "string"
    ? value.length >= 13
    : typeof value === "number"
      ? Math.abs(value) >= 1e12
      : value !== null && typeof value === "object"

/** How deep {@link redactCardNumbers} copies a document; anything deeper becomes {@link tooDeepMarker}. */
export const maxRedactedNesting = 1000

/** What stands in a redacted document for a part nested deeper than {@link maxRedactedNesting}. */
export const tooDeepMarker = "[NESTED-TOO-DEEP]"

/**
 * Replaces every full card number in a JSON document (or raw text) so it can be stored in quarantine. Parts
 * nested deeper than {@link maxRedactedNesting} levels are replaced whole by {@link tooDeepMarker}.
 */
export const redactCardNumbers = (value: unknown, depth = 1): unknown => {
  if (typeof value === "string") return redactText(value)
  if (typeof value === "number")
    return Number.isInteger(value) && containsCardNumber(String(value)) ? "[REDACTED-PAN]" : value
  if (value === null || typeof value !== "object") return value
  if (depth > maxRedactedNesting) return tooDeepMarker
  if (Array.isArray(value)) return value.map((item: unknown) => redactCardNumbers(item, depth + 1))
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [redactText(key), redactCardNumbers(item, depth + 1)])
  )
}

/** Redacts card numbers in raw text that may not even be valid JSON. */
export const redactCardNumbersInText = redactText
