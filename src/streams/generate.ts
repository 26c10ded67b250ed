import * as NodeFsPromises from "node:fs/promises"
import * as NodePath from "node:path"
import { Data, Effect, Exit } from "effect"
import type { FraudSignalSource, TransactionStatus } from "../domain/events.js"
import { type EpochMicros, parseRfc3339ToMicros, rfc3339Problem, utcDate } from "../domain/time.js"
import {
  type MerchantProfile,
  merchantProfile,
  toMinorUnits,
  type UserProfile,
  userProfile
} from "./generate/catalog.js"
import { type DimensionSummary, writeDimensions } from "./generate/dimensions.js"
import { base36, formatRfc3339, type UtcOffsetMinutes } from "./generate/format.js"
import {
  type InvalidKind,
  invalidKinds,
  invalidLine,
  signalInvalidKinds,
  transactionInvalidKinds
} from "./generate/invalid.js"
import { mixSeed, Random, ZipfSampler } from "./generate/random.js"
import { ArrivalSpool, LineSink, type RawFileInfo, RawPartitionWriter } from "./generate/sinks.js"

export type { InvalidKind } from "./generate/invalid.js"
export { invalidKinds } from "./generate/invalid.js"

/** Options of {@link generateDataset}; everything but `outDir` has a default. */
export interface GenerateOptions {
  /** Directory to write into; `raw/`, `stream/` and `summary.json` inside it are replaced. */
  readonly outDir: string
  /** Number of payment transactions (default 1000). */
  readonly transactions?: number
  /** PRNG seed (default 42); the same options always give byte-identical files. */
  readonly seed?: number
  /** RFC 3339 start of the event-time window (default 2026-11-01T00:00:00Z). */
  readonly startTime?: string
  /** Length of the authorization window in days (default 7); later lifecycle events may fall after it. */
  readonly days?: number
  /** Share of written records followed by a deliberately invalid line (default 0.005). */
  readonly invalidShare?: number
  /** Share of written records repeated as an exact duplicate line (default 0.01). */
  readonly duplicateShare?: number
  /** Relative share of records sent only to the stream (default 0.6). */
  readonly streamShare?: number
  /** Relative share of records written only to raw files (default 0.3). */
  readonly batchShare?: number
  /** Relative share of records sent by both paths with the same id (default 0.1). */
  readonly bothShare?: number
  /** Share of raw files written gzip-compressed as `.jsonl.gz` (default 0.5). */
  readonly gzipShare?: number
  /** Lines per raw file before it is rotated (default 50 000). */
  readonly eventsPerFile?: number
}

/** Line counts of one dataset at one destination. `lines` = `valid` + `invalid` + `duplicates`. */
export interface LineCounts {
  readonly lines: number
  /** Distinct valid records. */
  readonly valid: number
  readonly invalid: number
  /** Exact repeats of a valid line already written to this destination. */
  readonly duplicates: number
}

/** Line counts per dataset at one destination (`stream/` or `raw/`). */
export interface DestinationCounts {
  readonly transactions: LineCounts
  readonly fraud_signals: LineCounts
}

/** What {@link generateDataset} wrote; also saved as `summary.json` in the output directory. */
export interface GenerateSummary {
  readonly seed: number
  readonly startTime: string
  readonly days: number
  readonly transactions: number
  /** Distinct valid transaction events (an event sent by both paths counts once). */
  readonly events: number
  /** Distinct valid fraud signals, orphans included. */
  readonly signals: number
  readonly orphanSignals: number
  readonly fraudulentTransactions: number
  readonly confirmedFraudTransactions: number
  /** All deliberately invalid lines, stream and raw. */
  readonly invalid: number
  readonly invalidByKind: Readonly<Record<InvalidKind, number>>
  /** All exact duplicate lines, stream and raw. */
  readonly duplicates: number
  readonly users: number
  readonly merchants: number
  readonly stream: DestinationCounts & { readonly lateEvents: number }
  readonly raw: DestinationCounts & {
    readonly files: number
    readonly gzipFiles: number
    readonly emptyFiles: number
  }
  /** Records that went by both paths with the same id. */
  readonly bothPaths: { readonly transactions: number; readonly fraud_signals: number }
  readonly dimensions: DimensionSummary
}

/** Generation failed: bad options or a file-system error. */
export class GenerateError extends Data.TaggedError("GenerateError")<{
  readonly stage: string
  readonly cause: unknown
}> {
  override get message(): string {
    const cause = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `generate dataset (${this.stage}): ${cause}`
  }
}

const second = 1_000_000
const minute = 60 * second
const hour = 60 * minute
const day = 24 * hour

type Dataset = "transactions" | "fraud_signals"
type Route = "stream" | "raw" | "both"
type Pattern = "normal" | "velocity" | "new_device"
type JsonRecord = Record<string, unknown>

interface Settings {
  readonly outDir: string
  readonly transactions: number
  readonly seed: number
  readonly startMicros: EpochMicros
  readonly days: number
  readonly invalidShare: number
  readonly duplicateShare: number
  readonly routes: ReadonlyArray<readonly [Route, number]>
  readonly gzipShare: number
  readonly eventsPerFile: number
}

const resolveSettings = (options: GenerateOptions): Effect.Effect<Settings, GenerateError> => {
  const startTime = options.startTime ?? "2026-11-01T00:00:00Z"
  const settings: Settings = {
    outDir: options.outDir,
    transactions: options.transactions ?? 1000,
    seed: options.seed ?? 42,
    startMicros: parseRfc3339ToMicros(startTime),
    days: options.days ?? 7,
    invalidShare: options.invalidShare ?? 0.005,
    duplicateShare: options.duplicateShare ?? 0.01,
    routes: [
      ["stream", options.streamShare ?? 0.6],
      ["raw", options.batchShare ?? 0.3],
      ["both", options.bothShare ?? 0.1]
    ],
    gzipShare: options.gzipShare ?? 0.5,
    eventsPerFile: options.eventsPerFile ?? 50_000
  }
  const isShare = (value: number) => Number.isFinite(value) && value >= 0 && value <= 1
  const problems = [
    options.outDir.length === 0 ? "outDir must not be empty" : undefined,
    Number.isSafeInteger(settings.transactions) && settings.transactions >= 0
      ? undefined
      : "transactions must be an integer >= 0",
    Number.isSafeInteger(settings.seed) ? undefined : "seed must be an integer",
    rfc3339Problem(startTime) === undefined ? undefined : `startTime: ${rfc3339Problem(startTime)}`,
    Number.isSafeInteger(settings.days) && settings.days >= 1 ? undefined : "days must be an integer >= 1",
    isShare(settings.invalidShare) ? undefined : "invalidShare must be from 0 to 1",
    isShare(settings.duplicateShare) ? undefined : "duplicateShare must be from 0 to 1",
    isShare(settings.gzipShare) ? undefined : "gzipShare must be from 0 to 1",
    settings.routes.every(([, share]) => Number.isFinite(share) && share >= 0) &&
    settings.routes.some(([, share]) => share > 0)
      ? undefined
      : "streamShare, batchShare and bothShare must be >= 0 and not all 0",
    Number.isSafeInteger(settings.eventsPerFile) && settings.eventsPerFile >= 1
      ? undefined
      : "eventsPerFile must be an integer >= 1"
  ].filter((problem) => problem !== undefined)
  return problems.length === 0
    ? Effect.succeed(settings)
    : Effect.fail(new GenerateError({ stage: "options", cause: problems.join("; ") }))
}

interface MutableLineCounts {
  lines: number
  valid: number
  invalid: number
  duplicates: number
}
const emptyCounts = (): MutableLineCounts => ({ lines: 0, valid: 0, invalid: 0, duplicates: 0 })

interface PlannedEvent {
  readonly status: TransactionStatus
  readonly sequence: number
  readonly micros: EpochMicros
  readonly amountMinor: number
}

interface PlannedSignal {
  readonly source: FraudSignalSource
  readonly score: number
  readonly reasons: ReadonlyArray<string>
  readonly micros: EpochMicros
  readonly confirmedFraud?: boolean
}

const conflictingStatus: Readonly<Record<TransactionStatus, TransactionStatus>> = {
  authorized: "declined",
  captured: "voided",
  settled: "refunded",
  refunded: "partially_refunded",
  partially_refunded: "refunded",
  voided: "captured",
  declined: "authorized",
  chargeback: "refunded"
}

const wireOffsets: ReadonlyArray<UtcOffsetMinutes> = [0, 330, -480, 540]

const processorReference = (processor: string, random: Random): string => {
  switch (processor) {
    case "stripe":
      return `pi_${random.token(24)}`
    case "adyen":
      return `psp_${random.token(16).toUpperCase()}`
    case "checkout":
      return `pay_${random.token(26)}`
    case "worldpay":
      return `wp_${random.token(20)}`
    default:
      return `bt_${random.token(10)}`
  }
}

interface Writers {
  readonly rawTransactions: RawPartitionWriter
  readonly rawSignals: RawPartitionWriter
  readonly streamTransactions: ArrivalSpool
  readonly streamSignals: ArrivalSpool
  readonly spoolDirectory: string
}

const openWriters = (settings: Settings): Writers => {
  const files = new Random(mixSeed(settings.seed, 0x66696c65))
  const chooseGzip = () => files.chance(settings.gzipShare)
  const spoolDirectory = NodePath.join(settings.outDir, ".spool")
  const origin = settings.startMicros - 2 * day
  return {
    rawTransactions: new RawPartitionWriter(
      NodePath.join(settings.outDir, "raw", "transactions"),
      settings.eventsPerFile,
      chooseGzip
    ),
    rawSignals: new RawPartitionWriter(
      NodePath.join(settings.outDir, "raw", "fraud_signals"),
      settings.eventsPerFile,
      chooseGzip
    ),
    streamTransactions: new ArrivalSpool(NodePath.join(spoolDirectory, "transactions"), origin),
    streamSignals: new ArrivalSpool(NodePath.join(spoolDirectory, "fraud_signals"), origin),
    spoolDirectory
  }
}

const discardWriters = (writers: Writers): Promise<void> => {
  writers.rawTransactions.destroy()
  writers.rawSignals.destroy()
  return NodeFsPromises.rm(writers.spoolDirectory, { recursive: true, force: true })
}

/** One generation run: owns the PRNGs, the writers and the counters. Used by one fiber only. */
class DatasetRun {
  private readonly lifecycle: Random
  private readonly routing: Random
  private readonly injection: Random
  private readonly userSampler: ZipfSampler
  private readonly merchantSampler: ZipfSampler
  readonly referencedUsers: Uint8Array
  readonly referencedMerchants: Uint8Array
  private readonly merchantCache: Array<MerchantProfile | undefined>
  private readonly stream = { transactions: emptyCounts(), fraud_signals: emptyCounts() }
  private readonly raw = { transactions: emptyCounts(), fraud_signals: emptyCounts() }
  private readonly bothPaths = { transactions: 0, fraud_signals: 0 }
  private readonly invalidByKind = Object.fromEntries(invalidKinds.map((kind) => [kind, 0])) as Record<
    InvalidKind,
    number
  >
  private readonly invalidCursor = { transactions: 0, fraud_signals: 0 }
  private lateEvents = 0
  private orphanSignals = 0
  private fraudulent = 0
  private confirmed = 0
  private signalCounter = 0

  constructor(
    private readonly settings: Settings,
    private readonly writers: Writers
  ) {
    const seed = settings.seed
    this.lifecycle = new Random(mixSeed(seed, 0x6c696665))
    this.routing = new Random(mixSeed(seed, 0x726f7574))
    this.injection = new Random(mixSeed(seed, 0x696e6a65))
    const users = settings.transactions === 0 ? 0 : Math.max(1, Math.ceil(settings.transactions / 10))
    const merchants = settings.transactions === 0 ? 0 : Math.max(3, Math.ceil(settings.transactions / 40))
    this.referencedUsers = new Uint8Array(users)
    this.referencedMerchants = new Uint8Array(merchants)
    this.merchantCache = new Array<MerchantProfile | undefined>(merchants)
    this.userSampler = new ZipfSampler(users, 0.6)
    this.merchantSampler = new ZipfSampler(merchants, 1.1)
  }

  /** Generates every transaction, its events and signals, writing as it goes. */
  async writeEvents(abort: AbortSignal): Promise<void> {
    const random = this.lifecycle
    const total = this.settings.transactions
    let index = 0
    while (index < total) {
      if (abort.aborted) throw new Error("interrupted")
      const userIndex = this.userSampler.sample(random)
      if (total - index >= 5 && random.chance(0.004)) {
        const size = Math.min(random.int(5, 12), total - index)
        const burstMerchant = random.chance(0.6) ? this.merchantSampler.sample(random) : undefined
        let authMicros = this.sampleAuthTime()
        for (let member = 0; member < size; member++) {
          const merchantIndex = burstMerchant ?? this.merchantSampler.sample(random)
          await this.transaction(index++, userIndex, merchantIndex, authMicros, "velocity")
          authMicros += this.roundTime(random.uniform(5 * second, 90 * second))
        }
      } else {
        const pattern: Pattern = random.chance(0.015) ? "new_device" : "normal"
        const merchantIndex = this.merchantSampler.sample(random)
        await this.transaction(index++, userIndex, merchantIndex, this.sampleAuthTime(), pattern)
      }
    }
  }

  private roundTime(micros: number): EpochMicros {
    return this.lifecycle.chance(0.1) ? Math.floor(micros) : Math.floor(micros / 1000) * 1000
  }

  private sampleAuthTime(): EpochMicros {
    const random = this.lifecycle
    const { startMicros, days } = this.settings
    if (random.chance(0.03)) {
      const dayIndex = random.int(1, days)
      const midnight = Math.floor(startMicros / day) * day + dayIndex * day
      const offset =
        dayIndex === days ? -random.uniform(0, 5 * minute) : random.uniform(-5 * minute, 5 * minute)
      return this.roundTime(Math.max(startMicros, midnight + offset))
    }
    let fraction = random.next()
    while (random.next() > 0.35 + 0.65 * Math.sin(Math.PI * fraction) ** 2) fraction = random.next()
    return this.roundTime(startMicros + random.int(0, days - 1) * day + fraction * day)
  }

  private formatTime(micros: EpochMicros, preferredOffset: UtcOffsetMinutes, zuluShare: number): string {
    const random = this.lifecycle
    const roll = random.next()
    const [offset, zulu] =
      roll < zuluShare
        ? [0, true]
        : roll < zuluShare + 0.05
          ? [0, false]
          : roll < 0.88
            ? [preferredOffset, true]
            : [random.pick(wireOffsets), true]
    return formatRfc3339(micros, offset, micros % 1000 === 0 ? 3 : 6, zulu)
  }

  private planLifecycle(
    authMicros: EpochMicros,
    amountMinor: number,
    fraudulent: boolean,
    confirmation: "chargeback" | "manual_review" | "none"
  ): { events: Array<PlannedEvent>; chargebackMicros: EpochMicros | undefined } {
    const random = this.lifecycle
    const events: Array<PlannedEvent> = [
      { status: "authorized", sequence: 0, micros: authMicros, amountMinor }
    ]
    const last = () => events[events.length - 1]!
    const add = (status: TransactionStatus, micros: number, amount = amountMinor) =>
      events.push({ status, sequence: events.length, micros: this.roundTime(micros), amountMinor: amount })
    let chargebackMicros: EpochMicros | undefined
    if (random.chance(fraudulent ? 0.35 : 0.05)) {
      add("declined", authMicros + random.uniform(200_000, 3 * second))
    } else if (random.chance(0.03)) {
      add("voided", authMicros + random.uniform(2 * minute, 6 * hour))
    } else if (random.chance(0.97)) {
      add(
        "captured",
        authMicros +
          (random.chance(0.6) ? random.uniform(second, 10 * second) : random.uniform(5 * minute, 8 * hour))
      )
      if (random.chance(0.96)) {
        const nextMidnight = (Math.floor(last().micros / day) + 1) * day
        add(
          "settled",
          nextMidnight +
            (random.chance(0.3) ? day : 0) +
            (random.chance(0.25) ? random.uniform(0, 10 * minute) : random.uniform(10 * minute, 5 * hour))
        )
        if (confirmation === "chargeback" || (!fraudulent && random.chance(0.002))) {
          add("chargeback", last().micros + random.uniform(day, 6 * day))
          chargebackMicros = last().micros
        } else if (random.chance(0.04)) {
          add("refunded", last().micros + random.uniform(hour, 4 * day))
        } else if (random.chance(0.03)) {
          const partial = Math.max(1, Math.floor(amountMinor * random.uniform(0.1, 0.9)))
          add("partially_refunded", last().micros + random.uniform(hour, 4 * day), partial)
          if (random.chance(0.2)) add("refunded", last().micros + random.uniform(hour, 2 * day))
        }
      }
    }
    if (random.chance(0.006)) {
      const final = last()
      events.push(
        random.chance(0.5)
          ? { ...final, micros: final.micros + this.roundTime(random.uniform(second, minute)) }
          : { ...final, status: conflictingStatus[final.status] }
      )
    }
    return { events, chargebackMicros }
  }

  private planSignals(
    authMicros: EpochMicros,
    fraudulent: boolean,
    pattern: Pattern,
    user: UserProfile,
    merchant: MerchantProfile,
    confirmation: "chargeback" | "manual_review" | "none",
    chargebackMicros: EpochMicros | undefined
  ): Array<PlannedSignal> {
    const random = this.lifecycle
    const signals: Array<PlannedSignal> = []
    const score = (low: number, high: number) => Math.round(random.uniform(low, high) * 1000) / 1000
    const soon = () => authMicros + this.roundTime(random.uniform(5_000, 900_000))
    if (fraudulent) {
      const reasons: Array<string> = []
      if (pattern === "velocity")
        reasons.push("velocity_burst", ...(random.chance(0.5) ? ["card_testing"] : []))
      if (pattern === "new_device") reasons.push("new_device", "high_amount")
      if (merchant.risky) reasons.push("risky_mcc")
      if (user.country !== merchant.country && random.chance(0.5)) reasons.push("ip_country_mismatch")
      if (random.chance(0.2))
        reasons.push(random.pick(["bin_country_mismatch", "unusual_hour", "email_age_low"]))
      const useRules = random.chance(0.7)
      const usePartner = random.chance(0.35)
      if (useRules) signals.push({ source: "rules", score: score(0.7, 0.99), reasons, micros: soon() })
      if (random.chance(0.85) || (!useRules && !usePartner)) {
        signals.push({
          source: "model",
          score: score(0.6, 0.99),
          reasons: [...reasons, "model_score_high"],
          micros: soon()
        })
      }
      if (usePartner) {
        const micros = random.chance(0.5)
          ? authMicros - this.roundTime(random.uniform(200_000, 3 * second))
          : authMicros + this.roundTime(random.uniform(minute, 2 * hour))
        signals.push({ source: "partner", score: score(0.5, 0.95), reasons: ["partner_watchlist"], micros })
      }
    } else {
      if (merchant.risky && random.chance(0.3)) {
        signals.push({ source: "rules", score: score(0.3, 0.6), reasons: ["risky_mcc"], micros: soon() })
      }
      if (random.chance(0.1)) {
        const reasons = random.chance(0.5)
          ? []
          : [random.pick(["amount_above_user_median", "unusual_hour", "new_merchant_for_user"])]
        signals.push({ source: "model", score: score(0.01, 0.35), reasons, micros: soon() })
      }
      if (random.chance(0.01)) {
        signals.push({
          source: "manual_review",
          score: 0.05,
          reasons: ["manual_review_cleared"],
          micros: authMicros + this.roundTime(random.uniform(2 * hour, 2 * day)),
          confirmedFraud: false
        })
      }
    }
    if (confirmation === "chargeback" && chargebackMicros !== undefined) {
      signals.push({
        source: "chargeback",
        score: 1,
        reasons: ["chargeback_fraud", random.pick(["card_not_present_fraud", "account_takeover"])],
        micros: chargebackMicros + this.roundTime(random.uniform(minute, 6 * hour)),
        confirmedFraud: true
      })
    } else if (confirmation !== "none") {
      signals.push({
        source: "manual_review",
        score: 1,
        reasons: ["manual_review_confirmed"],
        micros: authMicros + this.roundTime(random.uniform(2 * hour, 3 * day)),
        confirmedFraud: true
      })
    }
    return signals
  }

  private merchant(index: number): MerchantProfile {
    const cached = this.merchantCache[index]
    if (cached !== undefined) return cached
    const merchant = merchantProfile(this.settings.seed, index)
    this.merchantCache[index] = merchant
    return merchant
  }

  private async transaction(
    index: number,
    userIndex: number,
    merchantIndex: number,
    authMicros: EpochMicros,
    pattern: Pattern
  ): Promise<void> {
    const random = this.lifecycle
    const user = userProfile(this.settings.seed, userIndex, this.settings.startMicros)
    const merchant = this.merchant(merchantIndex)
    this.referencedUsers[userIndex] = 1
    this.referencedMerchants[merchantIndex] = 1
    const transactionKey = `${base36(index, 6)}${random.letters(4)}`
    const transactionId = `tx_${transactionKey}`
    const currency = random.chance(0.88) ? merchant.settlementCurrency : user.currency
    let amountUsd = random.logNormal(merchant.medianUsd, 0.9)
    let deviceId = random.chance(0.85) ? random.pick(user.devices) : undefined
    if (pattern === "new_device") {
      amountUsd *= random.uniform(6, 20)
      deviceId = `dev_${random.token(12)}`
    } else if (pattern === "velocity") {
      amountUsd = random.chance(0.5) ? random.uniform(0.5, 3) : random.logNormal(merchant.medianUsd * 2, 0.5)
    }
    const amountMinor = toMinorUnits(Math.min(amountUsd, 50_000), currency)
    const fraudProbability =
      pattern === "velocity"
        ? 0.85
        : pattern === "new_device"
          ? 0.4
          : 0.004 + (merchant.risky ? 0.05 : 0) + (user.riskTier === "high" ? 0.03 : 0)
    const fraudulent = random.chance(fraudProbability)
    const confirmation = fraudulent
      ? random.weighted([
          ["chargeback", 45],
          ["manual_review", 20],
          ["none", 35]
        ] as const)
      : "none"
    const { events, chargebackMicros } = this.planLifecycle(authMicros, amountMinor, fraudulent, confirmation)
    const effectiveConfirmation =
      confirmation === "chargeback" && chargebackMicros === undefined ? "manual_review" : confirmation
    if (fraudulent) this.fraudulent++
    if (effectiveConfirmation !== "none") this.confirmed++

    const isCard = user.paymentMethod === "card"
    const country = random.chance(0.9) ? user.country : random.chance(0.3) ? null : undefined
    const ipAddress = random.chance(0.8) ? user.ipAddress : undefined
    const reference = processorReference(merchant.processor, random)
    for (let eventIndex = 0; eventIndex < events.length; eventIndex++) {
      const event = events[eventIndex]!
      const record: JsonRecord = {
        event_id: `evt_${transactionKey}_${random.letters(4)}${eventIndex}`,
        transaction_id: transactionId,
        sequence: event.sequence,
        event_time: this.formatTime(event.micros, merchant.offsetMinutes, 0.4),
        status: event.status,
        amount_minor: event.amountMinor,
        currency,
        user_id: user.userId,
        merchant_id: merchant.merchantId,
        payment_method: user.paymentMethod
      }
      if (isCard) {
        record.card_bin = user.cardBin
        record.card_last4 = user.cardLast4
      }
      record.processor = merchant.processor
      record.processor_reference = reference
      if (country !== undefined) record.country = country
      if (deviceId !== undefined) record.device_id = deviceId
      if (ipAddress !== undefined) record.ip_address = ipAddress
      await this.emit("transactions", record, event.micros)
    }

    const signals = this.planSignals(
      authMicros,
      fraudulent,
      pattern,
      user,
      merchant,
      effectiveConfirmation,
      chargebackMicros
    )
    for (const signal of signals) await this.emitSignal(transactionId, signal)
    if (random.chance(0.003)) {
      this.orphanSignals++
      await this.emitSignal(`tx_${random.letters(10)}`, {
        source: random.pick(["partner", "model"] as const),
        score: Math.round(random.uniform(0.2, 0.9) * 1000) / 1000,
        reasons: ["partner_watchlist"],
        micros: authMicros + this.roundTime(random.uniform(0, hour))
      })
    }
  }

  private emitSignal(transactionId: string, signal: PlannedSignal): Promise<void> {
    const random = this.lifecycle
    const record: JsonRecord = {
      signal_id: `sig_${base36(this.signalCounter++, 7)}${random.letters(3)}`,
      transaction_id: transactionId,
      event_time: this.formatTime(signal.micros, 0, 0.7),
      source: signal.source,
      score: signal.score,
      reasons: signal.reasons
    }
    if (signal.confirmedFraud !== undefined) record.confirmed_fraud = signal.confirmedFraud
    return this.emit("fraud_signals", record, signal.micros)
  }

  private async emit(dataset: Dataset, record: JsonRecord, eventMicros: EpochMicros): Promise<void> {
    const line = JSON.stringify(record)
    const route = this.routing.weighted(this.settings.routes)
    if (route !== "raw") await this.toStream(dataset, record, line, eventMicros)
    if (route !== "stream") await this.toRaw(dataset, record, line, eventMicros)
    if (route === "both") this.bothPaths[dataset]++
  }

  private nextInvalidLine(dataset: Dataset, record: JsonRecord): string {
    const kinds = dataset === "transactions" ? transactionInvalidKinds : signalInvalidKinds
    const kind = kinds[this.invalidCursor[dataset]++ % kinds.length]!
    this.invalidByKind[kind]++
    return invalidLine(kind, record, dataset === "fraud_signals", this.injection)
  }

  private async toStream(dataset: Dataset, record: JsonRecord, line: string, eventMicros: EpochMicros) {
    const random = this.injection
    const spool = dataset === "transactions" ? this.writers.streamTransactions : this.writers.streamSignals
    const counts = this.stream[dataset]
    let arrival = eventMicros + Math.floor(random.exponential(1.5 * second))
    if (random.chance(0.08)) arrival += Math.floor(random.uniform(5 * second, 3 * minute))
    if (random.chance(0.01)) {
      arrival += Math.floor(random.uniform(hour, 8 * hour))
      this.lateEvents++
    }
    await spool.add(arrival, line)
    counts.valid++
    counts.lines++
    if (random.chance(this.settings.duplicateShare)) {
      const delay = random.chance(0.3) ? random.uniform(hour, 30 * hour) : random.uniform(second, 10 * minute)
      await spool.add(arrival + Math.floor(delay), line)
      counts.duplicates++
      counts.lines++
    }
    if (random.chance(this.settings.invalidShare)) {
      await spool.add(
        arrival + Math.floor(random.uniform(0, 2 * second)),
        this.nextInvalidLine(dataset, record)
      )
      counts.invalid++
      counts.lines++
    }
  }

  private async toRaw(dataset: Dataset, record: JsonRecord, line: string, eventMicros: EpochMicros) {
    const random = this.injection
    const writer = dataset === "transactions" ? this.writers.rawTransactions : this.writers.rawSignals
    const counts = this.raw[dataset]
    const dt = utcDate(eventMicros)
    await writer.write(dt, line)
    counts.valid++
    counts.lines++
    if (random.chance(this.settings.duplicateShare)) {
      await writer.write(random.chance(0.4) ? utcDate(eventMicros + day) : dt, line)
      counts.duplicates++
      counts.lines++
    }
    if (random.chance(this.settings.invalidShare)) {
      await writer.write(dt, this.nextInvalidLine(dataset, record))
      counts.invalid++
      counts.lines++
    }
  }

  /** Closes the raw files (adding one empty part) and writes the stream files in arrival order. */
  async finishFiles(): Promise<ReadonlyArray<RawFileInfo>> {
    await this.writers.rawTransactions.writeEmptyPart(utcDate(this.settings.startMicros))
    const transactionFiles = await this.writers.rawTransactions.close()
    const signalFiles = await this.writers.rawSignals.close()
    const streamDirectory = NodePath.join(this.settings.outDir, "stream")
    await NodeFsPromises.mkdir(streamDirectory, { recursive: true })
    for (const [name, spool] of [
      ["transactions.jsonl", this.writers.streamTransactions],
      ["fraud_signals.jsonl", this.writers.streamSignals]
    ] as const) {
      const sink = new LineSink(NodePath.join(streamDirectory, name), false)
      await spool.drainTo(sink)
      await sink.close()
    }
    await NodeFsPromises.rm(this.writers.spoolDirectory, { recursive: true, force: true })
    return [...transactionFiles, ...signalFiles]
  }

  summary(files: ReadonlyArray<RawFileInfo>, dimensions: DimensionSummary): GenerateSummary {
    const { stream, raw, bothPaths } = this
    const sum = (pick: (counts: MutableLineCounts) => number) =>
      pick(stream.transactions) +
      pick(stream.fraud_signals) +
      pick(raw.transactions) +
      pick(raw.fraud_signals)
    return {
      seed: this.settings.seed,
      startTime: formatRfc3339(this.settings.startMicros, 0),
      days: this.settings.days,
      transactions: this.settings.transactions,
      events: stream.transactions.valid + raw.transactions.valid - bothPaths.transactions,
      signals: stream.fraud_signals.valid + raw.fraud_signals.valid - bothPaths.fraud_signals,
      orphanSignals: this.orphanSignals,
      fraudulentTransactions: this.fraudulent,
      confirmedFraudTransactions: this.confirmed,
      invalid: sum((counts) => counts.invalid),
      invalidByKind: { ...this.invalidByKind },
      duplicates: sum((counts) => counts.duplicates),
      users: this.referencedUsers.length,
      merchants: this.referencedMerchants.length,
      stream: {
        transactions: { ...stream.transactions },
        fraud_signals: { ...stream.fraud_signals },
        lateEvents: this.lateEvents
      },
      raw: {
        transactions: { ...raw.transactions },
        fraud_signals: { ...raw.fraud_signals },
        files: files.length,
        gzipFiles: files.filter((file) => file.gzip).length,
        emptyFiles: files.filter((file) => file.lines === 0).length
      },
      bothPaths: { ...bothPaths },
      dimensions
    }
  }
}

const attempt = <A>(
  stage: string,
  run: (signal: AbortSignal) => Promise<A>
): Effect.Effect<A, GenerateError> =>
  Effect.tryPromise({ try: run, catch: (cause) => new GenerateError({ stage, cause }) })

const clearOutputs = (outDir: string): Promise<void> =>
  Promise.all(
    ["raw", "stream", ".spool", "summary.json"].map((entry) =>
      NodeFsPromises.rm(NodePath.join(outDir, entry), { recursive: true, force: true })
    )
  ).then(() => NodeFsPromises.mkdir(outDir, { recursive: true }).then(() => undefined))

/**
 * Writes a seeded, realistic payments dataset under `options.outDir`: raw JSON Lines files (some gzip)
 * partitioned by UTC date, stream files in arrival order, user and merchant dimension snapshots, and
 * `summary.json`. Records are streamed to disk as they are generated, so memory grows only with the
 * number of users and merchants. The same options always produce byte-identical files.
 */
export const generateDataset = (options: GenerateOptions): Effect.Effect<GenerateSummary, GenerateError> =>
  Effect.gen(function* () {
    const settings = yield* resolveSettings(options)
    yield* attempt("prepare output directory", () => clearOutputs(settings.outDir))
    return yield* Effect.scoped(
      Effect.gen(function* () {
        const writers = yield* Effect.acquireRelease(
          Effect.sync(() => openWriters(settings)),
          (writers, exit) =>
            Exit.isSuccess(exit)
              ? Effect.void
              : Effect.promise(() => discardWriters(writers).catch(() => undefined))
        )
        const run = new DatasetRun(settings, writers)
        yield* attempt("write events", (signal) => run.writeEvents(signal))
        const files = yield* attempt("finish files", () => run.finishFiles())
        const dimensions = yield* attempt("write dimensions", () =>
          writeDimensions(
            NodePath.join(settings.outDir, "raw", "dimensions"),
            settings.seed,
            settings.startMicros,
            settings.days,
            run.referencedUsers,
            run.referencedMerchants
          )
        )
        const summary = run.summary(files, dimensions)
        yield* attempt("write summary", () =>
          NodeFsPromises.writeFile(
            NodePath.join(settings.outDir, "summary.json"),
            JSON.stringify(summary, null, 2) + "\n"
          )
        )
        return summary
      })
    )
  })
