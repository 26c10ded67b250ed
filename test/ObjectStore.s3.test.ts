import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { DeleteBucketCommand, type S3Client } from "@aws-sdk/client-s3"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Option } from "effect"
import { ObjectStoreError } from "../src/domain/errors.js"
import {
  ensureBucket,
  isRetryableAwsError,
  makeS3Client,
  makeS3ObjectStore,
  type S3ObjectStoreOptions,
  s3SettingsConfig
} from "../src/layers/S3ObjectStore.js"
import {
  type FaultPlan,
  faultEvery,
  faultFirst,
  noFaults,
  type ProxiedRequest,
  startFaultProxy
} from "./support/faultProxy.js"
import { objectStoreContract } from "./support/objectStoreContract.js"
import { requireService } from "./support/services.js"

const endpoint = requireService("S3", "RECON_S3_ENDPOINT")

/** Deterministic bytes from a seed (xorshift32). */
const seededBytes = (length: number, seed: number) => {
  const bytes = new Uint8Array(length)
  let state = seed >>> 0 || 1
  for (let index = 0; index < length; index++) {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    bytes[index] = state & 0xff
  }
  return bytes
}

const bytesEqual = (a: Uint8Array, b: Uint8Array) => a.byteLength === b.byteLength && Buffer.from(a).equals(b)

describe.skipIf(endpoint === undefined)("S3 object store", () => {
  const settings = Effect.runSync(s3SettingsConfig)
  const runId = `recon-test-${Date.now().toString(36)}-${process.pid}`
  const clients: Array<S3Client> = []
  const createdBuckets: Array<string> = []
  let bucketSequence = 0

  const clientFor = (options: { readonly endpoint?: string; readonly maxAttempts?: number } = {}) => {
    const client = makeS3Client({
      ...settings,
      endpoint: Option.some(options.endpoint ?? endpoint ?? ""),
      ...(options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts })
    })
    clients.push(client)
    return client
  }
  const directClient = clientFor()

  const freshBucket = Effect.suspend(() => {
    const bucket = `${runId}-${++bucketSequence}`
    createdBuckets.push(bucket)
    return Effect.as(ensureBucket(directClient, bucket), bucket)
  })

  const freshStore = (options: S3ObjectStoreOptions = {}) =>
    Effect.map(freshBucket, (bucket) => makeS3ObjectStore(directClient, bucket, options))

  afterAll(async () => {
    for (const bucket of createdBuckets) {
      const store = makeS3ObjectStore(directClient, bucket, { retryBaseDelay: Duration.millis(20) })
      await Effect.runPromise(
        Effect.flatMap(store.list(""), (objects) =>
          Effect.forEach(objects, (object) => store.delete(object.key), { concurrency: 16, discard: true })
        ).pipe(
          Effect.zipRight(
            Effect.promise(() => directClient.send(new DeleteBucketCommand({ Bucket: bucket })))
          ),
          Effect.catchAllCause((cause) => Effect.logWarning(`could not remove test bucket ${bucket}`, cause))
        )
      )
    }
    for (const client of clients) client.destroy()
  })

  objectStoreContract("s3", () => Effect.orDie(freshStore()))

  /** A proxy in front of the S3 server that records every request and faults the ones `plan` selects. */
  const recordingProxy = async (plan: FaultPlan) => {
    const requests: Array<ProxiedRequest> = []
    const proxy = await startFaultProxy(endpoint ?? "", {
      ...plan,
      shouldFault: (request) => {
        requests.push(request)
        return plan.shouldFault(request)
      }
    })
    return { proxy, requests }
  }

  it.live("ensureBucket is idempotent and the store describes its bucket", () =>
    Effect.gen(function* () {
      const bucket = yield* freshBucket
      yield* ensureBucket(directClient, bucket)
      const store = makeS3ObjectStore(directClient, bucket)
      assert.strictEqual(store.describe, `s3://${bucket}`)
      assert.isTrue(Option.isNone(store.localPath("any/key")))
    })
  )

  const partSize = 5 * 1024 * 1024
  /** A store on a fresh bucket behind a recording proxy: multipart above 1 MiB, 5 MiB parts, two at a time. */
  const multipartStoreBehindProxy = Effect.gen(function* () {
    const bucket = yield* freshBucket
    const { proxy, requests } = yield* Effect.promise(() => recordingProxy(noFaults))
    yield* Effect.addFinalizer(() => Effect.promise(() => proxy.stop()))
    const store = makeS3ObjectStore(clientFor({ endpoint: proxy.url }), bucket, {
      multipartThreshold: 1024 * 1024,
      partSize,
      partConcurrency: 2
    })
    return { store, requests }
  })

  it.live("a body above the multipart threshold goes up in parts and round-trips byte-identical", () =>
    Effect.gen(function* () {
      const { store, requests } = yield* multipartStoreBehindProxy
      const body = seededBytes(2 * partSize + 12_345, 42)
      yield* store.put("big/object.bin", body)
      const read = yield* store.get("big/object.bin")
      assert.isTrue(Option.isSome(read) && bytesEqual(read.value, body), "multipart body differs")
      assert.deepStrictEqual(yield* store.list("big/"), [{ key: "big/object.bin", size: body.byteLength }])
      const partUploads = requests.filter(
        (request) => request.method === "PUT" && request.url.includes("partNumber=")
      )
      assert.strictEqual(partUploads.length, 3)
      assert.strictEqual(requests.filter((request) => request.url.includes("uploads")).length, 1)
      assert.strictEqual(
        requests.filter((request) => request.method === "POST" && request.url.includes("uploadId=")).length,
        1
      )

      const small = seededBytes(1000, 7)
      const before = requests.length
      yield* store.put("big/small.bin", small)
      assert.strictEqual(requests.length - before, 1, "a small body is a single PutObject")
    }).pipe(Effect.scoped)
  )

  it.live("putFile sends a file above the threshold as a multipart upload read part by part", () =>
    Effect.gen(function* () {
      const { store, requests } = yield* multipartStoreBehindProxy
      const body = seededBytes(2 * partSize + 777, 11)
      const file = NodePath.join(
        NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "s3-put-file-")),
        "big.bin"
      )
      NodeFs.writeFileSync(file, body)
      yield* store.putFile("big/from-file.bin", file)
      const read = yield* store.get("big/from-file.bin")
      assert.isTrue(Option.isSome(read) && bytesEqual(read.value, body), "multipart body from file differs")
      assert.strictEqual(
        requests.filter((request) => request.method === "PUT" && request.url.includes("partNumber=")).length,
        3
      )
    }).pipe(Effect.scoped)
  )

  it.live("a failed part aborts the multipart upload and leaves no object", () =>
    Effect.gen(function* () {
      const bucket = yield* freshBucket
      const { proxy, requests } = yield* Effect.promise(() =>
        recordingProxy({
          kind: "internalError",
          shouldFault: (request) => request.url.includes("partNumber=2")
        })
      )
      yield* Effect.addFinalizer(() => Effect.promise(() => proxy.stop()))
      const store = makeS3ObjectStore(clientFor({ endpoint: proxy.url, maxAttempts: 1 }), bucket, {
        multipartThreshold: 100,
        partSize: 64,
        partConcurrency: 1,
        retries: 1,
        retryBaseDelay: Duration.millis(1)
      })
      const exit = yield* Effect.exit(store.put("broken/object.bin", seededBytes(200, 3)))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
        assert.instanceOf(failure, ObjectStoreError)
        assert.strictEqual(failure?.operation, "put")
      }
      assert.strictEqual(proxy.faulted(), 2, "the failing part is tried twice (one retry)")
      assert.strictEqual(
        requests.filter((request) => request.method === "DELETE" && request.url.includes("uploadId=")).length,
        1,
        "AbortMultipartUpload sent once"
      )
      assert.isTrue(Option.isNone(yield* store.get("broken/object.bin")))
    }).pipe(Effect.scoped)
  )

  it.live("list follows continuation tokens past 1000 keys (1050)", () =>
    Effect.gen(function* () {
      const store = yield* freshStore()
      const keys = Array.from({ length: 1050 }, (_, index) => `many/${String(index).padStart(5, "0")}`)
      yield* Effect.forEach(keys, (key) => store.put(key, new TextEncoder().encode(key)), { concurrency: 32 })
      yield* store.put("other/outside", new Uint8Array([1]))
      const listed = yield* store.list("many/")
      assert.strictEqual(listed.length, 1050)
      assert.deepStrictEqual(
        listed.map((info) => info.key),
        keys
      )
      assert.isTrue(listed.every((info) => info.size === 10))
    })
  )

  it.live(
    "survives 503 SlowDown answers through the Effect retry alone, losing and duplicating nothing",
    () =>
      Effect.gen(function* () {
        const bucket = yield* freshBucket
        const { proxy } = yield* Effect.promise(() => recordingProxy(faultFirst(5)))
        yield* Effect.addFinalizer(() => Effect.promise(() => proxy.stop()))
        const store = makeS3ObjectStore(clientFor({ endpoint: proxy.url, maxAttempts: 1 }), bucket, {
          retries: 8,
          retryBaseDelay: Duration.millis(5)
        })
        const keys = Array.from({ length: 20 }, (_, index) => `retry/${String(index).padStart(2, "0")}`)
        yield* Effect.forEach(keys, (key, index) => store.put(key, seededBytes(100 + index, index + 1)), {
          concurrency: 4
        })
        proxy.setPlan(faultEvery(3))
        const listed = yield* store.list("retry/")
        assert.deepStrictEqual(
          listed.map((info) => info.key),
          keys
        )
        for (const [index, key] of keys.entries()) {
          const read = yield* store.get(key)
          assert.isTrue(
            Option.isSome(read) && bytesEqual(read.value, seededBytes(100 + index, index + 1)),
            key
          )
        }
        assert.isAtLeast(proxy.faulted(), 5 + 6)
      }).pipe(Effect.scoped)
  )

  it.live("survives dropped connections through the Effect retry", () =>
    Effect.gen(function* () {
      const bucket = yield* freshBucket
      const { proxy } = yield* Effect.promise(() => recordingProxy(faultFirst(3, "connectionReset")))
      yield* Effect.addFinalizer(() => Effect.promise(() => proxy.stop()))
      const store = makeS3ObjectStore(clientFor({ endpoint: proxy.url, maxAttempts: 1 }), bucket, {
        retries: 5,
        retryBaseDelay: Duration.millis(5)
      })
      yield* store.put("reset/one", seededBytes(64, 9))
      const read = yield* store.get("reset/one")
      assert.isTrue(Option.isSome(read) && bytesEqual(read.value, seededBytes(64, 9)))
      assert.strictEqual(proxy.faulted(), 3)
    }).pipe(Effect.scoped)
  )

  it.live("survives throttling through the SDK's own retries", () =>
    Effect.gen(function* () {
      const bucket = yield* freshBucket
      const { proxy } = yield* Effect.promise(() => recordingProxy(faultEvery(2)))
      yield* Effect.addFinalizer(() => Effect.promise(() => proxy.stop()))
      const store = makeS3ObjectStore(clientFor({ endpoint: proxy.url, maxAttempts: 4 }), bucket, {
        retries: 0
      })
      for (const index of [1, 2, 3]) yield* store.put(`sdk/${index}`, seededBytes(50, index))
      assert.deepStrictEqual(
        (yield* store.list("sdk/")).map((info) => info.key),
        ["sdk/1", "sdk/2", "sdk/3"]
      )
      assert.strictEqual(proxy.faulted(), 3, "every second request faulted")
    }).pipe(Effect.scoped)
  )

  it.live("does not retry a client error", () =>
    Effect.gen(function* () {
      const { proxy } = yield* Effect.promise(() => recordingProxy(noFaults))
      yield* Effect.addFinalizer(() => Effect.promise(() => proxy.stop()))
      const store = makeS3ObjectStore(clientFor({ endpoint: proxy.url }), `${runId}-never-created`, {
        retryBaseDelay: Duration.millis(1)
      })
      const exit = yield* Effect.exit(store.get("k"))
      assert.isTrue(Exit.isFailure(exit), "a missing bucket is an error, not a missing key")
      assert.strictEqual(proxy.forwarded(), 1)
    }).pipe(Effect.scoped)
  )
})

describe("isRetryableAwsError", () => {
  it("retries 5xx, 429, throttling codes and dropped connections, not client errors", () => {
    assert.isTrue(isRetryableAwsError({ name: "SlowDown", $metadata: { httpStatusCode: 503 } }))
    assert.isTrue(isRetryableAwsError({ name: "Whatever", $metadata: { httpStatusCode: 500 } }))
    assert.isTrue(isRetryableAwsError({ name: "TooManyRequests", $metadata: { httpStatusCode: 429 } }))
    assert.isTrue(isRetryableAwsError({ name: "RequestTimeout", $metadata: { httpStatusCode: 400 } }))
    assert.isTrue(isRetryableAwsError({ name: "ThrottlingException", $metadata: { httpStatusCode: 400 } }))
    assert.isTrue(isRetryableAwsError(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" })))
    assert.isFalse(isRetryableAwsError({ name: "NoSuchKey", $metadata: { httpStatusCode: 404 } }))
    assert.isFalse(isRetryableAwsError({ name: "AccessDenied", $metadata: { httpStatusCode: 403 } }))
    assert.isFalse(isRetryableAwsError("boom"))
  })
})
