import { createHash } from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import * as NodeReadline from "node:readline"
import { Effect, Option, Stream } from "effect"
import { DatasetError } from "../domain/errors.js"
import { EventLogService, type LogMessage } from "../layers/EventLog.js"
import { RawBucket } from "../layers/ObjectStore.js"
import { topics as defaultTopics, type TopicNames } from "./streamingIndex.js"

const sha256 = (body: Uint8Array) => createHash("sha256").update(body).digest("hex")

const listFiles = (directory: string): Array<string> => {
  if (!NodeFs.existsSync(directory)) return []
  return NodeFs.readdirSync(directory, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => NodePath.join(entry.parentPath, entry.name))
    .sort()
}

/** What a batch upload did. */
export interface BatchIngestSummary {
  readonly uploaded: number
  readonly unchanged: number
  readonly bytes: number
}

/**
 * Batch ingest: uploads every file under `<inputDir>/raw/` to the raw bucket under the same key
 * (`raw/transactions/dt=…/…`). A file already stored with the same SHA-256 is not uploaded again.
 */
export const runBatchIngest = (inputDir: string) =>
  Effect.gen(function* () {
    const raw = yield* RawBucket
    const root = NodePath.resolve(inputDir)
    const files = listFiles(NodePath.join(root, "raw"))
    if (files.length === 0) {
      return yield* new DatasetError({ dataset: inputDir, reason: "no files under raw/ to ingest" })
    }
    let uploaded = 0
    let unchanged = 0
    let bytes = 0
    for (const file of files) {
      const key = NodePath.relative(root, file).split(NodePath.sep).join("/")
      const body = new Uint8Array(yield* Effect.promise(() => NodeFs.promises.readFile(file)))
      const existing = yield* raw.get(key)
      if (Option.isSome(existing) && sha256(existing.value) === sha256(body)) {
        unchanged++
        continue
      }
      yield* raw.put(key, body)
      uploaded++
      bytes += body.byteLength
    }
    return { uploaded, unchanged, bytes } satisfies BatchIngestSummary
  }).pipe(Effect.withSpan("runBatchIngest"))

const keyOf = (line: string): string => {
  try {
    const parsed: unknown = JSON.parse(line)
    if (parsed !== null && typeof parsed === "object" && "transaction_id" in parsed) {
      const id = (parsed as { transaction_id: unknown }).transaction_id
      if (typeof id === "string") return id
    }
  } catch {
    // Unparseable lines are still sent: the streaming service quarantines them with their reason.
  }
  return ""
}

const linesOf = (file: string): Stream.Stream<string, DatasetError> =>
  Stream.suspend(() =>
    NodeFs.existsSync(file)
      ? Stream.fromAsyncIterable(
          NodeReadline.createInterface({
            input: NodeFs.createReadStream(file),
            crlfDelay: Number.POSITIVE_INFINITY
          }),
          (cause) => new DatasetError({ dataset: file, reason: String(cause) })
        ).pipe(Stream.filter((line) => line.trim().length > 0))
      : Stream.empty
  )

/** What a stream ingest produced. */
export interface StreamIngestSummary {
  readonly transactions: number
  readonly fraudSignals: number
}

/**
 * Stream ingest: produces every line of `<inputDir>/stream/transactions.jsonl` and `fraud_signals.jsonl`
 * to its topic, keyed by transaction_id, in batches. Lines are sent as they are: validation happens in
 * the streaming index, which sends bad ones to the dead-letter topic.
 */
export const runStreamIngest = (inputDir: string, batchSize = 1_000, topics: TopicNames = defaultTopics) =>
  Effect.gen(function* () {
    const log = yield* EventLogService
    const encoder = new TextEncoder()
    const produce = (topic: string, file: string) =>
      linesOf(file).pipe(
        Stream.map((line): LogMessage => ({ key: keyOf(line), value: encoder.encode(line) })),
        Stream.grouped(batchSize),
        Stream.mapEffect((chunk) => Effect.as(log.produce(topic, [...chunk]), chunk.length)),
        Stream.runFold(0, (total, count) => total + count)
      )
    const [transactions, fraudSignals] = yield* Effect.all([
      produce(topics.transactions, NodePath.join(inputDir, "stream", "transactions.jsonl")),
      produce(topics.fraudSignals, NodePath.join(inputDir, "stream", "fraud_signals.jsonl"))
    ])
    return { transactions, fraudSignals } satisfies StreamIngestSummary
  }).pipe(Effect.withSpan("runStreamIngest"))
