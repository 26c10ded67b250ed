import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { transactionStatuses } from "../src/domain/events.js"
import { compareCodePoints } from "../src/domain/order.js"
import { indexedTransactionSchema } from "../src/domain/rows.js"
import { ProcessedBucket, RawBucket } from "../src/layers/ObjectStore.js"
import { Parquet } from "../src/layers/ParquetCodec.js"
import { batchIndexPrefixes, runBatchIndex } from "../src/streams/batchIndex.js"
import { readFinalAggregate, readManifest } from "../src/streams/datasets.js"
import { runFinalAggregateWith } from "../src/streams/finalAggregate.js"
import { seededRandom } from "./support/finalAggregateRows.js"
import {
  jsonLines,
  memoryLayers,
  merchantJson,
  signalJson,
  transactionJson,
  userJson
} from "./support/fixtures.js"

/** Ids that sort differently by UTF-16 unit, by code point and by locale. */
const idPieces = ["a", "B", "z", "é", "ｚ", "😀", "10", "9", "a b"] as const
/** Few distinct instants, so sequence and event_time ties are common; one with an offset. */
const instants = [
  "2026-11-20T23:30:00Z",
  "2026-11-21T00:30:00+02:00",
  "2026-11-21T00:00:00.000001Z",
  "2026-11-21T10:00:00Z",
  "2026-11-22T08:15:00.5Z"
] as const
const reasonPool = ["velocity", "geo", "Zeta", "ärger", "💳", "bin"] as const

/**
 * Raw files full of the cases §6 has rules for: copies of one event_id that differ in sequence, time or
 * content (including absent optional fields), sequence and time ties broken by event_id in code-point
 * order, lifecycle statuses, repeated signals whose copies differ in score, reasons and label, signals
 * before and after the first event, orphan signals, and unknown users and merchants.
 */
const seedTrickyRaw = (seed: number, transactions: number) =>
  Effect.gen(function* () {
    const random = seededRandom(seed)
    const pick = <A>(values: ReadonlyArray<A>): A => values[Math.floor(random() * values.length)]!
    const events: Array<Record<string, unknown>> = []
    const signals: Array<Record<string, unknown>> = []
    for (let index = 0; index < transactions; index++) {
      const transactionId = `t-${pick(idPieces)}-${index}`
      const count = 1 + Math.floor(random() * 5)
      for (let event = 0; event < count; event++) {
        const base = transactionJson({
          // Some event_ids repeat under other transactions: they are different events there.
          event_id: random() < 0.15 ? `e-shared-${event % 4}` : `e-${pick(idPieces)}-${index}-${event % 3}`,
          transaction_id: transactionId,
          sequence: Math.floor(random() * 3),
          event_time: pick(instants),
          status: pick(transactionStatuses),
          amount_minor: pick([0, 999, 1000, 25_000]),
          currency: pick(["USD", "JPY", "EUR"]),
          user_id: pick(["u-1", "u-2", "u-unknown"]),
          merchant_id: pick(["m-1", "m-2", "m-unknown"]),
          card_bin: random() < 0.3 ? null : pick(["411111", "55555555"]),
          card_last4: random() < 0.2 ? undefined : pick(["1111", "4444"]),
          country: random() < 0.2 ? null : pick(["US", "DE"]),
          device_id: random() < 0.4 ? undefined : pick(["d-1", "d-2", ""])
        })
        events.push(base)
        if (random() < 0.35) {
          // A replay of the same event_id: identical, or with one field changed.
          const changed = pick([
            {},
            { amount_minor: 1001 },
            { status: pick(transactionStatuses) },
            { card_bin: null },
            { device_id: "d-9" },
            { event_time: pick(instants) },
            { sequence: 2 }
          ])
          events.push({ ...base, ...changed })
        }
      }
      const signalCount = Math.floor(random() * 3)
      for (let signal = 0; signal < signalCount; signal++) {
        const base = signalJson({
          signal_id: `s-${index}-${signal}`,
          transaction_id: transactionId,
          event_time: pick(instants),
          source: pick(["rules", "model", "partner", "chargeback", "manual_review"]),
          score: pick([0, 0.25, 0.5, 0.99, 1]),
          reasons: [pick(reasonPool), pick(reasonPool)].slice(0, Math.floor(random() * 3)),
          ...(random() < 0.5 ? {} : { confirmed_fraud: random() < 0.5 })
        })
        signals.push(base)
        if (random() < 0.3)
          signals.push({
            ...base,
            score: pick([0.1, 0.7]),
            reasons: [pick(reasonPool)],
            confirmed_fraud: true
          })
      }
      if (random() < 0.1)
        signals.push(signalJson({ signal_id: `s-orphan-${index}`, transaction_id: `t-orphan-${index}` }))
    }
    const raw = yield* RawBucket
    // Split over several files and days, so copies come from different index files.
    for (let part = 0; part < 3; part++) {
      yield* raw.put(
        `raw/transactions/dt=2026-11-2${part}/part-${part}.jsonl`,
        jsonLines(...events.filter((_, index) => index % 3 === part))
      )
      yield* raw.put(
        `raw/fraud_signals/dt=2026-11-2${part}/part-${part}.jsonl`,
        jsonLines(...signals.filter((_, index) => index % 3 === part))
      )
    }
    yield* raw.put(
      "raw/dimensions/users/snapshot=20261120T000000Z/users.jsonl",
      jsonLines(
        userJson(),
        userJson({ user_id: "u-2", country: "DE", kyc_level: "basic", risk_tier: "high" })
      )
    )
    yield* raw.put(
      "raw/dimensions/merchants/snapshot=20261120T000000Z/merchants.jsonl",
      jsonLines(merchantJson(), merchantJson({ merchant_id: "m-2", name: "Ærø Ølstue", mcc: "5813" }))
    )
  })

const publishedRows = Effect.gen(function* () {
  const rows = yield* readFinalAggregate(yield* ProcessedBucket, yield* Parquet)
  return [...rows].sort((a, b) => (a.transaction_id < b.transaction_id ? -1 : 1))
})

const duckDbLayers = Layer.merge(memoryLayers, Parquet.layer({ rowGroupSize: 100 }))

describe("final aggregate engines: DuckDB SQL and JavaScript give the same rows", () => {
  for (const seed of [1, 2, 3]) {
    it.effect(`on seeded tricky data (seed ${seed}), one worker, shards and passes`, () =>
      Effect.gen(function* () {
        yield* seedTrickyRaw(seed, 150)
        const index = yield* runBatchIndex
        assert.strictEqual(index.transactions.quarantined, 0, "every generated event is valid")
        const js = yield* runFinalAggregateWith({ engine: "js" })
        assert.strictEqual(js.engine, "js")
        const expected = yield* publishedRows
        assert.strictEqual(expected.length, 150)
        assert.isTrue(expected.some((row) => row.event_count > 1))
        assert.isTrue(expected.some((row) => row.fraud_signal_count > 0 && row.confirmed_fraud))
        assert.isTrue(expected.some((row) => row.fraud_prior_signal_max_score !== null))
        assert.isTrue(expected.some((row) => row.merchant_name === null))
        assert.isTrue(expected.some((row) => row.user_country === null))

        const sql = yield* runFinalAggregateWith()
        assert.strictEqual(sql.engine, "sql", "the DuckDB codec selects the SQL engine")
        assert.deepStrictEqual(
          [sql.rows, sql.transactionEventsRead, sql.fraudSignalsRead, sql.inputRowsRead],
          [js.rows, js.transactionEventsRead, js.fraudSignalsRead, js.inputRowsRead]
        )
        assert.deepStrictEqual(yield* publishedRows, expected)

        const shards = [0, 1, 2].map((shardIndex) => ({ index: shardIndex, count: 3 }))
        const sharded = []
        for (const shard of shards) sharded.push(yield* runFinalAggregateWith({ shard, passes: 2 }))
        assert.deepStrictEqual(
          sharded.map((summary) => [summary.engine, summary.passes, summary.published]),
          [
            ["sql", 2, false],
            ["sql", 2, false],
            ["sql", 2, true]
          ]
        )
        assert.strictEqual(
          sharded.reduce((sum, summary) => sum + summary.inputRowsRead, 0),
          js.inputRowsRead,
          "the shards' passes read each input row once between them"
        )
        assert.deepStrictEqual(yield* publishedRows, expected)

        const again = yield* runFinalAggregateWith({ maxRowsPerFile: 7 })
        assert.isAbove(again.filesWritten, again.partitions, "at most 7 rows per file")
        assert.deepStrictEqual(yield* publishedRows, expected)
        const processed = yield* ProcessedBucket
        const codec = yield* Parquet
        const manifest = Option.getOrThrow(yield* readManifest(processed, "final_aggregate/"))
        for (const file of manifest.files) {
          const rows = yield* codec.decode(Option.getOrThrow(yield* processed.get(file.key)))
          assert.strictEqual(rows.length, file.rows, file.key)
          assert.isAtMost(rows.length, 7)
          const ids = rows.map((row) => String(row["transaction_id"]))
          assert.deepStrictEqual(ids, [...ids].sort(compareCodePoints), "transaction_id order within a file")
        }
      }).pipe(Effect.provide(duckDbLayers))
    )
  }

  it.effect("the SQL engine writes the same bytes for the same rows, so a re-run keeps every file", () =>
    Effect.gen(function* () {
      yield* seedTrickyRaw(4, 400)
      yield* runBatchIndex
      const first = yield* runFinalAggregateWith()
      const again = yield* runFinalAggregateWith()
      assert.strictEqual(first.engine, "sql")
      assert.isAbove(first.filesWritten, 0)
      assert.deepStrictEqual([again.filesWritten, again.filesKept], [0, first.filesWritten])
      const refused = yield* Effect.flip(runFinalAggregateWith({ memoryLimit: "lots" }))
      assert.include(refused.message, 'memory limit must be a size such as 512MB or 2GB, got "lots"')
      const small = yield* runFinalAggregateWith({ memoryLimit: "64MB" })
      assert.strictEqual(small.passes, Math.ceil(first.inputRowsRead / 100_000), "at least 100k rows a pass")
    }).pipe(Effect.provide(duckDbLayers))
  )

  it.effect(
    "index files without transaction_id_hash: one pass still runs in SQL, shards fall back to JavaScript",
    () =>
      Effect.gen(function* () {
        yield* seedTrickyRaw(5, 120)
        yield* runBatchIndex
        const expected = yield* Effect.zipRight(runFinalAggregateWith({ engine: "js" }), publishedRows)
        // Rewrite the transaction index as an older version wrote it: without the hash column.
        const processed = yield* ProcessedBucket
        const codec = yield* Parquet
        const manifest = Option.getOrThrow(yield* readManifest(processed, batchIndexPrefixes.transactions))
        const withoutHash = indexedTransactionSchema.filter((column) => column.name !== "transaction_id_hash")
        for (const file of manifest.files) {
          const rows = yield* codec.decode(Option.getOrThrow(yield* processed.get(file.key)))
          yield* processed.put(file.key, yield* codec.encode(withoutHash, rows))
        }
        const whole = yield* runFinalAggregateWith({ maxRowsPerFile: 5 })
        assert.strictEqual(whole.engine, "sql")
        assert.deepStrictEqual(yield* publishedRows, expected)
        const shards = [
          yield* runFinalAggregateWith({ shard: { index: 0, count: 2 } }),
          yield* runFinalAggregateWith({ shard: { index: 1, count: 2 } })
        ]
        assert.deepStrictEqual(
          shards.map((summary) => summary.engine),
          ["js", "js"]
        )
        assert.isTrue(shards[1]!.published)
        assert.deepStrictEqual(yield* publishedRows, expected)
      }).pipe(Effect.provide(duckDbLayers))
  )

  it.effect("no input, or fraud signals without any transaction: both engines publish no rows", () =>
    Effect.gen(function* () {
      const empty = yield* runFinalAggregateWith()
      assert.deepStrictEqual([empty.engine, empty.rows, empty.published], ["sql", 0, true])
      yield* (yield* RawBucket).put(
        "raw/fraud_signals/dt=2026-11-20/part-0.jsonl",
        jsonLines(signalJson({ signal_id: "s-1", transaction_id: "t-none" }))
      )
      yield* runBatchIndex
      for (const engine of ["sql", "js"] as const) {
        const summary = yield* runFinalAggregateWith({ engine })
        assert.deepStrictEqual([summary.rows, summary.fraudSignalsRead], [0, 1], engine)
        assert.lengthOf(yield* publishedRows, 0)
      }
    }).pipe(Effect.provide(duckDbLayers))
  )

  it.effect(
    "reads an index written by the parquetjs codec (legacy timestamps, its lists) like JavaScript",
    () =>
      Effect.gen(function* () {
        const root = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "recon-engines-"))
        const buckets = Layer.merge(
          RawBucket.layerLocal(NodePath.join(root, "raw")),
          ProcessedBucket.layerLocal(NodePath.join(root, "processed"))
        )
        yield* Effect.gen(function* () {
          yield* seedTrickyRaw(6, 120)
          yield* runBatchIndex
          const refused = yield* Effect.flip(runFinalAggregateWith({ engine: "sql" }))
          assert.include(refused.message, "the SQL engine writes through DuckDB, which the parquetjs codec")
        }).pipe(Effect.provide(Layer.merge(buckets, Parquet.layerParquetjs({ rowGroupSize: 50 }))))
        yield* Effect.gen(function* () {
          const js = yield* runFinalAggregateWith({ engine: "js" })
          const expected = yield* publishedRows
          assert.strictEqual(expected.length, 120)
          const sql = yield* runFinalAggregateWith()
          assert.deepStrictEqual([js.engine, sql.engine], ["js", "sql"])
          assert.deepStrictEqual(yield* publishedRows, expected)
        }).pipe(Effect.provide(Layer.merge(buckets, Parquet.layer())))
        NodeFs.rmSync(root, { recursive: true, force: true })
      })
  )
})
