// Throughput through the project's Kafka and S3 layers beside the raw clients in the same run.
// Needs the local services: `bash scripts/services.sh up && set -a && . .services/env && set +a`.
// Usage: npm run build && node bench/services.mjs   (BENCH_MESSAGES=200000, BENCH_S3_MB=256)
import { randomBytes } from "node:crypto"
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3"
import { Effect, Option, Redacted, Stream } from "effect"
import { Kafka, logLevel, Partitioners } from "kafkajs"
import { makeKafkaEventLog } from "../dist/layers/KafkaEventLog.js"
import { ensureBucket, makeS3Client, makeS3ObjectStore } from "../dist/layers/S3ObjectStore.js"

const brokers = (process.env.RECON_KAFKA_BROKERS ?? "").split(",").filter(Boolean)
const endpoint = process.env.RECON_S3_ENDPOINT
if (brokers.length === 0 || endpoint === undefined) {
  console.error("RECON_KAFKA_BROKERS and RECON_S3_ENDPOINT must be set (source .services/env)")
  process.exit(2)
}
const messages = Number(process.env.BENCH_MESSAGES ?? 200_000)
const batch = 1_000
const runId = Date.now().toString(36)
const payload = (index) =>
  Buffer.from(
    JSON.stringify({
      event_id: `e-${index}`,
      transaction_id: `t-${index % 50_000}`,
      amount_minor: index,
      pad: "x".repeat(180)
    })
  )
const values = Array.from({ length: messages }, (_, index) => ({
  key: `t-${index % 50_000}`,
  value: payload(index)
}))
const seconds = (start) => Number(process.hrtime.bigint() - start) / 1e9
const rows = []

// Kafka: produce N through each path to one topic, then consume all 2N from the start through each path.
const topic = `bench-${runId}`
const raw = new Kafka({ clientId: "bench-raw", brokers, logLevel: logLevel.NOTHING })
const admin = raw.admin()
await admin.connect()
await admin.createTopics({
  topics: [{ topic, numPartitions: 4, replicationFactor: 1 }],
  waitForLeaders: true
})

const layerProduce = await Effect.runPromise(
  Effect.scoped(
    Effect.gen(function* () {
      const log = yield* makeKafkaEventLog({ brokers, clientId: "bench-layer" })
      const start = process.hrtime.bigint()
      for (let offset = 0; offset < messages; offset += batch) {
        yield* log.produce(
          topic,
          values
            .slice(offset, offset + batch)
            .map(({ key, value }) => ({ key, value: new Uint8Array(value) }))
        )
      }
      return seconds(start)
    })
  )
)
const producer = raw.producer({
  idempotent: true,
  maxInFlightRequests: 1,
  createPartitioner: Partitioners.DefaultPartitioner
})
await producer.connect()
let start = process.hrtime.bigint()
for (let offset = 0; offset < messages; offset += batch) {
  await producer.send({ topic, acks: -1, messages: values.slice(offset, offset + batch) })
}
const rawProduce = seconds(start)
await producer.disconnect()
rows.push(["kafka produce (msg/s)", messages / layerProduce, messages / rawProduce])

const layerConsume = await Effect.runPromise(
  Effect.scoped(
    Effect.gen(function* () {
      const log = yield* makeKafkaEventLog({ brokers, clientId: "bench-layer-consumer" })
      const started = process.hrtime.bigint()
      const count = yield* log
        .subscribe(`bench-layer-${runId}`, [topic], { stopAtEnd: true })
        .pipe(Stream.runFold(0, (total, records) => total + records.length))
      return { count, seconds: seconds(started) }
    })
  )
)
const consumer = raw.consumer({ groupId: `bench-raw-${runId}` })
await consumer.connect()
await consumer.subscribe({ topic, fromBeginning: true })
let consumed = 0
start = process.hrtime.bigint()
await new Promise((resolve) => {
  consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch: fetched }) => {
      consumed += fetched.messages.length
      if (consumed >= 2 * messages) resolve()
    }
  })
})
const rawConsume = seconds(start)
await consumer.disconnect()
await admin.deleteTopics({ topics: [topic] }).catch(() => undefined)
await admin.disconnect()
rows.push(["kafka consume (msg/s)", layerConsume.count / layerConsume.seconds, consumed / rawConsume])

// S3: put then get objects of 8 MiB (single PUT) and 32 MiB (multipart) through the layer and the raw SDK.
const totalMb = Number(process.env.BENCH_S3_MB ?? 256)
const client = makeS3Client({
  endpoint: Option.some(endpoint),
  region: "us-east-1",
  accessKeyId: Redacted.make(process.env.RECON_S3_ACCESS_KEY_ID ?? "S3RVER"),
  secretAccessKey: Redacted.make(process.env.RECON_S3_SECRET_ACCESS_KEY ?? "S3RVER"),
  forcePathStyle: true
})
const bucket = `bench-${runId}`
await Effect.runPromise(ensureBucket(client, bucket))
const store = makeS3ObjectStore(client, bucket)
for (const sizeMb of [8, 32]) {
  const body = new Uint8Array(randomBytes(sizeMb << 20))
  const count = Math.max(1, Math.floor(totalMb / 2 / sizeMb))
  start = process.hrtime.bigint()
  for (let index = 0; index < count; index++)
    await Effect.runPromise(store.put(`layer/${sizeMb}/${index}`, body))
  const layerPut = seconds(start)
  start = process.hrtime.bigint()
  for (let index = 0; index < count; index++) await Effect.runPromise(store.get(`layer/${sizeMb}/${index}`))
  const layerGet = seconds(start)
  start = process.hrtime.bigint()
  for (let index = 0; index < count; index++) {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: `raw/${sizeMb}/${index}`, Body: body }))
  }
  const rawPut = seconds(start)
  start = process.hrtime.bigint()
  for (let index = 0; index < count; index++) {
    const response = await client.send(
      new GetObjectCommand({ Bucket: bucket, Key: `raw/${sizeMb}/${index}` })
    )
    await response.Body.transformToByteArray()
  }
  const rawGet = seconds(start)
  const mb = count * sizeMb
  rows.push([`s3 put ${sizeMb} MiB objects (MB/s)`, mb / layerPut, mb / rawPut])
  rows.push([`s3 get ${sizeMb} MiB objects (MB/s)`, mb / layerGet, mb / rawGet])
}
client.destroy()

console.log(
  `\n${messages} messages of ~${values[0].value.length} bytes, 4 partitions; S3 ${totalMb} MiB per path`
)
console.log(
  "figure".padEnd(30),
  "project layer".padStart(14),
  "raw client".padStart(12),
  "layer/raw".padStart(10)
)
for (const [label, layer, baseline] of rows) {
  console.log(
    label.padEnd(30),
    layer.toFixed(0).padStart(14),
    baseline.toFixed(0).padStart(12),
    `${((100 * layer) / baseline).toFixed(0)}%`.padStart(10)
  )
}
