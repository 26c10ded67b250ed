import type { FinalAggregateRow, TableRow } from "../../src/domain/rows.js"
import { utcDate } from "../../src/domain/time.js"

/** Seeded committed final_aggregate rows shared by the SQL and aggregation tests. */
export const seededRandom = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
}

export const dayMicros = 86_400_000_000
export const firstDayMicros = Date.UTC(2026, 10, 22) * 1000
export const merchants = [
  { id: "m-hot", name: "Hot Shop", mcc: "5411", risk: "low" },
  { id: "m-cafe", name: "Café 東京", mcc: "5812", risk: "medium" },
  { id: "m-risky", name: "Risky Ltd", mcc: "7995", risk: "high" },
  { id: "m-unknown", name: null, mcc: null, risk: null }
] as const
export const currencies = ["JPY", "USD", "KWD"] as const
export const statuses = [
  "authorized",
  "captured",
  "settled",
  "refunded",
  "partially_refunded",
  "voided",
  "declined",
  "chargeback"
] as const
export const capturedLike: ReadonlyArray<string> = [
  "captured",
  "settled",
  "refunded",
  "partially_refunded",
  "chargeback"
]

/** Seeded final_aggregate rows over three days; every 50th row is a near-2^53 JPY amount at the hot merchant. */
export const makeRows = (seed: number, count: number, idPrefix: string): Array<FinalAggregateRow> => {
  const random = seededRandom(seed)
  const pick = <T>(items: ReadonlyArray<T>): T => items[Math.floor(random() * items.length)] as T
  return Array.from({ length: count }, (_, index): FinalAggregateRow => {
    const huge = index % 50 === 0
    const merchant = huge || random() < 0.5 ? merchants[0] : pick(merchants)
    const status = pick(statuses)
    const first = firstDayMicros + Math.floor(random() * 3 * dayMicros)
    const scored = random() < 0.6
    return {
      transaction_id: `${idPrefix}-${index}`,
      status,
      sequence: 2,
      amount_minor: huge ? Number.MAX_SAFE_INTEGER - index : 1 + Math.floor(random() * 1_000_000),
      currency: huge ? "JPY" : pick(currencies),
      user_id: `u-${index % 7}`,
      merchant_id: merchant.id,
      payment_method: "card",
      card_bin: "411111",
      card_last4: "1111",
      processor: "adyen",
      processor_reference: `psp-${idPrefix}-${index}`,
      country: "JP",
      first_event_time: first,
      last_event_time: first + 1_000_000 * (1 + (index % 5)),
      authorized_at: status === "declined" ? null : first,
      captured_at: capturedLike.includes(status) ? first + 1000 : null,
      settled_at: status === "settled" ? first + 2000 : null,
      refunded_at: status.endsWith("refunded") ? first + 3000 : null,
      chargeback_at: status === "chargeback" ? first + 4000 : null,
      event_count: 2,
      fraud_signal_count: scored ? 1 : 0,
      fraud_max_score: scored ? Math.round(random() * 1000) / 1000 : null,
      fraud_reasons: scored ? ["velocity"] : [],
      confirmed_fraud: scored && random() < 0.2,
      first_amount_minor: 1 + (index % 997),
      first_currency: "JPY",
      device_id: index % 3 === 0 ? null : `d-${index % 11}`,
      fraud_prior_signal_max_score: null,
      user_country: null,
      user_kyc_level: null,
      user_risk_tier: null,
      user_created_at: null,
      merchant_name: merchant.name,
      merchant_mcc: merchant.mcc,
      merchant_country: null,
      merchant_risk_level: merchant.risk,
      dt: utcDate(first)
    }
  })
}

export const groupBy = <T>(items: ReadonlyArray<T>, keyOf: (item: T) => string): Map<string, Array<T>> => {
  const groups = new Map<string, Array<T>>()
  for (const item of items) groups.set(keyOf(item), [...(groups.get(keyOf(item)) ?? []), item])
  return groups
}

export const toTableRow = (row: FinalAggregateRow): TableRow => ({ ...row })
