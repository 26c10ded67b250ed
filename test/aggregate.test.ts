import * as NodeFs from "node:fs/promises"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, TestClock } from "effect"
import { currencyExponent } from "../src/domain/currency.js"
import { type FinalAggregateRow, finalAggregateSchema } from "../src/domain/rows.js"
import { DuckDb } from "../src/layers/DuckDb.js"
import { KeyValueStore, layerMemory } from "../src/layers/KeyValueStore.js"
import { ProcessedBucket } from "../src/layers/ObjectStore.js"
import { Parquet } from "../src/layers/ParquetCodec.js"
import {
  AggregationError,
  aggregateMerchantTotals,
  aggregationKeys,
  computeAggregation,
  hourlyWindow,
  readCurrentAggregation,
  saltOf
} from "../src/streams/aggregate.js"
import { prefixes, readFinalAggregate, writeManifest } from "../src/streams/datasets.js"
import { registerFinalAggregateView, runSql } from "../src/streams/sql.js"
import { groupBy, makeRows, toTableRow } from "./support/finalAggregateRows.js"

/** Writes one file per dt named after the version and commits exactly those files. */
const commitFinalAggregate = (rows: ReadonlyArray<FinalAggregateRow>, version: string) =>
  Effect.gen(function* () {
    const store = yield* ProcessedBucket
    const codec = yield* Parquet
    const files: Array<{ key: string; dt: string; rows: number }> = []
    for (const [dt, part] of [...groupBy(rows, (row) => row.dt)].sort(([a], [b]) => a.localeCompare(b))) {
      const key = `${prefixes.finalAggregate}dt=${dt}/part-${version}.parquet`
      yield* store.put(key, yield* codec.encode(finalAggregateSchema, part.map(toTableRow)))
      files.push({ key, dt, rows: part.length })
    }
    yield* writeManifest(store, prefixes.finalAggregate, {
      dataset: "final_aggregate",
      version,
      committed_at: "2026-11-25T00:00:00Z",
      files
    })
  })

const temporaryDirectory = Effect.acquireRelease(
  Effect.promise(() => NodeFs.mkdtemp(NodePath.join(NodeOs.tmpdir(), "aggregate-test-"))),
  (directory) => Effect.promise(() => NodeFs.rm(directory, { recursive: true, force: true }))
)

const rowsV1 = makeRows(7, 240, "tx")
const rowsV2 = makeRows(11, 180, "tx2").map((row) =>
  row.merchant_id === "m-unknown" ? { ...row, merchant_id: "m-new" } : row
)

const bucketLayers = (directory: string) =>
  Layer.mergeAll(ProcessedBucket.layerLocal(directory), Parquet.layer(), DuckDb.layer)

/** The per-merchant and global figures, computed by DuckDB over the committed files. */
const figuresBySql = Effect.gen(function* () {
  const merchantRows = yield* runSql(`SELECT merchant_id, any_value(merchant_name) AS merchant_name,
      any_value(merchant_risk_level) AS merchant_risk_level, count(*) AS transaction_count,
      count(refunded_at) AS refunded_count, count(chargeback_at) AS chargeback_count,
      count_if(confirmed_fraud) AS confirmed_fraud_count, count(refunded_at) / count(*) AS refund_rate,
      count(chargeback_at) / count(*) AS chargeback_rate, count_if(confirmed_fraud) / count(*) AS confirmed_fraud_rate,
      max(fraud_max_score) AS max_fraud_score, epoch_us(max(last_event_time)) AS last_event_time
    FROM final_aggregate GROUP BY merchant_id`)
  const volumes = yield* runSql(`SELECT merchant_id, currency, sum(amount_minor) AS volume,
      sum(amount_minor) FILTER (WHERE status IN ('captured', 'settled')) AS captured
    FROM final_aggregate GROUP BY merchant_id, currency`)
  const merchants = new Map(
    merchantRows.map((row) => {
      const id = String(row["merchant_id"])
      const own = volumes.filter((volume) => volume["merchant_id"] === id)
      return [
        id,
        {
          merchant_id: id,
          merchant_name: row["merchant_name"],
          merchant_risk_level: row["merchant_risk_level"],
          transaction_count: Number(row["transaction_count"]),
          volume_minor: Object.fromEntries(own.map((volume) => [volume["currency"], volume["volume"]])),
          captured_volume_minor: Object.fromEntries(
            own
              .filter((volume) => volume["captured"] !== null)
              .map((volume) => [volume["currency"], volume["captured"]])
          ),
          refunded_count: Number(row["refunded_count"]),
          chargeback_count: Number(row["chargeback_count"]),
          confirmed_fraud_count: Number(row["confirmed_fraud_count"]),
          refund_rate: row["refund_rate"],
          chargeback_rate: row["chargeback_rate"],
          confirmed_fraud_rate: row["confirmed_fraud_rate"],
          max_fraud_score: row["max_fraud_score"],
          last_event_time: Number(row["last_event_time"])
        }
      ]
    })
  )
  const currencyTotals = yield* runSql(`SELECT currency, sum(amount_minor) AS volume,
      sum(amount_minor) FILTER (WHERE status IN ('captured', 'settled')) AS captured
    FROM final_aggregate GROUP BY currency`)
  const statusCounts = yield* runSql("SELECT status, count(*) AS n FROM final_aggregate GROUP BY status")
  const overall = yield* runSql(
    `SELECT count(*) AS n, count(DISTINCT merchant_id) AS merchants, epoch_us(max(last_event_time)) AS freshest,
      count(refunded_at) / count(*) AS refund_rate, count(chargeback_at) / count(*) AS chargeback_rate,
      count_if(confirmed_fraud) / count(*) AS confirmed_fraud_rate FROM final_aggregate`
  )
  const hours = yield* runSql(
    `SELECT strftime(date_trunc('hour', first_event_time AT TIME ZONE 'UTC'), '%Y-%m-%dT%H:00:00.000Z') AS hour,
      count(*) AS n, count_if(confirmed_fraud) AS fraud FROM final_aggregate GROUP BY 1 ORDER BY 1`
  )
  const hourVolumes = yield* runSql(
    `SELECT strftime(date_trunc('hour', first_event_time AT TIME ZONE 'UTC'), '%Y-%m-%dT%H:00:00.000Z') AS hour,
      currency, sum(amount_minor) AS volume FROM final_aggregate GROUP BY 1, 2`
  )
  return {
    merchants,
    global: {
      transaction_count: Number(overall[0]?.["n"]),
      merchant_count: Number(overall[0]?.["merchants"]),
      volume_minor: Object.fromEntries(currencyTotals.map((row) => [row["currency"], row["volume"]])),
      captured_volume_minor: Object.fromEntries(
        currencyTotals
          .filter((row) => row["captured"] !== null)
          .map((row) => [row["currency"], row["captured"]])
      ),
      status_counts: Object.fromEntries(statusCounts.map((row) => [row["status"], Number(row["n"])])),
      max_last_event_time: Number(overall[0]?.["freshest"]),
      refund_rate: Number(overall[0]?.["refund_rate"]),
      chargeback_rate: Number(overall[0]?.["chargeback_rate"]),
      confirmed_fraud_rate: Number(overall[0]?.["confirmed_fraud_rate"]),
      stream_since_snapshot: {
        streaming_batches: 0,
        events: 0,
        transactions: 0,
        volume_minor: {},
        newest_event_time_iso: null,
        merchants: []
      },
      hourly: hours.slice(-hourlyWindow).map((row) => ({
        hour: String(row["hour"]),
        transaction_count: Number(row["n"]),
        volume_minor: Object.fromEntries(
          hourVolumes
            .filter((volume) => volume["hour"] === row["hour"])
            .sort((a, b) => String(a["currency"]).localeCompare(String(b["currency"])))
            .map((volume) => [volume["currency"], volume["volume"]])
        ),
        confirmed_fraud_count: Number(row["fraud"])
      }))
    }
  }
})

/** Captured volume in major units without FX, scaled to four decimals: the documented ranking key. */
const rankingKey = (captured: Readonly<Record<string, unknown>>): bigint =>
  Object.entries(captured).reduce(
    (sum, [currency, amount]) => sum + BigInt(String(amount)) * 10n ** BigInt(4 - currencyExponent(currency)),
    0n
  )

const aggregationKeysOf = (version: string, merchantIds: ReadonlyArray<string>) => [
  aggregationKeys.global(version),
  aggregationKeys.merchants(version),
  ...merchantIds.map((id) => aggregationKeys.merchant(version, id))
]

describe("aggregateMerchantTotals", () => {
  it.scoped("publishes per-merchant and global figures equal to DuckDB SQL over the same files", () =>
    Effect.gen(function* () {
      const directory = yield* temporaryDirectory
      yield* Effect.gen(function* () {
        yield* commitFinalAggregate(rowsV1, "v1")
        const summary = yield* aggregateMerchantTotals({ version: "v1", salts: 8 })
        assert.strictEqual(summary.version, "v1")
        assert.strictEqual(summary.previousVersion, null)
        assert.strictEqual(summary.transactions, rowsV1.length)
        const current = Option.getOrThrow(yield* readCurrentAggregation())
        yield* registerFinalAggregateView()
        const expected = yield* figuresBySql

        assert.strictEqual(current.version, "v1")
        assert.strictEqual(current.merchants.length, expected.merchants.size)
        for (const merchant of current.merchants) {
          assert.deepStrictEqual(merchant, expected.merchants.get(merchant.merchant_id), merchant.merchant_id)
        }
        const { version, computed_at, max_last_event_time_iso, ...globalFigures } = current.global
        assert.strictEqual(version, "v1")
        assert.strictEqual(computed_at, "1970-01-01T00:00:00.000Z")
        assert.isString(max_last_event_time_iso)
        assert.deepStrictEqual(globalFigures, expected.global)
        assert.isTrue(BigInt(current.global.volume_minor["JPY"] ?? "0") > BigInt(Number.MAX_SAFE_INTEGER))

        const ranking = [...expected.merchants.values()]
          .sort((a, b) => {
            const difference = rankingKey(b.captured_volume_minor) - rankingKey(a.captured_volume_minor)
            return difference !== 0n
              ? Number(difference > 0n) - Number(difference < 0n)
              : b.transaction_count - a.transaction_count || a.merchant_id.localeCompare(b.merchant_id)
          })
          .map((merchant) => merchant.merchant_id)
        assert.deepStrictEqual(
          current.merchants.map((merchant) => merchant.merchant_id),
          ranking
        )
      }).pipe(Effect.provide(Layer.mergeAll(bucketLayers(directory), layerMemory)))
    })
  )

  it.scoped("spreads a hot merchant over salted partials and combines them to the same totals", () =>
    Effect.gen(function* () {
      const directory = yield* temporaryDirectory
      yield* Effect.gen(function* () {
        yield* commitFinalAggregate(rowsV1, "v1")
        const rows = yield* readFinalAggregate(yield* ProcessedBucket, yield* Parquet)
        const unsalted = computeAggregation(rows, 1)
        const salted = computeAggregation(rows, 16)
        assert.strictEqual(unsalted.partialAggregates, unsalted.merchants.length)
        const hotSalts = new Set(
          rows.filter((row) => row.merchant_id === "m-hot").map((row) => saltOf(row.transaction_id, 16))
        )
        assert.strictEqual(hotSalts.size, 16)
        assert.isAbove(salted.partialAggregates, salted.merchants.length + 15)
        assert.deepStrictEqual(salted.merchants, unsalted.merchants)
        assert.deepStrictEqual(salted.global, unsalted.global)
      }).pipe(Effect.provide(bucketLayers(directory)))
    })
  )

  it.scoped(
    "the DuckDB engine publishes exactly the figures of the JS aggregator, hot merchant included",
    () =>
      Effect.gen(function* () {
        const directory = yield* temporaryDirectory
        yield* Effect.gen(function* () {
          yield* commitFinalAggregate(rowsV1, "v1")
          yield* aggregateMerchantTotals({ version: "by-js", engine: "js", salts: 16 })
          const byJs = Option.getOrThrow(yield* readCurrentAggregation())
          const duckSummary = yield* aggregateMerchantTotals({
            version: "by-duckdb",
            engine: "duckdb",
            salts: 16
          })
          const byDuckDb = Option.getOrThrow(yield* readCurrentAggregation())
          assert.strictEqual(byDuckDb.version, "by-duckdb")
          assert.isAbove(
            duckSummary.partialAggregates,
            byDuckDb.merchants.length + 15,
            "the hot merchant is salted"
          )
          assert.deepStrictEqual(byDuckDb.merchants, byJs.merchants)
          const { version: _jsVersion, computed_at: _jsAt, ...jsGlobal } = byJs.global
          const { version: _duckVersion, computed_at: _duckAt, ...duckGlobal } = byDuckDb.global
          assert.deepStrictEqual(duckGlobal, jsGlobal)
        }).pipe(Effect.provide(Layer.mergeAll(bucketLayers(directory), layerMemory)))
      })
  )

  it.scoped("a reader during a refresh sees the old set until the pointer swaps; the old keys then go", () =>
    Effect.gen(function* () {
      const directory = yield* temporaryDirectory
      const inner = yield* Effect.provide(KeyValueStore.KeyValueStore, layerMemory)
      const operations: Array<string> = []
      const readsBeforeSwap: Array<Option.Option<unknown>> = []
      const newKeysPresentBeforeSwap: Array<boolean> = []
      const spy = KeyValueStore.make({
        get: inner.get,
        getUint8Array: inner.getUint8Array,
        clear: inner.clear,
        size: inner.size,
        set: (key, value) =>
          Effect.gen(function* () {
            if (key === aggregationKeys.current && value === "v2") {
              readsBeforeSwap.push(
                yield* readCurrentAggregation().pipe(
                  Effect.provideService(KeyValueStore.KeyValueStore, inner),
                  Effect.orDie
                )
              )
              const ranking = yield* Effect.orDie(inner.get(aggregationKeys.merchants("v2")))
              const ids: ReadonlyArray<string> = JSON.parse(Option.getOrElse(ranking, () => "[]"))
              const present = yield* Effect.forEach(aggregationKeysOf("v2", ids), (k) =>
                Effect.orDie(inner.has(k))
              )
              newKeysPresentBeforeSwap.push(ids.length > 0 && present.every(Boolean))
            }
            operations.push(`set ${key}`)
            yield* inner.set(key, value)
          }),
        remove: (key) =>
          Effect.sync(() => operations.push(`remove ${key}`)).pipe(Effect.zipRight(inner.remove(key)))
      })
      yield* Effect.gen(function* () {
        yield* commitFinalAggregate(rowsV1, "v1")
        yield* aggregateMerchantTotals({ version: "v1" })
        const published = Option.getOrThrow(yield* readCurrentAggregation())

        yield* commitFinalAggregate(rowsV2, "v2")
        operations.length = 0
        const summary = yield* aggregateMerchantTotals({ version: "v2" })
        assert.deepStrictEqual(readsBeforeSwap, [Option.some(published)])
        assert.deepStrictEqual(newKeysPresentBeforeSwap, [true])

        const refreshed = Option.getOrThrow(yield* readCurrentAggregation())
        assert.strictEqual(refreshed.version, "v2")
        assert.strictEqual(refreshed.global.transaction_count, rowsV2.length)
        assert.notDeepEqual(refreshed.merchants, published.merchants)

        const oldIds = published.merchants.map((merchant) => merchant.merchant_id)
        assert.include(oldIds, "m-unknown")
        for (const key of aggregationKeysOf("v1", oldIds)) {
          assert.isFalse(yield* inner.has(key), key)
        }
        assert.strictEqual(summary.previousVersion, "v1")
        assert.strictEqual(summary.keysDeleted, oldIds.length + 2)
        assert.strictEqual(yield* inner.size, refreshed.merchants.length + 3)

        const swap = operations.indexOf(`set ${aggregationKeys.current}`)
        assert.strictEqual(swap, operations.lastIndexOf(`set ${aggregationKeys.current}`))
        const lastNewWrite = operations.findLastIndex((operation) => operation.startsWith("set agg:v:v2:"))
        const firstOldDelete = operations.findIndex((operation) => operation.startsWith("remove agg:v:v1:"))
        assert.isBelow(lastNewWrite, swap)
        assert.isAbove(firstOldDelete, swap)
        assert.isTrue(
          operations.slice(swap + 1).every((operation) => operation.startsWith("remove agg:v:v1:"))
        )
      }).pipe(
        Effect.provide(
          Layer.mergeAll(bucketLayers(directory), Layer.succeed(KeyValueStore.KeyValueStore, spy))
        )
      )
    })
  )

  it.effect("takes the version from the Clock and never reuses the published one", () =>
    Effect.gen(function* () {
      yield* commitFinalAggregate(rowsV1, "v1")
      yield* TestClock.setTime(Date.UTC(2026, 10, 25, 1, 2, 3, 456))
      const first = yield* aggregateMerchantTotals()
      assert.strictEqual(first.version, "20261125T010203456Z")
      const second = yield* aggregateMerchantTotals()
      assert.strictEqual(second.version, "20261125T010203456Z-2")
      assert.strictEqual(second.previousVersion, first.version)
      const current = Option.getOrThrow(yield* readCurrentAggregation())
      assert.strictEqual(current.version, second.version)
      assert.strictEqual(current.global.computed_at, "2026-11-25T01:02:03.456Z")

      const reused = yield* Effect.flip(aggregateMerchantTotals({ version: second.version }))
      assert.instanceOf(reused, AggregationError)
      const badId = yield* Effect.flip(aggregateMerchantTotals({ version: "a:b" }))
      assert.instanceOf(badId, AggregationError)
      assert.strictEqual(Option.getOrThrow(yield* readCurrentAggregation()).version, second.version)
    }).pipe(
      Effect.provide(Layer.mergeAll(ProcessedBucket.layerMemory, Parquet.layer(), layerMemory, DuckDb.layer))
    )
  )

  it.effect("publishes empty figures when nothing is committed; a broken version fails the reader", () =>
    Effect.gen(function* () {
      assert.isTrue(Option.isNone(yield* readCurrentAggregation()))
      yield* aggregateMerchantTotals({ version: "empty" })
      const current = Option.getOrThrow(yield* readCurrentAggregation())
      assert.strictEqual(current.global.transaction_count, 0)
      assert.strictEqual(current.global.max_last_event_time, null)
      assert.deepStrictEqual(current.merchants, [])

      const store = yield* KeyValueStore.KeyValueStore
      yield* store.set(aggregationKeys.current, "ghost")
      const broken = yield* Effect.flip(readCurrentAggregation())
      assert.instanceOf(broken, AggregationError)
    }).pipe(
      Effect.provide(Layer.mergeAll(ProcessedBucket.layerMemory, Parquet.layer(), layerMemory, DuckDb.layer))
    )
  )
})
