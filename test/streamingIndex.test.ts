import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, Layer, Option, Stream, TestClock } from "effect"
import { EventLogService, partitionForKey } from "../src/layers/EventLog.js"
import { makeMemoryObjectStore, ProcessedBucket, RawBucket } from "../src/layers/ObjectStore.js"
import { Parquet } from "../src/layers/ParquetCodec.js"
import { readFinalAggregate } from "../src/streams/datasets.js"
import { runFinalAggregate } from "../src/streams/finalAggregate.js"
import { runStreamIngest } from "../src/streams/ingest.js"
import {
  combinedWatermark,
  EventTimeState,
  makeCommittedFilter,
  readCommittedBatches,
  runStreamingIndex,
  type StreamingBatchManifest,
  streamingPrefixes
} from "../src/streams/streamingIndex.js"
import { runStreamingService } from "../src/streams/streamingService.js"
import {
  jsonLines,
  memoryLayers,
  merchantJson,
  quarantineText,
  signalJson,
  transactionJson,
  userJson
} from "./support/fixtures.js"

const encode = (value: Record<string, unknown> | string | Uint8Array) =>
  value instanceof Uint8Array
    ? value
    : new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value))

const send = (topic: string, ...values: ReadonlyArray<Record<string, unknown> | string | Uint8Array>) =>
  Effect.flatMap(EventLogService, (log) =>
    log.produce(
      topic,
      values.map((value) => ({
        key: typeof value === "string" || value instanceof Uint8Array ? "" : String(value["transaction_id"]),
        value: encode(value)
      }))
    )
  )

const options = {
  maxBatchRecords: 100,
  maxBatchWait: "5 seconds",
  allowedLateness: "1 hour",
  stopAtEnd: false
} as const

describe("streaming index on the embedded log", () => {
  it.scoped("closes a micro-batch by time, commits the manifest, then the offsets", () =>
    Effect.gen(function* () {
      const raw = yield* RawBucket
      yield* raw.put("raw/dimensions/users/users.jsonl", jsonLines(userJson()))
      yield* raw.put("raw/dimensions/merchants/merchants.jsonl", jsonLines(merchantJson()))
      const log = yield* EventLogService
      const processed = yield* ProcessedBucket
      yield* send(
        "transactions",
        transactionJson(),
        transactionJson({ event_id: "e-2", sequence: 1, status: "captured" })
      )
      yield* send("fraud_signals", signalJson())
      const fiber = yield* Effect.fork(runStreamingIndex(options))

      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(
        (yield* readCommittedBatches(processed)).length,
        0,
        "no batch before the wait elapses"
      )
      assert.deepStrictEqual(
        (yield* log.committedOffsets("streaming-index", "transactions")).map((o) => o.offset),
        [0, 0]
      )

      yield* TestClock.adjust("1 second")
      const batches = yield* readCommittedBatches(processed)
      assert.strictEqual(batches.length, 1)
      assert.strictEqual(batches[0]!.consumed, 3)
      assert.deepStrictEqual(
        new Set(batches[0]!.files.map((file) => file.dataset)),
        new Set(["transactions", "fraud_signals", "fraud_signal_joins"])
      )
      const committed = yield* log.committedOffsets("streaming-index", "transactions")
      const ends = yield* log.endOffsets("transactions")
      assert.deepStrictEqual(committed, ends)
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(memoryLayers))
  )

  it.scoped("sends bad records to the dead-letter topic with reason, never the card number", () =>
    Effect.gen(function* () {
      const log = yield* EventLogService
      const notUtf8 = Uint8Array.from(encode(transactionJson({ event_id: "e-X" })), (byte) =>
        byte === 0x58 ? 0xfe : byte
      )
      yield* send(
        "transactions",
        "{broken",
        transactionJson({ event_id: "e-pan", ip_address: "4111111111111111" }),
        notUtf8,
        transactionJson({ event_id: "e-ok" })
      )
      const fiber = yield* Effect.fork(runStreamingIndex(options))
      yield* TestClock.adjust("5 seconds")
      const batches = yield* log
        .subscribe("test-reader", ["transactions.dlq"], { stopAtEnd: true })
        .pipe(Stream.runCollect)
      const letters = Chunk.toReadonlyArray(batches)
        .flat()
        .map((record) => new TextDecoder().decode(record.value))
      assert.strictEqual(letters.length, 3)
      const all = letters.join("\n")
      assert.include(all, "(record): not valid JSON")
      assert.include(all, "(record): not valid UTF-8: byte 0xfe at byte")
      assert.include(all, "ip_address: contains a full card number")
      assert.match(all, /"source":"transactions\/\d@\d+"/)
      assert.notInclude(letters.join(""), "4111111111111111")
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(memoryLayers))
  )

  it.scoped("routes events behind the watermark to late/ and drops duplicate ids within a transaction", () =>
    Effect.gen(function* () {
      const processed = yield* ProcessedBucket
      yield* send(
        "transactions",
        transactionJson({ event_id: "e-new", event_time: "2026-11-24T12:00:00Z" }),
        transactionJson({ event_id: "e-new", event_time: "2026-11-24T12:00:00Z" }),
        // The same event_id in another transaction is another event (contract §6 counts ids per transaction).
        transactionJson({ event_id: "e-new", transaction_id: "t-other", event_time: "2026-11-24T12:00:00Z" }),
        transactionJson({ event_id: "e-old", event_time: "2026-11-24T10:59:59Z" })
      )
      yield* send(
        "fraud_signals",
        signalJson({ signal_id: "s-shared", event_time: "2026-11-24T12:00:00Z" }),
        signalJson({ signal_id: "s-shared", transaction_id: "t-other", event_time: "2026-11-24T12:00:00Z" })
      )
      const fiber = yield* Effect.fork(runStreamingIndex(options))
      yield* TestClock.adjust("5 seconds")
      const [batch] = yield* readCommittedBatches(processed)
      assert.strictEqual(batch!.duplicates, 1)
      const rowsOf = (dataset: string) =>
        batch!.files.filter((file) => file.dataset === dataset).reduce((total, file) => total + file.rows, 0)
      assert.strictEqual(rowsOf("transactions"), 2, "e-new of t-1 once, e-new of t-other")
      assert.strictEqual(rowsOf("fraud_signals"), 2)
      const late = batch!.files.filter((file) => file.dataset === "late_transactions")
      assert.strictEqual(late.length, 1)
      assert.isTrue(late[0]!.key.startsWith("late/transactions/dt=2026-11-24/"))
      assert.isTrue(Option.isSome(yield* processed.get(late[0]!.key)))
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(memoryLayers))
  )
})

describe("copies of one id in the stream", () => {
  it.scoped(
    "drops exact replays but keeps copies that differ, so the final aggregate chooses as in batch",
    () =>
      Effect.gen(function* () {
        const authorized = (transactionId: string) =>
          transactionJson({ event_id: "e-r", transaction_id: transactionId, amount_minor: 100 })
        const captured = (transactionId: string) =>
          transactionJson({
            event_id: "e-r",
            transaction_id: transactionId,
            sequence: 1,
            status: "captured",
            amount_minor: 200
          })
        const low = (transactionId: string) =>
          signalJson({ signal_id: "s-r", transaction_id: transactionId, score: 0.3, reasons: ["r1"] })
        const high = (transactionId: string) =>
          signalJson({
            signal_id: "s-r",
            transaction_id: transactionId,
            score: 0.6,
            reasons: ["r2"],
            confirmed_fraud: true
          })
        // Each arrival order, each with an exact replay of its first copy.
        yield* send("transactions", authorized("t-a"), captured("t-a"), authorized("t-a"))
        yield* send("transactions", captured("t-b"), authorized("t-b"), captured("t-b"))
        yield* send("fraud_signals", low("t-a"), high("t-a"), low("t-a"))
        yield* send("fraud_signals", high("t-b"), low("t-b"), high("t-b"))
        const summary = yield* runStreamingIndex({ ...options, stopAtEnd: true })
        assert.strictEqual(summary.duplicates, 4)
        yield* runFinalAggregate
        const rows = yield* readFinalAggregate(yield* ProcessedBucket, yield* Parquet)
        for (const transactionId of ["t-a", "t-b"]) {
          const row = rows.find((candidate) => candidate.transaction_id === transactionId)
          assert.deepInclude(row, {
            status: "captured",
            sequence: 1,
            amount_minor: 200,
            event_count: 1,
            fraud_signal_count: 1,
            fraud_max_score: 0.6,
            fraud_reasons: ["r1", "r2"],
            confirmed_fraud: true
          })
        }
      }).pipe(Effect.provide(memoryLayers))
  )
})

describe("dimension refresh", () => {
  it.scoped("joins the newest snapshot after a refresh, without a restart", () =>
    Effect.gen(function* () {
      const raw = yield* RawBucket
      const processed = yield* ProcessedBucket
      const codec = yield* Parquet
      yield* raw.put("raw/dimensions/merchants/snapshot=20261120T000000Z/m.jsonl", jsonLines(merchantJson()))
      const fiber = yield* Effect.fork(runStreamingIndex({ ...options, dimensionsRefresh: "1 minute" }))
      yield* send("transactions", transactionJson({ event_id: "e-before" }))
      yield* TestClock.adjust("5 seconds")
      yield* raw.put(
        "raw/dimensions/merchants/snapshot=20261125T000000Z/m.jsonl",
        jsonLines(merchantJson({ name: "Renamed Merchant", risk_level: "high" }))
      )
      yield* TestClock.adjust("1 minute")
      yield* send(
        "transactions",
        transactionJson({ event_id: "e-after", event_time: "2026-11-24T10:00:01Z" })
      )
      yield* TestClock.adjust("5 seconds")
      const files = (yield* readCommittedBatches(processed)).flatMap((batch) => batch.files)
      const rows = (yield* Effect.forEach(files, (file) =>
        Effect.flatMap(processed.get(file.key), (body) => codec.decode(Option.getOrThrow(body)))
      )).flat()
      const nameOf = (eventId: string) => rows.find((row) => row["event_id"] === eventId)?.["merchant_name"]
      assert.strictEqual(nameOf("e-before"), "Café 東京")
      assert.strictEqual(nameOf("e-after"), "Renamed Merchant")
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(memoryLayers))
  )
})

describe("streaming index restarts", () => {
  it.scoped("a crash between the manifest and the offset commit does not index a batch twice", () =>
    Effect.gen(function* () {
      const log = yield* EventLogService
      const processed = yield* ProcessedBucket
      const events = Array.from({ length: 30 }, (_, index) =>
        transactionJson({ event_id: `e-${index}`, transaction_id: `t-${index}` })
      )
      yield* send("transactions", ...events)
      const crashingCommit = Layer.succeed(EventLogService, {
        ...log,
        commit: () => Effect.die("killed after the manifest, before the offset commit")
      })
      const crashed = yield* runStreamingIndex({ ...options, stopAtEnd: true, maxBatchRecords: 10 }).pipe(
        Effect.provide(crashingCommit),
        Effect.exit
      )
      assert.isTrue(Exit.isFailure(crashed))
      assert.strictEqual((yield* readCommittedBatches(processed)).length, 1, "one batch reached its manifest")
      assert.deepStrictEqual(
        (yield* log.committedOffsets("streaming-index", "transactions")).map((o) => o.offset),
        [0, 0],
        "the log never got the commit"
      )

      // Other batch boundaries after the restart: a replay would not rewrite the same batch.
      yield* runStreamingIndex({ ...options, stopAtEnd: true, maxBatchRecords: 25 })
      const batches = yield* readCommittedBatches(processed)
      const indexed = batches
        .flatMap((batch) => batch.files)
        .filter((file) => file.dataset === "transactions")
      assert.strictEqual(
        indexed.reduce((total, file) => total + file.rows, 0),
        30,
        "every event exactly once across committed batches"
      )
      assert.strictEqual(
        batches.reduce((total, batch) => total + batch.consumed, 0),
        30
      )
    }).pipe(Effect.provide(memoryLayers))
  )
})

describe("restart with state", () => {
  for (const [codecName, codec] of [
    ["parquetjs", Parquet.layerParquetjs({ rowGroupSize: 1000 })],
    ["DuckDB", Parquet.layer()]
  ] as const)
    it.scoped(
      `recognises a duplicate event or signal that arrives after a restart (${codecName} codec)`,
      () =>
        Effect.gen(function* () {
          const processed = yield* ProcessedBucket
          const withoutOptionals = transactionJson({ event_id: "e-2", card_bin: null, country: undefined })
          const signal = signalJson({ signal_id: "s-1", score: 0.1 + 0.2, reasons: ["é", "a"] })
          yield* send("transactions", transactionJson({ event_id: "e-1" }), withoutOptionals)
          yield* send("fraud_signals", signal, signalJson({ signal_id: "s-2", confirmed_fraud: true }))
          yield* runStreamingIndex({ ...options, stopAtEnd: true })
          // A producer retry after the restart: the same records again, at new offsets.
          yield* send(
            "transactions",
            transactionJson({ event_id: "e-1" }),
            withoutOptionals,
            transactionJson({ event_id: "e-3" })
          )
          yield* send("fraud_signals", signal, signalJson({ signal_id: "s-2", confirmed_fraud: true }))
          const second = yield* runStreamingIndex({ ...options, stopAtEnd: true })
          assert.strictEqual(second.duplicates, 4)
          assert.strictEqual(second.indexed, 1)
          const indexedRows = (yield* readCommittedBatches(processed))
            .flatMap((batch) => batch.files)
            .filter((file) => file.dataset === "transactions")
            .reduce((total, file) => total + file.rows, 0)
          assert.strictEqual(indexedRows, 3, "e-1, e-2 and e-3 once each")
        }).pipe(Effect.provide(Layer.mergeAll(memoryLayers, codec)))
    )
})

describe("feeding the embedded log from files", () => {
  it.effect(
    "sends each line's bytes as they are: split at LF only, bad UTF-8 left for the index to refuse",
    () =>
      Effect.gen(function* () {
        const directory = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "feed-"))
        NodeFs.mkdirSync(NodePath.join(directory, "stream"))
        const line = (eventId: string) => JSON.stringify(transactionJson({ event_id: eventId }))
        const withCarriageReturn = line("e-cr").replace(',"status"', ',\r"status"')
        const notUtf8 = Uint8Array.from(new TextEncoder().encode(line("e-X")), (byte) =>
          byte === 0x58 ? 0xff : byte
        )
        NodeFs.writeFileSync(
          NodePath.join(directory, "stream", "transactions.jsonl"),
          Buffer.concat([
            Buffer.from(`\uFEFF${line("e-1")}\r\n \t\n\n${withCarriageReturn}\n`),
            Buffer.from(notUtf8),
            Buffer.from(`\n\u00a0\n${line("e-last")}`)
          ])
        )
        const fed = yield* runStreamIngest(directory)
        assert.deepStrictEqual(fed, { transactions: 5, fraudSignals: 0 })
        const summary = yield* runStreamingIndex({ ...options, stopAtEnd: true })
        assert.deepInclude(summary, { consumed: 5, accepted: 3, quarantined: 2 })
        const processed = yield* ProcessedBucket
        const all = yield* quarantineText(processed, "quarantine/stream/")
        assert.include(all, "not valid UTF-8: byte 0xff")
        assert.include(all, "not valid JSON")
        NodeFs.rmSync(directory, { recursive: true, force: true })
      }).pipe(Effect.provide(memoryLayers))
  )

  it.effect("feeds the topics the service reads (RECON_TOPIC_* apply to the feed too)", () =>
    Effect.gen(function* () {
      const directory = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "feed-topics-"))
      NodeFs.mkdirSync(NodePath.join(directory, "stream"))
      NodeFs.writeFileSync(
        NodePath.join(directory, "stream", "transactions.jsonl"),
        `${JSON.stringify(transactionJson({ event_id: "e-topic" }))}\n`
      )
      const summary = yield* runStreamingService({
        ...options,
        stopAtEnd: true,
        operationsPort: "disabled",
        topics: { transactions: "tx_v2", fraudSignals: "fs_v2" },
        feed: { directory }
      })
      assert.deepInclude(summary, { consumed: 1, indexed: 1 })
      NodeFs.rmSync(directory, { recursive: true, force: true })
    }).pipe(Effect.provide(memoryLayers))
  )
})

describe("embedded logs", () => {
  it.effect(
    "a new embedded log over the same bucket is read whole: earlier runs' manifests are another log's",
    () =>
      Effect.gen(function* () {
        const record = (prefix: string, index: number) =>
          transactionJson({ event_id: `${prefix}-${index}`, transaction_id: `${prefix}-t-${index}` })
        const runOnFreshLog = (prefix: string, replayed: ReadonlyArray<Record<string, unknown>> = []) =>
          Effect.gen(function* () {
            yield* send(
              "transactions",
              ...Array.from({ length: 5 }, (_, index) => record(prefix, index)),
              ...replayed
            )
            return yield* runStreamingIndex({ ...options, stopAtEnd: true })
          }).pipe(Effect.provide(EventLogService.layerMemory(2)))
        assert.strictEqual((yield* runOnFreshLog("first")).indexed, 5)
        // The new log also carries an exact replay of an earlier run's record: dedup state holds across logs.
        const second = yield* runOnFreshLog("second", [record("first", 0)])
        assert.strictEqual(second.consumed, 6)
        assert.strictEqual(second.indexed, 5)
        assert.strictEqual(second.duplicates, 1)
        const manifests = yield* readCommittedBatches(yield* ProcessedBucket)
        assert.strictEqual(new Set(manifests.map((manifest) => manifest.batch_id)).size, manifests.length)
        yield* runFinalAggregate
        const rows = yield* readFinalAggregate(yield* ProcessedBucket, yield* Parquet)
        assert.strictEqual(rows.length, 10)
      }).pipe(Effect.provide(memoryLayers))
  )
})

describe("partition take-over", () => {
  it.scoped("skips records another instance's committed manifest already covers", () =>
    Effect.gen(function* () {
      const processed = yield* ProcessedBucket
      // The streaming index creates its topics with 4 partitions.
      const partition = partitionForKey("t-hot", 4)
      const fiber = yield* Effect.fork(runStreamingIndex(options))
      yield* TestClock.adjust("1 second")
      // Another instance indexed offsets 0–4 of this partition and died before committing to the log.
      yield* processed.put(
        "streaming_index/_batches/from-another-instance.json",
        new TextEncoder().encode(
          JSON.stringify({
            batch_id: "from-another-instance",
            group: "streaming-index",
            log_instance: (yield* EventLogService).instance,
            committed_at: "2026-11-24T00:00:00.000Z",
            files: [],
            offsets: [{ topic: "transactions", partition, offset: 5 }],
            consumed: 5,
            quarantined: 0,
            duplicates: 0
          })
        )
      )
      yield* send(
        "transactions",
        ...Array.from({ length: 8 }, (_, index) =>
          transactionJson({ event_id: `e-${index}`, transaction_id: "t-hot" })
        )
      )
      yield* TestClock.adjust("5 seconds")
      const ours = (yield* readCommittedBatches(processed)).filter(
        (batch) => batch.batch_id !== "from-another-instance"
      )
      assert.strictEqual(
        ours.reduce((total, batch) => total + batch.consumed, 0),
        3,
        "only offsets 5, 6 and 7"
      )
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(memoryLayers))
  )
})

describe("EventTimeState", () => {
  it("evicts ids behind the watermark so state stays bounded", () => {
    const state = new EventTimeState(10)
    for (let time = 0; time < 1000; time++) {
      assert.strictEqual(state.observe(`id-${time}`, time), "new")
      state.evict()
    }
    assert.isAtMost(state.size, 11)
    assert.strictEqual(state.observe("id-999", 999), "duplicate")
    assert.strictEqual(state.observe("id-5", 5), "late")
  })

  it("holds the watermark at the slowest partition, so a lagging partition's events are not late", () => {
    const state = new EventTimeState(10)
    assert.strictEqual(state.observe("a", 1000, "p0"), "new")
    assert.strictEqual(state.observe("b", 100, "p1"), "new", "p1 is behind p0, but within its own progress")
    assert.strictEqual(state.watermark, 90)
    assert.strictEqual(
      state.observe("c", 80, "p1"),
      "late",
      "older than the slowest partition minus lateness"
    )
    assert.strictEqual(state.observe("d", 95, "p0"), "new")
  })

  it("stops waiting for a partition that stayed silent past the idle timeout, until it delivers again", () => {
    const state = new EventTimeState(10, 1000)
    state.advanceTo(0)
    state.observe("a", 100, "p0")
    state.observe("b", 50, "p1")
    state.advanceTo(900)
    state.observe("c", 300, "p0")
    state.evict()
    assert.strictEqual(state.watermark, 40, "p1 is quiet but not idle yet: it still holds the watermark")
    assert.strictEqual(state.size, 3)
    state.advanceTo(1200)
    state.observe("d", 400, "p0")
    state.evict()
    assert.strictEqual(state.watermark, 390, "p1 idle for 1200 ms: only p0 counts")
    assert.strictEqual(state.size, 1, "ids behind the advanced watermark are evicted")
    assert.strictEqual(state.observe("e", 395, "p1"), "new", "p1 delivers again and counts again")
    assert.strictEqual(state.watermark, 385)
  })

  it("a join waits only for inputs that are active", () => {
    const transactions = new EventTimeState(10, 1000)
    const signals = new EventTimeState(10, 1000)
    transactions.advanceTo(0)
    transactions.observe("t", 500, "p0")
    assert.strictEqual(combinedWatermark([transactions, signals]), 490, "no signal ever arrived")
    signals.advanceTo(0)
    signals.observe("s", 200, "p0")
    assert.strictEqual(combinedWatermark([transactions, signals]), 190)
    transactions.advanceTo(5000)
    signals.advanceTo(5000)
    transactions.observe("t2", 600, "p0")
    assert.strictEqual(combinedWatermark([transactions, signals]), 590, "the signal topic went idle")
    assert.strictEqual(combinedWatermark([new EventTimeState(10)]), Number.NEGATIVE_INFINITY)
    const quietDuplicates = new EventTimeState(10, 1000)
    quietDuplicates.advanceTo(0)
    quietDuplicates.observe("x", 100, "p1")
    quietDuplicates.observe("x", 100, "p2")
    quietDuplicates.advanceTo(2000)
    quietDuplicates.observe("y", 300, "p1")
    assert.isTrue(quietDuplicates.active, "p1 delivered just now; p2, idle, only ever sent a duplicate")
  })
})

describe("records already in committed manifests", () => {
  const recordsAt = (offsets: ReadonlyArray<number>, assignment: number) =>
    offsets.map((offset) => ({
      topic: "transactions",
      partition: 0,
      offset,
      key: "tx",
      value: new Uint8Array(),
      timestamp: 0,
      assignment
    }))
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, index) => from + index)

  it.effect("are read again when a partition comes back under a new assignment", () =>
    Effect.gen(function* () {
      const processed = yield* ProcessedBucket
      const committed = yield* makeCommittedFilter("g")
      assert.strictEqual((yield* committed.filter(recordsAt(range(0, 5), 1))).length, 5)
      // Another member owned the partition for a while, committed a batch up to offset 10, and died before
      // committing the offsets to the log.
      const manifest: StreamingBatchManifest = {
        batch_id: "other-member",
        group: "g",
        log_instance: (yield* EventLogService).instance,
        committed_at: "2026-11-26T00:00:00.000Z",
        files: [],
        offsets: [{ topic: "transactions", partition: 0, offset: 10 }],
        consumed: 5,
        quarantined: 0,
        duplicates: 0
      }
      yield* processed.put(
        `${streamingPrefixes.batches}other-member.json`,
        new TextEncoder().encode(JSON.stringify(manifest))
      )
      // Same assignment: this member owned the partition throughout, nobody else can have committed it.
      assert.strictEqual((yield* committed.filter(recordsAt(range(5, 7), 1))).length, 2)
      const afterRebalance = yield* committed.filter(recordsAt(range(5, 13), 2))
      assert.deepStrictEqual(
        afterRebalance.map((record) => record.offset),
        [10, 11, 12]
      )
    }).pipe(Effect.provide(Layer.merge(ProcessedBucket.layerMemory, EventLogService.layerMemory(1))))
  )

  it.effect(
    "fetch only the manifests not read before, so a rebalance does not read the whole history again",
    () => {
      const store = makeMemoryObjectStore()
      const fetched: Array<string> = []
      const countingStore = {
        ...store,
        get: (key: string) =>
          Effect.zipRight(
            Effect.sync(() => fetched.push(key)),
            store.get(key)
          )
      }
      return Effect.gen(function* () {
        const instance = (yield* EventLogService).instance
        const manifestUpTo = (batchId: string, offset: number, group = "g"): StreamingBatchManifest => ({
          batch_id: batchId,
          group,
          log_instance: instance,
          committed_at: `2026-11-26T00:00:0${offset % 10}.000Z`,
          files: [],
          offsets: [{ topic: "transactions", partition: 0, offset }],
          consumed: 1,
          quarantined: 0,
          duplicates: 0
        })
        const commit = (manifest: StreamingBatchManifest) =>
          store.put(
            `${streamingPrefixes.batches}${manifest.batch_id}.json`,
            new TextEncoder().encode(JSON.stringify(manifest))
          )
        // b0 is another group's batch: batch ids do not name the group, so this group may yet write that key.
        const atStart = [manifestUpTo("b0", 12, "other"), manifestUpTo("b1", 3), manifestUpTo("b2", 6)]
        for (const manifest of atStart) yield* commit(manifest)
        // Written by another member after this one read the manifests at start.
        yield* commit(manifestUpTo("b3", 8))
        const committed = yield* makeCommittedFilter("g", atStart)
        const first = yield* committed.filter(recordsAt(range(0, 12), 1))
        assert.deepStrictEqual(
          first.map((record) => record.offset),
          [8, 9, 10, 11]
        )
        const key = (batchId: string) => `${streamingPrefixes.batches}${batchId}.json`
        assert.deepStrictEqual(fetched, [key("b0"), key("b3")])
        yield* commit(manifestUpTo("b4", 11))
        const afterRebalance = yield* committed.filter(recordsAt(range(9, 14), 2))
        assert.deepStrictEqual(
          afterRebalance.map((record) => record.offset),
          [11, 12, 13]
        )
        assert.deepStrictEqual(fetched, [key("b0"), key("b3"), key("b0"), key("b4")])
        // This group's batch over the same offsets replaces the other group's manifest at b0.
        yield* commit(manifestUpTo("b0", 13))
        const afterAnother = yield* committed.filter(recordsAt(range(12, 15), 3))
        assert.deepStrictEqual(
          afterAnother.map((record) => record.offset),
          [13, 14]
        )
      }).pipe(
        Effect.provide(
          Layer.merge(Layer.succeed(ProcessedBucket, countingStore), EventLogService.layerMemory(1))
        )
      )
    }
  )
})
