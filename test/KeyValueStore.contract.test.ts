import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { DeleteTableCommand, DynamoDBClient, GetItemCommand } from "@aws-sdk/client-dynamodb"
import { KeyValueStore } from "@effect/platform"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Option, Redacted, TestClock, TestContext } from "effect"
import { Redis } from "ioredis"
import * as DynamoDbKeyValueStore from "../src/layers/DynamoDbKeyValueStore.js"
import { layerDirectory, layerMemory } from "../src/layers/KeyValueStore.js"
import * as RedisKeyValueStore from "../src/layers/RedisKeyValueStore.js"
import { keyValueStoreContract } from "./support/keyValueStoreContract.js"
import { requireService } from "./support/services.js"

const runId = `${Date.now().toString(36)}-${process.pid}`

/** Builds a store layer into the current scope, so its client stays open until the test ends. */
const buildStore = <E>(storeLayer: Layer.Layer<KeyValueStore.KeyValueStore, E>) =>
  Effect.map(Layer.build(storeLayer), Context.get(KeyValueStore.KeyValueStore))

keyValueStoreContract("memory", layerMemory)
keyValueStoreContract(
  "directory",
  layerDirectory(NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "kv-contract-")))
)

const redisUrl = requireService("Redis", "RECON_REDIS_URL")
describe.skipIf(redisUrl === undefined)("Redis key-value store", () => {
  const url = redisUrl ?? ""
  const prefix = `recon-test:${runId}:`
  keyValueStoreContract("redis", RedisKeyValueStore.layer({ url: Redacted.make(url), prefix, scanCount: 7 }))

  const raw = new Redis(url, { lazyConnect: true })
  afterAll(async () => {
    let cursor = "0"
    do {
      const [next, keys] = await raw.scan(cursor, "MATCH", `recon-test:${runId}*`, "COUNT", 500)
      if (keys.length > 0) await raw.del(...keys)
      cursor = next
    } while (cursor !== "0")
    await raw.quit()
  })

  it.live("keys live under the prefix; clear and size never touch other namespaces", () =>
    Effect.gen(function* () {
      yield* Effect.promise(() => raw.connect().catch(() => undefined))
      const outsider = `recon-test:${runId}-outside`
      yield* Effect.promise(() => raw.set(outsider, "keep me"))
      const first = yield* buildStore(RedisKeyValueStore.layer({ url, prefix: `recon-test:${runId}:a*:` }))
      const second = yield* buildStore(RedisKeyValueStore.layer({ url, prefix: `recon-test:${runId}:ab:` }))
      yield* first.set("x", "1")
      yield* second.set("y", "2")
      assert.strictEqual(yield* Effect.promise(() => raw.get(`recon-test:${runId}:a*:x`)), "1")
      assert.strictEqual(yield* first.size, 1, "the * in the prefix is literal, not a glob")
      yield* first.clear
      assert.strictEqual(yield* second.size, 1)
      assert.deepStrictEqual(yield* second.get("y"), Option.some("2"))
      assert.strictEqual(yield* Effect.promise(() => raw.get(outsider)), "keep me")
    }).pipe(Effect.scoped)
  )

  it.live("with a TTL every key written expires (SET … EX)", () =>
    Effect.gen(function* () {
      yield* Effect.promise(() => raw.connect().catch(() => undefined))
      const store = yield* buildStore(
        RedisKeyValueStore.layer({ url, prefix: `recon-test:${runId}:ttl:`, ttlSeconds: 90 })
      )
      yield* store.set("agg:current", "v1")
      const ttl = yield* Effect.promise(() => raw.ttl(`recon-test:${runId}:ttl:agg:current`))
      assert.isTrue(ttl > 0 && ttl <= 90, `ttl ${ttl}`)
    }).pipe(Effect.scoped)
  )

  it.live("an unreachable server fails the layer with a SystemError", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        KeyValueStore.KeyValueStore.pipe(
          Effect.provide(RedisKeyValueStore.layer({ url: "redis://127.0.0.1:1" })),
          Effect.scoped
        )
      )
      const failure = Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined
      assert.strictEqual(failure?._tag, "SystemError")
      assert.include(failure?.message, "redis connect failed")
    })
  )
})

const dynamoEndpoint = requireService("DynamoDB", "RECON_DYNAMODB_ENDPOINT")
describe.skipIf(dynamoEndpoint === undefined)("DynamoDB key-value store", () => {
  const table = `recon-test-${runId}`
  const settings = (tableName: string): DynamoDbKeyValueStore.DynamoDbSettings => ({
    endpoint: Option.some(dynamoEndpoint ?? ""),
    region: "us-east-1",
    accessKeyId: Redacted.make("local"),
    secretAccessKey: Redacted.make("local"),
    table: tableName
  })
  keyValueStoreContract("dynamodb", DynamoDbKeyValueStore.layer(settings(table)))

  afterAll(async () => {
    const client = new DynamoDBClient({
      endpoint: dynamoEndpoint ?? "",
      region: "us-east-1",
      credentials: { accessKeyId: "local", secretAccessKey: "local" }
    })
    for (const name of [table, `${table}-second`]) {
      await client.send(new DeleteTableCommand({ TableName: name })).catch(() => undefined)
    }
    client.destroy()
  })

  it.live("with a TTL an item carries expires_at and reads as absent once it passed", () =>
    Effect.gen(function* () {
      const tableName = `${table}-ttl`
      const store = yield* buildStore(DynamoDbKeyValueStore.layer({ ...settings(tableName), ttlSeconds: 60 }))
      const client = yield* DynamoDbKeyValueStore.acquireDynamoDbClient(settings(tableName))
      // The store reads the Effect clock: a TestClock decides "now" for the write and the reads.
      yield* Effect.gen(function* () {
        yield* TestClock.setTime(Date.parse("2026-11-26T12:00:00Z"))
        yield* store.set("expiring", "soon")
        const item = yield* Effect.promise(() =>
          client.send(new GetItemCommand({ TableName: tableName, Key: { k: { S: "expiring" } } }))
        )
        assert.strictEqual(
          item.Item?.[DynamoDbKeyValueStore.expiresAttribute]?.N,
          String(Date.parse("2026-11-26T12:01:00Z") / 1000)
        )
        assert.deepStrictEqual(yield* store.get("expiring"), Option.some("soon"))
        yield* TestClock.adjust("60 seconds")
        assert.isTrue(Option.isNone(yield* store.get("expiring")))
      }).pipe(Effect.provide(TestContext.TestContext))
      yield* Effect.promise(() => client.send(new DeleteTableCommand({ TableName: tableName })))
    }).pipe(Effect.scoped)
  )

  it.live("the table is created once and reused by the next layer", () =>
    Effect.gen(function* () {
      const second = `${table}-second`
      const firstStore = yield* buildStore(DynamoDbKeyValueStore.layer(settings(second)))
      yield* firstStore.set("kept", "across layers")
      const again = yield* buildStore(DynamoDbKeyValueStore.layer(settings(second)))
      assert.deepStrictEqual(yield* again.get("kept"), Option.some("across layers"))
    }).pipe(Effect.scoped)
  )

  it.live("size and clear page through the Scan and batch deletes past 25 items", () =>
    Effect.gen(function* () {
      const store = yield* buildStore(
        DynamoDbKeyValueStore.layer({ ...settings(`${table}-second`), scanPageSize: 17 })
      )
      yield* store.clear
      yield* Effect.forEach(
        Array.from({ length: 130 }, (_, index) => index),
        (index) => store.set(`bulk-${index}`, "x".repeat(index)),
        { concurrency: 16 }
      )
      assert.strictEqual(yield* store.size, 130)
      yield* store.clear
      assert.strictEqual(yield* store.size, 0)
    }).pipe(Effect.scoped)
  )

  it.live("a call on a missing table fails with a SystemError naming the table", () =>
    Effect.gen(function* () {
      const client = yield* DynamoDbKeyValueStore.acquireDynamoDbClient({
        ...settings("unused"),
        maxAttempts: 1
      })
      const store = DynamoDbKeyValueStore.makeDynamoDbKeyValueStore(client, `${table}-missing`)
      const exit = yield* Effect.exit(store.get("k"))
      const failure = Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined
      assert.strictEqual(failure?._tag, "SystemError")
      assert.include(failure?.message, `${table}-missing`)
    }).pipe(Effect.scoped)
  )
})
