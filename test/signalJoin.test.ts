import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { FraudSignal, TransactionEvent } from "../src/domain/events.js"
import { SignalJoinWindow } from "../src/streams/signalJoin.js"
import { signalJson, transactionJson } from "./support/fixtures.js"

const event = (overrides: Record<string, unknown> = {}) =>
  Schema.decodeUnknownSync(TransactionEvent)(transactionJson(overrides))
const signal = (overrides: Record<string, unknown> = {}) =>
  Schema.decodeUnknownSync(FraudSignal)(signalJson(overrides))

describe("SignalJoinWindow", () => {
  it("joins a signal that arrives after its transaction at once", () => {
    const window = new SignalJoinWindow(3_600_000_000)
    assert.deepStrictEqual(window.addTransaction(event()), [])
    const [row] = window.addSignal(signal())
    assert.strictEqual(row?.arrival_order, "signal_after_transaction")
    assert.strictEqual(row?.merchant_id, "m-1")
    assert.strictEqual(row?.amount_minor, 1000)
  })

  it("joins a signal that arrives first when the transaction's first event comes, once", () => {
    const window = new SignalJoinWindow(3_600_000_000)
    assert.deepStrictEqual(window.addSignal(signal()), [])
    const rows = window.addTransaction(event())
    assert.deepStrictEqual(
      rows.map((row) => [row.signal_id, row.arrival_order]),
      [["s-1", "transaction_after_signal"]]
    )
    assert.deepStrictEqual(window.addTransaction(event({ event_id: "e-2", sequence: 1 })), [])
  })

  it("forgets what fell behind the watermark minus the window, so memory stays bounded", () => {
    const window = new SignalJoinWindow(1_000_000)
    window.addSignal(signal({ transaction_id: "t-old", event_time: "2026-11-24T10:00:00Z" }))
    window.addTransaction(event({ transaction_id: "t-2", event_time: "2026-11-24T10:00:00Z" }))
    assert.strictEqual(window.size, 2)
    window.evict(Date.UTC(2026, 10, 24, 10, 0, 2) * 1000)
    assert.strictEqual(window.size, 0)
    assert.deepStrictEqual(
      window.addTransaction(event({ transaction_id: "t-old" })),
      [],
      "the waiting signal expired"
    )
  })
})
