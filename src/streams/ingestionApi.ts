import {
  FileSystem,
  HttpApi,
  HttpApiBuilder,
  HttpApiEndpoint,
  HttpApiGroup,
  HttpApiMiddleware,
  HttpApiSchema,
  HttpIncomingMessage,
  HttpServerRequest,
  HttpServerResponse,
  OpenApi
} from "@effect/platform"
import {
  Clock,
  Config,
  ConfigError,
  Context,
  Effect,
  Either,
  Layer,
  Metric,
  Option,
  Redacted,
  Schema
} from "effect"
import {
  type ApiKeyEntry,
  type PartnerSecret,
  parseApiKeyEntries,
  parsePartnerSecrets,
  verifyApiKey,
  verifySignature
} from "../domain/apiAuth.js"
import { redactCardNumbersInText } from "../domain/card.js"
import { FraudSignal, TransactionEvent } from "../domain/events.js"
import { recordFingerprint, sortedFieldsOf } from "../domain/fingerprint.js"
import { decodeValue, type RecordProblem } from "../domain/validation.js"
import type { LogMessage } from "../layers/EventLog.js"
import { type IdempotencyEntry, IdempotencyStoreService } from "../layers/IdempotencyStore.js"
import { RecordPublisherService } from "../layers/RecordPublisher.js"
import { quarantineEntry } from "./quarantine.js"
import { deadLetterTopic, topics as defaultTopics, type TopicNames } from "./streamingIndex.js"

/** Limits and credentials of the ingestion API. */
export interface IngestionApiSettings {
  readonly apiKeys: ReadonlyArray<ApiKeyEntry>
  readonly partners: ReadonlyArray<PartnerSecret>
  /** Largest request body accepted, bytes. */
  readonly maxBodyBytes: number
  /** Most records in one request. */
  readonly maxRecordsPerRequest: number
  /** How far a partner's signature timestamp may be from server time, either way. */
  readonly signatureWindowSeconds: number
  /** How long an accepted event_id / signal_id is remembered for idempotency. */
  readonly idempotencyTtlMillis: number
  /** How long a claim of a request still waiting for Kafka blocks the same id (if the instance died). */
  readonly pendingClaimTtlMillis: number
  /** Seconds a 429 asks the caller to wait. */
  readonly retryAfterSeconds: number
  readonly topics: TopicNames
}

/** The ingestion API's settings. */
export class IngestionApiConfig extends Context.Tag("IngestionApiConfig")<
  IngestionApiConfig,
  IngestionApiSettings
>() {}

/** Defaults beside credentials: 1 MiB bodies, 1000 records, 5-minute signature window, 7-day idempotency. */
export const defaultIngestionLimits = {
  maxBodyBytes: 1024 * 1024,
  maxRecordsPerRequest: 1000,
  signatureWindowSeconds: 300,
  idempotencyTtlMillis: 7 * 24 * 3600 * 1000,
  pendingClaimTtlMillis: 30_000,
  retryAfterSeconds: 1,
  topics: defaultTopics
} as const

/**
 * `RECON_API_KEYS` (client_id:sha256-hex, …), `RECON_PARTNER_SECRETS` (partner_id:secret, …),
 * `RECON_API_MAX_BODY_BYTES`, `RECON_API_MAX_RECORDS`, `RECON_API_SIGNATURE_WINDOW_SECONDS`. At least
 * one credential must be configured: the API never runs open.
 */
export const ingestionApiConfig: Config.Config<IngestionApiSettings> = Config.all({
  apiKeys: Config.redacted("RECON_API_KEYS").pipe(
    Config.withDefault(undefined),
    Config.mapOrFail((value) =>
      value === undefined
        ? Either.right([])
        : Either.mapLeft(parseApiKeyEntries(Redacted.value(value)), (message) =>
            ConfigError.InvalidData(["RECON_API_KEYS"], message)
          )
    )
  ),
  partners: Config.redacted("RECON_PARTNER_SECRETS").pipe(
    Config.withDefault(undefined),
    Config.mapOrFail((value) =>
      value === undefined
        ? Either.right([])
        : Either.mapLeft(parsePartnerSecrets(Redacted.value(value)), (message) =>
            ConfigError.InvalidData(["RECON_PARTNER_SECRETS"], message)
          )
    )
  ),
  maxBodyBytes: Config.integer("RECON_API_MAX_BODY_BYTES").pipe(
    Config.withDefault(defaultIngestionLimits.maxBodyBytes),
    Config.validate({
      message: "must be from 1 KiB to 64 MiB",
      validation: (n) => n >= 1024 && n <= 64 * 1024 * 1024
    })
  ),
  maxRecordsPerRequest: Config.integer("RECON_API_MAX_RECORDS").pipe(
    Config.withDefault(defaultIngestionLimits.maxRecordsPerRequest),
    Config.validate({ message: "must be from 1 to 10000", validation: (n) => n >= 1 && n <= 10_000 })
  ),
  signatureWindowSeconds: Config.integer("RECON_API_SIGNATURE_WINDOW_SECONDS").pipe(
    Config.withDefault(defaultIngestionLimits.signatureWindowSeconds),
    Config.validate({ message: "must be from 1 to 3600", validation: (n) => n >= 1 && n <= 3600 })
  )
}).pipe(
  Config.mapOrFail((settings) =>
    settings.apiKeys.length === 0 && settings.partners.length === 0
      ? Either.left(
          ConfigError.MissingData(
            ["RECON_API_KEYS"],
            "no credentials: set RECON_API_KEYS (see `recon api-key <client>`) or RECON_PARTNER_SECRETS"
          )
        )
      : Either.right({ ...defaultIngestionLimits, ...settings })
  )
)

/** Who is calling: an API-key client or a signing partner. */
export interface IngestionCallerIdentity {
  readonly kind: "api_key" | "partner_signature"
  readonly id: string
}
export class IngestionCaller extends Context.Tag("IngestionCaller")<
  IngestionCaller,
  IngestionCallerIdentity
>() {}

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
export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 401 })
) {}

/** 413: the body or the record count is over the limit. */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 413 })
) {}

/** 415: the body is not declared as JSON. */
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()(
  "UnsupportedMediaType",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 415 })
) {}

/** 422: invalid records; nothing of the request was accepted. `problems` name the field path and reason. */
export class ValidationFailed extends Schema.TaggedError<ValidationFailed>()(
  "ValidationFailed",
  { message: Schema.String, problems: Schema.Array(Problem), results: Schema.Array(RecordResult) },
  HttpApiSchema.annotations({ status: 422 })
) {}

/** 409: an id already taken by different content, or still being written by another request. */
export class IdempotencyConflict extends Schema.TaggedError<IdempotencyConflict>()(
  "IdempotencyConflict",
  { message: Schema.String, results: Schema.Array(RecordResult) },
  HttpApiSchema.annotations({ status: 409 })
) {}

/** 429 (with Retry-After): more records wait for Kafka than the API buffers. */
export class TooManyRequests extends Schema.TaggedError<TooManyRequests>()(
  "TooManyRequests",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 429 })
) {}

/** 503 (with Retry-After): Kafka or the idempotency store failed; nothing of the request was accepted. */
export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()(
  "ServiceUnavailable",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 503 })
) {}

/** API key (`Authorization: Bearer <key>` or `X-Api-Key`) or partner HMAC signature on every route. */
export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("Authentication", {
  failure: Schema.Union(Unauthorized, PayloadTooLarge),
  provides: IngestionCaller
}) {}

const ingestEndpoint = <const Name extends string, A, I>(
  name: Name,
  path: `/${string}`,
  schema: Schema.Schema<A, I>
) =>
  HttpApiEndpoint.post(name, path)
    .setPayload(Schema.Union(schema, Schema.Array(schema)))
    .addSuccess(IngestAccepted, { status: 202 })
    .addError(PayloadTooLarge)
    .addError(UnsupportedMediaType)
    .addError(ValidationFailed)
    .addError(IdempotencyConflict)
    .addError(TooManyRequests)
    .addError(ServiceUnavailable)

/** The ingestion API: contract §1 and §2 over HTTP. */
export class IngestionApi extends HttpApi.make("ingestion")
  .add(
    HttpApiGroup.make("events")
      .add(ingestEndpoint("transactions", "/v1/transactions", TransactionEvent))
      .add(ingestEndpoint("fraudSignals", "/v1/fraud-signals", FraudSignal))
      .middleware(Authentication)
  )
  .add(
    HttpApiGroup.make("health").add(
      HttpApiEndpoint.get("health", "/healthz").addSuccess(Schema.Struct({ status: Schema.Literal("ok") }))
    )
  )
  .annotate(OpenApi.Title, "Payment reconciliation index: ingestion API")
  .annotate(
    OpenApi.Description,
    "Send one record or an array of records. A request is accepted whole (202, every record acknowledged by Kafka) or refused whole (4xx or 503, nothing sent). Idempotent on event_id / signal_id. Authenticate with an API key (Authorization: Bearer <key> or X-Api-Key) or, for partners, X-Partner-Id and X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of `t.path.body`>."
  ) {}

const recordsCounter = Metric.counter("ingest_records_total", {
  description: "records received over HTTP, by topic and outcome",
  incremental: true
})
const taggedCounters = new Map<string, Metric.Metric.Counter<number>>()
const observeRecords = (topic: string, outcome: string, count: number) => {
  if (count === 0) return Effect.void
  const key = `${topic}\u0000${outcome}`
  let counter = taggedCounters.get(key)
  if (counter === undefined) {
    counter = recordsCounter.pipe(Metric.tagged("topic", topic), Metric.tagged("outcome", outcome))
    taggedCounters.set(key, counter)
  }
  return Metric.incrementBy(counter, count)
}

const readBody = (request: HttpServerRequest.HttpServerRequest, maxBodyBytes: number) =>
  request.text.pipe(
    HttpIncomingMessage.withMaxBodySize(Option.some(FileSystem.Size(maxBodyBytes))),
    Effect.mapError(
      () => new PayloadTooLarge({ message: `the body is larger than ${maxBodyBytes} bytes or was cut off` })
    ),
    Effect.filterOrFail(
      (text) => Buffer.byteLength(text, "utf8") <= maxBodyBytes,
      () => new PayloadTooLarge({ message: `the body is larger than ${maxBodyBytes} bytes` })
    )
  )

const headerValue = (request: HttpServerRequest.HttpServerRequest, name: string): string | undefined => {
  const value = request.headers[name]
  return typeof value === "string" && value !== "" ? value : undefined
}

const pathOf = (url: string): string => {
  const query = url.indexOf("?")
  return query === -1 ? url : url.slice(0, query)
}

/** The authentication middleware: API keys first, partner signatures otherwise; replayed signatures refused. */
export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.gen(function* () {
    const settings = yield* IngestionApiConfig
    const idempotency = yield* IdempotencyStoreService
    return Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const declaredLength = Number(headerValue(request, "content-length") ?? "0")
      if (declaredLength > settings.maxBodyBytes) {
        return yield* new PayloadTooLarge({
          message: `the body is ${declaredLength} bytes; at most ${settings.maxBodyBytes}`
        })
      }
      const authorization = headerValue(request, "authorization")
      const bearer = authorization?.startsWith("Bearer ") ? authorization.slice(7).trim() : undefined
      const apiKey = bearer ?? headerValue(request, "x-api-key")
      if (apiKey !== undefined) {
        const clientId = verifyApiKey(settings.apiKeys, apiKey)
        if (clientId === undefined) return yield* new Unauthorized({ message: "unknown API key" })
        return { kind: "api_key", id: clientId } as const
      }
      const partnerId = headerValue(request, "x-partner-id")
      const signature = headerValue(request, "x-signature")
      if (partnerId === undefined || signature === undefined) {
        return yield* new Unauthorized({
          message:
            "missing credentials: send Authorization: Bearer <API key>, or X-Partner-Id with X-Signature"
        })
      }
      const body = yield* readBody(request, settings.maxBodyBytes)
      const verified = verifySignature({
        partners: settings.partners,
        partnerId,
        header: signature,
        path: pathOf(request.url),
        body,
        nowMillis: yield* Clock.currentTimeMillis,
        windowSeconds: settings.signatureWindowSeconds
      })
      if (Either.isLeft(verified)) return yield* new Unauthorized({ message: verified.left })
      const [seen] = yield* idempotency
        .claim(
          [{ key: `signature:${verified.right.partnerId}:${verified.right.digest}`, fingerprint: "" }],
          2 * settings.signatureWindowSeconds * 1000
        )
        .pipe(Effect.orElseSucceed(() => "unavailable" as const))
      if (seen === "unavailable") {
        return yield* new Unauthorized({ message: "replay check unavailable; retry with a new signature" })
      }
      if (seen !== "claimed") {
        return yield* new Unauthorized({
          message: "signature already used: a replayed request is refused; sign again"
        })
      }
      return { kind: "partner_signature", id: verified.right.partnerId } as const
    })
  })
)

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

const isJsonContentType = (contentType: string | undefined) =>
  contentType === undefined || /^application\/(?:[\w.+-]+\+)?json\b/i.test(contentType.trim())

const utf8 = new TextEncoder()

const withRetryAfter = (status: number, seconds: number, body: unknown) =>
  HttpServerResponse.unsafeJson(body, { status, headers: { "retry-after": String(seconds) } })

/**
 * One ingestion request: parse, validate every record, refuse the whole request on any bad record
 * (dead-lettering the bad ones), claim ids, publish and wait for Kafka, then remember the ids.
 */
const ingest = <A, I>(kind: RecordKind<A, I>) =>
  Effect.gen(function* () {
    const settings = yield* IngestionApiConfig
    const idempotency = yield* IdempotencyStoreService
    const publisher = yield* RecordPublisherService
    const caller = yield* IngestionCaller
    const request = yield* HttpServerRequest.HttpServerRequest
    const topic = kind.topic(settings.topics)
    if (!isJsonContentType(headerValue(request, "content-type"))) {
      return yield* new UnsupportedMediaType({ message: "send Content-Type: application/json" })
    }
    const body = yield* readBody(request, settings.maxBodyBytes)
    let parsed: unknown
    try {
      parsed = JSON.parse(body)
    } catch (error) {
      const detail = redactCardNumbersInText(error instanceof Error ? error.message : String(error))
      const problems = [{ field: "(body)", reason: `not valid JSON: ${detail}` }]
      yield* observeRecords(topic, "rejected", 1)
      return yield* new ValidationFailed({ message: "the body is not valid JSON", problems, results: [] })
    }
    const isBatch = Array.isArray(parsed)
    const items: ReadonlyArray<unknown> = Array.isArray(parsed) ? parsed : [parsed]
    if (items.length === 0) {
      const problems = [{ field: "(body)", reason: "an empty array: send at least one record" }]
      return yield* new ValidationFailed({ message: "no records", problems, results: [] })
    }
    if (items.length > settings.maxRecordsPerRequest) {
      return yield* new PayloadTooLarge({
        message: `${items.length} records; at most ${settings.maxRecordsPerRequest} per request`
      })
    }
    const decoded = items.map((item) => decodeValue(kind.schema, item))
    const rejectedCount = decoded.filter(Either.isLeft).length
    if (rejectedCount > 0) {
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
          `http:${caller.id}:[${index}]`,
          outcome.left.problems,
          outcome.left.redactedPayload
        )
        deadLetters.push({ key: "", value: utf8.encode(JSON.stringify(entry)) })
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
      return yield* new ValidationFailed({
        message: `${rejectedCount} of ${items.length} records refused; nothing was accepted`,
        problems,
        results
      })
    }
    const events = decoded.map((outcome) => (outcome as Either.Right<never, A>).right)
    const ids = events.map(kind.idOf)
    const fingerprints = events.map((event) =>
      recordFingerprint(event as Readonly<Record<string, unknown>>, kind.sortedFields)
    )
    const results: Array<RecordResult> = ids.map((id, index) => ({ index, id, status: "accepted" }))
    const firstIndexOf = new Map<string, number>()
    const claims: Array<IdempotencyEntry> = []
    const claimIndexes: Array<number> = []
    for (const [index, id] of ids.entries()) {
      const first = firstIndexOf.get(id)
      if (first !== undefined) {
        results[index] = {
          index,
          id,
          status: fingerprints[first] === fingerprints[index] ? "duplicate" : "conflict"
        }
        continue
      }
      firstIndexOf.set(id, index)
      claims.push({ key: `${topic}:${id}`, fingerprint: fingerprints[index] ?? "" })
      claimIndexes.push(index)
    }
    const outcomes = yield* idempotency
      .claim(claims, settings.pendingClaimTtlMillis)
      .pipe(
        Effect.mapError((error) => new ServiceUnavailable({ message: `idempotency store: ${error.message}` }))
      )
    const claimed: Array<IdempotencyEntry> = []
    const toSend: Array<LogMessage> = []
    for (const [position, outcome] of outcomes.entries()) {
      const index = claimIndexes[position] ?? 0
      const id = ids[index] ?? ""
      const claim = claims[position]
      if (outcome === "claimed" && claim !== undefined) {
        claimed.push(claim)
        toSend.push({
          key: kind.keyOf(events[index] as A),
          value: utf8.encode(JSON.stringify(items[index]))
        })
      } else if (outcome !== "claimed") {
        results[index] = { index, id, status: outcome === "done" ? "duplicate" : outcome }
      }
    }
    const blocked = results.filter(
      (result) => result.status === "conflict" || result.status === "in_progress"
    )
    const releaseClaims = idempotency.release(claimed).pipe(Effect.ignore)
    if (blocked.length > 0) {
      yield* releaseClaims
      yield* observeRecords(topic, "conflict", blocked.length)
      return yield* new IdempotencyConflict({
        message: `${blocked.length} ${kind.idField}s are taken by different content or still being written by another request; nothing was accepted`,
        results
      })
    }
    const published = yield* Effect.either(publisher.publish(topic, toSend))
    if (Either.isLeft(published)) {
      yield* releaseClaims
      if (published.left._tag === "PublisherOverloaded") {
        yield* observeRecords(topic, "overloaded", items.length)
        return withRetryAfter(
          429,
          settings.retryAfterSeconds,
          new TooManyRequests({ message: published.left.message })
        )
      }
      yield* Effect.logWarning("event log refused an ingestion request").pipe(
        Effect.annotateLogs({ topic, records: toSend.length, error: published.left.message })
      )
      yield* observeRecords(topic, "unavailable", items.length)
      return withRetryAfter(
        503,
        5,
        new ServiceUnavailable({ message: "the event log did not acknowledge the records" })
      )
    }
    yield* idempotency
      .complete(claimed, settings.idempotencyTtlMillis)
      .pipe(
        Effect.catchAll((error) =>
          Effect.logWarning("accepted records not remembered for idempotency").pipe(
            Effect.annotateLogs({ topic, records: claimed.length, error: error.message })
          )
        )
      )
    yield* observeRecords(topic, "accepted", toSend.length)
    yield* observeRecords(topic, "duplicate", items.length - toSend.length)
    return HttpServerResponse.unsafeJson(
      { accepted: toSend.length, duplicates: items.length - toSend.length, results },
      { status: 202 }
    )
  })

const eventsGroupLive = HttpApiBuilder.group(IngestionApi, "events", (handlers) =>
  handlers
    .handleRaw("transactions", () => ingest(transactionKind), { uninterruptible: true })
    .handleRaw("fraudSignals", () => ingest(fraudSignalKind), { uninterruptible: true })
)

const healthGroupLive = HttpApiBuilder.group(IngestionApi, "health", (handlers) =>
  handlers.handle("health", () => Effect.succeed({ status: "ok" as const }))
)

/**
 * The API's routes, OpenAPI document (`GET /openapi.json`) and authentication, needing the settings,
 * the idempotency store and the record publisher.
 */
export const IngestionApiLive = HttpApiBuilder.api(IngestionApi).pipe(
  Layer.provide(Layer.mergeAll(eventsGroupLive, healthGroupLive)),
  Layer.provide(AuthenticationLive)
)

/** Serves the API on an `HttpServer`, with `/openapi.json`. */
export const IngestionServerLive = HttpApiBuilder.serve().pipe(
  Layer.provide(HttpApiBuilder.middlewareOpenApi()),
  Layer.provide(IngestionApiLive)
)
