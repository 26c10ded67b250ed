import { FetchHttpClient, KeyValueStore } from "@effect/platform"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Redacted, Scope } from "effect"
import { type EventLog, EventLogService } from "../src/layers/EventLog.js"
import { IdempotencyStoreService } from "../src/layers/IdempotencyStore.js"
import { makeKafkaEventLog } from "../src/layers/KafkaEventLog.js"
import { runPartnerPull } from "../src/streams/partnerPull.js"
import { startFakePartner } from "./support/fakePartner.js"
import { signalJson, transactionJson } from "./support/fixtures.js"
import { postWithKey, type RunningApi, startIngestionApi, topicTexts } from "./support/ingestionServer.js"
import { requireService } from "./support/services.js"

const kafkaBrokers = requireService("Kafka", "RECON_KAFKA_BROKERS")
const redisUrl = requireService("Redis", "RECON_REDIS_URL")
const runId = `${process.pid}-${Date.now().toString(36)}`
const topics = { transactions: `api-tx-${runId}`, fraudSignals: `api-fs-${runId}` }

describe.skipIf(kafkaBrokers === undefined || redisUrl === undefined)(
  "ingestion on real Kafka and Redis",
  () => {
    let scope: Scope.CloseableScope
    let log: EventLog
    let api: RunningApi
    beforeAll(async () => {
      scope = await Effect.runPromise(Scope.make())
      log = await Effect.runPromise(
        Scope.extend(
          makeKafkaEventLog({ brokers: (kafkaBrokers ?? "").split(","), clientId: `e2e-${runId}` }),
          scope
        )
      )
      api = await startIngestionApi({ log, settings: { topics } })
    }, 60_000)
    afterAll(async () => {
      await api?.close()
      await Effect.runPromise(Scope.close(scope, Exit.void))
    })

    it.live(
      "every record the API acknowledged is in Kafka once, after concurrent singles, batches and retries",
      () =>
        Effect.gen(function* () {
          const singles = Array.from({ length: 40 }, (_, index) =>
            transactionJson({ event_id: `api-${runId}-${index}` })
          )
          const batches = [0, 1, 2].map((batch) =>
            Array.from({ length: 50 }, (_, index) =>
              transactionJson({ event_id: `api-${runId}-b${batch}-${index}` })
            )
          )
          const url = `${api.url}/v1/transactions`
          const responses = yield* Effect.promise(() =>
            Promise.all([
              ...singles.map((record) => postWithKey(url, record)),
              ...batches.map((batch) => postWithKey(url, batch)),
              postWithKey(url, singles[0]),
              postWithKey(url, batches[0])
            ])
          )
          const bodies = yield* Effect.promise(() =>
            Promise.all(
              responses.map(async (response) => ({ status: response.status, body: await response.json() }))
            )
          )
          assert.isTrue(
            bodies.every((answer) => answer.status === 202 || answer.status === 409),
            JSON.stringify(bodies.map((b) => b.status))
          )
          const texts = yield* Effect.promise(() => topicTexts(log, topics.transactions))
          const ids = texts.map((text) => String((JSON.parse(text) as { event_id: string }).event_id))
          assert.strictEqual(new Set(ids).size, ids.length, "no event twice in Kafka")
          assert.strictEqual(ids.length, 40 + 150)
          const accepted = bodies.reduce(
            (total, answer) => total + Number((answer.body as { accepted?: number }).accepted ?? 0),
            0
          )
          assert.strictEqual(accepted, ids.length, "acknowledged = appended")
        }),
      60_000
    )

    it.live(
      "the partner connector pulls into Kafka with Redis idempotency, and a second connector run sends nothing again",
      () =>
        Effect.gen(function* () {
          const partner = yield* Effect.acquireRelease(
            Effect.promise(() =>
              startFakePartner(
                Array.from({ length: 30 }, (_, index) => signalJson({ signal_id: `pull-${runId}-${index}` }))
              )
            ),
            (server) => Effect.promise(() => server.close())
          )
          const layer = Layer.mergeAll(
            FetchHttpClient.layer,
            Layer.succeed(EventLogService, log),
            KeyValueStore.layerMemory,
            IdempotencyStoreService.layerRedis({
              url: Redacted.make(redisUrl ?? ""),
              prefix: `recon-test:${runId}:idem:`
            })
          )
          const options = {
            partner: "acme",
            url: partner.url,
            kind: "fraud_signals",
            token: "partner-token",
            pageSize: 7,
            requestTimeout: "5 seconds",
            maxAttempts: 3,
            retryBase: "10 millis",
            pollInterval: "10 millis",
            stopWhenCaughtUp: true,
            pendingClaimTtlMillis: 30_000,
            idempotencyTtlMillis: 60_000,
            topics
          } as const
          const first = yield* runPartnerPull(options).pipe(Effect.provide(layer))
          assert.deepStrictEqual([first.pages, first.accepted], [5, 30])
          const fresh = yield* runPartnerPull({ ...options, partner: "acme-again" }).pipe(
            Effect.provide(layer)
          )
          assert.deepStrictEqual([fresh.accepted, fresh.duplicates], [0, 30])
          const texts = yield* Effect.promise(() => topicTexts(log, topics.fraudSignals))
          assert.strictEqual(texts.length, 30)
        }).pipe(Effect.scoped),
      60_000
    )
  }
)
