import { execFile } from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { promisify } from "node:util"
import { HttpApp } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Ref } from "effect"
import { onTestFinished } from "vitest"
import {
  type BreakType,
  breakTypes,
  defaultReconcileRules,
  type ReconBreak,
  type ReconcileRules,
  reconcile
} from "../src/domain/reconcile.js"
import { finalAggregateSchema, type TableRow } from "../src/domain/rows.js"
import {
  decimalToMinor,
  defaultProcessorMappings,
  epochDay,
  formatSettlementCsv,
  parseCsv,
  parseSettlementCsv,
  type SettlementLine
} from "../src/domain/settlement.js"
import { KeyValueStore, layerMemory } from "../src/layers/KeyValueStore.js"
import { getRequired, makeMemoryObjectStore, ProcessedBucket, RawBucket } from "../src/layers/ObjectStore.js"
import { Parquet } from "../src/layers/ParquetCodec.js"
import { aggregationRouter } from "../src/streams/aggregationService.js"
import { dashboardHtml } from "../src/streams/dashboard.js"
import { prefixes, writeManifest } from "../src/streams/datasets.js"
import {
  type GeneratedSettlements,
  generateSettlements,
  readIndexColumns,
  writeGeneratedSettlements
} from "../src/streams/generateSettlements.js"
import {
  acknowledgeException,
  exceptionKeys,
  indexColumnsOf,
  listExceptions,
  readReconManifest,
  reconPanel,
  resolveException,
  runReconcile,
  settlementColumnsOf
} from "../src/streams/reconcile.js"
import { makeRows, toTableRow } from "./support/finalAggregateRows.js"
import { runSmallPipeline } from "./support/smallPipeline.js"

const dayMicros = 86_400_000_000
const D = "2026-11-10"
const dayNumber = epochDay(D)
const at = (offsetDays: number) => (dayNumber + offsetDays) * dayMicros + 3_600_000_000
const iso = (offsetDays: number) => new Date((dayNumber + offsetDays) * 86_400_000).toISOString().slice(0, 10)

const indexRow = (
  reference: string,
  amount: number,
  fields: Partial<Record<string, unknown>> = {}
): TableRow =>
  ({
    processor: "adyen",
    processor_reference: reference,
    transaction_id: `tx-${reference}`,
    status: "settled",
    amount_minor: amount,
    currency: "EUR",
    captured_at: at(0),
    settled_at: at(1),
    refunded_at: null,
    chargeback_at: null,
    ...fields
  }) as TableRow

let lineNumber = 0
const line = (
  reference: string,
  amount: number,
  offsetDays: number,
  fields: Partial<SettlementLine> = {}
): SettlementLine => ({
  processor: "adyen",
  processor_reference: reference,
  amount_minor: amount,
  currency: "EUR",
  fee_minor: 0,
  settlement_date: iso(offsetDays),
  type: "settled",
  payout_id: `po-${offsetDays}`,
  source: `test.csv:${++lineNumber}`,
  ...fields
})

const rules: ReconcileRules = {
  amount_tolerance_minor: 1,
  amount_tolerance_bps: 5,
  settlement_window_days: 3
}

const run = (rows: ReadonlyArray<TableRow>, lines: ReadonlyArray<SettlementLine>, from = 0, to = 7) =>
  reconcile(indexColumnsOf(rows, undefined), settlementColumnsOf(lines), {
    fromDay: dayNumber + from,
    toDay: dayNumber + to,
    rules
  })

const summary = (breaks: ReadonlyArray<ReconBreak>) =>
  breaks
    .map(
      (item) => `${item.type} ${item.processor_reference} ${item.amount_minor} ${item.currency} ${item.day}`
    )
    .sort()

const cleanRows = [
  indexRow("exact", 10_000),
  indexRow("date-edge", 5000),
  indexRow("split", 9000),
  indexRow("group-a", 1000),
  indexRow("group-b", 2500),
  indexRow("refund-ok", 8000, { status: "refunded", refunded_at: at(1) }),
  indexRow("partial", 300, { status: "partially_refunded", refunded_at: at(1) }),
  indexRow("voided", 700, { status: "voided", captured_at: null, settled_at: null })
]
const cleanLines = [
  line("exact", 10_000, 1),
  line("date-edge", 5000, 3),
  line("split", 4000, 1),
  line("split", 5000, 2),
  line("group-a|group-b", 3500, 1),
  line("refund-ok", 8000, 1),
  line("refund-ok", 8000, 2, { type: "refund" }),
  line("partial", 1000, 1),
  line("partial", 300, 2, { type: "refund" })
]

describe("settlement reports", () => {
  it("converts decimal amounts to minor units exactly by the currency exponent", () => {
    assert.strictEqual(decimalToMinor("0.29", 2), 29)
    assert.strictEqual(decimalToMinor("1234.5", 2), 123_450)
    assert.strictEqual(decimalToMinor("-10.01", 2), -1001)
    assert.strictEqual(decimalToMinor("1500", 0), 1500)
    assert.strictEqual(decimalToMinor("1.005", 3), 1005)
    assert.strictEqual(decimalToMinor("12.300", 2), 1230)
    assert.strictEqual(decimalToMinor("90071992547409.91", 2), 9_007_199_254_740_991)
    assert.match(String(decimalToMinor("12.345", 2)), /3 decimal places/)
    assert.match(String(decimalToMinor("1e3", 2)), /not a decimal/)
    assert.match(String(decimalToMinor("90071992547409.92", 2)), /out of range/)
  })

  it("parses quoted CSV fields and quarantines bad rows naming field and reason", () => {
    assert.deepStrictEqual(
      parseCsv('a,"b,c","say ""hi"""\r\n\r\n1,"two\nlines",3\n').map((record) => [
        record.line,
        record.fields
      ]),
      [
        [1, ["a", "b,c", 'say "hi"']],
        [3, ["1", "two\nlines", "3"]]
      ]
    )
    const adyen = defaultProcessorMappings.find((mapping) => mapping.processor === "adyen")!
    const text =
      '"Psp Reference","Gross Credit (GC)","Gross Currency","Commission (NC)","Booking Date","Record Type","Batch Number"\n' +
      'psp_1,"1,00",EUR,0.10,24/11/2026,Settled,7\n' +
      "psp_2,10.00,eur,0.10,24/11/2026,Settled,7\n" +
      "psp_3,-5.00,KWD,0,24/11/2026,Refunded,\n" +
      "psp_4,10.001,EUR,0,31/11/2026,Paid,7\n" +
      "4111111111111111,1.00,EUR,0,24/11/2026,Settled,7\n" +
      'psp_6,1.00,EUR,0,24/11/2026,Settled,"4111 1111-1111 1111"\n'
    const parsed = parseSettlementCsv(text, adyen, "raw/settlements/processor=adyen/dt=2026-11-24/a.csv")
    assert.deepStrictEqual(
      parsed.lines.map((item) => [
        item.processor_reference,
        item.amount_minor,
        item.currency,
        item.type,
        item.payout_id
      ]),
      [
        ["psp_2", 1000, "EUR", "settled", "7"],
        ["psp_3", 5000, "KWD", "refund", null]
      ]
    )
    assert.strictEqual(parsed.lines[0]!.settlement_date, "2026-11-24")
    assert.strictEqual(parsed.lines[0]!.fee_minor, 10)
    assert.deepStrictEqual(
      parsed.rejected.map((row) => [row.source.split(":")[1], row.problems.map((problem) => problem.field)]),
      [
        ["2", ["amount"]],
        ["5", ["type", "settlement_date", "amount"]],
        ["6", ["(record)"]],
        ["7", ["(record)"]]
      ]
    )
    assert.notInclude(parsed.rejected[2]!.payload, "4111111111111111")
    assert.notInclude(parsed.rejected[3]!.payload, "4111 1111-1111 1111")
    // A card number quoted in a reason is redacted too; a line of spaces is blank, not a bad row.
    const quoted = parseSettlementCsv(
      `${text.split("\n")[0]}\npsp_7,4111-1111-1111-1111,EUR,0,24/11/2026,4111 1111 1111 1111,7\n   \n`,
      adyen,
      "k"
    )
    assert.strictEqual(quoted.rejected.length, 1)
    assert.notMatch(JSON.stringify(quoted.rejected), /4111[ -]?1111[ -]?1111[ -]?1111/)
    const checkout = defaultProcessorMappings.find((mapping) => mapping.amount_is_net === true)!
    const net = parseSettlementCsv(
      formatSettlementCsv(
        [
          line("fee-over-gross", 100, 0, { processor: checkout.processor, fee_minor: 150 }),
          line("fee-over-refund", 100, 0, { processor: checkout.processor, fee_minor: 150, type: "refund" })
        ],
        checkout
      ),
      checkout,
      "k"
    )
    assert.deepStrictEqual(
      net.lines.map((item) => [item.processor_reference, item.amount_minor, item.fee_minor]),
      [
        ["fee-over-gross", 100, 150],
        ["fee-over-refund", 100, 150]
      ]
    )
  })

  it("writes and reads every processor's format back to the same lines (net amounts, negative refunds)", () => {
    for (const mapping of defaultProcessorMappings) {
      const lines = [
        { ...line("r,1", 12_345, 1), processor: mapping.processor, fee_minor: 45 },
        { ...line("r2", 700, 2, { type: "refund", payout_id: null }), processor: mapping.processor }
      ]
      const parsed = parseSettlementCsv(formatSettlementCsv(lines, mapping), mapping, "k")
      assert.deepStrictEqual(parsed.rejected, [])
      assert.deepStrictEqual(
        parsed.lines.map(({ source: _source, ...rest }) => rest),
        lines.map(({ source: _source, ...rest }) => rest)
      )
    }
  })
})

describe("matching engine", () => {
  it("finds no break on clean data; one-to-many matches record their rule", () => {
    const result = run(cleanRows, cleanLines)
    assert.deepStrictEqual(summary(result.breaks), [])
    assert.deepStrictEqual(result.counts.matchesByRule, {
      exact: 6,
      amount_tolerance: 0,
      split_settlement: 2,
      payout_group: 2
    })
  })

  it("finds every break type with its amount", () => {
    const rows = [
      ...cleanRows,
      indexRow("over", 100_000),
      indexRow("late", 5000),
      indexRow("missing", 7000),
      indexRow("ccy", 2000),
      indexRow("refunded-here", 6000, { status: "refunded", refunded_at: at(1) }),
      indexRow("declined", 3000, { status: "declined", captured_at: null, settled_at: null }),
      indexRow("dup", 4000),
      indexRow("refund-there", 1500),
      indexRow("group-c", 100),
      indexRow("group-d", 200)
    ]
    const lines = [
      ...cleanLines,
      line("over", 100_051, 1),
      line("late", 5000, 4),
      line("ghost", 1234, 2),
      line("ccy", 2000, 1, { currency: "USD" }),
      line("refunded-here", 6000, 1),
      line("declined", 3000, 1),
      line("dup", 4000, 1),
      line("dup", 4000, 2),
      line("refund-there", 1500, 1),
      line("refund-there", 1500, 2, { type: "refund" }),
      line("group-c|group-d|group-x", 300, 2),
      line("group-c|group-d", 310, 2),
      line("ghost", 1234, 2)
    ]
    const result = run(rows, lines)
    assert.deepStrictEqual(summary(result.breaks), [
      `amount_mismatch group-c|group-d 10 EUR ${iso(2)}`,
      `amount_mismatch over 51 EUR ${iso(1)}`,
      `currency_mismatch ccy 2000 USD ${iso(1)}`,
      `duplicate_settlement dup 4000 EUR ${iso(2)}`,
      `late_settlement late 5000 EUR ${iso(4)}`,
      `missing_at_processor missing 7000 EUR ${iso(3)}`,
      `missing_in_index ghost 1234 EUR ${iso(2)}`,
      `missing_in_index ghost 1234 EUR ${iso(2)}`,
      `missing_in_index group-c|group-d|group-x 300 EUR ${iso(2)}`,
      `status_mismatch declined 3000 EUR ${iso(1)}`,
      `status_mismatch refund-there 1500 EUR ${iso(2)}`,
      `status_mismatch refunded-here 6000 EUR ${iso(4)}`
    ])
    const over = result.breaks.find((item) => item.processor_reference === "over")!
    assert.strictEqual(over.expected_amount_minor, 100_000)
    assert.strictEqual(over.actual_amount_minor, 100_051)
    assert.strictEqual(over.transaction_id, "tx-over")
    assert.deepStrictEqual(new Set(result.breaks.map((item) => item.type)), new Set<BreakType>(breakTypes))
    assert.strictEqual(new Set(result.breaks.map((item) => item.break_id)).size, result.breaks.length)
  })

  it("checks payout lines like single ones: paid out twice, never captured, late", () => {
    const rows = [
      indexRow("p-a", 100),
      indexRow("p-b", 200),
      indexRow("p-void", 300, { status: "voided", captured_at: null, settled_at: null }),
      indexRow("p-c", 400),
      indexRow("p-late-1", 500),
      indexRow("p-late-2", 600)
    ]
    const result = run(rows, [
      line("p-a|p-b", 300, 1),
      line("p-a|p-b", 300, 2),
      line("p-void|p-c", 700, 1),
      line("p-late-1|p-late-2", 1100, 6)
    ])
    assert.deepStrictEqual(summary(result.breaks), [
      `duplicate_settlement p-a|p-b 300 EUR ${iso(2)}`,
      `late_settlement p-late-1|p-late-2 1100 EUR ${iso(6)}`,
      `status_mismatch p-void|p-c 700 EUR ${iso(1)}`
    ])
  })

  it("a tiny payment settled twice is a duplicate, not a split", () => {
    const result = run([indexRow("tiny", 1)], [line("tiny", 1, 1), line("tiny", 1, 1)])
    assert.deepStrictEqual(summary(result.breaks), [`duplicate_settlement tiny 1 EUR ${iso(1)}`])
  })

  it("holds the tolerance and window edges", () => {
    const rows = [
      indexRow("at-abs", 1000),
      indexRow("over-abs", 1000),
      indexRow("at-bps", 100_000),
      indexRow("over-bps", 100_000),
      indexRow("under-bps", 100_000),
      indexRow("window", 500),
      indexRow("window+1", 500)
    ]
    const lines = [
      line("at-abs", 1001, 1),
      line("over-abs", 1002, 1),
      line("at-bps", 100_050, 1),
      line("over-bps", 100_051, 1),
      line("under-bps", 99_950, 1),
      line("window", 500, 3),
      line("window+1", 500, 4)
    ]
    const result = run(rows, lines)
    assert.deepStrictEqual(summary(result.breaks), [
      `amount_mismatch over-abs 2 EUR ${iso(1)}`,
      `amount_mismatch over-bps 51 EUR ${iso(1)}`,
      `late_settlement window+1 500 EUR ${iso(4)}`
    ])
    assert.deepStrictEqual(result.counts.matchesByRule, {
      exact: 2,
      amount_tolerance: 3,
      split_settlement: 0,
      payout_group: 0
    })
    const none = reconcile(indexColumnsOf(rows, undefined), settlementColumnsOf(lines), {
      fromDay: dayNumber,
      toDay: dayNumber + 7,
      rules: { ...rules, amount_tolerance_bps: 0, amount_tolerance_minor: 0 }
    })
    assert.strictEqual(none.breaks.filter((item) => item.type === "amount_mismatch").length, 5)
  })

  it("reports a break only in the run holding its day; look-back and look-ahead lines still match", () => {
    const rows = [indexRow("split", 9000), indexRow("missing", 7000), indexRow("late", 5000)]
    const lines = [line("split", 4000, 1), line("split", 5000, 2), line("late", 5000, 4)]
    const whole = run(rows, lines)
    const byDay = [0, 1, 2, 3, 4, 5, 6, 7].flatMap((offset) => run(rows, lines, offset, offset).breaks)
    assert.deepStrictEqual(summary(byDay), summary(whole.breaks))
    assert.deepStrictEqual(summary(whole.breaks), [
      `late_settlement late 5000 EUR ${iso(4)}`,
      `missing_at_processor missing 7000 EUR ${iso(3)}`
    ])
    assert.strictEqual(run(rows, lines, 1, 1).counts.matchesByRule.split_settlement, 0)
    assert.strictEqual(run(rows, lines, 2, 2).counts.matchesByRule.split_settlement, 2)
  })
})

const processedEmpty = makeMemoryObjectStore

const truthOf = (generated: GeneratedSettlements) =>
  generated.breaks
    .map(
      (item) => `${item.type} ${item.processor_reference} ${item.amount_minor} ${item.currency} ${item.day}`
    )
    .sort()

const rangeOf = (generated: GeneratedSettlements) => {
  const days = [generated.firstDate!, generated.lastDate!, ...generated.breaks.map((item) => item.day)].sort()
  return { from: days[0]!, to: days.at(-1)! }
}

describe("generated settlements", () => {
  const rows = makeRows(17, 4000, "g")
    .filter((row) => row.amount_minor < 1e12)
    .map((row, index) => ({
      ...row,
      processor: ["adyen", "stripe", "checkout", "worldpay", "braintree"][index % 5]!
    })) as unknown as ReadonlyArray<TableRow>

  it("the engine finds exactly the injected breaks, with their amounts", () => {
    const index = indexColumnsOf(rows, undefined)
    const generated = generateSettlements(index, { seed: 3, shares: { missing_in_index: 0.02 } })
    const lines = generated.files.flatMap((file) => {
      const processor = /processor=([^/]+)/.exec(file.key)![1]!
      const mapping = defaultProcessorMappings.find((item) => item.processor === processor)!
      return parseSettlementCsv(file.text, mapping, file.key).lines
    })
    const { from, to } = rangeOf(generated)
    const result = reconcile(index, settlementColumnsOf(lines), {
      fromDay: epochDay(from),
      toDay: epochDay(to),
      rules: defaultReconcileRules
    })
    assert.deepStrictEqual(summary(result.breaks), truthOf(generated))
    for (const type of breakTypes)
      assert.isAbove(generated.breaks.filter((item) => item.type === type).length, 5, type)
    assert.isAbove(result.counts.matchesByRule.payout_group, 20)
    assert.isAbove(result.counts.matchesByRule.split_settlement, 20)
    assert.isAbove(result.counts.matchesByRule.amount_tolerance, 10)
  })

  it("no false breaks when nothing is injected", () => {
    const index = indexColumnsOf(rows, undefined)
    const generated = generateSettlements(index, {
      seed: 4,
      badRows: 0,
      shares: {
        missing_at_processor: 0,
        amount_mismatch: 0,
        currency_mismatch: 0,
        duplicate_settlement: 0,
        late_settlement: 0,
        status_mismatch: 0,
        missing_in_index: 0,
        within_tolerance: 0.1,
        split_settlement: 0.1,
        payout_group: 0.1
      }
    })
    const lines = generated.files.flatMap((file) => {
      const processor = /processor=([^/]+)/.exec(file.key)![1]!
      const mapping = defaultProcessorMappings.find((item) => item.processor === processor)!
      return parseSettlementCsv(file.text, mapping, file.key).lines
    })
    assert.strictEqual(lines.length, generated.lines)
    const { from, to } = rangeOf(generated)
    const result = reconcile(index, settlementColumnsOf(lines), {
      fromDay: epochDay(from) - 5,
      toDay: epochDay(to) + 5,
      rules: defaultReconcileRules
    })
    assert.deepStrictEqual(summary(result.breaks), [])
    assert.isAbove(result.counts.matchesByRule.split_settlement, 100)
  })
})

describe("reconciliation program", () => {
  it.effect(
    "pipeline data: breaks, summary and exceptions written; re-running is idempotent and keeps worked state",
    () =>
      Effect.gen(function* () {
        const { processed } = yield* runSmallPipeline("recon", 500, 7)
        yield* Effect.gen(function* () {
          const generated = yield* writeGeneratedSettlements({ seed: 11, badRows: 4 })
          const { from, to } = rangeOf(generated)
          const first = yield* runReconcile({ from, to })
          assert.strictEqual(first.counts.rejected_rows, 4)
          assert.isAbove(first.quarantined.length, 0)
          assert.strictEqual(first.counts.breaks, generated.breaks.length)
          const codec = yield* Parquet
          const breakRows = yield* codec.decode(
            yield* getRequired(processed, `recon/run=${first.runId}/breaks.parquet`)
          )
          assert.deepStrictEqual(
            summary(breakRows as unknown as ReadonlyArray<ReconBreak>),
            truthOf(generated)
          )
          const matches = yield* codec.decode(
            yield* getRequired(processed, `recon/run=${first.runId}/matches.parquet`)
          )
          assert.strictEqual(matches.length, first.counts.matches)
          assert.includeMembers(
            [...new Set(matches.map((row) => row.rule))],
            ["exact", "split_settlement", "payout_group"]
          )

          const open = yield* listExceptions({ state: "open" })
          assert.strictEqual(open.length, generated.breaks.length)
          const [acked, resolved] = [open[0]!, open[1]!]
          yield* acknowledgeException(acked.break_id, "looking")
          yield* resolveException(resolved.break_id, "processor confirmed the fee")
          const noReason = yield* Effect.flip(resolveException(open[2]!.break_id, " "))
          assert.match(noReason.message, /needs a reason/)

          const bytes = yield* getRequired(processed, `recon/run=${first.runId}/breaks.parquet`)
          const again = yield* runReconcile({ from, to })
          assert.strictEqual(again.runId, first.runId)
          assert.deepStrictEqual(again.counts, first.counts)
          assert.deepStrictEqual(
            yield* getRequired(processed, `recon/run=${first.runId}/breaks.parquet`),
            bytes
          )
          const day = acked.day
          const dayRun = yield* runReconcile({ from: day, to: day })
          assert.notStrictEqual(dayRun.runId, first.runId)
          const dayAgain = yield* runReconcile({ from: day, to: day })
          assert.strictEqual(dayAgain.runId, dayRun.runId)
          const manifest = Option.getOrThrow(yield* readReconManifest(processed))
          assert.strictEqual(
            manifest.days.length,
            first.processors.length * (epochDay(to) - epochDay(from) + 1)
          )
          assert.deepStrictEqual(
            manifest.summary.reduce((sum, row) => sum + row.count, 0),
            generated.breaks.length
          )
          assert.deepStrictEqual(
            [...new Set(manifest.days.map((entry) => entry.run_id))].sort(),
            [first.runId, dayRun.runId].sort()
          )

          const all = yield* listExceptions()
          assert.strictEqual(all.length, generated.breaks.length)
          const store = yield* KeyValueStore.KeyValueStore
          const ackedNow = all.find((item) => item.break_id === acked.break_id)!
          assert.strictEqual(ackedNow.state, "acknowledged")
          assert.strictEqual(ackedNow.reason, "looking")
          assert.strictEqual(ackedNow.first_seen_run, first.runId)
          assert.strictEqual(all.find((item) => item.break_id === resolved.break_id)!.state, "resolved")
          assert.isTrue(Option.isSome(yield* store.get(exceptionKeys.exception(acked.break_id))))

          const panel = Option.getOrThrow(yield* reconPanel(processed))
          assert.strictEqual(
            panel.by_type.reduce((sum, row) => sum + row.count, 0),
            generated.breaks.length
          )
          for (const type of breakTypes)
            assert.strictEqual(
              panel.by_type.find((row) => row.break_type === type)!.count,
              generated.breaks.filter((item) => item.type === type).length
            )
          const index = yield* readIndexColumns(processed)
          assert.isAbove(index.size, 400)

          const handlerOver = (bucket: typeof processed) =>
            HttpApp.toWebHandler(
              aggregationRouter(
                Ref.unsafeMake<{ streamingCommittedAt: string | null; lastError: string | null }>({
                  streamingCommittedAt: null,
                  lastError: null
                })
              ).pipe(Effect.provideService(ProcessedBucket, bucket), Effect.provide(layerMemory))
            )
          const response = yield* Effect.promise(() =>
            handlerOver(processed)(new Request("http://dashboard.test/api/recon"))
          )
          assert.strictEqual(response.status, 200)
          const body = (yield* Effect.promise(() => response.json())) as {
            by_type: ReadonlyArray<{
              break_type: string
              count: number
              amount_minor: Record<string, string>
            }>
            currency_exponents: Record<string, number>
          }
          assert.deepStrictEqual(body.by_type, panel.by_type)
          assert.isAbove(Object.keys(body.currency_exponents).length, 0)
          const empty = yield* Effect.promise(() =>
            handlerOver(processedEmpty())(new Request("http://dashboard.test/api/recon"))
          )
          assert.strictEqual(empty.status, 404)
          assert.include(dashboardHtml, 'id="recon-breaks"')
          assert.include(dashboardHtml, "/api/recon")
          const script = /<script>([\s\S]*)<\/script>/.exec(dashboardHtml)![1]!
          assert.doesNotThrow(() => new Function(script))
        }).pipe(
          Effect.provide(
            Layer.mergeAll(
              Layer.succeed(ProcessedBucket, processed),
              RawBucket.layerMemory,
              Parquet.layer(),
              layerMemory
            )
          )
        )
      }),
    120_000
  )
})

describe("exceptions across re-runs", () => {
  it.effect("a break a re-run of its day no longer finds is cleared; resolved ones stay resolved", () =>
    Effect.gen(function* () {
      const processed = yield* ProcessedBucket
      const raw = yield* RawBucket
      const codec = yield* Parquet
      const rows = [
        { ...makeRows(5, 1, "x")[0]!, processor_reference: "psp-a", amount_minor: 1000, currency: "EUR" },
        { ...makeRows(6, 1, "y")[0]!, processor_reference: "psp-b", amount_minor: 2000, currency: "EUR" }
      ].map((row) => ({
        ...row,
        status: "settled",
        captured_at: at(0),
        settled_at: at(1),
        refunded_at: null,
        chargeback_at: null
      }))
      const key = `${prefixes.finalAggregate}dt=${D}/part-test.parquet`
      yield* processed.put(key, yield* codec.encode(finalAggregateSchema, rows.map(toTableRow)))
      yield* writeManifest(processed, prefixes.finalAggregate, {
        dataset: "final_aggregate",
        version: "v1",
        committed_at: "2026-11-20T00:00:00Z",
        files: [{ key, dt: D, rows: 2 }]
      })
      const adyen = defaultProcessorMappings.find((mapping) => mapping.processor === "adyen")!
      const report = (lines: ReadonlyArray<SettlementLine>) =>
        raw.put(
          `raw/settlements/processor=adyen/dt=${iso(1)}/report.csv`,
          new TextEncoder().encode(formatSettlementCsv(lines, adyen))
        )
      yield* report([line("psp-a", 1500, 1), line("psp-b", 2000, 1), line("ghost", 99, 1)])
      const first = yield* runReconcile({ from: iso(1), to: iso(1) })
      assert.deepStrictEqual(first.counts.breaks_by_type.amount_mismatch, 1)
      assert.deepStrictEqual(first.counts.breaks_by_type.missing_in_index, 1)
      const open = yield* listExceptions()
      const mismatchId = open.find((item) => item.type === "amount_mismatch")!.break_id
      const ghostId = open.find((item) => item.type === "missing_in_index")!.break_id
      yield* acknowledgeException(mismatchId, "checking with adyen")
      yield* resolveException(ghostId, "test payment of the processor")
      yield* report([line("psp-a", 1000, 1), line("psp-b", 2000, 1)])
      const second = yield* runReconcile({ from: iso(1), to: iso(1) })
      assert.strictEqual(second.counts.breaks, 0)
      assert.deepStrictEqual(second.replacedRuns, [first.runId])
      assert.deepStrictEqual(yield* listExceptions(), [])
      const store = yield* KeyValueStore.KeyValueStore
      const stateOf = (id: string) =>
        Effect.map(
          store.get(exceptionKeys.exception(id)),
          (text) => JSON.parse(Option.getOrThrow(text)).state
        )
      assert.strictEqual(yield* stateOf(mismatchId), "cleared")
      assert.strictEqual(yield* stateOf(ghostId), "resolved")
      assert.deepStrictEqual(yield* processed.list(`recon/run=${first.runId}/`), [])
      yield* report([line("psp-a", 1500, 1), line("psp-b", 2000, 1)])
      yield* runReconcile({ from: iso(1), to: iso(1) })
      const reopened = yield* listExceptions()
      assert.deepStrictEqual(
        reopened.map((item) => [item.break_id, item.state]),
        [[mismatchId, "open"]]
      )
      // A line dated far from its report's folder is quarantined, not silently never judged; the report
      // fixed, its quarantine file goes.
      yield* report([line("psp-a", 1500, 1), line("psp-b", 2000, 1), line("stray", 77, 30)])
      const stray = yield* runReconcile({ from: iso(1), to: iso(1) })
      assert.strictEqual(stray.counts.rejected_rows, 1)
      assert.strictEqual(stray.quarantined.length, 1)
      const entry = new TextDecoder().decode(yield* getRequired(processed, stray.quarantined[0]!))
      assert.include(
        entry,
        `settlement_date: ${iso(30)} is more than 3 days from the report's folder dt=${iso(1)}`
      )
      yield* report([line("psp-a", 1500, 1), line("psp-b", 2000, 1)])
      const fixed = yield* runReconcile({ from: iso(1), to: iso(1) })
      assert.strictEqual(fixed.counts.rejected_rows, 0)
      assert.deepStrictEqual(yield* processed.list(prefixes.quarantine), [])
    }).pipe(
      Effect.provide(
        Layer.mergeAll(ProcessedBucket.layerMemory, RawBucket.layerMemory, Parquet.layer(), layerMemory)
      )
    )
  )
})

describe("recon CLI (built): settlements, reconcile, exceptions", () => {
  const cli = NodePath.resolve("dist/programs/cli.js")
  const run = promisify(execFile)
  /** The command's JSON: stdout after the log lines. */
  const jsonOf = (stdout: string) => JSON.parse(stdout.slice(stdout.search(/^[[{]\s*$/m)))

  it("generates reports with a truth file, reconciles them and works an exception", async () => {
    assert.isTrue(NodeFs.existsSync(cli), "build first: npm run build")
    const root = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "recon-settlements-cli-"))
    onTestFinished(() => NodeFs.rmSync(root, { recursive: true, force: true }))
    const env = { ...process.env, RECON_KV_BACKEND: "directory", RECON_KV_DIR: NodePath.join(root, "kv") }
    const input = NodePath.join(root, "in")
    const output = NodePath.join(root, "out")
    const truthFile = NodePath.join(root, "truth.json")
    await run("node", [cli, "generate", "--out", input, "--transactions", "300", "--seed", "3"], { env })
    await run("node", [cli, "batch", "--input", input, "--output", output], { env })
    const generated = jsonOf(
      (
        await run(
          "node",
          [cli, "settlements", "--input", input, "--output", output, "--truth", truthFile, "--seed", "9"],
          { env }
        )
      ).stdout
    )
    const truth = JSON.parse(NodeFs.readFileSync(truthFile, "utf8")) as GeneratedSettlements
    const report = jsonOf(
      (
        await run(
          "node",
          [
            cli,
            "reconcile",
            "--input",
            input,
            "--output",
            output,
            "--from",
            generated.reconcile.from,
            "--to",
            generated.reconcile.to
          ],
          { env }
        )
      ).stdout
    )
    assert.strictEqual(report.counts.breaks, truth.breaks.length)
    assert.strictEqual(report.counts.rejected_rows, generated.badRows)
    const listed = jsonOf(
      (await run("node", [cli, "exceptions", "list", "--output", output, "--json"], { env })).stdout
    ) as ReadonlyArray<ReconBreak & { state: string }>
    assert.deepStrictEqual(summary(listed), truthOf(truth))
    assert.isTrue(listed.every((item) => item.state === "open"))
    const id = listed[0]!.break_id
    const resolved = jsonOf(
      (await run("node", [cli, "exceptions", "resolve", id, "--reason", "booked by hand"], { env })).stdout
    )
    assert.strictEqual(resolved.state, "resolved")
    const open = jsonOf(
      (
        await run("node", [cli, "exceptions", "list", "--output", output, "--state", "open", "--json"], {
          env
        })
      ).stdout
    ) as ReadonlyArray<{ break_id: string }>
    assert.strictEqual(open.length, truth.breaks.length - 1)
    assert.notInclude(
      open.map((item) => item.break_id),
      id
    )
  }, 120_000)
})
