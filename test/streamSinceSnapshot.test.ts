import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { scoredTransactionSchema } from "../src/domain/rows.js"
import { DuckDb } from "../src/layers/DuckDb.js"
import { layerMemory } from "../src/layers/KeyValueStore.js"
import { ProcessedBucket } from "../src/layers/ObjectStore.js"
import { Parquet } from "../src/layers/ParquetCodec.js"
import { aggregateMerchantTotals, readCurrentAggregation } from "../src/streams/aggregate.js"
import { prefixes, readManifest } from "../src/streams/datasets.js"
import { runSql } from "../src/streams/sql.js"
import { readCommittedBatches, streamingPrefixes } from "../src/streams/streamingIndex.js"
import { runSmallPipeline } from "./support/smallPipeline.js"

describe("fresh figures from the stream", () => {
  it.live(
    "count only streaming batches the final_aggregate snapshot did not merge: events, transactions, volume",
    () =>
      Effect.gen(function* () {
        const { processed, processedRoot } = yield* runSmallPipeline("fresh", 200, 9)
        const layer = Layer.mergeAll(
          Layer.succeed(ProcessedBucket, processed),
          Parquet.layer(),
          DuckDb.layer,
          layerMemory
        )
        const batches = yield* readCommittedBatches(processed)
        const final = Option.getOrThrow(yield* readManifest(processed, prefixes.finalAggregate))
        assert.deepStrictEqual(
          [...(final.streaming_batches ?? [])].sort(),
          batches.map((batch) => batch.batch_id).sort()
        )
        const figures = Effect.gen(function* () {
          yield* aggregateMerchantTotals()
          return Option.getOrThrow(yield* readCurrentAggregation()).global.stream_since_snapshot
        }).pipe(Effect.provide(layer))
        assert.deepStrictEqual(yield* figures, {
          streaming_batches: 0,
          events: 0,
          transactions: 0,
          volume_minor: {},
          newest_event_time_iso: null,
          merchants: []
        })

        const original = batches.find((batch) => batch.files.some((file) => file.dataset === "transactions"))
        if (original === undefined) return assert.fail("no streaming batch with transactions")
        const files = original.files.filter((file) => file.dataset === "transactions")
        const copies = yield* Effect.forEach(files, (file) =>
          Effect.gen(function* () {
            const key = file.key.replace(/([^/]+)$/, "late-arrival-$1")
            yield* processed.put(key, Option.getOrThrow(yield* processed.get(file.key)))
            return { ...file, key }
          })
        )
        const newer = {
          ...original,
          batch_id: "newer-batch",
          committed_at: "9999-01-01T00:00:00.000Z",
          files: copies
        }
        yield* processed.put(
          `${streamingPrefixes.batches}newer-batch.json`,
          new TextEncoder().encode(JSON.stringify(newer))
        )
        const paths = copies.map((file) => `'${processedRoot}/${file.key}'`).join(", ")
        const [expected] = yield* runSql(
          `SELECT count(DISTINCT event_id) AS events, count(DISTINCT transaction_id) AS transactions FROM read_parquet([${paths}], hive_partitioning = false)`
        ).pipe(Effect.provide(DuckDb.layer))
        const fresh = yield* figures
        assert.strictEqual(fresh.streaming_batches, 1)
        assert.strictEqual(fresh.events, Number(expected?.["events"]))
        assert.strictEqual(fresh.transactions, Number(expected?.["transactions"]))
        assert.isAbove(Object.keys(fresh.volume_minor).length, 0)
        const sum = (values: ReadonlyArray<number>) => values.reduce((total, value) => total + value, 0)
        assert.strictEqual(sum(fresh.merchants.map((merchant) => merchant.transactions)), fresh.transactions)
        assert.strictEqual(sum(fresh.merchants.map((merchant) => merchant.events)), fresh.events)
        const byCurrency = new Map<string, bigint>()
        for (const merchant of fresh.merchants)
          for (const [currency, minor] of Object.entries(merchant.volume_minor))
            byCurrency.set(currency, (byCurrency.get(currency) ?? 0n) + BigInt(minor))
        assert.deepStrictEqual(
          Object.fromEntries([...byCurrency].map(([currency, minor]) => [currency, minor.toString()])),
          fresh.volume_minor
        )
        const ranked = fresh.merchants.map((merchant) => merchant.transactions)
        assert.deepStrictEqual(
          ranked,
          [...ranked].sort((a, b) => b - a)
        )
        assert.match(fresh.newest_event_time_iso ?? "", /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
      }),
    120_000
  )

  it.live(
    "take the copy of an event the final aggregate keeps when the stream indexed copies that differ",
    () =>
      Effect.gen(function* () {
        const { processed } = yield* runSmallPipeline("copies", 50, 4)
        const codec = yield* Parquet
        const batches = yield* readCommittedBatches(processed)
        const original = batches.find((batch) => batch.files.some((file) => file.dataset === "transactions"))
        const file = original?.files.find((candidate) => candidate.dataset === "transactions")
        if (original === undefined || file === undefined) return assert.fail("no streaming transactions")
        const [row] = yield* codec.decode(Option.getOrThrow(yield* processed.get(file.key)))
        if (row === undefined) return assert.fail("an empty streaming file")
        // The lesser copy first: a DISTINCT ON without an order kept whichever came first.
        const copy = (amount: number) => ({
          ...row,
          transaction_id: "t-copies",
          currency: "USD",
          amount_minor: amount
        })
        const key = file.key.replace(/([^/]+)$/, "copies-$1")
        yield* processed.put(key, yield* codec.encode(scoredTransactionSchema, [copy(100), copy(200)]))
        const newer = {
          ...original,
          batch_id: "copies-batch",
          committed_at: "9999-01-01T00:00:00.000Z",
          files: [{ ...file, key, rows: 2 }]
        }
        yield* processed.put(
          `${streamingPrefixes.batches}copies-batch.json`,
          new TextEncoder().encode(JSON.stringify(newer))
        )
        const fresh = yield* Effect.gen(function* () {
          yield* aggregateMerchantTotals()
          return Option.getOrThrow(yield* readCurrentAggregation()).global.stream_since_snapshot
        }).pipe(
          Effect.provide(
            Layer.mergeAll(
              Layer.succeed(ProcessedBucket, processed),
              Parquet.layer(),
              DuckDb.layer,
              layerMemory
            )
          )
        )
        assert.strictEqual(fresh.events, 1)
        assert.deepStrictEqual(fresh.volume_minor, { USD: "200" })
      }).pipe(Effect.provide(Parquet.layer())),
    120_000
  )
})
