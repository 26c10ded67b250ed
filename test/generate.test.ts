import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as NodeZlib from "node:zlib"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Either, Exit } from "effect"
import { findCardNumberPaths } from "../src/domain/card.js"
import { isKnownCurrency } from "../src/domain/currency.js"
import {
  FraudSignal,
  fraudSignalSources,
  Merchant,
  paymentMethods,
  TransactionEvent,
  transactionStatuses,
  User
} from "../src/domain/events.js"
import { rfc3339Problem } from "../src/domain/time.js"
import { decodeJsonRecord, type RejectedRecord } from "../src/domain/validation.js"
import {
  type GenerateOptions,
  type GenerateSummary,
  generateDataset,
  type InvalidKind,
  invalidKinds
} from "../src/streams/generate.js"

const temporaryRoots: Array<string> = []
const temporaryDirectory = (): string => {
  const directory = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "generate-test-"))
  temporaryRoots.push(directory)
  return directory
}
afterAll(() => {
  for (const directory of temporaryRoots) NodeFs.rmSync(directory, { recursive: true, force: true })
})

const generate = (options: GenerateOptions): Promise<GenerateSummary> =>
  Effect.runPromise(generateDataset(options))

const listFiles = (root: string): Array<string> =>
  NodeFs.existsSync(root)
    ? NodeFs.readdirSync(root, { recursive: true, withFileTypes: true })
        .filter((entry) => entry.isFile())
        .map((entry) => NodePath.relative(root, NodePath.join(entry.parentPath, entry.name)))
        .sort()
    : []

const readLines = (path: string): Array<string> => {
  const bytes = NodeFs.readFileSync(path)
  const text = (path.endsWith(".gz") ? NodeZlib.gunzipSync(bytes) : bytes).toString("utf8")
  const lines = text.split("\n")
  if (lines[lines.length - 1] === "") lines.pop()
  return lines
}

type Dataset = "transactions" | "fraud_signals"
type Destination = "stream" | "raw"

interface FileLines {
  readonly dataset: Dataset
  readonly destination: Destination
  readonly path: string
  readonly lines: Array<string>
}

const datasetFiles = (outDir: string): Array<FileLines> => {
  const files: Array<FileLines> = []
  for (const dataset of ["transactions", "fraud_signals"] as const) {
    const rawRoot = NodePath.join(outDir, "raw", dataset)
    for (const file of listFiles(rawRoot)) {
      const path = NodePath.join(rawRoot, file)
      files.push({ dataset, destination: "raw", path, lines: readLines(path) })
    }
    const streamPath = NodePath.join(outDir, "stream", `${dataset}.jsonl`)
    files.push({ dataset, destination: "stream", path: streamPath, lines: readLines(streamPath) })
  }
  return files
}

const decode = (
  dataset: Dataset,
  line: string
): Either.Either<TransactionEvent | FraudSignal, RejectedRecord> =>
  dataset === "transactions" ? decodeJsonRecord(TransactionEvent, line) : decodeJsonRecord(FraudSignal, line)

const transactionRequired = [
  "event_id",
  "transaction_id",
  "sequence",
  "event_time",
  "status",
  "amount_minor",
  "currency",
  "user_id",
  "merchant_id",
  "payment_method",
  "processor",
  "processor_reference"
]
const signalRequired = ["signal_id", "transaction_id", "event_time", "source", "score", "reasons"]

const includes = (values: ReadonlyArray<string>, value: unknown): boolean =>
  typeof value === "string" && values.includes(value)

/** Works out, from the refused line alone, which kind of deliberately invalid line it is. */
const classifyInvalid = (line: string, dataset: Dataset): InvalidKind | "unclassified" => {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return "not_json"
  }
  if (Array.isArray(value)) return "json_array"
  if (value === null || typeof value !== "object") return "json_scalar"
  if (findCardNumberPaths(value).length > 0) return "card_number_in_field"
  const record = value as Record<string, unknown>
  const isSignal = dataset === "fraud_signals"
  if ((isSignal ? signalRequired : transactionRequired).some((field) => !(field in record)))
    return "missing_field"
  const idField = isSignal ? "signal_id" : "event_id"
  if (record[idField] === "") return "empty_id"
  if ([idField, "transaction_id"].some((field) => String(record[field]).length > 128)) return "long_id"
  const time = String(record.event_time)
  if (!/(Z|[+-]\d\d:\d\d)$/.test(time)) return "time_without_offset"
  if (rfc3339Problem(time) !== undefined) return "time_feb_30"
  if (isSignal) {
    if (typeof record.score === "number" && record.score > 1) return "score_above_one"
    if (Array.isArray(record.reasons) && record.reasons.length > 32) return "too_many_reasons"
    if (
      typeof record.score !== "number" ||
      !Array.isArray(record.reasons) ||
      (record.confirmed_fraud !== undefined && typeof record.confirmed_fraud !== "boolean")
    )
      return "wrong_type"
    if (!includes(fraudSignalSources, record.source)) return "bad_enum"
    return "unclassified"
  }
  const amount = record.amount_minor
  if (
    typeof amount !== "number" ||
    typeof record.sequence !== "number" ||
    typeof record.payment_method !== "string"
  )
    return "wrong_type"
  if (!includes(transactionStatuses, record.status) || !includes(paymentMethods, record.payment_method))
    return "bad_enum"
  if (amount < 0) return "negative_amount"
  if (amount > Number.MAX_SAFE_INTEGER) return "too_large_amount"
  if (!Number.isInteger(amount)) return "fractional_amount"
  const currency = String(record.currency)
  if (currency !== currency.toUpperCase()) return "lowercase_currency"
  if (!isKnownCurrency(currency)) return "unknown_currency"
  if (typeof record.card_bin === "string" && !/^\d{6,8}$/.test(record.card_bin)) return "card_bin_letters"
  return "unclassified"
}

interface Audit {
  readonly refused: Array<{
    readonly dataset: Dataset
    readonly destination: Destination
    readonly line: string
  }>
  readonly events: Map<string, { readonly line: string; readonly event: TransactionEvent }>
  readonly signals: Map<string, { readonly line: string; readonly signal: FraudSignal }>
  readonly counts: Record<
    Destination,
    Record<Dataset, { lines: number; valid: number; invalid: number; duplicates: number }>
  >
  readonly validLinesWithCardNumber: number
  readonly duplicatesWithOtherContent: number
}

const emptyCounts = () => ({ lines: 0, valid: 0, invalid: 0, duplicates: 0 })

const audit = (outDir: string): Audit => {
  const refused: Audit["refused"] = []
  const events: Audit["events"] = new Map()
  const signals: Audit["signals"] = new Map()
  const counts: Audit["counts"] = {
    stream: { transactions: emptyCounts(), fraud_signals: emptyCounts() },
    raw: { transactions: emptyCounts(), fraud_signals: emptyCounts() }
  }
  const seen: Record<Destination, Set<string>> = { stream: new Set(), raw: new Set() }
  let validLinesWithCardNumber = 0
  let duplicatesWithOtherContent = 0
  for (const file of datasetFiles(outDir)) {
    for (const line of file.lines) {
      const tally = counts[file.destination][file.dataset]
      tally.lines++
      const decoded = decode(file.dataset, line)
      if (Either.isLeft(decoded)) {
        tally.invalid++
        refused.push({ dataset: file.dataset, destination: file.destination, line })
        continue
      }
      if (findCardNumberPaths(JSON.parse(line)).length > 0) validLinesWithCardNumber++
      const id =
        file.dataset === "transactions"
          ? (decoded.right as TransactionEvent).event_id
          : (decoded.right as FraudSignal).signal_id
      const key = `${file.dataset}:${id}`
      if (seen[file.destination].has(key)) tally.duplicates++
      else tally.valid++
      seen[file.destination].add(key)
      const earlier = file.dataset === "transactions" ? events.get(id)?.line : signals.get(id)?.line
      if (earlier !== undefined && earlier !== line) duplicatesWithOtherContent++
      if (file.dataset === "transactions") events.set(id, { line, event: decoded.right as TransactionEvent })
      else signals.set(id, { line, signal: decoded.right as FraudSignal })
    }
  }
  return { refused, events, signals, counts, validLinesWithCardNumber, duplicatesWithOtherContent }
}

const snapshotFolders = (outDir: string, dimension: string): Array<string> =>
  NodeFs.readdirSync(NodePath.join(outDir, "raw", "dimensions", dimension))
    .filter((name) => name.startsWith("snapshot="))
    .sort()

const dimensionIds = (path: string, field: string): Set<string> =>
  new Set(readLines(path).map((line) => String((JSON.parse(line) as Record<string, unknown>)[field])))

describe("generateDataset", () => {
  let outDir = ""
  let summary: GenerateSummary
  let result: Audit

  beforeAll(async () => {
    outDir = temporaryDirectory()
    summary = await generate({ outDir, transactions: 500, seed: 7 })
    result = audit(outDir)
  })

  it("writes byte-identical files for the same seed and different files for another seed", async () => {
    const again = temporaryDirectory()
    const other = temporaryDirectory()
    await generate({ outDir: again, transactions: 500, seed: 7 })
    await generate({ outDir: other, transactions: 500, seed: 8 })
    const files = listFiles(outDir)
    assert.deepStrictEqual(listFiles(again), files)
    assert.isTrue(files.some((file) => file.endsWith(".jsonl.gz")))
    for (const file of files) {
      assert.isTrue(
        NodeFs.readFileSync(NodePath.join(outDir, file)).equals(
          NodeFs.readFileSync(NodePath.join(again, file))
        ),
        file
      )
    }
    const streamOf = (directory: string) =>
      NodeFs.readFileSync(NodePath.join(directory, "stream", "transactions.jsonl"))
    assert.isFalse(streamOf(outDir).equals(streamOf(other)))
  })

  it("refuses exactly the injected invalid lines and accepts every other line", () => {
    assert.isAbove(summary.invalid, 0)
    assert.strictEqual(result.refused.length, summary.invalid)
    for (const destination of ["stream", "raw"] as const) {
      for (const dataset of ["transactions", "fraud_signals"] as const) {
        const { lines, valid, invalid, duplicates } = summary[destination][dataset]
        assert.deepStrictEqual(result.counts[destination][dataset], { lines, valid, invalid, duplicates })
      }
    }
    const byKind = new Map<string, number>()
    for (const { line, dataset } of result.refused) {
      const kind = classifyInvalid(line, dataset)
      byKind.set(kind, (byKind.get(kind) ?? 0) + 1)
    }
    assert.isFalse(byKind.has("unclassified"))
    for (const kind of invalidKinds)
      assert.strictEqual(byKind.get(kind) ?? 0, summary.invalidByKind[kind], kind)
  })

  it("never puts a full card number in a valid line, only in the injected card-number lines", () => {
    assert.strictEqual(result.validLinesWithCardNumber, 0)
    assert.isAbove(result.events.size, 1000)
    let linesWithCardNumber = 0
    for (const file of datasetFiles(outDir)) {
      for (const line of file.lines) {
        let value: unknown
        try {
          value = JSON.parse(line)
        } catch {
          continue
        }
        if (findCardNumberPaths(value).length > 0) linesWithCardNumber++
      }
    }
    assert.strictEqual(linesWithCardNumber, summary.invalidByKind.card_number_in_field)
  })

  it("matches the summary counts of events, signals, duplicates and cross-path records", () => {
    assert.strictEqual(result.events.size, summary.events)
    assert.strictEqual(result.signals.size, summary.signals)
    assert.isAbove(summary.duplicates, 0)
    assert.strictEqual(result.duplicatesWithOtherContent, 0)
    const transactionIds = new Set([...result.events.values()].map(({ event }) => event.transaction_id))
    assert.strictEqual(transactionIds.size, summary.transactions)
    const streamIds = new Set(
      readLines(NodePath.join(outDir, "stream", "transactions.jsonl")).flatMap((line) => {
        const decoded = decode("transactions", line)
        return Either.isRight(decoded) ? [(decoded.right as TransactionEvent).event_id] : []
      })
    )
    const rawIds = new Set<string>()
    for (const file of datasetFiles(outDir)) {
      if (file.destination !== "raw" || file.dataset !== "transactions") continue
      for (const line of file.lines) {
        const decoded = decode("transactions", line)
        if (Either.isRight(decoded)) rawIds.add((decoded.right as TransactionEvent).event_id)
      }
    }
    const both = [...streamIds].filter((id) => rawIds.has(id)).length
    assert.strictEqual(both, summary.bothPaths.transactions)
    assert.isAbove(both, 0)
    const orphans = [...result.signals.values()].filter(
      ({ signal }) => !transactionIds.has(signal.transaction_id)
    )
    assert.strictEqual(orphans.length, summary.orphanSignals)
  })

  it("writes raw files partitioned by the UTC date of event_time, with one empty part", () => {
    const rawFiles = listFiles(NodePath.join(outDir, "raw", "transactions"))
    assert.isTrue(rawFiles.every((file) => /^dt=\d{4}-\d{2}-\d{2}\/part-\d{5}\.jsonl(\.gz)?$/.test(file)))
    const empty = rawFiles.filter(
      (file) =>
        file.endsWith(".jsonl") &&
        NodeFs.statSync(NodePath.join(outDir, "raw", "transactions", file)).size === 0
    )
    assert.isAtLeast(empty.length, 1)
    assert.strictEqual(summary.raw.emptyFiles, empty.length)
    const inOwnPartition = new Set<string>()
    const seenInRaw = new Set<string>()
    let misplaced = 0
    for (const file of datasetFiles(outDir)) {
      if (file.destination !== "raw" || file.dataset !== "transactions") continue
      const dt = /dt=(\d{4}-\d{2}-\d{2})/.exec(file.path)![1]
      for (const line of file.lines) {
        const decoded = decode("transactions", line)
        if (Either.isLeft(decoded)) continue
        const event = decoded.right as TransactionEvent
        seenInRaw.add(event.event_id)
        if (new Date(event.event_time / 1000).toISOString().slice(0, 10) === dt)
          inOwnPartition.add(event.event_id)
        else misplaced++
      }
    }
    assert.strictEqual(inOwnPartition.size, seenInRaw.size)
    assert.isAtMost(misplaced, summary.raw.transactions.duplicates)
    assert.isAbove(misplaced, 0, "a duplicate replayed into the next day's partition")
  })

  it("writes the stream in arrival order, which is not event-time order, with some late events", () => {
    const times = readLines(NodePath.join(outDir, "stream", "transactions.jsonl")).flatMap((line) => {
      const decoded = decode("transactions", line)
      return Either.isRight(decoded) ? [(decoded.right as TransactionEvent).event_time] : []
    })
    let inversions = 0
    let lateByAnHour = 0
    let maxSoFar = 0
    for (let index = 1; index < times.length; index++) if (times[index]! < times[index - 1]!) inversions++
    for (const time of times) {
      if (time < maxSoFar - 3_600_000_000) lateByAnHour++
      maxSoFar = Math.max(maxSoFar, time)
    }
    assert.isAbove(inversions, 0)
    assert.isAbove(lateByAnHour, 0)
  })

  it("writes dimension snapshots whose newest one misses some referenced users and merchants", () => {
    const userFolders = snapshotFolders(outDir, "users")
    const merchantFolders = snapshotFolders(outDir, "merchants")
    assert.strictEqual(userFolders.length, 2)
    assert.strictEqual(merchantFolders.length, 2)
    const usersRoot = NodePath.join(outDir, "raw", "dimensions", "users")
    const merchantsRoot = NodePath.join(outDir, "raw", "dimensions", "merchants")
    assert.isTrue(NodeFs.existsSync(NodePath.join(usersRoot, "users.jsonl")))
    for (const path of [
      NodePath.join(usersRoot, "users.jsonl"),
      ...userFolders.map((folder) => NodePath.join(usersRoot, folder, "users.jsonl"))
    ]) {
      for (const line of readLines(path)) assert.isTrue(Either.isRight(decodeJsonRecord(User, line)), line)
    }
    for (const folder of merchantFolders) {
      for (const line of readLines(NodePath.join(merchantsRoot, folder, "merchants.jsonl"))) {
        assert.isTrue(Either.isRight(decodeJsonRecord(Merchant, line)), line)
      }
    }
    const newestUsers = dimensionIds(NodePath.join(usersRoot, userFolders[1]!, "users.jsonl"), "user_id")
    const olderUsers = readLines(NodePath.join(usersRoot, userFolders[0]!, "users.jsonl"))
    const newestMerchants = dimensionIds(
      NodePath.join(merchantsRoot, merchantFolders[1]!, "merchants.jsonl"),
      "merchant_id"
    )
    const referencedUsers = new Set([...result.events.values()].map(({ event }) => event.user_id))
    const referencedMerchants = new Set([...result.events.values()].map(({ event }) => event.merchant_id))
    const unknownUsers = [...referencedUsers].filter((id) => !newestUsers.has(id))
    const unknownMerchants = [...referencedMerchants].filter((id) => !newestMerchants.has(id))
    assert.strictEqual(unknownUsers.length, summary.dimensions.referencedUsersMissingFromNewest)
    assert.strictEqual(unknownMerchants.length, summary.dimensions.referencedMerchantsMissingFromNewest)
    assert.isAbove(unknownUsers.length, 0)
    assert.isBelow(unknownUsers.length, referencedUsers.size / 5)
    assert.isAbove(unknownMerchants.length, 0)
    const newestUserLines = new Set(readLines(NodePath.join(usersRoot, userFolders[1]!, "users.jsonl")))
    assert.isTrue(olderUsers.some((line) => !newestUserLines.has(line)))
    assert.strictEqual(summary.users, referencedUsers.size > 0 ? summary.users : 0)
  })

  it("produces realistic payments: lifecycles, currencies, offsets, risky merchants and fraud labels", () => {
    const events = [...result.events.values()]
    const texts = events.map(({ line }) => JSON.parse(line) as Record<string, unknown>)
    const currencies = new Set(events.map(({ event }) => event.currency))
    for (const currency of ["USD", "EUR", "GBP", "JPY"]) assert.isTrue(currencies.has(currency), currency)
    const offsets = new Set(texts.map((record) => /(Z|[+-]\d\d:\d\d)$/.exec(String(record.event_time))?.[1]))
    for (const offset of ["Z", "+05:30", "-08:00", "+09:00"]) assert.isTrue(offsets.has(offset), offset)
    const statuses = new Set(events.map(({ event }) => event.status))
    for (const status of ["authorized", "captured", "settled", "declined", "refunded"]) {
      assert.isTrue(statuses.has(status as TransactionEvent["status"]), status)
    }
    for (const { event } of events) {
      assert.isTrue(Number.isSafeInteger(event.amount_minor))
      if (event.payment_method !== "card") assert.isUndefined(event.card_bin)
    }
    const byTransaction = new Map<string, Array<TransactionEvent>>()
    for (const { event } of events) {
      const list = byTransaction.get(event.transaction_id) ?? []
      list.push(event)
      byTransaction.set(event.transaction_id, list)
    }
    let spanningTwoDates = 0
    for (const list of byTransaction.values()) {
      const first = list.find((event) => event.sequence === 0)
      assert.isDefined(first)
      assert.strictEqual(first!.status, "authorized")
      for (const event of list) assert.isAtLeast(event.event_time, first!.event_time)
      const dates = new Set(list.map((event) => new Date(event.event_time / 1000).toISOString().slice(0, 10)))
      if (dates.size > 1) spanningTwoDates++
    }
    assert.isAbove(spanningTwoDates, 0)
    const merchantCounts = new Map<string, number>()
    for (const list of byTransaction.values()) {
      const merchant = list[0]!.merchant_id
      merchantCounts.set(merchant, (merchantCounts.get(merchant) ?? 0) + 1)
    }
    const hottest = Math.max(...merchantCounts.values())
    assert.isAbove(hottest, summary.transactions / merchantCounts.size)
    const signals = [...result.signals.values()].map(({ signal }) => signal)
    assert.isTrue(signals.some((signal) => signal.score < 0.4))
    assert.isTrue(signals.every((signal) => signal.score >= 0 && signal.score <= 1))
  })

  it("covers every kind of invalid line on a larger run", async () => {
    const directory = temporaryDirectory()
    const large = await generate({
      outDir: directory,
      transactions: 3000,
      seed: 11,
      invalidShare: 0.03,
      eventsPerFile: 2000
    })
    const { refused, counts, validLinesWithCardNumber } = audit(directory)
    assert.strictEqual(refused.length, large.invalid)
    assert.strictEqual(validLinesWithCardNumber, 0)
    const kinds = new Map<string, number>()
    for (const { line, dataset } of refused) {
      const kind = classifyInvalid(line, dataset)
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
    }
    for (const kind of invalidKinds) {
      assert.isAtLeast(kinds.get(kind) ?? 0, 1, kind)
      assert.strictEqual(kinds.get(kind), large.invalidByKind[kind], kind)
    }
    assert.isFalse(kinds.has("unclassified"))
    assert.isTrue(refused.some(({ destination }) => destination === "stream"))
    assert.isTrue(refused.some(({ destination }) => destination === "raw"))
    const rotated = listFiles(NodePath.join(directory, "raw", "transactions")).filter((file) =>
      /part-00001/.test(file)
    )
    assert.isAbove(rotated.length, 0)
    assert.isAtMost(
      Math.max(
        ...datasetFiles(directory)
          .filter((file) => file.destination === "raw")
          .map((file) => file.lines.length)
      ),
      2000
    )
    assert.isAbove(large.confirmedFraudTransactions, 0)
    const { events, signals } = audit(directory)
    const byTransaction = new Map<string, Array<TransactionEvent>>()
    for (const { event } of events.values()) {
      const list = byTransaction.get(event.transaction_id) ?? []
      list.push(event)
      byTransaction.set(event.transaction_id, list)
    }
    const hasTie = (list: Array<TransactionEvent>, sameTime: boolean) =>
      list.some((a) =>
        list.some(
          (b) =>
            a.event_id !== b.event_id &&
            a.sequence === b.sequence &&
            (a.event_time === b.event_time) === sameTime
        )
      )
    const lists = [...byTransaction.values()]
    assert.isTrue(
      lists.some((list) => hasTie(list, true)),
      "same sequence and time, different event_id"
    )
    assert.isTrue(
      lists.some((list) => hasTie(list, false)),
      "same sequence, different time"
    )
    const firstTime = (transactionId: string) =>
      Math.min(...(byTransaction.get(transactionId) ?? []).map((event) => event.event_time))
    assert.isTrue(
      [...signals.values()].some(
        ({ signal }) =>
          byTransaction.has(signal.transaction_id) && signal.event_time < firstTime(signal.transaction_id)
      ),
      "a signal before its transaction"
    )
    const authorizationsByUser = new Map<string, Array<number>>()
    for (const list of lists) {
      const authorization = list.find((event) => event.sequence === 0)!
      const times = authorizationsByUser.get(authorization.user_id) ?? []
      times.push(authorization.event_time)
      authorizationsByUser.set(authorization.user_id, times)
    }
    const hasBurst = [...authorizationsByUser.values()].some((times) => {
      const sorted = [...times].sort((a, b) => a - b)
      return sorted.some((time, index) => index >= 4 && time - sorted[index - 4]! <= 10 * 60 * 1_000_000)
    })
    assert.isTrue(hasBurst, "a velocity burst: five authorizations of one user within ten minutes")
    const kwd = [...events.values()].filter(({ event }) => event.currency === "KWD")
    assert.isAbove(kwd.length, 0)
    const mccs = new Set(
      readLines(
        NodePath.join(
          directory,
          "raw",
          "dimensions",
          "merchants",
          snapshotFolders(directory, "merchants")[1]!,
          "merchants.jsonl"
        )
      ).map((line) => String((JSON.parse(line) as Record<string, unknown>).mcc))
    )
    assert.isTrue(["7995", "5967", "6051", "4829"].some((mcc) => mccs.has(mcc)))
    assert.isTrue(
      [...signals.values()].some(
        ({ signal }) => signal.confirmed_fraud === true && signal.source === "chargeback"
      )
    )
    assert.strictEqual(
      counts.stream.transactions.invalid +
        counts.raw.transactions.invalid +
        counts.stream.fraud_signals.invalid +
        counts.raw.fraud_signals.invalid,
      large.invalid
    )
  })

  it.effect("fails with GenerateError on bad options", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(generateDataset({ outDir: temporaryDirectory(), transactions: -1 }))
      assert.isTrue(Exit.isFailure(exit))
      const error = yield* Effect.flip(
        generateDataset({ outDir: temporaryDirectory(), startTime: "2026-11-01T00:00:00" })
      )
      assert.strictEqual(error._tag, "GenerateError")
      assert.strictEqual(error.stage, "options")
    })
  )
})
