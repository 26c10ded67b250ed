import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import { Effect, Option } from "effect"
import { aggregateMerchantTotals, readCurrentAggregation } from "./aggregate.js"
import { runBatchIndex } from "./batchIndex.js"
import { runFinalAggregate } from "./finalAggregate.js"
import { generateDataset } from "./generate.js"
import { reconcileRange, writeGeneratedSettlements } from "./generateSettlements.js"
import { runBatchIngest, runStreamIngest } from "./ingest.js"
import { runReconcile } from "./reconcile.js"
import { registerFinalAggregateView, runReadyQuery, runSql } from "./sql.js"
import { runStreamingIndex } from "./streamingIndex.js"
import { trainFraudModel } from "./train.js"

/** Options of the whole flow on embedded layers. */
export interface EndToEndOptions {
  /** Where the generator writes producer files (wiped first). */
  readonly generatedDir: string
  readonly transactions: number
  readonly seed: number
  readonly trainEpochs?: number
}

/**
 * The whole system once, stage after stage: generate → batch ingest (raw/) → stream ingest (event log)
 * → streaming index → batch index → final aggregate → SQL sample → merchant aggregation → fraud model →
 * settlement reports generated for the index (with injected breaks) and reconciled against it.
 * Returns every stage's figures for the summary.
 */
export const runEndToEnd = (options: EndToEndOptions) =>
  Effect.gen(function* () {
    yield* Effect.promise(() => NodeFs.rm(options.generatedDir, { recursive: true, force: true }))
    yield* Effect.logInfo(`generating ${options.transactions} transactions (seed ${options.seed})`)
    const generated = yield* generateDataset({
      outDir: options.generatedDir,
      transactions: options.transactions,
      seed: options.seed
    })
    const batchIngest = yield* runBatchIngest(options.generatedDir)
    const streamIngest = yield* runStreamIngest(options.generatedDir)
    yield* Effect.logInfo("streaming index: consuming the event log")
    const streaming = yield* runStreamingIndex({ stopAtEnd: true })
    yield* Effect.logInfo("batch index: reading raw/")
    const batch = yield* runBatchIndex
    yield* Effect.logInfo("final aggregate: merging the indexes")
    const final = yield* runFinalAggregate
    const sql = yield* Effect.scoped(
      Effect.gen(function* () {
        yield* registerFinalAggregateView()
        const statusCounts = yield* runReadyQuery("volume_by_status_currency")
        const check = yield* runSql(
          "SELECT count(*) AS row_count, count(DISTINCT transaction_id) AS transaction_ids FROM final_aggregate"
        )
        return { statusCounts, check: check[0] ?? {} }
      })
    )
    yield* Effect.logInfo("aggregation: merchant totals to the key-value store")
    const aggregation = yield* aggregateMerchantTotals()
    const current = yield* readCurrentAggregation()
    yield* Effect.logInfo("training the fraud model")
    const model = yield* trainFraudModel(
      options.trainEpochs === undefined ? {} : { epochs: options.trainEpochs }
    )
    yield* Effect.logInfo("reconciliation: generated settlement reports against the index")
    const settlements = yield* writeGeneratedSettlements({ seed: options.seed })
    const reconciliation = yield* runReconcile(reconcileRange(settlements))
    return {
      generated,
      batchIngest,
      streamIngest,
      streaming,
      batch,
      final,
      sql,
      aggregation,
      topMerchants: Option.match(current, {
        onNone: () => [],
        onSome: (value) => value.merchants.slice(0, 3)
      }),
      model,
      settlements: {
        files: settlements.files.length,
        lines: settlements.lines,
        badRows: settlements.badRows,
        injectedBreaks: settlements.breaks.length
      },
      reconciliation,
      generatedDir: NodePath.resolve(options.generatedDir)
    }
  })

/** What {@link runEndToEnd} returns. */
export type EndToEndReport = Effect.Effect.Success<ReturnType<typeof runEndToEnd>>
