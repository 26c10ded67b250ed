import type { PaymentMethod } from "../../domain/events.js"
import type { EpochMicros } from "../../domain/time.js"
import { base36, formatRfc3339, type UtcOffsetMinutes } from "./format.js"
import { mixSeed, Random } from "./random.js"

/** A currency the generator pays in: ISO exponent and an approximate rate per US dollar. */
export interface CurrencyInfo {
  readonly code: string
  readonly exponent: number
  readonly perUsd: number
}

/** Currencies in use: JPY has exponent 0 (whole yen), KWD exponent 3. */
export const currencies: Readonly<Record<string, CurrencyInfo>> = {
  USD: { code: "USD", exponent: 2, perUsd: 1 },
  EUR: { code: "EUR", exponent: 2, perUsd: 0.92 },
  GBP: { code: "GBP", exponent: 2, perUsd: 0.79 },
  JPY: { code: "JPY", exponent: 0, perUsd: 150 },
  KWD: { code: "KWD", exponent: 3, perUsd: 0.31 },
  INR: { code: "INR", exponent: 2, perUsd: 83 },
  CAD: { code: "CAD", exponent: 2, perUsd: 1.36 }
}

interface CountryInfo {
  readonly code: string
  readonly currency: string
  readonly offsetMinutes: UtcOffsetMinutes
  readonly weight: number
  readonly nameWords: ReadonlyArray<string>
}

const countries: ReadonlyArray<CountryInfo> = [
  {
    code: "US",
    currency: "USD",
    offsetMinutes: -480,
    weight: 34,
    nameWords: ["Sunset", "Main Street", "Blue Ridge"]
  },
  { code: "CA", currency: "CAD", offsetMinutes: -300, weight: 4, nameWords: ["Maple", "Québec", "Northern"] },
  { code: "GB", currency: "GBP", offsetMinutes: 0, weight: 12, nameWords: ["Camden", "Thames", "Royal Oak"] },
  {
    code: "DE",
    currency: "EUR",
    offsetMinutes: 60,
    weight: 9,
    nameWords: ["Müller", "Bäckerei Schäfer", "Grün"]
  },
  {
    code: "FR",
    currency: "EUR",
    offsetMinutes: 60,
    weight: 6,
    nameWords: ["Café Lumière", "Élysée", "Côte"]
  },
  { code: "NL", currency: "EUR", offsetMinutes: 60, weight: 3, nameWords: ["Gracht", "Tulp", "Zuid"] },
  { code: "JP", currency: "JPY", offsetMinutes: 540, weight: 12, nameWords: ["東京", "大阪", "さくら"] },
  { code: "IN", currency: "INR", offsetMinutes: 330, weight: 9, nameWords: ["मुंबई", "Chennai", "दिल्ली"] },
  { code: "KW", currency: "KWD", offsetMinutes: 180, weight: 3, nameWords: ["الكويت", "الخليج", "Salmiya"] }
]

const countryWeights: ReadonlyArray<readonly [CountryInfo, number]> = countries.map((country) => [
  country,
  country.weight
])

interface MerchantCategory {
  readonly mcc: string
  readonly label: string
  readonly medianUsd: number
  readonly weight: number
  readonly risky: boolean
}

const categories: ReadonlyArray<MerchantCategory> = [
  { mcc: "5411", label: "Market", medianUsd: 45, weight: 20, risky: false },
  { mcc: "5812", label: "Bistro", medianUsd: 38, weight: 16, risky: false },
  { mcc: "5814", label: "Quick Eats", medianUsd: 12, weight: 12, risky: false },
  { mcc: "5999", label: "Goods", medianUsd: 30, weight: 10, risky: false },
  { mcc: "5732", label: "Electronics", medianUsd: 240, weight: 6, risky: false },
  { mcc: "4121", label: "Rides", medianUsd: 18, weight: 8, risky: false },
  { mcc: "7011", label: "Hotel", medianUsd: 210, weight: 4, risky: false },
  { mcc: "4511", label: "Air", medianUsd: 380, weight: 3, risky: false },
  { mcc: "5691", label: "Apparel", medianUsd: 70, weight: 8, risky: false },
  { mcc: "5942", label: "Books", medianUsd: 25, weight: 3, risky: false },
  { mcc: "7995", label: "Casino", medianUsd: 90, weight: 3, risky: true },
  { mcc: "5967", label: "Direct Offers", medianUsd: 40, weight: 2, risky: true },
  { mcc: "6051", label: "Crypto Exchange", medianUsd: 320, weight: 2, risky: true },
  { mcc: "4829", label: "Money Transfer", medianUsd: 260, weight: 2, risky: true }
]

const categoryWeights: ReadonlyArray<readonly [MerchantCategory, number]> = categories.map((category) => [
  category,
  category.weight
])

const processors: ReadonlyArray<readonly [string, number]> = [
  ["adyen", 30],
  ["stripe", 35],
  ["checkout", 15],
  ["worldpay", 12],
  ["braintree", 8]
]

/** Everything the generator knows about a merchant; the dimension row is a projection of it. */
export interface MerchantProfile {
  readonly index: number
  readonly merchantId: string
  readonly name: string
  readonly mcc: string
  readonly risky: boolean
  readonly country: string
  readonly riskLevel: "low" | "medium" | "high"
  readonly settlementCurrency: string
  readonly offsetMinutes: UtcOffsetMinutes
  readonly medianUsd: number
  readonly processor: string
}

/** Derives merchant `index` from the seed alone, so no merchant table has to be kept. */
export const merchantProfile = (seed: number, index: number): MerchantProfile => {
  const random = new Random(mixSeed(seed, 0x6d657263, index))
  const country = random.weighted(countryWeights)
  const category = random.weighted(categoryWeights)
  const riskLevel = category.risky
    ? "high"
    : random.weighted([
        ["low", 80],
        ["medium", 17],
        ["high", 3]
      ] as const)
  const settlementCurrency = random.chance(0.9) ? country.currency : random.pick(["USD", "EUR"])
  return {
    index,
    merchantId: `mch_${base36(index, 5)}`,
    name: `${random.pick(country.nameWords)} ${category.label} ${random.letters(2).toUpperCase()}`,
    mcc: category.mcc,
    risky: category.risky,
    country: country.code,
    riskLevel,
    settlementCurrency,
    offsetMinutes: country.offsetMinutes,
    medianUsd: category.medianUsd,
    processor: random.weighted(processors)
  }
}

const cardBins: ReadonlyArray<string> = [
  "411111",
  "424242",
  "400551",
  "45717360",
  "555555",
  "510510",
  "22230003",
  "378282",
  "353011"
]

/** Everything the generator knows about a user (payer). */
export interface UserProfile {
  readonly index: number
  readonly userId: string
  readonly country: string
  readonly currency: string
  readonly createdAt: EpochMicros
  readonly kycLevel: "none" | "basic" | "full"
  readonly riskTier: "low" | "medium" | "high"
  readonly paymentMethod: PaymentMethod
  readonly cardBin: string
  readonly cardLast4: string
  readonly devices: ReadonlyArray<string>
  readonly ipAddress: string
}

const dayMicros = 86_400_000_000

/** Derives user `index` from the seed alone. Users exist from up to four years before `startMicros`. */
export const userProfile = (seed: number, index: number, startMicros: EpochMicros): UserProfile => {
  const random = new Random(mixSeed(seed, 0x75736572, index))
  const country = random.weighted(countryWeights)
  const createdAt = random.chance(0.04)
    ? startMicros - Math.floor((random.uniform(0.1, 2) * dayMicros) / 1000) * 1000
    : startMicros - Math.floor((random.uniform(3, 1460) * dayMicros) / 1000) * 1000
  const deviceCount = random.int(1, 3)
  const devices: Array<string> = []
  for (let device = 0; device < deviceCount; device++) devices.push(`dev_${random.token(12)}`)
  return {
    index,
    userId: `usr_${base36(index, 6)}`,
    country: country.code,
    currency: country.currency,
    createdAt,
    kycLevel: random.weighted([
      ["full", 60],
      ["basic", 32],
      ["none", 8]
    ] as const),
    riskTier: random.weighted([
      ["low", 80],
      ["medium", 15],
      ["high", 5]
    ] as const),
    paymentMethod: random.weighted([
      ["card", 70],
      ["wallet", 20],
      ["bank_transfer", 10]
    ] as const),
    cardBin: random.pick(cardBins),
    cardLast4: random.digits(4),
    devices,
    ipAddress: `${random.int(11, 223)}.${random.int(0, 255)}.${random.int(0, 255)}.${random.int(1, 254)}`
  }
}

/** The contract §3 user row. */
export const userRow = (
  user: UserProfile,
  overrides: { readonly kycLevel?: string; readonly riskTier?: string } = {}
) => ({
  user_id: user.userId,
  created_at: formatRfc3339(user.createdAt, 0),
  country: user.country,
  kyc_level: overrides.kycLevel ?? user.kycLevel,
  risk_tier: overrides.riskTier ?? user.riskTier
})

/** The contract §3 merchant row. */
export const merchantRow = (
  merchant: MerchantProfile,
  overrides: { readonly name?: string; readonly riskLevel?: string } = {}
) => ({
  merchant_id: merchant.merchantId,
  name: overrides.name ?? merchant.name,
  mcc: merchant.mcc,
  country: merchant.country,
  risk_level: overrides.riskLevel ?? merchant.riskLevel,
  settlement_currency: merchant.settlementCurrency
})

/** Converts an amount in US dollars to integer minor units of `currency`, at least 1. */
export const toMinorUnits = (amountUsd: number, currency: string): number => {
  const info = currencies[currency] ?? { exponent: 2, perUsd: 1 }
  return Math.max(1, Math.round(amountUsd * info.perUsd * 10 ** info.exponent))
}
