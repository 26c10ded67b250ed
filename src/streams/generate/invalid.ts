import type { Random } from "./random.js"

/** Every kind of deliberately invalid line the generator injects. */
export const invalidKinds = [
  "not_json",
  "json_array",
  "json_scalar",
  "missing_field",
  "wrong_type",
  "bad_enum",
  "negative_amount",
  "fractional_amount",
  "too_large_amount",
  "lowercase_currency",
  "unknown_currency",
  "time_without_offset",
  "time_feb_30",
  "empty_id",
  "long_id",
  "card_bin_letters",
  "card_number_in_field",
  "score_above_one",
  "too_many_reasons"
] as const
export type InvalidKind = (typeof invalidKinds)[number]

/** Kinds that apply to transaction events, in the order they are cycled through. */
export const transactionInvalidKinds: ReadonlyArray<InvalidKind> = invalidKinds.filter(
  (kind) => kind !== "score_above_one" && kind !== "too_many_reasons"
)

/** Kinds that apply to fraud signals; the signal-only kinds come first so small runs still cover them. */
export const signalInvalidKinds: ReadonlyArray<InvalidKind> = [
  "score_above_one",
  "too_many_reasons",
  "not_json",
  "json_array",
  "json_scalar",
  "missing_field",
  "wrong_type",
  "bad_enum",
  "time_without_offset",
  "time_feb_30",
  "empty_id",
  "long_id",
  "card_number_in_field"
]

/** Test card numbers (Luhn-valid); they appear only in deliberately invalid lines. */
const testCardNumbers = [
  "4111111111111111",
  "5555555555554444",
  "4012888888881881",
  "378282246310005",
  "6011111111111117",
  "4111 1111 1111 1111"
]

type JsonRecord = Record<string, unknown>

const transactionRequired = [
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
]
const signalRequired = ["signal_id", "transaction_id", "event_time", "source", "score", "reasons"]

const withoutOffset = (time: unknown): string =>
  typeof time === "string" ? time.replace(/(Z|[+-]\d{2}:\d{2})$/, "") : "2026-11-03T10:15:30.123"

/**
 * Turns a valid record into one invalid line of the given kind. `isSignal` selects the fraud-signal
 * variants (e.g. `source` instead of `status` for a bad enum).
 */
export const invalidLine = (
  kind: InvalidKind,
  valid: JsonRecord,
  isSignal: boolean,
  random: Random
): string => {
  const record: JsonRecord = { ...valid }
  const idField = isSignal ? "signal_id" : "event_id"
  switch (kind) {
    case "not_json": {
      const text = JSON.stringify(record)
      return text.slice(0, random.int(1, text.length - 1))
    }
    case "json_array":
      return JSON.stringify(random.chance(0.5) ? [record] : Object.values(record).slice(0, 4))
    case "json_scalar":
      return JSON.stringify(random.pick<unknown>([42, "transaction", null, true, 3.5]))
    case "missing_field":
      delete record[random.pick(isSignal ? signalRequired : transactionRequired)]
      break
    case "wrong_type":
      if (isSignal) {
        const field = random.pick(["score", "reasons", "confirmed_fraud"])
        record[field] =
          field === "score" ? String(record.score) : field === "reasons" ? "velocity_burst" : "yes"
      } else {
        const field = random.pick(["amount_minor", "sequence", "payment_method"])
        record[field] = field === "payment_method" ? 1 : String(record[field])
      }
      break
    case "bad_enum":
      if (isSignal) record.source = random.pick(["ml_model", "Rules", "bureau"])
      else if (random.chance(0.5)) record.status = random.pick(["completed", "pending", "AUTHORIZED"])
      else record.payment_method = random.pick(["crypto", "cash", "Card"])
      break
    case "negative_amount":
      record.amount_minor = -random.int(1, 50_000)
      break
    case "fractional_amount":
      record.amount_minor = random.int(0, 50_000) + random.pick([0.5, 0.25, 0.1])
      break
    case "too_large_amount":
      record.amount_minor = random.pick([1e20, 1e21, 1.5e300])
      break
    case "lowercase_currency":
      record.currency = String(record.currency).toLowerCase()
      break
    case "unknown_currency":
      record.currency = random.pick(["ZZZ", "ABC", "BTC", "XYZ"])
      break
    case "time_without_offset":
      record.event_time = withoutOffset(record.event_time)
      break
    case "time_feb_30":
      record.event_time = random.pick([
        "2026-02-30T10:15:30Z",
        "2027-02-30T23:59:59.999+09:00",
        "2026-02-29T08:00:00-08:00"
      ])
      break
    case "empty_id":
      record[idField] = ""
      break
    case "long_id": {
      // A signal's transaction_id has no length rule (contract §2).
      const onIdField = random.chance(0.5) || isSignal
      record[onIdField ? idField : "transaction_id"] = random.letters(129)
      break
    }
    case "card_bin_letters":
      record.card_bin = random.pick(["41a111", "4242ab", "5x5555", "abcdef12"])
      break
    case "card_number_in_field": {
      const cardNumber = random.pick(testCardNumbers)
      const field = isSignal
        ? random.pick(["signal_id", "reasons", "note"])
        : random.pick(["device_id", "processor_reference", "card_bin", "customer_note"])
      record[field] = field === "reasons" ? [`card ${cardNumber} seen before`] : cardNumber
      break
    }
    case "score_above_one":
      record.score = random.pick([1.01, 1.5, 2, 37])
      break
    case "too_many_reasons":
      record.reasons = Array.from({ length: random.int(33, 40) }, () => `rule_${random.letters(6)}`)
      break
  }
  return JSON.stringify(record)
}
