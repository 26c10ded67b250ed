import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"

/** What the fake partner does to one request instead of answering normally. */
export type PartnerFault = "500" | "429" | "401" | "garbage" | "wrong-shape" | "hang"

/**
 * A partner REST feed on a free loopback port: `GET /feed?limit=N[&cursor=C]` answers
 * `{ data, next_cursor, has_more }` over `records` with opaque cursors. Faults queued for a cursor are
 * served first, one per request for that cursor; a `hang` request is never answered.
 */
export interface FakePartner {
  readonly url: string
  readonly records: Array<unknown>
  readonly requests: Array<string>
  readonly fault: (cursor: string, ...faults: ReadonlyArray<PartnerFault>) => void
  readonly close: () => Promise<void>
}

const cursorOf = (position: number) => Buffer.from(`pos:${position}`).toString("base64url")
const positionOf = (cursor: string | null) =>
  cursor === null ? 0 : Number(Buffer.from(cursor, "base64url").toString().slice(4))

export const startFakePartner = async (
  records: Array<unknown>,
  token = "partner-token"
): Promise<FakePartner> => {
  const requests: Array<string> = []
  const faults = new Map<string, Array<PartnerFault>>()
  const hanging = new Set<import("node:http").ServerResponse>()
  const server: Server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://partner")
    const cursor = url.searchParams.get("cursor")
    requests.push(cursor ?? "")
    if (request.headers.authorization !== `Bearer ${token}`) {
      response.writeHead(401).end('{"error":"unauthorized"}')
      return
    }
    const fault = faults.get(cursor ?? "")?.shift()
    switch (fault) {
      case "hang":
        hanging.add(response)
        return
      case "500":
      case "429":
      case "401":
        response.writeHead(Number(fault), { "content-type": "application/json" }).end('{"error":"injected"}')
        return
      case "garbage":
        response.writeHead(200, { "content-type": "application/json" }).end('{"data": [')
        return
      case "wrong-shape":
        response.writeHead(200, { "content-type": "application/json" }).end('{"items": []}')
        return
    }
    const limit = Number(url.searchParams.get("limit") ?? "10")
    const start = positionOf(cursor)
    const data = records.slice(start, start + limit)
    const end = start + data.length
    response
      .writeHead(200, { "content-type": "application/json" })
      .end(JSON.stringify({ data, next_cursor: cursorOf(end), has_more: end < records.length }))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/feed`,
    records,
    requests,
    fault: (cursor, ...added) => faults.set(cursor, [...(faults.get(cursor) ?? []), ...added]),
    close: () =>
      new Promise((resolve) => {
        for (const response of hanging) response.destroy()
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

/** The cursor the fake partner hands out after `position` records. */
export const fakeCursor = cursorOf
