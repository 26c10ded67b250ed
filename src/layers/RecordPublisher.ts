import { type Cause, Context, Data, Effect, Either, Exit, Layer } from "effect"
import type { EventLogError } from "../domain/errors.js"
import { EventLogService, type LogMessage } from "./EventLog.js"
import {
  type ClaimOutcome,
  type IdempotencyEntry,
  type IdempotencyStoreError,
  IdempotencyStoreService
} from "./IdempotencyStore.js"

/** More records are waiting for the log's acknowledgement than the publisher accepts: try again later. */
export class PublisherOverloaded extends Data.TaggedError("PublisherOverloaded")<{
  readonly pendingRecords: number
  readonly maxPendingRecords: number
}> {
  override get message(): string {
    return `${this.pendingRecords} records are waiting for the event log (limit ${this.maxPendingRecords})`
  }
}

/** Limits of the publisher. */
export interface RecordPublisherOptions {
  /** Records accepted but not yet acknowledged, at most; beyond it a call fails fast. */
  readonly maxPendingRecords: number
  /** Records sent to the log in one produce call, at most. */
  readonly maxRecordsPerSend: number
}

/** A record to send once: its idempotency claim (key and content fingerprint) and the message itself. */
export interface ClaimedRecord {
  readonly claim: IdempotencyEntry
  readonly message: LogMessage
}

/** How long claims live: pending while the log has not acknowledged, and done once it has. */
export interface ClaimLifetimes {
  readonly pendingTtlMillis: number
  readonly doneTtlMillis: number
}

/**
 * Appends records to the event log on behalf of many concurrent callers, completing each call only once
 * the log acknowledged its records. Calls that arrive while a round is in flight go together in the next
 * one (group commit, by one sender fiber that lives while anything waits): one idempotency claim for all
 * their keys, one produce call per topic, one completion. A burst of single-record requests costs a few
 * store and log round trips instead of three per request.
 * Nothing is buffered without bound: past `maxPendingRecords` a call fails with {@link PublisherOverloaded}.
 */
export interface RecordPublisher {
  /** Sends the messages as they are (no idempotency), e.g. dead letters. */
  readonly publish: (
    topic: string,
    messages: ReadonlyArray<LogMessage>
  ) => Effect.Effect<void, EventLogError | PublisherOverloaded>
  /**
   * Claims every record's key and, only if none is `conflict` or `in_progress`, sends the `claimed` ones and
   * marks them done. Outcomes in the order of `records`; when any is blocked nothing was sent and this
   * call's claims were released. A failed send releases them too, so a retry can claim them again.
   */
  readonly publishOnce: (
    topic: string,
    records: ReadonlyArray<ClaimedRecord>,
    lifetimes: ClaimLifetimes
  ) => Effect.Effect<ReadonlyArray<ClaimOutcome>, EventLogError | PublisherOverloaded | IdempotencyStoreError>
  /** Records accepted and not yet acknowledged. */
  readonly pendingRecords: Effect.Effect<number>
}

type PublishFailure = EventLogError | IdempotencyStoreError

type CallExit = Exit.Exit<ReadonlyArray<ClaimOutcome>, PublishFailure>

/** What a `publishOnce` call claims: one entry per message, and how long the claims live. */
interface Claiming {
  readonly claims: ReadonlyArray<IdempotencyEntry>
  readonly lifetimes: ClaimLifetimes
}

interface PendingCall {
  readonly topic: string
  readonly messages: ReadonlyArray<LogMessage>
  /** Absent for a plain publish. */
  readonly claiming: Claiming | undefined
  /** The result, when the round settled the call before its caller started waiting. */
  exit: CallExit | undefined
  /** The waiting caller. */
  resume: ((exit: CallExit) => void) | undefined
}

const isBlocked = (outcome: ClaimOutcome) => outcome === "conflict" || outcome === "in_progress"

/** Items grouped by a key, groups in first-seen order. */
const groupBy = <A, K>(items: ReadonlyArray<A>, keyOf: (item: A) => K): Map<K, Array<A>> => {
  const groups = new Map<K, Array<A>>()
  for (const item of items) {
    const key = keyOf(item)
    const group = groups.get(key)
    if (group === undefined) groups.set(key, [item])
    else group.push(item)
  }
  return groups
}

/** A publisher over an event log and an idempotency store. The caller that finds no round in flight starts the sender. */
export const makeRecordPublisher = (
  log: Context.Tag.Service<EventLogService>,
  idempotency: Context.Tag.Service<IdempotencyStoreService>,
  options: RecordPublisherOptions
): RecordPublisher => {
  let waiting: Array<PendingCall> = []
  let sending = false
  let pendingRecords = 0

  /** Hands a call its result (now, or when its caller starts waiting); its records stop counting as pending. */
  const settle = (call: PendingCall, exit: CallExit) => {
    if (call.exit !== undefined) return
    call.exit = exit
    pendingRecords -= call.messages.length
    call.resume?.(exit)
  }

  const takeNextCalls = (): Array<PendingCall> => {
    let records = 0
    let count = 0
    while (count < waiting.length) {
      const size = waiting[count]?.messages.length ?? 0
      if (count > 0 && records + size > options.maxRecordsPerSend) break
      records += size
      count++
    }
    const taken = waiting.slice(0, count)
    waiting = waiting.slice(count)
    return taken
  }

  /** Each call's claim outcomes, or the store's failure for the calls of a failed claim. */
  const claimAll = (calls: ReadonlyArray<PendingCall>) =>
    Effect.gen(function* () {
      const outcomes = new Map<
        PendingCall,
        Either.Either<ReadonlyArray<ClaimOutcome>, IdempotencyStoreError>
      >()
      const claiming = calls.filter((call) => call.claiming !== undefined)
      for (const [pendingTtl, group] of groupBy(
        claiming,
        (call) => call.claiming?.lifetimes.pendingTtlMillis ?? 0
      )) {
        const claimed = yield* Effect.either(
          idempotency.claim(
            group.flatMap((call) => call.claiming?.claims ?? []),
            pendingTtl
          )
        )
        let position = 0
        for (const call of group) {
          const count = call.messages.length
          outcomes.set(
            call,
            Either.map(claimed, (all) => all.slice(position, position + count))
          )
          position += count
        }
      }
      return outcomes
    })

  const claimedEntries = (call: PendingCall, outcomes: ReadonlyArray<ClaimOutcome>) =>
    call.claiming?.claims.filter((_, index) => outcomes[index] === "claimed") ?? []

  /** One round over `calls`: claim, send what may be sent, release or complete, then settle every call. */
  const runRound = (calls: ReadonlyArray<PendingCall>) =>
    Effect.gen(function* () {
      const claims = yield* claimAll(calls)
      const results = new Map<PendingCall, CallExit>()
      const blockedClaims: Array<IdempotencyEntry> = []
      const toProduce: Array<{ call: PendingCall; outcomes: ReadonlyArray<ClaimOutcome> }> = []
      for (const call of calls) {
        const claimed = claims.get(call)
        if (claimed === undefined) {
          toProduce.push({ call, outcomes: call.messages.map(() => "claimed") })
        } else if (Either.isLeft(claimed)) {
          results.set(call, Exit.fail(claimed.left))
        } else if (claimed.right.some(isBlocked)) {
          blockedClaims.push(...claimedEntries(call, claimed.right))
          results.set(call, Exit.succeed(claimed.right))
        } else if (!claimed.right.includes("claimed")) {
          results.set(call, Exit.succeed(claimed.right))
        } else {
          toProduce.push({ call, outcomes: claimed.right })
        }
      }
      // Freed before the produce, so other requests for those ids are not kept waiting on it.
      if (blockedClaims.length > 0) yield* Effect.ignore(idempotency.release(blockedClaims))
      const byTopic = [...groupBy(toProduce, (entry) => entry.call.topic)]
      const failedClaims: Array<IdempotencyEntry> = []
      const toComplete: Array<{ call: PendingCall; entries: ReadonlyArray<IdempotencyEntry> }> = []
      yield* Effect.forEach(
        byTopic,
        ([topic, group]) =>
          Effect.map(
            Effect.exit(
              log.produce(
                topic,
                group.flatMap(({ call, outcomes }) =>
                  call.messages.filter((_, index) => outcomes[index] === "claimed")
                )
              )
            ),
            (exit) => {
              for (const { call, outcomes } of group) {
                const entries = claimedEntries(call, outcomes)
                if (Exit.isSuccess(exit)) {
                  toComplete.push({ call, entries })
                  results.set(call, Exit.succeed(outcomes))
                } else {
                  failedClaims.push(...entries)
                  results.set(call, Exit.as(exit, outcomes))
                }
              }
            }
          ),
        // One topic (the usual case) needs no forked fiber.
        { concurrency: byTopic.length > 1 ? "unbounded" : 1, discard: true }
      )
      if (failedClaims.length > 0) yield* Effect.ignore(idempotency.release(failedClaims))
      for (const [doneTtl, group] of groupBy(
        toComplete,
        ({ call }) => call.claiming?.lifetimes.doneTtlMillis ?? 0
      )) {
        const entries = group.flatMap(({ entries }) => entries)
        if (entries.length === 0) continue
        // The records are in the log. A completion that fails leaves their claims pending: a retry within the
        // pending TTL is refused as in_progress; after it the id can be claimed and sent again.
        yield* idempotency
          .complete(entries, doneTtl)
          .pipe(
            Effect.catchAll((error) =>
              Effect.logWarning("sent records not marked done for idempotency").pipe(
                Effect.annotateLogs({ records: entries.length, error: error.message })
              )
            )
          )
      }
      for (const call of calls) {
        settle(call, results.get(call) ?? Exit.die(new Error("a publish call got no result in its round")))
      }
    }).pipe(
      // A defect mid-round (a store or log that throws) must not strand the round's callers: they fail with
      // it. Their claims are left to expire, since the produce may have gone through.
      Effect.onExit((exit) =>
        Effect.sync(() => {
          if (Exit.isFailure(exit)) for (const call of calls) settle(call, Exit.failCause(exit.cause))
        })
      )
    )

  const sendRound = Effect.suspend(() => runRound(takeNextCalls()))

  /** True when nothing is waiting; then no round is in flight any more (checked and cleared in one step). */
  const finished = Effect.sync(() => {
    if (waiting.length > 0) return false
    sending = false
    return true
  })

  /** Whatever is still waiting when the sender dies unexpectedly fails with its cause instead of hanging. */
  const failWaiting = (cause: Cause.Cause<never>) =>
    Effect.suspend(() => {
      const stranded = waiting
      waiting = []
      sending = false
      return Effect.sync(() => {
        for (const call of stranded) settle(call, Exit.failCause(cause))
      })
    })

  /**
   * The sender: rounds until nothing waits. It runs in its own fiber, so no caller's response waits for
   * other callers' rounds however steady the load, and a caller giving up cannot stop it.
   */
  const sendAllWaiting = Effect.gen(function* () {
    do yield* sendRound
    while (!(yield* finished))
  }).pipe(Effect.catchAllCause(failWaiting), Effect.forkDaemon, Effect.asVoid)

  const submit = (
    topic: string,
    messages: ReadonlyArray<LogMessage>,
    claiming: Claiming | undefined
  ): Effect.Effect<ReadonlyArray<ClaimOutcome>, PublishFailure | PublisherOverloaded> =>
    Effect.suspend((): Effect.Effect<ReadonlyArray<ClaimOutcome>, PublishFailure | PublisherOverloaded> => {
      if (messages.length === 0) return Effect.succeed([])
      if (pendingRecords > 0 && pendingRecords + messages.length > options.maxPendingRecords) {
        return Effect.fail(
          new PublisherOverloaded({ pendingRecords, maxPendingRecords: options.maxPendingRecords })
        )
      }
      pendingRecords += messages.length
      const call: PendingCall = { topic, messages, claiming, exit: undefined, resume: undefined }
      waiting.push(call)
      const result = Effect.async<ReadonlyArray<ClaimOutcome>, PublishFailure>((resume) => {
        if (call.exit === undefined) call.resume = resume
        else resume(call.exit)
      })
      if (sending) return result
      sending = true
      return Effect.zipRight(sendAllWaiting, result)
    })

  return {
    publish: (topic, messages) =>
      submit(topic, messages, undefined).pipe(
        Effect.asVoid,
        Effect.catchTag("IdempotencyStoreError", Effect.die)
      ),
    publishOnce: (topic, records, lifetimes) =>
      submit(
        topic,
        records.map((record) => record.message),
        { claims: records.map((record) => record.claim), lifetimes }
      ),
    pendingRecords: Effect.sync(() => pendingRecords)
  }
}

/** The record publisher of the ingestion API, over the {@link EventLogService} and {@link IdempotencyStoreService}. */
export class RecordPublisherService extends Context.Tag("RecordPublisher")<
  RecordPublisherService,
  RecordPublisher
>() {
  static readonly layer = (options: RecordPublisherOptions) =>
    Layer.effect(
      RecordPublisherService,
      Effect.map(Effect.all([EventLogService, IdempotencyStoreService]), ([log, idempotency]) =>
        makeRecordPublisher(log, idempotency, options)
      )
    )
}
