import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Clock, Config, Data, Duration, Effect, Either, Option, Redacted, Schedule, Schema } from "effect"
import { utf8Bytes } from "../domain/bytes.js"
import { FraudSignal, TransactionEvent } from "../domain/events.js"
import { recordFingerprint, sortedFieldsOf } from "../domain/fingerprint.js"
import { decodeValue, type RecordProblem, type RejectedRecord } from "../domain/validation.js"
import { EventLogService, type LogMessage } from "../layers/EventLog.js"
import { type IdempotencyEntry, IdempotencyStoreService } from "../layers/IdempotencyStore.js"
import { KeyValueStore } from "../layers/KeyValueStore.js"
import { quarantineEntry } from "./quarantine.js"
import { deadLetterTopic, topics as defaultTopics, type TopicNames } from "./streamingIndex.js"

/** A partner page could not be fetched or read; `retryable` failures are retried with backoff. */
export class PartnerPullError extends Data.TaggedError("PartnerPullError")<{
  readonly partner: string
  readonly cursor: string
  readonly reason: string
  readonly retryable: boolean
}> {
  override get message(): string {
    return `partner ${this.partner} at cursor ${this.cursor || "(start)"}: ${this.reason}`
  }
}

/** Where and how to pull one partner feed. */
export interface PartnerPullOptions {
  /** The partner's name: namespaces its cursor and names the source of its records. */
  readonly partner: string
  /** The page endpoint: `GET url?limit=N[&cursor=C]` answers `{ data: [...], next_cursor, has_more }`. */
  readonly url: string
  readonly kind: "transactions" | "fraud_signals"
  readonly token?: string | undefined
  readonly pageSize: number
  /** A page request taking longer is abandoned and retried. */
  readonly requestTimeout: Duration.DurationInput
  /** Attempts per page before the run fails (at least 1). */
  readonly maxAttempts: number
  /** First retry delay; doubles per attempt, with jitter. */
  readonly retryBase: Duration.DurationInput
  /** Waiting between polls once caught up (`has_more` false). */
  readonly pollInterval: Duration.DurationInput
  /** Stop once caught up instead of polling on (a bounded run: tests, cron). */
  readonly stopWhenCaughtUp: boolean
  /** How long an id claimed for a page still being sent blocks another sender (see the ingestion API). */
  readonly pendingClaimTtlMillis: number
  readonly idempotencyTtlMillis: number
  readonly topics?: TopicNames
}

/** What a pull run did. `records = accepted + duplicates + quarantined`. */
export interface PartnerPullSummary {
  readonly pages: number
  readonly records: number
  readonly accepted: number
  readonly duplicates: number
  readonly quarantined: number
  readonly cursor: string
}

const Page = Schema.Struct({
  data: Schema.Array(Schema.Unknown),
  next_cursor: Schema.optional(Schema.NullOr(Schema.String)),
  has_more: Schema.optional(Schema.Boolean)
})

/** The stored position of a partner feed: `cursor` is where the next page starts ("" = the beginning). */
const StoredCursor = Schema.parseJson(
  Schema.Struct({ cursor: Schema.String, pages: Schema.Number, updated_at: Schema.String })
)

/** The key-value key of a partner feed's cursor. */
export const cursorKey = (partner: string, kind: string): string => `partner-cursor/${partner}/${kind}`

/**
 * Pulls a partner's feed page by page into Kafka, resuming from the cursor stored in the key-value store.
 * A page's valid records go to the topic and its bad ones (with their reasons) to `<topic>.dlq`; only
 * once Kafka acknowledged both is the next cursor stored, so a restart never skips a record. Records are
 * claimed in the idempotency store by event_id / signal_id (the same keys as the HTTP API), so a page
 * fetched again after a restart, or a record that also came in over HTTP, is not sent twice.
 * Network errors, timeouts, 5xx, 429 and unreadable pages are retried with exponential backoff;
 * other 4xx (bad token, wrong URL) fail at once.
 */
export const runPartnerPull = (options: PartnerPullOptions) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const store = yield* KeyValueStore.KeyValueStore
    const log = yield* EventLogService
    const idempotency = yield* IdempotencyStoreService
    const names = options.topics ?? defaultTopics
    const topic = options.kind === "transactions" ? names.transactions : names.fraudSignals
    const isTransactions = options.kind === "transactions"
    const decodeRecord = (item: unknown): Either.Either<Readonly<Record<string, unknown>>, RejectedRecord> =>
      isTransactions ? decodeValue(TransactionEvent, item) : decodeValue(FraudSignal, item)
    const fields = isTransactions ? sortedFieldsOf(TransactionEvent) : sortedFieldsOf(FraudSignal)
    const idField = isTransactions ? "event_id" : "signal_id"
    const key = cursorKey(options.partner, options.kind)

    const stored = yield* store.get(key)
    let cursor = ""
    let pagesBefore = 0
    if (Option.isSome(stored)) {
      const decoded = Schema.decodeUnknownEither(StoredCursor)(stored.value)
      if (Either.isLeft(decoded)) {
        return yield* new PartnerPullError({
          partner: options.partner,
          cursor: "",
          reason: `stored cursor ${key} is unreadable; fix or remove it`,
          retryable: false
        })
      }
      cursor = decoded.right.cursor
      pagesBefore = decoded.right.pages
    }

    const failure = (reason: string, retryable: boolean) =>
      new PartnerPullError({ partner: options.partner, cursor, reason, retryable })

    const fetchPage = Effect.gen(function* () {
      const request = HttpClientRequest.get(options.url).pipe(
        HttpClientRequest.setUrlParams({
          limit: String(options.pageSize),
          ...(cursor === "" ? {} : { cursor })
        }),
        HttpClientRequest.acceptJson,
        options.token === undefined ? (request) => request : HttpClientRequest.bearerToken(options.token)
      )
      const response = yield* client.execute(request).pipe(
        Effect.mapError((error) => failure(`request failed: ${error.message}`, true)),
        Effect.timeoutFail({
          duration: options.requestTimeout,
          onTimeout: () => failure(`no answer within ${Duration.format(options.requestTimeout)}`, true)
        })
      )
      if (response.status !== 200) {
        const retryable = response.status >= 500 || response.status === 429 || response.status === 408
        return yield* failure(`answered HTTP ${response.status}`, retryable)
      }
      const body = yield* response.json.pipe(
        Effect.mapError(() => failure("the page is not valid JSON", true)),
        Effect.timeoutFail({
          duration: options.requestTimeout,
          onTimeout: () =>
            failure(`page body not complete within ${Duration.format(options.requestTimeout)}`, true)
        })
      )
      return yield* Schema.decodeUnknown(Page)(body).pipe(
        Effect.mapError(() => failure("the page is not { data: [...], next_cursor, has_more }", true))
      )
    }).pipe(Effect.scoped)

    const retryPolicy = Schedule.exponential(options.retryBase).pipe(
      Schedule.jittered,
      Schedule.intersect(Schedule.recurs(Math.max(0, options.maxAttempts - 1)))
    )
    const withRetries = <A>(effect: Effect.Effect<A, PartnerPullError>) =>
      effect.pipe(
        Effect.tapError((error) =>
          error.retryable
            ? Effect.logWarning("partner page failed; retrying").pipe(
                Effect.annotateLogs({ partner: options.partner, reason: error.reason })
              )
            : Effect.void
        ),
        Effect.retry({ schedule: retryPolicy, while: (error) => error.retryable })
      )

    /** Sends one page: claims ids, appends records and dead letters, marks the ids done. */
    const sendPage = (items: ReadonlyArray<unknown>, pageCursor: string) =>
      Effect.gen(function* () {
        const records: Array<LogMessage> = []
        const deadLetters: Array<LogMessage> = []
        const claims: Array<IdempotencyEntry> = []
        const claimed: Array<{ readonly claim: IdempotencyEntry; readonly message: LogMessage }> = []
        const fingerprintOfId = new Map<string, string>()
        const source = (index: number) => `partner:${options.partner}:${pageCursor || "(start)"}[${index}]`
        const quarantine = (index: number, problems: ReadonlyArray<RecordProblem>, payload: string) =>
          deadLetters.push({
            key: "",
            value: utf8Bytes(JSON.stringify(quarantineEntry(topic, source(index), problems, payload)))
          })
        const candidates: Array<{ index: number; claim: IdempotencyEntry; message: LogMessage }> = []
        let duplicates = 0
        for (const [index, item] of items.entries()) {
          const decoded = decodeRecord(item)
          if (Either.isLeft(decoded)) {
            quarantine(index, decoded.left.problems, decoded.left.redactedPayload)
            continue
          }
          const record = decoded.right
          const id = typeof record[idField] === "string" ? record[idField] : undefined
          const fingerprint = recordFingerprint(record, fields)
          const earlier = fingerprintOfId.get(id ?? "")
          if (earlier === fingerprint) {
            duplicates++
            continue
          }
          if (earlier !== undefined || id === undefined) {
            quarantine(
              index,
              [{ field: idField, reason: "repeated in the page with different content; refused" }],
              JSON.stringify(item)
            )
            continue
          }
          fingerprintOfId.set(id, fingerprint)
          const claim = { key: `${topic}:${id}`, fingerprint }
          claims.push(claim)
          candidates.push({
            index,
            claim,
            message: { key: String(record["transaction_id"]), value: utf8Bytes(JSON.stringify(item)) }
          })
        }
        const outcomes = yield* idempotency
          .claim(claims, options.pendingClaimTtlMillis)
          .pipe(Effect.mapError((error) => failure(`idempotency store: ${error.message}`, true)))
        const inProgress = outcomes.filter((outcome) => outcome === "in_progress").length
        for (const [position, outcome] of outcomes.entries()) {
          const candidate = candidates[position]
          if (candidate === undefined) continue
          if (outcome === "claimed") {
            claimed.push(candidate)
            records.push(candidate.message)
          } else if (outcome === "done") duplicates++
          else if (outcome === "conflict") {
            quarantine(
              candidate.index,
              [{ field: idField, reason: "already received with different content; refused" }],
              new TextDecoder().decode(candidate.message.value)
            )
          }
        }
        const release = idempotency.release(claimed.map((entry) => entry.claim)).pipe(Effect.ignore)
        if (inProgress > 0) {
          yield* release
          return yield* failure(`${inProgress} records are still being sent by another sender`, true)
        }
        // Records first: only their failure releases the claims. Once Kafka has them the claims are marked done
        // (retried here, so they never outlive their pending TTL); the dead letters go last, and if they fail the
        // page is fetched again and its records are recognised as already sent.
        yield* log.produce(topic, records).pipe(
          Effect.mapError((error) => failure(`event log: ${error.message}`, true)),
          Effect.tapError(() => release)
        )
        yield* idempotency
          .complete(
            claimed.map((entry) => entry.claim),
            options.idempotencyTtlMillis
          )
          .pipe(
            Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.intersect(Schedule.recurs(5)))),
            Effect.mapError((error) => failure(`idempotency store: ${error.message}`, true))
          )
        yield* log
          .produce(deadLetterTopic(topic), deadLetters)
          .pipe(Effect.mapError((error) => failure(`event log (dead letters): ${error.message}`, true)))
        return { accepted: records.length, duplicates, quarantined: deadLetters.length }
      })

    let pages = 0
    let total = { records: 0, accepted: 0, duplicates: 0, quarantined: 0 }
    while (true) {
      const page = yield* withRetries(fetchPage)
      const outcome = yield* withRetries(sendPage(page.data, cursor))
      pages++
      total = {
        records: total.records + page.data.length,
        accepted: total.accepted + outcome.accepted,
        duplicates: total.duplicates + outcome.duplicates,
        quarantined: total.quarantined + outcome.quarantined
      }
      const next = page.next_cursor ?? cursor
      const updatedAt = new Date(yield* Clock.currentTimeMillis).toISOString()
      yield* store
        .set(key, JSON.stringify({ cursor: next, pages: pagesBefore + pages, updated_at: updatedAt }))
        .pipe(Effect.mapError((error) => failure(`storing the cursor: ${error.message}`, false)))
      yield* Effect.logInfo("partner page done").pipe(
        Effect.annotateLogs({ partner: options.partner, cursor: next, records: page.data.length, ...outcome })
      )
      const caughtUp = page.has_more !== true || next === cursor
      cursor = next
      if (caughtUp) {
        if (options.stopWhenCaughtUp) break
        yield* Effect.sleep(options.pollInterval)
      }
    }
    return { pages, ...total, cursor } satisfies PartnerPullSummary
  }).pipe(Effect.withSpan("runPartnerPull", { attributes: { partner: options.partner } }))

/**
 * `RECON_PARTNER_NAME`, `RECON_PARTNER_URL`, `RECON_PARTNER_KIND` (transactions | fraud_signals),
 * `RECON_PARTNER_TOKEN`, `RECON_PARTNER_PAGE_SIZE` (500), `RECON_PARTNER_TIMEOUT_MS` (10000),
 * `RECON_PARTNER_MAX_ATTEMPTS` (8), `RECON_PARTNER_POLL_MS` (5000), `RECON_PARTNER_ONCE` (false: poll on).
 */
export const partnerPullOptionsConfig: Config.Config<PartnerPullOptions> = Config.all({
  partner: Config.string("RECON_PARTNER_NAME").pipe(
    Config.validate({
      message: "must be 1-64 of [A-Za-z0-9_.-]",
      validation: (name) => /^[A-Za-z0-9_.-]{1,64}$/.test(name)
    })
  ),
  url: Config.url("RECON_PARTNER_URL").pipe(Config.map((url) => url.toString())),
  kind: Config.literal("transactions", "fraud_signals")("RECON_PARTNER_KIND"),
  token: Config.redacted("RECON_PARTNER_TOKEN").pipe(
    Config.option,
    Config.map(Option.map(Redacted.value)),
    Config.map(Option.getOrUndefined)
  ),
  pageSize: Config.integer("RECON_PARTNER_PAGE_SIZE").pipe(
    Config.withDefault(500),
    Config.validate({ message: "must be from 1 to 10000", validation: (n) => n >= 1 && n <= 10_000 })
  ),
  requestTimeout: Config.integer("RECON_PARTNER_TIMEOUT_MS").pipe(
    Config.withDefault(10_000),
    Config.map(Duration.millis)
  ),
  maxAttempts: Config.integer("RECON_PARTNER_MAX_ATTEMPTS").pipe(
    Config.withDefault(8),
    Config.validate({ message: "must be at least 1", validation: (n) => n >= 1 })
  ),
  retryBase: Config.succeed(Duration.millis(200)),
  pollInterval: Config.integer("RECON_PARTNER_POLL_MS").pipe(
    Config.withDefault(5_000),
    Config.map(Duration.millis)
  ),
  stopWhenCaughtUp: Config.boolean("RECON_PARTNER_ONCE").pipe(Config.withDefault(false)),
  pendingClaimTtlMillis: Config.succeed(30_000),
  idempotencyTtlMillis: Config.succeed(7 * 24 * 3600 * 1000)
})
