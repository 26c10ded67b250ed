import { assert, describe, it } from "@effect/vitest"
import { Cause, Chunk, Duration, Effect, Exit, Fiber, Queue, Stream } from "effect"
import { EventLogError } from "../src/domain/errors.js"
import { makeMemoryEventLog, partitionForKey } from "../src/layers/EventLog.js"
import { kafkaEventLogConfig, makeKafkaEventLog } from "../src/layers/KafkaEventLog.js"
import { eventLogContract } from "./support/eventLogContract.js"
import { requireService } from "./support/services.js"

describe("EventLog contract: embedded", () => {
  eventLogContract("embedded", makeMemoryEventLog(4), { patience: Duration.seconds(10) })
})

const brokers = requireService("Kafka", "RECON_KAFKA_BROKERS")

describe.skipIf(brokers === undefined)("EventLog contract: Kafka", () => {
  const makeLog = Effect.flatMap(kafkaEventLogConfig, makeKafkaEventLog)
  eventLogContract("kafka", makeLog, { patience: Duration.seconds(60), testTimeoutMs: 180_000 })

  it.scopedLive(
    "kafka: the broker places keys where partitionForKey says, for many keys and partition counts",
    () =>
      Effect.gen(function* () {
        const log = yield* makeLog
        const topic = `placement-${Date.now().toString(36)}`
        yield* log.ensureTopic(topic, 7)
        const keys = Array.from({ length: 300 }, (_, index) => `txn_${(index * 2654435761) >>> 0}-é${index}`)
        yield* log.produce(
          topic,
          keys.map((key) => ({ key, value: new TextEncoder().encode(key) }))
        )
        const records = yield* log
          .subscribe(`placement-${Date.now().toString(36)}`, [topic], { stopAtEnd: true })
          .pipe(
            Stream.runCollect,
            Effect.map((batches) => Chunk.toReadonlyArray(batches).flat()),
            Effect.timeout(Duration.seconds(60))
          )
        assert.strictEqual(records.length, keys.length)
        const mismatches = records.filter(
          (record) => record.partition !== partitionForKey(record.key ?? "", 7)
        )
        assert.deepStrictEqual(mismatches, [])
        assert.strictEqual(new Set(records.map((record) => record.partition)).size, 7)
      }),
    180_000
  )

  it.scopedLive(
    "kafka: a commit reaches the group through its live consumer; another process cannot commit for a group with members",
    () =>
      Effect.gen(function* () {
        const owner = yield* makeLog
        const otherProcess = yield* makeLog
        const suffix = Date.now().toString(36)
        const topic = `members-${suffix}`
        const group = `members-g-${suffix}`
        yield* owner.ensureTopic(topic, 2)
        yield* owner.produce(topic, [{ key: "k", value: new TextEncoder().encode("v") }])
        const received = yield* Queue.unbounded<number>()
        const subscription = yield* owner.subscribe(group, [topic]).pipe(
          Stream.tap((batch) => Queue.offer(received, batch.length)),
          Stream.runDrain,
          Effect.forkScoped
        )
        yield* Effect.timeout(Queue.take(received), Duration.seconds(60))
        const ends = yield* owner.endOffsets(topic)

        const refused = yield* Effect.exit(otherProcess.commit(group, ends))
        assert.isTrue(Exit.isFailure(refused), "a group with a member elsewhere refuses the fallback commit")
        if (Exit.isFailure(refused)) assert.instanceOf(Cause.squash(refused.cause), EventLogError)
        assert.deepStrictEqual(
          (yield* owner.committedOffsets(group, topic)).map((offset) => offset.offset),
          [0, 0]
        )

        yield* owner.commit(group, ends)
        assert.deepStrictEqual(yield* otherProcess.committedOffsets(group, topic), ends)
        yield* Fiber.interrupt(subscription)
      }),
    180_000
  )
})
