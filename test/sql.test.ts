import * as NodeFs from "node:fs/promises"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Scope, TestClock } from "effect"
import { formatMinorUnits } from "../src/domain/currency.js"
import { type FinalAggregateRow, finalAggregateSchema } from "../src/domain/rows.js"
import { DuckDb, SqlError } from "../src/layers/DuckDb.js"
import { ProcessedBucket } from "../src/layers/ObjectStore.js"
import { Parquet } from "../src/layers/ParquetCodec.js"
import { prefixes, writeManifest } from "../src/streams/datasets.js"
import { readyQueries, registerFinalAggregateView, runReadyQuery, runSql } from "../src/streams/sql.js"
import {
  currencies,
  dayMicros,
  firstDayMicros,
  groupBy,
  makeRows,
  toTableRow
} from "./support/finalAggregateRows.js"

/** Writes one file per dt and commits them; `uncommitted` rows land in an extra file the manifest omits. */
const commitFinalAggregate = (
  rows: ReadonlyArray<FinalAggregateRow>,
  uncommitted: ReadonlyArray<FinalAggregateRow>
) =>
  Effect.gen(function* () {
    const store = yield* ProcessedBucket
    const codec = yield* Parquet
    const files: Array<{ key: string; dt: string; rows: number }> = []
    for (const [dt, part] of [...groupBy(rows, (row) => row.dt)].sort(([a], [b]) => a.localeCompare(b))) {
      const key = `${prefixes.finalAggregate}dt=${dt}/part-0.parquet`
      yield* store.put(key, yield* codec.encode(finalAggregateSchema, part.map(toTableRow)))
      files.push({ key, dt, rows: part.length })
    }
    if (uncommitted.length > 0) {
      const key = `${prefixes.finalAggregate}dt=${uncommitted[0]?.dt}/part-uncommitted.parquet`
      yield* store.put(key, yield* codec.encode(finalAggregateSchema, uncommitted.map(toTableRow)))
    }
    yield* writeManifest(store, prefixes.finalAggregate, {
      dataset: "final_aggregate",
      version: "v1",
      committed_at: "2026-11-25T00:00:00Z",
      files
    })
  })

const temporaryDirectory = Effect.acquireRelease(
  Effect.promise(() => NodeFs.mkdtemp(NodePath.join(NodeOs.tmpdir(), "sql-test-"))),
  (directory) => Effect.promise(() => NodeFs.rm(directory, { recursive: true, force: true }))
)

const committedRows = makeRows(7, 240, "tx")
const uncommittedRows = makeRows(8, 30, "stray").map((row) => ({ ...row, dt: "2026-11-24" }))

const sumBy = (rows: ReadonlyArray<FinalAggregateRow>) =>
  rows.reduce((sum, row) => sum + BigInt(row.amount_minor), 0n)

describe("final_aggregate SQL view", () => {
  it.scoped("shows exactly the committed files of a local bucket, with dt from the path", () =>
    Effect.gen(function* () {
      const directory = yield* temporaryDirectory
      yield* Effect.gen(function* () {
        yield* commitFinalAggregate(committedRows, uncommittedRows)
        const registered = yield* registerFinalAggregateView()
        assert.strictEqual(registered.manifestVersion, "v1")
        assert.strictEqual(registered.files.length, 3)
        assert.isTrue(registered.files.every((file) => file.startsWith(directory)))

        const total = yield* runSql(
          "SELECT count(*) AS n, count(DISTINCT transaction_id) AS ids FROM final_aggregate"
        )
        assert.deepStrictEqual(total, [
          { n: String(committedRows.length), ids: String(committedRows.length) }
        ])
        const stray = yield* runSql(
          "SELECT count(*) AS n FROM final_aggregate WHERE transaction_id LIKE 'stray-%'"
        )
        assert.deepStrictEqual(stray, [{ n: "0" }])
        const globbed = yield* runSql(
          `SELECT count(*) AS n FROM read_parquet('${directory}/final_aggregate/*/*.parquet')`
        )
        assert.deepStrictEqual(globbed, [{ n: String(committedRows.length + uncommittedRows.length) }])

        const perDay = yield* runSql(
          "SELECT CAST(dt AS VARCHAR) AS dt, typeof(dt) AS type, count(*) AS n FROM final_aggregate GROUP BY dt ORDER BY dt"
        )
        const expected = [...groupBy(committedRows, (row) => row.dt)]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([dt, rows]) => ({ dt, type: "DATE", n: String(rows.length) }))
        assert.deepStrictEqual(perDay, expected)
        const misfiled = yield* runSql(
          "SELECT count(*) AS n FROM final_aggregate WHERE CAST(dt AS VARCHAR) <> strftime(first_event_time, '%Y-%m-%d')"
        )
        assert.deepStrictEqual(misfiled, [{ n: "0" }])
      }).pipe(
        Effect.provide(Layer.mergeAll(ProcessedBucket.layerLocal(directory), Parquet.layer(), DuckDb.layer))
      )
    })
  )

  it.effect(
    "copies committed objects of a memory store to a temporary directory removed with the scope",
    () =>
      Effect.gen(function* () {
        yield* commitFinalAggregate(committedRows, uncommittedRows)
        const scope = yield* Scope.make()
        const registered = yield* Scope.extend(registerFinalAggregateView("fa"), scope)
        assert.strictEqual(registered.files.length, 3)
        const total = yield* runSql(`SELECT count(*) AS n, count(DISTINCT dt) AS days FROM fa`)
        assert.deepStrictEqual(total, [{ n: String(committedRows.length), days: "3" }])
        const copied = registered.files[0] ?? ""
        yield* Effect.promise(() => NodeFs.access(copied))
        yield* Scope.close(scope, Exit.void)
        const gone = yield* Effect.promise(() =>
          NodeFs.access(copied).then(
            () => false,
            () => true
          )
        )
        assert.isTrue(gone)
      }).pipe(Effect.provide(Layer.mergeAll(ProcessedBucket.layerMemory, Parquet.layer(), DuckDb.layer)))
  )

  it.scoped(
    "is empty with every contract column when nothing is committed, and ready queries still run",
    () =>
      Effect.gen(function* () {
        const registered = yield* registerFinalAggregateView()
        assert.strictEqual(registered.manifestVersion, null)
        const count = yield* runSql("SELECT count(*) AS n FROM final_aggregate")
        assert.deepStrictEqual(count, [{ n: "0" }])
        const columns = yield* runSql("DESCRIBE final_aggregate")
        const types = Object.fromEntries(
          columns.map((column) => [column["column_name"], column["column_type"]])
        )
        assert.deepStrictEqual(Object.keys(types), [
          ...finalAggregateSchema.map((column) => column.name),
          "dt"
        ])
        assert.strictEqual(types["amount_minor"], "BIGINT")
        assert.strictEqual(types["first_event_time"], "TIMESTAMP")
        assert.strictEqual(types["fraud_reasons"], "VARCHAR[]")
        assert.strictEqual(types["dt"], "DATE")
        for (const query of readyQueries) {
          const rows = yield* runReadyQuery(query.name, { asOf: firstDayMicros })
          assert.deepStrictEqual(rows, [], query.name)
        }
      }).pipe(Effect.provide(Layer.mergeAll(ProcessedBucket.layerMemory, Parquet.layer(), DuckDb.layer)))
  )
})

describe("ready queries", () => {
  const asOf = firstDayMicros + 3 * dayMicros

  it.scoped("all run and agree with the fixture", () =>
    Effect.gen(function* () {
      const directory = yield* temporaryDirectory
      yield* Effect.gen(function* () {
        yield* commitFinalAggregate(committedRows, uncommittedRows)
        yield* registerFinalAggregateView()
        for (const query of readyQueries) {
          const rows = yield* runReadyQuery(query.name, { asOf, staleAfterDays: 2 })
          assert.isAbove(rows.length, 0, query.name)
        }

        const volume = yield* runReadyQuery("volume_by_status_currency")
        assert.strictEqual(
          volume.reduce((sum, row) => sum + Number(row["transactions"]), 0),
          committedRows.length
        )
        for (const rows of groupBy(committedRows, (row) => `${row.status}/${row.currency}`).values()) {
          const { status, currency } = rows[0] as FinalAggregateRow
          const found = volume.find((row) => row["status"] === status && row["currency"] === currency)
          const sum = sumBy(rows)
          assert.deepStrictEqual(found, {
            status,
            currency,
            transactions: String(rows.length),
            amount_minor: sum.toString(),
            amount_major: formatMinorUnits(sum, currency)
          })
        }
        const jpyTotal = sumBy(committedRows.filter((row) => row.currency === "JPY"))
        assert.isTrue(jpyTotal > BigInt(Number.MAX_SAFE_INTEGER))

        const top = yield* runReadyQuery("top_merchants_by_volume")
        for (const currency of currencies) {
          const captured = committedRows.filter(
            (row) => row.currency === currency && (row.status === "captured" || row.status === "settled")
          )
          const ranked = [...groupBy(captured, (row) => row.merchant_id)]
            .map(([merchantId, rows]) => ({ merchantId, volume: sumBy(rows) }))
            .sort((a, b) =>
              a.volume === b.volume ? a.merchantId.localeCompare(b.merchantId) : a.volume > b.volume ? -1 : 1
            )
          assert.deepStrictEqual(
            top
              .filter((row) => row["currency"] === currency)
              .map((row) => [row["merchant_id"], row["volume_minor"]]),
            ranked.map((entry) => [entry.merchantId, entry.volume.toString()])
          )
        }

        const byRisk = yield* runReadyQuery("refund_chargeback_rate_by_risk_level")
        for (const [risk, rows] of groupBy(committedRows, (row) => String(row.merchant_risk_level))) {
          const found = byRisk.find((row) => String(row["merchant_risk_level"]) === risk)
          const refunded = rows.filter((row) => row.refunded_at !== null).length
          const chargebacks = rows.filter((row) => row.chargeback_at !== null).length
          assert.strictEqual(found?.["refund_rate"], refunded / rows.length)
          assert.strictEqual(found?.["chargeback_rate"], chargebacks / rows.length)
        }

        const fraud = yield* runReadyQuery("confirmed_fraud_rate_by_mcc")
        for (const [mcc, rows] of groupBy(committedRows, (row) => String(row.merchant_mcc))) {
          const found = fraud.find((row) => String(row["merchant_mcc"]) === mcc)
          assert.strictEqual(
            found?.["confirmed_fraud_rate"],
            rows.filter((row) => row.confirmed_fraud).length / rows.length
          )
        }

        const daily = yield* runReadyQuery("daily_counts")
        assert.deepStrictEqual(
          daily.map((row) => [row["dt"], row["transactions"]]),
          [...groupBy(committedRows, (row) => row.dt)]
            .sort(([a], [b]) => a.localeCompare(b))
            .map(([dt, rows]) => [dt, String(rows.length)])
        )

        const open = yield* runReadyQuery("authorized_never_captured", { asOf, staleAfterDays: 2 })
        const expectedOpen = committedRows
          .filter(
            (row) =>
              row.status === "authorized" &&
              row.authorized_at !== null &&
              row.authorized_at < asOf - 2 * dayMicros
          )
          .sort((a, b) => (a.authorized_at ?? 0) - (b.authorized_at ?? 0))
          .map((row) => row.transaction_id)
        assert.isAbove(expectedOpen.length, 0)
        assert.isBelow(expectedOpen.length, committedRows.filter((row) => row.status === "authorized").length)
        assert.deepStrictEqual(
          open.map((row) => row["transaction_id"]),
          expectedOpen
        )

        yield* TestClock.setTime(asOf / 1000)
        const openByClock = yield* runReadyQuery("authorized_never_captured", { staleAfterDays: 2 })
        assert.deepStrictEqual(openByClock, open)
      }).pipe(
        Effect.provide(Layer.mergeAll(ProcessedBucket.layerLocal(directory), Parquet.layer(), DuckDb.layer))
      )
    })
  )

  it.effect("an unknown name and bad SQL fail with tagged errors", () =>
    Effect.gen(function* () {
      const unknown = yield* Effect.flip(runReadyQuery("no_such_query"))
      assert.strictEqual(unknown._tag, "ReadyQueryNotFound")
      const bad = yield* Effect.flip(runSql("SELECT * FROM missing_table"))
      assert.instanceOf(bad, SqlError)
      assert.strictEqual(bad.statement, "SELECT * FROM missing_table")
    }).pipe(Effect.provide(DuckDb.layer))
  )

  it.effect("format_minor_units writes major units with integer arithmetic", () =>
    Effect.gen(function* () {
      yield* Effect.scoped(registerFinalAggregateView())
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["-5", "USD"],
        ["123456", "KWD"],
        ["18014398509481982", "JPY"],
        ["18014398509481982", "USD"],
        ["0", "CLF"]
      ]
      for (const [amount, currency] of cases) {
        const rows = yield* runSql(
          `SELECT format_minor_units(CAST(${amount} AS HUGEINT), exponent) AS major FROM currency_exponent WHERE currency = '${currency}'`
        )
        assert.deepStrictEqual(rows, [{ major: formatMinorUnits(BigInt(amount), currency) }])
      }
    }).pipe(Effect.provide(Layer.mergeAll(ProcessedBucket.layerMemory, Parquet.layer(), DuckDb.layer)))
  )
})
