// The whole reconciliation program (`recon reconcile`) over files: a committed final_aggregate of N rows
// (Parquet, synthesised with DuckDB) and about N settlement lines in CSV reports under
// raw/settlements/processor=<p>/dt=<d>/ (also DuckDB), then runReconcile reading both, matching, writing
// recon/ and the exceptions (in-memory key-value store). Prints the time of each part and peak RSS.
// Usage: npm run build && node --max-old-space-size=12000 bench/reconcile-program.mjs [rows]  (default 1000000)
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { DuckDBInstance } from "@duckdb/node-api"
import { Effect, Layer } from "effect"
import { layerMemory } from "../dist/layers/KeyValueStore.js"
import { ProcessedBucket, RawBucket } from "../dist/layers/ObjectStore.js"
import { Parquet } from "../dist/layers/ParquetCodec.js"
import { runReconcile } from "../dist/streams/reconcile.js"

const rows = Number(process.argv[2] ?? process.env.BENCH_ROWS ?? 1_000_000)
const root =
  process.env.BENCH_DIR ?? NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "recon-reconcile-bench-"))
const processed = NodePath.join(root, "processed")
const raw = NodePath.join(root, "raw")
const datasetDir = NodePath.join(processed, "final_aggregate")
const settlementDir = NodePath.join(raw, "raw", "settlements")

const synthesize = async () => {
  NodeFs.rmSync(root, { recursive: true, force: true })
  NodeFs.mkdirSync(datasetDir, { recursive: true })
  NodeFs.mkdirSync(settlementDir, { recursive: true })
  const connection = await (await DuckDBInstance.create(":memory:", { threads: "2" })).connect()
  await connection.run("SET TimeZone = 'UTC'")
  await connection.run(`
CREATE TABLE base AS
  SELECT i, (hash(i) >> 1)::BIGINT AS h,
    TIMESTAMPTZ '2026-10-01 00:00:00+00' + to_microseconds((hash(i * 7) % (30 * 86400000000))::BIGINT) AS first_ts,
    ['adyen', 'stripe', 'checkout', 'worldpay', 'braintree'][i % 5 + 1] AS processor
  FROM range(${rows}) t(i)`)
  await connection.run(`
COPY (
  SELECT
    'tx-' || i AS transaction_id, 'settled' AS status, 1::BIGINT AS sequence,
    (100 + h % 500000)::BIGINT AS amount_minor, ['EUR', 'USD', 'GBP'][(h >> 8) % 3 + 1] AS currency,
    'u-' || (h >> 16) % 200000 AS user_id, 'm-' || (h >> 28) % 5000 AS merchant_id,
    'card' AS payment_method, '411111' AS card_bin, '1111' AS card_last4, processor,
    'ref_' || i || '_' || processor AS processor_reference, 'DE' AS country,
    first_ts AS first_event_time, first_ts + INTERVAL 2 HOUR AS last_event_time,
    first_ts AS authorized_at, first_ts + INTERVAL 1 HOUR AS captured_at, first_ts + INTERVAL 1 DAY AS settled_at,
    NULL::TIMESTAMPTZ AS refunded_at, NULL::TIMESTAMPTZ AS chargeback_at,
    2::BIGINT AS event_count, 0::BIGINT AS fraud_signal_count, NULL::DOUBLE AS fraud_max_score,
    []::VARCHAR[] AS fraud_reasons, false AS confirmed_fraud,
    NULL::VARCHAR AS user_country, NULL::VARCHAR AS user_kyc_level, NULL::VARCHAR AS user_risk_tier,
    NULL::TIMESTAMPTZ AS user_created_at, NULL::VARCHAR AS merchant_name, NULL::VARCHAR AS merchant_mcc,
    NULL::VARCHAR AS merchant_country, NULL::VARCHAR AS merchant_risk_level,
    strftime(first_ts, '%Y-%m-%d') AS dt
  FROM base
) TO '${datasetDir}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (dt), FILENAME_PATTERN 'part-{i}')`)
  // 1% never settled, 1% off by 10.00, 0.5% settled twice, 0.5% unknown references; the rest exact,
  // settled 0–2 days after capture. Every processor's report in one format (the bench's mapping).
  await connection.run(`
COPY (
  WITH lines AS (
    SELECT processor, 'ref_' || i || '_' || processor AS reference,
      (100 + h % 500000) + CASE WHEN h % 100 = 1 THEN 1000 ELSE 0 END AS amount,
      ['EUR', 'USD', 'GBP'][(h >> 8) % 3 + 1] AS currency,
      strftime(first_ts + INTERVAL 1 HOUR + to_days((h >> 20) % 3), '%Y-%m-%d') AS dt, h
    FROM base WHERE h % 100 <> 0
  )
  SELECT reference AS ref, printf('%d.%02d', amount // 100, amount % 100) AS amount, currency,
    '0.00' AS fee, dt AS settled_on, 'settled' AS kind, 'po_' || processor || '_' || dt AS payout, processor, dt
  FROM lines
  UNION ALL
  SELECT reference, printf('%d.%02d', amount // 100, amount % 100), currency, '0.00', dt, 'settled', 'po2', processor, dt
  FROM lines WHERE h % 200 = 2
  UNION ALL
  SELECT 'ghost_' || reference, '1.00', currency, '0.00', dt, 'settled', 'po3', processor, dt
  FROM lines WHERE h % 200 = 3
) TO '${settlementDir}' (FORMAT csv, HEADER, PARTITION_BY (processor, dt), FILENAME_PATTERN 'report-{i}')`)
  const counted = await connection.runAndReadAll(
    `SELECT filename, count(*) AS n FROM read_parquet('${datasetDir}/*/*.parquet', filename = true, hive_partitioning = false) GROUP BY filename ORDER BY filename`
  )
  const files = counted.getRowObjects().map((row) => {
    const key = NodePath.relative(processed, String(row.filename)).split(NodePath.sep).join("/")
    return { key, dt: /dt=(\d{4}-\d{2}-\d{2})/.exec(key)[1], rows: Number(row.n) }
  })
  NodeFs.writeFileSync(
    NodePath.join(datasetDir, "_manifest.json"),
    JSON.stringify({
      dataset: "final_aggregate",
      version: "bench",
      committed_at: new Date().toISOString(),
      files
    })
  )
}

const mappings = ["adyen", "stripe", "checkout", "worldpay", "braintree"].map((processor) => ({
  processor,
  delimiter: ",",
  columns: {
    processor_reference: "ref",
    amount: "amount",
    currency: "currency",
    fee: "fee",
    settlement_date: "settled_on",
    type: "kind",
    payout_id: "payout"
  },
  date_format: "YYYY-MM-DD",
  type_values: { settled: "settled" },
  amount_is_net: false,
  reference_separator: "|"
}))

const startedSynth = performance.now()
await synthesize()
const synthSeconds = (performance.now() - startedSynth) / 1000
const started = performance.now()
const report = await Effect.runPromise(
  runReconcile({ mappings, from: "2026-10-04", to: "2026-10-27" }).pipe(
    Effect.provide(
      Layer.mergeAll(
        RawBucket.layerLocal(raw),
        ProcessedBucket.layerLocal(processed),
        Parquet.layer(),
        layerMemory
      )
    )
  )
)
const seconds = (performance.now() - started) / 1000
console.log(
  JSON.stringify(
    {
      index_rows: rows,
      settlement_lines: report.counts.settlement_lines,
      lines_in_range: report.counts.settlement_lines_in_range,
      synthesise_seconds: Number(synthSeconds.toFixed(1)),
      reconcile_seconds: Number(seconds.toFixed(1)),
      match_seconds: Number((report.matchMillis / 1000).toFixed(2)),
      phase_seconds: Object.fromEntries(
        Object.entries(report.phaseMillis).map(([phase, millis]) => [
          phase,
          Number((millis / 1000).toFixed(2))
        ])
      ),
      matches_by_rule: report.counts.matches_by_rule,
      breaks_by_type: report.counts.breaks_by_type,
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      dir: root
    },
    null,
    2
  )
)
if (process.env.BENCH_DIR === undefined) NodeFs.rmSync(root, { recursive: true, force: true })
