import { Clock, Effect, Either, Metric, MetricKey, MetricLabel, Schema } from "effect"
import { verifyApiKey, verifySignature } from "../domain/apiAuth.js"
import { utf8Bytes, utf8Problem, utf8Text } from "../domain/bytes.js"
import { redactCardNumbersInText } from "../domain/card.js"
import { FraudSignal, TransactionEvent } from "../domain/events.js"
import { recordFingerprint, sortedFieldsOf } from "../domain/fingerprint.js"
import { decodeValue, type RecordProblem, type RejectedRecord } from "../domain/validation.js"
import type { LogMessage } from "../layers/EventLog.js"
import type { IdempotencyStore } from "../layers/IdempotencyStore.js"
import type { ClaimedRecord, RecordPublisher } from "../layers/RecordPublisher.js"
import type { IngestionApiSettings } from "./ingestionApi.js"
import { quarantineEntry } from "./quarantine.js"
import { deadLetterTopic, type TopicNames } from "./streamingIndex.js"

const Problem = Schema.Struct({ field: Schema.String, reason: Schema.String })

/** One record's outcome, by its position in the request. */
export const RecordResult = Schema.Struct({
  index: Schema.Int,
  id: Schema.optional(Schema.String),
  status: Schema.Literal("accepted", "duplicate", "rejected", "valid", "conflict", "in_progress"),
  problems: Schema.optional(Schema.Array(Problem))
})
export type RecordResult = typeof RecordResult.Type

/** 202: every record is in Kafka (acknowledged now, or before with the same content). */
export const IngestAccepted = Schema.Struct({
  accepted: Schema.Int,
  duplicates: Schema.Int,
  results: Schema.Array(RecordResult)
})

/** 401: missing, unknown, expired or replayed credentials. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  message: Schema.String
}) {}

/** 413: the body or the record count is over the limit. */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  message: Schema.String
}) {}

/** 415: the body is not declared as JSON. */
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()("UnsupportedMediaType", {
  message: Schema.String
}) {}

/** 422: invalid records; nothing of the request was accepted. `problems` name the field path and reason. */
export class ValidationFailed extends Schema.TaggedError<ValidationFailed>()("ValidationFailed", {
  message: Schema.String,
  problems: Schema.Array(Problem),
  results: Schema.Array(RecordResult)
}) {}

/** 409: an id already taken by different content, or still being written by another request. */
export class IdempotencyConflict extends Schema.TaggedError<IdempotencyConflict>()("IdempotencyConflict", {
  message: Schema.String,
  results: Schema.Array(RecordResult)
}) {}

/** 429 (with Retry-After): more records wait for Kafka than the API buffers. */
export class TooManyRequests extends Schema.TaggedError<TooManyRequests>()("TooManyRequests", {
  message: Schema.String
}) {}

/** 503 (with Retry-After): Kafka or the idempotency store failed; nothing of the request was accepted. */
export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()("ServiceUnavailable", {
  message: Schema.String
}) {}

/** The ingestion routes. */
export type IngestRoute = "transactions" | "fraudSignals"

/** A request URL's path as sent (query string cut off, nothing normalised): what partners sign. */
export const requestPathOf = (url: string): string => {
  const query = url.indexOf("?")
  return query === -1 ? url : url.slice(0, query)
}

/** The ingestion route of a request path ({@link requestPathOf}), if it is one. */
export const ingestRouteOf = (path: string): IngestRoute | undefined =>
  path === "/v1/transactions" ? "transactions" : path === "/v1/fraud-signals" ? "fraudSignals" : undefined

/** Request headers, lower-case names, as Node and the platform both give them. */
export type IngestHeaders = Readonly<Record<string, string | ReadonlyArray<string> | undefined>>

/** An answer to an ingestion request: status, JSON body and extra headers. */
export interface IngestReply {
  readonly status: number
  readonly body: unknown
  readonly headers?: Readonly<Record<string, string>>
}

/** Who is calling, or whose signature still has to be checked against the body. */
export type IngestCredentials =
  | { readonly kind: "api_key"; readonly clientId: string }
  | { readonly kind: "partner_signature"; readonly partnerId: string; readonly signature: string }

/**
 * The ingestion API's request handling, independent of the HTTP server: the HttpApi routes and the plain
 * Node listener call the same two steps, so both answer every request alike.
 */
export interface IngestionHandler {
  /**
   * What the headers alone decide before the body is read: 413 for a declared length over the limit,
   * 401 for a missing or unknown API key, 415 for a non-JSON content type; otherwise the credentials.
   */
  readonly checkHeaders: (headers: IngestHeaders) => Either.Either<IngestCredentials, IngestReply>
  /**
   * The request with its whole body (at most `maxBodyBytes`): signature check, validation, publish. Body
   * bytes that are not UTF-8 get 422 naming the first bad byte (a string body has been decoded already).
   */
  readonly handle: (request: {
    readonly route: IngestRoute
    readonly path: string
    readonly body: string | Uint8Array
    readonly credentials: IngestCredentials
  }) => Effect.Effect<IngestReply>
}

const errorReply = <A extends { readonly _tag: string }, I>(
  schema: Schema.Schema<A, I>,
  status: number,
  error: A,
  headers?: Readonly<Record<string, string>>
): IngestReply => ({
  status,
  body: Schema.encodeSync(schema)(error),
  ...(headers === undefined ? {} : { headers })
})

/** The 401 answer with `message`. */
export const unauthorized = (message: string): IngestReply =>
  errorReply(Unauthorized, 401, new Unauthorized({ message }))

/** The 503 answer with `message`, asking to retry after 5 s. */
export const serviceUnavailable = (message: string): IngestReply =>
  errorReply(ServiceUnavailable, 503, new ServiceUnavailable({ message }), { "retry-after": "5" })

/** The 413 answer with `message`. */
export const payloadTooLarge = (message: string): IngestReply =>
  errorReply(PayloadTooLarge, 413, new PayloadTooLarge({ message }))

const headerValue = (headers: IngestHeaders, name: string): string | undefined => {
  const value = headers[name]
  return typeof value === "string" && value !== "" ? value : undefined
}

const isJsonContentType = (contentType: string | undefined) =>
  contentType === undefined || /^application\/(?:[\w.+-]+\+)?json\b/i.test(contentType.trim())

const recordsCounterKey = MetricKey.counter("ingest_records_total", {
  description: "records received over HTTP, by topic and outcome",
  incremental: true
})
/** One counter per topic and outcome, tagged in its key, so an increment looks nothing up. */
const taggedCounters = new Map<string, Metric.Metric.Counter<number>>()
const observeRecords = (topic: string, outcome: string, count: number) => {
  if (count === 0) return Effect.void
  const key = `${topic}\u0000${outcome}`
  let counter = taggedCounters.get(key)
  if (counter === undefined) {
    counter = Metric.fromMetricKey(
      MetricKey.taggedWithLabels(recordsCounterKey, [
        MetricLabel.make("topic", topic),
        MetricLabel.make("outcome", outcome)
      ])
    )
    taggedCounters.set(key, counter)
  }
  return Metric.incrementBy(counter, count)
}

interface RecordKind<A, I> {
  readonly topic: (topics: TopicNames) => string
  readonly schema: Schema.Schema<A, I>
  readonly idField: "event_id" | "signal_id"
  readonly idOf: (record: A) => string
  readonly keyOf: (record: A) => string
  readonly sortedFields: ReadonlyArray<string>
}

const transactionKind: RecordKind<TransactionEvent, typeof TransactionEvent.Encoded> = {
  topic: (names) => names.transactions,
  schema: TransactionEvent,
  idField: "event_id",
  idOf: (event) => event.event_id,
  keyOf: (event) => event.transaction_id,
  sortedFields: sortedFieldsOf(TransactionEvent)
}

const fraudSignalKind: RecordKind<FraudSignal, typeof FraudSignal.Encoded> = {
  topic: (names) => names.fraudSignals,
  schema: FraudSignal,
  idField: "signal_id",
  idOf: (signal) => signal.signal_id,
  keyOf: (signal) => signal.transaction_id,
  sortedFields: sortedFieldsOf(FraudSignal)
}

const prefixed = (index: number, isBatch: boolean, problems: ReadonlyArray<RecordProblem>) =>
  problems.map((problem) => ({
    field: isBatch
      ? `[${index}]${problem.field === "(record)" ? "" : problem.field.startsWith("[") ? problem.field : `.${problem.field}`}`
      : problem.field,
    reason: problem.reason
  }))

/** The handler over the settings, the idempotency store (signature replays) and the record publisher. */
export const makeIngestionHandler = (
  settings: IngestionApiSettings,
  idempotency: IdempotencyStore,
  publisher: RecordPublisher
): IngestionHandler => {
  const lifetimes = {
    pendingTtlMillis: settings.pendingClaimTtlMillis,
    doneTtlMillis: settings.idempotencyTtlMillis
  }

  const checkHeaders = (headers: IngestHeaders): Either.Either<IngestCredentials, IngestReply> => {
    const declaredLength = Number(headerValue(headers, "content-length") ?? "0")
    if (declaredLength > settings.maxBodyBytes) {
      return Either.left(
        payloadTooLarge(`the body is ${declaredLength} bytes; at most ${settings.maxBodyBytes}`)
      )
    }
    const authorization = headerValue(headers, "authorization")
    const bearer = authorization?.startsWith("Bearer ") ? authorization.slice(7).trim() : undefined
    const apiKey = bearer ?? headerValue(headers, "x-api-key")
    let credentials: IngestCredentials
    if (apiKey !== undefined) {
      const clientId = verifyApiKey(settings.apiKeys, apiKey)
      if (clientId === undefined) return Either.left(unauthorized("unknown API key"))
      credentials = { kind: "api_key", clientId }
    } else {
      const partnerId = headerValue(headers, "x-partner-id")
      const signature = headerValue(headers, "x-signature")
      if (partnerId === undefined || signature === undefined) {
        return Either.left(
          unauthorized(
            "missing credentials: send Authorization: Bearer <API key>, or X-Partner-Id with X-Signature"
          )
        )
      }
      credentials = { kind: "partner_signature", partnerId, signature }
    }
    if (!isJsonContentType(headerValue(headers, "content-type"))) {
      return Either.left(
        errorReply(
          UnsupportedMediaType,
          415,
          new UnsupportedMediaType({ message: "send Content-Type: application/json" })
        )
      )
    }
    return Either.right(credentials)
  }

  /** The caller's id, after checking a partner's signature over the body and refusing its replay. */
  const callerOf = (
    credentials: IngestCredentials,
    path: string,
    body: string | Uint8Array
  ): Effect.Effect<Either.Either<string, IngestReply>> => {
    if (credentials.kind === "api_key") return Effect.succeed(Either.right(credentials.clientId))
    return Effect.gen(function* () {
      const verified = verifySignature({
        partners: settings.partners,
        partnerId: credentials.partnerId,
        header: credentials.signature,
        path,
        body,
        nowMillis: yield* Clock.currentTimeMillis,
        windowSeconds: settings.signatureWindowSeconds
      })
      if (Either.isLeft(verified)) return Either.left(unauthorized(verified.left))
      const [seen] = yield* idempotency
        .claim(
          [{ key: `signature:${verified.right.partnerId}:${verified.right.digest}`, fingerprint: "" }],
          2 * settings.signatureWindowSeconds * 1000
        )
        .pipe(Effect.orElseSucceed(() => "unavailable" as const))
      if (seen === "unavailable") {
        return Either.left(unauthorized("replay check unavailable; retry with a new signature"))
      }
      if (seen !== "claimed") {
        return Either.left(unauthorized("signature already used: a replayed request is refused; sign again"))
      }
      return Either.right(verified.right.partnerId)
    })
  }

  /** Refuses the whole request: dead-letters the bad records and names every problem. */
  const refuseInvalid = <A, I>(
    kind: RecordKind<A, I>,
    topic: string,
    callerId: string,
    isBatch: boolean,
    decoded: ReadonlyArray<Either.Either<A, RejectedRecord>>
  ) =>
    Effect.gen(function* () {
      const rejectedCount = decoded.filter(Either.isLeft).length
      const results: Array<RecordResult> = decoded.map((outcome, index) =>
        Either.isLeft(outcome)
          ? { index, status: "rejected", problems: outcome.left.problems }
          : { index, id: kind.idOf(outcome.right), status: "valid" }
      )
      const problems = decoded.flatMap((outcome, index) =>
        Either.isLeft(outcome) ? prefixed(index, isBatch, outcome.left.problems) : []
      )
      const deadLetters: Array<LogMessage> = []
      for (const [index, outcome] of decoded.entries()) {
        if (Either.isRight(outcome)) continue
        const entry = quarantineEntry(
          topic,
          `http:${callerId}:[${index}]`,
          outcome.left.problems,
          outcome.left.redactedPayload
        )
        deadLetters.push({ key: "", value: utf8Bytes(JSON.stringify(entry)) })
      }
      yield* publisher
        .publish(deadLetterTopic(topic), deadLetters)
        .pipe(
          Effect.catchAll((error) =>
            Effect.logWarning("could not dead-letter refused HTTP records").pipe(
              Effect.annotateLogs({ topic, records: deadLetters.length, error: error.message })
            )
          )
        )
      yield* observeRecords(topic, "rejected", rejectedCount)
      return errorReply(
        ValidationFailed,
        422,
        new ValidationFailed({
          message: `${rejectedCount} of ${decoded.length} records refused; nothing was accepted`,
          problems,
          results
        })
      )
    })

  const conflictReply = <A, I>(
    kind: RecordKind<A, I>,
    topic: string,
    blocked: number,
    results: ReadonlyArray<RecordResult>
  ): Effect.Effect<IngestReply> =>
    Effect.as(
      observeRecords(topic, "conflict", blocked),
      errorReply(
        IdempotencyConflict,
        409,
        new IdempotencyConflict({
          message: `${blocked} ${kind.idField}s are taken by different content or still being written by another request; nothing was accepted`,
          results
        })
      )
    )

  /** A body refused as a whole (one rejected record): 422 naming `(body)` and the reason. */
  const refuseBody = (topic: string, message: string, reason: string): Effect.Effect<IngestReply> =>
    Effect.as(
      observeRecords(topic, "rejected", 1),
      errorReply(
        ValidationFailed,
        422,
        new ValidationFailed({ message, problems: [{ field: "(body)", reason }], results: [] })
      )
    )

  const ingest = <A, I>(
    kind: RecordKind<A, I>,
    callerId: string,
    body: string,
    encodingProblem: string | undefined
  ) =>
    Effect.suspend((): Effect.Effect<IngestReply> => {
      const topic = kind.topic(settings.topics)
      if (encodingProblem !== undefined)
        return refuseBody(topic, "the body is not UTF-8 text", encodingProblem)
      let parsed: unknown
      try {
        parsed = JSON.parse(body)
      } catch (error) {
        const detail = redactCardNumbersInText(error instanceof Error ? error.message : String(error))
        return refuseBody(topic, "the body is not valid JSON", `not valid JSON: ${detail}`)
      }
      const isBatch = Array.isArray(parsed)
      const items: ReadonlyArray<unknown> = Array.isArray(parsed) ? parsed : [parsed]
      if (items.length === 0) {
        const problems = [{ field: "(body)", reason: "an empty array: send at least one record" }]
        return Effect.succeed(
          errorReply(
            ValidationFailed,
            422,
            new ValidationFailed({ message: "no records", problems, results: [] })
          )
        )
      }
      if (items.length > settings.maxRecordsPerRequest) {
        return Effect.succeed(
          payloadTooLarge(`${items.length} records; at most ${settings.maxRecordsPerRequest} per request`)
        )
      }
      const decoded = items.map((item) => decodeValue(kind.schema, item))
      if (decoded.some(Either.isLeft)) return refuseInvalid(kind, topic, callerId, isBatch, decoded)
      const events = decoded.map((outcome) => (outcome as Either.Right<never, A>).right)
      const results: Array<RecordResult> = []
      const firstIndexOf = new Map<string, number>()
      const fingerprints: Array<string> = []
      const toSend: Array<ClaimedRecord> = []
      const sentIndexes: Array<number> = []
      for (const [index, event] of events.entries()) {
        const id = kind.idOf(event)
        const fingerprint = recordFingerprint(event as Readonly<Record<string, unknown>>, kind.sortedFields)
        fingerprints.push(fingerprint)
        const first = firstIndexOf.get(id)
        if (first !== undefined) {
          results.push({ index, id, status: fingerprints[first] === fingerprint ? "duplicate" : "conflict" })
          continue
        }
        firstIndexOf.set(id, index)
        results.push({ index, id, status: "accepted" })
        toSend.push({
          claim: { key: `${topic}:${id}`, fingerprint },
          message: { key: kind.keyOf(event), value: utf8Bytes(JSON.stringify(items[index])) }
        })
        sentIndexes.push(index)
      }
      const conflicting = results.filter((result) => result.status === "conflict").length
      if (conflicting > 0) return conflictReply(kind, topic, conflicting, results)
      return Effect.matchEffect(publisher.publishOnce(topic, toSend, lifetimes), {
        onFailure: (error) => {
          switch (error._tag) {
            case "PublisherOverloaded":
              return Effect.as(
                observeRecords(topic, "overloaded", items.length),
                errorReply(TooManyRequests, 429, new TooManyRequests({ message: error.message }), {
                  "retry-after": String(settings.retryAfterSeconds)
                })
              )
            case "IdempotencyStoreError":
              return Effect.succeed(serviceUnavailable(`idempotency store: ${error.message}`))
            default:
              return Effect.logWarning("event log refused an ingestion request").pipe(
                Effect.annotateLogs({ topic, records: toSend.length, error: error.message }),
                Effect.zipRight(observeRecords(topic, "unavailable", items.length)),
                Effect.as(serviceUnavailable("the event log did not acknowledge the records"))
              )
          }
        },
        onSuccess: (outcomes) => {
          let sent = 0
          for (const [position, outcome] of outcomes.entries()) {
            const index = sentIndexes[position] ?? 0
            if (outcome === "claimed") sent++
            else
              results[index] = {
                index,
                id: results[index]?.id ?? "",
                status: outcome === "done" ? "duplicate" : outcome
              }
          }
          const blocked = results.filter(
            (result) => result.status === "conflict" || result.status === "in_progress"
          ).length
          if (blocked > 0) return conflictReply(kind, topic, blocked, results)
          return Effect.as(
            Effect.zipRight(
              observeRecords(topic, "accepted", sent),
              observeRecords(topic, "duplicate", items.length - sent)
            ),
            { status: 202, body: { accepted: sent, duplicates: items.length - sent, results } }
          )
        }
      })
    })

  return {
    checkHeaders,
    handle: ({ route, path, body, credentials }) => {
      // A leading BOM stays, as the body's bytes have it: a BOM is not JSON, so such a body is refused.
      const text = typeof body === "string" ? body : utf8Text(body)
      const encodingProblem = typeof body === "string" ? undefined : utf8Problem(body)
      return Effect.flatMap(callerOf(credentials, path, body), (caller) => {
        if (Either.isLeft(caller)) return Effect.succeed(caller.left)
        return route === "transactions"
          ? ingest(transactionKind, caller.right, text, encodingProblem)
          : ingest(fraudSignalKind, caller.right, text, encodingProblem)
      })
    }
  }
}
