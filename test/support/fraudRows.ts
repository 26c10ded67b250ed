import { currencyExponent } from "../../src/domain/currency.js"
import type { FinalAggregateRow } from "../../src/domain/rows.js"
import { utcDate } from "../../src/domain/time.js"
import type { ScoringFacts } from "../../src/streams/train/features.js"
import { makePrng } from "../../src/streams/train/random.js"

export const dayMicros = 86_400_000_000
export const startMicros = Date.UTC(2026, 0, 1) * 1000

export const baseRow: FinalAggregateRow = {
  transaction_id: "tx-base",
  status: "captured",
  sequence: 2,
  amount_minor: 12_345,
  first_amount_minor: 12_345,
  first_currency: "USD",
  currency: "USD",
  user_id: "u-1",
  merchant_id: "m-1",
  payment_method: "card",
  card_bin: "411111",
  card_last4: "1111",
  processor: "adyen",
  processor_reference: "psp-base",
  country: "US",
  first_event_time: startMicros + 13 * 3_600_000_000,
  last_event_time: startMicros + 14 * 3_600_000_000,
  authorized_at: startMicros + 13 * 3_600_000_000,
  captured_at: startMicros + 14 * 3_600_000_000,
  settled_at: null,
  refunded_at: null,
  chargeback_at: null,
  event_count: 2,
  fraud_signal_count: 0,
  fraud_max_score: null,
  fraud_reasons: [],
  confirmed_fraud: false,
  device_id: "d-1",
  fraud_prior_signal_max_score: null,
  user_country: "US",
  user_kyc_level: "basic",
  user_risk_tier: "low",
  user_created_at: startMicros - 400 * dayMicros,
  merchant_name: "Shop",
  merchant_mcc: "5812",
  merchant_country: "US",
  merchant_risk_level: "low",
  dt: "2026-01-01"
}

export const noActivity = { user_txn_1h: 0, user_txn_24h: 0, device_txn_24h: 0, device_known_for_user: false }
export const baseFacts: FinalAggregateRow & ScoringFacts = { ...baseRow, ...noActivity }

const currencies = ["USD", "EUR", "JPY", "KWD"] as const
const riskyMccList = ["7995", "5967", "6051", "4829"] as const
const safeMccList = ["5812", "5411", "5999", "4111"] as const
const levels = ["low", "medium", "high"] as const
const kyc = ["none", "basic", "full"] as const

/** ~3000 rows over 30 days; fraud is far likelier for risky MCC + high amount + new user. */
export const syntheticRows = (count: number, seed: number): Array<FinalAggregateRow> => {
  const random = makePrng(seed)
  const pick = <A>(values: ReadonlyArray<A>): A => values[Math.floor(random() * values.length)] as A
  const merchants = Array.from({ length: 40 }, (_, index) => ({
    id: `m-${index}`,
    mcc: index % 5 === 0 ? pick(riskyMccList) : pick(safeMccList),
    risk: pick(levels),
    currency: pick(currencies),
    country: pick(["US", "DE", "JP", "KW"])
  }))
  return Array.from({ length: count }, (_, index): FinalAggregateRow => {
    const merchant = pick(merchants)
    const userIndex = Math.floor(random() * 600)
    const firstEventTime = startMicros + Math.floor(((index + random()) * 30 * dayMicros) / count)
    const newUser = random() < 0.2
    const knownUser = random() < 0.9
    const tenureDays = newUser ? random() * 14 : 40 + random() * 1500
    const highAmount = random() < 0.12
    const major = Math.exp(3 + random()) * (highAmount ? 12 : 1)
    const amountMinor = Math.round(major * 10 ** currencyExponent(merchant.currency))
    const riskyMcc = (riskyMccList as ReadonlyArray<string>).includes(merchant.mcc)
    const userCountry = knownUser ? pick(["US", "DE", "JP", "KW"]) : null
    const country = random() < 0.85 ? (userCountry ?? "US") : pick(["BR", "NG", "RU"])
    const logit =
      -3.9 +
      2.2 * Number(riskyMcc) +
      2.2 * Number(highAmount) +
      2.2 * Number(newUser && knownUser) +
      0.6 * Number(merchant.risk === "high") +
      0.5 * Number(userCountry !== null && country !== userCountry)
    const fraud = random() < 1 / (1 + Math.exp(-logit))
    return {
      ...baseRow,
      transaction_id: `tx-${String(index).padStart(5, "0")}`,
      status: fraud ? "chargeback" : pick(["captured", "settled"]),
      amount_minor: amountMinor,
      currency: merchant.currency,
      first_amount_minor: amountMinor,
      first_currency: merchant.currency,
      user_id: `u-${userIndex}`,
      device_id: random() < 0.9 ? `d-${userIndex}` : null,
      merchant_id: merchant.id,
      payment_method: pick(["card", "card", "wallet", "bank_transfer"]),
      card_bin: random() < 0.8 ? "411111" : null,
      processor_reference: `psp-${index}`,
      country,
      first_event_time: firstEventTime,
      last_event_time: firstEventTime + 3_600_000_000,
      authorized_at: firstEventTime,
      captured_at: firstEventTime + 60_000_000,
      chargeback_at: fraud ? firstEventTime + 20 * dayMicros : null,
      fraud_signal_count: fraud ? 2 : 0,
      fraud_max_score: fraud ? 0.97 : null,
      fraud_reasons: fraud ? ["chargeback"] : [],
      confirmed_fraud: fraud,
      user_country: userCountry,
      user_kyc_level: knownUser ? pick(kyc) : null,
      user_risk_tier: knownUser ? pick(levels) : null,
      user_created_at: knownUser ? firstEventTime - Math.floor(tenureDays * dayMicros) : null,
      merchant_mcc: merchant.mcc,
      merchant_risk_level: merchant.risk,
      merchant_country: merchant.country,
      dt: utcDate(firstEventTime)
    }
  })
}
