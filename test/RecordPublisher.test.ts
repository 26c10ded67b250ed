import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Either, Exit, Fiber } from "effect"
import { EventLogError } from "../src/domain/errors.js"
import { type EventLog, type LogMessage, makeMemoryEventLog } from "../src/layers/EventLog.js"
import {
  type IdempotencyStore,
  IdempotencyStoreError,
  makeMemoryIdempotencyStore
} from "../src/layers/IdempotencyStore.js"
import { type ClaimedRecord, makeRecordPublisher } from "../src/layers/RecordPublisher.js"

const lifetimes = { pendingTtlMillis: 30_000, doneTtlMillis: 3_600_000 }
const encoder = new TextEncoder()

const record = (id: string, content = "same"): ClaimedRecord => ({
  claim: { key: `t:${id}`, fingerprint: content },
  message: { key: id, value: encoder.encode(`${id}:${content}`) }
})

/**
 * An embedded log that records every produce call; while `gated`, a produce call signals `entered` and waits
 * for `open`, so a test can queue calls behind it without sleeping. Fails the next `failures` produce calls,
 * and the `failCall`-th one (counting from 1).
 */
const instrumentedLog = Effect.gen(function* () {
  const base = yield* makeMemoryEventLog(2)
  const entered = yield* Deferred.make<void>()
  const open = yield* Deferred.make<void>()
  const produced: Array<{ topic: string; keys: ReadonlyArray<string> }> = []
  const state = { gated: true, failures: 0, failCall: 0 }
  const log: EventLog = {
    ...base,
    produce: (topic: string, messages: ReadonlyArray<LogMessage>) =>
      Effect.gen(function* () {
        produced.push({ topic, keys: messages.map((message) => message.key) })
        const callNumber = produced.length
        if (state.gated) {
          yield* Deferred.succeed(entered, undefined)
          yield* Deferred.await(open)
        }
        if (state.failures > 0 || callNumber === state.failCall) {
          state.failures--
          return yield* new EventLogError({ operation: "produce", cause: "broker not available" })
        }
        yield* base.produce(topic, messages)
      })
  }
  return { log, entered, open, produced, state }
})

/** A memory store that counts claim calls and can be made to fail them. */
const countingStore = () => {
  const base = makeMemoryIdempotencyStore()
  const counts = { claims: 0, completes: 0, failClaims: false }
  const store: IdempotencyStore = {
    ...base,
    claim: (entries, ttl) =>
      Effect.suspend(() => {
        counts.claims++
        return counts.failClaims
          ? Effect.fail(new IdempotencyStoreError({ operation: "claim", cause: "store down" }))
          : base.claim(entries, ttl)
      }),
    complete: (entries, ttl) =>
      Effect.suspend(() => {
        counts.completes++
        return base.complete(entries, ttl)
      })
  }
  return { store, counts }
}

const options = { maxPendingRecords: 100, maxRecordsPerSend: 50 }

describe("record publisher", () => {
  it.effect(
    "sends the calls that arrive during a round together: one claim, one produce, one completion",
    () =>
      Effect.gen(function* () {
        const { log, entered, open, produced } = yield* instrumentedLog
        const { store, counts } = countingStore()
        const publisher = makeRecordPublisher(log, store, options)
        const first = yield* Effect.fork(publisher.publishOnce("t", [record("a")], lifetimes))
        yield* Deferred.await(entered)
        const queued = yield* Effect.forEach(["b", "c", "d"], (id) =>
          Effect.fork(publisher.publishOnce("t", [record(id)], lifetimes))
        )
        while ((yield* publisher.pendingRecords) < 4) yield* Effect.yieldNow()
        yield* Deferred.succeed(open, undefined)
        assert.deepStrictEqual(yield* Fiber.join(first), ["claimed"])
        for (const fiber of queued) assert.deepStrictEqual(yield* Fiber.join(fiber), ["claimed"])
        assert.deepStrictEqual(
          produced.map((call) => call.keys),
          [["a"], ["b", "c", "d"]]
        )
        assert.strictEqual(counts.claims, 2)
        assert.strictEqual(counts.completes, 2)
        assert.strictEqual(yield* publisher.pendingRecords, 0)
        const again = yield* publisher.publishOnce("t", [record("b"), record("e")], lifetimes)
        assert.deepStrictEqual(again, ["done", "claimed"])
        assert.deepStrictEqual(produced.at(-1)?.keys, ["e"])
      })
  )

  it.effect(
    "a call with a conflicting key sends nothing and frees its claims; the others of its round are sent",
    () =>
      Effect.gen(function* () {
        const { log, entered, open, produced } = yield* instrumentedLog
        const publisher = makeRecordPublisher(log, makeMemoryIdempotencyStore(), options)
        const first = yield* Effect.fork(publisher.publishOnce("t", [record("x")], lifetimes))
        yield* Deferred.await(entered)
        const refused = yield* Effect.fork(
          publisher.publishOnce("t", [record("fresh"), record("x", "other")], lifetimes)
        )
        const accepted = yield* Effect.fork(publisher.publishOnce("t", [record("y")], lifetimes))
        yield* Deferred.succeed(open, undefined)
        yield* Fiber.join(first)
        assert.deepStrictEqual(yield* Fiber.join(refused), ["claimed", "conflict"])
        assert.deepStrictEqual(yield* Fiber.join(accepted), ["claimed"])
        assert.deepStrictEqual(
          produced.map((call) => call.keys),
          [["x"], ["y"]]
        )
        assert.deepStrictEqual(yield* publisher.publishOnce("t", [record("fresh")], lifetimes), ["claimed"])
      })
  )

  it.effect("a failed produce fails every call of the round and frees their claims for a retry", () =>
    Effect.gen(function* () {
      const { log, entered, open, state } = yield* instrumentedLog
      const publisher = makeRecordPublisher(log, makeMemoryIdempotencyStore(), options)
      state.failures = 1
      const calls = yield* Effect.forEach(["p", "q"], (id) =>
        Effect.fork(Effect.either(publisher.publishOnce("t", [record(id)], lifetimes)))
      )
      yield* Deferred.await(entered)
      yield* Deferred.succeed(open, undefined)
      const outcomes = yield* Effect.forEach(calls, Fiber.join)
      const failed = outcomes.filter(Either.isLeft)
      assert.isAtLeast(failed.length, 1)
      for (const outcome of failed) assert.strictEqual(outcome.left._tag, "EventLogError")
      state.gated = false
      for (const id of ["p", "q"]) {
        const retried = yield* publisher.publishOnce("t", [record(id)], lifetimes)
        assert.include(["claimed", "done"], retried[0])
      }
      assert.strictEqual(yield* publisher.pendingRecords, 0)
    })
  )

  it.effect("a failed claim fails only the calls that claim; plain messages of the round are sent", () =>
    Effect.gen(function* () {
      const { log, entered, open, produced } = yield* instrumentedLog
      const { store, counts } = countingStore()
      const publisher = makeRecordPublisher(log, store, options)
      const first = yield* Effect.fork(publisher.publish("t.dlq", [record("dead-1").message]))
      yield* Deferred.await(entered)
      counts.failClaims = true
      const claiming = yield* Effect.fork(
        Effect.either(publisher.publishOnce("t", [record("c1")], lifetimes))
      )
      const plain = yield* Effect.fork(publisher.publish("t.dlq", [record("dead-2").message]))
      while ((yield* publisher.pendingRecords) < 3) yield* Effect.yieldNow()
      yield* Deferred.succeed(open, undefined)
      yield* Fiber.join(first)
      yield* Fiber.join(plain)
      const failed = yield* Fiber.join(claiming)
      assert.isTrue(Either.isLeft(failed) && failed.left._tag === "IdempotencyStoreError")
      assert.deepStrictEqual(
        produced.map((call) => [call.topic, ...call.keys]),
        [
          ["t.dlq", "dead-1"],
          ["t.dlq", "dead-2"]
        ]
      )
    })
  )

  it.effect(
    "a call whose records were all sent before is answered without joining a produce that fails",
    () =>
      Effect.gen(function* () {
        const { log, entered, open, state } = yield* instrumentedLog
        const publisher = makeRecordPublisher(log, makeMemoryIdempotencyStore(), options)
        state.gated = false
        yield* publisher.publishOnce("t", [record("sent-before")], lifetimes)
        state.gated = true
        const first = yield* Effect.fork(Effect.either(publisher.publishOnce("t", [record("r1")], lifetimes)))
        yield* Deferred.await(entered)
        state.failCall = 3
        const retry = yield* Effect.fork(publisher.publishOnce("t", [record("sent-before")], lifetimes))
        const failing = yield* Effect.fork(
          Effect.either(publisher.publishOnce("t", [record("r2")], lifetimes))
        )
        while ((yield* publisher.pendingRecords) < 3) yield* Effect.yieldNow()
        yield* Deferred.succeed(open, undefined)
        yield* Fiber.join(first)
        assert.deepStrictEqual(yield* Fiber.join(retry), ["done"])
        const failed = yield* Fiber.join(failing)
        assert.isTrue(Either.isLeft(failed) && failed.left._tag === "EventLogError")
      })
  )

  it.effect("a store that throws mid-round fails that round's callers instead of leaving them waiting", () =>
    Effect.gen(function* () {
      const { log, state } = yield* instrumentedLog
      state.gated = false
      const base = makeMemoryIdempotencyStore()
      const throwing: IdempotencyStore = {
        ...base,
        complete: () => Effect.die(new Error("store bug"))
      }
      const publisher = makeRecordPublisher(log, throwing, options)
      const outcome = yield* Effect.exit(publisher.publishOnce("t", [record("d1")], lifetimes))
      assert.isTrue(Exit.isFailure(outcome) && Cause.isDie(outcome.cause))
      assert.strictEqual(yield* publisher.pendingRecords, 0)
      const next = yield* Effect.exit(publisher.publishOnce("t", [record("d2")], lifetimes))
      assert.isTrue(Exit.isFailure(next), "the sender restarts for the next call")
    })
  )

  it.effect("refuses a call past the pending limit, and accepts again once the log caught up", () =>
    Effect.gen(function* () {
      const { log, entered, open } = yield* instrumentedLog
      const publisher = makeRecordPublisher(log, makeMemoryIdempotencyStore(), {
        maxPendingRecords: 3,
        maxRecordsPerSend: 50
      })
      const waiting = yield* Effect.fork(publisher.publishOnce("t", [record("l1"), record("l2")], lifetimes))
      yield* Deferred.await(entered)
      const refused = yield* Effect.either(
        publisher.publishOnce("t", [record("l3"), record("l4")], lifetimes)
      )
      assert.isTrue(Either.isLeft(refused) && refused.left._tag === "PublisherOverloaded")
      yield* Deferred.succeed(open, undefined)
      yield* Fiber.join(waiting)
      assert.deepStrictEqual(yield* publisher.publishOnce("t", [record("l3"), record("l4")], lifetimes), [
        "claimed",
        "claimed"
      ])
    })
  )
})
