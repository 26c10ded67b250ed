import { execFile } from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { promisify } from "node:util"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted } from "effect"
import type { FinalAggregateRow } from "../src/domain/rows.js"
import { EventLogService } from "../src/layers/EventLog.js"
import { layerKafka } from "../src/layers/KafkaEventLog.js"
import { ProcessedBucket, RawBucket } from "../src/layers/ObjectStore.js"
import { Parquet } from "../src/layers/ParquetCodec.js"
import * as S3Buckets from "../src/layers/S3ObjectStore.js"
import { runBatchIndex } from "../src/streams/batchIndex.js"
import { readFinalAggregate } from "../src/streams/datasets.js"
import { runFinalAggregate } from "../src/streams/finalAggregate.js"
import { generateDataset } from "../src/streams/generate.js"
import { runBatchIngest, runStreamIngest } from "../src/streams/ingest.js"
import { runStreamingIndex, type TopicNames } from "../src/streams/streamingIndex.js"
import { acquireFaultProxy, faultEvery, faultForDuration } from "./support/faultProxy.js"
import { requireService } from "./support/services.js"

const kafkaBrokers = requireService("Kafka", "RECON_KAFKA_BROKERS")
const s3Endpoint = requireService("S3", "RECON_S3_ENDPOINT")

const execFileAsync = promisify(execFile)

/** Stops and starts the local broker with the project's services script; waits until it answers. */
const restartKafka = Effect.promise(() =>
  execFileAsync("bash", [NodePath.resolve("scripts/services.sh"), "restart-kafka"], { timeout: 120_000 })
)

const runId = `${process.pid}-${Date.now().toString(36)}`

/** Every stage, in order, on whatever layers are provided; returns the published final_aggregate. */
const runStages = (inputDir: string, topics: TopicNames, group: string) =>
  Effect.gen(function* () {
    yield* runBatchIngest(inputDir)
    yield* runStreamIngest(inputDir, 500, topics)
    const streaming = yield* runStreamingIndex({ stopAtEnd: true, topics, group, maxBatchRecords: 400 })
    const batch = yield* runBatchIndex
    const final = yield* runFinalAggregate
    const rows = yield* readFinalAggregate(yield* ProcessedBucket, yield* Parquet)
    return { streaming, batch, final, rows }
  })

const sortRows = (rows: ReadonlyArray<FinalAggregateRow>) =>
  [...rows].sort((a, b) => (a.transaction_id < b.transaction_id ? -1 : 1))

const embeddedRun = (inputDir: string, root: string) =>
  runStages(inputDir, { transactions: "transactions", fraudSignals: "fraud_signals" }, "e2e").pipe(
    Effect.provide(
      Layer.mergeAll(
        RawBucket.layerLocal(NodePath.join(root, "raw")),
        ProcessedBucket.layerLocal(NodePath.join(root, "processed")),
        EventLogService.layerMemory(4),
        Parquet.layer()
      )
    )
  )

const realLayers = (endpoint: string, suffix: string) =>
  Layer.mergeAll(
    S3Buckets.layerRawBucket(`raw-${suffix}`),
    S3Buckets.layerProcessedBucket(`processed-${suffix}`),
    layerKafka({ brokers: kafkaBrokers!.split(","), clientId: `e2e-${suffix}` }),
    Parquet.layer()
  ).pipe(
    Layer.provide(
      S3Buckets.S3.layer({
        endpoint: Option.some(endpoint),
        region: "us-east-1",
        accessKeyId: Redacted.make(process.env.RECON_S3_ACCESS_KEY_ID ?? "S3RVER"),
        secretAccessKey: Redacted.make(process.env.RECON_S3_SECRET_ACCESS_KEY ?? "S3RVER"),
        forcePathStyle: true
      })
    )
  )

describe.skipIf(kafkaBrokers === undefined || s3Endpoint === undefined)("on real Kafka 4 and S3", () => {
  it.live(
    "final_aggregate equals the embedded run's, row for row",
    () =>
      Effect.gen(function* () {
        const root = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "recon-real-"))
        const inputDir = NodePath.join(root, "in")
        yield* generateDataset({ outDir: inputDir, transactions: 600, seed: 21 })
        const embedded = yield* embeddedRun(inputDir, NodePath.join(root, "embedded"))
        const suffix = `same-${runId}`
        const topics = { transactions: `transactions-${suffix}`, fraudSignals: `fraud_signals-${suffix}` }
        const real = yield* runStages(inputDir, topics, `e2e-${suffix}`).pipe(
          Effect.provide(realLayers(s3Endpoint!, suffix))
        )
        assert.strictEqual(real.streaming.consumed, embedded.streaming.consumed)
        assert.strictEqual(real.streaming.quarantined, embedded.streaming.quarantined)
        assert.deepStrictEqual(real.batch.transactions, embedded.batch.transactions)
        assert.strictEqual(real.rows.length, embedded.rows.length)
        assert.deepStrictEqual(sortRows(real.rows), sortRows(embedded.rows))
      }),
    180_000
  )

  it.scopedLive(
    "S3 answering 5xx for a while and the Kafka broker restarted mid-run: nothing lost or duplicated",
    () =>
      Effect.gen(function* () {
        const root = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "recon-faults-"))
        const inputDir = NodePath.join(root, "in")
        yield* generateDataset({ outDir: inputDir, transactions: 600, seed: 22 })
        const embedded = yield* embeddedRun(inputDir, NodePath.join(root, "embedded"))

        const proxy = yield* acquireFaultProxy(s3Endpoint!)
        const suffix = `faults-${runId}`
        const topics = { transactions: `transactions-${suffix}`, fraudSignals: `fraud_signals-${suffix}` }
        let restarts = 0
        const restartKafkaOnFirstBatch = Layer.effect(
          ProcessedBucket,
          Effect.map(ProcessedBucket, (store) => ({
            ...store,
            put: (key: string, body: Uint8Array) =>
              Effect.tap(store.put(key, body), () =>
                key.startsWith("streaming_index/_batches/") && restarts++ === 0
                  ? Effect.forkDaemon(restartKafka)
                  : Effect.void
              )
          }))
        )
        const real = yield* Effect.gen(function* () {
          proxy.setPlan(faultForDuration(3_000, "internalError"))
          yield* runBatchIngest(inputDir)
          yield* runStreamIngest(inputDir, 200, topics)
          const streaming = yield* runStreamingIndex({
            stopAtEnd: true,
            topics,
            group: `e2e-${suffix}`,
            maxBatchRecords: 150
          })
          proxy.setPlan(faultEvery(5, "slowDown"))
          const batch = yield* runBatchIndex
          yield* runFinalAggregate
          const rows = yield* readFinalAggregate(yield* ProcessedBucket, yield* Parquet)
          return { streaming, batch, rows }
        }).pipe(Effect.provide(Layer.provideMerge(restartKafkaOnFirstBatch, realLayers(proxy.url, suffix))))
        assert.isAbove(proxy.faulted(), 0, "the S3 proxy answered with faults")
        assert.strictEqual(restarts > 0, true, "the broker was restarted mid-run")
        assert.strictEqual(
          real.streaming.consumed,
          embedded.streaming.consumed,
          "each stream record read once"
        )
        assert.strictEqual(real.rows.length, embedded.rows.length)
        assert.deepStrictEqual(sortRows(real.rows), sortRows(embedded.rows))
      }),
    300_000
  )
})
