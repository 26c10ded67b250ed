// Scale-out of the streaming index on real Kafka: the same topics indexed by one `streaming.js` process, then
// by two processes in one consumer group (each takes half of the partitions), in the same run. A run ends
// when the group's committed offsets reach the topics' end offsets; its time counts from the processes'
// start, so both include process start, dimension load and the group join.
// Needs the local services (`bash scripts/services.sh up`, then source .services/env).
// Usage: npm run build && node bench/streaming-group.mjs  (BENCH_TRANSACTIONS=200000, BENCH_INSTANCES=1,2,
// BENCH_BATCH_RECORDS=20000: records per micro-batch at most)
import { spawn } from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { Effect, Layer } from "effect"
import { Kafka, logLevel } from "kafkajs"
import { layerKafka } from "../dist/layers/KafkaEventLog.js"
import { ProcessedBucket, RawBucket } from "../dist/layers/ObjectStore.js"
import { Parquet } from "../dist/layers/ParquetCodec.js"
import { generateDataset } from "../dist/streams/generate.js"
import { runBatchIngest, runStreamIngest } from "../dist/streams/ingest.js"

const brokers = (process.env.RECON_KAFKA_BROKERS ?? "").split(",").filter(Boolean)
if (brokers.length === 0) {
  console.error("RECON_KAFKA_BROKERS must be set (source .services/env)")
  process.exit(2)
}
const transactions = Number(process.env.BENCH_TRANSACTIONS ?? 200_000)
const instanceCounts = (process.env.BENCH_INSTANCES ?? "1,2").split(",").map(Number)
const batchRecords = process.env.BENCH_BATCH_RECORDS ?? "20000"
const runId = Date.now().toString(36)
const root = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "recon-stream-group-bench-"))
const inputDir = NodePath.join(root, "in")
const rawDir = NodePath.join(root, "raw")
const topics = { transactions: `bench-grp-tx-${runId}`, fraudSignals: `bench-grp-fs-${runId}` }

await Effect.runPromise(generateDataset({ outDir: inputDir, transactions, seed: 5 }))
const produced = await Effect.runPromise(
  Effect.gen(function* () {
    yield* runBatchIngest(inputDir)
    return yield* runStreamIngest(inputDir, 1000, topics)
  }).pipe(
    Effect.provide(
      Layer.mergeAll(
        RawBucket.layerLocal(rawDir),
        ProcessedBucket.layerLocal(NodePath.join(root, "unused")),
        layerKafka({ brokers, clientId: "bench-group-producer" }),
        Parquet.layer()
      )
    )
  )
)
const records = produced.transactions + produced.fraudSignals

const kafka = new Kafka({ clientId: "bench-group-admin", brokers, logLevel: logLevel.NOTHING })
const admin = kafka.admin()
await admin.connect()
const endOffsets = new Map()
for (const topic of Object.values(topics)) {
  for (const { partition, offset } of await admin.fetchTopicOffsets(topic))
    endOffsets.set(`${topic}/${partition}`, Number(offset))
}
const behind = async (group) => {
  let left = 0
  for (const { topic, partitions } of await admin.fetchOffsets({
    groupId: group,
    topics: Object.values(topics)
  }))
    for (const { partition, offset } of partitions) {
      const end = endOffsets.get(`${topic}/${partition}`) ?? 0
      left += Math.max(0, end - Math.max(0, Number(offset)))
    }
  return left
}

const rssOf = (pid) => {
  try {
    const kb = NodeFs.readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+)/m)?.[1]
    return Number(kb ?? 0) / 1024
  } catch {
    return 0
  }
}

const runGroup = async (instances) => {
  const group = `bench-grp-${instances}-${runId}`
  const started = process.hrtime.bigint()
  const children = Array.from({ length: instances }, () =>
    spawn(process.execPath, ["dist/programs/streaming.js"], {
      env: {
        ...process.env,
        RECON_RAW_DIR: rawDir,
        RECON_PROCESSED_DIR: NodePath.join(root, `processed-${instances}`),
        RECON_KV_DIR: NodePath.join(root, `kv-${instances}`),
        RECON_STREAM_GROUP: group,
        RECON_TOPIC_TRANSACTIONS: topics.transactions,
        RECON_TOPIC_FRAUD_SIGNALS: topics.fraudSignals,
        RECON_STREAM_MAX_BATCH_RECORDS: batchRecords,
        RECON_OPS_PORT: "0",
        RECON_LIVE_SCORING: "false"
      },
      stdio: ["ignore", "ignore", "pipe"]
    })
  )
  let stderr = ""
  for (const child of children) child.stderr.on("data", (chunk) => (stderr += chunk))
  const exited = children.map((child) => new Promise((resolve) => child.on("exit", resolve)))
  let peakRss = 0
  try {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 250))
      peakRss = Math.max(peakRss, ...children.map((child) => rssOf(child.pid)))
      if (children.some((child) => child.exitCode !== null))
        throw new Error(`a streaming process exited early:\n${stderr.slice(-2000)}`)
      if ((await behind(group)) === 0) break
    }
    return { instances, seconds: Number(process.hrtime.bigint() - started) / 1e9, peakRss }
  } finally {
    for (const child of children) child.kill("SIGTERM")
    await Promise.all(exited)
  }
}

const results = []
for (const instances of instanceCounts) results.push(await runGroup(instances))
await admin.disconnect()

console.log(
  `\n${records} stream records (${transactions} transactions), 4 partitions per topic, micro-batches of at most ${batchRecords} records`
)
console.log(
  "instances".padEnd(12),
  "seconds".padStart(10),
  "records/s".padStart(12),
  "peak RSS MB each".padStart(18)
)
for (const { instances, seconds, peakRss } of results)
  console.log(
    String(instances).padEnd(12),
    seconds.toFixed(1).padStart(10),
    Math.round(records / seconds)
      .toString()
      .padStart(12),
    peakRss.toFixed(0).padStart(18)
  )
NodeFs.rmSync(root, { recursive: true, force: true })
