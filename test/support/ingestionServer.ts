import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer, Logger, ManagedRuntime, Stream } from "effect"
import {
  type ApiKeyEntry,
  hashApiKey,
  type PartnerSecret,
  parseApiKeyEntries,
  signRequest
} from "../../src/domain/apiAuth.js"
import { type EventLog, EventLogService, makeMemoryEventLog } from "../../src/layers/EventLog.js"
import { type IdempotencyStore, IdempotencyStoreService } from "../../src/layers/IdempotencyStore.js"
import { RecordPublisherService } from "../../src/layers/RecordPublisher.js"
import {
  defaultIngestionLimits,
  IngestionApiConfig,
  type IngestionApiSettings,
  IngestionHandlerService,
  IngestionServerLive,
  layerNativeIngestionServer
} from "../../src/streams/ingestionApi.js"

export const testApiKey = "rk_test-key-for-the-ingestion-api"
export const partnerId = "acme-partner"
export const partnerSecret = "partner-secret-0123456789abcdef"

const apiKeys: ReadonlyArray<ApiKeyEntry> = (() => {
  const parsed = parseApiKeyEntries(`ops:${hashApiKey(testApiKey)}`)
  if (parsed._tag === "Left") throw new Error(parsed.left)
  return parsed.right
})()
const partners: ReadonlyArray<PartnerSecret> = [{ partnerId, secret: Buffer.from(partnerSecret) }]

/** A running ingestion API on a free loopback port. */
export interface RunningApi {
  readonly url: string
  readonly log: EventLog
  readonly close: () => Promise<void>
}

/** How the API is served: the POST routes straight from node:http (`native`) or through HttpApi (`platform`). */
export type ApiServerKind = "native" | "platform"

/**
 * Starts the API on 127.0.0.1:0 over the given event log (the embedded one by default), with the memory
 * idempotency store, the test API key and partner, and `overrides` to the default limits.
 */
export const startIngestionApi = async (
  options: {
    readonly log?: EventLog
    readonly maxPendingRecords?: number
    readonly settings?: Partial<IngestionApiSettings>
    readonly server?: ApiServerKind
    /** Instead of the memory idempotency store. */
    readonly idempotency?: IdempotencyStore
    /** Receives every line the API logs (logfmt) instead of the console. */
    readonly logLines?: Array<string>
  } = {}
): Promise<RunningApi> => {
  const log = options.log ?? (await Effect.runPromise(makeMemoryEventLog(4)))
  const settings: IngestionApiSettings = { ...defaultIngestionLimits, apiKeys, partners, ...options.settings }
  const listen = { port: 0, host: "127.0.0.1" }
  const handlerLayer = IngestionHandlerService.layer.pipe(
    Layer.provideMerge(
      RecordPublisherService.layer({
        maxPendingRecords: options.maxPendingRecords ?? 50_000,
        maxRecordsPerSend: 5_000
      })
    ),
    Layer.provideMerge(
      Layer.mergeAll(
        options.idempotency === undefined
          ? IdempotencyStoreService.layerMemory
          : Layer.succeed(IdempotencyStoreService, options.idempotency),
        Layer.succeed(IngestionApiConfig, settings),
        Layer.succeed(EventLogService, log)
      )
    )
  )
  const layer = IngestionServerLive.pipe(
    Layer.provideMerge(
      (options.server ?? "native") === "native"
        ? Layer.merge(layerNativeIngestionServer(listen), NodeHttpServer.layerContext)
        : NodeHttpServer.layer(createServer, listen)
    ),
    Layer.provide(handlerLayer)
  )
  const logLines = options.logLines
  const runtime = ManagedRuntime.make(
    logLines === undefined
      ? layer
      : layer.pipe(
          Layer.provide(
            Logger.replace(
              Logger.defaultLogger,
              Logger.map(Logger.logfmtLogger, (line) => {
                logLines.push(line)
              })
            )
          )
        )
  )

  const server = await runtime.runPromise(HttpServer.HttpServer)
  const address = server.address as HttpServer.TcpAddress | AddressInfo
  const port = "port" in address ? address.port : 0
  return { url: `http://127.0.0.1:${port}`, log, close: () => runtime.dispose() }
}

/** A POST with the test API key. */
export const postWithKey = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${testApiKey}`, ...headers },
    body:
      body instanceof Uint8Array
        ? new Blob([Uint8Array.from(body)])
        : typeof body === "string"
          ? body
          : JSON.stringify(body)
  })

/** A POST signed by the test partner at `timestampSeconds` (now by default). */
export const postSigned = (
  baseUrl: string,
  path: string,
  body: string,
  options: { readonly timestampSeconds?: number; readonly signedPath?: string; readonly secret?: string } = {}
) =>
  fetch(`${baseUrl}${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-partner-id": partnerId,
      "x-signature": signRequest(
        options.secret ?? partnerSecret,
        options.timestampSeconds ?? Math.floor(Date.now() / 1000),
        options.signedPath ?? path,
        body
      )
    },
    body
  })

/** Every message value of a topic, decoded as text, in partition then offset order. */
export const topicTexts = (log: EventLog, topic: string): Promise<ReadonlyArray<string>> =>
  Effect.runPromise(
    Effect.gen(function* () {
      const ends = yield* log.endOffsets(topic)
      if (ends.every((end) => end.offset === 0)) return []
      const decoder = new TextDecoder()
      const batches = yield* Stream.runCollect(
        log.subscribe(`read-${topic}-${readerCount++}`, [topic], { stopAtEnd: true })
      )
      return [...batches].flat().map((record) => decoder.decode(record.value))
    })
  )

let readerCount = 0
