import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import * as fc from "fast-check"
import { Merchant, User } from "../src/domain/events.js"
import {
  buildFinalAggregate,
  type DimensionTables,
  type FraudSignalFacts,
  type TransactionEventFacts
} from "../src/domain/finalAggregate.js"
import type { FinalAggregateRow } from "../src/domain/rows.js"
import { parseRfc3339ToMicros } from "../src/domain/time.js"

const at = (text: string): number => {
  const micros = parseRfc3339ToMicros(text)
  if (Number.isNaN(micros)) throw new Error(`bad test timestamp ${text}`)
  return micros
}

const event = (
  fields: Partial<TransactionEventFacts> & Pick<TransactionEventFacts, "event_id">
): TransactionEventFacts => ({
  transaction_id: "tx-1",
  sequence: 1,
  event_time: at("2026-11-24T10:00:00Z"),
  status: "authorized",
  amount_minor: 1000,
  currency: "USD",
  user_id: "u-1",
  merchant_id: "m-1",
  payment_method: "card",
  card_bin: "411111",
  card_last4: "1111",
  processor: "adyen",
  processor_reference: "psp-1",
  country: "DE",
  device_id: null,
  ...fields
})

const signal = (
  fields: Partial<FraudSignalFacts> & Pick<FraudSignalFacts, "signal_id">
): FraudSignalFacts => ({
  transaction_id: "tx-1",
  event_time: at("2026-11-24T10:00:00Z"),
  source: "rules",
  score: 0.5,
  reasons: [],
  confirmed_fraud: null,
  ...fields
})

const noDimensions: DimensionTables = { users: new Map(), merchants: new Map() }

const decodeUser = Schema.decodeUnknownSync(User)
const decodeMerchant = Schema.decodeUnknownSync(Merchant)

const dimensions: DimensionTables = {
  users: new Map([
    [
      "u-1",
      decodeUser({
        user_id: "u-1",
        created_at: "2025-01-31T08:00:00-05:00",
        country: "US",
        kyc_level: "full",
        risk_tier: "high"
      })
    ]
  ]),
  merchants: new Map([
    [
      "m-1",
      decodeMerchant({
        merchant_id: "m-1",
        name: "Café 東京 Кафе",
        mcc: "5812",
        country: "JP",
        risk_level: "medium",
        settlement_currency: "JPY"
      })
    ]
  ])
}

const onlyRow = (rows: ReadonlyArray<FinalAggregateRow>): FinalAggregateRow => {
  expect(rows).toHaveLength(1)
  return rows[0]!
}

const rowFor = (rows: ReadonlyArray<FinalAggregateRow>, transactionId: string): FinalAggregateRow => {
  const matching = rows.filter((row) => row.transaction_id === transactionId)
  expect(matching).toHaveLength(1)
  return matching[0]!
}

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
const seededRandom = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let mixed = state
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1)
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61)
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4_294_967_296
  }
}

const seededShuffle = <A>(items: ReadonlyArray<A>, seed: number): Array<A> => {
  const random = seededRandom(seed)
  const shuffled = [...items]
  for (let index = shuffled.length - 1; index > 0; index--) {
    const other = Math.floor(random() * (index + 1))
    ;[shuffled[index], shuffled[other]] = [shuffled[other]!, shuffled[index]!]
  }
  return shuffled
}

const both = <A>(items: ReadonlyArray<A>): Array<Array<A>> => [[...items], [...items].reverse()]

describe("which event wins: the latest state", () => {
  it("is the event with the highest sequence", () => {
    const events = [
      event({ event_id: "e1", sequence: 1, status: "authorized", amount_minor: 1000 }),
      event({
        event_id: "e3",
        sequence: 3,
        event_time: at("2026-11-24T10:02:00Z"),
        status: "settled",
        amount_minor: 900
      }),
      event({ event_id: "e2", sequence: 2, event_time: at("2026-11-24T10:01:00Z"), status: "captured" })
    ]
    for (const order of both(events)) {
      const row = onlyRow(buildFinalAggregate(order, [], noDimensions))
      expect(row.status).toBe("settled")
      expect(row.sequence).toBe(3)
      expect(row.amount_minor).toBe(900)
    }
  })

  it("is the higher sequence even when its event_time is earlier", () => {
    const events = [
      event({
        event_id: "late-clock",
        sequence: 5,
        event_time: at("2026-11-24T09:00:00Z"),
        status: "refunded"
      }),
      event({ event_id: "early-seq", sequence: 4, event_time: at("2026-11-24T12:00:00Z"), status: "settled" })
    ]
    for (const order of both(events)) {
      const row = onlyRow(buildFinalAggregate(order, [], noDimensions))
      expect(row.status).toBe("refunded")
      expect(row.sequence).toBe(5)
    }
  })

  it("falls back to the later event_time when sequences tie", () => {
    const events = [
      event({ event_id: "b", sequence: 2, event_time: at("2026-11-24T10:05:00Z"), status: "captured" }),
      event({ event_id: "a", sequence: 2, event_time: at("2026-11-24T10:05:00.000001Z"), status: "voided" })
    ]
    for (const order of both(events)) {
      expect(onlyRow(buildFinalAggregate(order, [], noDimensions)).status).toBe("voided")
    }
  })

  it("falls back to the greater event_id when sequence and event_time tie", () => {
    const events = [
      event({ event_id: "evt-A", sequence: 2, status: "captured" }),
      event({ event_id: "evt-B", sequence: 2, status: "declined" }),
      event({ event_id: "evt-10", sequence: 2, status: "voided" })
    ]
    for (const order of both(events)) {
      expect(onlyRow(buildFinalAggregate(order, [], noDimensions)).status).toBe("declined")
    }
  })

  it("orders event_ids by code point, not by locale or UTF-16 unit", () => {
    // "z" < "é" (U+00E9) < "\uFF21" (U+FF21) < "😀" (U+1F600), but in UTF-16 units the emoji (0xD83D) sorts before U+FF21.
    const events = [
      event({ event_id: "z", sequence: 7, status: "authorized" }),
      event({ event_id: "é", sequence: 7, status: "captured" }),
      event({ event_id: "\uFF21", sequence: 7, status: "settled" }),
      event({ event_id: "😀", sequence: 7, status: "chargeback" })
    ]
    for (const seed of [1, 2, 3, 4]) {
      expect(onlyRow(buildFinalAggregate(seededShuffle(events, seed), [], noDimensions)).status).toBe(
        "chargeback"
      )
    }
    const withoutEmoji = events.slice(0, 3)
    expect(onlyRow(buildFinalAggregate(withoutEmoji.reverse(), [], noDimensions)).status).toBe("settled")
  })

  it("supplies every latest-state column from the winning event", () => {
    const first = event({ event_id: "e1", sequence: 1 })
    const latest = event({
      event_id: "e2",
      sequence: 2,
      status: "captured",
      amount_minor: 777,
      currency: "JPY",
      user_id: "u-2",
      merchant_id: "m-2",
      payment_method: "wallet",
      card_bin: null,
      card_last4: null,
      processor: "stripe",
      processor_reference: "psp-2",
      country: null
    })
    for (const order of both([first, latest])) {
      expect(onlyRow(buildFinalAggregate(order, [], noDimensions))).toMatchObject({
        transaction_id: "tx-1",
        status: "captured",
        sequence: 2,
        amount_minor: 777,
        currency: "JPY",
        user_id: "u-2",
        merchant_id: "m-2",
        payment_method: "wallet",
        card_bin: null,
        card_last4: null,
        processor: "stripe",
        processor_reference: "psp-2",
        country: null
      })
    }
  })
})

describe("duplicates by event_id", () => {
  it("count once and change no column", () => {
    const events = [
      event({ event_id: "e1", sequence: 1 }),
      event({ event_id: "e2", sequence: 2, event_time: at("2026-11-24T11:00:00Z"), status: "captured" })
    ]
    const once = buildFinalAggregate(events, [], dimensions)
    const thrice = buildFinalAggregate([...events, ...events, events[0]!], [], dimensions)
    expect(onlyRow(once).event_count).toBe(2)
    expect(thrice).toEqual(once)
  })

  it("arriving from two sources (stream and batch) count once", () => {
    const fromStream = {
      ...event({ event_id: "e1" }),
      ingest_path: "stream",
      source_location: "transactions/0/17"
    }
    const fromBatch = { ...event({ event_id: "e1" }), ingest_path: "batch", source_location: "raw/x.jsonl:3" }
    const row = onlyRow(buildFinalAggregate([fromStream, fromBatch], [], noDimensions))
    expect(row.event_count).toBe(1)
    expect(row).toEqual(onlyRow(buildFinalAggregate([event({ event_id: "e1" })], [], noDimensions)))
  })

  it("whose content differs are resolved the same way whatever the input order", () => {
    const events = [
      event({ event_id: "e1", sequence: 1, status: "authorized" }),
      event({ event_id: "e2", sequence: 2, status: "captured", amount_minor: 1000 }),
      event({ event_id: "e2", sequence: 2, status: "captured", amount_minor: 1001 }),
      event({ event_id: "e2", sequence: 2, status: "settled", amount_minor: 1000 }),
      event({ event_id: "e3", sequence: 2, status: "voided", event_time: at("2026-11-24T09:00:00Z") }),
      event({ event_id: "e3", sequence: 2, status: "voided", event_time: at("2026-11-24T11:00:00Z") }),
      event({ event_id: "e4", transaction_id: "tx-2", processor_reference: "a" }),
      event({ event_id: "e4", transaction_id: "tx-2", processor_reference: "b" })
    ]
    const reference = buildFinalAggregate(events, [], noDimensions)
    expect(reference).toHaveLength(2)
    expect(rowFor(reference, "tx-1").event_count).toBe(3)
    expect(rowFor(reference, "tx-2").event_count).toBe(1)
    for (let seed = 1; seed <= 50; seed++) {
      expect(buildFinalAggregate(seededShuffle(events, seed), [], noDimensions)).toEqual(reference)
    }
  })
})

describe("extension columns", () => {
  it("first_amount_minor, first_currency and device_id come from the earliest event, not the latest state", () => {
    const events = [
      event({
        event_id: "e2",
        sequence: 2,
        status: "partially_refunded",
        amount_minor: 250,
        device_id: "d-2"
      }),
      event({
        event_id: "e1",
        sequence: 1,
        event_time: at("2026-11-24T09:59:59Z"),
        amount_minor: 1000,
        currency: "JPY",
        device_id: "d-1"
      }),
      event({ event_id: "e0", sequence: 0, amount_minor: 7, device_id: "d-0" })
    ]
    for (const order of both(events)) {
      const row = onlyRow(buildFinalAggregate(order, [], noDimensions))
      expect([row.amount_minor, row.first_amount_minor, row.first_currency, row.device_id]).toEqual([
        250,
        1000,
        "JPY",
        "d-1"
      ])
    }
    // Same instant: the first in contract order (sequence 0) is the earliest.
    const tied = onlyRow(buildFinalAggregate([events[0]!, events[2]!], [], noDimensions))
    expect([tied.first_amount_minor, tied.device_id]).toEqual([7, "d-0"])
  })

  it("fraud_prior_signal_max_score keeps only non-label signals timed at or before the first event", () => {
    const first = at("2026-11-24T10:00:00Z")
    const signals = [
      signal({ signal_id: "s-partner-before", source: "partner", score: 0.4, event_time: first - 1 }),
      signal({ signal_id: "s-rules-at", source: "rules", score: 0.3, event_time: first }),
      signal({ signal_id: "s-model-after", source: "model", score: 0.9, event_time: first + 1 }),
      signal({ signal_id: "s-chargeback", source: "chargeback", score: 1, event_time: first - 5 }),
      signal({
        signal_id: "s-confirmed",
        source: "partner",
        score: 0.95,
        event_time: first - 5,
        confirmed_fraud: true
      })
    ]
    for (const order of both(signals)) {
      const row = onlyRow(
        buildFinalAggregate([event({ event_id: "e1", event_time: first })], order, noDimensions)
      )
      expect(row.fraud_prior_signal_max_score).toBe(0.4)
      expect(row.fraud_max_score).toBe(1)
    }
    const none = onlyRow(
      buildFinalAggregate([event({ event_id: "e1", event_time: first })], [signals[2]!], noDimensions)
    )
    expect(none.fraud_prior_signal_max_score).toBeNull()
  })
})

describe("first_event_time and last_event_time", () => {
  it("are the min and max event_time, independent of sequence", () => {
    const events = [
      event({ event_id: "e1", sequence: 1, event_time: at("2026-11-24T10:00:00Z") }),
      event({ event_id: "e2", sequence: 2, event_time: at("2026-11-24T08:00:00.000001Z") }),
      event({ event_id: "e3", sequence: 3, event_time: at("2026-11-24T09:00:00Z") }),
      event({ event_id: "e4", sequence: 0, event_time: at("2026-11-25T01:00:00+05:30") })
    ]
    for (const order of both(events)) {
      const row = onlyRow(buildFinalAggregate(order, [], noDimensions))
      expect(row.first_event_time).toBe(at("2026-11-24T08:00:00.000001Z"))
      expect(row.last_event_time).toBe(at("2026-11-24T19:30:00Z"))
    }
  })

  it("are equal for a single event", () => {
    const row = onlyRow(buildFinalAggregate([event({ event_id: "e1" })], [], noDimensions))
    expect(row.first_event_time).toBe(at("2026-11-24T10:00:00Z"))
    expect(row.last_event_time).toBe(at("2026-11-24T10:00:00Z"))
  })
})

describe("lifecycle timestamps", () => {
  it("are the earliest event_time with each status, null when absent", () => {
    const events = [
      event({ event_id: "a2", sequence: 2, status: "authorized", event_time: at("2026-11-24T10:00:05Z") }),
      event({ event_id: "a1", sequence: 1, status: "authorized", event_time: at("2026-11-24T10:00:00Z") }),
      event({ event_id: "c1", sequence: 3, status: "captured", event_time: at("2026-11-24T10:01:00Z") }),
      event({ event_id: "c2", sequence: 4, status: "captured", event_time: at("2026-11-24T09:59:00Z") })
    ]
    for (const order of both(events)) {
      const row = onlyRow(buildFinalAggregate(order, [], noDimensions))
      expect(row.authorized_at).toBe(at("2026-11-24T10:00:00Z"))
      expect(row.captured_at).toBe(at("2026-11-24T09:59:00Z"))
      expect(row.settled_at).toBeNull()
      expect(row.refunded_at).toBeNull()
      expect(row.chargeback_at).toBeNull()
    }
  })

  it("fill settled_at and chargeback_at; voided and declined set none of them", () => {
    const events = [
      event({ event_id: "s", sequence: 2, status: "settled", event_time: at("2026-11-25T00:00:00Z") }),
      event({ event_id: "cb", sequence: 3, status: "chargeback", event_time: at("2026-12-01T00:00:00Z") }),
      event({ event_id: "v", sequence: 4, status: "voided", event_time: at("2026-12-02T00:00:00Z") }),
      event({ event_id: "d", sequence: 5, status: "declined", event_time: at("2026-12-03T00:00:00Z") })
    ]
    const row = onlyRow(buildFinalAggregate(events, [], noDimensions))
    expect(row.authorized_at).toBeNull()
    expect(row.captured_at).toBeNull()
    expect(row.settled_at).toBe(at("2026-11-25T00:00:00Z"))
    expect(row.chargeback_at).toBe(at("2026-12-01T00:00:00Z"))
    expect(row.refunded_at).toBeNull()
    expect(row.status).toBe("declined")
  })

  it("count partially_refunded as refunded_at", () => {
    const partial = event({
      event_id: "p",
      sequence: 2,
      status: "partially_refunded",
      event_time: at("2026-11-26T00:00:00Z")
    })
    const full = event({
      event_id: "r",
      sequence: 3,
      status: "refunded",
      event_time: at("2026-11-27T00:00:00Z")
    })
    expect(onlyRow(buildFinalAggregate([partial], [], noDimensions)).refunded_at).toBe(
      at("2026-11-26T00:00:00Z")
    )
    expect(onlyRow(buildFinalAggregate([full, partial], [], noDimensions)).refunded_at).toBe(
      at("2026-11-26T00:00:00Z")
    )
    const fullFirst = { ...full, event_time: at("2026-11-25T00:00:00Z") }
    expect(onlyRow(buildFinalAggregate([partial, fullFirst], [], noDimensions)).refunded_at).toBe(
      at("2026-11-25T00:00:00Z")
    )
  })
})

describe("dt partition", () => {
  it("is the UTC date of the earliest event_time", () => {
    const row = onlyRow(
      buildFinalAggregate(
        [event({ event_id: "e1", event_time: at("2026-11-24T01:00:00+05:30") })],
        [],
        noDimensions
      )
    )
    expect(row.dt).toBe("2026-11-23")
  })

  it("comes from the earliest event, not the latest state", () => {
    const events = [
      event({ event_id: "e1", sequence: 1, event_time: at("2026-11-30T23:59:59.999999Z") }),
      event({ event_id: "e2", sequence: 2, event_time: at("2026-12-01T00:00:00Z"), status: "captured" })
    ]
    expect(onlyRow(buildFinalAggregate(events, [], noDimensions)).dt).toBe("2026-11-30")
  })

  it("moves the row when an earlier event turns up later, leaving exactly one row", () => {
    const other = event({ event_id: "x1", transaction_id: "tx-0", event_time: at("2026-11-24T12:00:00Z") })
    const original = event({
      event_id: "e2",
      sequence: 2,
      event_time: at("2026-11-24T00:30:00Z"),
      status: "captured"
    })
    const before = buildFinalAggregate([other, original], [], noDimensions)
    expect(rowFor(before, "tx-1").dt).toBe("2026-11-24")

    const earlier = event({ event_id: "e1", sequence: 1, event_time: at("2026-11-24T01:00:00+05:30") })
    const after = buildFinalAggregate([other, original, earlier], [], noDimensions)
    expect(after).toHaveLength(2)
    const moved = rowFor(after, "tx-1")
    expect(moved.dt).toBe("2026-11-23")
    expect(moved.first_event_time).toBe(at("2026-11-23T19:30:00Z"))
    expect(moved.status).toBe("captured")
    expect(moved.event_count).toBe(2)
    expect(after.map((row) => [row.dt, row.transaction_id])).toEqual([
      ["2026-11-23", "tx-1"],
      ["2026-11-24", "tx-0"]
    ])
  })
})

describe("fraud roll-up", () => {
  const events = [event({ event_id: "e1" })]

  it("counts distinct signal_ids, takes the max score and the distinct sorted reasons", () => {
    const signals = [
      signal({ signal_id: "s1", score: 0.2, reasons: ["velocity", "geo_mismatch"] }),
      signal({ signal_id: "s2", score: 0.91, reasons: ["velocity", "Bin_risk", "ávila"] }),
      signal({ signal_id: "s1", score: 0.2, reasons: ["velocity", "geo_mismatch"] }),
      signal({ signal_id: "s3", score: 0.4, reasons: [] })
    ]
    for (const order of both(signals)) {
      const row = onlyRow(buildFinalAggregate(events, order, noDimensions))
      expect(row.fraud_signal_count).toBe(3)
      expect(row.fraud_max_score).toBe(0.91)
      expect(row.fraud_reasons).toEqual(["Bin_risk", "geo_mismatch", "velocity", "ávila"])
      expect(row.confirmed_fraud).toBe(false)
    }
  })

  it("has a null max score, no reasons, count 0 and confirmed_fraud false without signals", () => {
    const row = onlyRow(buildFinalAggregate(events, [], noDimensions))
    expect(row.fraud_signal_count).toBe(0)
    expect(row.fraud_max_score).toBeNull()
    expect(row.fraud_reasons).toEqual([])
    expect(row.confirmed_fraud).toBe(false)
  })

  it("keeps a max score of 0 as 0, not null", () => {
    const row = onlyRow(buildFinalAggregate(events, [signal({ signal_id: "s1", score: 0 })], noDimensions))
    expect(row.fraud_max_score).toBe(0)
  })

  it("confirms fraud when any signal says true", () => {
    const signals = [
      signal({ signal_id: "s1", confirmed_fraud: false }),
      signal({ signal_id: "s2", confirmed_fraud: true, score: 0.1 }),
      signal({ signal_id: "s3", confirmed_fraud: null })
    ]
    for (const order of both(signals)) {
      expect(onlyRow(buildFinalAggregate(events, order, noDimensions)).confirmed_fraud).toBe(true)
    }
  })

  it("treats null and false confirmed_fraud as false", () => {
    const signals = [
      signal({ signal_id: "s1", confirmed_fraud: null }),
      signal({ signal_id: "s2", confirmed_fraud: false })
    ]
    expect(onlyRow(buildFinalAggregate(events, signals, noDimensions)).confirmed_fraud).toBe(false)
    const onlyNull = [signal({ signal_id: "s1", confirmed_fraud: null })]
    expect(onlyRow(buildFinalAggregate(events, onlyNull, noDimensions)).confirmed_fraud).toBe(false)
  })

  it("does not create a row for orphan signals", () => {
    const rows = buildFinalAggregate(
      events,
      [signal({ signal_id: "s9", transaction_id: "tx-unknown" })],
      noDimensions
    )
    expect(rows.map((row) => row.transaction_id)).toEqual(["tx-1"])
    expect(rows[0]!.fraud_signal_count).toBe(0)
    expect(buildFinalAggregate([], [signal({ signal_id: "s9" })], noDimensions)).toEqual([])
  })

  it("attaches signals to the right transaction whatever the order of events and signals", () => {
    const allEvents = [
      event({ event_id: "e1", transaction_id: "tx-1" }),
      event({ event_id: "e2", transaction_id: "tx-2" }),
      event({ event_id: "e3", transaction_id: "tx-1", sequence: 2, status: "captured" })
    ]
    const signals = [
      signal({ signal_id: "s1", transaction_id: "tx-2", score: 0.3, reasons: ["b"] }),
      signal({ signal_id: "s2", transaction_id: "tx-1", score: 0.8, reasons: ["a"], confirmed_fraud: true }),
      signal({ signal_id: "s3", transaction_id: "tx-2", score: 0.6, reasons: ["c", "b"] }),
      signal({ signal_id: "s4", transaction_id: "tx-3", score: 1 })
    ]
    const reference = buildFinalAggregate(allEvents, signals, noDimensions)
    expect(rowFor(reference, "tx-1")).toMatchObject({
      fraud_signal_count: 1,
      fraud_max_score: 0.8,
      fraud_reasons: ["a"],
      confirmed_fraud: true
    })
    expect(rowFor(reference, "tx-2")).toMatchObject({
      fraud_signal_count: 2,
      fraud_max_score: 0.6,
      fraud_reasons: ["b", "c"],
      confirmed_fraud: false
    })
    for (let seed = 1; seed <= 20; seed++) {
      expect(
        buildFinalAggregate(seededShuffle(allEvents, seed), seededShuffle(signals, seed + 100), noDimensions)
      ).toEqual(reference)
    }
  })

  it("resolves a duplicate signal_id whose content differs independently of order", () => {
    const signals = [
      signal({ signal_id: "s1", score: 0.2, reasons: ["a"] }),
      signal({ signal_id: "s1", score: 0.7, reasons: ["b"], confirmed_fraud: true }),
      signal({ signal_id: "s1", score: 0.7, reasons: ["c"] }),
      signal({ signal_id: "s2", score: 0.1 })
    ]
    const reference = onlyRow(buildFinalAggregate(events, signals, noDimensions))
    expect(reference.fraud_signal_count).toBe(2)
    expect(reference.confirmed_fraud).toBe(true)
    expect(reference.fraud_max_score).toBe(0.7)
    expect(reference.fraud_reasons).toEqual(["a", "b", "c"])
    for (let seed = 1; seed <= 30; seed++) {
      expect(onlyRow(buildFinalAggregate(events, seededShuffle(signals, seed), noDimensions))).toEqual(
        reference
      )
    }
  })
})

describe("dimensions", () => {
  it("fill the user and merchant columns of known ids, keeping non-Latin names intact", () => {
    const row = onlyRow(buildFinalAggregate([event({ event_id: "e1" })], [], dimensions))
    expect(row).toMatchObject({
      user_country: "US",
      user_kyc_level: "full",
      user_risk_tier: "high",
      user_created_at: at("2025-01-31T13:00:00Z"),
      merchant_name: "Café 東京 Кафе",
      merchant_mcc: "5812",
      merchant_country: "JP",
      merchant_risk_level: "medium"
    })
  })

  it("keep the row with null columns when the user or merchant is unknown", () => {
    const rows = buildFinalAggregate(
      [
        event({ event_id: "e1", transaction_id: "tx-unknown-user", user_id: "u-404" }),
        event({ event_id: "e2", transaction_id: "tx-unknown-merchant", merchant_id: "m-404" })
      ],
      [],
      dimensions
    )
    expect(rows).toHaveLength(2)
    expect(rowFor(rows, "tx-unknown-user")).toMatchObject({
      user_country: null,
      user_kyc_level: null,
      user_risk_tier: null,
      user_created_at: null,
      merchant_name: "Café 東京 Кафе",
      merchant_mcc: "5812"
    })
    expect(rowFor(rows, "tx-unknown-merchant")).toMatchObject({
      user_country: "US",
      merchant_name: null,
      merchant_mcc: null,
      merchant_country: null,
      merchant_risk_level: null
    })
  })

  it("join on the user and merchant of the latest state", () => {
    const events = [
      event({ event_id: "e1", sequence: 1, user_id: "u-1", merchant_id: "m-1" }),
      event({ event_id: "e2", sequence: 2, user_id: "u-404", merchant_id: "m-404" })
    ]
    const row = onlyRow(buildFinalAggregate(events, [], dimensions))
    expect(row.user_country).toBeNull()
    expect(row.merchant_name).toBeNull()
  })
})

describe("rows", () => {
  it("are one per transaction_id, sorted by (dt, transaction_id)", () => {
    const events = [
      event({ event_id: "1", transaction_id: "b", event_time: at("2026-11-24T00:00:00Z") }),
      event({ event_id: "2", transaction_id: "a", event_time: at("2026-11-25T00:00:00Z") }),
      event({ event_id: "3", transaction_id: "c", event_time: at("2026-11-24T05:00:00Z") }),
      event({ event_id: "4", transaction_id: "a", event_time: at("2026-11-25T01:00:00Z"), sequence: 2 }),
      event({ event_id: "5", transaction_id: "B", event_time: at("2026-11-24T06:00:00Z") })
    ]
    const expected = [
      ["2026-11-24", "B"],
      ["2026-11-24", "b"],
      ["2026-11-24", "c"],
      ["2026-11-25", "a"]
    ]
    for (let seed = 1; seed <= 10; seed++) {
      const rows = buildFinalAggregate(seededShuffle(events, seed), [], noDimensions)
      expect(rows.map((row) => [row.dt, row.transaction_id])).toEqual(expected)
    }
  })

  it("keep money exact at 2^53-1", () => {
    const row = onlyRow(
      buildFinalAggregate(
        [event({ event_id: "e1", amount_minor: Number.MAX_SAFE_INTEGER })],
        [],
        noDimensions
      )
    )
    expect(row.amount_minor).toBe(9_007_199_254_740_991)
    expect(Number.isSafeInteger(row.amount_minor)).toBe(true)
  })

  it("are empty without events", () => {
    expect(buildFinalAggregate([], [], dimensions)).toEqual([])
  })

  it("accept any iterable", () => {
    function* events() {
      yield event({ event_id: "e1" })
      yield event({ event_id: "e2", sequence: 2 })
    }
    function* signals() {
      yield signal({ signal_id: "s1" })
    }
    const row = onlyRow(buildFinalAggregate(events(), signals(), noDimensions))
    expect(row.event_count).toBe(2)
    expect(row.fraud_signal_count).toBe(1)
  })
})

describe("property: order and duplication of inputs do not matter", () => {
  const statuses = [
    "authorized",
    "captured",
    "settled",
    "refunded",
    "partially_refunded",
    "voided",
    "declined",
    "chargeback"
  ]
  const baseTime = at("2026-11-23T22:00:00Z")

  const eventArbitrary: fc.Arbitrary<TransactionEventFacts> = fc.record({
    event_id: fc.constantFrom("e1", "e2", "e3", "e4", "e5", "é", "😀"),
    transaction_id: fc.constantFrom("tx-1", "tx-2", "tx-3"),
    sequence: fc.integer({ min: 0, max: 3 }),
    event_time: fc.integer({ min: 0, max: 4 }).map((hours) => baseTime + hours * 3_600_000_000),
    status: fc.constantFrom(...statuses),
    amount_minor: fc.constantFrom(0, 1, 1000, Number.MAX_SAFE_INTEGER),
    currency: fc.constantFrom("USD", "JPY", "KWD"),
    user_id: fc.constantFrom("u-1", "u-2"),
    merchant_id: fc.constantFrom("m-1", "m-2"),
    payment_method: fc.constantFrom("card", "wallet"),
    card_bin: fc.constantFrom(null, "411111"),
    card_last4: fc.constantFrom(null, "1111"),
    processor: fc.constantFrom("adyen", "stripe"),
    processor_reference: fc.constantFrom("psp-1", "psp-2"),
    country: fc.constantFrom(null, "DE", "JP"),
    device_id: fc.constantFrom(null, "d-1")
  })

  const signalArbitrary: fc.Arbitrary<FraudSignalFacts> = fc.record({
    signal_id: fc.constantFrom("s1", "s2", "s3", "s4"),
    transaction_id: fc.constantFrom("tx-1", "tx-2", "tx-3", "tx-orphan"),
    event_time: fc.integer({ min: 0, max: 4 }).map((hours) => baseTime + hours * 3_600_000_000),
    source: fc.constantFrom("rules", "partner", "chargeback"),
    score: fc.constantFrom(0, 0.25, 0.5, 1),
    reasons: fc.uniqueArray(fc.constantFrom("velocity", "geo", "bin", "Ávila"), { maxLength: 3 }),
    confirmed_fraud: fc.constantFrom(null, false, true)
  })

  const scenario = fc.record({
    events: fc.array(eventArbitrary, { maxLength: 12 }),
    signals: fc.array(signalArbitrary, { maxLength: 8 }),
    eventCopies: fc.array(fc.nat(), { maxLength: 6 }),
    signalCopies: fc.array(fc.nat(), { maxLength: 6 }),
    shuffleSeed: fc.integer()
  })

  const withCopies = <A>(items: ReadonlyArray<A>, picks: ReadonlyArray<number>): Array<A> =>
    items.length === 0 ? [...items] : [...items, ...picks.map((pick) => items[pick % items.length]!)]

  it("gives identical rows for permuted and duplicated events and signals", () => {
    fc.assert(
      fc.property(scenario, ({ events, signals, eventCopies, signalCopies, shuffleSeed }) => {
        const reference = buildFinalAggregate(events, signals, dimensions)
        const scrambled = buildFinalAggregate(
          seededShuffle(withCopies(events, eventCopies), shuffleSeed),
          seededShuffle(withCopies(signals, signalCopies), shuffleSeed + 1),
          dimensions
        )
        expect(scrambled).toEqual(reference)
      }),
      { seed: 20261124, numRuns: 500 }
    )
  })

  it("gives one row per transaction with events, counting distinct event_ids and signal_ids", () => {
    fc.assert(
      fc.property(scenario, ({ events, signals }) => {
        const rows = buildFinalAggregate(events, signals, dimensions)
        const transactionIds = [...new Set(events.map((item) => item.transaction_id))].sort()
        expect(rows.map((row) => row.transaction_id).sort()).toEqual(transactionIds)
        for (const row of rows) {
          const own = events.filter((item) => item.transaction_id === row.transaction_id)
          expect(row.event_count).toBe(new Set(own.map((item) => item.event_id)).size)
          const ownSignals = signals.filter((item) => item.transaction_id === row.transaction_id)
          expect(row.fraud_signal_count).toBe(new Set(ownSignals.map((item) => item.signal_id)).size)
          const times = own.map((item) => item.event_time)
          expect(row.first_event_time).toBeGreaterThanOrEqual(Math.min(...times))
          expect(row.last_event_time).toBeLessThanOrEqual(Math.max(...times))
          if (new Set(own.map((item) => item.event_id)).size === own.length) {
            expect(row.first_event_time).toBe(Math.min(...times))
            expect(row.last_event_time).toBe(Math.max(...times))
          }
          expect(row.sequence).toBe(Math.max(...own.map((item) => item.sequence)))
          if (new Set(ownSignals.map((item) => item.signal_id)).size === ownSignals.length) {
            expect(row.confirmed_fraud).toBe(ownSignals.some((item) => item.confirmed_fraud === true))
            const scores = ownSignals.map((item) => item.score)
            expect(row.fraud_max_score).toBe(scores.length === 0 ? null : Math.max(...scores))
            expect(row.fraud_reasons).toEqual([...new Set(ownSignals.flatMap((item) => item.reasons))].sort())
          }
        }
      }),
      { seed: 424242, numRuns: 300 }
    )
  })
})
