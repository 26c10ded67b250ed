import * as NodeFs from "node:fs/promises"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { DuckDBInstance } from "@duckdb/node-api"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { column, finalAggregateSchema, type TableRow } from "../src/domain/rows.js"
import { Parquet } from "../src/layers/ParquetCodec.js"

const row: TableRow = {
  transaction_id: "tx-1",
  status: "captured",
  sequence: 3,
  amount_minor: 9_007_199_254_740_991,
  currency: "JPY",
  user_id: "u-1",
  merchant_id: "m-1",
  payment_method: "card",
  card_bin: "411111",
  card_last4: "1111",
  processor: "adyen",
  processor_reference: "psp-1",
  country: null,
  first_event_time: 1_795_495_530_123_456,
  last_event_time: 1_795_495_530_123_457,
  authorized_at: 1_795_495_530_123_456,
  captured_at: null,
  settled_at: null,
  refunded_at: null,
  chargeback_at: null,
  event_count: 2,
  fraud_signal_count: 0,
  fraud_max_score: null,
  fraud_reasons: [],
  confirmed_fraud: false,
  user_country: null,
  user_kyc_level: null,
  user_risk_tier: null,
  user_created_at: null,
  merchant_name: "Café 東京",
  merchant_mcc: "5812",
  merchant_country: "JP",
  merchant_risk_level: "low",
  first_amount_minor: 9_007_199_254_740_991,
  first_currency: "JPY",
  device_id: null,
  fraud_prior_signal_max_score: null
}

describe("ParquetCodec on @dsnp/parquetjs", () => {
  it.effect("round-trips every column type with microsecond timestamps and 2^53-1 money", () =>
    Effect.gen(function* () {
      const codec = yield* Parquet
      const body = yield* codec.encode(finalAggregateSchema, [
        row,
        { ...row, transaction_id: "tx-2", fraud_reasons: ["a", "b"] }
      ])
      const rows = yield* codec.decode(body)
      assert.deepStrictEqual(rows[0], row)
      assert.deepStrictEqual(rows[1]?.["fraud_reasons"], ["a", "b"])
    }).pipe(Effect.provide(Parquet.layerParquetjs({ rowGroupSize: 1 })))
  )

  it.effect("writes files DuckDB reads with standard types", () =>
    Effect.gen(function* () {
      const codec = yield* Parquet
      const body = yield* codec.encode(finalAggregateSchema, [row])
      const directory = yield* Effect.promise(() => NodeFs.mkdtemp(NodePath.join(NodeOs.tmpdir(), "pq-")))
      const file = NodePath.join(directory, "part.parquet")
      yield* Effect.promise(() => NodeFs.writeFile(file, body))
      const described = yield* Effect.promise(async () => {
        const connection = await (await DuckDBInstance.create(":memory:")).connect()
        const reader = await connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`)
        const values = await connection.runAndReadAll(
          `SELECT amount_minor, CAST(first_event_time AS VARCHAR) AS t, merchant_name, fraud_reasons FROM read_parquet('${file}')`
        )
        return { types: reader.getRows().map((r) => `${r[0]}:${r[1]}`), values: values.getRowObjectsJson() }
      })
      assert.include(described.types, "amount_minor:BIGINT")
      // Legacy TIMESTAMP_MICROS: UTC-adjusted by the Parquet spec; DuckDB shows it as TIMESTAMP.
      assert.include(described.types, "first_event_time:TIMESTAMP")
      assert.strictEqual(described.values[0]?.["t"], "2026-11-24 04:45:30.123456")
      assert.include(described.types, "fraud_reasons:VARCHAR[]")
      assert.include(described.types, "confirmed_fraud:BOOLEAN")
      assert.strictEqual(described.values[0]?.["amount_minor"], "9007199254740991")
      assert.strictEqual(described.values[0]?.["merchant_name"], "Café 東京")
    }).pipe(Effect.provide(Parquet.layerParquetjs()))
  )
})

describe("ParquetCodec on DuckDB (default)", () => {
  it.effect("round-trips every column type, empty lists and no rows", () =>
    Effect.gen(function* () {
      const codec = yield* Parquet
      const rows = [row, { ...row, transaction_id: "tx-2", fraud_reasons: ["a", "b"], fraud_max_score: 0.1 }]
      const decoded = yield* codec.decode(yield* codec.encode(finalAggregateSchema, rows))
      assert.deepStrictEqual(decoded, rows)
      assert.deepStrictEqual(yield* codec.decode(yield* codec.encode(finalAggregateSchema, [])), [])
    }).pipe(Effect.provide(Parquet.layer({ rowGroupSize: 1 })))
  )

  it.effect("decodes only the columns asked for", () =>
    Effect.gen(function* () {
      const codec = yield* Parquet
      const body = yield* codec.encode(finalAggregateSchema, [row])
      assert.deepStrictEqual(
        yield* codec.decode(body, ["transaction_id", "first_event_time", "fraud_reasons"]),
        [{ transaction_id: "tx-1", first_event_time: 1_795_495_530_123_456, fraud_reasons: [] }]
      )
      const viaParquetjs = yield* Effect.provide(
        Effect.flatMap(Parquet, (other) =>
          Effect.flatMap(other.encode(finalAggregateSchema, [row]), (encoded) =>
            other.decode(encoded, ["transaction_id", "amount_minor"])
          )
        ),
        Parquet.layerParquetjs()
      )
      assert.deepStrictEqual(viaParquetjs, [{ transaction_id: "tx-1", amount_minor: 9_007_199_254_740_991 }])
    }).pipe(Effect.provide(Parquet.layer()))
  )

  it.effect(
    "selects rows by an integer column modulo n, in both codecs; files without it give every row",
    () =>
      Effect.gen(function* () {
        const hashed = column("transaction_id_hash", "int64")
        const schema = [...finalAggregateSchema, hashed]
        const rows = Array.from({ length: 10 }, (_, index) => ({
          ...row,
          transaction_id: `tx-${index}`,
          transaction_id_hash: 4_294_967_290 + index
        }))
        const selection = { column: "transaction_id_hash", modulus: 3, remainder: 1 }
        const expected = rows.filter((r) => r.transaction_id_hash % 3 === 1).map((r) => r.transaction_id)
        assert.lengthOf(expected, 4)
        for (const layer of [Parquet.layer(), Parquet.layerParquetjs({ rowGroupSize: 4 })]) {
          const { selected, withoutColumn, refused } = yield* Effect.provide(
            Effect.gen(function* () {
              const codec = yield* Parquet
              const body = yield* codec.encode(schema, rows)
              const plain = yield* codec.encode(finalAggregateSchema, rows)
              return {
                selected: yield* codec.decode(body, ["transaction_id"], selection),
                withoutColumn: yield* codec.decode(plain, ["transaction_id"], selection),
                refused: yield* Effect.flip(
                  codec.decode(body, ["transaction_id"], { ...selection, remainder: 3 })
                )
              }
            }),
            layer
          )
          assert.deepStrictEqual(
            selected.map((r) => r["transaction_id"]),
            expected
          )
          assert.lengthOf(withoutColumn, 10)
          assert.include(refused.message, "0 <= remainder < modulus")
        }
      })
  )

  it.effect("keeps row order across spool pieces", () =>
    Effect.gen(function* () {
      const codec = yield* Parquet
      const rows = Array.from({ length: 23 }, (_, index) => ({
        ...row,
        transaction_id: `tx-${index}`,
        fraud_reasons: index % 3 === 0 ? [] : [`r-${index}`],
        country: index % 2 === 0 ? null : "DE"
      }))
      assert.deepStrictEqual(yield* codec.decode(yield* codec.encode(finalAggregateSchema, rows)), rows)
    }).pipe(Effect.provide(Parquet.layer({ spoolRows: 5 })))
  )

  it.effect("writes a text holding an unpaired surrogate with U+FFFD in its place instead of failing", () =>
    Effect.gen(function* () {
      const codec = yield* Parquet
      const rows = [
        { ...row, merchant_name: "Caf\udce9 \\ud800", fraud_reasons: ["\ud800x", "ok"] },
        { ...row, transaction_id: "tx-2" }
      ]
      const decoded = yield* codec.decode(yield* codec.encode(finalAggregateSchema, rows))
      assert.strictEqual(decoded[0]?.["merchant_name"], "Caf\ufffd \\ud800")
      assert.deepStrictEqual(decoded[0]?.["fraud_reasons"], ["\ufffdx", "ok"])
      assert.deepStrictEqual(decoded[1], rows[1])
    }).pipe(Effect.provide(Parquet.layer()))
  )

  it.effect("writes UTC-adjusted timestamps, int64 money and standard lists", () =>
    Effect.gen(function* () {
      const codec = yield* Parquet
      const body = yield* codec.encode(finalAggregateSchema, [row])
      const directory = yield* Effect.promise(() => NodeFs.mkdtemp(NodePath.join(NodeOs.tmpdir(), "pq-")))
      const file = NodePath.join(directory, "part.parquet")
      yield* Effect.promise(() => NodeFs.writeFile(file, body))
      const types = yield* Effect.promise(async () => {
        const connection = await (await DuckDBInstance.create(":memory:")).connect()
        const reader = await connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`)
        return reader.getRows().map((r) => `${r[0]}:${r[1]}`)
      })
      assert.include(types, "amount_minor:BIGINT")
      assert.include(types, "first_event_time:TIMESTAMP WITH TIME ZONE")
      assert.include(types, "fraud_reasons:VARCHAR[]")
    }).pipe(Effect.provide(Parquet.layer()))
  )
})
