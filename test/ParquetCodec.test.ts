import * as NodeFs from "node:fs/promises"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { DuckDBInstance } from "@duckdb/node-api"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import { column, finalAggregateSchema, type TableRow } from "../src/domain/rows.js"
import { makeDuckDbCodec, Parquet } from "../src/layers/ParquetCodec.js"
import { writeSpoolParquet } from "../src/layers/parquetSpool.js"

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

describe("the DuckDB codec's Parquet spool", () => {
  const everyType = [
    column("text", "string", true),
    column("count", "int64", true),
    column("score", "double", true),
    column("flag", "boolean", true),
    column("at", "timestamp", true),
    column("reasons", "string_list")
  ]

  const readSpool = (rows: ReadonlyArray<TableRow>, rowGroupRows: number) =>
    Effect.promise(async () => {
      const directory = await NodeFs.mkdtemp(NodePath.join(NodeOs.tmpdir(), "spool-"))
      const file = NodePath.join(directory, "spool.parquet")
      const handle = await NodeFs.open(file, "w")
      await writeSpoolParquet(everyType, rows, rowGroupRows, async (bytes) => {
        await handle.write(Uint8Array.from(bytes))
      })
      await handle.close()
      const connection = await (await DuckDBInstance.create(":memory:")).connect()
      const types = (await connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`))
        .getRows()
        .map((r) => `${r[0]}:${r[1]}`)
      const values = (
        await connection.runAndReadAll(`SELECT * FROM read_parquet('${file}')`)
      ).getRowObjectsJson()
      const groups = (
        await connection.runAndReadAll(`SELECT count(DISTINCT row_group_id) FROM parquet_metadata('${file}')`)
      ).getRows()[0]?.[0]
      await NodeFs.rm(directory, { recursive: true })
      return { types, values, groups: Number(groups) }
    })

  it.effect("is a plain Parquet file DuckDB reads value for value, in row groups", () =>
    Effect.gen(function* () {
      const rows: Array<TableRow> = [
        {
          text: "Café 東京 😀",
          count: 9_007_199_254_740_991,
          score: 0.1,
          flag: true,
          at: -1,
          reasons: ["a", "b"]
        },
        { text: null, count: -9_007_199_254_740_991, score: null, flag: null, at: null, reasons: null },
        { text: "", count: -4_294_967_297, score: -1.5e300, flag: false, at: 0, reasons: [] },
        { text: "x\ud800", reasons: ["\udc00", "é"] },
        ...Array.from({ length: 17 }, (_, index) => ({
          text: `r${index}`,
          count: index * 4_294_967_296 + index,
          score: index / 3,
          flag: index % 3 === 0 ? null : index % 2 === 0,
          at: index,
          reasons: index % 2 === 0 ? [] : [`q${index}`]
        }))
      ]
      const { types, values, groups } = yield* readSpool(rows, 4)
      assert.deepStrictEqual(types, [
        "text:VARCHAR",
        "count:BIGINT",
        "score:DOUBLE",
        "flag:BOOLEAN",
        "at:BIGINT",
        "reasons:VARCHAR[]"
      ])
      assert.strictEqual(groups, 6)
      const expected = rows.map((r) => ({
        text: r["text"] === "x\ud800" ? "x\ufffd" : (r["text"] ?? null),
        count: r["count"] === undefined || r["count"] === null ? null : String(r["count"]),
        score: r["score"] ?? null,
        flag: r["flag"] ?? null,
        at: r["at"] === undefined || r["at"] === null ? null : String(r["at"]),
        reasons: r["text"] === "x\ud800" ? ["\ufffd", "é"] : (r["reasons"] ?? null)
      }))
      assert.deepStrictEqual<unknown>(values, expected)
      assert.deepStrictEqual((yield* readSpool([], 4)).values, [])
    })
  )

  it.effect("keeps concurrent writes apart (their buffers are pooled)", () =>
    Effect.gen(function* () {
      const codec = yield* Parquet
      const batches = Array.from({ length: 4 }, (_, batch) =>
        Array.from({ length: 50 + batch * 30 }, (_, index) => ({
          ...row,
          transaction_id: `tx-${batch}-${index}`,
          fraud_reasons: [`r-${batch}`]
        }))
      )
      const decoded = yield* Effect.forEach(
        batches,
        (rows) => Effect.flatMap(codec.encode(finalAggregateSchema, rows), (body) => codec.decode(body)),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(decoded, batches)
    }).pipe(Effect.provide(Parquet.layer({ spoolRows: 7 })))
  )

  it.effect("refuses a value its column cannot hold, naming the column", () =>
    Effect.gen(function* () {
      const codec = yield* Parquet
      const schema = [column("transaction_id", "string"), column("amount_minor", "int64")]
      for (const [amount, shown] of [
        [1.5, "1.5"],
        [2 ** 64, "18446744073709552000"],
        ["12", '"12"']
      ] as const) {
        const failure = yield* Effect.flip(
          codec.encode(schema, [
            { transaction_id: "tx-1", amount_minor: 1 },
            { transaction_id: "tx-2", amount_minor: amount }
          ])
        )
        assert.include(String(failure.cause), `column amount_minor (int64) cannot hold ${shown}`)
      }
      const pan = yield* Effect.flip(
        codec.encode(schema, [{ transaction_id: "tx-1", amount_minor: "card 4111111111111111" }])
      )
      assert.include(String(pan.cause), "cannot hold")
      assert.notInclude(String(pan.cause), "4111111111111111")
      const list = yield* Effect.flip(codec.encode([column("reasons", "string_list")], [{ reasons: "a" }]))
      assert.include(String(list.cause), "column reasons (string_list) cannot hold")
    }).pipe(Effect.provide(Parquet.layer()))
  )

  it.effect("round-trips random rows of every column type through the codec (property)", () =>
    Effect.gen(function* () {
      const codec = yield* Parquet
      const text = fc.string({ unit: "grapheme", maxLength: 12 })
      const rowOf = fc.record({
        text: fc.option(text, { nil: null }),
        count: fc.option(fc.maxSafeInteger(), { nil: null }),
        score: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }), { nil: null }),
        flag: fc.option(fc.boolean(), { nil: null }),
        at: fc.option(fc.oneof(fc.maxSafeInteger(), fc.constant(253_402_300_800_000_000)), {
          nil: null
        }),
        reasons: fc.array(text, { maxLength: 4 })
      })
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(
            fc.array(rowOf, { maxLength: 40 }),
            fc.integer({ min: 1, max: 9 }),
            async (rows, groupRows) => {
              const spoolCodec = makeDuckDbCodec({
                rowGroupSize: 7,
                compression: "zstd",
                spoolRows: groupRows
              })
              const decoded = await Effect.runPromise(
                spoolCodec.decode(await Effect.runPromise(spoolCodec.encode(everyType, rows)))
              )
              const normalised = rows.map((r) => ({ ...r, score: Object.is(r.score, -0) ? 0 : r.score }))
              assert.deepStrictEqual(
                decoded.map((r) => ({ ...r, score: Object.is(r["score"], -0) ? 0 : r["score"] })),
                normalised
              )
            }
          ),
          { numRuns: 40, seed: 20261127 }
        )
      )
      assert.isDefined(codec)
    }).pipe(Effect.provide(Parquet.layer()))
  )
})
