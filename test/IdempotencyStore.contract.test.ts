import { assert, describe, it, layer } from "@effect/vitest"
import { Context, Duration, Effect, Layer, Redacted, TestClock } from "effect"
import { Redis } from "ioredis"
import {
  type IdempotencyEntry,
  IdempotencyStoreService,
  makeMemoryIdempotencyStore
} from "../src/layers/IdempotencyStore.js"
import { requireService } from "./support/services.js"

const runId = `${Date.now().toString(36)}-${process.pid}`
const entry = (key: string, fingerprint: string): IdempotencyEntry => ({
  key: `${runId}:${key}`,
  fingerprint
})
const minute = 60_000

/** What every idempotency store must do; keys are unique per run, so a shared Redis is fine. */
const idempotencyContract = (name: string, storeLayer: Layer.Layer<IdempotencyStoreService, unknown>) =>
  layer(storeLayer, { excludeTestServices: true, timeout: Duration.minutes(1) })(
    `IdempotencyStore contract: ${name}`,
    (it) => {
      it.effect(
        "a new key is claimed once; the same content again is in progress, other content a conflict",
        () =>
          Effect.gen(function* () {
            const store = yield* IdempotencyStoreService
            assert.deepStrictEqual(yield* store.claim([entry("a", "f1")], minute), ["claimed"])
            assert.deepStrictEqual(yield* store.claim([entry("a", "f1"), entry("a2", "f")], minute), [
              "in_progress",
              "claimed"
            ])
            assert.deepStrictEqual(yield* store.claim([entry("a", "f2")], minute), ["conflict"])
          })
      )

      it.effect("a completed key is done for the same content and a conflict for other content", () =>
        Effect.gen(function* () {
          const store = yield* IdempotencyStoreService
          yield* store.claim([entry("b", "f1")], minute)
          yield* store.complete([entry("b", "f1")], minute)
          assert.deepStrictEqual(yield* store.claim([entry("b", "f1"), entry("b", "f2")], minute), [
            "done",
            "conflict"
          ])
        })
      )

      it.effect("a released claim can be claimed again; a release with other content leaves the claim", () =>
        Effect.gen(function* () {
          const store = yield* IdempotencyStoreService
          yield* store.claim([entry("c", "f1"), entry("d", "f1")], minute)
          yield* store.release([entry("c", "f1"), entry("d", "other")])
          assert.deepStrictEqual(yield* store.claim([entry("c", "f1"), entry("d", "f1")], minute), [
            "claimed",
            "in_progress"
          ])
        })
      )

      it.effect("a release after completion keeps the key done", () =>
        Effect.gen(function* () {
          const store = yield* IdempotencyStoreService
          yield* store.claim([entry("e", "f1")], minute)
          yield* store.complete([entry("e", "f1")], minute)
          yield* store.release([entry("e", "f1")])
          assert.deepStrictEqual(yield* store.claim([entry("e", "f1")], minute), ["done"])
        })
      )

      it.effect("claims more keys than one script call carries, in order", () =>
        Effect.gen(function* () {
          const store = yield* IdempotencyStoreService
          const entries = Array.from({ length: 1203 }, (_, index) => entry(`many-${index}`, `f${index}`))
          yield* store.claim(
            entries.filter((_, index) => index % 3 === 0),
            minute
          )
          const outcomes = yield* store.claim(entries, minute)
          assert.strictEqual(outcomes.length, 1203)
          assert.deepStrictEqual(
            outcomes,
            entries.map((_, index) => (index % 3 === 0 ? "in_progress" : "claimed"))
          )
        })
      )
    }
  )

describe("memory idempotency store expiry", () => {
  it.effect("a pending claim expires after its TTL on the clock; a completed key after its own", () =>
    Effect.gen(function* () {
      const store = makeMemoryIdempotencyStore()
      yield* store.claim([entry("p", "f")], 1_000)
      yield* store.claim([entry("d", "f")], 1_000)
      yield* store.complete([entry("d", "f")], 10_000)
      yield* TestClock.adjust(Duration.millis(999))
      assert.deepStrictEqual(yield* store.claim([entry("p", "f")], 1_000), ["in_progress"])
      yield* TestClock.adjust(Duration.millis(1))
      assert.deepStrictEqual(yield* store.claim([entry("p", "f2"), entry("d", "f2")], 1_000), [
        "claimed",
        "conflict"
      ])
      yield* TestClock.adjust(Duration.millis(9_000))
      assert.deepStrictEqual(yield* store.claim([entry("d", "f2")], 1_000), ["claimed"])
    })
  )
})

idempotencyContract("memory", IdempotencyStoreService.layerMemory)

const redisUrl = requireService("Redis", "RECON_REDIS_URL")
describe.skipIf(redisUrl === undefined)("Redis idempotency store", () => {
  const prefix = `recon-test:${runId}:idem:`
  idempotencyContract(
    "redis",
    IdempotencyStoreService.layerRedis({ url: Redacted.make(redisUrl ?? ""), prefix })
  )

  it.live("pending claims expire after their TTL and completed keys after theirs (PX on the key)", () =>
    Effect.gen(function* () {
      const redis = new Redis(redisUrl ?? "", { lazyConnect: true })
      yield* Effect.promise(() => redis.connect())
      const store = Context.get(
        yield* Layer.build(IdempotencyStoreService.layerRedis({ url: redisUrl ?? "", prefix })),
        IdempotencyStoreService
      )
      yield* store.claim([entry("ttl-p", "f")], 5_000)
      yield* store.claim([entry("ttl-d", "f")], 5_000)
      yield* store.complete([entry("ttl-d", "f")], 3_600_000)
      const pending = yield* Effect.promise(() => redis.pttl(`${prefix}${runId}:ttl-p`))
      const done = yield* Effect.promise(() => redis.pttl(`${prefix}${runId}:ttl-d`))
      assert.isTrue(pending > 0 && pending <= 5_000, `pending TTL ${pending}`)
      assert.isTrue(done > 5_000 && done <= 3_600_000, `done TTL ${done}`)
      const keys = yield* Effect.promise(() => redis.keys(`${prefix}*`))
      if (keys.length > 0) yield* Effect.promise(() => redis.del(...keys))
      yield* Effect.promise(() => redis.quit())
    }).pipe(Effect.scoped)
  )
})
