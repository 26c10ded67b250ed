import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { ProcessedBucket, RawBucket } from "../src/layers/ObjectStore.js"
import { Parquet } from "../src/layers/ParquetCodec.js"
import { runBatchIndex } from "../src/streams/batchIndex.js"
import { readFinalAggregate } from "../src/streams/datasets.js"
import { chooseSnapshot, loadDimensions } from "../src/streams/dimensions.js"
import { runFinalAggregate } from "../src/streams/finalAggregate.js"
import {
  gzipped,
  jsonLines,
  memoryLayers,
  merchantJson,
  quarantineText,
  signalJson,
  transactionJson,
  userJson
} from "./support/fixtures.js"

const seedRaw = Effect.gen(function* () {
  const raw = yield* RawBucket
  yield* raw.put(
    "raw/transactions/dt=2026-11-24/part-0.jsonl",
    jsonLines(
      transactionJson(),
      transactionJson({
        event_id: "e-2",
        sequence: 1,
        status: "captured",
        event_time: "2026-11-24T11:00:00Z"
      }),
      "{not json",
      transactionJson({ event_id: "e-bad", currency: "usd" }),
      transactionJson({ event_id: "e-pan", device_id: "4111 1111 1111 1111" })
    )
  )
  yield* raw.put(
    "raw/transactions/dt=2026-11-25/part-0.jsonl.gz",
    gzipped(
      jsonLines(
        transactionJson({
          event_id: "e-2",
          sequence: 1,
          status: "captured",
          event_time: "2026-11-24T11:00:00Z"
        }),
        transactionJson({
          event_id: "e-3",
          transaction_id: "t-2",
          user_id: "u-unknown",
          merchant_id: "m-unknown",
          event_time: "2026-11-25T00:30:00+05:30"
        })
      )
    )
  )
  yield* raw.put("raw/transactions/dt=2026-11-25/empty.jsonl", new Uint8Array())
  yield* raw.put("raw/transactions/dt=2026-11-25/broken.jsonl.gz", new TextEncoder().encode("not gzip"))
  yield* raw.put("raw/transactions/_SUCCESS", new Uint8Array())
  yield* raw.put(
    "raw/fraud_signals/dt=2026-11-24/part-0.jsonl",
    jsonLines(
      signalJson(),
      signalJson({
        signal_id: "s-2",
        score: 0.9,
        reasons: ["new_device", "velocity"],
        confirmed_fraud: true
      }),
      signalJson({ signal_id: "s-orphan", transaction_id: "t-none" }),
      signalJson({ signal_id: "s-bad", score: 2 })
    )
  )
  yield* raw.put("raw/dimensions/users/users.jsonl", jsonLines(userJson({ kyc_level: "none" })))
  yield* raw.put("raw/dimensions/users/snapshot=20261120T000000Z/users.jsonl", jsonLines(userJson()))
  yield* raw.put(
    "raw/dimensions/merchants/snapshot=20261120T000000Z/merchants.jsonl",
    jsonLines(merchantJson(), merchantJson({ merchant_id: "m-bad", mcc: "58" }))
  )
})

describe("batch index + final aggregate on embedded layers", () => {
  it.effect("indexes raw files, quarantines bad input and publishes contract §6 rows", () =>
    Effect.gen(function* () {
      yield* seedRaw
      const batch = yield* runBatchIndex
      assert.deepStrictEqual(batch.transactions, { recordsIn: 8, accepted: 4, quarantined: 4 })
      assert.deepStrictEqual(batch.fraudSignals, { recordsIn: 4, accepted: 3, quarantined: 1 })
      assert.deepStrictEqual(batch.filesSkipped, ["raw/transactions/_SUCCESS"])
      assert.strictEqual(batch.usersSnapshot, "20261120T000000Z")
      assert.deepStrictEqual(batch.dimensions, { recordsIn: 3, accepted: 2, quarantined: 1 })

      const final = yield* runFinalAggregate
      assert.strictEqual(final.rows, 2)
      const processed = yield* ProcessedBucket
      const rows = yield* readFinalAggregate(processed, yield* Parquet)
      const t1 = rows.find((row) => row.transaction_id === "t-1")!
      assert.strictEqual(t1.status, "captured")
      assert.strictEqual(t1.event_count, 2)
      assert.strictEqual(t1.fraud_signal_count, 2)
      assert.strictEqual(t1.fraud_max_score, 0.9)
      assert.deepStrictEqual(t1.fraud_reasons, ["new_device", "velocity"])
      assert.strictEqual(t1.confirmed_fraud, true)
      assert.strictEqual(t1.user_kyc_level, "full")
      assert.strictEqual(t1.merchant_name, "Café 東京")
      assert.strictEqual(t1.dt, "2026-11-24")
      const t2 = rows.find((row) => row.transaction_id === "t-2")!
      assert.strictEqual(t2.dt, "2026-11-24")
      assert.strictEqual(t2.user_country, null)
      assert.strictEqual(t2.merchant_name, null)

      const text = yield* quarantineText(processed, "quarantine/batch/")
      assert.include(text, "currency: must be an ISO 4217 alpha-3 code in upper case")
      assert.include(text, "device_id: contains a full card number")
      assert.notInclude(text, "4111 1111 1111 1111")
      assert.include(text, "not a readable gzip file")
    }).pipe(Effect.provide(memoryLayers))
  )

  it.effect(
    "quarantines a line whose text has an unpaired surrogate escape instead of failing the DuckDB writer",
    () =>
      Effect.gen(function* () {
        const raw = yield* RawBucket
        const loneSurrogate = (record: Record<string, unknown>, value: string) =>
          JSON.stringify(record).replace(`"${value}"`, '"bad-\\ud800"')
        yield* raw.put(
          "raw/transactions/dt=2026-11-24/part-0.jsonl",
          jsonLines(
            transactionJson(),
            loneSurrogate(transactionJson({ event_id: "X" }), "X"),
            loneSurrogate(transactionJson({ event_id: "e-2", processor_reference: "X" }), "X")
          )
        )
        yield* raw.put(
          "raw/dimensions/merchants/merchants.jsonl",
          jsonLines(
            merchantJson({ name: "😀 Café" }),
            loneSurrogate(merchantJson({ merchant_id: "m-2", name: "X" }), "X")
          )
        )
        const batch = yield* runBatchIndex
        assert.deepStrictEqual(batch.transactions, { recordsIn: 3, accepted: 1, quarantined: 2 })
        assert.deepStrictEqual(batch.dimensions, { recordsIn: 2, accepted: 1, quarantined: 1 })
        yield* runFinalAggregate
        const processed = yield* ProcessedBucket
        const rows = yield* readFinalAggregate(processed, yield* Parquet)
        assert.deepStrictEqual(
          rows.map((row) => [row.transaction_id, row.merchant_name]),
          [["t-1", "😀 Café"]]
        )
      }).pipe(
        Effect.provide(Layer.mergeAll(RawBucket.layerMemory, ProcessedBucket.layerMemory, Parquet.layer()))
      )
  )

  it.effect(
    "quarantines lines that are not UTF-8, naming the byte, instead of merging ids read as U+FFFD",
    () =>
      Effect.gen(function* () {
        const raw = yield* RawBucket
        const line = (eventId: string) =>
          new TextEncoder().encode(`${JSON.stringify(transactionJson({ event_id: eventId }))}\n`)
        const withByte = (bytes: Uint8Array, marker: number, byte: number) =>
          Uint8Array.from(bytes, (value) => (value === marker ? byte : value))
        const lines = [
          line("e-1"),
          withByte(line("id-X"), 0x58, 0xff),
          withByte(line("id-X"), 0x58, 0xfe),
          line("e-東京"),
          // A three-byte character cut after its second byte.
          line("e-東").filter((_, index, all) => index !== all.indexOf(0xe6) + 2),
          line("e-5")
        ]
        const file = Uint8Array.from(lines.flatMap((bytes) => [...bytes]))
        yield* raw.put("raw/transactions/dt=2026-11-24/bytes.jsonl", file)
        yield* raw.put("raw/transactions/dt=2026-11-24/bytes.jsonl.gz", gzipped(file))
        const batch = yield* runBatchIndex
        assert.deepStrictEqual(batch.transactions, { recordsIn: 12, accepted: 6, quarantined: 6 })
        const processed = yield* ProcessedBucket
        const entries = (yield* quarantineText(processed, "quarantine/batch/"))
          .split("\n")
          .filter((text) => text !== "")
          .map((text) => JSON.parse(text) as { source: string; reason: string })
          .map((entry) => `${entry.source.replace(/^.*\//, "")} ${entry.reason}`)
          .sort()
        const offset = new TextDecoder().decode(line("id-X")).indexOf("X") + 1
        const cutAt = line("e-東").indexOf(0xe6) + 1
        assert.deepStrictEqual(entries, [
          `bytes.jsonl.gz:2 (record): not valid UTF-8: byte 0xff at byte ${offset} of the line`,
          `bytes.jsonl.gz:3 (record): not valid UTF-8: byte 0xfe at byte ${offset} of the line`,
          `bytes.jsonl.gz:5 (record): not valid UTF-8: byte 0xe6 at byte ${cutAt} of the line`,
          `bytes.jsonl:2 (record): not valid UTF-8: byte 0xff at byte ${offset} of the line`,
          `bytes.jsonl:3 (record): not valid UTF-8: byte 0xfe at byte ${offset} of the line`,
          `bytes.jsonl:5 (record): not valid UTF-8: byte 0xe6 at byte ${cutAt} of the line`
        ])
      }).pipe(Effect.provide(memoryLayers))
  )

  it.effect("skips a writer's private files (a part starting _ or .) as Spark does, and reports them", () =>
    Effect.gen(function* () {
      const raw = yield* RawBucket
      const line = jsonLines(transactionJson({ event_id: "e-attempt" }))
      const hidden = [
        "raw/transactions/dt=2026-11-24/_temporary/0/_temporary/attempt_1/part-0.jsonl",
        "raw/transactions/dt=2026-11-24/.part-0.jsonl",
        "raw/fraud_signals/_staging/part-0.jsonl"
      ]
      for (const key of hidden) yield* raw.put(key, line)
      yield* raw.put("raw/transactions/dt=2026-11-24/part-0.jsonl", line)
      const batch = yield* runBatchIndex
      assert.deepStrictEqual(batch.transactions, { recordsIn: 1, accepted: 1, quarantined: 0 })
      assert.deepStrictEqual(batch.fraudSignals, { recordsIn: 0, accepted: 0, quarantined: 0 })
      assert.deepStrictEqual([...batch.filesSkipped].sort(), [...hidden].sort())
    }).pipe(Effect.provide(memoryLayers))
  )

  it.effect("keeps the whole lines of a gzip file cut short and quarantines the line it ends in", () =>
    Effect.gen(function* () {
      const raw = yield* RawBucket
      const events = Array.from({ length: 40 }, (_, index) =>
        transactionJson({ event_id: `e-${index}`, transaction_id: `t-${index}` })
      )
      const whole = gzipped(jsonLines(...events))
      yield* raw.put("raw/transactions/dt=2026-11-24/cut.jsonl.gz", whole.subarray(0, whole.length - 30))
      const batch = yield* runBatchIndex
      const { recordsIn, accepted, quarantined } = batch.transactions
      assert.isAbove(accepted, 30)
      assert.isBelow(accepted, 40)
      assert.strictEqual(quarantined, 1)
      assert.strictEqual(recordsIn, accepted + 1)
      const text = yield* quarantineText(yield* ProcessedBucket, "quarantine/batch/")
      assert.include(text, `cut.jsonl.gz:${accepted + 1}`)
      assert.include(text, `the gzip file ends early`)
      assert.include(text, `line ${accepted + 1} is cut off`)
    }).pipe(Effect.provide(memoryLayers))
  )

  it.effect("re-running batch and final on the same input is idempotent", () =>
    Effect.gen(function* () {
      yield* seedRaw
      yield* runBatchIndex
      const first = yield* runFinalAggregate
      const processed = yield* ProcessedBucket
      const keysBefore = (yield* processed.list("final_aggregate/")).map((info) => info.key)
      yield* runBatchIndex
      const second = yield* runFinalAggregate
      const keysAfter = (yield* processed.list("final_aggregate/")).map((info) => info.key)
      assert.strictEqual(second.version, first.version)
      assert.deepStrictEqual(keysAfter, keysBefore)
    }).pipe(Effect.provide(memoryLayers))
  )
})

describe("dimension snapshots", () => {
  it.effect(
    "keeps the last valid row of an id: files in code-point order of their keys, then line order",
    () =>
      Effect.gen(function* () {
        const raw = yield* RawBucket
        const folder = "raw/dimensions/users/snapshot=20261125T000000Z/"
        yield* raw.put(
          `${folder}a.jsonl`,
          jsonLines(userJson({ country: "DE" }), userJson({ country: "FR" }), userJson({ country: "fr" }))
        )
        yield* raw.put(`${folder}B.jsonl`, jsonLines(userJson({ country: "GB" })))
        yield* raw.put(
          "raw/dimensions/merchants/snapshot=20261125T000000Z/part-0.jsonl",
          jsonLines(merchantJson({ name: "first" }), merchantJson({ name: "second", mcc: "58" }))
        )
        const loaded = yield* loadDimensions(raw)
        assert.strictEqual(loaded.tables.users.get("u-1")?.country, "FR")
        assert.strictEqual(loaded.tables.merchants.get("m-1")?.name, "first")
        assert.strictEqual(loaded.recordsIn, 6)
        assert.deepStrictEqual(
          loaded.quarantined.map((entry) => entry.source),
          [`${folder}a.jsonl:3`, "raw/dimensions/merchants/snapshot=20261125T000000Z/part-0.jsonl:2"]
        )
      }).pipe(Effect.provide(memoryLayers))
  )

  it("takes every data file below the newest snapshot folder, subfolders too, but no writer's temporary files", () => {
    const prefix = "raw/dimensions/users/"
    const keys = [
      "users.jsonl",
      "archive/old.jsonl",
      "snapshot=20261120T000000Z/users.jsonl",
      "snapshot=20261125T000000Z/region=eu/part-1.parquet",
      "snapshot=20261125T000000Z/part-0.jsonl",
      "snapshot=20261125T000000Z/_SUCCESS",
      "snapshot=20261125T000000Z/_temporary/0/_temporary/attempt_1/part-0.parquet",
      "snapshot=20261125T000000Z/.spark-staging/part-9.jsonl"
    ].map((key) => prefix + key)
    assert.deepStrictEqual(chooseSnapshot(prefix, keys), {
      snapshot: "20261125T000000Z",
      keys: [
        `${prefix}snapshot=20261125T000000Z/part-0.jsonl`,
        `${prefix}snapshot=20261125T000000Z/region=eu/part-1.parquet`
      ]
    })
    assert.deepStrictEqual(chooseSnapshot(prefix, [`${prefix}users.jsonl`, `${prefix}archive/old.jsonl`]), {
      snapshot: "(base)",
      keys: [`${prefix}users.jsonl`]
    })
  })

  it("takes only folder names that are real UTC instants for snapshots", () => {
    const prefix = "raw/dimensions/merchants/"
    const keys = [
      "snapshot=20261120T235959Z/a.jsonl",
      "snapshot=20261231T250000Z/b.jsonl",
      "snapshot=20261301T000000Z/c.jsonl",
      "snapshot=20260230T000000Z/d.jsonl",
      "snapshot=20261124T126000Z/e.jsonl",
      "snapshot=latest/f.jsonl"
    ].map((key) => prefix + key)
    assert.deepStrictEqual(chooseSnapshot(prefix, keys), {
      snapshot: "20261120T235959Z",
      keys: [`${prefix}snapshot=20261120T235959Z/a.jsonl`]
    })
  })
})
