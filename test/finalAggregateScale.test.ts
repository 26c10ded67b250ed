import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Option } from "effect"
import { assignFilesToShards, bucketOf } from "../src/domain/buckets.js"
import { ObjectStoreError } from "../src/domain/errors.js"
import { type ObjectStore, ProcessedBucket, RawBucket } from "../src/layers/ObjectStore.js"
import { Parquet } from "../src/layers/ParquetCodec.js"
import {
  type BatchIndexSummary,
  batchIndexPrefixes,
  runBatchIndex,
  runBatchIndexWith
} from "../src/streams/batchIndex.js"
import { readFinalAggregate, readManifest, readManifestRows } from "../src/streams/datasets.js"
import { runFinalAggregateWith } from "../src/streams/finalAggregate.js"
import {
  jsonLines,
  memoryLayers,
  merchantJson,
  signalJson,
  transactionJson,
  userJson
} from "./support/fixtures.js"

const statuses = ["authorized", "captured", "settled", "refunded", "chargeback"] as const

/** 60 transactions over five days, two to four events each, signals for every third. */
const seedRaw = Effect.gen(function* () {
  const raw = yield* RawBucket
  const events: Array<Record<string, unknown>> = []
  const signals: Array<Record<string, unknown>> = []
  for (let index = 0; index < 60; index++) {
    const day = 20 + (index % 5)
    for (let sequence = 0; sequence < 2 + (index % 3); sequence++) {
      events.push(
        transactionJson({
          event_id: `e-${index}-${sequence}`,
          transaction_id: `t-${index}`,
          sequence,
          status: statuses[sequence % statuses.length],
          amount_minor: 1000 + index,
          event_time: `2026-11-${day}T${String(10 + sequence).padStart(2, "0")}:00:00Z`
        })
      )
    }
    if (index % 3 === 0)
      signals.push(
        signalJson({ signal_id: `s-${index}`, transaction_id: `t-${index}`, score: (index % 10) / 10 })
      )
  }
  yield* raw.put("raw/transactions/dt=2026-11-20/part-0.jsonl", jsonLines(...events))
  yield* raw.put("raw/fraud_signals/dt=2026-11-20/part-0.jsonl", jsonLines(...signals))
  yield* raw.put("raw/dimensions/users/snapshot=20261120T000000Z/users.jsonl", jsonLines(userJson()))
  yield* raw.put(
    "raw/dimensions/merchants/snapshot=20261120T000000Z/merchants.jsonl",
    jsonLines(merchantJson())
  )
})

/** The same 60 transactions spread over seven raw files of different sizes, with bad lines in two. */
const seedRawInFiles = Effect.gen(function* () {
  yield* seedRaw
  const raw = yield* RawBucket
  const whole = new TextDecoder().decode(
    Option.getOrThrow(yield* raw.get("raw/transactions/dt=2026-11-20/part-0.jsonl"))
  )
  yield* raw.delete("raw/transactions/dt=2026-11-20/part-0.jsonl")
  const lines = whole.trim().split("\n")
  const cuts = [0, 5, 25, 30, 70, 100, 140, lines.length]
  for (let file = 0; file + 1 < cuts.length; file++) {
    const bad = file === 1 ? ["not json", '{"event_id":""}'] : file === 4 ? ['{"amount_minor":-1}'] : []
    yield* raw.put(
      `raw/transactions/dt=2026-11-2${file % 5}/part-${file}.jsonl`,
      new TextEncoder().encode(`${[...lines.slice(cuts[file], cuts[file + 1]), ...bad].join("\n")}\n`)
    )
  }
})

/** Everything a batch-index run published: its rows (sorted) and the quarantined lines. */
const publishedBatchIndex = Effect.gen(function* () {
  const processed = yield* ProcessedBucket
  const codec = yield* Parquet
  const rowsOf = (prefix: string, id: string) =>
    Effect.gen(function* () {
      const manifest = yield* readManifest(processed, prefix)
      if (Option.isNone(manifest)) return undefined
      const rows = yield* readManifestRows(processed, codec, manifest.value)
      return [...rows].sort((a, b) => (String(a[id]) < String(b[id]) ? -1 : 1))
    })
  let quarantinedLines = 0
  for (const info of yield* processed.list("quarantine/batch/")) {
    const text = new TextDecoder().decode(Option.getOrThrow(yield* processed.get(info.key)))
    quarantinedLines += text.trim().split("\n").length
  }
  return {
    transactions: yield* rowsOf(batchIndexPrefixes.transactions, "event_id"),
    fraudSignals: yield* rowsOf(batchIndexPrefixes.fraudSignals, "signal_id"),
    quarantinedLines
  }
})

const countsOf = (summaries: ReadonlyArray<BatchIndexSummary>) =>
  (["transactions", "fraudSignals", "dimensions"] as const).map((dataset) =>
    summaries.reduce(
      (sum, summary) => ({
        recordsIn: sum.recordsIn + summary[dataset].recordsIn,
        accepted: sum.accepted + summary[dataset].accepted,
        quarantined: sum.quarantined + summary[dataset].quarantined
      }),
      { recordsIn: 0, accepted: 0, quarantined: 0 }
    )
  )

const finalRows = Effect.gen(function* () {
  const rows = yield* readFinalAggregate(yield* ProcessedBucket, yield* Parquet)
  return [...rows].sort((a, b) => (a.transaction_id < b.transaction_id ? -1 : 1))
})

describe("final aggregate at scale: shards, passes, incremental and atomic publish", () => {
  it("spreads transactions over buckets stably", () => {
    assert.strictEqual(bucketOf("t-1", 1), 0)
    assert.strictEqual(bucketOf("t-1", 7), bucketOf("t-1", 7))
    const counts = [0, 0, 0, 0]
    for (let index = 0; index < 4000; index++) counts[bucketOf(`tx-${index}`, 4)]!++
    for (const count of counts) assert.isAbove(count, 850)
  })

  describe.each([
    ["JavaScript, parquetjs codec", "js", memoryLayers],
    ["DuckDB SQL, DuckDB codec", "sql", Layer.merge(memoryLayers, Parquet.layer())]
  ] as const)("%s", (_, engine, layers) => {
    it.effect("three shards publish exactly the rows of one run, once the last shard is done", () =>
      Effect.gen(function* () {
        yield* seedRaw
        yield* runBatchIndex
        const single = yield* runFinalAggregateWith()
        assert.strictEqual(single.engine, engine)
        const expected = yield* finalRows
        assert.strictEqual(expected.length, 60)
        assert.isTrue(single.published)

        yield* (yield* RawBucket).put(
          "raw/transactions/dt=2026-11-25/extra.jsonl",
          jsonLines(
            transactionJson({
              event_id: "e-new",
              transaction_id: "t-new",
              event_time: "2026-11-25T09:00:00Z"
            })
          )
        )
        yield* runBatchIndex
        const first = yield* runFinalAggregateWith({ shard: { index: 0, count: 3 } })
        const second = yield* runFinalAggregateWith({ shard: { index: 2, count: 3 } })
        assert.isFalse(first.published)
        assert.isFalse(second.published)
        assert.deepStrictEqual(yield* finalRows, expected, "readers still see the previous snapshot")
        const third = yield* runFinalAggregateWith({ shard: { index: 1, count: 3 } })
        assert.isTrue(third.published)
        assert.strictEqual(first.rows + second.rows + third.rows, 61)
        const sharded = yield* finalRows
        const shardAgain = yield* runFinalAggregateWith({ shard: { index: 0, count: 3 } })
        assert.strictEqual(shardAgain.filesWritten, 0, "a re-run of a shard rewrites nothing")
        const whole = yield* runFinalAggregateWith({ passes: 4 })
        assert.deepStrictEqual(yield* finalRows, sharded, "four passes in one worker: the same rows")
        assert.strictEqual(
          first.inputRowsRead + second.inputRowsRead + third.inputRowsRead,
          whole.inputRowsRead,
          "each shard reads only its own rows of the index: together they read the input once"
        )
        assert.isAbove(first.inputRowsRead, 0)
        const bounded = yield* runFinalAggregateWith({ rowsPerPass: 60 })
        assert.isAbove(bounded.passes, 3, "about 60 input rows per pass")
        assert.deepStrictEqual(yield* finalRows, sharded)
        assert.deepStrictEqual(
          sharded.filter((row) => row.transaction_id !== "t-new"),
          expected
        )
      }).pipe(Effect.provide(layers))
    )

    it.effect(
      "a re-run rewrites only the partitions whose transactions changed; a moved row appears once",
      () =>
        Effect.gen(function* () {
          yield* seedRaw
          yield* runBatchIndex
          const first = yield* runFinalAggregateWith()
          assert.strictEqual(first.engine, engine)
          assert.strictEqual(first.partitions, 5)
          const again = yield* runFinalAggregateWith()
          assert.strictEqual(again.filesWritten, 0)
          assert.strictEqual(again.filesKept, first.filesWritten)

          // t-4 started on 2026-11-24; an earlier event moves it to 2026-11-19.
          yield* (yield* RawBucket).put(
            "raw/transactions/dt=2026-11-19/late.jsonl",
            jsonLines(
              transactionJson({
                event_id: "e-4-early",
                transaction_id: "t-4",
                sequence: 0,
                status: "authorized",
                event_time: "2026-11-19T23:00:00Z"
              })
            )
          )
          yield* runBatchIndex
          const moved = yield* runFinalAggregateWith()
          assert.strictEqual(moved.filesWritten, 2, "dt=2026-11-24 lost a row, dt=2026-11-19 is new")
          assert.strictEqual(moved.filesKept, 4)
          const rows = yield* finalRows
          const t4 = rows.filter((row) => row.transaction_id === "t-4")
          assert.strictEqual(t4.length, 1)
          assert.strictEqual(t4[0]?.dt, "2026-11-19")
          assert.strictEqual(rows.length, 60)
        }).pipe(Effect.provide(layers))
    )

    it.effect("a crash while publishing leaves the previous snapshot readable and complete", () => {
      let failManifests = false
      const failingProcessed = Layer.effect(
        ProcessedBucket,
        Effect.map(
          Effect.provide(ProcessedBucket, ProcessedBucket.layerMemory),
          (store): ObjectStore => ({
            ...store,
            put: (key, body) =>
              failManifests && key.endsWith("_manifest.json")
                ? Effect.fail(new ObjectStoreError({ operation: "put", key, cause: "crashed" }))
                : store.put(key, body)
          })
        )
      )
      return Effect.gen(function* () {
        yield* seedRaw
        yield* runBatchIndex
        yield* runFinalAggregateWith()
        const before = yield* finalRows
        yield* (yield* RawBucket).put(
          "raw/transactions/dt=2026-11-19/late.jsonl",
          jsonLines(
            transactionJson({ event_id: "e-x", transaction_id: "t-9", event_time: "2026-11-19T01:00:00Z" })
          )
        )
        yield* runBatchIndex
        failManifests = true
        const exit = yield* Effect.exit(runFinalAggregateWith())
        assert.isTrue(Exit.isFailure(exit))
        assert.deepStrictEqual(yield* finalRows, before)
        failManifests = false
        yield* runFinalAggregateWith()
        const after = yield* finalRows
        assert.strictEqual(after.find((row) => row.transaction_id === "t-9")?.dt, "2026-11-19")
      }).pipe(Effect.provide(Layer.merge(layers, failingProcessed)))
    })

    it.effect("a batch index written in small flushes gives the same final rows", () =>
      Effect.gen(function* () {
        yield* seedRaw
        yield* runBatchIndex
        yield* runFinalAggregateWith()
        const expected = yield* finalRows
        const processed = yield* ProcessedBucket
        const filesBefore = (yield* processed.list("batch_index/transactions/")).length
        yield* runBatchIndexWith({ flushRows: 50 })
        const filesAfter = (yield* processed.list("batch_index/transactions/")).length
        assert.isAbove(filesAfter, filesBefore, "three flushes of 50 rows over five days")
        yield* runFinalAggregateWith()
        assert.deepStrictEqual(yield* finalRows, expected)
      }).pipe(Effect.provide(layers))
    )
  })

  it("splits files over shards by size, the same way in every worker", () => {
    const files = [120, 5, 30, 30, 64, 7, 200, 1].map((size, index) => ({ key: `f-${index}`, size }))
    const owner = assignFilesToShards(files, 3)
    assert.deepStrictEqual(assignFilesToShards([...files].reverse(), 3), owner)
    assert.strictEqual(owner.size, files.length)
    const load = [0, 0, 0]
    for (const file of files) load[owner.get(file.key)!]! += file.size
    assert.deepStrictEqual(load, [200, 128, 129])
    assert.deepStrictEqual([...assignFilesToShards(files, 1).values()], new Array(8).fill(0))
  })

  it.effect(
    "three batch-index shards publish the rows, quarantine and counts of one run, once the last is done",
    () =>
      Effect.gen(function* () {
        const single = yield* Effect.gen(function* () {
          yield* seedRawInFiles
          const summary = yield* runBatchIndex
          yield* runFinalAggregateWith()
          return { summary, index: yield* publishedBatchIndex, final: yield* finalRows }
        }).pipe(Effect.provide(memoryLayers))
        assert.strictEqual(single.summary.transactions.quarantined, 3)
        assert.isAbove(single.index.quarantinedLines, 0)

        const sharded = yield* Effect.gen(function* () {
          yield* seedRawInFiles
          const last = yield* runBatchIndexWith({ shard: { index: 2, count: 3 } })
          const first = yield* runBatchIndexWith({ shard: { index: 0, count: 3 } })
          assert.isFalse(last.published)
          assert.isFalse(first.published)
          assert.isUndefined(
            (yield* publishedBatchIndex).transactions,
            "nothing is published before the last shard"
          )
          const middle = yield* runBatchIndexWith({ shard: { index: 1, count: 3 } })
          assert.isTrue(middle.published)
          for (const summary of [first, middle, last]) assert.isAbove(summary.filesRead, 1)
          assert.lengthOf(
            yield* (yield* ProcessedBucket).list("batch_index/_shards/"),
            0,
            "shard manifests are removed once published"
          )
          yield* runFinalAggregateWith({ shard: { index: 1, count: 2 } })
          yield* runFinalAggregateWith({ shard: { index: 0, count: 2 } })
          const result = {
            summaries: [first, middle, last],
            index: yield* publishedBatchIndex,
            final: yield* finalRows
          }
          // The same input again as one worker, then as two: each refused record stays on record once.
          yield* runBatchIndex
          assert.deepStrictEqual(yield* publishedBatchIndex, result.index)
          yield* runBatchIndexWith({ shard: { index: 0, count: 2 } })
          yield* runBatchIndexWith({ shard: { index: 1, count: 2 } })
          assert.deepStrictEqual(yield* publishedBatchIndex, result.index)
          return result
        }).pipe(Effect.provide(memoryLayers))

        assert.deepStrictEqual(countsOf(sharded.summaries), countsOf([single.summary]))
        assert.deepStrictEqual(sharded.index, single.index)
        assert.deepStrictEqual(sharded.final, single.final)
      })
  )

  it.effect("with the DuckDB codec too, shards decode only their own index rows", () =>
    Effect.gen(function* () {
      yield* seedRaw
      yield* runBatchIndex
      const whole = yield* runFinalAggregateWith()
      const shards = [
        yield* runFinalAggregateWith({ shard: { index: 0, count: 2 } }),
        yield* runFinalAggregateWith({ shard: { index: 1, count: 2 } })
      ]
      assert.isAbove(shards[0]!.inputRowsRead, 0)
      assert.strictEqual(shards[0]!.inputRowsRead + shards[1]!.inputRowsRead, whole.inputRowsRead)
      assert.strictEqual(shards[0]!.rows + shards[1]!.rows, whole.rows)
    }).pipe(Effect.provide(Layer.merge(memoryLayers, Parquet.layer())))
  )

  it.effect("refuses a shard outside 0 <= i < n", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(runFinalAggregateWith({ shard: { index: 3, count: 3 } }))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(exit), "shard must be i/n")
      const batchExit = yield* Effect.exit(runBatchIndexWith({ shard: { index: 0, count: 0 } }))
      assert.include(String(batchExit), "shard must be i/n with 0 <= i < n, got 0/0")
    }).pipe(Effect.provide(memoryLayers))
  )
})
