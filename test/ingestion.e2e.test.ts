import { spawn } from "node:child_process"
import { createServer } from "node:net"
import { FetchHttpClient, KeyValueStore } from "@effect/platform"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { hashApiKey } from "../src/domain/apiAuth.js"
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
      "two API workers on one port (RECON_API_WORKERS=2, Redis idempotency) send each record once and stop on SIGTERM",
      () =>
        Effect.gen(function* () {
          const port = yield* Effect.promise(
            () =>
              new Promise<number>((resolve) => {
                const probe = createServer().listen(0, "127.0.0.1", () => {
                  const address = probe.address()
                  probe.close(() =>
                    resolve(typeof address === "object" && address !== null ? address.port : 0)
                  )
                })
              })
          )
          const clusterTopics = { transactions: `api-cl-tx-${runId}`, fraudSignals: `api-cl-fs-${runId}` }
          const apiKey = `rk_cluster-${runId}`
          const listening = yield* Deferred.make<void>()
          const exited = yield* Deferred.make<number | null>()
          let output = ""
          const child = spawn(process.execPath, ["dist/programs/api.js"], {
            env: {
              ...process.env,
              RECON_API_PORT: String(port),
              RECON_API_KEYS: `cluster:${hashApiKey(apiKey)}`,
              RECON_API_WORKERS: "2",
              RECON_REDIS_PREFIX: `recon-test:${runId}:`,
              RECON_TOPIC_TRANSACTIONS: clusterTopics.transactions,
              RECON_TOPIC_FRAUD_SIGNALS: clusterTopics.fraudSignals
            },
            stdio: ["ignore", "pipe", "pipe"]
          })
          const onOutput = (chunk: Buffer) => {
            output += chunk.toString()
            if (output.split("Listening on").length - 1 >= 2) Deferred.unsafeDone(listening, Exit.void)
          }
          child.stdout.on("data", onOutput)
          child.stderr.on("data", onOutput)
          child.on("exit", (code) => Deferred.unsafeDone(exited, Exit.succeed(code)))
          yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
          yield* Deferred.await(listening).pipe(
            Effect.raceFirst(
              Effect.flatMap(Deferred.await(exited), (code) =>
                Effect.dieMessage(`the API exited (${code}) before both workers listened:\n${output}`)
              )
            )
          )
          const records = Array.from({ length: 60 }, (_, index) =>
            transactionJson({ event_id: `cl-${runId}-${index}`, transaction_id: `cl-tx-${index}` })
          )
          const url = `http://127.0.0.1:${port}/v1/transactions`
          const answers = yield* Effect.promise(() =>
            Promise.all(
              [...records, ...records, ...records].map(async (record) => {
                const response = await fetch(url, {
                  method: "POST",
                  headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
                  body: JSON.stringify(record)
                })
                return { status: response.status, body: (await response.json()) as { accepted?: number } }
              })
            )
          )
          assert.isTrue(
            answers.every((answer) => answer.status === 202 || answer.status === 409),
            JSON.stringify(answers.map((answer) => answer.status))
          )
          const accepted = answers.reduce((total, answer) => total + (answer.body.accepted ?? 0), 0)
          assert.strictEqual(accepted, records.length, "each id accepted once across both workers")
          const texts = yield* Effect.promise(() => topicTexts(log, clusterTopics.transactions))
          const ids = texts.map((text) => String((JSON.parse(text) as { event_id: string }).event_id))
          assert.strictEqual(ids.length, records.length)
          assert.strictEqual(new Set(ids).size, records.length)
          child.kill("SIGTERM")
          assert.strictEqual(yield* Deferred.await(exited), 0, output)
          assert.include(output, "ingestion API stopped")
          const refused = yield* Effect.promise(
            () =>
              new Promise<{ code: number | null; text: string }>((resolve) => {
                let text = ""
                const single = spawn(process.execPath, ["dist/programs/api.js"], {
                  env: {
                    ...process.env,
                    RECON_API_WORKERS: "2",
                    RECON_REDIS_URL: "",
                    RECON_API_KEYS: `c:${hashApiKey(apiKey)}`
                  },
                  stdio: ["ignore", "pipe", "pipe"]
                })
                single.stdout.on("data", (chunk: Buffer) => (text += chunk))
                single.stderr.on("data", (chunk: Buffer) => (text += chunk))
                single.on("exit", (code) => resolve({ code, text }))
              })
          )
          assert.strictEqual(refused.code, 1)
          assert.include(refused.text, "more than one worker needs RECON_KAFKA_BROKERS and RECON_REDIS_URL")
        }).pipe(Effect.scoped),
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
