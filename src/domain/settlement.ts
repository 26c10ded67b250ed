import { Schema } from "effect"
import { containsCardNumber, redactCardNumbersInText } from "./card.js"
import { currencyExponent, isKnownCurrency } from "./currency.js"
import type { RecordProblem } from "./validation.js"

/** What a settlement line moves: a captured payment paid out, a refund, a chargeback. */
export const SettlementType = Schema.Literal("settled", "refund", "chargeback")
export type SettlementType = typeof SettlementType.Type

/**
 * One line of a processor settlement report, normalised (docs/CONTRACT-settlements.md). Money is integer
 * minor units of `currency`, always ≥ 0 (the type says the direction); `amount_minor` is gross (a processor
 * that reports net amounts has its fee added back). `processor_reference` may list several payments
 * (a payout line) separated by the mapping's `reference_separator`.
 */
export const SettlementLine = Schema.Struct({
  processor: Schema.String,
  processor_reference: Schema.NonEmptyString,
  amount_minor: Schema.NonNegativeInt,
  currency: Schema.String,
  fee_minor: Schema.NonNegativeInt,
  /** UTC calendar date YYYY-MM-DD. */
  settlement_date: Schema.String,
  type: SettlementType,
  payout_id: Schema.NullOr(Schema.String),
  /** Object key and line number: `raw/settlements/…/file.csv:12`. */
  source: Schema.String
})
export type SettlementLine = typeof SettlementLine.Type

/** Date formats a settlement report may use. */
export const SettlementDateFormat = Schema.Literal("YYYY-MM-DD", "DD/MM/YYYY", "MM/DD/YYYY", "YYYYMMDD")
export type SettlementDateFormat = typeof SettlementDateFormat.Type

/**
 * How one processor's CSV report maps onto {@link SettlementLine}: header names per field, the date
 * format, the processor's words for the settlement types, and whether amounts are net of the fee.
 */
export const ProcessorMapping = Schema.Struct({
  processor: Schema.NonEmptyString,
  delimiter: Schema.optionalWith(Schema.String.pipe(Schema.length(1)), { default: () => "," }),
  columns: Schema.Struct({
    processor_reference: Schema.String,
    amount: Schema.String,
    currency: Schema.String,
    fee: Schema.String,
    settlement_date: Schema.String,
    type: Schema.String,
    payout_id: Schema.String
  }),
  date_format: SettlementDateFormat,
  type_values: Schema.Record({ key: Schema.String, value: SettlementType }),
  amount_is_net: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  reference_separator: Schema.optionalWith(Schema.String.pipe(Schema.length(1)), { default: () => "|" })
})
export type ProcessorMapping = typeof ProcessorMapping.Type

/** The mappings of the processors the generator knows; `--mappings FILE` replaces them. */
export const defaultProcessorMappings: ReadonlyArray<ProcessorMapping> = Schema.decodeUnknownSync(
  Schema.Array(ProcessorMapping)
)([
  {
    processor: "stripe",
    columns: {
      processor_reference: "payment_intent",
      amount: "gross",
      currency: "currency",
      fee: "fee",
      settlement_date: "available_on",
      type: "reporting_category",
      payout_id: "automatic_payout_id"
    },
    date_format: "YYYY-MM-DD",
    type_values: { charge: "settled", refund: "refund", dispute: "chargeback" }
  },
  {
    processor: "adyen",
    columns: {
      processor_reference: "Psp Reference",
      amount: "Gross Credit (GC)",
      currency: "Gross Currency",
      fee: "Commission (NC)",
      settlement_date: "Booking Date",
      type: "Record Type",
      payout_id: "Batch Number"
    },
    date_format: "DD/MM/YYYY",
    type_values: { Settled: "settled", Refunded: "refund", Chargeback: "chargeback" }
  },
  {
    processor: "checkout",
    columns: {
      processor_reference: "Payment ID",
      amount: "Net Amount",
      currency: "Currency",
      fee: "Processing Fee",
      settlement_date: "Settlement Date",
      type: "Action Type",
      payout_id: "Payout ID"
    },
    date_format: "MM/DD/YYYY",
    type_values: { Capture: "settled", Refund: "refund", Chargeback: "chargeback" },
    amount_is_net: true
  },
  {
    processor: "worldpay",
    delimiter: ";",
    columns: {
      processor_reference: "ORDER_CODE",
      amount: "AMOUNT",
      currency: "CCY",
      fee: "FEE",
      settlement_date: "SETTLE_DATE",
      type: "EVENT",
      payout_id: "BATCH_ID"
    },
    date_format: "YYYYMMDD",
    type_values: { SETTLED: "settled", REFUNDED: "refund", CHARGED_BACK: "chargeback" }
  },
  {
    processor: "braintree",
    columns: {
      processor_reference: "transaction_id",
      amount: "amount",
      currency: "currency_iso_code",
      fee: "service_fee",
      settlement_date: "disbursement_date",
      type: "kind",
      payout_id: "disbursement_id"
    },
    date_format: "YYYY-MM-DD",
    type_values: { sale: "settled", credit: "refund", dispute: "chargeback" }
  }
])

/**
 * A decimal amount in major units (`"-1,234.50"` is refused: no thousands separators) converted exactly to
 * integer minor units by string arithmetic with the currency's exponent; never through floating point.
 * More fraction digits than the exponent are refused unless they are zeros. Returns the problem as a string.
 */
export const decimalToMinor = (text: string, exponent: number): number | string => {
  const match = /^([+-]?)(\d+)(?:\.(\d*))?$/.exec(text.trim())
  if (match === null) return `not a decimal amount: "${text}"`
  const [, sign, whole, fraction = ""] = match
  const significant = fraction.replace(/0+$/, "")
  if (significant.length > exponent)
    return `has ${significant.length} decimal places, the currency allows ${exponent}`
  const digits = (whole! + significant.padEnd(exponent, "0")).replace(/^0+(?=\d)/, "")
  const value = Number(digits)
  if (!Number.isSafeInteger(value)) return "out of range"
  return sign === "-" && value !== 0 ? -value : value
}

/** Integer minor units as the decimal major-unit text a processor report holds. */
export const minorToDecimal = (minor: number, exponent: number): string => {
  const negative = minor < 0
  const digits = String(Math.abs(minor)).padStart(exponent + 1, "0")
  const text = exponent === 0 ? digits : digits.slice(0, -exponent) + "." + digits.slice(-exponent)
  return (negative ? "-" : "") + text
}

const dateParts: Record<SettlementDateFormat, RegExp> = {
  "YYYY-MM-DD": /^(?<y>\d{4})-(?<m>\d{2})-(?<d>\d{2})$/,
  "DD/MM/YYYY": /^(?<d>\d{2})\/(?<m>\d{2})\/(?<y>\d{4})$/,
  "MM/DD/YYYY": /^(?<m>\d{2})\/(?<d>\d{2})\/(?<y>\d{4})$/,
  YYYYMMDD: /^(?<y>\d{4})(?<m>\d{2})(?<d>\d{2})$/
}

const parsedDates = new Map<string, string | { problem: string }>()

/** A report date in `format` as YYYY-MM-DD, or the problem. Dates repeat in a report: each is parsed once. */
export const parseSettlementDate = (
  text: string,
  format: SettlementDateFormat
): string | { problem: string } => {
  const cacheKey = `${format}\u0000${text}`
  let parsed = parsedDates.get(cacheKey)
  if (parsed === undefined) {
    parsed = parseDateText(text, format)
    if (parsedDates.size >= 65_536) parsedDates.clear()
    parsedDates.set(cacheKey, parsed)
  }
  return parsed
}

const parseDateText = (text: string, format: SettlementDateFormat): string | { problem: string } => {
  const groups = dateParts[format].exec(text.trim())?.groups
  if (groups === undefined) return { problem: `expected a date as ${format}, got "${text}"` }
  const iso = `${groups.y}-${groups.m}-${groups.d}`
  const parsed = new Date(`${iso}T00:00:00Z`)
  if (Number.isNaN(parsed.getTime()) || parsed.toISOString().slice(0, 10) !== iso)
    return { problem: `not a calendar date: "${text}"` }
  return iso
}

/** A YYYY-MM-DD date in `format`. */
export const formatSettlementDate = (iso: string, format: SettlementDateFormat): string => {
  const [y, m, d] = iso.split("-") as [string, string, string]
  switch (format) {
    case "YYYY-MM-DD":
      return iso
    case "DD/MM/YYYY":
      return `${d}/${m}/${y}`
    case "MM/DD/YYYY":
      return `${m}/${d}/${y}`
    default:
      return `${y}${m}${d}`
  }
}

/** Days since 1970-01-01 of a YYYY-MM-DD date. */
export const epochDay = (iso: string): number => Math.floor(Date.parse(`${iso}T00:00:00Z`) / 86_400_000)

const isoByDay = new Map<number, string>()

/** The YYYY-MM-DD date of a day number (formatted once per day). */
export const dayToIso = (day: number): string => {
  let iso = isoByDay.get(day)
  if (iso === undefined) {
    iso = new Date(day * 86_400_000).toISOString().slice(0, 10)
    if (isoByDay.size >= 65_536) isoByDay.clear()
    isoByDay.set(day, iso)
  }
  return iso
}

/** One CSV record: its fields and the 1-based line it starts on. */
export interface CsvRecord {
  readonly line: number
  readonly fields: ReadonlyArray<string>
  readonly text: string
}

/**
 * Splits CSV text into records (RFC 4180: fields in double quotes may hold the delimiter, newlines and `""`
 * for a quote; CRLF or LF line ends). Blank lines are skipped. A quote left open ends the text as one field.
 */
export const parseCsv = (text: string, delimiter = ","): Array<CsvRecord> => {
  const records: Array<CsvRecord> = []
  const separator = delimiter.charCodeAt(0)
  let position = text.charCodeAt(0) === 0xfeff ? 1 : 0
  let line = 1
  while (position < text.length) {
    const startLine = line
    const start = position
    const fields: Array<string> = []
    let ended = false
    while (!ended) {
      if (text.charCodeAt(position) === 34) {
        let value = ""
        let from = position + 1
        for (;;) {
          const quote = text.indexOf('"', from)
          if (quote < 0) {
            value += text.slice(from)
            position = text.length
            break
          }
          value += text.slice(from, quote)
          if (text.charCodeAt(quote + 1) === 34) {
            value += '"'
            from = quote + 2
          } else {
            position = quote + 1
            break
          }
        }
        for (const char of value) if (char === "\n") line++
        while (
          position < text.length &&
          text.charCodeAt(position) !== separator &&
          text.charCodeAt(position) !== 10 &&
          text.charCodeAt(position) !== 13
        ) {
          value += text[position]
          position++
        }
        fields.push(value)
      } else {
        let end = position
        while (
          end < text.length &&
          text.charCodeAt(end) !== separator &&
          text.charCodeAt(end) !== 10 &&
          text.charCodeAt(end) !== 13
        )
          end++
        fields.push(text.slice(position, end))
        position = end
      }
      const next = text.charCodeAt(position)
      if (next === separator) position++
      else {
        if (next === 13) position++
        if (text.charCodeAt(position) === 10) position++
        line++
        ended = true
      }
    }
    const raw = text.slice(start, position).replace(/\r?\n$/, "")
    if (!fields.every((field) => field.trim() === "")) records.push({ line: startLine, fields, text: raw })
  }
  return records
}

/** A CSV field written with quotes when it needs them. */
export const csvField = (value: string, delimiter = ","): string =>
  value.includes(delimiter) || value.includes('"') || value.includes("\n") || value.includes("\r")
    ? `"${value.replaceAll('"', '""')}"`
    : value

/**
 * Whether the text holds a run of at least 13 digits with at most one space or dash between two digits: the
 * shape a card number needs (a cheap test before the Luhn scan of {@link containsCardNumber}).
 */
const hasLongDigitRun = (text: string): boolean => {
  let run = 0
  for (let at = 0; at < text.length; at++) {
    const code = text.charCodeAt(at)
    if (code >= 48 && code <= 57) {
      if (++run >= 13) return true
    } else if (!((code === 32 || code === 45) && run > 0 && isDigitAt(text, at + 1))) run = 0
  }
  return false
}

const isDigitAt = (text: string, at: number): boolean => {
  const code = text.charCodeAt(at)
  return code >= 48 && code <= 57
}

/** A settlement row the parser refused: where, every field problem, the row text (card numbers redacted). */
export interface RejectedSettlementRow {
  readonly source: string
  readonly problems: ReadonlyArray<RecordProblem>
  readonly payload: string
}

/** What one report file held. Rows in = `lines.length + rejected.length`. */
export interface ParsedSettlementFile {
  readonly lines: Array<SettlementLine>
  readonly rejected: Array<RejectedSettlementRow>
}

/**
 * Parses one processor report with its mapping. The first record is the header; every field the mapping
 * names must be in it (else the whole file is one rejected row). Each bad row is rejected with every
 * failing field and its reason; the rest of the file is kept.
 */
export const parseSettlementCsv = (
  text: string,
  mapping: ProcessorMapping,
  objectKey: string
): ParsedSettlementFile => {
  const records = parseCsv(text, mapping.delimiter)
  const lines: Array<SettlementLine> = []
  const rejected: Array<RejectedSettlementRow> = []
  const header = records[0]
  if (header === undefined) return { lines, rejected }
  const fieldNames = Object.keys(mapping.columns) as Array<keyof ProcessorMapping["columns"]>
  const positions: Partial<Record<keyof ProcessorMapping["columns"], number>> = {}
  const missing: Array<RecordProblem> = []
  for (const field of fieldNames) {
    const position = header.fields.findIndex((name) => name.trim() === mapping.columns[field])
    if (position < 0) missing.push({ field, reason: `header "${mapping.columns[field]}" not found` })
    else positions[field] = position
  }
  if (missing.length > 0) {
    // Every data row is quarantined with the header's problems, so rows in = accepted + quarantined.
    for (const record of records.slice(1))
      rejected.push({
        source: `${objectKey}:${record.line}`,
        problems: missing,
        payload: redactCardNumbersInText(record.text)
      })
    return { lines, rejected }
  }
  const at = (record: CsvRecord, field: keyof ProcessorMapping["columns"]) =>
    (record.fields[positions[field]!] ?? "").trim()
  for (let index = 1; index < records.length; index++) {
    const record = records[index]!
    const source = `${objectKey}:${record.line}`
    const problems: Array<RecordProblem> = []
    if (hasLongDigitRun(record.text) && containsCardNumber(record.text))
      problems.push({ field: "(record)", reason: "holds a full card number" })
    if (record.fields.length !== header.fields.length)
      problems.push({
        field: "(record)",
        reason: `has ${record.fields.length} fields, the header ${header.fields.length}`
      })
    const reference = at(record, "processor_reference")
    if (reference === "") problems.push({ field: "processor_reference", reason: "is required" })
    const currency = at(record, "currency").toUpperCase()
    const knownCurrency = isKnownCurrency(currency)
    if (!knownCurrency)
      problems.push({ field: "currency", reason: `not an ISO 4217 currency: "${at(record, "currency")}"` })
    const typeText = at(record, "type")
    const type = Object.hasOwn(mapping.type_values, typeText) ? mapping.type_values[typeText] : undefined
    if (type === undefined) problems.push({ field: "type", reason: `unknown type "${typeText}"` })
    const date = parseSettlementDate(at(record, "settlement_date"), mapping.date_format)
    if (typeof date !== "string") problems.push({ field: "settlement_date", reason: date.problem })
    let amount = 0
    let fee = 0
    if (knownCurrency) {
      const exponent = currencyExponent(currency)
      const parsedAmount = decimalToMinor(at(record, "amount"), exponent)
      if (typeof parsedAmount === "string") problems.push({ field: "amount", reason: parsedAmount })
      else amount = parsedAmount
      const feeText = at(record, "fee")
      const parsedFee = feeText === "" ? 0 : decimalToMinor(feeText, exponent)
      if (typeof parsedFee === "string") problems.push({ field: "fee", reason: parsedFee })
      else fee = Math.abs(parsedFee)
      if (mapping.amount_is_net) {
        // Net = gross − fee, written positive for a settlement and negative for a refund or chargeback; a
        // fee larger than the gross makes a settlement's net negative and a refund's positive.
        amount = (type === "settled" ? amount : -amount) + fee
        if (amount < 0) problems.push({ field: "amount", reason: "net amount plus fee is negative" })
      } else {
        if (type === "settled" && amount < 0)
          problems.push({ field: "amount", reason: "negative on a settled line" })
        amount = Math.abs(amount)
      }
      if (!Number.isSafeInteger(amount)) problems.push({ field: "amount", reason: "out of range" })
    }
    if (problems.length > 0 || type === undefined || typeof date !== "string") {
      // Reasons quote field text: redacted like the payload, so a card number never reaches quarantine.
      rejected.push({
        source,
        problems: problems.map((problem) => ({
          ...problem,
          reason: redactCardNumbersInText(problem.reason)
        })),
        payload: redactCardNumbersInText(record.text)
      })
      continue
    }
    const payout = at(record, "payout_id")
    lines.push({
      processor: mapping.processor,
      processor_reference: reference,
      amount_minor: amount,
      currency,
      fee_minor: fee,
      settlement_date: date,
      type,
      payout_id: payout === "" ? null : payout,
      source
    })
  }
  return { lines, rejected }
}

/** Writes lines as a report in the processor's format (the generator's side of the mapping). */
export const formatSettlementCsv = (
  lines: ReadonlyArray<Omit<SettlementLine, "source" | "processor">>,
  mapping: ProcessorMapping
): string => {
  const d = mapping.delimiter
  const typeWords = new Map<SettlementType, string>()
  for (const [word, type] of Object.entries(mapping.type_values))
    if (!typeWords.has(type)) typeWords.set(type, word)
  const columns = mapping.columns
  const header = [
    columns.processor_reference,
    columns.amount,
    columns.currency,
    columns.fee,
    columns.settlement_date,
    columns.type,
    columns.payout_id
  ]
  const rows = [header.map((name) => csvField(name, d)).join(d)]
  for (const line of lines) {
    const exponent = currencyExponent(line.currency)
    const reported = mapping.amount_is_net ? line.amount_minor - line.fee_minor : line.amount_minor
    const signed = line.type === "settled" ? reported : -reported
    rows.push(
      [
        line.processor_reference,
        minorToDecimal(signed, exponent),
        line.currency,
        minorToDecimal(line.fee_minor, exponent),
        formatSettlementDate(line.settlement_date, mapping.date_format),
        typeWords.get(line.type) ?? line.type,
        line.payout_id ?? ""
      ]
        .map((value) => csvField(value, d))
        .join(d)
    )
  }
  return rows.join("\n") + "\n"
}

/** Key prefix of processor reports in the raw bucket: `raw/settlements/processor=<p>/dt=<date>/…`. */
export const settlementsPrefix = "raw/settlements/"

/** Where a processor's report for a settlement date goes. */
export const settlementKey = (processor: string, date: string, name: string): string =>
  `${settlementsPrefix}processor=${processor}/dt=${date}/${name}`

/** The processor and dt of a report key, when it has that shape. */
export const parseSettlementKey = (key: string): { processor: string; dt: string } | undefined => {
  const match = /^raw\/settlements\/processor=([^/]+)\/dt=(\d{4}-\d{2}-\d{2})\/[^/]+\.csv$/.exec(key)
  return match === null ? undefined : { processor: match[1]!, dt: match[2]! }
}
