import { type Cause, Context, Data, Deferred, Effect, Exit, Layer } from "effect"
import type { EventLogError } from "../domain/errors.js"
import { EventLogService, type LogMessage } from "./EventLog.js"

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
  /** Records accepted but not yet acknowledged, at most; beyond it `publish` fails fast. */
  readonly maxPendingRecords: number
  /** Records sent to the log in one produce call, at most. */
  readonly maxRecordsPerSend: number
}

/**
 * Appends records to the event log on behalf of many concurrent callers, completing each call only once
 * the log acknowledged its records. Calls that arrive while a send is in flight are sent together in the
 * next one (group commit, by one sender fiber that lives while anything waits), so a burst of
 * single-record requests becomes a few large produce calls.
 * Nothing is buffered without bound: past `maxPendingRecords` a call fails with {@link PublisherOverloaded}.
 */
export interface RecordPublisher {
  readonly publish: (
    topic: string,
    messages: ReadonlyArray<LogMessage>
  ) => Effect.Effect<void, EventLogError | PublisherOverloaded>
  /** Records accepted and not yet acknowledged. */
  readonly pendingRecords: Effect.Effect<number>
}

interface PendingSend {
  readonly topic: string
  readonly messages: ReadonlyArray<LogMessage>
  readonly done: Deferred.Deferred<void, EventLogError>
}

const sendGroups = (sends: ReadonlyArray<PendingSend>): Map<string, Array<PendingSend>> => {
  const byTopic = new Map<string, Array<PendingSend>>()
  for (const send of sends) {
    const list = byTopic.get(send.topic) ?? []
    list.push(send)
    byTopic.set(send.topic, list)
  }
  return byTopic
}

/** A publisher over an event log. The caller that finds no send in flight starts the sender fiber. */
export const makeRecordPublisher = (
  log: Context.Tag.Service<EventLogService>,
  options: RecordPublisherOptions
): RecordPublisher => {
  let waiting: Array<PendingSend> = []
  let sending = false
  let pendingRecords = 0

  const takeNextSends = (): Array<PendingSend> => {
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

  const sendRound = Effect.suspend(() => {
    const groups = [...sendGroups(takeNextSends())]
    return Effect.forEach(
      groups,
      ([topic, group]) =>
        Effect.flatMap(
          Effect.exit(
            log.produce(
              topic,
              group.flatMap((send) => send.messages)
            )
          ),
          (exit) =>
            Effect.forEach(group, (send) => Deferred.done(send.done, Exit.asVoid(exit)), { discard: true })
        ),
      // One topic (the usual case) needs no forked fiber.
      { concurrency: groups.length > 1 ? "unbounded" : 1, discard: true }
    )
  })

  /** True when nothing is waiting; then no send is in flight any more (checked and cleared in one step). */
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
      return Effect.forEach(stranded, (send) => Deferred.failCause(send.done, cause), { discard: true })
    })

  /**
   * The sender: rounds until nothing waits. It runs in its own fiber, so no caller's response waits for
   * other callers' sends however steady the load, and a caller giving up cannot stop it.
   */
  const sendAllWaiting = Effect.gen(function* () {
    do yield* sendRound
    while (!(yield* finished))
  }).pipe(Effect.catchAllCause(failWaiting), Effect.forkDaemon, Effect.asVoid)

  return {
    publish: (topic, messages) =>
      Effect.suspend((): Effect.Effect<void, EventLogError | PublisherOverloaded> => {
        if (messages.length === 0) return Effect.void
        if (pendingRecords > 0 && pendingRecords + messages.length > options.maxPendingRecords) {
          return Effect.fail(
            new PublisherOverloaded({ pendingRecords, maxPendingRecords: options.maxPendingRecords })
          )
        }
        pendingRecords += messages.length
        return Effect.gen(function* () {
          const done = yield* Deferred.make<void, EventLogError>()
          waiting.push({ topic, messages, done })
          if (!sending) {
            sending = true
            yield* sendAllWaiting
          }
          return yield* Deferred.await(done)
        }).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              pendingRecords -= messages.length
            })
          )
        )
      }),
    pendingRecords: Effect.sync(() => pendingRecords)
  }
}

/** The record publisher of the ingestion API, over the {@link EventLogService}. */
export class RecordPublisherService extends Context.Tag("RecordPublisher")<
  RecordPublisherService,
  RecordPublisher
>() {
  static readonly layer = (options: RecordPublisherOptions) =>
    Layer.effect(
      RecordPublisherService,
      Effect.map(EventLogService, (log) => makeRecordPublisher(log, options))
    )
}
