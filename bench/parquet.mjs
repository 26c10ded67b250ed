// Parquet writers on the same rows in the same run: the project's DuckDB codec (COPY, zstd), the
// @dsnp/parquetjs codec (snappy) and hyparquet-writer (snappy, its only built-in codec), each writing the
// indexed-transaction table; rows/s (median of three) and file size beside DuckDB's zstd file.
// Usage: npm run build && node bench/parquet.mjs   (BENCH_ROWS=500000)
import { Effect } from "effect"
import { parquetWriteBuffer } from "hyparquet-writer"
import { indexedTransactionSchema as schema } from "../dist/domain/rows.js"
import { makeDuckDbCodec, Parquet } from "../dist/layers/ParquetCodec.js"

const count = Number(process.env.BENCH_ROWS ?? 500_000)
// Seeded, payments-like rows: a few thousand users and merchants, statuses, amounts, timestamps.
let state = 42
const next = () => {
  state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0
  return state
}
const pick = (values) => values[next() % values.length]
const rows = Array.from({ length: count }, (_, index) => ({
  event_id: `evt-${index.toString(36)}-${next().toString(36)}`,
  transaction_id: `tx-${Math.floor(index / 3).toString(36)}`,
  sequence: index % 3,
  event_time: 1_764_000_000_000_000 + index * 1_000_003,
  status: pick(["authorized", "captured", "settled", "refunded", "chargeback"]),
  amount_minor: next() % 500_000,
  currency: pick(["USD", "EUR", "GBP", "JPY"]),
  user_id: `u-${next() % 5000}`,
  merchant_id: `m-${next() % 800}`,
  payment_method: pick(["card", "wallet", "bank_transfer"]),
  card_bin: pick(["411111", "555555", null]),
  card_last4: String(next() % 10_000).padStart(4, "0"),
  processor: pick(["adyen", "stripe", "worldpay"]),
  processor_reference: `psp-${next().toString(36)}`,
  country: pick(["US", "DE", "GB", "JP", null]),
  device_id: `dev-${next() % 20_000}`,
  ip_address: `10.${next() % 256}.${next() % 256}.${next() % 256}`,
  user_country: pick(["US", "DE", null]),
  user_kyc_level: pick(["none", "basic", "full"]),
  user_risk_tier: pick(["low", "medium", "high"]),
  user_created_at: 1_700_000_000_000_000 + (next() % 1_000_000) * 1_000_000,
  merchant_name: `Merchant ${next() % 800}`,
  merchant_mcc: pick(["5812", "5411", "4111"]),
  merchant_country: pick(["US", "DE"]),
  merchant_risk_level: pick(["low", "medium", "high"]),
  ingest_path: "batch",
  source_location: `raw/transactions/dt=2026-11-24/part-${index % 16}.jsonl:${index}`,
  transaction_id_hash: next()
}))

const duckdb = makeDuckDbCodec({ compression: "zstd", rowGroupSize: 65_536 })
const parquetjs = await Effect.runPromise(Effect.provide(Parquet, Parquet.layerParquetjs()))
const hyparquetSchema = [
  { name: "root", num_children: schema.length },
  ...schema.map((column) =>
    column.type === "string"
      ? { name: column.name, type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" }
      : column.type === "timestamp"
        ? {
            name: column.name,
            type: "INT64",
            logical_type: { type: "TIMESTAMP", isAdjustedToUTC: true, unit: "MICROS" },
            repetition_type: "OPTIONAL"
          }
        : { name: column.name, type: "INT64", repetition_type: "OPTIONAL" }
  )
]
const hyparquet = (tableRows) =>
  new Uint8Array(
    parquetWriteBuffer({
      schema: hyparquetSchema,
      rowGroupSize: 65_536,
      columnData: schema.map((column) => ({
        name: column.name,
        data: tableRows.map((row) => {
          const value = row[column.name]
          return value === null || column.type === "string" ? value : BigInt(value)
        })
      }))
    })
  )

const writers = [
  ["DuckDB COPY, zstd (project default)", (input) => Effect.runPromise(duckdb.encode(schema, input))],
  ["@dsnp/parquetjs, snappy", (input) => Effect.runPromise(parquetjs.encode(schema, input))],
  ["hyparquet-writer, snappy", async (input) => hyparquet(input)]
]
const results = []
for (const [label, write] of writers) {
  const seconds = []
  let size = 0
  for (let round = 0; round < 3; round++) {
    const started = process.hrtime.bigint()
    size = (await write(rows)).byteLength
    seconds.push(Number(process.hrtime.bigint() - started) / 1e9)
  }
  results.push({ label, seconds: seconds.sort((a, b) => a - b)[1], size })
}
const reference = results[0].size
console.log(`\n${count} indexed transaction rows, ${schema.length} columns`)
console.log("writer".padEnd(38), "rows/s".padStart(10), "MB".padStart(8), "size vs DuckDB zstd".padStart(20))
for (const { label, seconds, size } of results)
  console.log(
    label.padEnd(38),
    Math.round(count / seconds)
      .toString()
      .padStart(10),
    (size / 1048576).toFixed(1).padStart(8),
    `${(size / reference).toFixed(2)}x`.padStart(20)
  )
