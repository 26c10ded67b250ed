import { createHash } from "node:crypto"
import type { PlatformError } from "@effect/platform/Error"
import { Clock, Data, Effect, Option, Schema } from "effect"
import { redactCardNumbersInText } from "../domain/card.js"
import type { DatasetError, ObjectStoreError, ParquetError } from "../domain/errors.js"
import {
  BreakSummaryRow,
  BreakType,
  defaultReconcileRules,
  type IndexColumns,
  type MatchColumns,
  ReconBreak,
  type ReconcileResult,
  ReconcileRules,
  reconcile,
  ruleName,
  type SettlementColumns,
  settlementTypeCodes,
  sourceOf,
  summarizeBreaks
} from "../domain/reconcile.js"
import { column, type TableRow, type TableSchema } from "../domain/rows.js"
import {
  dayToIso,
  defaultProcessorMappings,
  epochDay,
  type ProcessorMapping,
  parseSettlementCsv,
  parseSettlementDate,
  parseSettlementKey,
  type SettlementLine,
  settlementsPrefix
} from "../domain/settlement.js"
import { KeyValueStore } from "../layers/KeyValueStore.js"
import { type ObjectStore, ProcessedBucket, RawBucket } from "../layers/ObjectStore.js"
import { Parquet } from "../layers/ParquetCodec.js"
import { contentTag, prefixes, readCommittedFile, readManifest } from "./datasets.js"
import { type QuarantineEntry, writeQuarantine } from "./quarantine.js"

/** Prefix of reconciliation output in the processed bucket. */
export const reconPrefix = "recon/"

/** Key of the reconciliation manifest: which run holds each processor's day, and the summary. */
export const reconManifestKey = `${reconPrefix}_manifest.json`

/** A reconciliation could not run (bad options, unknown exception, unreadable state). */
export class ReconError extends Data.TaggedError("ReconError")<{ readonly reason: string }> {
  override get message(): string {
    return `reconciliation: ${this.reason}`
  }
}

/** Figures of one run. */
export const ReconRunCounts = Schema.Struct({
  index_rows_due: Schema.Int,
  settlement_lines: Schema.Int,
  settlement_lines_in_range: Schema.Int,
  rejected_rows: Schema.Int,
  matches: Schema.Int,
  matches_by_rule: Schema.Record({ key: Schema.String, value: Schema.Int }),
  breaks: Schema.Int,
  breaks_by_type: Schema.Record({ key: Schema.String, value: Schema.Int })
})
export type ReconRunCounts = typeof ReconRunCounts.Type

/** `recon/run=<id>/_manifest.json`: a run's scope, inputs, files and figures (no clock time: a re-run writes the same bytes). */
export const ReconRunManifest = Schema.Struct({
  run_id: Schema.String,
  processors: Schema.Array(Schema.String),
  from: Schema.String,
  to: Schema.String,
  rules: ReconcileRules,
  final_aggregate_version: Schema.NullOr(Schema.String),
  settlement_files: Schema.Array(Schema.Struct({ key: Schema.String, sha256: Schema.String })),
  files: Schema.Array(Schema.String),
  counts: ReconRunCounts
})
export type ReconRunManifest = typeof ReconRunManifest.Type

/** The current reconciliation: which run holds each (processor, day), their summary rows, the runs. */
export const ReconManifest = Schema.Struct({
  updated_at: Schema.String,
  days: Schema.Array(Schema.Struct({ processor: Schema.String, day: Schema.String, run_id: Schema.String })),
  summary: Schema.Array(BreakSummaryRow),
  runs: Schema.Array(ReconRunManifest)
})
export type ReconManifest = typeof ReconManifest.Type

/** What {@link runReconcile} did. */
export interface ReconcileReport {
  readonly runId: string
  readonly processors: ReadonlyArray<string>
  readonly from: string
  readonly to: string
  readonly counts: ReconRunCounts
  readonly files: ReadonlyArray<string>
  readonly quarantined: ReadonlyArray<string>
  readonly replacedRuns: ReadonlyArray<string>
  /** Wall-clock milliseconds of the matching engine alone. */
  readonly matchMillis: number
  /** Wall-clock milliseconds of each part: reading reports, reading the index, matching, writing recon/, exceptions. */
  readonly phaseMillis: {
    readonly readSettlements: number
    readonly readIndex: number
    readonly match: number
    readonly write: number
    readonly exceptions: number
  }
}

/** Options of {@link runReconcile}. */
export interface ReconcileOptions {
  /** Processors to reconcile; default every processor with settlement files. */
  readonly processors?: ReadonlyArray<string>
  /** First and last settlement date (YYYY-MM-DD); default the dates of the settlement files found. */
  readonly from?: string
  readonly to?: string
  readonly rules?: ReconcileRules
  readonly mappings?: ReadonlyArray<ProcessorMapping>
  /** Write matches.parquet (default true). */
  readonly writeMatches?: boolean
}

const indexColumns = [
  "processor",
  "processor_reference",
  "transaction_id",
  "status",
  "amount_minor",
  "currency",
  "captured_at",
  "settled_at",
  "refunded_at",
  "chargeback_at"
]

const dayMicros = 86_400_000_000
const dayOf = (micros: unknown): number => (typeof micros === "number" ? Math.floor(micros / dayMicros) : -1)

/** Collects index columns a file's rows at a time, so no file's row objects outlive its turn. */
export class IndexColumnsBuilder {
  private readonly processor: Array<string> = []
  private readonly processorReference: Array<string> = []
  private readonly transactionId: Array<string> = []
  private readonly status: Array<string> = []
  private readonly amountMinor: Array<number> = []
  private readonly currency: Array<string> = []
  private readonly captureDay: Array<number> = []
  private readonly refundDay: Array<number> = []
  private readonly chargebackDay: Array<number> = []

  /** Appends the final_aggregate rows whose processor is in `processors` (every one when undefined). */
  add(rows: ReadonlyArray<TableRow>, processors?: ReadonlySet<string>): void {
    for (const row of rows) {
      const processor = row.processor as string
      if (processors !== undefined && !processors.has(processor)) continue
      this.processor.push(processor)
      this.processorReference.push(row.processor_reference as string)
      this.transactionId.push(row.transaction_id as string)
      this.status.push(row.status as string)
      this.amountMinor.push(row.amount_minor as number)
      this.currency.push(row.currency as string)
      const captured = dayOf(row.captured_at)
      this.captureDay.push(captured >= 0 ? captured : dayOf(row.settled_at))
      this.refundDay.push(dayOf(row.refunded_at))
      this.chargebackDay.push(dayOf(row.chargeback_at))
    }
  }

  build(): IndexColumns {
    return {
      size: this.processor.length,
      processor: this.processor,
      processorReference: this.processorReference,
      transactionId: this.transactionId,
      status: this.status,
      amountMinor: Float64Array.from(this.amountMinor),
      currency: this.currency,
      captureDay: Int32Array.from(this.captureDay),
      refundDay: Int32Array.from(this.refundDay),
      chargebackDay: Int32Array.from(this.chargebackDay)
    }
  }
}

/** Columns of the given final_aggregate rows whose processor is in `processors` (every one when undefined). */
export const indexColumnsOf = (
  rows: ReadonlyArray<TableRow>,
  processors: ReadonlySet<string> | undefined
): IndexColumns => {
  const builder = new IndexColumnsBuilder()
  builder.add(rows, processors)
  return builder.build()
}

/** Collects settlement columns a file's lines at a time, in the order added. */
export class SettlementColumnsBuilder {
  private readonly processor: Array<string> = []
  private readonly processorReference: Array<string> = []
  private readonly amountMinor: Array<number> = []
  private readonly currency: Array<string> = []
  private readonly day: Array<number> = []
  private readonly type: Array<number> = []
  private readonly payoutId: Array<string | null> = []
  private readonly sourceFile: Array<number> = []
  private readonly sourceLine: Array<number> = []
  private readonly sourceFiles: Array<string> = []
  private readonly fileNumbers = new Map<string, number>()
  private readonly days = new Map<string, number>()

  add(lines: ReadonlyArray<SettlementLine>): void {
    for (const line of lines) {
      this.processor.push(line.processor)
      this.processorReference.push(line.processor_reference)
      this.amountMinor.push(line.amount_minor)
      this.currency.push(line.currency)
      let day = this.days.get(line.settlement_date)
      if (day === undefined) {
        day = epochDay(line.settlement_date)
        this.days.set(line.settlement_date, day)
      }
      this.day.push(day)
      this.type.push(settlementTypeCodes[line.type])
      this.payoutId.push(line.payout_id)
      const colon = line.source.lastIndexOf(":")
      const file = colon < 0 ? line.source : line.source.slice(0, colon)
      let fileNumber = this.fileNumbers.get(file)
      if (fileNumber === undefined) {
        fileNumber = this.sourceFiles.length
        this.sourceFiles.push(file)
        this.fileNumbers.set(file, fileNumber)
      }
      this.sourceFile.push(fileNumber)
      this.sourceLine.push(colon < 0 ? 0 : Number(line.source.slice(colon + 1)))
    }
  }

  build(): SettlementColumns {
    return {
      size: this.processor.length,
      processor: this.processor,
      processorReference: this.processorReference,
      amountMinor: Float64Array.from(this.amountMinor),
      currency: this.currency,
      day: Int32Array.from(this.day),
      type: Uint8Array.from(this.type),
      payoutId: this.payoutId,
      sourceFile: Int32Array.from(this.sourceFile),
      sourceLine: Int32Array.from(this.sourceLine),
      sourceFiles: this.sourceFiles
    }
  }
}

/** Columns of settlement lines, in the order given. */
export const settlementColumnsOf = (lines: ReadonlyArray<SettlementLine>): SettlementColumns => {
  const builder = new SettlementColumnsBuilder()
  builder.add(lines)
  return builder.build()
}

/** The committed final_aggregate as index columns (rows of `processors` only, when given) and its version. */
const readIndex = (processed: ObjectStore, processors?: ReadonlySet<string>) =>
  Effect.gen(function* () {
    const codec = yield* Parquet
    const manifest = yield* readManifest(processed, prefixes.finalAggregate)
    const builder = new IndexColumnsBuilder()
    for (const file of Option.match(manifest, { onNone: () => [], onSome: (m) => m.files }))
      builder.add(
        yield* readCommittedFile(processed, codec, "final_aggregate", file.key, indexColumns),
        processors
      )
    return {
      index: builder.build(),
      version: Option.match(manifest, { onNone: () => null, onSome: (m) => m.version })
    }
  })

/** Reads the committed final_aggregate into index columns (rows of `processors` only, when given). */
export const readIndexColumns = (
  processed: ObjectStore,
  processors?: ReadonlySet<string>
): Effect.Effect<IndexColumns, ObjectStoreError | ParquetError | DatasetError, Parquet> =>
  Effect.map(readIndex(processed, processors), (read) => read.index)

/** Columns of `recon/run=…/breaks.parquet`. */
export const breaksSchema: TableSchema = [
  column("break_id", "string"),
  column("type", "string"),
  column("processor", "string"),
  column("processor_reference", "string"),
  column("transaction_id", "string", true),
  column("settlement_type", "string", true),
  column("payout_id", "string", true),
  column("expected_amount_minor", "int64", true),
  column("actual_amount_minor", "int64", true),
  column("amount_minor", "int64"),
  column("currency", "string"),
  column("expected_currency", "string", true),
  column("day", "string"),
  column("detail", "string"),
  column("source", "string", true)
]

/** Columns of `recon/run=…/matches.parquet`: one row per (settlement line, index row) matched, with its rule. */
export const matchesSchema: TableSchema = [
  column("processor", "string"),
  column("processor_reference", "string"),
  column("transaction_id", "string"),
  column("rule", "string"),
  column("settlement_type", "string"),
  column("settlement_date", "string"),
  column("payout_id", "string", true),
  column("amount_minor", "int64"),
  column("currency", "string"),
  column("amount_difference_minor", "int64"),
  column("days_after_event", "int64"),
  column("source", "string")
]

/** Columns of `recon/run=…/summary.parquet`. */
export const summarySchema: TableSchema = [
  column("processor", "string"),
  column("day", "string"),
  column("break_type", "string"),
  column("currency", "string"),
  column("count", "int64"),
  column("amount_minor", "int64")
]

const settlementTypeNames = ["settled", "refund", "chargeback"] as const

const matchRows = (
  matches: MatchColumns,
  index: IndexColumns,
  settlements: SettlementColumns
): Array<TableRow> => {
  const rows = new Array<TableRow>(matches.size)
  for (let at = 0; at < matches.size; at++) {
    const line = matches.line[at]!
    const row = matches.row[at]!
    rows[at] = {
      processor: settlements.processor[line]!,
      processor_reference: index.processorReference[row]!,
      transaction_id: index.transactionId[row]!,
      rule: ruleName(matches.rule[at]!),
      settlement_type: settlementTypeNames[settlements.type[line]!]!,
      settlement_date: dayToIso(settlements.day[line]!),
      payout_id: settlements.payoutId[line] ?? null,
      amount_minor: settlements.amountMinor[line]!,
      currency: settlements.currency[line]!,
      amount_difference_minor: matches.amountDiff[at]!,
      days_after_event: matches.daysAfter[at]!,
      source: sourceOf(settlements, line)
    }
  }
  return rows
}

const decodeReconManifest = Schema.decodeUnknown(Schema.parseJson(ReconManifest))

/** The current reconciliation manifest, if a run was ever committed. */
export const readReconManifest = (
  store: ObjectStore
): Effect.Effect<Option.Option<ReconManifest>, ObjectStoreError | ReconError> =>
  Effect.flatMap(store.get(reconManifestKey), (body) =>
    Option.match(body, {
      onNone: () => Effect.succeedNone,
      onSome: (bytes) =>
        decodeReconManifest(new TextDecoder().decode(bytes)).pipe(
          Effect.map(Option.some),
          Effect.mapError((error) => new ReconError({ reason: `bad ${reconManifestKey}: ${error.message}` }))
        )
    })
  )

const encodeJson = (value: unknown) => new TextEncoder().encode(JSON.stringify(value, null, 2))

/** A settlement report found in the raw bucket. */
interface SettlementFile {
  readonly key: string
  readonly processor: string
  readonly dt: string
}

/** Settlement lines of the files, parsed in key order; bad rows and files without a mapping quarantined. */
const readSettlementFiles = (
  raw: ObjectStore,
  processed: ObjectStore,
  files: ReadonlyArray<SettlementFile>,
  mappings: ReadonlyMap<string, ProcessorMapping>,
  windowDays: number
) =>
  Effect.gen(function* () {
    const lines = new SettlementColumnsBuilder()
    const hashes: Array<{ key: string; sha256: string }> = []
    const quarantined: Array<string> = []
    let rejectedRows = 0
    for (const file of files) {
      const body = yield* raw.get(file.key)
      if (Option.isNone(body)) continue
      hashes.push({ key: file.key, sha256: createHash("sha256").update(body.value).digest("hex") })
      const mapping = mappings.get(file.processor)
      const text = new TextDecoder().decode(body.value)
      const parsed =
        mapping === undefined
          ? {
              lines: [],
              // Every data row is quarantined with the file's problem, so rows in = accepted + quarantined.
              rejected: text
                .split(/\r?\n/)
                .map((row, at) => ({ row, at }))
                .filter(({ row, at }) => at > 0 && row.trim() !== "")
                .map(({ row, at }) => ({
                  source: `${file.key}:${at + 1}`,
                  problems: [
                    { field: "(file)", reason: `no column mapping for processor ${file.processor}` }
                  ],
                  payload: redactCardNumbersInText(row)
                }))
            }
          : parseSettlementCsv(text, mapping, file.key)
      // A run reads folders within ± the window of its days: a line dated further from its folder's dt
      // would never be judged, so it is quarantined instead of silently skipped.
      const folderDay = Date.parse(`${file.dt}T00:00:00Z`) / 86_400_000
      const stray = parsed.lines.filter(
        (item) =>
          Math.abs(Date.parse(`${item.settlement_date}T00:00:00Z`) / 86_400_000 - folderDay) > windowDays
      )
      if (stray.length > 0) {
        const strayLines = new Set(stray)
        const kept = parsed.lines.filter((item) => !strayLines.has(item))
        parsed.lines.length = 0
        for (const item of kept) parsed.lines.push(item)
        for (const item of stray)
          parsed.rejected.push({
            source: item.source,
            problems: [
              {
                field: "settlement_date",
                reason: `${item.settlement_date} is more than ${windowDays} days from the report's folder dt=${file.dt}`
              }
            ],
            payload: JSON.stringify(item)
          })
      }
      lines.add(parsed.lines)
      const quarantineName = `${file.processor}-${file.dt}-${contentTag(file.key)}`
      // A fixed report leaves no stale entries behind.
      if (parsed.rejected.length === 0)
        yield* processed.delete(`${prefixes.quarantine}batch/settlements/${quarantineName}.jsonl`)
      if (parsed.rejected.length > 0) {
        rejectedRows += parsed.rejected.length
        const entries: Array<QuarantineEntry> = parsed.rejected.map((row) => ({
          dataset: "settlements",
          source: row.source,
          reason: row.problems.map((problem) => `${problem.field}: ${problem.reason}`).join("; "),
          problems: row.problems,
          payload: row.payload
        }))
        quarantined.push(...(yield* writeQuarantine(processed, "batch", quarantineName, entries)))
      }
    }
    return { settlements: lines.build(), hashes, quarantined, rejectedRows }
  })

/**
 * Reconciles processor settlements against the committed final_aggregate for the processors and settlement
 * dates asked (see {@link reconcile} for the rules). Reads the reports under
 * `raw/settlements/processor=<p>/dt=<d>/` dated from `from` minus the settlement window to `to` plus the
 * window (lines outside [from, to] take part in matching, their breaks belong to another run). Writes
 * `recon/run=<id>/{breaks,matches,summary}.parquet` and `summary.json`, then the run's `_manifest.json`,
 * then `recon/_manifest.json`, where the run replaces whatever run held each of its (processor, day) pairs;
 * runs left holding none are deleted. The run id is a hash of the scope, the rules, the mappings, the
 * final_aggregate version and the reports' bytes: the same inputs write the same files. Last, every break
 * goes to the key-value store as a workable exception (its ack/resolve state kept across re-runs).
 */
export const runReconcile = (options: ReconcileOptions = {}) =>
  Effect.gen(function* () {
    const raw = yield* RawBucket
    const processed = yield* ProcessedBucket
    const codec = yield* Parquet
    const rules = options.rules ?? defaultReconcileRules
    const mappings = new Map((options.mappings ?? defaultProcessorMappings).map((m) => [m.processor, m]))
    const allFiles: Array<SettlementFile> = []
    for (const info of yield* raw.list(settlementsPrefix)) {
      const parsed = parseSettlementKey(info.key)
      if (parsed !== undefined) allFiles.push({ key: info.key, ...parsed })
    }
    const processors = [...new Set(options.processors ?? allFiles.map((file) => file.processor))].sort()
    const wanted = new Set(processors)
    const candidates = allFiles.filter((file) => wanted.has(file.processor))
    const dts = candidates.map((file) => file.dt).sort()
    const from = options.from ?? dts[0]
    const to = options.to ?? dts.at(-1)
    if (from === undefined || to === undefined)
      return yield* new ReconError({ reason: "no settlement files to reconcile and no --from/--to given" })
    const isDate = (text: string) => typeof parseSettlementDate(text, "YYYY-MM-DD") === "string"
    if (!isDate(from) || !isDate(to) || from > to)
      return yield* new ReconError({ reason: `bad date range ${from} … ${to}` })
    if (processors.length === 0) return yield* new ReconError({ reason: "no processor to reconcile" })
    const fromDay = epochDay(from)
    const toDay = epochDay(to)
    const lookBack = dayToIso(fromDay - rules.settlement_window_days)
    const lookAhead = dayToIso(toDay + rules.settlement_window_days)
    const files = candidates.filter((file) => file.dt >= lookBack && file.dt <= lookAhead)
    const readStarted = yield* Clock.currentTimeMillis
    const settlementsRead = yield* readSettlementFiles(
      raw,
      processed,
      files,
      mappings,
      rules.settlement_window_days
    )
    const settlementsReadAt = yield* Clock.currentTimeMillis

    const { index, version: indexVersion } = yield* readIndex(processed, wanted)
    const settlements = settlementsRead.settlements

    const started = yield* Clock.currentTimeMillis
    const readIndexMillis = started - settlementsReadAt
    const result: ReconcileResult = reconcile(
      index,
      settlements,
      { fromDay, toDay, rules },
      (processor) => mappings.get(processor)?.reference_separator ?? "|"
    )
    const matchMillis = (yield* Clock.currentTimeMillis) - started

    const runId = contentTag(
      JSON.stringify({
        processors,
        from,
        to,
        rules,
        mappings: processors.map((processor) => mappings.get(processor) ?? null),
        index: indexVersion,
        files: settlementsRead.hashes
      })
    )
    const runPrefix = `${reconPrefix}run=${runId}/`
    const summary = summarizeBreaks(result.breaks)
    const breaksByType: Record<string, number> = Object.fromEntries(
      BreakType.literals.map((type) => [type, 0])
    )
    for (const item of result.breaks) breaksByType[item.type]!++
    const counts: ReconRunCounts = {
      index_rows_due: result.counts.indexRows,
      settlement_lines: result.counts.settlementLines,
      settlement_lines_in_range: result.counts.linesInRange,
      rejected_rows: settlementsRead.rejectedRows,
      matches: result.matches.size,
      matches_by_rule: result.counts.matchesByRule,
      breaks: result.breaks.length,
      breaks_by_type: breaksByType
    }
    const written: Array<string> = []
    const put = (name: string, body: Uint8Array) =>
      Effect.tap(processed.put(runPrefix + name, body), () =>
        Effect.sync(() => written.push(runPrefix + name))
      )
    yield* put(
      "breaks.parquet",
      yield* codec.encode(breaksSchema, result.breaks as unknown as ReadonlyArray<TableRow>)
    )
    if (options.writeMatches ?? true)
      yield* put(
        "matches.parquet",
        yield* codec.encode(matchesSchema, matchRows(result.matches, index, settlements))
      )
    yield* put(
      "summary.parquet",
      yield* codec.encode(summarySchema, summary as unknown as ReadonlyArray<TableRow>)
    )
    yield* put("summary.json", encodeJson({ run_id: runId, processors, from, to, counts, summary }))
    const runManifest: ReconRunManifest = {
      run_id: runId,
      processors,
      from,
      to,
      rules,
      final_aggregate_version: indexVersion,
      settlement_files: settlementsRead.hashes,
      files: written,
      counts
    }
    yield* processed.put(`${runPrefix}_manifest.json`, encodeJson(runManifest))

    const previous = yield* readReconManifest(processed)
    const covered = (processor: string, day: string) => wanted.has(processor) && day >= from && day <= to
    const keptDays = Option.match(previous, { onNone: () => [], onSome: (m) => m.days }).filter(
      (entry) => !covered(entry.processor, entry.day)
    )
    const newDays = processors.flatMap((processor) => {
      const days: Array<{ processor: string; day: string; run_id: string }> = []
      for (let day = fromDay; day <= toDay; day++) days.push({ processor, day: dayToIso(day), run_id: runId })
      return days
    })
    const days = [...keptDays, ...newDays].sort((a, b) =>
      a.processor === b.processor ? (a.day < b.day ? -1 : 1) : a.processor < b.processor ? -1 : 1
    )
    const liveRuns = new Set(days.map((entry) => entry.run_id))
    const previousRuns = Option.match(previous, { onNone: () => [], onSome: (m) => m.runs })
    const runs = [
      ...previousRuns.filter((run) => run.run_id !== runId && liveRuns.has(run.run_id)),
      runManifest
    ]
    const summaryRows = [
      ...Option.match(previous, { onNone: () => [], onSome: (m) => m.summary }).filter(
        (row) => !covered(row.processor, row.day)
      ),
      ...summary
    ].sort((a, b) =>
      [a.processor, a.day, a.break_type, a.currency].join("\u0000") <
      [b.processor, b.day, b.break_type, b.currency].join("\u0000")
        ? -1
        : 1
    )
    yield* processed.put(
      reconManifestKey,
      encodeJson({
        updated_at: new Date(yield* Clock.currentTimeMillis).toISOString(),
        days,
        summary: summaryRows,
        runs
      } satisfies ReconManifest)
    )
    const replaced = previousRuns.filter((run) => run.run_id !== runId && !liveRuns.has(run.run_id))
    for (const run of replaced) {
      yield* Effect.forEach(run.files, (key) => processed.delete(key), { discard: true })
      yield* processed.delete(`${reconPrefix}run=${run.run_id}/_manifest.json`)
    }
    const writtenAt = yield* Clock.currentTimeMillis
    yield* publishExceptions(result.breaks, runId, processors, fromDay, toDay)
    const doneAt = yield* Clock.currentTimeMillis
    return {
      runId,
      processors,
      from,
      to,
      counts,
      files: written,
      quarantined: settlementsRead.quarantined,
      replacedRuns: replaced.map((run) => run.run_id),
      matchMillis,
      phaseMillis: {
        readSettlements: settlementsReadAt - readStarted,
        readIndex: readIndexMillis,
        match: matchMillis,
        write: writtenAt - started - matchMillis,
        exceptions: doneAt - writtenAt
      }
    } satisfies ReconcileReport
  }).pipe(Effect.withSpan("runReconcile"))

/** How far someone has worked a break. `cleared`: a later run of its day no longer finds it. */
export const ExceptionState = Schema.Literal("open", "acknowledged", "resolved", "cleared")
export type ExceptionState = typeof ExceptionState.Type

/** A break as a workable exception in the key-value store. */
export const ReconException = Schema.Struct({
  ...ReconBreak.fields,
  state: ExceptionState,
  reason: Schema.NullOr(Schema.String),
  state_changed_at: Schema.NullOr(Schema.String),
  first_seen_run: Schema.String,
  last_seen_run: Schema.String
})
export type ReconException = typeof ReconException.Type

/** Key-value store keys of the exceptions list. */
export const exceptionKeys = {
  exception: (breakId: string) => `recon:exception:${breakId}`,
  day: (processor: string, day: string) => `recon:exceptions:${processor}:${day}`
} as const

const decodeException = Schema.decodeUnknown(Schema.parseJson(ReconException))
const decodeIds = Schema.decodeUnknown(Schema.parseJson(Schema.Array(Schema.String)))

const readException = (store: KeyValueStore.KeyValueStore, breakId: string) =>
  Effect.flatMap(store.get(exceptionKeys.exception(breakId)), (text) =>
    Option.match(text, {
      onNone: () => Effect.succeedNone,
      onSome: (value) =>
        decodeException(value).pipe(
          Effect.map(Option.some),
          Effect.mapError((error) => new ReconError({ reason: `bad exception ${breakId}: ${error.message}` }))
        )
    })
  )

const readDayIds = (store: KeyValueStore.KeyValueStore, processor: string, day: string) =>
  Effect.flatMap(store.get(exceptionKeys.day(processor, day)), (text) =>
    Option.match(text, {
      onNone: () => Effect.succeed<ReadonlyArray<string>>([]),
      onSome: (value) =>
        decodeIds(value).pipe(
          Effect.mapError((error) => new ReconError({ reason: `bad exceptions list: ${error.message}` }))
        )
    })
  )

/**
 * Writes the run's breaks as exceptions: a break seen before keeps its state, reason and first run; a break
 * a previous run of the same (processor, day) listed that this run no longer finds becomes `cleared`
 * (unless resolved). Then each day's list of break ids is replaced.
 */
const publishExceptions = (
  breaks: ReadonlyArray<ReconBreak>,
  runId: string,
  processors: ReadonlyArray<string>,
  fromDay: number,
  toDay: number
): Effect.Effect<void, PlatformError | ReconError, KeyValueStore.KeyValueStore> =>
  Effect.gen(function* () {
    const store = yield* KeyValueStore.KeyValueStore
    const now = new Date(yield* Clock.currentTimeMillis).toISOString()
    const byDay = new Map<string, Array<string>>()
    for (const item of breaks) {
      const key = `${item.processor}\u0000${item.day}`
      const ids = byDay.get(key)
      if (ids === undefined) byDay.set(key, [item.break_id])
      else ids.push(item.break_id)
    }
    yield* Effect.forEach(
      breaks,
      (item) =>
        Effect.flatMap(readException(store, item.break_id), (existing) => {
          const kept = Option.getOrUndefined(existing)
          const reopened = kept === undefined || kept.state === "cleared"
          const value: ReconException = {
            ...item,
            state: reopened ? "open" : kept.state,
            reason: reopened ? null : kept.reason,
            state_changed_at: reopened ? (kept === undefined ? null : now) : kept.state_changed_at,
            first_seen_run: kept?.first_seen_run ?? runId,
            last_seen_run: runId
          }
          return store.set(exceptionKeys.exception(item.break_id), JSON.stringify(value))
        }),
      { concurrency: 16, discard: true }
    )
    for (const processor of processors)
      for (let day = fromDay; day <= toDay; day++) {
        const date = dayToIso(day)
        const ids = byDay.get(`${processor}\u0000${date}`) ?? []
        const current = new Set(ids)
        const gone = (yield* readDayIds(store, processor, date)).filter((id) => !current.has(id))
        yield* Effect.forEach(
          gone,
          (id) =>
            Effect.flatMap(readException(store, id), (existing) =>
              Option.isSome(existing) &&
              existing.value.state !== "resolved" &&
              existing.value.state !== "cleared"
                ? store.set(
                    exceptionKeys.exception(id),
                    JSON.stringify({ ...existing.value, state: "cleared", state_changed_at: now })
                  )
                : Effect.void
            ),
          { concurrency: 16, discard: true }
        )
        if (ids.length === 0) yield* store.remove(exceptionKeys.day(processor, date))
        else yield* store.set(exceptionKeys.day(processor, date), JSON.stringify([...ids].sort()))
      }
  })

/** Filters of {@link listExceptions}. */
export interface ExceptionFilter {
  readonly processor?: string
  readonly day?: string
  readonly state?: ExceptionState
  readonly type?: BreakType
}

/** The exceptions of the days the current reconciliation holds, filtered, ordered by day then id. */
export const listExceptions = (filter: ExceptionFilter = {}) =>
  Effect.gen(function* () {
    const processed = yield* ProcessedBucket
    const store = yield* KeyValueStore.KeyValueStore
    const manifest = yield* readReconManifest(processed)
    const days = Option.match(manifest, { onNone: () => [], onSome: (m) => m.days }).filter(
      (entry) =>
        (filter.processor === undefined || entry.processor === filter.processor) &&
        (filter.day === undefined || entry.day === filter.day)
    )
    const found: Array<ReconException> = []
    for (const entry of days) {
      const ids = yield* readDayIds(store, entry.processor, entry.day)
      const items = yield* Effect.forEach(ids, (id) => readException(store, id), { concurrency: 16 })
      for (const item of items)
        if (
          Option.isSome(item) &&
          (filter.state === undefined || item.value.state === filter.state) &&
          (filter.type === undefined || item.value.type === filter.type)
        )
          found.push(item.value)
    }
    return found
  })

const changeState = (breakId: string, state: "acknowledged" | "resolved", reason: string | undefined) =>
  Effect.gen(function* () {
    const store = yield* KeyValueStore.KeyValueStore
    if (state === "resolved" && (reason === undefined || reason.trim() === ""))
      return yield* new ReconError({ reason: "resolving needs a reason" })
    const existing = yield* readException(store, breakId)
    if (Option.isNone(existing)) return yield* new ReconError({ reason: `no exception ${breakId}` })
    const updated: ReconException = {
      ...existing.value,
      state,
      reason: reason ?? existing.value.reason,
      state_changed_at: new Date(yield* Clock.currentTimeMillis).toISOString()
    }
    yield* store.set(exceptionKeys.exception(breakId), JSON.stringify(updated))
    return updated
  })

/** Marks an exception as seen and being worked, with an optional note. */
export const acknowledgeException = (breakId: string, reason?: string) =>
  changeState(breakId, "acknowledged", reason)

/** Closes an exception with the reason it needs no more work. */
export const resolveException = (breakId: string, reason: string) => changeState(breakId, "resolved", reason)

/** What the dashboard shows of the current reconciliation: counts and amounts by break type and currency. */
export interface ReconPanel {
  readonly updated_at: string
  readonly runs: number
  readonly days: number
  readonly by_type: ReadonlyArray<{
    readonly break_type: BreakType
    readonly count: number
    readonly amount_minor: Readonly<Record<string, string>>
  }>
  readonly by_processor: ReadonlyArray<{ readonly processor: string; readonly count: number }>
  readonly matches: number
}

/** The dashboard's recon panel figures from the current manifest; none before the first run. */
export const reconPanel = (
  store: ObjectStore
): Effect.Effect<Option.Option<ReconPanel>, ObjectStoreError | ReconError> =>
  Effect.map(readReconManifest(store), (manifest) =>
    Option.map(manifest, (current) => {
      const byType = new Map<BreakType, { count: number; amounts: Map<string, bigint> }>()
      const byProcessor = new Map<string, number>()
      for (const type of BreakType.literals) byType.set(type, { count: 0, amounts: new Map() })
      for (const row of current.summary) {
        const group = byType.get(row.break_type)!
        group.count += row.count
        group.amounts.set(row.currency, (group.amounts.get(row.currency) ?? 0n) + BigInt(row.amount_minor))
        byProcessor.set(row.processor, (byProcessor.get(row.processor) ?? 0) + row.count)
      }
      return {
        updated_at: current.updated_at,
        runs: current.runs.length,
        days: current.days.length,
        by_type: [...byType].map(([breakType, group]) => ({
          break_type: breakType,
          count: group.count,
          amount_minor: Object.fromEntries(
            [...group.amounts]
              .sort(([a], [b]) => (a < b ? -1 : 1))
              .map(([code, amount]) => [code, amount.toString()])
          )
        })),
        by_processor: [...byProcessor]
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([processor, count]) => ({ processor, count })),
        matches: current.runs.reduce((sum, run) => sum + run.counts.matches, 0)
      }
    })
  )
