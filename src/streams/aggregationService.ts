import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { type Duration, Effect, Layer, Option, Ref, Schedule } from "effect"
import { currencyExponent } from "../domain/currency.js"
import type { DuckDb } from "../layers/DuckDb.js"
import type { KeyValueStore } from "../layers/KeyValueStore.js"
import { ProcessedBucket } from "../layers/ObjectStore.js"
import type { Parquet } from "../layers/ParquetCodec.js"
import { aggregateMerchantTotals, readCurrentAggregation } from "./aggregate.js"
import { dashboardHtml } from "./dashboard.js"
import { reconPanel } from "./reconcile.js"
import { readCommittedBatches } from "./streamingIndex.js"

/** How often the service refreshes, and how it aggregates. */
export interface AggregationServiceOptions {
  readonly interval: Duration.DurationInput
  readonly salts?: number
}

/** What the last refresh saw; the dashboard shows it as freshness. */
interface RefreshState {
  readonly streamingCommittedAt: string | null
  readonly lastError: string | null
}

/**
 * Refreshes the aggregation now and then every `interval` (a failed refresh is logged and the previous
 * version stays published), remembering when the streaming index last committed.
 */
const refreshLoop = (options: AggregationServiceOptions, state: Ref.Ref<RefreshState>) =>
  Effect.gen(function* () {
    const processed = yield* ProcessedBucket
    const refresh = Effect.gen(function* () {
      const started = Date.now()
      const summary = yield* aggregateMerchantTotals(
        options.salts === undefined ? {} : { salts: options.salts }
      )
      const batches = yield* readCommittedBatches(processed)
      yield* Ref.set(state, { streamingCommittedAt: batches.at(-1)?.committed_at ?? null, lastError: null })
      yield* Effect.logInfo("aggregation refreshed").pipe(
        Effect.annotateLogs({ ...summary, durationMs: Date.now() - started })
      )
    }).pipe(
      Effect.catchAll((error) =>
        Effect.zipRight(
          Ref.update(state, (current) => ({ ...current, lastError: error.message })),
          Effect.logWarning("aggregation refresh failed; the previous version stays published").pipe(
            Effect.annotateLogs({ error: error.message })
          )
        )
      )
    )
    yield* refresh.pipe(Effect.repeat(Schedule.spaced(options.interval)))
  })

/**
 * The dashboard's routes: `GET /` the page, `GET /api/aggregation` the published version (404 before the
 * first), `GET /api/recon` the reconciliation's break counts and amounts by type (404 before the first
 * run), `GET /healthz`.
 */
export const aggregationRouter = (state: Ref.Ref<RefreshState>) =>
  HttpRouter.empty.pipe(
    HttpRouter.get("/", HttpServerResponse.html(dashboardHtml)),
    HttpRouter.get("/healthz", HttpServerResponse.text("ok\n")),
    HttpRouter.get(
      "/api/recon",
      Effect.gen(function* () {
        const panel = yield* reconPanel(yield* ProcessedBucket)
        if (Option.isNone(panel))
          return yield* HttpServerResponse.json({ error: "no reconciliation run yet" }, { status: 404 })
        const currencies = new Set(panel.value.by_type.flatMap((row) => Object.keys(row.amount_minor)))
        return yield* HttpServerResponse.json({
          ...panel.value,
          currency_exponents: Object.fromEntries(
            [...currencies].map((code) => [code, currencyExponent(code)])
          )
        })
      }).pipe(
        Effect.catchAll((error) =>
          HttpServerResponse.json(
            {
              error: `cannot read the reconciliation: ${error._tag === "HttpBodyError" ? "encoding failed" : error.message}`
            },
            { status: 503 }
          )
        )
      )
    ),
    HttpRouter.get(
      "/api/aggregation",
      Effect.gen(function* () {
        const current = yield* readCurrentAggregation()
        const refreshState = yield* Ref.get(state)
        if (Option.isNone(current)) {
          return yield* HttpServerResponse.json({ error: "no aggregation published yet" }, { status: 404 })
        }
        const currencies = new Set([
          ...Object.keys(current.value.global.volume_minor),
          ...Object.keys(current.value.global.stream_since_snapshot.volume_minor)
        ])
        return yield* HttpServerResponse.json({
          ...current.value,
          currency_exponents: Object.fromEntries(
            [...currencies].map((code) => [code, currencyExponent(code)])
          ),
          streaming_committed_at: refreshState.streamingCommittedAt,
          last_refresh_error: refreshState.lastError
        })
      }).pipe(
        Effect.catchAll((error) =>
          HttpServerResponse.json(
            {
              error: `cannot read the aggregation: ${error._tag === "HttpBodyError" ? "encoding failed" : error.message}`
            },
            { status: 503 }
          )
        )
      )
    )
  )

/** The aggregation service: refresh loop plus dashboard server; needs an `HttpServer`. */
export const aggregationServiceLayer = (
  options: AggregationServiceOptions
): Layer.Layer<
  never,
  never,
  HttpServer.HttpServer | ProcessedBucket | Parquet | KeyValueStore.KeyValueStore | DuckDb
> =>
  Layer.unwrapScoped(
    Effect.gen(function* () {
      const state = yield* Ref.make<RefreshState>({ streamingCommittedAt: null, lastError: null })
      yield* Effect.forkScoped(refreshLoop(options, state))
      return HttpServer.serve(aggregationRouter(state))
    })
  )
