import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Stream, TestClock } from "effect"
import { makeMemoryEventLog, murmur2, nextOffsets, partitionForKey } from "../src/layers/EventLog.js"

const message = (key: string, value: string) => ({ key, value: new TextEncoder().encode(value) })
const values = (batches: Chunk.Chunk<ReadonlyArray<{ readonly value: Uint8Array }>>) =>
  Chunk.toReadonlyArray(batches)
    .flat()
    .map((record) => new TextDecoder().decode(record.value))

describe("embedded event log", () => {
  it("partitions like Kafka's default partitioner (murmur2)", () => {
    // Reference values from Kafka's UtilsTest.testMurmur2.
    assert.strictEqual(murmur2("21"), -973932308)
    assert.strictEqual(murmur2("foobar"), -790332482)
    assert.strictEqual(murmur2("a-little-bit-long-string"), -985981536)
    assert.strictEqual(murmur2("a-little-bit-longer-string"), -1486304829)
    assert.strictEqual(murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971)
    assert.strictEqual(murmur2("abc"), 479470107)
    assert.strictEqual(partitionForKey("a", 7), partitionForKey("a", 7))
    const spread = new Set(Array.from({ length: 200 }, (_, index) => partitionForKey(`tx-${index}`, 4)))
    assert.strictEqual(spread.size, 4)
  })

  it.effect("keeps one key in one partition, in order", () =>
    Effect.gen(function* () {
      const log = yield* makeMemoryEventLog(4)
      yield* log.produce("t", [
        message("tx-1", "a"),
        message("tx-2", "x"),
        message("tx-1", "b"),
        message("tx-1", "c")
      ])
      const batches = yield* log.subscribe("g", ["t"], { stopAtEnd: true }).pipe(Stream.runCollect)
      const records = Chunk.toReadonlyArray(batches).flat()
      const tx1 = records.filter((record) => record.key === "tx-1")
      assert.strictEqual(new Set(tx1.map((record) => record.partition)).size, 1)
      assert.deepStrictEqual(
        tx1.map((record) => new TextDecoder().decode(record.value)),
        ["a", "b", "c"]
      )
    })
  )

  it.effect("a group resumes from its committed offsets; another group starts from the beginning", () =>
    Effect.gen(function* () {
      const log = yield* makeMemoryEventLog(2)
      yield* log.produce("t", [message("k1", "1"), message("k2", "2"), message("k3", "3")])
      const first = yield* log
        .subscribe("g", ["t"], { stopAtEnd: true, maxBatchSize: 1 })
        .pipe(Stream.runCollect)
      const firstRecords = Chunk.toReadonlyArray(first).flat()
      yield* log.commit("g", nextOffsets(firstRecords.slice(0, 1)))
      yield* log.produce("t", [message("k4", "4")])
      const resumed = values(yield* log.subscribe("g", ["t"], { stopAtEnd: true }).pipe(Stream.runCollect))
      assert.strictEqual(resumed.length, 3, "everything after the committed offset, including the new record")
      assert.notInclude(resumed, new TextDecoder().decode(firstRecords[0]!.value))
      const other = values(yield* log.subscribe("other", ["t"], { stopAtEnd: true }).pipe(Stream.runCollect))
      assert.strictEqual(other.length, 4)
    })
  )

  it.effect("a live subscription waits for new records without polling", () =>
    Effect.gen(function* () {
      const log = yield* makeMemoryEventLog(1)
      const fiber = yield* log
        .subscribe("g", ["t"])
        .pipe(Stream.flattenIterables, Stream.take(2), Stream.runCollect, Effect.fork)
      yield* TestClock.adjust("1 minute")
      yield* log.produce("t", [message("k", "late-1")])
      yield* log.produce("t", [message("k", "late-2")])
      const received = yield* Fiber.join(fiber)
      assert.deepStrictEqual(
        Chunk.toReadonlyArray(received).map((record) => new TextDecoder().decode(record.value)),
        ["late-1", "late-2"]
      )
    })
  )

  it("nextOffsets gives the offset after the last record of each partition", () => {
    const record = (partition: number, offset: number) => ({
      topic: "t",
      partition,
      offset,
      key: null,
      value: new Uint8Array(),
      timestamp: 0
    })
    assert.deepStrictEqual(nextOffsets([record(0, 4), record(1, 0), record(0, 5)]), [
      { topic: "t", partition: 0, offset: 6 },
      { topic: "t", partition: 1, offset: 1 }
    ])
  })
})
