import type * as Tf from "@tensorflow/tfjs"
import { Config, Context, Duration, Effect, Layer, Option, Schedule } from "effect"
import { isScreeningSignal, priorScreeningMaxScore } from "../domain/finalAggregate.js"
import type { IndexedTransaction } from "../domain/rows.js"
import type { EpochMicros } from "../domain/time.js"
import { ProcessedBucket } from "../layers/ObjectStore.js"
import { Tensorflow, type TfModule } from "../layers/Tensorflow.js"
import { ActivityTracker, type PastActivity } from "./train/activity.js"
import type { FeatureSpec, ScoringFacts } from "./train/features.js"
import { readPromotedPointer } from "./train/registry.js"
import { disposeFraudModel, type LoadedFraudModel, loadFraudModel, predictFacts } from "./train.js"

const dayMicros = 86_400_000_000

/** The fields of a transaction event live scoring reads. */
export type ScoringEvent = Pick<
  IndexedTransaction,
  | "transaction_id"
  | "user_id"
  | "device_id"
  | "event_time"
  | "status"
  | "sequence"
  | "amount_minor"
  | "currency"
>

/** A transaction as live scoring knows it: its earliest event so far and its past activity. */
export interface SeenTransaction {
  firstEventTime: EpochMicros
  firstAmountMinor: number
  firstCurrency: string
  deviceId: string | null
  activity: PastActivity
  /** Counted in the activity of later transactions (its opening event was seen). */
  recorded: boolean
}

/** An event that opens a transaction: its first state (sequence 0, or authorized/declined). */
const opensTransaction = (event: Pick<ScoringEvent, "status" | "sequence">): boolean =>
  event.sequence === 0 || event.status === "authorized" || event.status === "declined"

const evictEveryMicros = 60_000_000

/**
 * The stream's side of the fraud features, computed the way training computes them from final_aggregate:
 * amount, currency and device of a transaction's earliest event, its past activity taken at that time
 * (a transaction counts for later ones once its opening event is seen; a later lifecycle event of a
 * transaction no longer in memory reads the activity without adding to it), and the prior signal score
 * from non-label signals timed at or before that time that arrived no later than the micro-batch of the
 * transaction (topics are not ordered against each other). Delivered in time order this gives exactly the
 * offline features. State older than the watermark by more than the windows is evicted.
 */
export class LiveScoringState {
  private readonly tracker = new ActivityTracker()
  private readonly seen = new Map<string, SeenTransaction>()
  private readonly screening = new Map<string, Array<readonly [EpochMicros, number]>>()
  private lastEviction = Number.NEGATIVE_INFINITY

  /** Records a signal; only non-label sources (rules, model, partner, not confirmed) are kept. */
  observeSignal(signal: {
    readonly transaction_id: string
    readonly event_time: EpochMicros
    readonly source: string
    readonly score: number
    readonly confirmed_fraud?: boolean | undefined
  }): void {
    if (!isScreeningSignal({ source: signal.source, confirmed_fraud: signal.confirmed_fraud ?? null })) return
    const list = this.screening.get(signal.transaction_id) ?? []
    list.push([signal.event_time, signal.score])
    this.screening.set(signal.transaction_id, list)
  }

  /** Records a transaction event and returns what is known of its transaction. */
  observeTransaction(event: ScoringEvent): SeenTransaction {
    const key = (time: EpochMicros) => ({
      user_id: event.user_id,
      device_id: event.device_id,
      first_event_time: time
    })
    const opening = opensTransaction(event)
    let seen = this.seen.get(event.transaction_id)
    if (seen === undefined) {
      seen = {
        firstEventTime: event.event_time,
        firstAmountMinor: event.amount_minor,
        firstCurrency: event.currency,
        deviceId: event.device_id,
        activity: opening
          ? this.tracker.observe(key(event.event_time))
          : this.tracker.activityAt(key(event.event_time)),
        recorded: opening
      }
      this.seen.set(event.transaction_id, seen)
      return seen
    }
    if (event.event_time < seen.firstEventTime) {
      seen.firstEventTime = event.event_time
      seen.firstAmountMinor = event.amount_minor
      seen.firstCurrency = event.currency
      seen.deviceId = event.device_id
    }
    if (opening && !seen.recorded) {
      seen.activity = this.tracker.observe(key(event.event_time))
      seen.recorded = true
    }
    return seen
  }

  /** The scoring facts of an indexed transaction event (its dimension columns already joined). */
  factsFor(row: IndexedTransaction): ScoringFacts {
    const seen = this.observeTransaction(row)
    return {
      first_amount_minor: seen.firstAmountMinor,
      first_currency: seen.firstCurrency,
      merchant_id: row.merchant_id,
      payment_method: row.payment_method,
      card_bin: row.card_bin,
      country: row.country,
      first_event_time: seen.firstEventTime,
      user_country: row.user_country,
      user_kyc_level: row.user_kyc_level,
      user_risk_tier: row.user_risk_tier,
      user_created_at: row.user_created_at,
      merchant_mcc: row.merchant_mcc,
      merchant_risk_level: row.merchant_risk_level,
      user_id: row.user_id,
      device_id: seen.deviceId,
      // Without its opening event the transaction's start is unknown: no signal can be called prior.
      fraud_prior_signal_max_score: seen.recorded
        ? priorScreeningMaxScore(this.screening.get(row.transaction_id) ?? [], seen.firstEventTime)
        : null,
      ...seen.activity
    }
  }

  /** Drops what no window can reach any more, given the event-time watermark (at most once a minute). */
  evict(watermark: EpochMicros): void {
    if (!Number.isFinite(watermark) || watermark - this.lastEviction < evictEveryMicros) return
    this.lastEviction = watermark
    this.tracker.evictBefore(watermark)
    const horizon = watermark - dayMicros
    for (const [id, seen] of this.seen) if (seen.firstEventTime < horizon) this.seen.delete(id)
    for (const [id, signals] of this.screening)
      if (signals.every(([time]) => time < horizon)) this.screening.delete(id)
  }

  /** Entries held: activity keys, seen transactions and transactions with signals. */
  get size(): number {
    return this.tracker.size + this.seen.size + this.screening.size
  }
}

/** The promoted model as live scoring holds it. */
export interface ActiveModel {
  readonly version: string
  readonly model: Tf.LayersModel
  readonly featureSpec: FeatureSpec
}

/** Fraud probabilities for a batch of facts in one predict call. */
export const scoreFacts = (
  tf: TfModule,
  active: ActiveModel,
  facts: ReadonlyArray<ScoringFacts>
): Float32Array => predictFacts(tf, active.model, active.featureSpec, facts)

/** Scores of a batch and the model version that produced them. */
export interface ScoredBatch {
  readonly version: string
  readonly scores: Float32Array
}

/** Live scoring: the promoted model, reloaded when the pointer moves, and the batch scorer. */
export interface FraudScoringService {
  /** The version in use now; none until a model is promoted. */
  readonly activeVersion: Effect.Effect<Option.Option<string>>
  /**
   * Scores facts with the model in use, in one synchronous step (a swap cannot free the model midway);
   * none when no model is promoted. Throws what tfjs throws.
   */
  readonly scoreBatch: (
    facts: ReadonlyArray<ScoringFacts>
  ) => Effect.Effect<Option.Option<ScoredBatch>, unknown>
  /** Checks the promoted pointer once and swaps the model when it moved. */
  readonly refresh: Effect.Effect<void>
}

/** How often the promoted pointer is checked: `RECON_MODEL_REFRESH_MS`, default 30 s. */
export const modelRefreshConfig = Config.integer("RECON_MODEL_REFRESH_MS").pipe(
  Config.map(Duration.millis),
  Config.withDefault(Duration.seconds(30))
)

const toActive = (loaded: LoadedFraudModel): ActiveModel => ({
  version: loaded.version,
  model: loaded.model,
  featureSpec: loaded.featureSpec
})

const makeFraudScoring = (refreshEvery: Duration.DurationInput) =>
  Effect.gen(function* () {
    const { tf } = yield* Tensorflow
    const store = yield* ProcessedBucket
    const context = yield* Effect.context<ProcessedBucket | Tensorflow>()
    const holder: { current: ActiveModel | undefined } = { current: undefined }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        if (holder.current !== undefined) disposeFraudModel(holder.current.model)
        holder.current = undefined
      })
    )
    const refresh: Effect.Effect<void> = Effect.gen(function* () {
      const pointer = yield* readPromotedPointer(store)
      if (Option.isNone(pointer) || holder.current?.version === pointer.value.version) return
      const loaded = toActive(yield* loadFraudModel(pointer.value.version).pipe(Effect.provide(context)))
      const previous = yield* Effect.sync(() => {
        const replaced = holder.current
        holder.current = loaded
        if (replaced !== undefined) disposeFraudModel(replaced.model)
        return replaced?.version ?? "none"
      })
      yield* Effect.logInfo("live scoring switched model").pipe(
        Effect.annotateLogs({ version: loaded.version, previous })
      )
    }).pipe(
      Effect.catchAll((error) =>
        Effect.logWarning(`model refresh failed; keeping the current model: ${error.message}`)
      )
    )
    yield* refresh
    yield* refresh.pipe(Effect.schedule(Schedule.spaced(refreshEvery)), Effect.forkScoped)
    const service: FraudScoringService = {
      activeVersion: Effect.sync(() => Option.fromNullable(holder.current?.version)),
      scoreBatch: (facts) =>
        Effect.try(() => {
          const active = holder.current
          return active === undefined
            ? Option.none()
            : Option.some({ version: active.version, scores: scoreFacts(tf, active, facts) })
        }),
      refresh
    }
    return service
  })

/**
 * Live fraud scoring for the streaming index. `layer` loads the promoted model (`models/promoted.json`)
 * and checks the pointer every `RECON_MODEL_REFRESH_MS`, switching models without a restart.
 */
export class FraudScoring extends Context.Tag("FraudScoring")<FraudScoring, FraudScoringService>() {
  static readonly layer = (
    refreshEvery: Duration.DurationInput
  ): Layer.Layer<FraudScoring, never, ProcessedBucket | Tensorflow> =>
    Layer.scoped(FraudScoring, makeFraudScoring(refreshEvery))

  static readonly layerConfig: Layer.Layer<FraudScoring, never, ProcessedBucket | Tensorflow> =
    Layer.unwrapEffect(Effect.map(Effect.orDie(modelRefreshConfig), FraudScoring.layer))

  /** Scoring that never has a model: rows keep a null model_score. */
  static readonly disabled: Layer.Layer<FraudScoring> = Layer.succeed(FraudScoring, {
    activeVersion: Effect.succeed(Option.none()),
    scoreBatch: () => Effect.succeed(Option.none()),
    refresh: Effect.void
  })

  /**
   * For services: {@link layerConfig} on {@link Tensorflow.layer}, or {@link disabled} when
   * `RECON_LIVE_SCORING=false` or tfjs cannot load (logged), so indexing never waits on the model.
   */
  static readonly layerForService: Layer.Layer<FraudScoring, never, ProcessedBucket> = Layer.unwrapEffect(
    Effect.map(
      Effect.orDie(Config.boolean("RECON_LIVE_SCORING").pipe(Config.withDefault(true))),
      (enabled) =>
        enabled
          ? FraudScoring.layerConfig.pipe(
              Layer.provide(Tensorflow.layer),
              Layer.catchAll((error) =>
                Layer.effectDiscard(Effect.logWarning(`live scoring is off: ${error.message}`)).pipe(
                  Layer.provideMerge(FraudScoring.disabled)
                )
              )
            )
          : FraudScoring.disabled
    )
  )
}
