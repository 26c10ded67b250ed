import { assert, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Fiber, Queue, type Scope, Stream } from "effect"
import {
  type EventLog,
  type LogMessage,
  type LogRecord,
  nextOffsets,
  partitionForKey
} from "../../src/layers/EventLog.js"

/** How the contract suite builds a log and how long it waits on one that works in real time. */
export interface EventLogContractOptions {
  /** Upper bound of every wait (a subscription, a record that should arrive); exceeding it fails the test. */
  readonly patience?: Duration.DurationInput
  /** Vitest timeout of each test, milliseconds. */
  readonly testTimeoutMs?: number
}

const runId = Date.now().toString(36)
let nameSequence = 0
/** A topic or group name no other test (or earlier run against the same broker) used. */
const uniqueName = (prefix: string) => `${prefix}-${runId}-${++nameSequence}`

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const message = (key: string, value: string): LogMessage => ({ key, value: encoder.encode(value) })
const textOf = (record: LogRecord) => decoder.decode(record.value)
const position = (record: { readonly partition: number; readonly offset: number }) =>
  `${record.partition}:${record.offset}`

/** `count` messages over `keys` keys, values `key#sequence-within-key`. */
const keyedMessages = (count: number, keys: number, prefix = "tx"): Array<LogMessage> => {
  const sequences = new Map<string, number>()
  return Array.from({ length: count }, (_, index) => {
    const key = `${prefix}-${(index * 7) % keys}`
    const sequence = sequences.get(key) ?? 0
    sequences.set(key, sequence + 1)
    return message(key, `${key}#${sequence}`)
  })
}

/** The behaviour every EventLog implementation must have; registers one test per property. */
export const eventLogContract = <E>(
  name: string,
  makeLog: Effect.Effect<EventLog, E, Scope.Scope>,
  options: EventLogContractOptions = {}
) => {
  const patience = options.patience ?? Duration.seconds(60)
  const testTimeout = options.testTimeoutMs ?? 120_000
  const bounded = <A, E2, R>(self: Effect.Effect<A, E2, R>) => Effect.timeout(self, patience)
  const readToEnd = (log: EventLog, group: string, topics: ReadonlyArray<string>, maxBatchSize?: number) =>
    log
      .subscribe(
        group,
        topics,
        maxBatchSize === undefined ? { stopAtEnd: true } : { stopAtEnd: true, maxBatchSize }
      )
      .pipe(
        Stream.runCollect,
        Effect.map((batches) => Chunk.toReadonlyArray(batches)),
        bounded
      )

  it.scopedLive(
    `${name}: one key stays in one partition (Kafka's murmur2 partitioner), in produce order`,
    () =>
      Effect.gen(function* () {
        const log = yield* makeLog
        const topic = uniqueName("keyed")
        yield* log.ensureTopic(topic, 3)
        const messages = keyedMessages(60, 12)
        yield* log.produce(topic, messages.slice(0, 25))
        yield* log.produce(topic, messages.slice(25))
        const records = (yield* readToEnd(log, uniqueName("g"), [topic])).flat()
        assert.strictEqual(records.length, 60)
        const byKey = new Map<string, Array<LogRecord>>()
        for (const record of records) {
          assert.strictEqual(record.topic, topic)
          assert.isNotNull(record.key)
          byKey.set(record.key ?? "", [...(byKey.get(record.key ?? "") ?? []), record])
        }
        assert.strictEqual(byKey.size, 12)
        for (const [key, keyed] of byKey) {
          assert.deepStrictEqual(
            [...new Set(keyed.map((record) => record.partition))],
            [partitionForKey(key, 3)],
            `partition of ${key}`
          )
          const sorted = [...keyed].sort((a, b) => a.offset - b.offset)
          assert.deepStrictEqual(
            sorted.map(textOf),
            keyed.map((_, sequence) => `${key}#${sequence}`),
            `order of ${key}`
          )
        }
      }),
    testTimeout
  )

  it.scopedLive(
    `${name}: a bounded subscription returns exactly what was produced, then ends; an empty topic ends at once`,
    () =>
      Effect.gen(function* () {
        const log = yield* makeLog
        const empty = uniqueName("empty")
        yield* log.ensureTopic(empty, 2)
        assert.deepStrictEqual((yield* readToEnd(log, uniqueName("g"), [empty])).flat(), [])

        const topic = uniqueName("exact")
        yield* log.ensureTopic(topic, 4)
        const binary = Uint8Array.from([0, 255, 1, 128, 10, 13, 0])
        const messages = [...keyedMessages(40, 9), { key: "binary", value: binary }]
        yield* log.produce(topic, messages)
        const records = (yield* readToEnd(log, uniqueName("g"), [topic, empty])).flat()
        assert.deepStrictEqual(
          records.map((record) => `${record.key}=${textOf(record)}`).sort(),
          messages.map((sent) => `${sent.key}=${decoder.decode(sent.value)}`).sort()
        )
        assert.deepStrictEqual(
          [...(records.find((record) => record.key === "binary")?.value ?? [])],
          [...binary],
          "bytes are kept as they were"
        )
        for (const partition of [0, 1, 2, 3]) {
          const offsets = records
            .filter((record) => record.partition === partition)
            .map((record) => record.offset)
            .sort((a, b) => a - b)
          assert.deepStrictEqual(
            offsets,
            offsets.map((_, index) => index),
            `partition ${partition} is read from 0 without gaps`
          )
        }
        assert.isTrue(records.every((record) => record.topic === topic && Number.isFinite(record.timestamp)))
      }),
    testTimeout
  )

  it.scopedLive(
    `${name}: a group resumes from the offsets it committed while subscribed; another group starts at the beginning`,
    () =>
      Effect.gen(function* () {
        const log = yield* makeLog
        const topic = uniqueName("resume")
        const group = uniqueName("g")
        yield* log.ensureTopic(topic, 2)
        yield* log.produce(topic, keyedMessages(20, 6))
        const consumed = yield* log.subscribe(group, [topic], { stopAtEnd: true, maxBatchSize: 3 }).pipe(
          Stream.mapEffect((batch) => Effect.as(log.commit(group, nextOffsets(batch)), batch)),
          Stream.take(2),
          Stream.runCollect,
          Effect.map((batches) => Chunk.toReadonlyArray(batches).flat()),
          bounded
        )
        assert.isAtLeast(consumed.length, 2)
        const expectedCommitted = [0, 1].map((partition) => ({
          topic,
          partition,
          offset: nextOffsets(consumed).find((offset) => offset.partition === partition)?.offset ?? 0
        }))
        assert.deepStrictEqual(yield* log.committedOffsets(group, topic), expectedCommitted)

        yield* log.produce(topic, keyedMessages(5, 5, "late"))
        const everything = (yield* readToEnd(log, uniqueName("other"), [topic])).flat()
        assert.strictEqual(everything.length, 25, "another group reads from the beginning")
        const resumed = (yield* readToEnd(log, group, [topic])).flat()
        const consumedPositions = new Set(consumed.map(position))
        assert.deepStrictEqual(
          resumed.map(position).sort(),
          everything
            .map(position)
            .filter((at) => !consumedPositions.has(at))
            .sort()
        )
      }),
    testTimeout
  )

  it.scopedLive(
    `${name}: committedOffsets and endOffsets agree with what was produced and committed`,
    () =>
      Effect.gen(function* () {
        const log = yield* makeLog
        const topic = uniqueName("offsets")
        const group = uniqueName("g")
        yield* log.ensureTopic(topic, 3)
        const zero = [0, 1, 2].map((partition) => ({ topic, partition, offset: 0 }))
        assert.deepStrictEqual(yield* log.committedOffsets(group, topic), zero)
        assert.deepStrictEqual(yield* log.endOffsets(topic), zero)

        const messages = keyedMessages(30, 10)
        yield* log.produce(topic, messages)
        const counts = [0, 1, 2].map(
          (partition) => messages.filter((sent) => partitionForKey(sent.key, 3) === partition).length
        )
        assert.deepStrictEqual(
          yield* log.endOffsets(topic),
          counts.map((offset, partition) => ({ topic, partition, offset }))
        )

        const [busiest, second] = [0, 1, 2].sort((a, b) => counts[b]! - counts[a]!)
        assert.isTrue(counts[busiest!]! >= 2 && counts[second!]! >= 1, `test data spread ${counts}`)
        yield* log.commit(group, [
          { topic, partition: busiest!, offset: 2 },
          { topic, partition: second!, offset: 1 }
        ])
        assert.deepStrictEqual(
          yield* log.committedOffsets(group, topic),
          [0, 1, 2].map((partition) => ({
            topic,
            partition,
            offset: partition === busiest ? 2 : partition === second ? 1 : 0
          }))
        )
        const resumed = (yield* readToEnd(log, group, [topic])).flat()
        assert.strictEqual(resumed.length, 30 - 3)
        assert.isFalse(resumed.some((record) => record.partition === busiest && record.offset < 2))
        assert.isFalse(resumed.some((record) => record.partition === second && record.offset < 1))

        yield* log.commit(group, [{ topic, partition: 0, offset: counts[0]! }])
        assert.deepStrictEqual((yield* log.committedOffsets(group, topic))[0], {
          topic,
          partition: 0,
          offset: counts[0]!
        })
      }),
    testTimeout
  )

  it.scopedLive(
    `${name}: a live subscription receives records produced after it started, and releases the group when it ends`,
    () =>
      Effect.gen(function* () {
        const log = yield* makeLog
        const topic = uniqueName("live")
        const group = uniqueName("g")
        yield* log.ensureTopic(topic, 2)
        const received = yield* Queue.unbounded<LogRecord>()
        const subscription = yield* log.subscribe(group, [topic]).pipe(
          Stream.flattenIterables,
          Stream.tap((record) => Queue.offer(received, record)),
          Stream.take(6),
          Stream.runDrain,
          Effect.forkScoped
        )
        yield* log.produce(topic, keyedMessages(3, 3, "first"))
        const first = yield* bounded(Queue.takeBetween(received, 3, 3))
        yield* log.produce(topic, keyedMessages(3, 3, "second"))
        const second = yield* bounded(Queue.takeBetween(received, 3, 3))
        assert.deepStrictEqual(Chunk.toReadonlyArray(first).map(textOf).sort(), [
          "first-0#0",
          "first-1#0",
          "first-2#0"
        ])
        assert.deepStrictEqual(Chunk.toReadonlyArray(second).map(textOf).sort(), [
          "second-0#0",
          "second-1#0",
          "second-2#0"
        ])
        yield* bounded(Fiber.join(subscription))

        const ends = yield* log.endOffsets(topic)
        yield* log.commit(group, ends)
        assert.deepStrictEqual(
          yield* log.committedOffsets(group, topic),
          ends,
          "commit after the subscription ended"
        )
        assert.deepStrictEqual((yield* readToEnd(log, group, [topic])).flat(), [])
      }),
    testTimeout
  )

  it.scopedLive(
    `${name}: no batch is larger than maxBatchSize, and batches keep partition order`,
    () =>
      Effect.gen(function* () {
        const log = yield* makeLog
        const topic = uniqueName("batches")
        yield* log.ensureTopic(topic, 1)
        const messages = keyedMessages(25, 4)
        yield* log.produce(topic, messages)
        const batches = yield* readToEnd(log, uniqueName("g"), [topic], 4)
        assert.isTrue(
          batches.every((batch) => batch.length >= 1 && batch.length <= 4),
          `batch sizes ${batches.map((batch) => batch.length)}`
        )
        assert.isAtLeast(batches.length, 7)
        assert.deepStrictEqual(
          batches.flat().map((record) => record.offset),
          messages.map((_, index) => index)
        )
        assert.deepStrictEqual(
          batches.flat().map(textOf),
          messages.map((sent) => decoder.decode(sent.value))
        )
      }),
    testTimeout
  )
}
