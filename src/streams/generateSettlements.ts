import { Effect } from "effect"
import {
  type BreakType,
  defaultReconcileRules,
  type IndexColumns,
  type ReconcileRules,
  toleranceFor
} from "../domain/reconcile.js"
import {
  dayToIso,
  defaultProcessorMappings,
  formatSettlementCsv,
  formatSettlementDate,
  type ProcessorMapping,
  type SettlementLine,
  settlementKey
} from "../domain/settlement.js"
import { ProcessedBucket, RawBucket } from "../layers/ObjectStore.js"
import { mixSeed, Random } from "./generate/random.js"
import { readIndexColumns } from "./reconcile.js"

/** What the generator may do to a captured payment's settlement; the first seven are breaks. */
export type InjectedKind =
  | "missing_at_processor"
  | "amount_mismatch"
  | "currency_mismatch"
  | "duplicate_settlement"
  | "late_settlement"
  | "status_mismatch"
  | "missing_in_index"
  | "within_tolerance"
  | "split_settlement"
  | "payout_group"

/** Options of {@link generateSettlements}. */
export interface SettlementGenerateOptions {
  readonly seed?: number
  /**
   * Share of captured payments given each kind (default 0.01 for every break, 0.02 for the three clean
   * variants). `status_mismatch` is split between a refund left out, a refund that only the processor has
   * and a settled line for a payment never captured; `missing_in_index` adds lines with unknown references.
   */
  readonly shares?: Partial<Record<InjectedKind, number>>
  /** Rows to write with a bad field, spread over the files (default 5). */
  readonly badRows?: number
  readonly rules?: ReconcileRules
  readonly mappings?: ReadonlyArray<ProcessorMapping>
}

/** One break the generator injected: what the reconciliation must find. */
export interface InjectedBreak {
  readonly type: BreakType
  readonly processor: string
  readonly processor_reference: string
  readonly amount_minor: number
  readonly currency: string
  readonly day: string
}

/** The generated reports and their truth. */
export interface GeneratedSettlements {
  readonly files: ReadonlyArray<{ readonly key: string; readonly text: string }>
  readonly lines: number
  readonly badRows: number
  readonly breaks: ReadonlyArray<InjectedBreak>
  /** Clean variants written (not breaks): within_tolerance, split_settlement, payout_group payments. */
  readonly clean: Readonly<Record<"exact" | "within_tolerance" | "split_settlement" | "payout_group", number>>
  /** First and last settlement date written ({@link reconcileRange} gives the dates that cover every break). */
  readonly firstDate: string | null
  readonly lastDate: string | null
}

const defaultShares: Record<InjectedKind, number> = {
  missing_at_processor: 0.01,
  amount_mismatch: 0.01,
  currency_mismatch: 0.01,
  duplicate_settlement: 0.01,
  late_settlement: 0.01,
  status_mismatch: 0.01,
  missing_in_index: 0.01,
  within_tolerance: 0.02,
  split_settlement: 0.02,
  payout_group: 0.02
}

const otherCurrencies = ["EUR", "USD", "GBP", "JPY", "CHF"]

type Draft = Omit<SettlementLine, "source" | "processor">

/**
 * Settlement reports for the index's payments, as each processor would send them, with a controlled share of
 * every break type and a truth list of the breaks a reconciliation over [first capture, last date] must find.
 * Clean payments settle 0–2 days after capture (never past the window); seeded, so the same index and
 * options give the same files.
 */
export const generateSettlements = (
  index: IndexColumns,
  options: SettlementGenerateOptions = {}
): GeneratedSettlements => {
  const rules = options.rules ?? defaultReconcileRules
  const window = rules.settlement_window_days
  const shares = { ...defaultShares, ...options.shares }
  const mappings = new Map((options.mappings ?? defaultProcessorMappings).map((m) => [m.processor, m]))
  const random = new Random(mixSeed(options.seed ?? 42, 0x5e771e))
  const byFile = new Map<string, { processor: string; date: string; lines: Array<Draft> }>()
  const breaks: Array<InjectedBreak> = []
  const clean = { exact: 0, within_tolerance: 0, split_settlement: 0, payout_group: 0 }
  let lineCount = 0
  const emit = (processor: string, day: number, line: Omit<Draft, "settlement_date" | "payout_id">) => {
    const date = dayToIso(day)
    const key = `${processor}\u0000${date}`
    let file = byFile.get(key)
    if (file === undefined) {
      file = { processor, date, lines: [] }
      byFile.set(key, file)
    }
    file.lines.push({
      ...line,
      settlement_date: date,
      payout_id: `po_${processor}_${date.replaceAll("-", "")}`
    })
    lineCount++
  }
  const truth = (type: BreakType, row: number, amount: number, day: number, currency?: string) =>
    breaks.push({
      type,
      processor: index.processor[row]!,
      processor_reference: index.processorReference[row]!,
      amount_minor: amount,
      currency: currency ?? index.currency[row]!,
      day: dayToIso(day)
    })
  const kinds: ReadonlyArray<readonly [InjectedKind | "clean", number]> = [
    ...(Object.entries(shares) as Array<[InjectedKind, number]>),
    ["clean", Math.max(0, 1 - Object.values(shares).reduce((sum, share) => sum + share, 0))]
  ]
  const order = Array.from({ length: index.size }, (_, row) => row).sort((a, b) => {
    const ka = index.processor[a]! + "\u0000" + index.processorReference[a]!
    const kb = index.processor[b]! + "\u0000" + index.processorReference[b]!
    return ka < kb ? -1 : ka > kb ? 1 : 0
  })
  const pendingGroups = new Map<string, Array<number>>()
  const flushGroup = (rows: ReadonlyArray<number>) => {
    const first = rows[0]!
    if (rows.length === 1) {
      emit(index.processor[first]!, index.captureDay[first]! + 1, {
        processor_reference: index.processorReference[first]!,
        amount_minor: index.amountMinor[first]!,
        currency: index.currency[first]!,
        fee_minor: 0,
        type: "settled"
      })
      clean.exact++
      return
    }
    const separator = mappings.get(index.processor[first]!)?.reference_separator ?? "|"
    emit(index.processor[first]!, index.captureDay[first]! + 1, {
      processor_reference: rows.map((row) => index.processorReference[row]!).join(separator),
      amount_minor: rows.reduce((sum, row) => sum + index.amountMinor[row]!, 0),
      currency: index.currency[first]!,
      fee_minor: 0,
      type: "settled"
    })
    clean.payout_group += rows.length
  }
  let unknownReference = 0
  let firstCaptureDay = Number.MAX_SAFE_INTEGER
  for (let row = 0; row < index.size; row++)
    if (index.captureDay[row]! >= 0) firstCaptureDay = Math.min(firstCaptureDay, index.captureDay[row]!)
  for (const row of order) {
    const processor = index.processor[row]!
    if (!mappings.has(processor)) continue
    const expected = index.amountMinor[row]!
    const currency = index.currency[row]!
    const captureDay = index.captureDay[row]!
    const tolerance = toleranceFor(rules, expected)
    const exactAmount = index.status[row] !== "partially_refunded" && expected >= 3
    const fee = Math.floor(expected / 50)
    const settle = (day: number, amount = expected, lineCurrency = currency) =>
      emit(processor, day, {
        processor_reference: index.processorReference[row]!,
        amount_minor: amount,
        currency: lineCurrency,
        fee_minor: Math.min(fee, amount),
        type: "settled"
      })
    const kind = random.weighted(kinds)
    // Refunds and chargebacks the index records reach the processor too, captured here or not.
    const refundsAndChargebacks = (injectStatusMismatch: boolean, cleanDay: number) => {
      const refundDay = index.refundDay[row]!
      const refundLine = (day: number) =>
        emit(processor, day, {
          processor_reference: index.processorReference[row]!,
          amount_minor: expected,
          currency,
          fee_minor: 0,
          type: "refund"
        })
      if (refundDay >= 0) {
        if (injectStatusMismatch) truth("status_mismatch", row, expected, refundDay + window)
        else refundLine(refundDay + random.int(0, Math.min(1, window)))
      } else if (injectStatusMismatch) {
        const day = cleanDay + 1
        refundLine(day)
        truth("status_mismatch", row, expected, day)
      }
      const chargebackDay = index.chargebackDay[row]!
      if (chargebackDay >= 0)
        emit(processor, chargebackDay + random.int(0, Math.min(1, window)), {
          processor_reference: index.processorReference[row]!,
          amount_minor: expected,
          currency,
          fee_minor: 0,
          type: "chargeback"
        })
    }
    if (captureDay < 0) {
      if (kind === "status_mismatch") {
        const day = firstCaptureDay + random.int(0, window)
        settle(day)
        truth("status_mismatch", row, expected, day)
      }
      refundsAndChargebacks(false, firstCaptureDay)
      continue
    }
    const cleanDay = captureDay + random.int(0, Math.min(2, window))
    switch (kind) {
      case "missing_at_processor":
        truth("missing_at_processor", row, expected, captureDay + window)
        break
      case "amount_mismatch": {
        if (!exactAmount) {
          settle(cleanDay)
          clean.exact++
          break
        }
        const delta = tolerance + 1 + random.int(0, 500)
        const amount = random.chance(0.5) || expected - delta < 0 ? expected + delta : expected - delta
        settle(cleanDay, amount)
        truth("amount_mismatch", row, delta, cleanDay)
        break
      }
      case "currency_mismatch": {
        const other = otherCurrencies.find((code) => code !== currency && random.chance(0.5)) ?? "CHF"
        const lineCurrency = other === currency ? "SEK" : other
        settle(cleanDay, expected, lineCurrency)
        truth("currency_mismatch", row, expected, cleanDay, lineCurrency)
        break
      }
      case "duplicate_settlement": {
        settle(cleanDay)
        const again = Math.min(captureDay + window, cleanDay + random.int(0, 1))
        settle(again)
        truth("duplicate_settlement", row, expected, again)
        break
      }
      case "late_settlement": {
        const day = captureDay + window + random.int(1, 3)
        settle(day)
        truth("late_settlement", row, expected, day)
        break
      }
      case "within_tolerance":
        if (exactAmount) {
          settle(cleanDay, random.chance(0.5) ? expected + tolerance : expected - tolerance)
          clean.within_tolerance++
        } else {
          settle(cleanDay)
          clean.exact++
        }
        break
      case "split_settlement":
        if (exactAmount) {
          const first = random.int(1, expected - 1)
          settle(cleanDay, first)
          settle(Math.min(captureDay + window, cleanDay + 1), expected - first)
          clean.split_settlement++
        } else {
          settle(cleanDay)
          clean.exact++
        }
        break
      case "payout_group": {
        const key = `${processor}\u0000${currency}\u0000${captureDay}`
        const group = pendingGroups.get(key) ?? []
        group.push(row)
        if (group.length >= 3) {
          flushGroup(group)
          pendingGroups.delete(key)
        } else pendingGroups.set(key, group)
        break
      }
      case "missing_in_index": {
        settle(cleanDay)
        clean.exact++
        const reference = `unknown_${processor}_${unknownReference++}`
        const amount = 100 + random.int(0, 100_000)
        emit(processor, cleanDay, {
          processor_reference: reference,
          amount_minor: amount,
          currency,
          fee_minor: 0,
          type: "settled"
        })
        breaks.push({
          type: "missing_in_index",
          processor,
          processor_reference: reference,
          amount_minor: amount,
          currency,
          day: dayToIso(cleanDay)
        })
        break
      }
      default:
        settle(cleanDay)
        clean.exact++
    }
    refundsAndChargebacks(kind === "status_mismatch", cleanDay)
  }
  for (const group of pendingGroups.values()) flushGroup(group)

  const files: Array<{ key: string; text: string }> = []
  const sorted = [...byFile.values()].sort((a, b) =>
    a.processor === b.processor ? (a.date < b.date ? -1 : 1) : a.processor < b.processor ? -1 : 1
  )
  const wantedBad = options.badRows ?? 5
  let badRows = 0
  for (const [position, file] of sorted.entries()) {
    const mapping = mappings.get(file.processor)!
    let text = formatSettlementCsv(file.lines, mapping)
    const badHere =
      Math.floor(((position + 1) * wantedBad) / sorted.length) -
      Math.floor((position * wantedBad) / sorted.length)
    for (let bad = 0; bad < badHere; bad++) {
      const d = mapping.delimiter
      const date = formatSettlementDate(file.date, mapping.date_format)
      const typeWord = Object.keys(mapping.type_values)[0]!
      const variants = [
        [`bad_${badRows}`, "12.3456", "USD", "0", date, typeWord, "po"],
        [`bad_${badRows}`, "10.00", "ZZZ", "0", date, typeWord, "po"],
        [`bad_${badRows}`, "10.00", "EUR", "0", "31/31/2026", typeWord, "po"],
        [`bad_${badRows}`, "10.00", "EUR", "0", date, "mystery", "po"],
        ["", "ten", "EUR", "0", date, typeWord, "po"]
      ]
      text += variants[badRows % variants.length]!.join(d) + "\n"
      badRows++
    }
    files.push({ key: settlementKey(file.processor, file.date, "settlements.csv"), text })
  }
  return {
    files,
    lines: lineCount,
    badRows,
    breaks,
    clean,
    firstDate: sorted.length === 0 ? null : sorted.map((file) => file.date).sort()[0]!,
    lastDate:
      sorted.length === 0
        ? null
        : sorted
            .map((file) => file.date)
            .sort()
            .at(-1)!
  }
}

/** The settlement dates a reconciliation must cover to see every injected break (first and last report date, and every break's day). */
export const reconcileRange = (generated: GeneratedSettlements): { from?: string; to?: string } => {
  const days = [
    ...(generated.firstDate === null ? [] : [generated.firstDate]),
    ...(generated.lastDate === null ? [] : [generated.lastDate]),
    ...generated.breaks.map((item) => item.day)
  ].sort()
  return days.length === 0 ? {} : { from: days[0]!, to: days.at(-1)! }
}

export { readIndexColumns } from "./reconcile.js"

/**
 * Generates settlement reports for the committed final_aggregate and stores them in the raw bucket under
 * `raw/settlements/processor=<p>/dt=<date>/settlements.csv` (the truth is returned, not stored).
 */
export const writeGeneratedSettlements = (options: SettlementGenerateOptions = {}) =>
  Effect.gen(function* () {
    const raw = yield* RawBucket
    const processed = yield* ProcessedBucket
    const generated = generateSettlements(yield* readIndexColumns(processed), options)
    yield* Effect.forEach(generated.files, (file) => raw.put(file.key, new TextEncoder().encode(file.text)), {
      concurrency: 8,
      discard: true
    })
    return generated
  })
