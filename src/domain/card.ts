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

/** True when the text holds a full card number: a run of 13–19 digits that passes the Luhn check. */
export const containsCardNumber = (text: string): boolean => {
  for (const match of text.matchAll(digitRun)) {
    const digits = match[0].replace(/[ -]/g, "")
    if (digits.length >= 13 && digits.length <= 19 && passesLuhn(digits)) return true
  }
  return false
}

const redactText = (text: string): string =>
  text.replace(digitRun, (run) => {
    const digits = run.replace(/[ -]/g, "")
    return digits.length >= 13 && digits.length <= 19 && passesLuhn(digits) ? "[REDACTED-PAN]" : run
  })

/**
 * Paths (dotted, with [i] for arrays) of every value in a decoded JSON document that holds a full card
 * number. Strings are scanned for digit runs; integer numbers are scanned as their decimal digits.
 */
export const findCardNumberPaths = (value: unknown, path = ""): ReadonlyArray<string> => {
  if (typeof value === "string") return containsCardNumber(value) ? [path || "(root)"] : []
  if (typeof value === "number")
    return Number.isInteger(value) && containsCardNumber(String(value)) ? [path] : []
  if (Array.isArray(value))
    return value.flatMap((item, index) => findCardNumberPaths(item, `${path}[${index}]`))
  if (value !== null && typeof value === "object") {
    return Object.entries(value).flatMap(([key, item]) =>
      findCardNumberPaths(item, path ? `${path}.${key}` : key)
    )
  }
  return []
}

/** Replaces every full card number in a JSON document (or raw text) so it can be stored in quarantine. */
export const redactCardNumbers = (value: unknown): unknown => {
  if (typeof value === "string") return redactText(value)
  if (typeof value === "number")
    return Number.isInteger(value) && containsCardNumber(String(value)) ? "[REDACTED-PAN]" : value
  if (Array.isArray(value)) return value.map(redactCardNumbers)
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactCardNumbers(item)]))
  }
  return value
}

/** Redacts card numbers in raw text that may not even be valid JSON. */
export const redactCardNumbersInText = redactText
