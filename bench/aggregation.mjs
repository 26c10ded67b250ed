// Aggregation refresh time and peak RSS over a final_aggregate of BENCH_ROWS rows (1M by default; 10M with
// BENCH_ROWS=10000000), beside DuckDB SQL computing the same per-merchant, per-currency and hourly figures
// over the same files, each in its own process. The final_aggregate is synthesised with DuckDB (a Zipf-like
// merchant mix: one hot merchant holds ~30% of the rows) and committed with a manifest, as the final
// aggregator would. Usage: npm run build && node bench/aggregation.mjs   (BENCH_DIR to keep the files)
import { spawnSync } from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { DuckDBInstance } from "@duckdb/node-api"

const here = NodePath.dirname(fileURLToPath(import.meta.url))
const rows = Number(process.env.BENCH_ROWS ?? 1_000_000)
const root = process.env.BENCH_DIR ?? NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "recon-agg-bench-"))
const processed = NodePath.join(root, "processed")
const datasetDir = NodePath.join(processed, "final_aggregate")

const synthesize = async () => {
  NodeFs.rmSync(datasetDir, { recursive: true, force: true })
  NodeFs.mkdirSync(datasetDir, { recursive: true })
  const connection = await (await DuckDBInstance.create(":memory:", { threads: "2" })).connect()
  await connection.run("SET TimeZone = 'UTC'")
  await connection.run(`
COPY (
  WITH base AS (
    SELECT i, (hash(i) >> 1)::BIGINT AS h,
      TIMESTAMPTZ '2026-10-01 00:00:00+00' + to_microseconds((hash(i * 7) % (30 * 86400000000))::BIGINT) AS first_ts
    FROM range(${rows}) t(i)
  )
  SELECT
    'tx-' || i AS transaction_id,
    ['authorized', 'captured', 'settled', 'settled', 'settled', 'refunded', 'chargeback', 'declined'][(h % 8) + 1] AS status,
    1::BIGINT AS sequence,
    (100 + h % 500000)::BIGINT AS amount_minor,
    ['EUR', 'USD', 'GBP', 'JPY', 'INR', 'KWD'][(h >> 8) % 6 + 1] AS currency,
    'u-' || (h >> 16) % 200000 AS user_id,
    CASE WHEN (h >> 24) % 10 < 3 THEN 'm-0' ELSE 'm-' || (1 + (h >> 28) % 4999) END AS merchant_id,
    'card' AS payment_method, '411111' AS card_bin, '1111' AS card_last4, 'adyen' AS processor,
    'psp-' || i AS processor_reference, 'DE' AS country,
    first_ts AS first_event_time, first_ts + INTERVAL 2 HOUR AS last_event_time,
    first_ts AS authorized_at, first_ts + INTERVAL 1 HOUR AS captured_at, NULL::TIMESTAMPTZ AS settled_at,
    CASE WHEN h % 8 = 5 THEN first_ts + INTERVAL 2 HOUR END AS refunded_at,
    CASE WHEN h % 8 = 6 THEN first_ts + INTERVAL 2 HOUR END AS chargeback_at,
    2::BIGINT AS event_count, (h >> 40) % 2 AS fraud_signal_count,
    CASE WHEN (h >> 40) % 2 = 1 THEN ((h >> 44) % 1000) / 1000.0 END AS fraud_max_score,
    CASE WHEN (h >> 40) % 2 = 1 THEN ['velocity'] ELSE []::VARCHAR[] END AS fraud_reasons,
    (h >> 50) % 50 = 0 AS confirmed_fraud,
    'DE' AS user_country, 'full' AS user_kyc_level, 'low' AS user_risk_tier, TIMESTAMPTZ '2025-01-01 00:00:00+00' AS user_created_at,
    'Merchant ' || merchant_id AS merchant_name, '5411' AS merchant_mcc, 'DE' AS merchant_country, 'low' AS merchant_risk_level,
    strftime(first_ts, '%Y-%m-%d') AS dt
  FROM base
) TO '${datasetDir}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (dt), FILENAME_PATTERN 'part-{i}')`)
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
      version: `bench-${rows}`,
      committed_at: new Date().toISOString(),
      files
    })
  )
  connection.closeSync()
  return files.length
}

const measure = (label, args, env = {}) => {
  const started = process.hrtime.bigint()
  const child = spawnSync("node", args, {
    encoding: "utf8",
    maxBuffer: 1 << 26,
    env: { ...process.env, ...env, NODE_OPTIONS: `--require ${NodePath.join(here, "report-rss.cjs")}` }
  })
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  if (child.status !== 0) {
    console.error(child.stdout, child.stderr)
    throw new Error(`${label} failed with exit code ${child.status}`)
  }
  const rss = [...child.stderr.matchAll(/@@maxrss_kb (\d+)/g)].map((match) => Number(match[1]))
  return { label, seconds, peakRssMb: Math.max(...rss) / 1024 }
}

const reuse =
  process.env.BENCH_DIR !== undefined && NodeFs.existsSync(NodePath.join(datasetDir, "_manifest.json"))
const synthStarted = process.hrtime.bigint()
const fileCount = reuse ? "reused" : await synthesize()
const synthSeconds = Number(process.hrtime.bigint() - synthStarted) / 1e9

const kvDir = NodePath.join(root, "kv")
NodeFs.rmSync(kvDir, { recursive: true, force: true })
const project = measure(
  "aggregation refresh (this project)",
  [NodePath.join(here, "..", "dist", "programs", "aggregation.js")],
  {
    RECON_PROCESSED_DIR: processed,
    RECON_RAW_DIR: NodePath.join(root, "raw"),
    RECON_KV_BACKEND: "directory",
    RECON_KV_DIR: kvDir
  }
)
const baselineScript = `
const { DuckDBInstance } = require("@duckdb/node-api")
;(async () => {
  const c = await (await DuckDBInstance.create(":memory:", { threads: "2" })).connect()
  const files = "read_parquet('${datasetDir}/*/*.parquet', hive_partitioning = false)"
  await c.run("CREATE TABLE m AS SELECT merchant_id, any_value(merchant_name), count(*), count(refunded_at) / count(*), count(chargeback_at) / count(*), count_if(confirmed_fraud) / count(*), max(fraud_max_score), max(last_event_time) FROM " + files + " GROUP BY merchant_id")
  await c.run("CREATE TABLE v AS SELECT merchant_id, currency, sum(amount_minor), sum(amount_minor) FILTER (WHERE status IN ('captured', 'settled')) FROM " + files + " GROUP BY ALL")
  await c.run("CREATE TABLE h AS SELECT date_trunc('hour', first_event_time), currency, count(*), sum(amount_minor), count_if(confirmed_fraud) FROM " + files + " GROUP BY ALL")
  const n = await c.runAndReadAll("SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM v), (SELECT count(*) FROM h)")
  console.log(JSON.stringify(n.getRows()[0].map(Number)))
})()`
const baseline = measure("same figures by DuckDB SQL (baseline)", ["-e", baselineScript], {
  NODE_PATH: NodePath.join(here, "..", "node_modules")
})

console.log(
  `final_aggregate: ${rows.toLocaleString("en")} rows in ${fileCount} files (synthesised in ${synthSeconds.toFixed(1)} s) under ${root}`
)
console.table(
  [project, baseline].map((result) => ({
    run: result.label,
    seconds: Number(result.seconds.toFixed(2)),
    "rows/s": Math.round(rows / result.seconds),
    "peak RSS MB": Math.round(result.peakRssMb)
  }))
)
console.log(`ratio: ${(project.seconds / baseline.seconds).toFixed(1)}× DuckDB's time`)
