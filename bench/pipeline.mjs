// Throughput and peak memory of the generator and of batch + final, each in its own process, beside
// DuckDB SQL doing the batch + final work on the same files in the same run.
// Usage: npm run bench  (BENCH_TRANSACTIONS=100000 by default; BENCH_DIR to keep the files)
import { spawn, spawnSync } from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"

const here = NodePath.dirname(fileURLToPath(import.meta.url))
const cli = NodePath.join(here, "..", "dist", "programs", "cli.js")
const transactions = Number(process.env.BENCH_TRANSACTIONS ?? 100_000)
const root = process.env.BENCH_DIR ?? NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "recon-bench-"))

// Largest peak RSS (MB) that report-rss.cjs printed on a process's standard error.
const peakRssMbOf = (stderr) =>
  Math.max(...[...stderr.matchAll(/@@maxrss_kb (\d+)/g)].map((m) => Number(m[1]))) / 1024

const measure = (label, args) => {
  const started = process.hrtime.bigint()
  const child = spawnSync("node", args, {
    encoding: "utf8",
    maxBuffer: 1 << 28,
    env: { ...process.env, NODE_OPTIONS: `--require ${NodePath.join(here, "report-rss.cjs")}` }
  })
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  if (child.status !== 0) {
    console.error(child.stdout, child.stderr)
    throw new Error(`${label} failed with exit code ${child.status}`)
  }
  return { label, seconds, peakRssMb: peakRssMbOf(child.stderr), stdout: child.stdout }
}

// Several workers at once (e.g. the shards of one run): wall time and the sum of their peak RSS.
const measureParallel = async (label, argsList) => {
  const started = process.hrtime.bigint()
  const peaks = await Promise.all(
    argsList.map(
      (args) =>
        new Promise((resolve, reject) => {
          const child = spawn("node", args, {
            stdio: ["ignore", "ignore", "pipe"],
            env: { ...process.env, NODE_OPTIONS: `--require ${NodePath.join(here, "report-rss.cjs")}` }
          })
          let stderr = ""
          child.stderr.on("data", (chunk) => {
            stderr += chunk
          })
          child.on("exit", (code) => {
            if (code !== 0) reject(new Error(`${label} failed with exit code ${code}: ${stderr}`))
            resolve(peakRssMbOf(stderr))
          })
        })
    )
  )
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return { label, seconds, peakRssMb: peaks.reduce((sum, peak) => sum + peak, 0) }
}

// With BENCH_DIR holding an earlier run's generated files, generation is not repeated (10M takes ~10 min).
const reuse = process.env.BENCH_DIR !== undefined && NodeFs.existsSync(`${root}/in/summary.json`)
const generated = reuse
  ? undefined
  : measure("generate", [cli, "generate", "--out", `${root}/in`, "--transactions", String(transactions)])
NodeFs.rmSync(`${root}/out`, { recursive: true, force: true })
NodeFs.rmSync(`${root}/duckdb-out`, { recursive: true, force: true })
const summary = JSON.parse(NodeFs.readFileSync(`${root}/in/summary.json`, "utf8"))
const rawLines = summary.raw.transactions.lines + summary.raw.fraud_signals.lines
const allLines = rawLines + summary.stream.transactions.lines + summary.stream.fraud_signals.lines
const batch = measure("batch + final (this project)", [
  cli,
  "batch",
  "--input",
  `${root}/in`,
  "--output",
  `${root}/out`
])
const batchResult = JSON.parse(batch.stdout)
const baseline = measure("batch + final (DuckDB SQL baseline)", [
  NodePath.join(here, "duckdb-baseline.mjs"),
  `${root}/in`,
  `${root}/duckdb-out`
])
const baselineRows = JSON.parse(baseline.stdout.trim().split("\n").at(-1)).rows

// The final aggregate alone, again on the same batch index: one worker (SQL, then JavaScript), then two
// shards side by side (each reads only its own rows through transaction_id_hash).
const finalArgs = (extra) => [cli, "final", "--input", `${root}/in`, "--output", `${root}/out`, ...extra]
const inputRows = batchResult.finalAggregate.inputRowsRead
NodeFs.rmSync(`${root}/out/final_aggregate`, { recursive: true, force: true })
const finalOne = measure("final only, 1 worker", finalArgs([]))
// The same final aggregate in JavaScript (the engine before DuckDB SQL; BENCH_FINAL_JS=0 skips it, 10M takes ~9 min).
let finalJs
if (process.env.BENCH_FINAL_JS !== "0") {
  NodeFs.rmSync(`${root}/out/final_aggregate`, { recursive: true, force: true })
  finalJs = measure("final only, 1 worker, --engine js", finalArgs(["--engine", "js"]))
}
NodeFs.rmSync(`${root}/out/final_aggregate`, { recursive: true, force: true })
const finalTwo = await measureParallel("final only, 2 shards at once", [
  finalArgs(["--shard", "0/2"]),
  finalArgs(["--shard", "1/2"])
])

// The whole batch + final again with `--workers 2` (two index shards at once, then the final aggregate: one
// process in SQL), into a fresh output directory.
NodeFs.rmSync(`${root}/out2`, { recursive: true, force: true })
const batchTwo = measure("batch + final, --workers 2 (RSS: per worker)", [
  cli,
  "batch",
  "--input",
  `${root}/in`,
  "--output",
  `${root}/out2`,
  "--workers",
  "2"
])
const batchTwoRows = JSON.parse(batchTwo.stdout).finalAggregate.reduce((sum, shard) => sum + shard.rows, 0)
if (batchTwoRows !== batchResult.finalAggregate.rows)
  throw new Error(`--workers 2 made ${batchTwoRows} rows, one worker ${batchResult.finalAggregate.rows}`)

// One line of the table: a measured run over `count` input units.
const rowOf = (run, input, count, label = run.label) => [
  label,
  input,
  run.seconds,
  count / run.seconds,
  run.peakRssMb
]
const rows = [
  ...(generated === undefined ? [] : [rowOf(generated, `${allLines} lines`, allLines)]),
  rowOf(batch, `${rawLines} raw records`, rawLines),
  rowOf(batchTwo, `${rawLines} raw records`, rawLines),
  rowOf(finalOne, `${inputRows} index rows`, inputRows),
  ...(finalJs === undefined ? [] : [rowOf(finalJs, `${inputRows} index rows`, inputRows)]),
  rowOf(finalTwo, `${inputRows} index rows`, inputRows, `${finalTwo.label} (RSS summed)`),
  rowOf(baseline, `${rawLines} raw records`, rawLines)
]
console.log(
  `\n${summary.transactions} transactions, ${NodeOs.cpus().length} cores, node ${process.version}; files in ${root}`
)
console.log(
  "stage".padEnd(46),
  "input".padStart(20),
  "seconds".padStart(9),
  "rows/s".padStart(10),
  "peak RSS MB".padStart(12)
)
for (const [label, input, seconds, rate, rss] of rows) {
  console.log(
    label.padEnd(46),
    input.padStart(20),
    seconds.toFixed(2).padStart(9),
    Math.round(rate).toString().padStart(10),
    rss.toFixed(0).padStart(12)
  )
}
console.log(
  `final_aggregate rows: project ${batchResult.finalAggregate.rows}, DuckDB baseline ${baselineRows} ` +
    "(the baseline skips only unparseable lines, so records with bad values still make rows there); " +
    `project/baseline time ${(batch.seconds / baseline.seconds).toFixed(2)}x`
)
if (process.env.BENCH_DIR === undefined) NodeFs.rmSync(root, { recursive: true, force: true })
