import { Schema } from "effect"
import {
  booleanValue,
  boundedId,
  countryCode,
  currencyCode,
  Defer,
  digits,
  FastDecodeId,
  nonNegativeInteger,
  oneOf,
  optionalField,
  rfc3339Micros,
  unicodeString
} from "./fastDecode.js"
import {
  AmountMinor,
  CountryCode,
  CurrencyCode,
  Digits,
  Enum,
  NonNegativeInteger,
  optional,
  Rfc3339Micros,
  UnicodeString
} from "./fields.js"
import { EventId, MerchantId, SignalId, SignalTransactionId, TransactionId, UserId } from "./ids.js"

/** Lifecycle states of a payment transaction. */
export const transactionStatuses = [
  "authorized",
  "captured",
  "settled",
  "refunded",
  "partially_refunded",
  "voided",
  "declined",
  "chargeback"
] as const
export type TransactionStatus = (typeof transactionStatuses)[number]

export const paymentMethods = ["card", "bank_transfer", "wallet"] as const
export type PaymentMethod = (typeof paymentMethods)[number]

export const fraudSignalSources = ["rules", "model", "partner", "chargeback", "manual_review"] as const
export type FraudSignalSource = (typeof fraudSignalSources)[number]

const transactionEventFields = {
  event_id: EventId,
  transaction_id: TransactionId,
  sequence: NonNegativeInteger,
  event_time: Rfc3339Micros,
  status: Enum(...transactionStatuses),
  amount_minor: AmountMinor,
  currency: CurrencyCode,
  user_id: UserId,
  merchant_id: MerchantId,
  payment_method: Enum(...paymentMethods),
  card_bin: optional(Digits(6, 8)),
  card_last4: optional(Digits(4, 4)),
  processor: UnicodeString,
  processor_reference: UnicodeString,
  country: optional(CountryCode),
  device_id: optional(UnicodeString),
  ip_address: optional(UnicodeString)
}
type TransactionEventType = Schema.Struct.Type<typeof transactionEventFields>

const transactionStatus = oneOf(transactionStatuses)
const paymentMethod = oneOf(paymentMethods)
const cardBin = digits(6, 8)
const cardLast4 = digits(4, 4)

/** The valid case of {@link TransactionEvent} without the schema machinery (see FastDecodeId). */
const fastTransactionEvent = (input: Readonly<Record<string, unknown>>): TransactionEventType | undefined => {
  const event_id = boundedId(input["event_id"])
  const transaction_id = boundedId(input["transaction_id"])
  const sequence = nonNegativeInteger(input["sequence"])
  const event_time = rfc3339Micros(input["event_time"])
  const status = transactionStatus(input["status"])
  const amount_minor = nonNegativeInteger(input["amount_minor"])
  const currency = currencyCode(input["currency"])
  const user_id = boundedId(input["user_id"])
  const merchant_id = boundedId(input["merchant_id"])
  const payment_method = paymentMethod(input["payment_method"])
  const card_bin = optionalField(input, "card_bin", cardBin)
  const card_last4 = optionalField(input, "card_last4", cardLast4)
  const processor = unicodeString(input["processor"])
  const processor_reference = unicodeString(input["processor_reference"])
  const country = optionalField(input, "country", countryCode)
  const device_id = optionalField(input, "device_id", unicodeString)
  const ip_address = optionalField(input, "ip_address", unicodeString)
  if (
    event_id === Defer ||
    transaction_id === Defer ||
    sequence === Defer ||
    event_time === Defer ||
    status === Defer ||
    amount_minor === Defer ||
    currency === Defer ||
    user_id === Defer ||
    merchant_id === Defer ||
    payment_method === Defer ||
    card_bin === Defer ||
    card_last4 === Defer ||
    processor === Defer ||
    processor_reference === Defer ||
    country === Defer ||
    device_id === Defer ||
    ip_address === Defer
  )
    return undefined
  const event: Record<string, unknown> = {
    event_id,
    transaction_id,
    sequence,
    event_time,
    status,
    amount_minor,
    currency,
    user_id,
    merchant_id,
    payment_method
  }
  if (card_bin !== undefined) event["card_bin"] = card_bin
  if (card_last4 !== undefined) event["card_last4"] = card_last4
  event["processor"] = processor
  event["processor_reference"] = processor_reference
  if (country !== undefined) event["country"] = country
  if (device_id !== undefined) event["device_id"] = device_id
  if (ip_address !== undefined) event["ip_address"] = ip_address
  // Every field was checked above exactly as the schema checks it; the brands are the schema's to give.
  return event as TransactionEventType
}

/** Contract §1: one state change of a transaction. `event_time` is UTC epoch microseconds inside. */
export const TransactionEvent = Schema.Struct(transactionEventFields).annotations({
  [FastDecodeId]: fastTransactionEvent
})
export type TransactionEvent = typeof TransactionEvent.Type

/** A fraud score: finite, from 0 to 1. */
const isScore = (score: number): boolean => Number.isFinite(score) && score >= 0 && score <= 1
/** The most reasons one fraud signal may carry. */
const maxReasons = 32

const fraudSignalFields = {
  signal_id: SignalId,
  transaction_id: SignalTransactionId,
  event_time: Rfc3339Micros,
  source: Enum(...fraudSignalSources),
  score: Schema.Number.pipe(Schema.filter((score) => (isScore(score) ? true : "must be from 0 to 1"))),
  reasons: Schema.Array(UnicodeString).pipe(
    Schema.filter((reasons) =>
      reasons.length <= maxReasons ? true : `must hold at most ${maxReasons} reasons`
    )
  ),
  confirmed_fraud: optional(Schema.Boolean)
}
type FraudSignalType = Schema.Struct.Type<typeof fraudSignalFields>

const fraudSignalSource = oneOf(fraudSignalSources)

/** The valid case of {@link FraudSignal} without the schema machinery (see FastDecodeId). */
const fastFraudSignal = (input: Readonly<Record<string, unknown>>): FraudSignalType | undefined => {
  const signal_id = boundedId(input["signal_id"])
  const transaction_id = unicodeString(input["transaction_id"])
  const event_time = rfc3339Micros(input["event_time"])
  const source = fraudSignalSource(input["source"])
  const score = input["score"]
  const reasons = input["reasons"]
  const confirmed_fraud = optionalField(input, "confirmed_fraud", booleanValue)
  if (
    signal_id === Defer ||
    transaction_id === Defer ||
    event_time === Defer ||
    source === Defer ||
    typeof score !== "number" ||
    !isScore(score) ||
    !Array.isArray(reasons) ||
    reasons.length > maxReasons ||
    !reasons.every((reason) => unicodeString(reason) !== Defer) ||
    confirmed_fraud === Defer
  )
    return undefined
  const signal: Record<string, unknown> = {
    signal_id,
    transaction_id,
    event_time,
    source,
    score,
    reasons: [...reasons]
  }
  if (confirmed_fraud !== undefined) signal["confirmed_fraud"] = confirmed_fraud
  // Every field was checked above exactly as the schema checks it; the brands are the schema's to give.
  return signal as FraudSignalType
}

/** Contract §2: a fraud signal about a transaction, which may arrive before or after it. */
export const FraudSignal = Schema.Struct(fraudSignalFields).annotations({ [FastDecodeId]: fastFraudSignal })
export type FraudSignal = typeof FraudSignal.Type

export const kycLevels = ["none", "basic", "full"] as const
export const riskLevels = ["low", "medium", "high"] as const

const userFields = {
  user_id: UserId,
  created_at: Rfc3339Micros,
  country: CountryCode,
  kyc_level: Enum(...kycLevels),
  risk_tier: Enum(...riskLevels)
}
type UserType = Schema.Struct.Type<typeof userFields>

const kycLevel = oneOf(kycLevels)
const riskLevel = oneOf(riskLevels)

/** The valid case of {@link User} without the schema machinery (see FastDecodeId). */
const fastUser = (input: Readonly<Record<string, unknown>>): UserType | undefined => {
  const user_id = boundedId(input["user_id"])
  const created_at = rfc3339Micros(input["created_at"])
  const country = countryCode(input["country"])
  const kyc_level = kycLevel(input["kyc_level"])
  const risk_tier = riskLevel(input["risk_tier"])
  if (
    user_id === Defer ||
    created_at === Defer ||
    country === Defer ||
    kyc_level === Defer ||
    risk_tier === Defer
  )
    return undefined
  // Every field was checked above exactly as the schema checks it; the brand is the schema's to give.
  return { user_id, created_at, country, kyc_level, risk_tier } as UserType
}

/** Contract §3: a user in a dimension snapshot. */
export const User = Schema.Struct(userFields).annotations({ [FastDecodeId]: fastUser })
export type User = typeof User.Type

const merchantFields = {
  merchant_id: MerchantId,
  name: UnicodeString,
  mcc: Digits(4, 4),
  country: CountryCode,
  risk_level: Enum(...riskLevels),
  settlement_currency: CurrencyCode
}
type MerchantType = Schema.Struct.Type<typeof merchantFields>

const merchantCategoryCode = digits(4, 4)

/** The valid case of {@link Merchant} without the schema machinery (see FastDecodeId). */
const fastMerchant = (input: Readonly<Record<string, unknown>>): MerchantType | undefined => {
  const merchant_id = boundedId(input["merchant_id"])
  const name = unicodeString(input["name"])
  const mcc = merchantCategoryCode(input["mcc"])
  const country = countryCode(input["country"])
  const risk_level = riskLevel(input["risk_level"])
  const settlement_currency = currencyCode(input["settlement_currency"])
  if (
    merchant_id === Defer ||
    name === Defer ||
    mcc === Defer ||
    country === Defer ||
    risk_level === Defer ||
    settlement_currency === Defer
  )
    return undefined
  // Every field was checked above exactly as the schema checks it; the brand is the schema's to give.
  return { merchant_id, name, mcc, country, risk_level, settlement_currency } as MerchantType
}

/** Contract §3: a merchant in a dimension snapshot. */
export const Merchant = Schema.Struct(merchantFields).annotations({ [FastDecodeId]: fastMerchant })
export type Merchant = typeof Merchant.Type
