// Matching time and peak RSS of the reconciliation engine: N index rows against about N settlement lines.
// Usage: npm run build && node bench/reconcile.mjs [rows]   (default 1000000; 10000000 for the 10M run,
// which restarts itself with a 12 GB heap limit)
// The index and the settlement lines are synthesised in columns (as the program hands them to the engine):
// five processors, 1% of payments never settled, 1% off by more than the tolerance, 1% within it, 0.5%
// duplicated, 0.5% late, 0.5% in another currency, 2% split in two lines, 1% on payout lines of three, 0.5%
// unknown references, 4% refunded (refund lines). Settlement references are separate strings, as parsed from
// files. Prints build time, match time, matches by rule, breaks by type and peak RSS.
import { spawnSync } from "node:child_process"
import { getHeapStatistics } from "node:v8"
import { reconcile } from "../dist/domain/reconcile.js"

const rows = Number(process.argv[2] ?? process.env.BENCH_ROWS ?? 1_000_000)
if (!Number.isSafeInteger(rows) || rows < 1)
  throw new Error(`rows must be a positive integer, got ${process.argv[2]}`)
// 10M rows need about 4 GB of heap: start again with room when the default limit is lower.
if (rows >= 4_000_000 && getHeapStatistics().heap_size_limit < 8 * 2 ** 30) {
  const child = spawnSync(process.execPath, ["--max-old-space-size=12000", ...process.argv.slice(1)], {
    stdio: "inherit"
  })
  process.exit(child.status ?? 1)
}
const processors = ["adyen", "stripe", "checkout", "worldpay", "braintree"]
const currencies = ["EUR", "USD", "GBP", "JPY", "CHF"]
const firstDay = Math.floor(Date.UTC(2026, 10, 1) / 86_400_000)
const days = 30
const windowDays = 3

let state = 0x9e3779b9
const next = () => {
  state ^= state << 13
  state ^= state >>> 17
  state ^= state << 5
  return (state >>> 0) / 4_294_967_296
}

const started = performance.now()
const index = {
  size: rows,
  processor: new Array(rows),
  processorReference: new Array(rows),
  transactionId: new Array(rows),
  status: new Array(rows),
  amountMinor: new Float64Array(rows),
  currency: new Array(rows),
  captureDay: new Int32Array(rows),
  refundDay: new Int32Array(rows).fill(-1),
  chargebackDay: new Int32Array(rows).fill(-1)
}
const capacity = Math.ceil(rows * 1.1) + 16
const lines = {
  size: 0,
  processor: new Array(capacity),
  processorReference: new Array(capacity),
  amountMinor: new Float64Array(capacity),
  currency: new Array(capacity),
  day: new Int32Array(capacity),
  type: new Uint8Array(capacity),
  payoutId: new Array(capacity),
  sourceFile: new Int32Array(capacity),
  sourceLine: new Int32Array(capacity),
  sourceFiles: []
}
const fileOf = new Map()
const payoutOf = new Map()
const addLine = (processor, reference, amount, currency, day, type) => {
  const at = lines.size++
  const fileKey = `${processor}/${day}`
  let file = fileOf.get(fileKey)
  if (file === undefined) {
    file = { number: lines.sourceFiles.length, lines: 0 }
    lines.sourceFiles.push(`raw/settlements/processor=${processor}/dt=${day}/settlements.csv`)
    fileOf.set(fileKey, file)
    payoutOf.set(fileKey, `po_${processor}_${day}`)
  }
  lines.processor[at] = processor
  lines.processorReference[at] = reference
  lines.amountMinor[at] = amount
  lines.currency[at] = currency
  lines.day[at] = day
  lines.type[at] = type
  lines.payoutId[at] = payoutOf.get(fileKey)
  lines.sourceFile[at] = file.number
  lines.sourceLine[at] = ++file.lines + 1
}
const groups = new Map()
for (let row = 0; row < rows; row++) {
  const processor = processors[row % 5]
  const currency = currencies[(row >>> 3) % 5]
  const amount = 100 + Math.floor(next() * 500_000)
  const captureDay = firstDay + Math.floor(next() * days)
  index.processor[row] = processor
  index.processorReference[row] = `ref_${row.toString(36)}_${processor}`
  index.transactionId[row] = `tx_${row.toString(36)}`
  index.status[row] = "settled"
  index.amountMinor[row] = amount
  index.currency[row] = currency
  index.captureDay[row] = captureDay
  const reference = `ref_${row.toString(36)}_${processor}`
  const day = captureDay + Math.floor(next() * 3)
  const roll = next()
  if (roll < 0.01) continue
  else if (roll < 0.02) addLine(processor, reference, amount + 1000, currency, day, 0)
  else if (roll < 0.03) addLine(processor, reference, amount + 1, currency, day, 0)
  else if (roll < 0.035) {
    addLine(processor, reference, amount, currency, day, 0)
    addLine(processor, `ref_${row.toString(36)}_${processor}`, amount, currency, day + 1, 0)
  } else if (roll < 0.04) addLine(processor, reference, amount, currency, captureDay + windowDays + 1, 0)
  else if (roll < 0.045) addLine(processor, reference, amount, currency === "EUR" ? "USD" : "EUR", day, 0)
  else if (roll < 0.065) {
    const part = Math.floor(amount / 3)
    addLine(processor, reference, part, currency, day, 0)
    addLine(processor, reference, amount - part, currency, day, 0)
  } else if (roll < 0.075) {
    const key = `${processor}/${currency}`
    const members = groups.get(key) ?? []
    members.push(row)
    groups.set(key, members)
    if (members.length === 3) {
      addLine(
        processor,
        members.map((member) => `ref_${member.toString(36)}_${processor}`).join("|"),
        members.reduce((sum, member) => sum + index.amountMinor[member], 0),
        currency,
        Math.max(...members.map((member) => index.captureDay[member])),
        0
      )
      groups.delete(key)
    }
  } else addLine(processor, reference, amount, currency, day, 0)
  if (roll > 0.08 && roll < 0.085) addLine(processor, `ghost_${row.toString(36)}`, amount, currency, day, 0)
  if (roll > 0.1 && roll < 0.14) {
    index.status[row] = "refunded"
    index.refundDay[row] = captureDay + 1
    addLine(processor, `ref_${row.toString(36)}_${processor}`, amount, currency, captureDay + 2, 1)
  }
}
for (const members of groups.values())
  for (const member of members)
    addLine(
      index.processor[member],
      `ref_${member.toString(36)}_${index.processor[member]}`,
      index.amountMinor[member],
      index.currency[member],
      index.captureDay[member],
      0
    )
const built = performance.now()
const rssBefore = process.memoryUsage().rss

const result = reconcile(index, lines, {
  fromDay: firstDay,
  toDay: firstDay + days + windowDays + 2,
  rules: { amount_tolerance_minor: 1, amount_tolerance_bps: 5, settlement_window_days: windowDays }
})
const matched = performance.now()

const breaksByType = {}
for (const item of result.breaks) breaksByType[item.type] = (breaksByType[item.type] ?? 0) + 1
const report = {
  index_rows: rows,
  settlement_lines: lines.size,
  build_seconds: Number(((built - started) / 1000).toFixed(2)),
  match_seconds: Number(((matched - built) / 1000).toFixed(2)),
  match_rate_lines_per_second: Math.round(lines.size / ((matched - built) / 1000)),
  matches: result.matches.size,
  matches_by_rule: result.counts.matchesByRule,
  breaks: result.breaks.length,
  breaks_by_type: breaksByType,
  rss_before_match_mb: Math.round(rssBefore / 2 ** 20),
  peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024)
}
console.log(JSON.stringify(report, null, 2))
