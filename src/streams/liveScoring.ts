import type * as Tf from "@tensorflow/tfjs"
import { Config, Context, Duration, Effect, Layer, Option, Ref, Schedule } from "effect"
import { isScreeningSignal, priorScreeningMaxScore } from "../domain/finalAggregate.js"
import type { IndexedTransaction } from "../domain/rows.js"
import type { EpochMicros } from "../domain/time.js"
import { ProcessedBucket } from "../layers/ObjectStore.js"
import { Tensorflow, type TfModule } from "../layers/Tensorflow.js"
import { ActivityTracker, type PastActivity } from "./train/activity.js"
import { type FeatureSpec, featureMatrix, type ScoringFacts } from "./train/features.js"
import { readPromotedPointer } from "./train/registry.js"
import { disposeFraudModel, type LoadedFraudModel, loadFraudModel } from "./train.js"

const dayMicros = 86_400_000_000

/** A transaction as live scoring first saw it. */
export interface SeenTransaction {
  readonly firstEventTime: EpochMicros
  readonly activity: PastActivity
}

/**
 * The stream's side of the fraud features, computed the way training computes them from final_aggregate:
 * a transaction's past activity is taken when it is first seen (its first event's time), and the prior
 * signal score from non-label signals timed at or before that time that arrived no later than the micro-batch of the transaction (topics are not ordered against each other). Delivered
 * in time order this gives exactly the offline features; out of order, a transaction only counts the
 * others that arrived before it. State older than the watermark by more than the windows is evicted.
 */
export class LiveScoringState {
  private readonly tracker = new ActivityTracker()
  private readonly seen = new Map<string, SeenTransaction>()
  private readonly screening = new Map<string, Array<readonly [EpochMicros, number]>>()

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

  /** Records a transaction event's activity (when its transaction is first seen) and returns what was kept. */
  observeTransaction(
    row: Pick<IndexedTransaction, "transaction_id" | "user_id" | "device_id" | "event_time">
  ): SeenTransaction {
    let seen = this.seen.get(row.transaction_id)
    if (seen === undefined) {
      seen = {
        firstEventTime: row.event_time,
        activity: this.tracker.observe({
          user_id: row.user_id,
          device_id: row.device_id,
          first_event_time: row.event_time
        })
      }
      this.seen.set(row.transaction_id, seen)
    }
    return seen
  }

  /** The scoring facts of an indexed transaction event (its dimension columns already joined). */
  factsFor(row: IndexedTransaction): ScoringFacts {
    const seen = this.observeTransaction(row)
    return {
      amount_minor: row.amount_minor,
      currency: row.currency,
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
      device_id: row.device_id,
      fraud_prior_signal_max_score: priorScreeningMaxScore(
        this.screening.get(row.transaction_id) ?? [],
        seen.firstEventTime
      ),
      ...seen.activity
    }
  }

  /** Drops what no window can reach any more, given the event-time watermark. */
  evict(watermark: EpochMicros): void {
    if (!Number.isFinite(watermark)) return
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
): Float32Array => {
  const width = active.featureSpec.featureNames.length
  if (facts.length === 0) return new Float32Array(0)
  const matrix = featureMatrix(facts, active.featureSpec)
  return tf.tidy(
    () =>
      (
        active.model.predict(tf.tensor2d(matrix, [facts.length, width]), { batchSize: 4096 }) as Tf.Tensor
      ).dataSync() as Float32Array
  )
}

/** Live scoring: the promoted model, reloaded when the pointer moves, and the batch scorer. */
export interface FraudScoringService {
  /** The model in use now; none until a model is promoted. */
  readonly active: Effect.Effect<Option.Option<ActiveModel>>
  /** Scores facts with a model (synchronous, one predict call). */
  readonly score: (active: ActiveModel, facts: ReadonlyArray<ScoringFacts>) => Float32Array
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
    const current = yield* Ref.make(Option.none<ActiveModel>())
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(Ref.get(current), (active) =>
        Effect.sync(() => Option.map(active, (model) => disposeFraudModel(model.model)))
      )
    )
    const refresh: Effect.Effect<void> = Effect.gen(function* () {
      const pointer = yield* readPromotedPointer(store)
      if (Option.isNone(pointer)) return
      const active = yield* Ref.get(current)
      if (Option.isSome(active) && active.value.version === pointer.value.version) return
      const loaded = yield* loadFraudModel(pointer.value.version).pipe(Effect.provide(context))
      const previous = yield* Ref.getAndSet(current, Option.some(toActive(loaded)))
      Option.map(previous, (model) => disposeFraudModel(model.model))
      yield* Effect.logInfo("live scoring switched model").pipe(
        Effect.annotateLogs({
          version: loaded.version,
          previous: Option.getOrElse(
            Option.map(previous, (m) => m.version),
            () => "none"
          )
        })
      )
    }).pipe(
      Effect.catchAll((error) =>
        Effect.logWarning(`model refresh failed; keeping the current model: ${error.message}`)
      )
    )
    yield* refresh
    yield* refresh.pipe(Effect.schedule(Schedule.spaced(refreshEvery)), Effect.forkScoped)
    const service: FraudScoringService = {
      active: Ref.get(current),
      score: (active, facts) => scoreFacts(tf, active, facts),
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
    active: Effect.succeed(Option.none()),
    score: () => new Float32Array(0),
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
