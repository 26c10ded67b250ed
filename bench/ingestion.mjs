// The ingestion API under autocannon on real Kafka (and Redis for idempotency), beside a bare Node HTTP
// server that answers 202 without doing anything (this machine's HTTP ceiling) in the same run.
// Then a count check: every acknowledged record must be in Kafka.
// Needs the local services: `bash scripts/services.sh up && set -a && . .services/env && set +a`.
// Usage: npm run build && node bench/ingestion.mjs   (BENCH_SECONDS=10, BENCH_BATCH=100, BENCH_CONNECTIONS=50)
import { spawn } from "node:child_process"
import autocannon from "autocannon"
import { Kafka, logLevel } from "kafkajs"
import { hashApiKey } from "../dist/domain/apiAuth.js"

const brokers = (process.env.RECON_KAFKA_BROKERS ?? "").split(",").filter(Boolean)
if (brokers.length === 0) {
  console.error("RECON_KAFKA_BROKERS must be set (source .services/env)")
  process.exit(2)
}
const seconds = Number(process.env.BENCH_SECONDS ?? 10)
const batchSize = Number(process.env.BENCH_BATCH ?? 100)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50)
const runId = Date.now().toString(36)
const apiKey = `rk_bench-${runId}`
const apiPort = 18280
const baselinePort = 18281
const platformApiPort = 18282
const twoWorkersApiPort = 18283

const startProcess = (args, env, readyText) =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    const onData = (chunk) => {
      output += chunk
      if (output.includes(readyText)) resolve(child)
    }
    child.stdout.on("data", onData)
    child.stderr.on("data", onData)
    child.on("exit", (code) => reject(new Error(`exited ${code} before ready:\n${output}`)))
  })

const stop = (child) =>
  new Promise((resolve) => {
    child.removeAllListeners("exit")
    child.on("exit", resolve)
    child.kill("SIGTERM")
  })

// Bodies are built by string concatenation from one template, so the load generator (sharing the two cores)
// spends as little CPU as it can per record; every record still has its own event_id.
let sequence = 0
const template = JSON.stringify({
  event_id: "bench-RUN-N",
  transaction_id: "bt-RUN-T",
  sequence: 0,
  event_time: "2026-11-24T10:15:30.123+05:30",
  status: "authorized",
  amount_minor: 1000,
  currency: "EUR",
  user_id: "u-U",
  merchant_id: "m-M",
  payment_method: "card",
  card_bin: "411111",
  card_last4: "1111",
  processor: "adyen",
  processor_reference: "psp-RUN-N",
  country: "DE"
}).replaceAll("RUN", runId)
const [head, afterId, afterTransaction, afterUser, afterMerchant, afterReference] =
  template.split(/N|T(?=")|U(?=")|M(?=")/)
const transaction = () => {
  const n = sequence++
  return `${head}${n}${afterId}${n >> 1}${afterTransaction}${n % 10_000}${afterUser}${n % 500}${afterMerchant}${n}${afterReference}`
}
const bodyOf = (records) => {
  if (records === 1) return transaction()
  let body = "["
  for (let index = 0; index < records; index++) body += (index === 0 ? "" : ",") + transaction()
  return `${body}]`
}

const load = (port, records) =>
  autocannon({
    url: `http://127.0.0.1:${port}`,
    connections,
    duration: seconds,
    requests: [
      {
        method: "POST",
        path: "/v1/transactions",
        headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
        setupRequest: (request) => ({
          ...request,
          body: bodyOf(records)
        })
      }
    ]
  })

const kafka = new Kafka({ clientId: "bench-ingestion", brokers, logLevel: logLevel.NOTHING })
const admin = kafka.admin()
await admin.connect()
const endOffsetSum = async () => {
  const topics = await admin.listTopics()
  if (!topics.includes("transactions")) return 0
  return (await admin.fetchTopicOffsets("transactions")).reduce(
    (sum, partition) => sum + Number(partition.offset),
    0
  )
}

const baseline = await startProcess(
  [
    "-e",
    `require("node:http").createServer((req, res) => { req.resume(); req.on("end", () => { res.writeHead(202, { "content-type": "application/json" }); res.end('{"accepted":1}') }) }).listen(${baselinePort}, "127.0.0.1", () => console.log("ready"))`
  ],
  {},
  "ready"
)
const startApi = (port, server, workers = 1) =>
  startProcess(
    ["dist/programs/api.js"],
    {
      RECON_API_PORT: String(port),
      RECON_API_KEYS: `bench:${hashApiKey(apiKey)}`,
      RECON_API_MAX_RECORDS: "1000",
      RECON_API_SERVER: server,
      RECON_API_WORKERS: String(workers)
    },
    "Listening on"
  )
// The default server answers the POST routes straight from node:http; `platform` sends them through the
// HttpApi handlers as well: the same handler behind both, so the difference is the HTTP layer's cost.
const api = await startApi(apiPort, "native")
const platformApi = await startApi(platformApiPort, "platform")
// Two node:cluster workers on one port: the second core takes JSON, hashing and kafkajs encoding too.
const twoWorkersApi = await startApi(twoWorkersApiPort, "native", 2)

const rows = []
const row = (name, result, records) => {
  const ok = result["2xx"]
  // A GET row counts no events.
  rows.push({
    run: name,
    "req/s": Math.round(ok / seconds),
    "events/s": Math.round((ok * records) / seconds),
    "p50 ms": result.latency.p50,
    "p99 ms": result.latency.p99,
    "2xx": ok,
    429: result.statusCodeStats?.["429"]?.count ?? 0,
    "other non-2xx": result.non2xx - (result.statusCodeStats?.["429"]?.count ?? 0),
    errors: result.errors
  })
  return ok * records
}

try {
  const before = await endOffsetSum()
  row("bare Node HTTP, single (baseline)", await load(baselinePort, 1), 1)
  row(
    "ingestion API GET /healthz (framework floor)",
    await autocannon({ url: `http://127.0.0.1:${apiPort}/healthz`, connections, duration: seconds }),
    0
  )
  let acknowledged = row("ingestion API, single", await load(apiPort, 1), 1)
  acknowledged += row("same API through HttpApi handlers, single", await load(platformApiPort, 1), 1)
  acknowledged += row("ingestion API, 2 workers, single", await load(twoWorkersApiPort, 1), 1)
  row(`bare Node HTTP, batch of ${batchSize} (baseline)`, await load(baselinePort, batchSize), batchSize)
  acknowledged += row(`ingestion API, batch of ${batchSize}`, await load(apiPort, batchSize), batchSize)
  acknowledged += row(
    `ingestion API, 2 workers, batch of ${batchSize}`,
    await load(twoWorkersApiPort, batchSize),
    batchSize
  )
  acknowledged += row(
    `same API through HttpApi handlers, batch of ${batchSize}`,
    await load(platformApiPort, batchSize),
    batchSize
  )
  const inKafka = (await endOffsetSum()) - before
  console.table(rows)
  console.log(
    `count check: ${acknowledged} records acknowledged (2xx), ${inKafka} appended to Kafka 'transactions' ` +
      `→ ${inKafka >= acknowledged ? "0 lost" : `${acknowledged - inKafka} LOST`}` +
      (inKafka > acknowledged
        ? ` (${inKafka - acknowledged} sent but not acknowledged: timeouts at the end of a run)`
        : "")
  )
  console.log(
    `goals: ≥ 5000 single req/s, ≥ 20000 events/s batched, 0 lost (${seconds} s per run, ${connections} connections)`
  )
} finally {
  await stop(api)
  await stop(platformApi)
  await stop(twoWorkersApi)
  await stop(baseline)
  await admin.disconnect()
}
