import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { DuckDBInstance } from "@duckdb/node-api"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { ProcessedBucket, RawBucket } from "../src/layers/ObjectStore.js"
import { Parquet } from "../src/layers/ParquetCodec.js"
import { runBatchIndex } from "../src/streams/batchIndex.js"
import { readFinalAggregate } from "../src/streams/datasets.js"
import { runFinalAggregate } from "../src/streams/finalAggregate.js"
import { memoryLayers, quarantineText } from "./support/fixtures.js"

/** Parquet files as other writers make them: zstd, dictionary pages, LIST columns, logical timestamps. */
const writeWithDuckDb = async (sql: string): Promise<Uint8Array> => {
  const directory = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "pq-in-"))
  const file = NodePath.join(directory, "part.parquet")
  const connection = await (await DuckDBInstance.create(":memory:")).connect()
  await connection.run("SET TimeZone = 'UTC'")
  await connection.run(`COPY (${sql}) TO '${file}' (FORMAT parquet, COMPRESSION zstd)`)
  return new Uint8Array(NodeFs.readFileSync(file))
}

describe("raw Parquet input from other writers", () => {
  it.effect("reads zstd files with timestamp columns in any unit, LIST columns and int64 money", () =>
    Effect.gen(function* () {
      const raw = yield* RawBucket
      const transactions = yield* Effect.promise(() =>
        writeWithDuckDb(`
          SELECT * FROM (VALUES
            ('e-1', 't-1', 0::BIGINT, TIMESTAMPTZ '2026-11-24 10:00:00.123456+00', 'authorized', 9007199254740991::BIGINT,
             'JPY', 'u-1', 'm-1', 'card', '411111', '1111', 'adyen', 'psp-1', 'JP', NULL, NULL),
            ('e-2', 't-1', 1::BIGINT, TIMESTAMPTZ '2026-11-24 12:00:00+05:30', 'captured', 9007199254740991::BIGINT,
             'JPY', 'u-1', 'm-1', 'card', '411111', '1111', 'adyen', 'psp-1', 'JP', 'dev-1', NULL),
            ('e-3', 't-2', 0::BIGINT, TIMESTAMPTZ '2026-11-23 23:59:59+00', 'authorized', -5::BIGINT,
             'USD', 'u-1', 'm-1', 'wallet', NULL, NULL, 'adyen', 'psp-2', NULL, NULL, NULL)
          ) AS v(event_id, transaction_id, sequence, event_time, status, amount_minor, currency, user_id, merchant_id,
                 payment_method, card_bin, card_last4, processor, processor_reference, country, device_id, ip_address)`)
      )
      const signals = yield* Effect.promise(() =>
        writeWithDuckDb(`
          SELECT 's-1' AS signal_id, 't-1' AS transaction_id,
            CAST(TIMESTAMP '2026-11-24 10:00:05' AS TIMESTAMP_NS) AS event_time, 'model' AS source, 0.75::DOUBLE AS score,
            ['velocity', 'new_device'] AS reasons, true AS confirmed_fraud`)
      )
      const users = yield* Effect.promise(() =>
        writeWithDuckDb(
          "SELECT 'u-1' AS user_id, '2025-01-01T00:00:00Z' AS created_at, 'JP' AS country, 'full' AS kyc_level, 'low' AS risk_tier"
        )
      )
      yield* raw.put("raw/transactions/dt=2026-11-24/part-0.parquet", transactions)
      yield* raw.put("raw/fraud_signals/dt=2026-11-24/part-0.parquet", signals)
      yield* raw.put("raw/dimensions/users/snapshot=20261120T000000Z/users.parquet", users)
      yield* raw.put(
        "raw/transactions/dt=2026-11-24/broken.parquet",
        new TextEncoder().encode("PAR1 not really")
      )

      const batch = yield* runBatchIndex
      assert.deepStrictEqual(batch.transactions, { recordsIn: 4, accepted: 2, quarantined: 2 })
      assert.deepStrictEqual(batch.fraudSignals, { recordsIn: 1, accepted: 1, quarantined: 0 })
      assert.deepStrictEqual(batch.dimensions, { recordsIn: 1, accepted: 1, quarantined: 0 })

      yield* runFinalAggregate
      const rows = yield* readFinalAggregate(yield* ProcessedBucket, yield* Parquet)
      assert.strictEqual(rows.length, 1)
      const row = rows[0]!
      assert.strictEqual(row.status, "captured")
      assert.strictEqual(row.amount_minor, 9_007_199_254_740_991)
      assert.strictEqual(row.first_event_time, Date.UTC(2026, 10, 24, 6, 30) * 1000)
      assert.strictEqual(row.last_event_time, Date.UTC(2026, 10, 24, 10) * 1000 + 123_456)
      assert.deepStrictEqual(row.fraud_reasons, ["new_device", "velocity"])
      assert.strictEqual(row.confirmed_fraud, true)
      assert.strictEqual(row.user_kyc_level, "full")
      assert.strictEqual(row.dt, "2026-11-24")
    }).pipe(Effect.provide(memoryLayers))
  )

  it.effect(
    "reads DECIMAL columns as databases export money: whole values as integers, others as numbers",
    () =>
      Effect.gen(function* () {
        const raw = yield* RawBucket
        const transactions = yield* Effect.promise(() =>
          writeWithDuckDb(`
          SELECT * FROM (VALUES
            ('e-1', 't-1', 0::DECIMAL(10, 0), '2026-11-24T10:00:00Z', 'authorized', 1250::DECIMAL(18, 0)),
            ('e-2', 't-2', 0::DECIMAL(10, 0), '2026-11-24T10:00:00Z', 'authorized', 1250.00::DECIMAL(18, 2)),
            ('e-3', 't-3', 0::DECIMAL(10, 0), '2026-11-24T10:00:00Z', 'authorized', 12.50::DECIMAL(18, 2))
          ) AS v(event_id, transaction_id, sequence, event_time, status, amount_minor),
          (SELECT 'EUR' AS currency, 'u-1' AS user_id, 'm-1' AS merchant_id, 'card' AS payment_method,
                  'adyen' AS processor, 'psp-1' AS processor_reference)`)
        )
        const signals = yield* Effect.promise(() =>
          writeWithDuckDb(`
          SELECT 's-1' AS signal_id, 't-1' AS transaction_id, '2026-11-24T10:00:05Z' AS event_time,
            'model' AS source, 0.50::DECIMAL(3, 2) AS score, []::VARCHAR[] AS reasons`)
        )
        yield* raw.put("raw/transactions/dt=2026-11-24/part-0.parquet", transactions)
        yield* raw.put("raw/fraud_signals/dt=2026-11-24/part-0.parquet", signals)
        const batch = yield* runBatchIndex
        assert.deepStrictEqual(batch.transactions, { recordsIn: 3, accepted: 2, quarantined: 1 })
        assert.deepStrictEqual(batch.fraudSignals, { recordsIn: 1, accepted: 1, quarantined: 0 })
        yield* runFinalAggregate
        const rows = yield* readFinalAggregate(yield* ProcessedBucket, yield* Parquet)
        assert.deepStrictEqual(
          rows.map((row) => [row.transaction_id, row.amount_minor, row.fraud_max_score]).sort(),
          [
            ["t-1", 1250, 0.5],
            ["t-2", 1250, null]
          ]
        )
        const text = yield* quarantineText(yield* ProcessedBucket, "quarantine/batch/")
        assert.include(text, "amount_minor: must be an integer from 0 to 2^53-1")
      }).pipe(Effect.provide(memoryLayers))
  )

  it.effect(
    "reads BINARY strings as UTF-8 (refusing bytes that are not in a contract field), nanoseconds floored, lists of timestamps kept",
    () =>
      Effect.gen(function* () {
        const raw = yield* RawBucket
        const event = (eventId: string, time: string, name: string) =>
          `('${eventId}', 't-${eventId}', 0::BIGINT, ${time}, 'authorized', 100::BIGINT, 'USD', 'u-1', ${name},
            'card', 'adyen', 'psp-1', [TIMESTAMP '2026-01-01 00:00:00'], '\\x89PNG\\xFF'::BLOB)`
        const transactions = yield* Effect.promise(() =>
          writeWithDuckDb(`
            SELECT * FROM (VALUES
              ${event("e-binary", "TIMESTAMP_NS '2026-11-24 10:00:00.123456789'", "encode('m-Ü')")},
              ${event("e-before-1970", "TIMESTAMP_NS '1969-12-31 23:59:59.9999995'", "encode('m-1')")},
              ${event("e-bad-bytes", "TIMESTAMP_NS '2026-11-24 10:00:00'", "'m-\\xFF'::BLOB")}
            ) AS v(event_id, transaction_id, sequence, event_time, status, amount_minor, currency, user_id,
                   merchant_id, payment_method, processor, processor_reference, audit_times, logo)`)
        )
        yield* raw.put("raw/transactions/dt=2026-11-24/part-0.parquet", transactions)
        const batch = yield* runBatchIndex
        assert.deepStrictEqual(batch.transactions, { recordsIn: 3, accepted: 2, quarantined: 1 })
        const processed = yield* ProcessedBucket
        const quarantined = yield* quarantineText(processed, "quarantine/batch/")
        assert.include(quarantined, "merchant_id: not valid UTF-8: byte 0xff at byte 3")
        yield* runFinalAggregate
        const rows = yield* readFinalAggregate(processed, yield* Parquet)
        const byId = new Map(rows.map((row) => [row.transaction_id, row]))
        assert.strictEqual(byId.get("t-e-binary")?.merchant_id, "m-Ü")
        assert.strictEqual(
          byId.get("t-e-binary")?.first_event_time,
          Date.UTC(2026, 10, 24, 10) * 1000 + 123_456
        )
        assert.strictEqual(byId.get("t-e-before-1970")?.first_event_time, -1)
        assert.strictEqual(byId.get("t-e-before-1970")?.dt, "1969-12-31")
      }).pipe(Effect.provide(Layer.merge(memoryLayers, Parquet.layer())))
  )
})
