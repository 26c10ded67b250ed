import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { DuckDBInstance } from "@duckdb/node-api"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { parquetWriteBuffer } from "hyparquet-writer"
import type { TableRow } from "../src/domain/rows.js"
import { getRequired, type ObjectStore, ProcessedBucket, RawBucket } from "../src/layers/ObjectStore.js"
import { Parquet } from "../src/layers/ParquetCodec.js"
import { withPlainColumns, withTextColumnsAsBinary } from "../src/layers/parquetFooter.js"
import { runBatchIndex } from "../src/streams/batchIndex.js"
import { memoryLayers, quarantineText } from "./support/fixtures.js"

const text = (value: string) => new TextEncoder().encode(value)
const badBytes = (prefix: string) => Uint8Array.from([...text(prefix), 0xff])

type Column =
  | { readonly name: string; readonly kind: "text"; readonly data: ReadonlyArray<Uint8Array | null> }
  | {
      readonly name: string
      readonly kind: "int64" | "timestampMillis"
      readonly data: ReadonlyArray<bigint>
    }

/** A Parquet file whose UTF8 columns hold exactly the given bytes (hyparquet-writer does not check them). */
const parquetOf = (columns: ReadonlyArray<Column>): Uint8Array =>
  new Uint8Array(
    parquetWriteBuffer({
      schema: [
        { name: "root", num_children: columns.length },
        ...columns.map((column) =>
          column.kind === "text"
            ? {
                name: column.name,
                type: "BYTE_ARRAY" as const,
                converted_type: "UTF8" as const,
                repetition_type: "OPTIONAL" as const
              }
            : column.kind === "timestampMillis"
              ? {
                  name: column.name,
                  type: "INT64" as const,
                  logical_type: {
                    type: "TIMESTAMP" as const,
                    isAdjustedToUTC: true,
                    unit: "MILLIS" as const
                  },
                  repetition_type: "OPTIONAL" as const
                }
              : { name: column.name, type: "INT64" as const, repetition_type: "OPTIONAL" as const }
        )
      ],
      columnData: columns.map((column) => ({ name: column.name, data: [...column.data] }))
    })
  )

/** What DuckDB says of a file: its column types, or the error that refused it. */
const describeWithDuckDb = async (file: Uint8Array): Promise<string> => {
  const directory = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "pq-footer-"))
  const path = NodePath.join(directory, "f.parquet")
  NodeFs.writeFileSync(path, file)
  const connection = await (await DuckDBInstance.create(":memory:")).connect()
  try {
    const rows = (await connection.runAndReadAll(`SELECT * FROM read_parquet('${path}')`)).getRows()
    const types = (await connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${path}')`)).getRows()
    return `${rows.length} rows: ${types.map((row) => `${String(row[0])} ${String(row[1])}`).join(", ")}`
  } catch (error) {
    return `refused: ${error instanceof Error ? error.message : String(error)}`
  } finally {
    connection.closeSync()
    NodeFs.rmSync(directory, { recursive: true, force: true })
  }
}

const rowCount = 3
const same = (value: string) => Array.from({ length: rowCount }, () => text(value))

/** Three transaction events as Parquet columns; `varying` sets event_time, merchant_id and any extra column. */
const transactionColumns = (varying: Record<string, Column>): ReadonlyArray<Column> => [
  { name: "event_id", kind: "text", data: [text("e-1"), text("e-2"), text("e-3")] },
  { name: "transaction_id", kind: "text", data: [text("t-1"), text("t-2"), text("t-3")] },
  { name: "sequence", kind: "int64", data: [0n, 0n, 0n] },
  { name: "status", kind: "text", data: same("authorized") },
  { name: "amount_minor", kind: "int64", data: [100n, 200n, 300n] },
  { name: "currency", kind: "text", data: same("EUR") },
  { name: "user_id", kind: "text", data: same("u-1") },
  { name: "payment_method", kind: "text", data: same("card") },
  { name: "processor", kind: "text", data: same("adyen") },
  { name: "processor_reference", kind: "text", data: same("psp-1") },
  ...Object.values(varying)
]

/** Puts a transactions Parquet file whose three events have these millisecond timestamps as event_time. */
const putEventTimes = (millis: ReadonlyArray<bigint>) =>
  Effect.flatMap(RawBucket, (raw) =>
    raw.put(
      "raw/transactions/dt=2026-11-24/part-0.parquet",
      parquetOf(
        transactionColumns({
          event_time: { name: "event_time", kind: "timestampMillis", data: millis },
          merchant_id: { name: "merchant_id", kind: "text", data: same("m-1") }
        })
      )
    )
  )

/** Every row of the published batch index's transactions. */
const readIndexRows = (processed: ObjectStore) =>
  Effect.gen(function* () {
    const codec = yield* Parquet
    const rows: Array<TableRow> = []
    for (const info of yield* processed.list("batch_index/transactions/"))
      if (info.key.endsWith(".parquet"))
        rows.push(...(yield* codec.decode(yield* getRequired(processed, info.key))))
    return rows
  })

describe("Parquet footer: text columns read as binary", () => {
  it("turns a file DuckDB refuses for one bad text value into one it reads, every other column as it was", async () => {
    const file = parquetOf([
      { name: "id", kind: "text", data: [text("a"), badBytes("b"), text("Ü")] },
      { name: "n", kind: "int64", data: [1n, 2n, 3n] },
      { name: "note", kind: "text", data: [null, text("x"), text("y")] }
    ])
    assert.match(await describeWithDuckDb(file), /^refused: .*not valid UTF8/)
    const rewritten = withTextColumnsAsBinary(file)
    assert.isDefined(rewritten)
    assert.strictEqual(await describeWithDuckDb(rewritten!), "3 rows: id BLOB, n BIGINT, note BLOB")
    // The data pages come before the footer and are kept byte for byte.
    const footerStart = file.length - 8 - new DataView(file.buffer).getUint32(file.length - 8, true)
    assert.deepStrictEqual(rewritten!.subarray(0, footerStart), file.subarray(0, footerStart))
  })

  it("reads a DuckDB-written file's STRING columns, lists of them included, as BLOB with the same bytes; the rest as it was", async () => {
    const directory = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "pq-footer-"))
    const path = NodePath.join(directory, "written.parquet")
    const connection = await (await DuckDBInstance.create(":memory:")).connect()
    await connection.run("SET TimeZone = 'UTC'")
    await connection.run(
      `COPY (SELECT 'Ünïcode ' || i AS s, ['a', 'b' || i] AS l, (i * 1.25)::DECIMAL(18, 2) AS d, ` +
        `TIMESTAMPTZ '2026-11-24 10:00:00+00' AS t, i AS n FROM range(3) r(i)) TO '${path}' (FORMAT parquet, COMPRESSION zstd)`
    )
    const rewritten = withTextColumnsAsBinary(new Uint8Array(NodeFs.readFileSync(path)))
    assert.isDefined(rewritten)
    NodeFs.writeFileSync(NodePath.join(directory, "binary.parquet"), rewritten!)
    const query = async (sql: string) => JSON.stringify((await connection.runAndReadAll(sql)).getRowsJson())
    assert.strictEqual(
      await query(
        `SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '${directory}/binary.parquet')`
      ),
      JSON.stringify([
        ["s", "BLOB"],
        ["l", "BLOB[]"],
        ["d", "DECIMAL(18,2)"],
        ["t", "TIMESTAMP WITH TIME ZONE"],
        ["n", "BIGINT"]
      ])
    )
    assert.strictEqual(
      await query(
        `SELECT decode(s), list_transform(l, x -> decode(x)), d, t, n FROM '${directory}/binary.parquet' ORDER BY n`
      ),
      await query(`SELECT s, l, d, t, n FROM '${path}' ORDER BY n`)
    )
    connection.closeSync()
    NodeFs.rmSync(directory, { recursive: true, force: true })
  })

  it("skips fields it does not know, maps of booleans included, and refuses a collection larger than the footer", async () => {
    const file = parquetOf([{ name: "id", kind: "text", data: [badBytes("a")] }])
    const footerLength = new DataView(file.buffer).getUint32(file.length - 8, true)
    const footerStart = file.length - 8 - footerLength
    const footer = file.subarray(footerStart, file.length - 8)
    // FileMetaData: field 1 (version, 2 bytes), then an unknown field 100 holding a map, then field 2 (the
    // schema) with a long-form header, as the delta from 100 is negative, then the rest as it was.
    const withUnknownMap = (map: ReadonlyArray<number>) => {
      const changed = Uint8Array.from([
        ...footer.subarray(0, 2),
        0x0b,
        0xc8,
        0x01,
        ...map,
        0x09,
        0x04,
        ...footer.subarray(3)
      ])
      const out = new Uint8Array(footerStart + changed.length + 8)
      out.set(file.subarray(0, footerStart))
      out.set(changed, footerStart)
      new DataView(out.buffer).setUint32(footerStart + changed.length, changed.length, true)
      out.set(file.subarray(file.length - 4), footerStart + changed.length + 4)
      return out
    }
    // map<bool, bool> {false: false}: a boolean in a map takes a byte of its own (2 or 0 for false, as
    // writers differ; a 0 read as a field header would end the struct).
    for (const falseByte of [0x02, 0x00]) {
      const rewritten = withTextColumnsAsBinary(withUnknownMap([0x01, 0x11, falseByte, falseByte]))
      assert.isDefined(rewritten)
      assert.strictEqual(await describeWithDuckDb(rewritten!), "1 rows: id BLOB")
    }
    // A map declaring 2^40 entries in a few bytes is refused at once instead of looping.
    assert.isUndefined(withTextColumnsAsBinary(withUnknownMap([0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 0x11])))
  })

  it("gives nothing for a file without text columns, for non-Parquet bytes, a cut file, or timestamps under repeated names", () => {
    assert.isUndefined(withTextColumnsAsBinary(parquetOf([{ name: "n", kind: "int64", data: [1n] }])))
    // DuckDB renames `T` of `t` and `T` to `T_1`, which a lookup by name would miss: timestamps stay as they are.
    const repeatedName = parquetOf([
      { name: "t", kind: "int64", data: [1n] },
      { name: "T", kind: "timestampMillis", data: [2n] }
    ])
    assert.isUndefined(withPlainColumns(repeatedName, { timestamps: true }))
    const single = parquetOf([{ name: "T", kind: "timestampMillis", data: [2n] }])
    const units = withPlainColumns(single, { timestamps: true })?.timestampUnits
    assert.deepStrictEqual([...(units ?? [])], [["T", { unit: "millis", adjustedToUtc: true }]])
    assert.isUndefined(withTextColumnsAsBinary(text("PAR1 not really PAR1")))
    const file = parquetOf([{ name: "id", kind: "text", data: [text("a")] }])
    assert.isUndefined(withTextColumnsAsBinary(file.subarray(0, file.length - 1)))
    const footerCut = Uint8Array.from(file)
    // A footer length pointing before the file's start.
    new DataView(footerCut.buffer).setUint32(footerCut.length - 8, footerCut.length, true)
    assert.isUndefined(withTextColumnsAsBinary(footerCut))
  })

  it.effect("a bad text value in a producer's Parquet file refuses its row only, naming the field (§4)", () =>
    Effect.gen(function* () {
      const raw = yield* RawBucket
      yield* raw.put(
        "raw/transactions/dt=2026-11-24/part-0.parquet",
        parquetOf(
          transactionColumns({
            event_time: { name: "event_time", kind: "text", data: same("2026-11-24T10:00:00Z") },
            merchant_id: {
              name: "merchant_id",
              kind: "text",
              data: [text("m-1"), badBytes("m-"), text("m-Ü")]
            },
            // An unknown column is ignored, bad bytes and all (§1).
            note: { name: "note", kind: "text", data: [badBytes("n"), null, text("ok")] }
          })
        )
      )
      const batch = yield* runBatchIndex
      assert.deepStrictEqual(batch.transactions, { recordsIn: 3, accepted: 2, quarantined: 1 })
      const quarantined = yield* quarantineText(yield* ProcessedBucket, "quarantine/batch/")
      assert.include(quarantined, "merchant_id: not valid UTF-8: byte 0xff at byte 3")
      assert.include(quarantined, "part-0.parquet#row=2")
    }).pipe(Effect.provide(memoryLayers))
  )

  it.effect(
    "an out-of-range timestamp that is also a card number is redacted in the quarantine's reason",
    () =>
      Effect.gen(function* () {
        const cardNumber = 9_300_000_000_000_008n // 16 digits passing Luhn, past what microseconds hold as ms
        yield* putEventTimes([cardNumber, cardNumber, cardNumber])
        const batch = yield* runBatchIndex
        assert.deepStrictEqual(batch.transactions, { recordsIn: 3, accepted: 0, quarantined: 3 })
        const quarantined = yield* quarantineText(yield* ProcessedBucket, "quarantine/batch/")
        assert.include(quarantined, "event_time: timestamp out of range: [REDACTED-PAN] millis from 1970")
        assert.notInclude(quarantined, String(cardNumber))
      }).pipe(Effect.provide(Layer.merge(memoryLayers, Parquet.layer())))
  )

  it.effect(
    "a millisecond timestamp past what microseconds hold refuses its row only, naming the field (§4)",
    () =>
      Effect.gen(function* () {
        const millis = 1_764_000_000_123n
        yield* putEventTimes([millis, 9_300_000_000_000_000n, -millis])
        const batch = yield* runBatchIndex
        assert.deepStrictEqual(batch.transactions, { recordsIn: 3, accepted: 2, quarantined: 1 })
        const quarantined = yield* quarantineText(yield* ProcessedBucket, "quarantine/batch/")
        assert.include(quarantined, "event_time: timestamp out of range: 9300000000000000 millis from 1970")
        const processed = yield* ProcessedBucket
        const rows = yield* readIndexRows(processed)
        assert.deepStrictEqual(
          rows.map((row) => [row["event_id"], row["event_time"]]).sort(),
          [
            ["e-1", Number(millis) * 1000],
            ["e-3", -Number(millis) * 1000]
          ].sort()
        )
      }).pipe(Effect.provide(Layer.merge(memoryLayers, Parquet.layer())))
  )
})
