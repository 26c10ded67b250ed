import * as NodeHttp from "node:http"
import type * as NodeNet from "node:net"
import { Effect } from "effect"

/** What the proxy answers instead of forwarding: an S3-style 503 SlowDown, a 500 InternalError, or a dropped connection. */
export type FaultKind = "slowDown" | "internalError" | "connectionReset"

/** One request as the fault plan sees it; `sequence` counts every request the proxy received, from 1. */
export interface ProxiedRequest {
  readonly sequence: number
  readonly method: string
  readonly url: string
}

/** Which requests to fault and how. */
export interface FaultPlan {
  readonly shouldFault: (request: ProxiedRequest) => boolean
  readonly kind?: FaultKind
}

/** A running proxy; `url` is the endpoint to give the client instead of the real server's. */
export interface FaultProxy {
  readonly url: string
  readonly port: number
  /** Requests answered with a fault so far. */
  readonly faulted: () => number
  /** Requests passed to the real server so far. */
  readonly forwarded: () => number
  /** Replaces the plan; the sequence keeps counting. */
  readonly setPlan: (plan: FaultPlan) => void
  readonly stop: () => Promise<void>
}

/** Faults the first `count` requests, then forwards everything. */
export const faultFirst = (count: number, kind: FaultKind = "slowDown"): FaultPlan => ({
  kind,
  shouldFault: (request) => request.sequence <= count
})

/** Faults every `period`-th request (the `period`-th, the `2 * period`-th, ...). */
export const faultEvery = (period: number, kind: FaultKind = "slowDown"): FaultPlan => ({
  kind,
  shouldFault: (request) => request.sequence % period === 0
})

/** Faults every request for `millis` after the first one arrives (wall clock; for end-to-end runs). */
export const faultForDuration = (millis: number, kind: FaultKind = "slowDown"): FaultPlan => {
  let windowStart: number | undefined
  return {
    kind,
    shouldFault: () => {
      windowStart ??= Date.now()
      return Date.now() - windowStart < millis
    }
  }
}

/** Forwards everything. */
export const noFaults: FaultPlan = { shouldFault: () => false }

const s3ErrorXml = (code: string, message: string, sequence: number) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>` +
  `<RequestId>fault-${sequence}</RequestId><HostId>fault-proxy</HostId></Error>`

/**
 * Starts an HTTP proxy on 127.0.0.1 (a free port) in front of `target` (e.g. `http://127.0.0.1:19000`).
 * Requests the plan selects are answered with a fault; the rest are forwarded byte for byte with their
 * Host header untouched, so SigV4 signatures made for the proxy's address still verify upstream.
 */
export const startFaultProxy = async (
  target: string,
  initialPlan: FaultPlan = noFaults
): Promise<FaultProxy> => {
  const upstream = new URL(target)
  let plan = initialPlan
  let sequence = 0
  let faultedCount = 0
  let forwardedCount = 0
  const sockets = new Set<NodeNet.Socket>()

  const answerFault = (
    request: NodeHttp.IncomingMessage,
    response: NodeHttp.ServerResponse,
    kind: FaultKind,
    current: number
  ) => {
    request.resume()
    request.on("end", () => {
      if (kind === "connectionReset") {
        request.socket.destroy()
        return
      }
      const [status, code, message] =
        kind === "slowDown"
          ? [503, "SlowDown", "Please reduce your request rate."]
          : [500, "InternalError", "We encountered an internal error. Please try again."]
      const body = s3ErrorXml(code, message, current)
      response.writeHead(status, {
        "content-type": "application/xml",
        "content-length": Buffer.byteLength(body),
        "x-amz-request-id": `fault-${current}`
      })
      response.end(body)
    })
  }

  const forward = (request: NodeHttp.IncomingMessage, response: NodeHttp.ServerResponse) => {
    const outgoing = NodeHttp.request(
      {
        protocol: upstream.protocol,
        hostname: upstream.hostname,
        port: upstream.port,
        method: request.method,
        path: request.url,
        headers: request.headers
      },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.statusMessage, answer.headers)
        answer.pipe(response)
      }
    )
    outgoing.on("error", () => {
      if (!response.headersSent) response.writeHead(502)
      response.end()
    })
    request.pipe(outgoing)
  }

  const server = NodeHttp.createServer((request, response) => {
    sequence += 1
    const current = sequence
    const proxied: ProxiedRequest = {
      sequence: current,
      method: request.method ?? "GET",
      url: request.url ?? "/"
    }
    if (plan.shouldFault(proxied)) {
      faultedCount += 1
      answerFault(request, response, plan.kind ?? "slowDown", current)
    } else {
      forwardedCount += 1
      forward(request, response)
    }
  })
  server.on("connection", (socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })
  const address = server.address()
  if (address === null || typeof address === "string") throw new Error("fault proxy has no TCP address")
  return {
    url: `http://127.0.0.1:${address.port}`,
    port: address.port,
    faulted: () => faultedCount,
    forwarded: () => forwardedCount,
    setPlan: (next) => {
      plan = next
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      })
  }
}

/** {@link startFaultProxy} as a scoped resource: stopped when the scope closes. */
export const acquireFaultProxy = (target: string, plan: FaultPlan = noFaults) =>
  Effect.acquireRelease(
    Effect.promise(() => startFaultProxy(target, plan)),
    (proxy) => Effect.promise(() => proxy.stop())
  )
