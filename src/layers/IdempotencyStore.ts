import { createHash } from "node:crypto"
import { Clock, Config, Context, Data, Effect, Either, Layer, Redacted } from "effect"
import type { Redis } from "ioredis"
import { acquireRedisClient } from "./RedisKeyValueStore.js"

/** The idempotency store could not be reached or refused a call. */
export class IdempotencyStoreError extends Data.TaggedError("IdempotencyStoreError")<{
  readonly operation: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `idempotency store ${this.operation} failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** A key with the fingerprint of the content it stands for (e.g. an event_id and its record's hash). */
export interface IdempotencyEntry {
  readonly key: string
  readonly fingerprint: string
}

/**
 * What a claim found: `claimed` (new, now pending for this caller), `done` (completed before with the same
 * content), `in_progress` (pending for another caller with the same content), `conflict` (the key is
 * pending or done with different content).
 */
export type ClaimOutcome = "claimed" | "done" | "in_progress" | "conflict"

/**
 * Remembers which keys were already handled, for idempotent ingestion and replay detection. A claim is
 * pending until completed or released, and expires after its TTL so a caller that died never blocks a
 * retry for longer than that.
 */
export interface IdempotencyStore {
  /** Claims every entry atomically per key; outcomes in the order of `entries`. */
  readonly claim: (
    entries: ReadonlyArray<IdempotencyEntry>,
    pendingTtlMillis: number
  ) => Effect.Effect<ReadonlyArray<ClaimOutcome>, IdempotencyStoreError>
  /** Marks this caller's pending claims done, remembered for `ttlMillis`. */
  readonly complete: (
    entries: ReadonlyArray<IdempotencyEntry>,
    ttlMillis: number
  ) => Effect.Effect<void, IdempotencyStoreError>
  /** Drops this caller's pending claims (the work failed), so a retry can claim them again. */
  readonly release: (entries: ReadonlyArray<IdempotencyEntry>) => Effect.Effect<void, IdempotencyStoreError>
  readonly describe: string
}

interface MemoryClaim {
  readonly done: boolean
  readonly fingerprint: string
  readonly expiresAt: number
}

/** Process memory with expiry on the Effect clock (TestClock in tests); expired keys are swept as it goes. */
export const makeMemoryIdempotencyStore = (): IdempotencyStore => {
  const claims = new Map<string, MemoryClaim>()
  let sinceSweep = 0
  const sweep = (now: number) => {
    if (++sinceSweep < 4096) return
    sinceSweep = 0
    for (const [key, claim] of claims) if (claim.expiresAt <= now) claims.delete(key)
  }
  const live = (key: string, now: number): MemoryClaim | undefined => {
    const claim = claims.get(key)
    return claim !== undefined && claim.expiresAt > now ? claim : undefined
  }
  return {
    claim: (entries, pendingTtlMillis) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        sweep(now)
        return entries.map((entry): ClaimOutcome => {
          const current = live(entry.key, now)
          if (current === undefined) {
            claims.set(entry.key, {
              done: false,
              fingerprint: entry.fingerprint,
              expiresAt: now + pendingTtlMillis
            })
            return "claimed"
          }
          if (current.fingerprint !== entry.fingerprint) return "conflict"
          return current.done ? "done" : "in_progress"
        })
      }),
    complete: (entries, ttlMillis) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        for (const entry of entries) {
          const current = live(entry.key, now)
          if (current === undefined || (!current.done && current.fingerprint === entry.fingerprint)) {
            claims.set(entry.key, { done: true, fingerprint: entry.fingerprint, expiresAt: now + ttlMillis })
          }
        }
      }),
    release: (entries) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        for (const entry of entries) {
          const current = live(entry.key, now)
          if (current !== undefined && !current.done && current.fingerprint === entry.fingerprint) {
            claims.delete(entry.key)
          }
        }
      }),
    describe: "memory"
  }
}

/** A Lua script and its SHA-1, the name EVALSHA calls it by. */
interface LuaScript {
  readonly text: string
  readonly sha: string
}

const luaScript = (text: string): LuaScript => ({ text, sha: createHash("sha1").update(text).digest("hex") })

const claimScript = luaScript(`
local outcomes = {}
for i, key in ipairs(KEYS) do
  local fingerprint = ARGV[i + 1]
  if redis.call('SET', key, 'p:' .. fingerprint, 'NX', 'PX', ARGV[1]) then
    outcomes[i] = 'claimed'
  else
    local current = redis.call('GET', key)
    if not current then
      redis.call('SET', key, 'p:' .. fingerprint, 'PX', ARGV[1])
      outcomes[i] = 'claimed'
    elseif string.sub(current, 3) ~= fingerprint then
      outcomes[i] = 'conflict'
    elseif string.sub(current, 1, 2) == 'd:' then
      outcomes[i] = 'done'
    else
      outcomes[i] = 'in_progress'
    end
  end
end
return outcomes`)

const completeScript = luaScript(`
for i, key in ipairs(KEYS) do
  local fingerprint = ARGV[i + 1]
  local current = redis.call('GET', key)
  if (not current) or current == 'p:' .. fingerprint then
    redis.call('SET', key, 'd:' .. fingerprint, 'PX', ARGV[1])
  end
end
return 1`)

const releaseScript = luaScript(`
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == 'p:' .. ARGV[i] then redis.call('DEL', key) end
end
return 1`)

/** Keys per script call: one round trip carries many keys without one huge script invocation. */
const keysPerCall = 500

const chunksOf = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> => {
  const chunks: Array<ReadonlyArray<A>> = []
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size))
  return chunks
}

/** Runs a script by its SHA-1 (EVALSHA), sending its text only when Redis does not know it yet. */
const evalCached = async (
  client: Redis,
  script: LuaScript,
  [keyCount, ...keysAndArgs]: [number, ...Array<string>]
): Promise<unknown> => {
  try {
    return await client.evalsha(script.sha, keyCount, ...keysAndArgs)
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error
    return await client.eval(script.text, keyCount, ...keysAndArgs)
  }
}

const claimFailure = (cause: unknown) => new IdempotencyStoreError({ operation: "claim", cause })

/** The outcomes a claim script answered for `count` keys, checked. */
const claimOutcomes = (reply: unknown, count: number): ReadonlyArray<ClaimOutcome> => {
  if (!Array.isArray(reply) || reply.length !== count)
    throw new Error(`unexpected claim reply ${String(reply)}`)
  return reply.map((outcome): ClaimOutcome => {
    if (outcome === "claimed" || outcome === "done" || outcome === "in_progress" || outcome === "conflict") {
      return outcome
    }
    throw new Error(`unexpected claim outcome ${String(outcome)}`)
  })
}

/**
 * Redis: each key is one string `p:<fingerprint>` (pending, PX the pending TTL) or `d:<fingerprint>`
 * (done); claims, completions and releases are Lua scripts, so two API instances racing for one key see
 * exactly one `claimed`. Keys of one call must hash to one slot on Redis Cluster (single node here).
 */
export const makeRedisIdempotencyStore = (client: Redis, prefix: string): IdempotencyStore => {
  const runChunk = (
    operation: string,
    script: LuaScript,
    chunk: ReadonlyArray<IdempotencyEntry>,
    head: Array<string>
  ) =>
    Effect.tryPromise({
      try: () =>
        evalCached(client, script, [
          chunk.length,
          ...chunk.map((entry) => prefix + entry.key),
          ...head,
          ...chunk.map((entry) => entry.fingerprint)
        ]),
      catch: (cause) => new IdempotencyStoreError({ operation, cause })
    })
  /** Every chunk at once: the client pipelines them into one write instead of a round trip each. */
  const run = (
    operation: string,
    script: LuaScript,
    entries: ReadonlyArray<IdempotencyEntry>,
    head: Array<string>
  ) =>
    Effect.forEach(chunksOf(entries, keysPerCall), (chunk) => runChunk(operation, script, chunk, head), {
      concurrency: "unbounded"
    })
  return {
    claim: (entries, pendingTtlMillis) =>
      Effect.gen(function* () {
        const ttl = [String(Math.max(1, Math.round(pendingTtlMillis)))]
        const chunks = chunksOf(entries, keysPerCall)
        const replies = yield* Effect.forEach(
          chunks,
          (chunk) =>
            runChunk("claim", claimScript, chunk, ttl).pipe(
              Effect.flatMap((reply) =>
                Effect.try({ try: () => claimOutcomes(reply, chunk.length), catch: claimFailure })
              ),
              Effect.either
            ),
          { concurrency: "unbounded" }
        )
        const failure = replies.find(Either.isLeft)
        if (failure !== undefined) {
          // A chunk that failed must not leave the other chunks' claims pending until their TTL.
          const claimed = chunks.flatMap((chunk, index) => {
            const reply = replies[index]
            return reply !== undefined && Either.isRight(reply)
              ? chunk.filter((_, position) => reply.right[position] === "claimed")
              : []
          })
          yield* Effect.ignore(run("release", releaseScript, claimed, []))
          return yield* Effect.fail(failure.left)
        }
        return replies.flatMap((reply) => (Either.isRight(reply) ? reply.right : []))
      }),
    complete: (entries, ttlMillis) =>
      Effect.asVoid(run("complete", completeScript, entries, [String(Math.max(1, Math.round(ttlMillis)))])),
    release: (entries) => Effect.asVoid(run("release", releaseScript, entries, [])),
    describe: `redis (${prefix}*)`
  }
}

/** The idempotency store of the ingestion API. */
export class IdempotencyStoreService extends Context.Tag("IdempotencyStore")<
  IdempotencyStoreService,
  IdempotencyStore
>() {
  /** In process memory: the embedded default and tests; forgets everything on restart. */
  static readonly layerMemory = Layer.sync(IdempotencyStoreService, makeMemoryIdempotencyStore)

  /** Redis, its client opened and closed with the layer. Keys are `prefix + key` (default `recon:idem:`). */
  static readonly layerRedis = (options: {
    readonly url: string | Redacted.Redacted
    readonly prefix?: string
  }) =>
    Layer.scoped(
      IdempotencyStoreService,
      Effect.map(acquireRedisClient(options.url), (client) =>
        makeRedisIdempotencyStore(client, options.prefix ?? "recon:idem:")
      )
    )

  /** Redis when `RECON_REDIS_URL` is set (prefix `RECON_REDIS_PREFIX` + `idem:`), else memory. */
  static readonly layerConfig = Layer.unwrapEffect(
    Effect.gen(function* () {
      const url = yield* Config.redacted("RECON_REDIS_URL").pipe(Config.withDefault(Redacted.make("")))
      const prefix = yield* Config.string("RECON_REDIS_PREFIX").pipe(Config.withDefault("recon:"))
      if (Redacted.value(url) === "") {
        yield* Effect.logInfo("idempotency store: memory (RECON_REDIS_URL unset; forgotten on restart)")
        return IdempotencyStoreService.layerMemory
      }
      yield* Effect.logInfo("idempotency store: redis")
      return IdempotencyStoreService.layerRedis({ url, prefix: `${prefix}idem:` })
    })
  )
}
