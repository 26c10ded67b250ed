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

// Kafka: three rounds, the two paths alternating first, medians reported. Produce rounds append N messages
// to one topic; consume rounds read a second topic preloaded with N messages from the start, each in a
// new consumer group.
const produceTopic = `bench-produce-${runId}`
const consumeTopic = `bench-consume-${runId}`
const raw = new Kafka({ clientId: "bench-raw", brokers, logLevel: logLevel.NOTHING })
const admin = raw.admin()
await admin.connect()
await admin.createTopics({
  topics: [produceTopic, consumeTopic].map((topic) => ({ topic, numPartitions: 4, replicationFactor: 1 })),
  waitForLeaders: true
})
const producer = raw.producer({
  idempotent: true,
  maxInFlightRequests: 1,
  createPartitioner: Partitioners.DefaultPartitioner
})
await producer.connect()
const rawProduce = async (topic) => {
  const started = process.hrtime.bigint()
  for (let offset = 0; offset < messages; offset += batch) {
    await producer.send({ topic, acks: -1, messages: values.slice(offset, offset + batch) })
  }
  return seconds(started)
}
await rawProduce(consumeTopic)

const layerProduce = (log) =>
  Effect.gen(function* () {
    const started = process.hrtime.bigint()
    for (let offset = 0; offset < messages; offset += batch) {
      // A Buffer is a Uint8Array: both paths get the same prebuilt messages.
      yield* log.produce(produceTopic, values.slice(offset, offset + batch))
    }
    return seconds(started)
  })
const layerConsume = (log, round) =>
  Effect.gen(function* () {
    const started = process.hrtime.bigint()
    const count = yield* log
      .subscribe(`bench-layer-${runId}-${round}`, [consumeTopic], { stopAtEnd: true })
      .pipe(Stream.runFold(0, (total, records) => total + records.length))
    if (count !== messages) throw new Error(`layer consumed ${count} of ${messages}`)
    return seconds(started)
  })
// Both consume paths are timed from connect to disconnect (group join and leave included).
const rawConsume = async (round) => {
  const started = process.hrtime.bigint()
  const consumer = raw.consumer({ groupId: `bench-raw-${runId}-${round}`, maxWaitTimeInMs: 1000 })
  await consumer.connect()
  await consumer.subscribe({ topic: consumeTopic, fromBeginning: true })
  let consumed = 0
  await new Promise((resolve) => {
    consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch: fetched }) => {
        consumed += fetched.messages.length
        if (consumed >= messages) resolve()
      }
    })
  })
  await consumer.disconnect()
  return seconds(started)
}
const median = (list) => [...list].sort((x, y) => x - y)[Math.floor(list.length / 2)]
const timings = { layerProduce: [], rawProduce: [], layerConsume: [], rawConsume: [] }
await Effect.runPromise(
  Effect.scoped(
    Effect.gen(function* () {
      const log = yield* makeKafkaEventLog({ brokers, clientId: "bench-layer" })
      for (let round = 0; round < 3; round++) {
        const layerFirst = round % 2 === 0
        if (!layerFirst) timings.rawProduce.push(yield* Effect.promise(() => rawProduce(produceTopic)))
        timings.layerProduce.push(yield* layerProduce(log))
        if (layerFirst) timings.rawProduce.push(yield* Effect.promise(() => rawProduce(produceTopic)))
        if (!layerFirst) timings.rawConsume.push(yield* Effect.promise(() => rawConsume(round)))
        timings.layerConsume.push(yield* layerConsume(log, round))
        if (layerFirst) timings.rawConsume.push(yield* Effect.promise(() => rawConsume(round)))
      }
    })
  )
)
await producer.disconnect()
await admin.deleteTopics({ topics: [produceTopic, consumeTopic] }).catch(() => undefined)
await admin.disconnect()
rows.push([
  "kafka produce (msg/s)",
  messages / median(timings.layerProduce),
  messages / median(timings.rawProduce)
])
rows.push([
  "kafka consume (msg/s)",
  messages / median(timings.layerConsume),
  messages / median(timings.rawConsume)
])

// S3: objects of 8 MiB (one PUT) and 32 MiB (multipart through the layer, one PUT raw), three rounds with
// the two paths alternating first, medians reported.
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
const timed = async (run) => {
  const started = process.hrtime.bigint()
  await run()
  return seconds(started)
}
for (const sizeMb of [8, 32]) {
  const body = new Uint8Array(randomBytes(sizeMb << 20))
  const count = Math.max(1, Math.floor(totalMb / 6 / sizeMb))
  const layerPaths = {
    put: (round) => async () => {
      for (let index = 0; index < count; index++)
        await Effect.runPromise(store.put(`layer/${sizeMb}/${round}/${index}`, body))
    },
    get: (round) => async () => {
      for (let index = 0; index < count; index++)
        await Effect.runPromise(store.get(`layer/${sizeMb}/${round}/${index}`))
    }
  }
  const rawPaths = {
    put: (round) => async () => {
      for (let index = 0; index < count; index++)
        await client.send(
          new PutObjectCommand({ Bucket: bucket, Key: `raw/${sizeMb}/${round}/${index}`, Body: body })
        )
    },
    get: (round) => async () => {
      for (let index = 0; index < count; index++) {
        const response = await client.send(
          new GetObjectCommand({ Bucket: bucket, Key: `raw/${sizeMb}/${round}/${index}` })
        )
        await response.Body.transformToByteArray()
      }
    }
  }
  const s3Timings = { layerPut: [], rawPut: [], layerGet: [], rawGet: [] }
  for (let round = 0; round < 3; round++) {
    const order = round % 2 === 0 ? ["layer", "raw"] : ["raw", "layer"]
    for (const path of order) {
      const paths = path === "layer" ? layerPaths : rawPaths
      s3Timings[`${path}Put`].push(await timed(paths.put(round)))
    }
    for (const path of order) {
      const paths = path === "layer" ? layerPaths : rawPaths
      s3Timings[`${path}Get`].push(await timed(paths.get(round)))
    }
  }
  const mb = count * sizeMb
  rows.push([
    `s3 put ${sizeMb} MiB objects (MB/s)`,
    mb / median(s3Timings.layerPut),
    mb / median(s3Timings.rawPut)
  ])
  rows.push([
    `s3 get ${sizeMb} MiB objects (MB/s)`,
    mb / median(s3Timings.layerGet),
    mb / median(s3Timings.rawGet)
  ])
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
