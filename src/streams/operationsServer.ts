import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import { Config, Data, Effect, Ref, Runtime, type Scope } from "effect"
import { prometheusContentType, registerStreamingMetrics, renderPrometheus } from "./streamingMetrics.js"

/** The operations server could not bind its address. */
export class OperationsServerError extends Data.TaggedError("OperationsServerError")<{
  readonly host: string
  readonly port: number
  readonly message: string
}> {}

/** Whether the service is ready to be sent traffic; `/readyz` answers 200 only once it is. */
export interface Readiness {
  readonly markReady: Effect.Effect<void>
  readonly markNotReady: Effect.Effect<void>
  readonly isReady: Effect.Effect<boolean>
}

/** A readiness flag, initially not ready. */
export const makeReadiness: Effect.Effect<Readiness> = Effect.map(Ref.make(false), (ready) => ({
  markReady: Ref.set(ready, true),
  markNotReady: Ref.set(ready, false),
  isReady: Ref.get(ready)
}))

/** How the operations server binds. Port 0 asks the OS for a free port. */
export interface OperationsServerOptions {
  readonly port: number
  readonly host?: string
  readonly readiness: Readiness
}

/** A running operations server: the address it is bound to. */
export interface OperationsServer {
  readonly host: string
  readonly port: number
  readonly url: string
}

/** The default operations port (the usual Prometheus exporter port range). */
export const defaultOperationsPort = 9464

/** `RECON_OPS_PORT`: the operations server port, default 9464, 0 for a random free port. */
export const operationsPortConfig: Config.Config<number> = Config.integer("RECON_OPS_PORT").pipe(
  Config.withDefault(defaultOperationsPort),
  Config.validate({
    message: "RECON_OPS_PORT must be an integer from 0 to 65535",
    validation: (port) => port >= 0 && port <= 65535
  })
)

/** An HTTP answer of the operations server. */
export interface OperationsResponse {
  readonly status: number
  readonly contentType: string
  readonly body: string
}

const textResponse = (status: number, body: string): OperationsResponse => ({
  status,
  contentType: "text/plain; charset=utf-8",
  body
})

/**
 * Routes one request: `GET /healthz` is 200 while the process runs, `GET /readyz` 200 once ready else
 * 503, `GET /metrics` the Prometheus exposition; anything else 404.
 */
export const handleOperationsRequest = (
  method: string,
  path: string,
  readiness: Readiness
): Effect.Effect<OperationsResponse> => {
  if (method !== "GET") return Effect.succeed(textResponse(404, "not found\n"))
  switch (path) {
    case "/healthz":
      return Effect.succeed(textResponse(200, "ok\n"))
    case "/readyz":
      return Effect.map(readiness.isReady, (ready) =>
        ready ? textResponse(200, "ready\n") : textResponse(503, "not ready\n")
      )
    case "/metrics":
      return Effect.map(renderPrometheus(), (body) => ({
        status: 200,
        contentType: prometheusContentType,
        body
      }))
    default:
      return Effect.succeed(textResponse(404, "not found\n"))
  }
}

const pathOf = (url: string | undefined): string => {
  try {
    return new URL(url ?? "/", "http://localhost").pathname
  } catch {
    return "/"
  }
}

const listen = (server: NodeHttp.Server, host: string, port: number) =>
  Effect.async<AddressInfo, OperationsServerError>((resume) => {
    const onError = (error: Error) =>
      resume(Effect.fail(new OperationsServerError({ host, port, message: error.message })))
    server.once("error", onError)
    server.listen(port, host, () => {
      server.off("error", onError)
      resume(Effect.succeed(server.address() as AddressInfo))
    })
  })

const close = (server: NodeHttp.Server) =>
  Effect.async<void>((resume) => {
    server.close(() => resume(Effect.void))
    server.closeAllConnections()
  })

/**
 * Serves `/healthz`, `/readyz` and `/metrics` on `host` (default 127.0.0.1) for the life of the scope;
 * the server and its open connections are closed when the scope ends.
 */
export const startOperationsServer = (
  options: OperationsServerOptions
): Effect.Effect<OperationsServer, OperationsServerError, Scope.Scope> =>
  Effect.gen(function* () {
    const host = options.host ?? "127.0.0.1"
    const runtime = yield* Effect.runtime<never>()
    const runPromise = Runtime.runPromise(runtime)
    yield* registerStreamingMetrics
    const server = NodeHttp.createServer((request, response) => {
      runPromise(
        handleOperationsRequest(request.method ?? "GET", pathOf(request.url), options.readiness)
      ).then(
        (answer) => {
          response.writeHead(answer.status, {
            "content-type": answer.contentType,
            "content-length": Buffer.byteLength(answer.body)
          })
          response.end(answer.body)
        },
        () => {
          response.writeHead(500, { "content-type": "text/plain; charset=utf-8" })
          response.end("internal error\n")
        }
      )
    })
    const address = yield* Effect.acquireRelease(listen(server, host, options.port), () =>
      close(server).pipe(Effect.zipRight(Effect.logInfo("operations server closed")))
    )
    yield* Effect.logInfo("operations server listening").pipe(
      Effect.annotateLogs({ host, port: address.port })
    )
    const urlHost = host.includes(":") ? `[${host}]` : host
    return { host, port: address.port, url: `http://${urlHost}:${address.port}` }
  })
