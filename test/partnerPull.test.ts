import { FetchHttpClient, KeyValueStore } from "@effect/platform"
import { SystemError } from "@effect/platform/Error"
import { afterEach, assert, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Option, Stream } from "effect"
import { EventLogError } from "../src/domain/errors.js"
import { type EventLog, EventLogService, makeMemoryEventLog } from "../src/layers/EventLog.js"
import { IdempotencyStoreService } from "../src/layers/IdempotencyStore.js"
import { cursorKey, type PartnerPullOptions, runPartnerPull } from "../src/streams/partnerPull.js"
import { type FakePartner, fakeCursor, startFakePartner } from "./support/fakePartner.js"
import { signalJson, transactionJson } from "./support/fixtures.js"

const transactions = (count: number, from = 0) =>
  Array.from({ length: count }, (_, index) =>
    transactionJson({ event_id: `pe-${from + index}`, transaction_id: `pt-${(from + index) % 7}` })
  )

let partner: FakePartner | undefined
afterEach(async () => {
  await partner?.close()
  partner = undefined
})

const optionsFor = (url: string, overrides: Partial<PartnerPullOptions> = {}): PartnerPullOptions => ({
  partner: "acme",
  url,
  kind: "transactions",
  token: "partner-token",
  pageSize: 4,
  requestTimeout: "300 millis",
  maxAttempts: 5,
  retryBase: "5 millis",
  pollInterval: "10 millis",
  stopWhenCaughtUp: true,
  pendingClaimTtlMillis: 30_000,
  idempotencyTtlMillis: 3_600_000,
  ...overrides
})

/** Memory log, key-value store and idempotency store shared by the runs of one test (a restart keeps them). */
const makeWorld = () =>
  Effect.gen(function* () {
    const log = yield* makeMemoryEventLog(2)
    const kv = yield* Effect.provide(KeyValueStore.KeyValueStore, KeyValueStore.layerMemory)
    const idempotency = yield* Effect.provide(IdempotencyStoreService, IdempotencyStoreService.layerMemory)
    const layerWith = (overrides: { log?: EventLog; kv?: KeyValueStore.KeyValueStore } = {}) =>
      Layer.mergeAll(
        FetchHttpClient.layer,
        Layer.succeed(EventLogService, overrides.log ?? log),
        Layer.succeed(KeyValueStore.KeyValueStore, overrides.kv ?? kv),
        Layer.succeed(IdempotencyStoreService, idempotency)
      )
    return { log, kv, layerWith }
  })

const texts = (log: EventLog, topic: string) =>
  Effect.gen(function* () {
    const ends = yield* log.endOffsets(topic)
    if (ends.every((end) => end.offset === 0)) return [] as ReadonlyArray<string>
    const batches = yield* Stream.runCollect(
      log.subscribe(`reader-${Math.random()}`, [topic], { stopAtEnd: true })
    )
    return [...batches].flat().map((record) => new TextDecoder().decode(record.value))
  })

const eventIds = (log: EventLog) =>
  Effect.map(texts(log, "transactions"), (values) =>
    values.map((text) => String((JSON.parse(text) as { event_id: string }).event_id)).sort()
  )

const expectedIds = (count: number) => Array.from({ length: count }, (_, index) => `pe-${index}`).sort()

describe("partner pull connector", () => {
  it.live(
    "pulls every page into Kafka, dead-letters malformed records with reasons, and stores the cursor",
    () =>
      Effect.gen(function* () {
        const records: Array<unknown> = transactions(9)
        records.splice(3, 0, { ...transactionJson({ event_id: "bad-1" }), currency: "usd" }, "not an object")
        partner = yield* Effect.promise(() => startFakePartner(records))
        const world = yield* makeWorld()
        const summary = yield* runPartnerPull(optionsFor(partner.url)).pipe(Effect.provide(world.layerWith()))
        assert.deepStrictEqual(summary, {
          pages: 3,
          records: 11,
          accepted: 9,
          duplicates: 0,
          quarantined: 2,
          cursor: fakeCursor(11)
        })
        assert.deepStrictEqual(yield* eventIds(world.log), expectedIds(9))
        const deadLetters = (yield* texts(world.log, "transactions.dlq")).map(
          (text) => JSON.parse(text) as { source: string; problems: ReadonlyArray<{ field: string }> }
        )
        assert.deepStrictEqual(
          deadLetters.map((entry) => [entry.source, entry.problems[0]?.field]),
          [
            ["partner:acme:(start)[3]", "currency"],
            [`partner:acme:${fakeCursor(4)}[0]`, "(record)"]
          ]
        )
        const stored = yield* world.kv.get(cursorKey("acme", "transactions"))
        assert.strictEqual(JSON.parse(Option.getOrThrow(stored)).cursor, fakeCursor(11))
      })
  )

  it.live("retries 500, 429, an unreadable page, a page of the wrong shape and a page that never comes", () =>
    Effect.gen(function* () {
      partner = yield* Effect.promise(() => startFakePartner(transactions(10)))
      partner.fault("", "500", "429")
      partner.fault(fakeCursor(4), "garbage", "hang", "wrong-shape")
      const world = yield* makeWorld()
      const summary = yield* runPartnerPull(optionsFor(partner.url)).pipe(Effect.provide(world.layerWith()))
      assert.strictEqual(summary.accepted, 10)
      assert.deepStrictEqual(yield* eventIds(world.log), expectedIds(10))
      expect(partner.requests).toEqual([
        "",
        "",
        "",
        fakeCursor(4),
        fakeCursor(4),
        fakeCursor(4),
        fakeCursor(4),
        fakeCursor(8)
      ])
    })
  )

  it.live("fails at once on 401, naming the partner and status, and keeps the cursor where it was", () =>
    Effect.gen(function* () {
      partner = yield* Effect.promise(() => startFakePartner(transactions(6)))
      partner.fault(fakeCursor(4), "401")
      const world = yield* makeWorld()
      const exit = yield* Effect.exit(
        runPartnerPull(optionsFor(partner.url)).pipe(Effect.provide(world.layerWith()))
      )
      assert.isTrue(Exit.isFailure(exit))
      expect(String(Exit.isFailure(exit) ? exit.cause : "")).toContain(
        `partner acme at cursor ${fakeCursor(4)}: answered HTTP 401`
      )
      assert.strictEqual(partner.requests.filter((cursor) => cursor === fakeCursor(4)).length, 1)
      const stored = yield* world.kv.get(cursorKey("acme", "transactions"))
      assert.strictEqual(JSON.parse(Option.getOrThrow(stored)).cursor, fakeCursor(4))
    })
  )

  it.live("gives up after maxAttempts on a partner that keeps failing", () =>
    Effect.gen(function* () {
      partner = yield* Effect.promise(() => startFakePartner(transactions(2)))
      partner.fault("", "500", "500", "500")
      const world = yield* makeWorld()
      const exit = yield* Effect.exit(
        runPartnerPull(optionsFor(partner.url, { maxAttempts: 3 })).pipe(Effect.provide(world.layerWith()))
      )
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual(partner.requests.length, 3)
    })
  )

  it.live("after Kafka failed mid-run, a restart resumes with no gap and no duplicate", () =>
    Effect.gen(function* () {
      partner = yield* Effect.promise(() => startFakePartner(transactions(12)))
      const world = yield* makeWorld()
      let produces = 0
      const failingFromPage2: EventLog = {
        ...world.log,
        produce: (topic, messages) =>
          topic === "transactions" && ++produces >= 2
            ? Effect.fail(new EventLogError({ operation: "produce", cause: "broker down" }))
            : world.log.produce(topic, messages)
      }
      const first = yield* Effect.exit(
        runPartnerPull(optionsFor(partner.url, { maxAttempts: 2 })).pipe(
          Effect.provide(world.layerWith({ log: failingFromPage2 }))
        )
      )
      assert.isTrue(Exit.isFailure(first))
      assert.deepStrictEqual(yield* eventIds(world.log), expectedIds(4))
      const second = yield* runPartnerPull(optionsFor(partner.url)).pipe(Effect.provide(world.layerWith()))
      assert.strictEqual(second.accepted, 8)
      assert.deepStrictEqual(yield* eventIds(world.log), expectedIds(12))
    })
  )

  it.live(
    "after dying between Kafka's ack and the cursor write, the page fetched again is not sent twice",
    () =>
      Effect.gen(function* () {
        partner = yield* Effect.promise(() => startFakePartner(transactions(8)))
        const world = yield* makeWorld()
        let writes = 0
        const dyingOnSecondCursor = KeyValueStore.make({
          get: world.kv.get,
          getUint8Array: world.kv.getUint8Array,
          remove: world.kv.remove,
          clear: world.kv.clear,
          size: world.kv.size,
          set: (key, value) =>
            ++writes === 2
              ? Effect.fail(
                  new SystemError({
                    reason: "Unknown",
                    module: "KeyValueStore",
                    method: "set",
                    description: "disk gone"
                  })
                )
              : world.kv.set(key, value)
        })
        const first = yield* Effect.exit(
          runPartnerPull(optionsFor(partner.url)).pipe(
            Effect.provide(world.layerWith({ kv: dyingOnSecondCursor }))
          )
        )
        assert.isTrue(Exit.isFailure(first))
        assert.deepStrictEqual(yield* eventIds(world.log), expectedIds(8))
        const second = yield* runPartnerPull(optionsFor(partner.url)).pipe(Effect.provide(world.layerWith()))
        assert.deepStrictEqual([second.accepted, second.duplicates], [0, 4])
        assert.deepStrictEqual(yield* eventIds(world.log), expectedIds(8))
      })
  )

  it.live("a later run picks up only what the partner added since", () =>
    Effect.gen(function* () {
      partner = yield* Effect.promise(() => startFakePartner(transactions(5)))
      const world = yield* makeWorld()
      yield* runPartnerPull(optionsFor(partner.url)).pipe(Effect.provide(world.layerWith()))
      partner.records.push(...transactions(3, 5))
      const second = yield* runPartnerPull(optionsFor(partner.url)).pipe(Effect.provide(world.layerWith()))
      assert.deepStrictEqual([second.pages, second.accepted, second.duplicates], [1, 3, 0])
      assert.deepStrictEqual(yield* eventIds(world.log), expectedIds(8))
    })
  )

  it.live("pulls fraud signals to their topic, and refuses an id repeated with other content", () =>
    Effect.gen(function* () {
      partner = yield* Effect.promise(() =>
        startFakePartner([
          signalJson({ signal_id: "ps-1" }),
          signalJson({ signal_id: "ps-1", score: 0.9 }),
          signalJson({ signal_id: "ps-2" })
        ])
      )
      const world = yield* makeWorld()
      const summary = yield* runPartnerPull(optionsFor(partner.url, { kind: "fraud_signals" })).pipe(
        Effect.provide(world.layerWith())
      )
      assert.deepStrictEqual([summary.accepted, summary.quarantined], [2, 1])
      assert.strictEqual((yield* texts(world.log, "fraud_signals")).length, 2)
      const [letter] = yield* texts(world.log, "fraud_signals.dlq")
      expect(letter).toContain("repeated in the page with different content")
    })
  )
})
