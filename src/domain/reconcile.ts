import { createHash } from "node:crypto"
import { Schema } from "effect"
import { dayToIso, SettlementType } from "./settlement.js"

/** Kinds of difference between the index and what a processor settled. */
export const BreakType = Schema.Literal(
  "missing_at_processor",
  "missing_in_index",
  "amount_mismatch",
  "currency_mismatch",
  "status_mismatch",
  "duplicate_settlement",
  "late_settlement"
)
export type BreakType = typeof BreakType.Type

/** Every break type, in report order. */
export const breakTypes: ReadonlyArray<BreakType> = BreakType.literals

/** Which rule matched a settlement line to an index row. */
export const MatchRule = Schema.Literal("exact", "amount_tolerance", "split_settlement", "payout_group")
export type MatchRule = typeof MatchRule.Type

const ruleNames: ReadonlyArray<MatchRule> = MatchRule.literals

/** Tolerances of the matching engine. Integer arithmetic only. */
export const ReconcileRules = Schema.Struct({
  /** A settlement may differ from the index by up to max(this, amount × bps / 10 000) minor units. */
  amount_tolerance_minor: Schema.NonNegativeInt,
  amount_tolerance_bps: Schema.NonNegativeInt,
  /** A capture (refund, chargeback) is due at the processor within this many days after it. */
  settlement_window_days: Schema.NonNegativeInt
})
export type ReconcileRules = typeof ReconcileRules.Type

/** Default tolerances: 1 minor unit or 5 bps, settlement within 3 days. */
export const defaultReconcileRules: ReconcileRules = {
  amount_tolerance_minor: 1,
  amount_tolerance_bps: 5,
  settlement_window_days: 3
}

/** The tolerance allowed on an expected amount. */
export const toleranceFor = (rules: ReconcileRules, expectedMinor: number): number =>
  Math.max(rules.amount_tolerance_minor, Math.floor((expectedMinor * rules.amount_tolerance_bps) / 10_000))

/**
 * The index side, column by column (one entry per final_aggregate row of the processors in scope). Days are
 * UTC days since the epoch, -1 when the event never happened.
 */
export interface IndexColumns {
  readonly size: number
  readonly processor: ReadonlyArray<string>
  readonly processorReference: ReadonlyArray<string>
  readonly transactionId: ReadonlyArray<string>
  readonly status: ReadonlyArray<string>
  readonly amountMinor: Float64Array
  readonly currency: ReadonlyArray<string>
  /** captured_at, else settled_at. */
  readonly captureDay: Int32Array
  readonly refundDay: Int32Array
  readonly chargebackDay: Int32Array
}

/** Settlement type codes in {@link SettlementColumns.type}. */
export const settlementTypeCodes: Readonly<Record<SettlementType, number>> = {
  settled: 0,
  refund: 1,
  chargeback: 2
}
const settlementTypeNames: ReadonlyArray<SettlementType> = ["settled", "refund", "chargeback"]

/** The settlement side, column by column, in a deterministic order (file key, then line). */
export interface SettlementColumns {
  readonly size: number
  readonly processor: ReadonlyArray<string>
  readonly processorReference: ReadonlyArray<string>
  readonly amountMinor: Float64Array
  readonly currency: ReadonlyArray<string>
  readonly day: Int32Array
  /** {@link settlementTypeCodes}. */
  readonly type: Uint8Array
  readonly payoutId: ReadonlyArray<string | null>
  /** Where each line came from: `sourceFiles[sourceFile[line]]` and the line number in it. */
  readonly sourceFile: Int32Array
  readonly sourceLine: Int32Array
  readonly sourceFiles: ReadonlyArray<string>
}

/** `file:line` of a settlement line. */
export const sourceOf = (settlements: SettlementColumns, line: number): string =>
  `${settlements.sourceFiles[settlements.sourceFile[line]!]}:${settlements.sourceLine[line]}`

/** A difference someone has to work, with a stable id (the same difference in a re-run has the same id). */
export const ReconBreak = Schema.Struct({
  break_id: Schema.String,
  type: BreakType,
  processor: Schema.String,
  processor_reference: Schema.String,
  transaction_id: Schema.NullOr(Schema.String),
  settlement_type: Schema.NullOr(SettlementType),
  payout_id: Schema.NullOr(Schema.String),
  expected_amount_minor: Schema.NullOr(Schema.Int),
  actual_amount_minor: Schema.NullOr(Schema.Int),
  /** The money at stake, in `currency`: see docs/CONTRACT-settlements.md. */
  amount_minor: Schema.Int,
  currency: Schema.String,
  expected_currency: Schema.NullOr(Schema.String),
  /** YYYY-MM-DD the break belongs to: the settlement date, or the day a missing settlement became overdue. */
  day: Schema.String,
  detail: Schema.String,
  source: Schema.NullOr(Schema.String)
})
export type ReconBreak = typeof ReconBreak.Type

/** Matches, column by column: settlement line, index row, rule, amount difference, days after the event. */
export interface MatchColumns {
  size: number
  line: Int32Array
  row: Int32Array
  rule: Uint8Array
  amountDiff: Float64Array
  daysAfter: Int32Array
}

/** What a reconciliation of one scope found. */
export interface ReconcileResult {
  readonly matches: MatchColumns
  readonly breaks: ReadonlyArray<ReconBreak>
  /** Index rows of the scope that expected a settlement line by `to`, and settlement lines in [from, to]. */
  readonly counts: {
    readonly indexRows: number
    readonly settlementLines: number
    readonly linesInRange: number
    readonly matchesByRule: Readonly<Record<MatchRule, number>>
  }
}

/** The scope: processors and the settlement-date range (UTC days since the epoch, inclusive). */
export interface ReconcileScope {
  readonly fromDay: number
  readonly toDay: number
  readonly rules: ReconcileRules
}

/** The rule name of a match's rule code. */
export const ruleName = (code: number): MatchRule => ruleNames[code] ?? "exact"

/** A stable id of a break: hash of what identifies the difference, never of the run. */
export const breakId = (parts: ReadonlyArray<string | number | null>): string =>
  createHash("sha1").update(parts.join("\u001f")).digest("hex").slice(0, 20)

class MatchBuilder implements MatchColumns {
  size = 0
  line: Int32Array
  row: Int32Array
  rule: Uint8Array
  amountDiff: Float64Array
  daysAfter: Int32Array
  constructor(capacity: number) {
    const length = Math.max(1024, capacity)
    this.line = new Int32Array(length)
    this.row = new Int32Array(length)
    this.rule = new Uint8Array(length)
    this.amountDiff = new Float64Array(length)
    this.daysAfter = new Int32Array(length)
  }
  add(line: number, row: number, rule: number, amountDiff: number, daysAfter: number) {
    if (this.size === this.line.length) {
      const grow = <T extends Int32Array | Uint8Array | Float64Array>(array: T): T => {
        const bigger = new (array.constructor as new (length: number) => T)(array.length * 2)
        bigger.set(array)
        return bigger
      }
      this.line = grow(this.line)
      this.row = grow(this.row)
      this.rule = grow(this.rule)
      this.amountDiff = grow(this.amountDiff)
      this.daysAfter = grow(this.daysAfter)
    }
    const at = this.size++
    this.line[at] = line
    this.row[at] = row
    this.rule[at] = rule
    this.amountDiff[at] = amountDiff
    this.daysAfter[at] = daysAfter
  }
}

const fnv1a = (text: string): number => {
  let hash = 0x811c9dc5
  for (let at = 0; at < text.length; at++) hash = Math.imul(hash ^ text.charCodeAt(at), 0x01000193)
  return hash
}

/**
 * Index rows by (processor, processor_reference): open addressing over typed arrays with the FNV-1a hash
 * kept beside each slot, so a probe compares strings only when the hashes agree. Twice as fast as a `Map`
 * at 1M keys and 10M (no rehashing while it grows, one string comparison per hit). The first row of a
 * duplicated key wins.
 */
class ReferenceTable {
  /** Slot s: `[2s]` row + 1 (0 = empty), `[2s + 1]` the key's hash; side by side, so a probe touches one cache line. */
  private readonly slots: Int32Array
  private readonly mask: number
  private readonly processors = new Map<string, number>()
  private readonly rowProcessor: Uint16Array

  constructor(private readonly index: IndexColumns) {
    let capacity = 16
    while (capacity < index.size * 2) capacity *= 2
    this.mask = capacity - 1
    this.slots = new Int32Array(capacity * 2)
    this.rowProcessor = new Uint16Array(index.size)
    for (let row = 0; row < index.size; row++) {
      const processor = this.processorCode(index.processor[row]!)
      this.rowProcessor[row] = processor
      const reference = index.processorReference[row]!
      const hash = fnv1a(reference) ^ Math.imul(processor, 0x9e3779b1)
      let slot = hash & this.mask
      let duplicate = false
      for (let held = this.slots[slot * 2]!; held !== 0; held = this.slots[slot * 2]!) {
        if (
          this.slots[slot * 2 + 1] === hash &&
          this.rowProcessor[held - 1] === processor &&
          index.processorReference[held - 1] === reference
        ) {
          duplicate = true
          break
        }
        slot = (slot + 1) & this.mask
      }
      if (!duplicate) {
        this.slots[slot * 2] = row + 1
        this.slots[slot * 2 + 1] = hash
      }
    }
  }

  /** A small number per processor name (new names get the next one). */
  processorCode(processor: string): number {
    let code = this.processors.get(processor)
    if (code === undefined) {
      code = this.processors.size
      this.processors.set(processor, code)
    }
    return code
  }

  /** The row holding the reference for the processor, if any. */
  find(processor: number, reference: string): number | undefined {
    const hash = fnv1a(reference) ^ Math.imul(processor, 0x9e3779b1)
    let slot = hash & this.mask
    for (let held = this.slots[slot * 2]!; held !== 0; held = this.slots[slot * 2]!) {
      if (
        this.slots[slot * 2 + 1] === hash &&
        this.rowProcessor[held - 1] === processor &&
        this.index.processorReference[held - 1] === reference
      )
        return held - 1
      slot = (slot + 1) & this.mask
    }
    return undefined
  }
}

const ruleCode = { exact: 0, amount_tolerance: 1, split_settlement: 2, payout_group: 3 } as const

/**
 * Matches settlement lines against index rows. Deterministic: the same columns in the same order give the
 * same matches and breaks. Settlement lines dated outside [fromDay, toDay] (a window's look-back and
 * look-ahead) take part in matching but yield no output, so a day reconciled alone gets the same answer as
 * in a longer run over the same files; breaks about index rows are emitted when they became due in the range.
 * A group of lines (split, duplicates) is reported by the run holding its last line.
 *
 * Rules, per index row and settlement type (settled, refund, chargeback), over the lines whose
 * processor_reference is the row's:
 * - a line in another currency → `currency_mismatch` (left out of the amount check);
 * - a refund or chargeback line for a row never refunded or charged back, a settled line for a row never
 *   captured → `status_mismatch`;
 * - one line within tolerance → `exact` or `amount_tolerance`; several lines whose sum is within tolerance →
 *   `split_settlement`; several lines each within tolerance → the first matches, the others are
 *   `duplicate_settlement`; anything else → `amount_mismatch` (actual = the lines' sum);
 * - a match dated more than the window after the event → also `late_settlement`;
 * - no line by the window's end: a captured row → `missing_at_processor`, a refunded or charged-back row →
 *   `status_mismatch` (refunded here, not at the processor).
 * A settled line listing several references is a payout line: every reference must be in the index in the line's
 * currency and the sum within tolerance (`payout_group`), else a break per unknown reference
 * (`missing_in_index`) or one `amount_mismatch`/`currency_mismatch` for the line. Lines whose
 * reference is unknown → `missing_in_index`.
 */
export const reconcile = (
  index: IndexColumns,
  settlements: SettlementColumns,
  scope: ReconcileScope,
  referenceSeparator: (processor: string) => string = () => "|"
): ReconcileResult => {
  const { fromDay, toDay, rules } = scope
  const windowDays = rules.settlement_window_days
  const references = new ReferenceTable(index)
  const firstSettled = new Int32Array(index.size).fill(-1)
  const moreLines = new Map<number, Array<number>>()
  const otherTypeLines = new Map<number, Array<number>>()
  const groupCovered = new Uint8Array(index.size)
  const breaks: Array<ReconBreak> = []
  const matches = new MatchBuilder(settlements.size + (settlements.size >> 4))
  const inRange = (day: number) => day >= fromDay && day <= toDay
  let linesInRange = 0
  // Identical lines (the same unknown line twice in a report) give the same parts: the n-th repeat in the
  // run's order gets n appended, so every break keeps an id of its own and a re-run gives it the same one.
  const idsSeen = new Map<string, number>()
  const uniqueId = (parts: ReadonlyArray<string | number | null>): string => {
    const id = breakId(parts)
    const seen = idsSeen.get(id)
    idsSeen.set(id, (seen ?? 0) + 1)
    return seen === undefined ? id : breakId([...parts, `repeat ${seen}`])
  }

  const lineBreak = (
    type: BreakType,
    line: number,
    row: number | null,
    fields: {
      expected: number | null
      actual: number | null
      amount: number
      detail: string
      reference?: string
      ordinal?: number
    }
  ) => {
    const reference = fields.reference ?? settlements.processorReference[line]!
    const settlementType = settlementTypeNames[settlements.type[line]!]!
    const processor = settlements.processor[line]!
    const payout = settlements.payoutId[line] ?? null
    const date = dayToIso(settlements.day[line]!)
    breaks.push({
      break_id: uniqueId([
        type,
        processor,
        reference,
        settlementType,
        payout,
        date,
        settlements.amountMinor[line]!,
        fields.ordinal ?? 0
      ]),
      type,
      processor,
      processor_reference: reference,
      transaction_id: row === null ? null : index.transactionId[row]!,
      settlement_type: settlementType,
      payout_id: payout,
      expected_amount_minor: fields.expected,
      actual_amount_minor: fields.actual,
      amount_minor: fields.amount,
      currency: settlements.currency[line]!,
      expected_currency: row === null ? null : index.currency[row]!,
      day: date,
      detail: fields.detail,
      source: sourceOf(settlements, line)
    })
  }

  // Lines to rows; payout lines (several references) are settled here at once.
  for (let line = 0; line < settlements.size; line++) {
    const processor = settlements.processor[line]!
    const day = settlements.day[line]!
    const counted = inRange(day)
    if (counted) linesInRange++
    const processorCode = references.processorCode(processor)
    const reference = settlements.processorReference[line]!
    const separator = referenceSeparator(processor)
    if (settlements.type[line] === 0 && reference.includes(separator)) {
      const parts = reference.split(separator).filter((part) => part !== "")
      const rows = parts.map((part) => references.find(processorCode, part))
      const unknown = parts.filter((_, at) => rows[at] === undefined)
      const known = rows.filter((row): row is number => row !== undefined)
      if (!counted) {
        if (unknown.length === 0) for (const row of known) groupCovered[row] = 1
        continue
      }
      if (unknown.length > 0) {
        // The line's money cannot be split between its payments: all of it is at stake, and the known
        // payments stay unsettled (each is checked on its own).
        lineBreak("missing_in_index", line, null, {
          expected: null,
          actual: settlements.amountMinor[line]!,
          amount: settlements.amountMinor[line]!,
          detail: `payout line lists ${unknown.join(", ")}, which the index does not hold for ${processor}`
        })
        continue
      }
      if (known.some((row) => groupCovered[row] === 1)) {
        lineBreak("duplicate_settlement", line, null, {
          expected: null,
          actual: settlements.amountMinor[line]!,
          amount: settlements.amountMinor[line]!,
          detail: `payout line covers ${known
            .filter((row) => groupCovered[row] === 1)
            .map((row) => index.processorReference[row])
            .join(", ")}, already on an earlier payout line`
        })
        continue
      }
      for (const row of known) groupCovered[row] = 1
      const notCaptured = known.filter((row) => index.captureDay[row]! < 0)
      if (notCaptured.length > 0) {
        lineBreak("status_mismatch", line, null, {
          expected: null,
          actual: settlements.amountMinor[line]!,
          amount: settlements.amountMinor[line]!,
          detail: `payout line settles ${notCaptured.map((row) => `${index.processorReference[row]} (${index.status[row]})`).join(", ")}, never captured in the index`
        })
        continue
      }
      const currency = settlements.currency[line]!
      const otherCurrency = known.filter((row) => index.currency[row] !== currency)
      if (otherCurrency.length > 0) {
        lineBreak("currency_mismatch", line, null, {
          expected: null,
          actual: settlements.amountMinor[line]!,
          amount: settlements.amountMinor[line]!,
          detail: `payout line in ${currency} covers ${otherCurrency.map((row) => `${index.processorReference[row]} (${index.currency[row]})`).join(", ")}`
        })
        continue
      }
      let expected = 0
      for (const row of known) expected += index.amountMinor[row]!
      const actual = settlements.amountMinor[line]!
      const difference = actual - expected
      if (Math.abs(difference) > toleranceFor(rules, expected)) {
        lineBreak("amount_mismatch", line, null, {
          expected,
          actual,
          amount: Math.abs(difference),
          detail: `payout line of ${known.length} payments: ${actual} settled, ${expected} expected (tolerance ${toleranceFor(rules, expected)})`
        })
        continue
      }
      for (const row of known)
        matches.add(line, row, ruleCode.payout_group, difference, day - index.captureDay[row]!)
      const lateDays = Math.max(...known.map((row) => day - index.captureDay[row]!))
      if (lateDays > windowDays)
        lineBreak("late_settlement", line, null, {
          expected,
          actual,
          amount: actual,
          detail: `payout line ${lateDays} days after the earliest capture it covers (window ${windowDays})`
        })
      continue
    }
    const row = references.find(processorCode, reference)
    if (row === undefined) {
      if (counted)
        lineBreak("missing_in_index", line, null, {
          expected: null,
          actual: settlements.amountMinor[line]!,
          amount: settlements.amountMinor[line]!,
          detail: `no payment with reference ${reference} for ${processor} in the index`
        })
      continue
    }
    if (settlements.type[line] === 0) {
      if (firstSettled[row] === -1) firstSettled[row] = line
      else {
        const list = moreLines.get(row)
        if (list === undefined) moreLines.set(row, [line])
        else list.push(line)
      }
    } else {
      const list = otherTypeLines.get(row)
      if (list === undefined) otherTypeLines.set(row, [line])
      else list.push(line)
    }
  }

  const evaluate = (row: number, lines: ReadonlyArray<number>, type: number, eventDay: number) => {
    const expected = index.amountMinor[row]!
    const currency = index.currency[row]!
    const sameCurrency: Array<number> = []
    for (const line of lines) {
      if (settlements.currency[line] === currency) sameCurrency.push(line)
      else if (inRange(settlements.day[line]!))
        lineBreak("currency_mismatch", line, row, {
          expected,
          actual: settlements.amountMinor[line]!,
          amount: settlements.amountMinor[line]!,
          detail: `settled in ${settlements.currency[line]}, the index has ${currency}`
        })
    }
    if (sameCurrency.length === 0) return
    const status = index.status[row]!
    if (eventDay < 0) {
      for (const line of sameCurrency)
        if (inRange(settlements.day[line]!))
          lineBreak("status_mismatch", line, row, {
            expected: null,
            actual: settlements.amountMinor[line]!,
            amount: settlements.amountMinor[line]!,
            detail: `${settlementTypeNames[type]} at the processor, ${status} in the index`
          })
      return
    }
    // A partially refunded row carries the refund amount: its capture amount is unknown, so the settled
    // amount must only cover it.
    const lowerBoundOnly = type === 0 && status === "partially_refunded"
    const tolerance = toleranceFor(rules, expected)
    const within = (actual: number) =>
      lowerBoundOnly ? actual + tolerance >= expected : Math.abs(actual - expected) <= tolerance
    const matchOne = (line: number, rule: number) => {
      const lineDay = settlements.day[line]!
      if (!inRange(lineDay)) return
      const difference = lowerBoundOnly ? 0 : settlements.amountMinor[line]! - expected
      matches.add(
        line,
        row,
        rule === 0 && difference !== 0 ? ruleCode.amount_tolerance : rule,
        difference,
        lineDay - eventDay
      )
    }
    const lateCheck = (line: number) => {
      const days = settlements.day[line]! - eventDay
      if (days > windowDays && inRange(settlements.day[line]!))
        lineBreak("late_settlement", line, row, {
          expected,
          actual: settlements.amountMinor[line]!,
          amount: settlements.amountMinor[line]!,
          detail: `${settlementTypeNames[type]} ${days} days after the ${type === 0 ? "capture" : settlementTypeNames[type]} (window ${windowDays})`
        })
    }
    if (sameCurrency.length === 1) {
      const line = sameCurrency[0]!
      if (within(settlements.amountMinor[line]!)) {
        matchOne(line, ruleCode.exact)
        lateCheck(line)
      } else if (inRange(settlements.day[line]!))
        lineBreak("amount_mismatch", line, row, {
          expected,
          actual: settlements.amountMinor[line]!,
          amount: Math.abs(settlements.amountMinor[line]! - expected),
          detail: `${settlements.amountMinor[line]} settled, ${expected} expected (tolerance ${tolerance})`
        })
      return
    }
    let sum = 0
    let last = sameCurrency[0]!
    for (const line of sameCurrency) {
      sum += settlements.amountMinor[line]!
      if (settlements.day[line]! > settlements.day[last]!) last = line
    }
    if (sameCurrency.every((line) => within(settlements.amountMinor[line]!))) {
      matchOne(sameCurrency[0]!, ruleCode.exact)
      lateCheck(sameCurrency[0]!)
      for (const [ordinal, line] of sameCurrency.slice(1).entries())
        if (inRange(settlements.day[line]!))
          lineBreak("duplicate_settlement", line, row, {
            expected,
            actual: settlements.amountMinor[line]!,
            amount: settlements.amountMinor[line]!,
            ordinal,
            detail: `${settlementTypeNames[type]} again (first: ${sourceOf(settlements, sameCurrency[0]!)})`
          })
      return
    }
    if (!lowerBoundOnly && Math.abs(sum - expected) <= tolerance) {
      if (!inRange(settlements.day[last]!)) return
      for (const line of sameCurrency) {
        matches.add(line, row, ruleCode.split_settlement, 0, settlements.day[line]! - eventDay)
      }
      lateCheck(last)
      return
    }
    if (inRange(settlements.day[last]!))
      lineBreak("amount_mismatch", last, row, {
        expected,
        actual: sum,
        amount: Math.abs(sum - expected),
        detail: `${sameCurrency.length} lines sum to ${sum}, ${expected} expected (tolerance ${tolerance})`
      })
  }

  const overdue = (
    row: number,
    type: BreakType,
    eventDay: number,
    detail: string,
    expected: number | null
  ) => {
    const due = eventDay + windowDays
    if (!inRange(due)) return
    const processor = index.processor[row]!
    const reference = index.processorReference[row]!
    breaks.push({
      break_id: uniqueId([type, processor, reference, index.transactionId[row]!, detail.split(":")[0]!]),
      type,
      processor,
      processor_reference: reference,
      transaction_id: index.transactionId[row]!,
      settlement_type: null,
      payout_id: null,
      expected_amount_minor: expected,
      actual_amount_minor: null,
      amount_minor: index.amountMinor[row]!,
      currency: index.currency[row]!,
      expected_currency: index.currency[row]!,
      day: dayToIso(due),
      detail,
      source: null
    })
  }

  let indexRows = 0
  for (let row = 0; row < index.size; row++) {
    const first = firstSettled[row]!
    const captureDay = index.captureDay[row]!
    if (captureDay >= 0 && inRange(captureDay + windowDays)) indexRows++
    if (first >= 0) {
      const extra = moreLines.size === 0 ? undefined : moreLines.get(row)
      if (extra === undefined && groupCovered[row] === 0) {
        // The common case without allocating: one line, same currency, in the window, within tolerance.
        const lineDay = settlements.day[first]!
        const expected = index.amountMinor[row]!
        const difference = settlements.amountMinor[first]! - expected
        if (
          captureDay >= 0 &&
          lineDay - captureDay <= windowDays &&
          settlements.currency[first] === index.currency[row] &&
          index.status[row] !== "partially_refunded" &&
          Math.abs(difference) <= toleranceFor(rules, expected)
        ) {
          if (inRange(lineDay))
            matches.add(
              first,
              row,
              difference === 0 ? ruleCode.exact : ruleCode.amount_tolerance,
              difference,
              lineDay - captureDay
            )
        } else evaluate(row, [first], 0, captureDay)
      } else if (groupCovered[row] === 1) {
        for (const [ordinal, line] of [first, ...(extra ?? [])].entries())
          if (inRange(settlements.day[line]!))
            lineBreak("duplicate_settlement", line, row, {
              expected: index.amountMinor[row]!,
              actual: settlements.amountMinor[line]!,
              amount: settlements.amountMinor[line]!,
              ordinal,
              detail: "settled on its own and on a payout line"
            })
      } else evaluate(row, extra === undefined ? [first] : [first, ...extra], 0, captureDay)
    } else if (captureDay >= 0 && groupCovered[row] === 0)
      overdue(
        row,
        "missing_at_processor",
        captureDay,
        `not settled: captured ${dayToIso(captureDay)}, no settlement within ${windowDays} days`,
        index.amountMinor[row]!
      )
    const refundDay = index.refundDay[row]!
    const chargebackDay = index.chargebackDay[row]!
    const others = otherTypeLines.size === 0 ? undefined : otherTypeLines.get(row)
    if (others === undefined && refundDay < 0 && chargebackDay < 0) continue
    const refunds = others?.filter((line) => settlements.type[line] === 1) ?? []
    const chargebacks = others?.filter((line) => settlements.type[line] === 2) ?? []
    if (refunds.length > 0) evaluate(row, refunds, 1, refundDay)
    else if (refundDay >= 0)
      overdue(
        row,
        "status_mismatch",
        refundDay,
        `refund missing: refunded ${dayToIso(refundDay)} here (${index.status[row]}), no refund at the processor`,
        null
      )
    if (chargebacks.length > 0) evaluate(row, chargebacks, 2, chargebackDay)
    else if (chargebackDay >= 0)
      overdue(
        row,
        "status_mismatch",
        chargebackDay,
        `chargeback missing: charged back ${dayToIso(chargebackDay)} here, none at the processor`,
        null
      )
  }

  const matchesByRule: Record<MatchRule, number> = {
    exact: 0,
    amount_tolerance: 0,
    split_settlement: 0,
    payout_group: 0
  }
  const byCode = new Float64Array(ruleNames.length)
  for (let at = 0; at < matches.size; at++) byCode[matches.rule[at]!]!++
  for (const [code, name] of ruleNames.entries()) matchesByRule[name] = byCode[code]!
  return {
    matches,
    breaks,
    counts: { indexRows, settlementLines: settlements.size, linesInRange, matchesByRule }
  }
}

/** One summary row: breaks of one type for one processor, day and currency (count and money at stake). */
export const BreakSummaryRow = Schema.Struct({
  processor: Schema.String,
  day: Schema.String,
  break_type: BreakType,
  currency: Schema.String,
  count: Schema.Int,
  amount_minor: Schema.Int
})
export type BreakSummaryRow = typeof BreakSummaryRow.Type

/** Breaks summed by processor, day, type and currency (sorted). */
export const summarizeBreaks = (breaks: ReadonlyArray<ReconBreak>): Array<BreakSummaryRow> => {
  const groups = new Map<string, { row: BreakSummaryRow; count: number; amount: number }>()
  for (const item of breaks) {
    const key = [item.processor, item.day, item.type, item.currency].join("\u0000")
    const group = groups.get(key)
    if (group === undefined)
      groups.set(key, {
        row: {
          processor: item.processor,
          day: item.day,
          break_type: item.type,
          currency: item.currency,
          count: 0,
          amount_minor: 0
        },
        count: 1,
        amount: item.amount_minor
      })
    else {
      group.count++
      group.amount += item.amount_minor
    }
  }
  return [...groups.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, group]) => ({ ...group.row, count: group.count, amount_minor: group.amount }))
}
