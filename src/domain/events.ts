import { Schema } from "effect"
import {
  AmountMinor,
  CountryCode,
  CurrencyCode,
  Digits,
  Enum,
  NonNegativeInteger,
  optional,
  Rfc3339Micros
} from "./fields.js"
import { EventId, MerchantId, SignalId, TransactionId, UserId } from "./ids.js"

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

/** Contract §1: one state change of a transaction. `event_time` is UTC epoch microseconds inside. */
export const TransactionEvent = Schema.Struct({
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
  processor: Schema.String,
  processor_reference: Schema.String,
  country: optional(CountryCode),
  device_id: optional(Schema.String),
  ip_address: optional(Schema.String)
})
export type TransactionEvent = typeof TransactionEvent.Type

/** Contract §2: a fraud signal about a transaction, which may arrive before or after it. */
export const FraudSignal = Schema.Struct({
  signal_id: SignalId,
  transaction_id: TransactionId,
  event_time: Rfc3339Micros,
  source: Enum(...fraudSignalSources),
  score: Schema.Number.pipe(
    Schema.filter((score) =>
      Number.isFinite(score) && score >= 0 && score <= 1 ? true : "must be from 0 to 1"
    )
  ),
  reasons: Schema.Array(Schema.String).pipe(
    Schema.filter((reasons) => (reasons.length <= 32 ? true : "must hold at most 32 reasons"))
  ),
  confirmed_fraud: optional(Schema.Boolean)
})
export type FraudSignal = typeof FraudSignal.Type

export const kycLevels = ["none", "basic", "full"] as const
export const riskLevels = ["low", "medium", "high"] as const

/** Contract §3: a user in a dimension snapshot. */
export const User = Schema.Struct({
  user_id: UserId,
  created_at: Rfc3339Micros,
  country: CountryCode,
  kyc_level: Enum(...kycLevels),
  risk_tier: Enum(...riskLevels)
})
export type User = typeof User.Type

/** Contract §3: a merchant in a dimension snapshot. */
export const Merchant = Schema.Struct({
  merchant_id: MerchantId,
  name: Schema.String,
  mcc: Digits(4, 4),
  country: CountryCode,
  risk_level: Enum(...riskLevels),
  settlement_currency: CurrencyCode
})
export type Merchant = typeof Merchant.Type
