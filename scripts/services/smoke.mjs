// Smoke check of the services started by scripts/services.sh, with the clients the real layers use.
// Run after `scripts/services.sh up` with .services/env sourced:
//   set -a; . .services/env; node scripts/services/smoke.mjs [kafka|s3|redis|dynamodb ...]
// Prints one line per check and exits non-zero on the first failure. KAFKAJS_LOG=debug shows the protocol.

import { execFileSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import { CreateTableCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb"
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client
} from "@aws-sdk/client-s3"
import { Kafka, logLevel } from "kafkajs"

const env = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set: source .services/env first`)
  return value
}
const step = async (label, run) => {
  const started = performance.now()
  const detail = await run()
  console.log(`ok  ${label}${detail ? `: ${detail}` : ""} (${Math.round(performance.now() - started)} ms)`)
}
const suffix = randomUUID().slice(0, 8)

const checkKafka = async () => {
  const level = { debug: logLevel.DEBUG, info: logLevel.INFO }[process.env.KAFKAJS_LOG ?? ""] ?? logLevel.WARN
  const kafka = new Kafka({
    clientId: "recon-smoke",
    brokers: env("RECON_KAFKA_BROKERS").split(","),
    logLevel: level
  })
  const topic = `smoke-${suffix}`
  const admin = kafka.admin()
  await admin.connect()
  await step("kafka admin describeCluster", async () => {
    const cluster = await admin.describeCluster()
    return `${cluster.brokers.length} broker(s), controller ${cluster.controller}`
  })
  await step("kafka createTopics", async () => {
    await admin.createTopics({
      topics: [{ topic, numPartitions: 4, replicationFactor: 1 }],
      waitForLeaders: true
    })
    return topic
  })
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const messages = Array.from({ length: 20 }, (_, i) => ({ key: `tx-${i}`, value: `payload-${i}` }))
  await step("kafka idempotent produce acks=all", async () => {
    const result = await producer.send({ topic, acks: -1, messages })
    return `${result.length} partition(s) written`
  })
  await producer.disconnect()
  const groupId = `smoke-group-${suffix}`
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  await step("kafka consumer group consume + commitOffsets", async () => {
    const seen = new Set()
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`consumed ${seen.size}/20 within 30s`)), 30000)
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            seen.add(message.key?.toString())
            await consumer.commitOffsets([
              { topic, partition, offset: (BigInt(message.offset) + 1n).toString() }
            ])
            if (seen.size === messages.length) {
              clearTimeout(timer)
              resolve(undefined)
            }
          }
        })
        .catch(reject)
    })
    return `${seen.size} messages`
  })
  await consumer.disconnect()
  await step("kafka fetchOffsets for the group", async () => {
    const offsets = await admin.fetchOffsets({ groupId, topics: [topic] })
    const committed = offsets[0]?.partitions.reduce((sum, p) => sum + Number(p.offset), 0)
    if (committed !== messages.length) throw new Error(`committed offsets sum ${committed}, expected 20`)
    return `sum of committed offsets ${committed}`
  })
  await step("kafka deleteTopics", () => admin.deleteTopics({ topics: [topic] }))
  await admin.disconnect()
}

const checkS3 = async () => {
  const s3 = new S3Client({
    endpoint: env("RECON_S3_ENDPOINT"),
    region: process.env.RECON_S3_REGION ?? "us-east-1",
    forcePathStyle: true,
    credentials: {
      accessKeyId: env("RECON_S3_ACCESS_KEY_ID"),
      secretAccessKey: env("RECON_S3_SECRET_ACCESS_KEY")
    }
  })
  const bucket = `smoke-${suffix}`
  await step("s3 CreateBucket", () => s3.send(new CreateBucketCommand({ Bucket: bucket })).then(() => bucket))
  await step("s3 PutObject", () =>
    s3.send(new PutObjectCommand({ Bucket: bucket, Key: "a/b.txt", Body: "hello" })).then((r) => r.ETag)
  )
  await step("s3 GetObject", async () => {
    const body = await (
      await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "a/b.txt" }))
    ).Body.transformToString()
    if (body !== "hello") throw new Error(`read back ${JSON.stringify(body)}`)
    return body
  })
  await step("s3 ListObjectsV2", async () => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "a/" }))
    const keys = (listed.Contents ?? []).map((o) => o.Key)
    if (keys.join() !== "a/b.txt") throw new Error(`listed ${keys.join()}`)
    return keys.join()
  })
  await step("s3 default buckets exist", async () => {
    for (const Bucket of ["recon-raw", "recon-processed"]) await s3.send(new ListObjectsV2Command({ Bucket }))
    return "recon-raw, recon-processed"
  })
  s3.destroy()
}

const checkRedis = async () => {
  const url = new URL(env("RECON_REDIS_URL"))
  await step("redis PING", () => {
    const reply = execFileSync("redis-cli", ["-h", url.hostname, "-p", url.port, "ping"]).toString().trim()
    if (reply !== "PONG") throw new Error(reply)
    return reply
  })
}

const checkDynamo = async () => {
  const db = new DynamoDBClient({
    endpoint: env("RECON_DYNAMODB_ENDPOINT"),
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" }
  })
  const table = `smoke-${suffix}`
  await step("dynamodb CreateTable", async () => {
    const created = await db.send(
      new CreateTableCommand({
        TableName: table,
        AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }],
        KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
        BillingMode: "PAY_PER_REQUEST"
      })
    )
    return created.TableDescription?.TableStatus
  })
  await step("dynamodb PutItem", () =>
    db
      .send(new PutItemCommand({ TableName: table, Item: { pk: { S: "k1" }, v: { N: "42" } } }))
      .then(() => "k1")
  )
  await step("dynamodb GetItem", async () => {
    const got = await db.send(
      new GetItemCommand({ TableName: table, Key: { pk: { S: "k1" } }, ConsistentRead: true })
    )
    if (got.Item?.v?.N !== "42") throw new Error(JSON.stringify(got.Item))
    return JSON.stringify(got.Item)
  })
  db.destroy()
}

const checks = { kafka: checkKafka, s3: checkS3, redis: checkRedis, dynamodb: checkDynamo }
const selected = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(checks)
for (const name of selected) {
  const check = checks[name]
  if (!check) throw new Error(`unknown check ${name}`)
  try {
    await check()
  } catch (error) {
    console.error(`FAIL ${name}: ${error instanceof Error ? error.stack : String(error)}`)
    process.exit(1)
  }
}
