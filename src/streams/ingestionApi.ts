import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { ListenOptions } from "node:net"
import {
  FileSystem,
  HttpApi,
  HttpApiBuilder,
  HttpApiEndpoint,
  HttpApiGroup,
  HttpIncomingMessage,
  HttpServer,
  HttpServerRequest,
  HttpServerResponse,
  OpenApi
} from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import {
  Config,
  ConfigError,
  Context,
  Effect,
  Either,
  Exit,
  Layer,
  Option,
  Redacted,
  Runtime,
  Schema
} from "effect"
import {
  type ApiKeyEntry,
  type PartnerSecret,
  parseApiKeyEntries,
  parsePartnerSecrets
} from "../domain/apiAuth.js"
import { redactCardNumbersInText } from "../domain/card.js"
import { FraudSignal, TransactionEvent } from "../domain/events.js"
import { IdempotencyStoreService } from "../layers/IdempotencyStore.js"
import { RecordPublisherService } from "../layers/RecordPublisher.js"
import {
  IdempotencyConflict,
  IngestAccepted,
  type IngestionHandler,
  type IngestReply,
  type IngestRoute,
  ingestRouteOf,
  makeIngestionHandler,
  PayloadTooLarge,
  payloadTooLarge,
  requestPathOf,
  ServiceUnavailable,
  serviceUnavailable,
  TooManyRequests,
  Unauthorized,
  UnsupportedMediaType,
  ValidationFailed
} from "./ingestionHandler.js"
import { topics as defaultTopics, type TopicNames } from "./streamingIndex.js"

export {
  IdempotencyConflict,
  IngestAccepted,
  PayloadTooLarge,
  RecordResult,
  ServiceUnavailable,
  TooManyRequests,
  Unauthorized,
  UnsupportedMediaType,
  ValidationFailed
} from "./ingestionHandler.js"

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
 * `RECON_API_MAX_BODY_BYTES`, `RECON_API_MAX_RECORDS`, `RECON_API_SIGNATURE_WINDOW_SECONDS`, and the topics
 * `RECON_TOPIC_TRANSACTIONS` / `RECON_TOPIC_FRAUD_SIGNALS` (as the streaming service reads them). At least
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
  topics: Config.all({
    transactions: Config.string("RECON_TOPIC_TRANSACTIONS").pipe(
      Config.withDefault(defaultTopics.transactions)
    ),
    fraudSignals: Config.string("RECON_TOPIC_FRAUD_SIGNALS").pipe(
      Config.withDefault(defaultTopics.fraudSignals)
    )
  }),
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

/** The ingestion request handling over the configured settings, idempotency store and publisher. */
export class IngestionHandlerService extends Context.Tag("IngestionHandler")<
  IngestionHandlerService,
  IngestionHandler
>() {
  static readonly layer = Layer.effect(
    IngestionHandlerService,
    Effect.gen(function* () {
      return makeIngestionHandler(
        yield* IngestionApiConfig,
        yield* IdempotencyStoreService,
        yield* RecordPublisherService
      )
    })
  )
}

const ingestEndpoint = <const Name extends string, A, I>(
  name: Name,
  path: `/${string}`,
  schema: Schema.Schema<A, I>
) =>
  HttpApiEndpoint.post(name, path)
    .setPayload(Schema.Union(schema, Schema.Array(schema)))
    .addSuccess(IngestAccepted, { status: 202 })
    .addError(Unauthorized, { status: 401 })
    .addError(PayloadTooLarge, { status: 413 })
    .addError(UnsupportedMediaType, { status: 415 })
    .addError(ValidationFailed, { status: 422 })
    .addError(IdempotencyConflict, { status: 409 })
    .addError(TooManyRequests, { status: 429 })
    .addError(ServiceUnavailable, { status: 503 })

/** The ingestion API: contract §1 and §2 over HTTP. */
export class IngestionApi extends HttpApi.make("ingestion")
  .add(
    HttpApiGroup.make("events")
      .add(ingestEndpoint("transactions", "/v1/transactions", TransactionEvent))
      .add(ingestEndpoint("fraudSignals", "/v1/fraud-signals", FraudSignal))
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

const toResponse = (reply: IngestReply) =>
  HttpServerResponse.unsafeJson(
    reply.body,
    reply.headers === undefined ? { status: reply.status } : { status: reply.status, headers: reply.headers }
  )

/** An ingestion route served by the platform: headers checked, body read within the limit, then handled. */
const ingestThroughPlatform = (route: IngestRoute) =>
  Effect.gen(function* () {
    const handler = yield* IngestionHandlerService
    const settings = yield* IngestionApiConfig
    const request = yield* HttpServerRequest.HttpServerRequest
    const checked = handler.checkHeaders(request.headers)
    if (Either.isLeft(checked)) return toResponse(checked.left)
    const body = yield* request.arrayBuffer.pipe(
      HttpIncomingMessage.withMaxBodySize(Option.some(FileSystem.Size(settings.maxBodyBytes))),
      Effect.either
    )
    if (Either.isLeft(body) || body.right.byteLength > settings.maxBodyBytes) {
      return toResponse(
        payloadTooLarge(`the body is larger than ${settings.maxBodyBytes} bytes or was cut off`)
      )
    }
    const reply = yield* handler.handle({
      route,
      path: requestPathOf(request.url),
      body: new Uint8Array(body.right),
      credentials: checked.right
    })
    return toResponse(reply)
  })

const eventsGroupLive = HttpApiBuilder.group(IngestionApi, "events", (handlers) =>
  handlers
    .handleRaw("transactions", () => ingestThroughPlatform("transactions"), { uninterruptible: true })
    .handleRaw("fraudSignals", () => ingestThroughPlatform("fraudSignals"), { uninterruptible: true })
)

const healthGroupLive = HttpApiBuilder.group(IngestionApi, "health", (handlers) =>
  handlers.handle("health", () => Effect.succeed({ status: "ok" as const }))
)

/** The API's routes and OpenAPI document (`GET /openapi.json`), needing the request handler. */
export const IngestionApiLive = HttpApiBuilder.api(IngestionApi).pipe(
  Layer.provide(Layer.mergeAll(eventsGroupLive, healthGroupLive))
)

/** Serves the API on an `HttpServer`, with `/openapi.json`. */
export const IngestionServerLive = HttpApiBuilder.serve().pipe(
  Layer.provide(HttpApiBuilder.middlewareOpenApi()),
  Layer.provide(IngestionApiLive)
)

const writeReply = (response: ServerResponse, reply: IngestReply, closeAfter: boolean) => {
  const text = JSON.stringify(reply.body)
  response.writeHead(reply.status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text, "utf8"),
    ...(closeAfter ? { connection: "close" } : {}),
    ...reply.headers
  })
  response.end(text)
}

/** The native server's requests on the ingestion routes, and whether it is shutting down. */
interface DrainState {
  draining: boolean
  inFlight: number
  onDrained: (() => void) | undefined
}

const shuttingDown = serviceUnavailable("the API is shutting down; retry on a new connection")

/**
 * The ingestion routes answered straight from the Node request: headers checked, the body collected within
 * `maxBodyBytes`, then the handler run in its own uninterruptible fiber. Answers `true` when the request was
 * one of the routes (and is now being answered), `false` to leave it to the platform. A request counts as in
 * flight from here until its response closed, so a shutdown waits for it.
 */
const makeNativeIngestion =
  (
    handler: IngestionHandler,
    maxBodyBytes: number,
    run: (effect: Effect.Effect<void>) => void,
    state: DrainState
  ) =>
  (request: IncomingMessage, response: ServerResponse): boolean => {
    const path = requestPathOf(request.url ?? "")
    const route = request.method === "POST" ? ingestRouteOf(path) : undefined
    if (route === undefined) return false
    state.inFlight++
    response.once("close", () => {
      if (--state.inFlight === 0 && state.draining) state.onDrained?.()
    })
    const checked = handler.checkHeaders(request.headers)
    if (Either.isLeft(checked)) {
      // The body is not read: closing the connection spares reading and discarding it.
      writeReply(response, checked.left, true)
      return true
    }
    const chunks: Array<Buffer> = []
    let size = 0
    request.on("data", (chunk: Buffer) => {
      if (size > maxBodyBytes) return
      size += chunk.length
      if (size > maxBodyBytes) {
        writeReply(response, payloadTooLarge(`the body is larger than ${maxBodyBytes} bytes`), true)
        request.destroy()
        return
      }
      chunks.push(chunk)
    })
    request.on("end", () => {
      if (size > maxBodyBytes) return
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)
      run(
        handler.handle({ route, path, body, credentials: checked.right }).pipe(
          Effect.uninterruptible,
          Effect.exit,
          Effect.flatMap((exit) => {
            if (Exit.isSuccess(exit)) return Effect.sync(() => writeReply(response, exit.value, false))
            return Effect.logError("ingestion request failed").pipe(
              Effect.annotateLogs({ route, cause: redactCardNumbersInText(String(exit.cause)) }),
              Effect.zipRight(
                Effect.sync(() => {
                  response.writeHead(500)
                  response.end()
                })
              )
            )
          })
        )
      )
    })
    return true
  }

/**
 * An `HttpServer` on node:http whose two POST ingestion routes are answered straight from the Node request
 * by the same {@link IngestionHandlerService} the HttpApi routes call, while everything else (the OpenAPI
 * document, health, unknown paths and methods) goes through the platform's handler. The platform's
 * per-request machinery costs more than the whole ingestion work (bench/ingestion.mjs measures both).
 */
export const layerNativeIngestionServer = (options: ListenOptions) =>
  Layer.scoped(
    HttpServer.HttpServer,
    Effect.gen(function* () {
      const handler = yield* IngestionHandlerService
      const settings = yield* IngestionApiConfig
      const server = createServer()
      const platformServer = yield* NodeHttpServer.make(() => server, options)
      const state: DrainState = { draining: false, inFlight: 0, onDrained: undefined }
      // Runs before the platform's close: stop accepting, answer 503 on open connections, wait for the
      // ingestion requests in flight (uninterruptible: claimed ids get completed or released), then close.
      yield* Effect.addFinalizer(() =>
        Effect.async<void>((resume) => {
          state.draining = true
          server.close()
          server.closeIdleConnections()
          if (state.inFlight === 0) resume(Effect.void)
          else state.onDrained = () => resume(Effect.void)
        }).pipe(
          Effect.timeoutTo({
            duration: "30 seconds",
            onSuccess: () => Effect.void,
            onTimeout: () =>
              Effect.logWarning("ingestion requests still in flight after 30 s of shutdown").pipe(
                Effect.annotateLogs({ requests: state.inFlight })
              )
          }),
          Effect.flatten,
          Effect.zipRight(Effect.sync(() => server.closeAllConnections()))
        )
      )
      const runCallback = Runtime.runCallback(yield* Effect.runtime<never>())
      const ingestNatively = makeNativeIngestion(
        handler,
        settings.maxBodyBytes,
        (effect) => runCallback(effect),
        state
      )
      return HttpServer.make({
        address: platformServer.address,
        serve: (app, middleware?) =>
          Effect.gen(function* () {
            const platformHandler = yield* middleware === undefined
              ? NodeHttpServer.makeHandler(app)
              : NodeHttpServer.makeHandler(app, middleware)
            const listener = (request: IncomingMessage, response: ServerResponse) => {
              if (state.draining) writeReply(response, shuttingDown, true)
              else if (!ingestNatively(request, response)) platformHandler(request, response)
            }
            // The listener stays: while the server drains it answers 503 instead of leaving requests unanswered.
            yield* Effect.addFinalizer(() =>
              Effect.sync(() => {
                state.draining = true
              })
            )
            server.on("request", listener)
          })
      })
    })
  )
