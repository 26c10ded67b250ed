// Baseline: DuckDB SQL doing the batch + final work on the same raw/ files: read JSON Lines (bad lines
// skipped), dedupe by event_id, latest state by (sequence, event_time, event_id), lifecycle times, fraud
// roll-up, newest dimension snapshot join, written as Parquet partitioned by dt.
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { DuckDBInstance } from "@duckdb/node-api"

const [input, output] = process.argv.slice(2)
const newest = (dir) => {
  const snapshots = NodeFs.readdirSync(dir)
    .filter((n) => n.startsWith("snapshot="))
    .sort()
  return NodePath.join(dir, snapshots.at(-1), "*")
}
const raw = NodePath.join(input, "raw")
const connection = await (await DuckDBInstance.create(":memory:", { threads: "2" })).connect()
await connection.run("SET TimeZone = 'UTC'")
const json = (glob, columns) =>
  `read_json('${glob}', format = 'newline_delimited', ignore_errors = true, columns = ${columns})`
const transactionColumns = `{event_id: 'VARCHAR', transaction_id: 'VARCHAR', sequence: 'BIGINT', event_time: 'VARCHAR', status: 'VARCHAR', amount_minor: 'BIGINT', currency: 'VARCHAR', user_id: 'VARCHAR', merchant_id: 'VARCHAR', payment_method: 'VARCHAR', card_bin: 'VARCHAR', card_last4: 'VARCHAR', processor: 'VARCHAR', processor_reference: 'VARCHAR', country: 'VARCHAR'}`
const signalColumns = `{signal_id: 'VARCHAR', transaction_id: 'VARCHAR', score: 'DOUBLE', reasons: 'VARCHAR[]', confirmed_fraud: 'BOOLEAN'}`
await connection.run(`
CREATE TABLE events AS
SELECT DISTINCT ON (transaction_id, event_id) *, CAST(TRY_CAST(event_time AS TIMESTAMPTZ) AS TIMESTAMP) AS ts
FROM ${json(`${raw}/transactions/*/*.jsonl*`, transactionColumns)}
WHERE event_id IS NOT NULL AND transaction_id IS NOT NULL AND TRY_CAST(event_time AS TIMESTAMPTZ) IS NOT NULL`)
await connection.run(`
CREATE TABLE signals AS SELECT * FROM ${json(`${raw}/fraud_signals/*/*.jsonl*`, signalColumns)} WHERE signal_id IS NOT NULL`)
await connection.run(
  `CREATE TABLE users AS SELECT * FROM read_json('${newest(`${raw}/dimensions/users`)}', format = 'newline_delimited', ignore_errors = true)`
)
await connection.run(
  `CREATE TABLE merchants AS SELECT * FROM read_json('${newest(`${raw}/dimensions/merchants`)}', format = 'newline_delimited', ignore_errors = true)`
)
await connection.run(`
COPY (
  WITH latest AS (
    SELECT DISTINCT ON (transaction_id) * FROM events ORDER BY transaction_id, sequence DESC, ts DESC, event_id DESC
  ), lifecycle AS (
    SELECT transaction_id, min(ts) AS first_event_time, max(ts) AS last_event_time, count(DISTINCT event_id) AS event_count,
      min(ts) FILTER (WHERE status = 'authorized') AS authorized_at, min(ts) FILTER (WHERE status = 'captured') AS captured_at,
      min(ts) FILTER (WHERE status = 'settled') AS settled_at,
      min(ts) FILTER (WHERE status IN ('refunded', 'partially_refunded')) AS refunded_at,
      min(ts) FILTER (WHERE status = 'chargeback') AS chargeback_at
    FROM events GROUP BY transaction_id
  ), fraud AS (
    SELECT transaction_id, count(DISTINCT signal_id) AS fraud_signal_count, max(score) AS fraud_max_score,
      list_sort(list_distinct(flatten(list(reasons)))) AS fraud_reasons, bool_or(coalesce(confirmed_fraud, false)) AS confirmed_fraud
    FROM signals GROUP BY transaction_id
  )
  SELECT l.transaction_id, l.status, l.sequence, l.amount_minor, l.currency, l.user_id, l.merchant_id, l.payment_method,
    l.card_bin, l.card_last4, l.processor, l.processor_reference, l.country, c.* EXCLUDE (transaction_id),
    coalesce(f.fraud_signal_count, 0) AS fraud_signal_count, f.fraud_max_score, coalesce(f.fraud_reasons, []) AS fraud_reasons,
    coalesce(f.confirmed_fraud, false) AS confirmed_fraud,
    u.country AS user_country, u.kyc_level AS user_kyc_level, u.risk_tier AS user_risk_tier, u.created_at AS user_created_at,
    m.name AS merchant_name, m.mcc AS merchant_mcc, m.country AS merchant_country, m.risk_level AS merchant_risk_level,
    CAST(c.first_event_time AS DATE) AS dt
  FROM latest l JOIN lifecycle c USING (transaction_id) LEFT JOIN fraud f USING (transaction_id)
  LEFT JOIN users u ON u.user_id = l.user_id LEFT JOIN merchants m ON m.merchant_id = l.merchant_id
) TO '${output}' (FORMAT parquet, PARTITION_BY (dt), COMPRESSION zstd, OVERWRITE_OR_IGNORE)`)
const rows = await connection.runAndReadAll(`SELECT count(*) FROM read_parquet('${output}/*/*.parquet')`)
console.log(JSON.stringify({ rows: Number(rows.getRows()[0][0]) }))
