// The streaming index on real Kafka: end-to-end events/s beside raw kafkajs consuming the same topics in
// the same run, then append-to-commit latency (p50/p99) at a fixed produce rate with RSS sampled
// throughout. Needs the local services (`bash scripts/services.sh up`, then source .services/env).
// Usage: npm run build && node bench/streaming.mjs  (BENCH_TRANSACTIONS=100000, BENCH_RATE=2000, BENCH_SECONDS=30)
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { Effect, Fiber, Layer, Metric } from "effect"
import { Kafka, logLevel } from "kafkajs"
import { layerKafka, makeKafkaEventLog } from "../dist/layers/KafkaEventLog.js"
import { ProcessedBucket, RawBucket } from "../dist/layers/ObjectStore.js"
import { Parquet } from "../dist/layers/ParquetCodec.js"
import { generateDataset } from "../dist/streams/generate.js"
import { runBatchIngest, runStreamIngest } from "../dist/streams/ingest.js"
import { runStreamingIndex } from "../dist/streams/streamingIndex.js"
import { dedupStateSize, eventToCommitSeconds } from "../dist/streams/streamingMetrics.js"

const brokers = (process.env.RECON_KAFKA_BROKERS ?? "").split(",").filter(Boolean)
if (brokers.length === 0) {
  console.error("RECON_KAFKA_BROKERS must be set (source .services/env)")
  process.exit(2)
}
const transactions = Number(process.env.BENCH_TRANSACTIONS ?? 100_000)
const rate = Number(process.env.BENCH_RATE ?? 2_000)
const durationSeconds = Number(process.env.BENCH_SECONDS ?? 30)
const runId = Date.now().toString(36)
const root = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "recon-stream-bench-"))
const inputDir = NodePath.join(root, "in")
const seconds = (start) => Number(process.hrtime.bigint() - start) / 1e9
const topics = { transactions: `bench-tx-${runId}`, fraudSignals: `bench-fs-${runId}` }

const layers = (clientId) =>
  Layer.mergeAll(
    RawBucket.layerLocal(NodePath.join(root, "raw")),
    ProcessedBucket.layerLocal(NodePath.join(root, `processed-${clientId}`)),
    layerKafka({ brokers, clientId }),
    Parquet.layer()
  )

await Effect.runPromise(generateDataset({ outDir: inputDir, transactions, seed: 5 }))
const produced = await Effect.runPromise(
  Effect.gen(function* () {
    yield* runBatchIngest(inputDir)
    return yield* runStreamIngest(inputDir, 1000, topics)
  }).pipe(Effect.provide(layers("bench-producer")))
)
const records = produced.transactions + produced.fraudSignals

// Raw kafkajs: connect, drain both topics in a new group, disconnect.
const raw = new Kafka({ clientId: "bench-raw", brokers, logLevel: logLevel.NOTHING })
let started = process.hrtime.bigint()
const consumer = raw.consumer({ groupId: `bench-raw-${runId}`, maxWaitTimeInMs: 1000 })
await consumer.connect()
await consumer.subscribe({ topics: [topics.transactions, topics.fraudSignals], fromBeginning: true })
let consumed = 0
await new Promise((resolve) => {
  consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      consumed += batch.messages.length
      if (consumed >= records) resolve()
    }
  })
})
await consumer.disconnect()
const rawSeconds = seconds(started)

// Fixed rate first (the latency summary is process-wide): a live streaming index while records are produced at `rate`/s for `durationSeconds`.
const lines = NodeFs.readFileSync(NodePath.join(inputDir, "stream", "transactions.jsonl"), "utf8")
  .split("\n")
  .filter((line) => line.trim() !== "")
const cycleDays = 30
/** The n-th record of the live run: the generated lines again and again, each cycle with new ids and a month later. */
const liveRecord = (n) => {
  const line = lines[n % lines.length]
  const cycle = Math.floor(n / lines.length)
  try {
    const event = JSON.parse(line)
    if (cycle > 0 && event !== null && typeof event === "object") {
      if (typeof event.event_id === "string") event.event_id += `~${cycle}`
      if (typeof event.transaction_id === "string") event.transaction_id += `~${cycle}`
      const time = Date.parse(event.event_time)
      if (Number.isFinite(time))
        event.event_time = new Date(time + cycle * cycleDays * 86_400_000).toISOString()
      return { key: String(event.transaction_id ?? ""), text: JSON.stringify(event) }
    }
    return { key: String(event?.transaction_id ?? ""), text: line }
  } catch {
    return { key: "", text: line }
  }
}
const liveTopics = { transactions: `bench-live-tx-${runId}`, fraudSignals: `bench-live-fs-${runId}` }
const rss = []
const sampler = setInterval(() => rss.push(process.memoryUsage().rss / 1048576), 1000)
const stateSizes = []
const minuteSampler = setInterval(() => {
  const state = Effect.runSync(Metric.value(dedupStateSize)).value
  stateSizes.push(state)
  console.error(
    `rss ${(process.memoryUsage().rss / 1048576).toFixed(0)} MB, dedup/join state ${state} entries`
  )
}, 60_000)
const live = await Effect.runPromise(
  Effect.scoped(
    Effect.gen(function* () {
      const log = yield* makeKafkaEventLog({ brokers, clientId: "bench-live-producer" })
      yield* log.ensureTopic(liveTopics.transactions, 4)
      yield* log.ensureTopic(liveTopics.fraudSignals, 4)
      const service = yield* Effect.fork(
        runStreamingIndex({
          topics: liveTopics,
          group: `bench-live-${runId}`,
          maxBatchRecords: 5_000,
          maxBatchWait: "500 millis"
        }).pipe(Effect.provide(layers("bench-live")))
      )
      const encoder = new TextEncoder()
      const tick = 100
      const perTick = Math.max(1, Math.round((rate * tick) / 1000))
      const begin = Date.now()
      let sent = 0
      while (Date.now() - begin < durationSeconds * 1000) {
        const due = Math.floor(((Date.now() - begin) / 1000) * rate)
        if (sent < due) {
          const slice = []
          for (let index = 0; index < Math.min(perTick * 2, due - sent); index++) {
            const { key, text } = liveRecord(sent + index)
            slice.push({ key, value: encoder.encode(text) })
          }
          yield* log.produce(liveTopics.transactions, slice)
          sent += slice.length
        }
        yield* Effect.sleep(`${tick} millis`)
      }
      yield* Effect.sleep("3 seconds")
      yield* Fiber.interrupt(service)
      const latency = yield* Metric.value(eventToCommitSeconds)
      return { sent, latency }
    })
  )
)
clearInterval(sampler)
clearInterval(minuteSampler)

// The streaming index, bounded: decode, validate, dedup, join, Parquet micro-batches, manifests, commits.
started = process.hrtime.bigint()
const summary = await Effect.runPromise(
  runStreamingIndex({ stopAtEnd: true, topics, group: `bench-index-${runId}`, maxBatchRecords: 20_000 }).pipe(
    Effect.provide(layers("bench-index"))
  )
)
const indexSeconds = seconds(started)

const quantile = (q) => live.latency.quantiles.find(([level]) => level === q)?.[1]
const format = (value) => (value?._tag === "Some" ? `${(value.value * 1000).toFixed(0)} ms` : "n/a")

console.log(`\n${records} stream records (${transactions} transactions generated), 4 partitions per topic`)
console.log("figure".padEnd(44), "value".padStart(14))
console.log(
  "raw kafkajs consume (records/s)".padEnd(44),
  Math.round(records / rawSeconds)
    .toString()
    .padStart(14)
)
console.log(
  "streaming index end to end (records/s)".padEnd(44),
  Math.round(summary.consumed / indexSeconds)
    .toString()
    .padStart(14)
)
console.log(
  "streaming index / raw consume".padEnd(44),
  `${((100 * (summary.consumed / indexSeconds)) / (records / rawSeconds)).toFixed(0)}%`.padStart(14)
)
console.log(
  `fixed rate ${rate}/s for ${durationSeconds}s: records sent`.padEnd(44),
  String(live.sent).padStart(14)
)
console.log("append-to-commit latency p50".padEnd(44), format(quantile(0.5)).padStart(14))
console.log("append-to-commit latency p99".padEnd(44), format(quantile(0.99)).padStart(14))
console.log(
  "RSS MB during the fixed-rate run (first/max/last)".padEnd(44),
  `${rss[0]?.toFixed(0)}/${Math.max(...rss).toFixed(0)}/${rss.at(-1)?.toFixed(0)}`.padStart(14)
)
if (stateSizes.length > 0)
  console.log(
    "dedup/join state entries per minute".padEnd(44),
    stateSizes
      .map((size) => Math.round(size))
      .join("/")
      .padStart(14)
  )
NodeFs.rmSync(root, { recursive: true, force: true })
