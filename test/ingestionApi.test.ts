import { createHmac } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import * as fc from "fast-check"
import { signRequest } from "../src/domain/apiAuth.js"
import { EventLogError } from "../src/domain/errors.js"
import { type EventLog, makeMemoryEventLog } from "../src/layers/EventLog.js"
import { makeMemoryIdempotencyStore } from "../src/layers/IdempotencyStore.js"
import { signalJson, transactionJson } from "./support/fixtures.js"
import {
  partnerId,
  partnerSecret,
  postSigned,
  postWithKey,
  type RunningApi,
  startIngestionApi,
  testApiKey,
  topicTexts
} from "./support/ingestionServer.js"

interface Problem {
  readonly field: string
  readonly reason: string
}
interface IngestBody {
  readonly _tag?: string
  readonly message?: string
  readonly accepted?: number
  readonly duplicates?: number
  readonly problems?: ReadonlyArray<Problem>
  readonly results?: ReadonlyArray<{
    index: number
    id?: string
    status: string
    problems?: ReadonlyArray<Problem>
  }>
}

const bodyOf = async (response: Response): Promise<IngestBody> => (await response.json()) as IngestBody

/** An embedded log whose produce calls wait until the gate opens, signalling when one starts waiting. */
const gatedLog = async (base: EventLog) => {
  const entered = await Effect.runPromise(Deferred.make<void>())
  const gate = await Effect.runPromise(Deferred.make<void>())
  const log: EventLog = {
    ...base,
    produce: (topic, messages) =>
      Deferred.succeed(entered, undefined).pipe(
        Effect.zipRight(Deferred.await(gate)),
        Effect.zipRight(base.produce(topic, messages))
      )
  }
  return {
    log,
    entered: () => Effect.runPromise(Deferred.await(entered)),
    open: () => Effect.runPromise(Deferred.succeed(gate, undefined))
  }
}

describe.each(["native", "platform"] as const)("served %s", (server) => {
  let api: RunningApi
  beforeAll(async () => {
    api = await startIngestionApi({ server, settings: { maxBodyBytes: 64 * 1024, maxRecordsPerRequest: 50 } })
  })
  afterAll(() => api.close())

  const transactionsUrl = () => `${api.url}/v1/transactions`
  const signalsUrl = () => `${api.url}/v1/fraud-signals`

  describe("ingestion API authentication", () => {
    it("refuses a request without credentials, naming what to send", async () => {
      const response = await fetch(transactionsUrl(), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(transactionJson({ event_id: "auth-none" }))
      })
      expect(response.status).toBe(401)
      expect((await bodyOf(response)).message).toContain("Authorization: Bearer")
      expect(await topicTexts(api.log, "transactions")).not.toContainEqual(
        expect.stringContaining("auth-none")
      )
    })

    it("refuses a wrong API key, by Bearer or X-Api-Key", async () => {
      const bearer = await postWithKey(transactionsUrl(), transactionJson({ event_id: "auth-wrong" }), {
        authorization: `Bearer ${testApiKey}x`
      })
      expect(bearer.status).toBe(401)
      expect((await bodyOf(bearer)).message).toBe("unknown API key")
      const header = await fetch(transactionsUrl(), {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": "rk_nope" },
        body: "{}"
      })
      expect(header.status).toBe(401)
    })

    it("accepts the key as Bearer token and as X-Api-Key", async () => {
      const bearer = await postWithKey(transactionsUrl(), transactionJson({ event_id: "auth-bearer" }))
      expect(bearer.status).toBe(202)
      const header = await fetch(transactionsUrl(), {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": testApiKey },
        body: JSON.stringify(transactionJson({ event_id: "auth-header" }))
      })
      expect(header.status).toBe(202)
    })

    it("accepts a partner's signed request once and refuses its replay", async () => {
      const body = JSON.stringify(signalJson({ signal_id: "sig-signed" }))
      const first = await postSigned(api.url, "/v1/fraud-signals", body)
      expect(first.status).toBe(202)
      const timestampSeconds = Math.floor(Date.now() / 1000)
      const signed = await postSigned(
        api.url,
        "/v1/fraud-signals",
        JSON.stringify(signalJson({ signal_id: "sig-2" })),
        {
          timestampSeconds
        }
      )
      expect(signed.status).toBe(202)
      const replay = await postSigned(
        api.url,
        "/v1/fraud-signals",
        JSON.stringify(signalJson({ signal_id: "sig-2" })),
        {
          timestampSeconds
        }
      )
      expect(replay.status).toBe(401)
      expect((await bodyOf(replay)).message).toContain("replayed")
    })

    it("checks a partner's signature over the bytes received, so a signed body that is not UTF-8 gets 422", async () => {
      const json = new TextEncoder().encode(JSON.stringify(signalJson({ signal_id: "sig-utf8-X" })))
      const bytes = Uint8Array.from(json, (byte) => (byte === 0x58 ? 0xff : byte))
      const timestampSeconds = Math.floor(Date.now() / 1000)
      const digest = createHmac("sha256", partnerSecret)
        .update(`${timestampSeconds}./v1/fraud-signals.`)
        .update(bytes)
        .digest("hex")
      const response = await fetch(`${api.url}/v1/fraud-signals`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-partner-id": partnerId,
          "x-signature": `t=${timestampSeconds},v1=${digest}`
        },
        body: new Blob([bytes])
      })
      expect(response.status).toBe(422)
      expect((await bodyOf(response)).problems).toEqual([
        { field: "(body)", reason: `not valid UTF-8: byte 0xff at byte ${json.indexOf(0x58) + 1}` }
      ])
    })

    it("refuses a signature made with the wrong secret, for another path, or for another body", async () => {
      const body = JSON.stringify(signalJson({ signal_id: "sig-bad" }))
      const wrongSecret = await postSigned(api.url, "/v1/fraud-signals", body, {
        secret: `${partnerSecret}!`
      })
      expect(wrongSecret.status).toBe(401)
      expect((await bodyOf(wrongSecret)).message).toBe("signature does not match")
      const otherPath = await postSigned(api.url, "/v1/fraud-signals", body, {
        signedPath: "/v1/transactions"
      })
      expect(otherPath.status).toBe(401)
      const tampered = await fetch(signalsUrl(), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-partner-id": "acme-partner",
          "x-signature": signRequest(partnerSecret, Math.floor(Date.now() / 1000), "/v1/fraud-signals", body)
        },
        body: body.replace("0.5", "0.1")
      })
      expect(tampered.status).toBe(401)
    })

    it("refuses a signature whose timestamp is outside the window either way, and a malformed header", async () => {
      const body = JSON.stringify(signalJson({ signal_id: "sig-old" }))
      const now = Math.floor(Date.now() / 1000)
      for (const timestampSeconds of [now - 600, now + 600]) {
        const response = await postSigned(api.url, "/v1/fraud-signals", body, { timestampSeconds })
        expect(response.status).toBe(401)
        expect((await bodyOf(response)).message).toContain("window 300 s")
      }
      const malformed = await fetch(signalsUrl(), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-partner-id": "acme-partner",
          "x-signature": "sha256=abc"
        },
        body
      })
      expect(malformed.status).toBe(401)
      expect((await bodyOf(malformed)).message).toContain("t=<unix seconds>")
    })
  })

  describe("ingestion API validation", () => {
    it.each([
      ["a missing event_id", { event_id: undefined }, "event_id", "is required"],
      ["a missing transaction_id", { transaction_id: undefined }, "transaction_id", "is required"],
      ["an event_id of 129 characters", { event_id: "e".repeat(129) }, "event_id", "128"],
      ["an empty user_id", { user_id: "" }, "user_id", ""],
      ["a negative sequence", { sequence: -1 }, "sequence", ""],
      ["a fractional sequence", { sequence: 1.5 }, "sequence", ""],
      ["event_time without offset", { event_time: "2026-11-24T10:00:00" }, "event_time", ""],
      ["event_time as a number", { event_time: 1 }, "event_time", "Expected string"],
      ["an unknown status", { status: "pending" }, "status", "must be one of"],
      ["a negative amount_minor", { amount_minor: -5 }, "amount_minor", "0 to 2^53-1"],
      ["a fractional amount_minor", { amount_minor: 12.5 }, "amount_minor", "0 to 2^53-1"],
      ["amount_minor above 2^53-1", { amount_minor: 2 ** 53 }, "amount_minor", "0 to 2^53-1"],
      ["amount_minor as a string", { amount_minor: "1000" }, "amount_minor", "Expected number"],
      ["a lower-case currency", { currency: "usd" }, "currency", ""],
      ["an unknown currency", { currency: "XYZ" }, "currency", ""],
      ["an unknown payment_method", { payment_method: "cash" }, "payment_method", "must be one of"],
      ["a 5-digit card_bin", { card_bin: "41111" }, "card_bin", ""],
      ["a card_last4 with letters", { card_last4: "12a4" }, "card_last4", ""],
      ["a bad country", { country: "USA" }, "country", ""],
      [
        "a missing processor_reference",
        { processor_reference: undefined },
        "processor_reference",
        "is required"
      ]
    ])("refuses %s with 422 naming the field", async (_name, overrides, field, reason) => {
      const record = transactionJson({ event_id: `v-${field}`, ...overrides })
      const response = await postWithKey(transactionsUrl(), record)
      expect(response.status).toBe(422)
      const body = await bodyOf(response)
      expect(body._tag).toBe("ValidationFailed")
      const problem = body.problems?.find((candidate) => candidate.field === field)
      expect(problem, JSON.stringify(body.problems)).toBeDefined()
      expect(problem?.reason).toContain(reason)
    })

    it.each([
      ["a score above 1", { score: 1.5 }, "score", "from 0 to 1"],
      ["an unknown source", { source: "gut_feeling" }, "source", "must be one of"],
      ["33 reasons", { reasons: Array.from({ length: 33 }, (_, i) => `r${i}`) }, "reasons", "32"],
      ["a non-string reason", { reasons: ["ok", 7] }, "reasons[1]", "Expected string"],
      ["confirmed_fraud as a string", { confirmed_fraud: "yes" }, "confirmed_fraud", ""],
      ["a missing transaction_id", { transaction_id: undefined }, "transaction_id", "is required"]
    ])("refuses a fraud signal with %s", async (_name, overrides, field, reason) => {
      const response = await postWithKey(signalsUrl(), signalJson({ signal_id: `v-${field}`, ...overrides }))
      expect(response.status).toBe(422)
      const problem = (await bodyOf(response)).problems?.find((candidate) => candidate.field === field)
      expect(problem).toBeDefined()
      expect(problem?.reason).toContain(reason)
    })

    it("refuses a whole batch when one record is bad, naming its index and field; nothing is sent", async () => {
      const before = (await topicTexts(api.log, "transactions")).length
      const response = await postWithKey(transactionsUrl(), [
        transactionJson({ event_id: "batch-ok" }),
        transactionJson({ event_id: "batch-bad", currency: "usd" }),
        42
      ])
      expect(response.status).toBe(422)
      const body = await bodyOf(response)
      expect(body.problems?.map((problem) => problem.field)).toEqual(["[1].currency", "[2]"])
      expect(body.results?.map((result) => result.status)).toEqual(["valid", "rejected", "rejected"])
      expect((await topicTexts(api.log, "transactions")).length).toBe(before)
    })

    it("dead-letters refused records with reason and source, never the card number", async () => {
      const pan = "4111111111111111"
      const response = await postWithKey(
        transactionsUrl(),
        transactionJson({ event_id: "with-pan", device_id: pan })
      )
      expect(response.status).toBe(422)
      const text = await response.text()
      expect(text).toContain("device_id")
      expect(text).toContain("card number")
      expect(text).not.toContain(pan)
      const deadLetters = await topicTexts(api.log, "transactions.dlq")
      const entry = deadLetters.find((letter) => letter.includes("with-pan"))
      expect(entry).toBeDefined()
      expect(entry).not.toContain(pan)
      expect(JSON.parse(entry ?? "{}")).toMatchObject({ dataset: "transactions", source: "http:ops:[0]" })
    })

    it("refuses a record with a card number as a field name and forwards it nowhere", async () => {
      const pan = "5555555555554444"
      const response = await postWithKey(transactionsUrl(), {
        ...transactionJson({ event_id: "pan-key" }),
        [pan]: "x"
      })
      expect(response.status).toBe(422)
      const text = await response.text()
      expect(text).toContain("(field name)")
      expect(text).not.toContain(pan)
      const everything = [
        ...(await topicTexts(api.log, "transactions")),
        ...(await topicTexts(api.log, "transactions.dlq"))
      ].join("\n")
      expect(everything).toContain("pan-key")
      expect(everything).not.toContain(pan)
    })

    it("refuses a body that is not UTF-8 with 422 naming the first bad byte, and sends nothing", async () => {
      const json = new TextEncoder().encode(JSON.stringify(transactionJson({ event_id: "e-utf8-X" })))
      const bad = Uint8Array.from(json, (byte) => (byte === 0x58 ? 0xff : byte))
      const response = await postWithKey(transactionsUrl(), bad)
      expect(response.status).toBe(422)
      expect((await bodyOf(response)).problems).toEqual([
        { field: "(body)", reason: `not valid UTF-8: byte 0xff at byte ${json.indexOf(0x58) + 1}` }
      ])
      expect(await topicTexts(api.log, "transactions")).not.toContain("e-utf8-")
    })

    it("refuses non-JSON, an empty array, a non-object, a wrong content type, too many records, a too large body", async () => {
      const notJson = await postWithKey(transactionsUrl(), "{not json")
      expect(notJson.status).toBe(422)
      expect((await bodyOf(notJson)).problems?.[0]?.field).toBe("(body)")
      const empty = await postWithKey(transactionsUrl(), [])
      expect(empty.status).toBe(422)
      const scalar = await postWithKey(transactionsUrl(), "7")
      expect(scalar.status).toBe(422)
      expect((await bodyOf(scalar)).problems).toEqual([
        { field: "(record)", reason: "must be a JSON object" }
      ])
      const text = await postWithKey(transactionsUrl(), JSON.stringify(transactionJson()), {
        "content-type": "text/plain"
      })
      expect(text.status).toBe(415)
      const many = await postWithKey(
        transactionsUrl(),
        Array.from({ length: 51 }, (_, i) => transactionJson({ event_id: `many-${i}` }))
      )
      expect(many.status).toBe(413)
      expect((await bodyOf(many)).message).toContain("at most 50")
      const large = await postWithKey(
        transactionsUrl(),
        transactionJson({ event_id: "large", note: "x".repeat(70_000) })
      )
      expect(large.status).toBe(413)
    })

    it("refuses a body streamed past the limit without Content-Length (413 natively), and answers other methods like the platform", async () => {
      const chunk = new TextEncoder().encode(`{"note":"${"x".repeat(16 * 1024)}`)
      let sent = 0
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent++ < 8) controller.enqueue(chunk)
          else controller.close()
        }
      })
      const streamed = fetch(transactionsUrl(), {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${testApiKey}` },
        body,
        duplex: "half"
      } as RequestInit)
      if (server === "native") {
        const refused = await streamed
        expect(refused.status).toBe(413)
        expect((await bodyOf(refused))._tag).toBe("PayloadTooLarge")
      } else {
        // The platform stops reading at its size limit and resets the connection without an answer.
        await expect(streamed).rejects.toThrow()
      }
      const get = await fetch(transactionsUrl(), { headers: { authorization: `Bearer ${testApiKey}` } })
      expect(get.status).toBe(404)
      await get.arrayBuffer()
      const withQuery = await postWithKey(
        `${transactionsUrl()}?source=test`,
        transactionJson({ event_id: "query-1" })
      )
      expect(withQuery.status).toBe(202)
    })

    it("never crashes and always answers 4xx for random bad payloads", async () => {
      const badRecord = fc.record(
        {
          event_id: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
          transaction_id: fc.anything(),
          sequence: fc.oneof(fc.integer({ min: -5, max: -1 }), fc.double(), fc.string()),
          event_time: fc.oneof(
            fc.string(),
            fc.date().map((date) => date.getTime())
          ),
          amount_minor: fc.oneof(fc.double(), fc.string(), fc.bigInt().map(String)),
          currency: fc.string()
        },
        { requiredKeys: [] }
      )
      const payload = fc.oneof(
        fc.anything().map((value) => JSON.stringify(value) ?? "null"),
        fc.string(),
        badRecord.map((record) => JSON.stringify(record)),
        fc.array(badRecord, { minLength: 1, maxLength: 5 }).map((records) => JSON.stringify(records)),
        fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes).toString("latin1"))
      )
      await fc.assert(
        fc.asyncProperty(
          payload,
          fc.constantFrom("/v1/transactions", "/v1/fraud-signals"),
          async (body, path) => {
            const response = await postWithKey(`${api.url}${path}`, body)
            await response.arrayBuffer()
            return response.status >= 400 && response.status < 500
          }
        ),
        { numRuns: 300, seed: 20261126 }
      )
      expect((await fetch(`${api.url}/healthz`)).status).toBe(200)
    })
  })

  describe("ingestion API idempotency", () => {
    it("accepts a retried record once: the retry is a duplicate and Kafka holds one copy", async () => {
      const record = transactionJson({ event_id: "idem-1", transaction_id: "t-idem" })
      const first = await postWithKey(transactionsUrl(), record)
      expect(await bodyOf(first)).toEqual({
        accepted: 1,
        duplicates: 0,
        results: [{ index: 0, id: "idem-1", status: "accepted" }]
      })
      const reordered = Object.fromEntries(Object.entries(record).reverse())
      const retry = await postWithKey(transactionsUrl(), reordered)
      expect(retry.status).toBe(202)
      expect(await bodyOf(retry)).toEqual({
        accepted: 0,
        duplicates: 1,
        results: [{ index: 0, id: "idem-1", status: "duplicate" }]
      })
      const copies = (await topicTexts(api.log, "transactions")).filter((text) => text.includes('"idem-1"'))
      expect(copies).toHaveLength(1)
    })

    it("refuses an id reused with different content (409) and sends nothing of that request", async () => {
      await postWithKey(signalsUrl(), signalJson({ signal_id: "idem-s" }))
      const response = await postWithKey(signalsUrl(), [
        signalJson({ signal_id: "idem-s2" }),
        signalJson({ signal_id: "idem-s", score: 0.9 })
      ])
      expect(response.status).toBe(409)
      expect((await bodyOf(response)).results?.map((result) => result.status)).toEqual([
        "accepted",
        "conflict"
      ])
      const texts = await topicTexts(api.log, "fraud_signals")
      expect(texts.filter((text) => text.includes('"idem-s2"'))).toHaveLength(0)
      const retried = await postWithKey(signalsUrl(), signalJson({ signal_id: "idem-s2" }))
      expect(retried.status).toBe(202)
      expect((await bodyOf(retried)).accepted).toBe(1)
    })

    it("sends a record repeated inside one request once", async () => {
      const record = transactionJson({ event_id: "idem-twice" })
      const response = await postWithKey(transactionsUrl(), [record, record])
      expect(await bodyOf(response)).toMatchObject({ accepted: 1, duplicates: 1 })
      expect(
        (await topicTexts(api.log, "transactions")).filter((text) => text.includes('"idem-twice"'))
      ).toHaveLength(1)
    })
  })

  describe("ingestion API under back-pressure and failures", () => {
    it("answers 429 with Retry-After while Kafka has not acknowledged earlier records, and accepts after", async () => {
      const gated = await gatedLog(await Effect.runPromise(makeMemoryEventLog(2)))
      const slow = await startIngestionApi({ server, log: gated.log, maxPendingRecords: 3 })
      try {
        const waiting = postWithKey(`${slow.url}/v1/transactions`, [
          transactionJson({ event_id: "bp-1" }),
          transactionJson({ event_id: "bp-2" })
        ])
        await gated.entered()
        const refused = await postWithKey(`${slow.url}/v1/transactions`, [
          transactionJson({ event_id: "bp-3" }),
          transactionJson({ event_id: "bp-4" })
        ])
        expect(refused.status).toBe(429)
        expect(refused.headers.get("retry-after")).toBe("1")
        expect((await bodyOf(refused))._tag).toBe("TooManyRequests")
        await gated.open()
        expect((await waiting).status).toBe(202)
        const retried = await postWithKey(`${slow.url}/v1/transactions`, [
          transactionJson({ event_id: "bp-3" }),
          transactionJson({ event_id: "bp-4" })
        ])
        expect(retried.status).toBe(202)
        expect(await topicTexts(slow.log, "transactions")).toHaveLength(4)
      } finally {
        await slow.close()
      }
    })

    it("answers 500 when the idempotency store breaks, and logs the cause without the card number in it", async () => {
      const pan = "4111111111111111"
      const logLines: Array<string> = []
      const broken = await startIngestionApi({
        server,
        logLines,
        idempotency: {
          ...makeMemoryIdempotencyStore(),
          claim: () => Effect.die(new Error(`store bug while holding ${pan}`))
        }
      })
      try {
        const response = await postWithKey(
          `${broken.url}/v1/transactions`,
          transactionJson({ event_id: "broken-1" })
        )
        expect(response.status).toBe(500)
        await response.arrayBuffer()
        const logged = logLines.join("\n")
        if (server === "native") expect(logged).toContain("ingestion request failed")
        expect(logged).not.toContain(pan)
      } finally {
        await broken.close()
      }
    })

    it("finishes a request waiting for Kafka before it stops", async () => {
      const gated = await gatedLog(await Effect.runPromise(makeMemoryEventLog(2)))
      const stopping = await startIngestionApi({ server, log: gated.log })
      const waiting = postWithKey(`${stopping.url}/v1/transactions`, transactionJson({ event_id: "drain-1" }))
      await gated.entered()
      let closed = false
      const closing = stopping.close().then(() => {
        closed = true
      })
      await new Promise((resolve) => setImmediate(resolve))
      expect(closed).toBe(false)
      await gated.open()
      const answer = await waiting
      expect(answer.status).toBe(202)
      expect((await bodyOf(answer)).accepted).toBe(1)
      await closing
      expect(await topicTexts(gated.log, "transactions")).toHaveLength(1)
    })

    it("answers 503 when Kafka fails, and the retry is accepted (the ids were released)", async () => {
      const base = await Effect.runPromise(makeMemoryEventLog(2))
      let failures = 1
      const flaky: EventLog = {
        ...base,
        produce: (topic, messages) =>
          failures-- > 0
            ? Effect.fail(new EventLogError({ operation: "produce", cause: "broker not available" }))
            : base.produce(topic, messages)
      }
      const flakyApi = await startIngestionApi({ server, log: flaky })
      try {
        const record = transactionJson({ event_id: "flaky-1" })
        const failed = await postWithKey(`${flakyApi.url}/v1/transactions`, record)
        expect(failed.status).toBe(503)
        expect(failed.headers.get("retry-after")).toBe("5")
        const retried = await postWithKey(`${flakyApi.url}/v1/transactions`, record)
        expect(retried.status).toBe(202)
        expect((await bodyOf(retried)).accepted).toBe(1)
        expect(await topicTexts(base, "transactions")).toHaveLength(1)
      } finally {
        await flakyApi.close()
      }
    })
  })

  describe("ingestion API documents", () => {
    it("serves an OpenAPI document with both routes", async () => {
      const response = await fetch(`${api.url}/openapi.json`)
      expect(response.status).toBe(200)
      const document = (await response.json()) as { paths: Record<string, unknown> }
      expect(Object.keys(document.paths)).toEqual(
        expect.arrayContaining(["/v1/transactions", "/v1/fraud-signals"])
      )
    })
  })
})
