import { KeyValueStore } from "@effect/platform"
import { SystemError } from "@effect/platform/Error"
import { Config, Effect, Layer, Option, Redacted } from "effect"
import { Redis } from "ioredis"
import { kvTtlSecondsConfig } from "./KeyValueStore.js"

/** Where the Redis key-value store lives. */
export interface RedisKeyValueStoreOptions {
  /** e.g. `redis://127.0.0.1:16379`; redacted because it may carry a password. */
  readonly url: string | Redacted.Redacted
  /** Every key is stored as `prefix + key`; `clear` and `size` see only this namespace. Default `recon:`. */
  readonly prefix?: string
  /** Keys asked for per SCAN round trip. Default 500. */
  readonly scanCount?: number
  /** Every key written expires this many seconds later (SET … EX); none when absent. */
  readonly ttlSeconds?: number
}

const describeCause = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

const redisFailure = (method: string, key: string | undefined) => (cause: unknown) =>
  new SystemError({
    reason: "Unknown",
    module: "KeyValueStore",
    method,
    ...(key === undefined ? {} : { pathOrDescriptor: key }),
    description: `redis ${method} failed: ${describeCause(cause)}`,
    cause
  })

/** Escapes the glob metacharacters of a Redis MATCH pattern. */
const escapeGlob = (text: string) => text.replace(/[*?[\]\\]/g, (character) => `\\${character}`)

const toBuffer = (value: Uint8Array) => Buffer.from(value.buffer, value.byteOffset, value.byteLength)

/**
 * A {@link KeyValueStore.KeyValueStore} over an open ioredis client. Keys live under `prefix`; `clear`
 * and `size` walk that namespace with SCAN (never KEYS or FLUSHDB), so other data in the same database is
 * left alone.
 */
export const makeRedisKeyValueStore = (
  client: Redis,
  options: { readonly prefix?: string; readonly scanCount?: number; readonly ttlSeconds?: number } = {}
): KeyValueStore.KeyValueStore => {
  const prefix = options.prefix ?? "recon:"
  const scanCount = options.scanCount ?? 500
  const pattern = `${escapeGlob(prefix)}*`
  const call = <A>(method: string, key: string | undefined, run: () => Promise<A>) =>
    Effect.tryPromise({ try: run, catch: redisFailure(method, key) })

  /** Calls `onKeys` with every batch of namespaced keys SCAN returns; a key may repeat across batches. */
  const scanNamespace = async (onKeys: (keys: ReadonlyArray<string>) => Promise<void>) => {
    let cursor = "0"
    do {
      const [next, keys] = await client.scan(cursor, "MATCH", pattern, "COUNT", scanCount)
      if (keys.length > 0) await onKeys(keys)
      cursor = next
    } while (cursor !== "0")
  }

  return KeyValueStore.make({
    get: (key) =>
      call("get", key, () => client.get(prefix + key)).pipe(
        Effect.map((value) => Option.fromNullable(value))
      ),
    getUint8Array: (key) =>
      call("getUint8Array", key, () => client.getBuffer(prefix + key)).pipe(
        Effect.map((value) => (value === null ? Option.none() : Option.some(new Uint8Array(value))))
      ),
    set: (key, value) =>
      call("set", key, () => {
        const stored = typeof value === "string" ? value : toBuffer(value)
        return options.ttlSeconds === undefined
          ? client.set(prefix + key, stored)
          : client.set(prefix + key, stored, "EX", options.ttlSeconds)
      }).pipe(Effect.asVoid),
    remove: (key) => call("remove", key, () => client.del(prefix + key)).pipe(Effect.asVoid),
    has: (key) => call("has", key, () => client.exists(prefix + key)).pipe(Effect.map((count) => count > 0)),
    clear: call("clear", undefined, () =>
      scanNamespace(async (keys) => {
        await client.unlink(...keys)
      })
    ),
    size: call("size", undefined, async () => {
      const seen = new Set<string>()
      await scanNamespace(async (keys) => {
        for (const key of keys) seen.add(key)
      })
      return seen.size
    })
  })
}

/** An ioredis client connected on acquire and closed with QUIT on release. */
export const acquireRedisClient = (url: string | Redacted.Redacted) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const client = new Redis(Redacted.isRedacted(url) ? Redacted.value(url) : url, {
          lazyConnect: true,
          maxRetriesPerRequest: 5,
          enableOfflineQueue: true,
          // Commands issued in the same tick (concurrent requests) go out in one write.
          enableAutoPipelining: true
        })
        // Failures reach the caller through the rejected command; without a listener ioredis also
        // prints every connection error to stderr.
        client.on("error", () => undefined)
        try {
          await client.connect()
        } catch (error) {
          client.disconnect()
          throw error
        }
        return client
      },
      catch: redisFailure("connect", undefined)
    }),
    (client) =>
      Effect.promise(() =>
        client.quit().then(
          () => undefined,
          () => client.disconnect()
        )
      )
  )

/** The Redis key-value store, its client opened and closed with the layer. */
export const layer = (options: RedisKeyValueStoreOptions) =>
  Layer.scoped(
    KeyValueStore.KeyValueStore,
    Effect.map(acquireRedisClient(options.url), (client) =>
      makeRedisKeyValueStore(client, {
        ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
        ...(options.scanCount === undefined ? {} : { scanCount: options.scanCount }),
        ...(options.ttlSeconds === undefined ? {} : { ttlSeconds: options.ttlSeconds })
      })
    )
  )

/** `RECON_REDIS_URL` (required) and `RECON_REDIS_PREFIX` (default `recon:`); keys do not expire. */
export const layerConfig = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      url: Config.redacted("RECON_REDIS_URL"),
      prefix: Config.string("RECON_REDIS_PREFIX").pipe(Config.withDefault("recon:"))
    }),
    layer
  )
)

/** {@link layerConfig} whose keys expire after `RECON_KV_TTL_SECONDS` when set (the aggregation's figures). */
export const layerConfigExpiring = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      url: Config.redacted("RECON_REDIS_URL"),
      prefix: Config.string("RECON_REDIS_PREFIX").pipe(Config.withDefault("recon:")),
      ttlSeconds: kvTtlSecondsConfig
    }),
    ({ ttlSeconds, ...options }) =>
      layer(Option.isSome(ttlSeconds) ? { ...options, ttlSeconds: ttlSeconds.value } : options)
  )
)
