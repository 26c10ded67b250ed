import {
  Chunk,
  Clock,
  Config,
  type Context,
  Duration,
  Effect,
  Either,
  Option,
  Ref,
  Schedule,
  Schema,
  Stream
} from "effect"
import type { ObjectStoreError } from "../domain/errors.js"
import { FraudSignal, TransactionEvent } from "../domain/events.js"
import {
  type DimensionTables,
  fraudSignalFactColumns,
  transactionEventFactColumns
} from "../domain/finalAggregate.js"
import { compareCodePoints } from "../domain/order.js"
import {
  type IndexedFraudSignal,
  type IndexedTransaction,
  indexedFraudSignalSchema,
  indexedTransactionSchema,
  scoredTransactionSchema
} from "../domain/rows.js"
import { utcDate } from "../domain/time.js"
import { decodeJsonRecordBytes } from "../domain/validation.js"
import {
  type EventLog,
  EventLogService,
  type LogRecord,
  nextOffsets,
  type PartitionOffset
} from "../layers/EventLog.js"
import { type ObjectStore, ProcessedBucket, RawBucket } from "../layers/ObjectStore.js"
import { Parquet } from "../layers/ParquetCodec.js"
import { contentTag, ManifestFile, prefixes, readCommittedFile, writePartitioned } from "./datasets.js"
import { loadDimensions } from "./dimensions.js"
import { asTableRow, indexFraudSignal, indexTransaction, type Partitioned } from "./indexRows.js"
import { FraudScoring, LiveScoringState, type ScoringEvent } from "./liveScoring.js"
import { type QuarantineEntry, quarantineEntry, writeQuarantine } from "./quarantine.js"
import { type SignalJoinRow, SignalJoinWindow, signalJoinSchema } from "./signalJoin.js"
import { observeBatch, observeEventLatencies, observeLag, observeStateSize } from "./streamingMetrics.js"
import type { ScoringFacts } from "./train/features.js"

/** Topic names of the two streams. */
export interface TopicNames {
  readonly transactions: string
  readonly fraudSignals: string
}

/** Topic names (contract §1–2) and their dead-letter topics. */
export const topics: TopicNames = { transactions: "transactions", fraudSignals: "fraud_signals" }
export const deadLetterTopic = (topic: string): string => `${topic}.dlq`

/** Where the streaming service writes: committed micro-batches are listed by manifests in `_batches/`. */
export const streamingPrefixes = {
  transactions: `${prefixes.streamingIndex}transactions/`,
  fraudSignals: `${prefixes.streamingIndex}fraud_signals/`,
  lateTransactions: `${prefixes.late}transactions/`,
  lateFraudSignals: `${prefixes.late}fraud_signals/`,
  signalJoins: `${prefixes.streamingIndex}fraud_signal_joins/`,
  batches: `${prefixes.streamingIndex}_batches/`
} as const

/** The datasets a micro-batch can write to. */
export const StreamingDataset = Schema.Literal(
  "transactions",
  "fraud_signals",
  "late_transactions",
  "late_fraud_signals",
  "fraud_signal_joins"
)
export type StreamingDataset = typeof StreamingDataset.Type

/** The commit record of one micro-batch: its files and the offsets after it. Written last. */
export const StreamingBatchManifest = Schema.Struct({
  batch_id: Schema.String,
  /** The consumer group whose offsets the batch advanced. */
  group: Schema.optional(Schema.String),
  /**
   * The embedded log the batch was read from (`EventLog.instance`); absent for a log that outlives its
   * process (Kafka). Offsets of one embedded log say nothing about another's, which starts again at 0.
   */
  log_instance: Schema.optional(Schema.String),
  /** Keys of the batch's quarantine files (`quarantine/stream/…`). */
  quarantine_files: Schema.optional(Schema.Array(Schema.String)),
  committed_at: Schema.String,
  files: Schema.Array(Schema.extend(ManifestFile, Schema.Struct({ dataset: StreamingDataset }))),
  offsets: Schema.Array(
    Schema.Struct({ topic: Schema.String, partition: Schema.Number, offset: Schema.Number })
  ),
  /** The first offset of each partition in the batch (manifests written before this field lack it). */
  first_offsets: Schema.optional(
    Schema.Array(Schema.Struct({ topic: Schema.String, partition: Schema.Number, offset: Schema.Number }))
  ),
  consumed: Schema.Number,
  quarantined: Schema.Number,
  duplicates: Schema.Number
})
export type StreamingBatchManifest = typeof StreamingBatchManifest.Type

/** Options of the streaming index service. */
export interface StreamingIndexOptions {
  readonly group: string
  /** Close a micro-batch at this many records… */
  readonly maxBatchRecords: number
  /** …or after this long, whichever comes first. */
  readonly maxBatchWait: Duration.DurationInput
  /** Events older than (max event_time seen − allowed lateness) are late: they go to `late/`. */
  readonly allowedLateness: Duration.DurationInput
  /** End once the log's end offsets at start are reached (a bounded run); otherwise run until interrupted. */
  readonly stopAtEnd: boolean
  readonly topics: TopicNames
  /** How long a signal and its transaction wait for each other, behind the watermark. */
  readonly joinWindow: Duration.DurationInput
  /** How often the newest users and merchants snapshots are reloaded, without a restart. */
  readonly dimensionsRefresh: Duration.DurationInput
  /** A partition silent this long (processing time) stops holding the watermark back until it delivers again. */
  readonly idleTimeout: Duration.DurationInput
}

export const defaultStreamingIndexOptions: StreamingIndexOptions = {
  topics,
  dimensionsRefresh: Duration.minutes(5),
  joinWindow: Duration.hours(24),
  idleTimeout: Duration.minutes(1),
  group: "streaming-index",
  maxBatchRecords: 20_000,
  maxBatchWait: Duration.seconds(2),
  allowedLateness: Duration.hours(1),
  stopAtEnd: false
}

/**
 * The streaming index options from config, each with the default above: `RECON_STREAM_GROUP`,
 * `RECON_STREAM_MAX_BATCH_RECORDS`, `RECON_STREAM_MAX_BATCH_WAIT_MS`, `RECON_STREAM_ALLOWED_LATENESS_MS`,
 * `RECON_STREAM_UNTIL_IDLE`, `RECON_STREAM_DIMENSIONS_REFRESH_MS`, `RECON_STREAM_IDLE_TIMEOUT_MS`,
 * `RECON_STREAM_JOIN_WINDOW_MS`, `RECON_TOPIC_TRANSACTIONS`,
 * `RECON_TOPIC_FRAUD_SIGNALS`.
 */
export const streamingIndexOptionsConfig: Config.Config<StreamingIndexOptions> = Config.all({
  group: Config.string("RECON_STREAM_GROUP").pipe(Config.withDefault(defaultStreamingIndexOptions.group)),
  maxBatchRecords: Config.integer("RECON_STREAM_MAX_BATCH_RECORDS").pipe(
    Config.withDefault(defaultStreamingIndexOptions.maxBatchRecords)
  ),
  maxBatchWait: Config.integer("RECON_STREAM_MAX_BATCH_WAIT_MS").pipe(
    Config.map(Duration.millis),
    Config.withDefault(Duration.decode(defaultStreamingIndexOptions.maxBatchWait))
  ),
  allowedLateness: Config.integer("RECON_STREAM_ALLOWED_LATENESS_MS").pipe(
    Config.map(Duration.millis),
    Config.withDefault(Duration.decode(defaultStreamingIndexOptions.allowedLateness))
  ),
  stopAtEnd: Config.boolean("RECON_STREAM_UNTIL_IDLE").pipe(Config.withDefault(false)),
  joinWindow: Config.integer("RECON_STREAM_JOIN_WINDOW_MS").pipe(
    Config.map(Duration.millis),
    Config.withDefault(Duration.decode(defaultStreamingIndexOptions.joinWindow))
  ),
  dimensionsRefresh: Config.integer("RECON_STREAM_DIMENSIONS_REFRESH_MS").pipe(
    Config.map(Duration.millis),
    Config.withDefault(Duration.decode(defaultStreamingIndexOptions.dimensionsRefresh))
  ),
  idleTimeout: Config.integer("RECON_STREAM_IDLE_TIMEOUT_MS").pipe(
    Config.map(Duration.millis),
    Config.withDefault(Duration.decode(defaultStreamingIndexOptions.idleTimeout))
  ),
  topics: Config.all({
    transactions: Config.string("RECON_TOPIC_TRANSACTIONS").pipe(Config.withDefault(topics.transactions)),
    fraudSignals: Config.string("RECON_TOPIC_FRAUD_SIGNALS").pipe(Config.withDefault(topics.fraudSignals))
  })
})

/** Figures of a streaming run so far. Records in = accepted + quarantined; accepted = indexed + late + duplicates. */
export interface StreamingSummary {
  readonly batches: number
  readonly consumed: number
  readonly accepted: number
  readonly quarantined: number
  readonly indexed: number
  readonly late: number
  readonly duplicates: number
}

const emptySummary: StreamingSummary = {
  batches: 0,
  consumed: 0,
  accepted: 0,
  quarantined: 0,
  indexed: 0,
  late: 0,
  duplicates: 0
}

/** Where one partition stands: its highest event time (undefined until a non-duplicate) and when it last delivered. */
interface PartitionProgress {
  max: number | undefined
  lastSeenMillis: number
}

/**
 * Event-time state. Each source partition tracks the max event time it has delivered; the watermark is
 * the least of those minus the allowed lateness (a partition that is behind holds it back, as in Flink or
 * Kafka Streams). A partition that delivered nothing for longer than the idle timeout (processing time,
 * checked at each {@link advanceTo}) stops holding the watermark back until it delivers again, so a quiet
 * partition or topic cannot freeze eviction. Ids are remembered while their event time is at or after the
 * watermark, then evicted, so memory is bounded by the lateness window.
 */
export class EventTimeState {
  private readonly partitions = new Map<string, PartitionProgress>()
  private readonly seen = new Map<string, number>()
  private nowMillis = Number.NEGATIVE_INFINITY

  constructor(
    private readonly latenessMicros: number,
    private readonly idleTimeoutMillis = Number.POSITIVE_INFINITY
  ) {}

  /**
   * The watermark: over partitions that are not idle; when every partition is idle, the highest max seen
   * (nothing arrives, so nothing can be late by holding it there); −∞ before anything arrived.
   */
  get watermark(): number {
    let least = Number.POSITIVE_INFINITY
    let greatest = Number.NEGATIVE_INFINITY
    for (const progress of this.partitions.values()) {
      const max = progress.max
      if (max === undefined) continue
      if (max > greatest) greatest = max
      if (!this.isIdle(progress) && max < least) least = max
    }
    if (greatest === Number.NEGATIVE_INFINITY) return Number.NEGATIVE_INFINITY
    return (least === Number.POSITIVE_INFINITY ? greatest : least) - this.latenessMicros
  }

  /** True when some partition delivered within the idle timeout. */
  get active(): boolean {
    for (const progress of this.partitions.values())
      if (progress.max !== undefined && !this.isIdle(progress)) return true
    return false
  }

  /** Silent for longer than the idle timeout, as of the processing time of the last {@link advanceTo}. */
  private isIdle(progress: PartitionProgress): boolean {
    return this.nowMillis - progress.lastSeenMillis > this.idleTimeoutMillis
  }

  get size(): number {
    return this.seen.size
  }

  /** Moves processing time to `nowMillis`: partitions silent for longer than the idle timeout are idle. */
  advanceTo(nowMillis: number): void {
    this.nowMillis = nowMillis
  }

  /** Classifies one event by id and time, and records it; `partition` names its source partition. */
  observe(id: string, eventTime: number, partition = ""): "new" | "duplicate" | "late" {
    let progress = this.partitions.get(partition)
    if (progress === undefined) {
      progress = { max: undefined, lastSeenMillis: this.nowMillis }
      this.partitions.set(partition, progress)
    } else progress.lastSeenMillis = this.nowMillis
    if (this.seen.has(id)) return "duplicate"
    if (progress.max === undefined || eventTime > progress.max) progress.max = eventTime
    if (eventTime < this.watermark) return "late"
    this.seen.set(id, eventTime)
    return "new"
  }

  /** Drops ids whose event time fell behind the watermark. */
  evict(): void {
    const watermark = this.watermark
    for (const [id, eventTime] of this.seen) if (eventTime < watermark) this.seen.delete(id)
  }
}

/**
 * The watermark of several inputs, as for a join: the least over inputs that are active; an input that
 * is idle or has delivered nothing does not hold it back. −∞ when none is active.
 */
export const combinedWatermark = (states: ReadonlyArray<EventTimeState>): number => {
  const active = states.filter((state) => state.active)
  return active.length === 0 ? Number.NEGATIVE_INFINITY : Math.min(...active.map((state) => state.watermark))
}

/**
 * Retry for transient failures of the object store or the log (a server answering 5xx, a broker restart):
 * exponential from 200 ms, jittered, each wait at most 5 s, for up to two minutes.
 */
export const transientFailureRetry = Schedule.exponential("200 millis").pipe(
  Schedule.jittered,
  Schedule.union(Schedule.spaced("5 seconds")),
  Schedule.upTo("2 minutes")
)

/** Failures worth retrying: I/O of the object store or the event log. */
export const isTransientFailure = (error: { readonly _tag: string }): boolean =>
  error._tag === "ObjectStoreError" || error._tag === "EventLogError"

/** First and last offset per `topic/partition` of a batch's records. */
const offsetRanges = (records: ReadonlyArray<LogRecord>): Map<string, [number, number]> => {
  const ranges = new Map<string, [number, number]>()
  for (const record of records) {
    const key = `${record.topic}/${record.partition}`
    const range = ranges.get(key)
    if (range === undefined) ranges.set(key, [record.offset, record.offset])
    else ranges.set(key, [Math.min(range[0], record.offset), Math.max(range[1], record.offset)])
  }
  return ranges
}

const firstOffsets = (records: ReadonlyArray<LogRecord>): ReadonlyArray<PartitionOffset> =>
  [...offsetRanges(records)].map(([key, [first]]) => {
    const slash = key.lastIndexOf("/")
    return { topic: key.slice(0, slash), partition: Number(key.slice(slash + 1)), offset: first }
  })

/** A partition range of a committed batch that an earlier committed batch of its group already covers. */
export interface ReplayedRange {
  readonly batchId: string
  readonly topic: string
  readonly partition: number
  /** Rows of this batch from the partition with an offset below this are copies. */
  readonly below: number
}

/**
 * The ranges of committed batches that repeat offsets an earlier batch of the same group committed (a batch
 * still in flight when its partitions moved to another member after a rebalance), in commit order.
 * Readers of streaming_index drop those rows; final_aggregate needs nothing (it dedups by event_id).
 */
export const replayedRanges = (
  manifests: ReadonlyArray<StreamingBatchManifest>
): ReadonlyArray<ReplayedRange> => {
  const reached = new Map<string, number>()
  const replayed: Array<ReplayedRange> = []
  for (const manifest of manifests) {
    const group = `${manifest.group ?? ""}\u0000${manifest.log_instance ?? ""}`
    for (const first of manifest.first_offsets ?? []) {
      const before = reached.get(`${group}\u0000${first.topic}/${first.partition}`) ?? 0
      if (first.offset < before) {
        replayed.push({
          batchId: manifest.batch_id,
          topic: first.topic,
          partition: first.partition,
          below: before
        })
      }
    }
    for (const offset of manifest.offsets) {
      const key = `${group}\u0000${offset.topic}/${offset.partition}`
      reached.set(key, Math.max(reached.get(key) ?? 0, offset.offset))
    }
  }
  return replayed
}

/** A batch's id from its offset ranges (and the embedded log's instance): a replay gets the same id. */
const batchIdOf = (records: ReadonlyArray<LogRecord>, logInstance: string): string => {
  const ranges = offsetRanges(records)
  const text = [...ranges]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([key, [first, last]]) => `${key}:${first}-${last}`)
    .join(",")
  return contentTag(logInstance === "" ? text : `${logInstance}|${text}`)
}

/** Whether a manifest is one of this group's on this log (an embedded log's own, or the durable log's). */
const isOwnManifest = (manifest: StreamingBatchManifest, group: string, logInstance: string): boolean =>
  manifest.group === group && (manifest.log_instance ?? "") === logInstance

const decoder = new TextDecoder()

/** Where a micro-batch's manifest lives: named by its batch id, so a replay of the batch writes the same key. */
const batchManifestKey = (batchId: string): string => `${streamingPrefixes.batches}${batchId}.json`

/** Keys of the committed micro-batch manifests. */
const listBatchManifestKeys = (store: ObjectStore): Effect.Effect<ReadonlyArray<string>, ObjectStoreError> =>
  Effect.map(store.list(streamingPrefixes.batches), (infos) =>
    infos.map((info) => info.key).filter((key) => key.endsWith(".json"))
  )

/**
 * The manifests at `keys` that can be read, with their keys, fetched 16 at a time (one after another, a
 * restart against S3 spent seconds on a few hundred of them); an unreadable one is skipped with a warning.
 */
const fetchBatchManifests = (
  store: ObjectStore,
  keys: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<readonly [string, StreamingBatchManifest]>, ObjectStoreError> =>
  Effect.map(
    Effect.forEach(
      keys,
      (key) =>
        Effect.gen(function* () {
          const body = yield* store.get(key)
          if (Option.isNone(body)) return undefined
          const decoded = Schema.decodeUnknownEither(Schema.parseJson(StreamingBatchManifest))(
            decoder.decode(body.value)
          )
          if (Either.isRight(decoded)) return [key, decoded.right] as const
          yield* Effect.logWarning(`ignoring unreadable batch manifest ${key}`)
          return undefined
        }),
      { concurrency: 16 }
    ),
    (read) => read.filter((entry) => entry !== undefined)
  )

/** Keys and files of every committed micro-batch, oldest first. */
export const readCommittedBatches = (
  store: ObjectStore
): Effect.Effect<ReadonlyArray<StreamingBatchManifest>, ObjectStoreError> =>
  Effect.gen(function* () {
    const read = yield* fetchBatchManifests(store, yield* listBatchManifestKeys(store))
    return read
      .map(([, manifest]) => manifest)
      .sort((a, b) => (a.committed_at < b.committed_at ? -1 : a.committed_at > b.committed_at ? 1 : 0))
  })

interface BatchOutcome {
  readonly summary: StreamingSummary
  readonly offsets: ReadonlyArray<PartitionOffset>
}

type IndexedTransactionRow = Partitioned<ReturnType<typeof indexTransaction>>
/** An index row of the stream; the model columns are absent (written as null) until a model scores it. */
type ScoredTransactionRow = IndexedTransactionRow & {
  readonly model_score?: number | null
  readonly model_version?: string | null
}
type IndexedFraudSignalRow = Partitioned<ReturnType<typeof indexFraudSignal>>

/** A micro-batch after validation, dedup and joins: rows to write, nothing written yet. */
interface DecodedBatch {
  readonly batchId: string
  readonly records: ReadonlyArray<LogRecord>
  readonly quarantined: ReadonlyArray<QuarantineEntry>
  readonly deadLetters: ReadonlyMap<string, ReadonlyArray<{ key: string; value: Uint8Array }>>
  readonly indexed: ReadonlyArray<ScoredTransactionRow>
  /** Scoring facts of `indexed`, row for row; empty when live scoring is off. */
  readonly scoringFacts: ReadonlyArray<ScoringFacts>
  readonly lateTransactions: ReadonlyArray<IndexedTransactionRow>
  readonly signals: ReadonlyArray<IndexedFraudSignalRow>
  readonly lateSignals: ReadonlyArray<IndexedFraudSignalRow>
  readonly joined: ReadonlyArray<SignalJoinRow>
  readonly duplicates: number
}

/** A decoded micro-batch whose data and quarantine files are written, not yet committed. */
interface WrittenBatch {
  readonly decoded: DecodedBatch
  readonly files: StreamingBatchManifest["files"]
  readonly quarantineFiles: ReadonlyArray<string>
}

const isIdColumn = (column: string) =>
  column === "event_id" || column === "signal_id" || column === "transaction_id"

/** The contract fields of a transaction event besides its ids, as its index row holds them too. */
const transactionContentFields: ReadonlyArray<keyof TransactionEvent & keyof IndexedTransaction> = [
  ...transactionEventFactColumns.filter((column) => !isIdColumn(column)),
  "ip_address"
]

/** The contract fields of a fraud signal besides its ids. */
const signalContentFields: ReadonlyArray<keyof FraudSignal & keyof IndexedFraudSignal> =
  fraudSignalFactColumns.filter((column) => !isIdColumn(column))

const numberBits = new Float64Array(1)
const numberWords = new Uint32Array(numberBits.buffer)
let hashFirst = 0
let hashSecond = 0

const feedWord = (word: number): void => {
  hashFirst = Math.imul(hashFirst ^ word, 2_654_435_761)
  hashSecond = Math.imul(hashSecond ^ word, 1_597_334_677)
}

const feedText = (text: string): void => {
  feedWord(text.length)
  for (let index = 0; index < text.length; index++) feedWord(text.charCodeAt(index))
}

/**
 * A 64-bit hash (cyrb53's two multiplicative lanes, both kept) of a record's `fields`, read in place, as
 * four UTF-16 code units: each value is fed with a type tag, a text with its length first, a number as its
 * IEEE bits, an absent value as null, so no two different contents feed the same sequence. No text is
 * built from the record and no number is printed (this runs for every record).
 */
const contentHash = (record: Readonly<Record<string, unknown>>, fields: ReadonlyArray<string>): string => {
  hashFirst = 0xdeadbeef
  hashSecond = 0x41c6ce57
  for (const field of fields) {
    const value = record[field]
    if (value === null || value === undefined) feedWord(0x10000)
    else if (typeof value === "string") {
      feedWord(0x10001)
      feedText(value)
    } else if (typeof value === "number") {
      numberBits[0] = value
      feedWord(0x10002)
      feedWord(numberWords[0] ?? 0)
      feedWord(numberWords[1] ?? 0)
    } else if (typeof value === "boolean") feedWord(value ? 0x10003 : 0x10004)
    else if (Array.isArray(value)) {
      feedWord(0x10005)
      feedWord(value.length)
      for (const item of value as ReadonlyArray<unknown>)
        if (typeof item === "string") feedText(item)
        else feedText(JSON.stringify(item) ?? "null")
    } else feedText(JSON.stringify(value) ?? "")
  }
  let first = hashFirst
  let second = hashSecond
  first = Math.imul(first ^ (first >>> 16), 2_246_822_507)
  first ^= Math.imul(second ^ (second >>> 13), 3_266_489_909)
  second = Math.imul(second ^ (second >>> 16), 2_246_822_507)
  second ^= Math.imul(first ^ (first >>> 13), 3_266_489_909)
  return String.fromCharCode(first & 0xffff, first >>> 16, second & 0xffff, second >>> 16)
}

/**
 * What the stream deduplicates by: one copy of an event_id (signal_id) within its transaction, as contract
 * §6 counts ids per transaction (one id reused by another transaction is not a replay). A copy is the id
 * with its content (the contract fields, an absent one as null): a replay of the same record is dropped,
 * while a copy that differs is indexed like any record, so the final aggregate chooses among the copies
 * exactly as it does for the batch layer (the greatest copy of an event; every copy of a signal folded in),
 * whatever order they arrived in. The transaction_id's length leads, so no two pairs share a key whatever
 * characters the ids hold, and the content hash has a fixed length; 64 bits tell apart the few copies of one id.
 */
const dedupKey = (
  transactionId: string,
  id: string,
  record: Readonly<Record<string, unknown>>,
  contentFields: ReadonlyArray<string>
): string => `${transactionId.length}:${transactionId}${id}#${contentHash(record, contentFields)}`

/** Validates, dedups and joins one micro-batch, advancing the event-time state. Pure CPU, no I/O. */
const decodeBatch = (
  topicNames: TopicNames,
  records: ReadonlyArray<LogRecord>,
  dimensions: DimensionTables,
  transactionState: EventTimeState,
  signalState: EventTimeState,
  joins: SignalJoinWindow,
  scoring: LiveScoringState | undefined,
  logInstance: string
): DecodedBatch => {
  const quarantined: Array<QuarantineEntry> = []
  const deadLetters = new Map<string, Array<{ key: string; value: Uint8Array }>>()
  const indexed: Array<ScoredTransactionRow> = []
  const scoringFacts: Array<ScoringFacts> = []
  const lateTransactions: Array<IndexedTransactionRow> = []
  const signals: Array<IndexedFraudSignalRow> = []
  const lateSignals: Array<IndexedFraudSignalRow> = []
  const joined: Array<SignalJoinRow> = []
  let duplicates = 0

  for (const record of records) {
    const location = `${record.topic}/${record.partition}@${record.offset}`
    const outcome =
      record.topic === topicNames.fraudSignals
        ? Either.map(decodeJsonRecordBytes(FraudSignal, record.value), (signal) => {
            const seen = signalState.observe(
              dedupKey(signal.transaction_id, signal.signal_id, signal, signalContentFields),
              signal.event_time,
              `${record.partition}`
            )
            if (seen === "duplicate") duplicates++
            else {
              scoring?.observeSignal(signal)
              ;(seen === "late" ? lateSignals : signals).push(
                indexFraudSignal(signal, seen === "late" ? "late" : "stream", location)
              )
              joined.push(...joins.addSignal(signal))
            }
          })
        : Either.map(decodeJsonRecordBytes(TransactionEvent, record.value), (event) => {
            const seen = transactionState.observe(
              dedupKey(event.transaction_id, event.event_id, event, transactionContentFields),
              event.event_time,
              `${record.partition}`
            )
            if (seen === "duplicate") duplicates++
            else if (seen === "late")
              lateTransactions.push(indexTransaction(event, dimensions, "late", location))
            else indexed.push(indexTransaction(event, dimensions, "stream", location))
            if (seen !== "duplicate") {
              joined.push(...joins.addTransaction(event))
            }
          })
    if (Either.isLeft(outcome)) {
      const entry = quarantineEntry(
        record.topic,
        location,
        outcome.left.problems,
        outcome.left.redactedPayload
      )
      quarantined.push(entry)
      const list = deadLetters.get(record.topic) ?? []
      list.push({ key: record.key ?? "", value: new TextEncoder().encode(JSON.stringify(entry)) })
      deadLetters.set(record.topic, list)
    }
  }
  transactionState.evict()
  signalState.evict()
  // After the whole batch, so signals that arrived in the same batch as their transaction are seen, and in
  // event-time order (partitions interleave), late events included: training counts them too.
  if (scoring !== undefined) {
    const byTime = [
      ...indexed.map((row, position) => ({ row, position })),
      ...lateTransactions.map((row) => ({ row, position: -1 }))
    ].sort(
      (a, b) =>
        a.row.event_time - b.row.event_time || compareCodePoints(a.row.transaction_id, b.row.transaction_id)
    )
    scoringFacts.length = indexed.length
    for (const { row, position } of byTime) {
      if (position < 0) scoring.observeTransaction(row)
      else scoringFacts[position] = scoring.factsFor(row)
    }
  }
  const watermark = combinedWatermark([transactionState, signalState])
  joins.evict(watermark)
  scoring?.evict(watermark)
  return {
    batchId: batchIdOf(records, logInstance),
    records,
    quarantined,
    deadLetters,
    indexed,
    scoringFacts,
    lateTransactions,
    signals,
    lateSignals,
    joined,
    duplicates
  }
}

/** Adds the promoted model's scores to a decoded batch's indexed transactions (one predict call). */
const scoreDecodedBatch = (scorer: Option.Option<Context.Tag.Service<FraudScoring>>, decoded: DecodedBatch) =>
  Effect.gen(function* () {
    if (Option.isNone(scorer) || decoded.indexed.length === 0) return decoded
    const scored = yield* scorer.value.scoreBatch(decoded.scoringFacts).pipe(
      Effect.tapError((error) =>
        Effect.logWarning(`live scoring failed; rows keep a null model_score: ${String(error)}`)
      ),
      Effect.orElseSucceed(() => Option.none())
    )
    if (Option.isNone(scored)) return decoded
    const { scores, version } = scored.value
    const indexed = decoded.indexed.map((row, index) => ({
      ...row,
      model_score: scores[index] ?? null,
      model_version: version
    }))
    return { ...decoded, indexed }
  })

/**
 * Writes a decoded batch's Parquet and quarantine files. Names derive from the batch's offsets, so a retry
 * or a replay after a crash rewrites the same objects; nothing is visible until the manifest is written.
 */
const writeBatchFiles = (decoded: DecodedBatch) =>
  Effect.gen(function* () {
    const processed = yield* ProcessedBucket
    const codec = yield* Parquet
    const write = (
      prefix: string,
      dataset: StreamingDataset,
      schema: typeof indexedTransactionSchema,
      rows: ReadonlyArray<object>
    ) =>
      Effect.map(
        writePartitioned(processed, codec, prefix, schema, rows.map(asTableRow), decoded.batchId),
        (files) => files.map((file) => ({ ...file, dataset }))
      )
    const files = (yield* Effect.all(
      [
        write(streamingPrefixes.transactions, "transactions", scoredTransactionSchema, decoded.indexed),
        write(streamingPrefixes.fraudSignals, "fraud_signals", indexedFraudSignalSchema, decoded.signals),
        write(
          streamingPrefixes.lateTransactions,
          "late_transactions",
          indexedTransactionSchema,
          decoded.lateTransactions
        ),
        write(streamingPrefixes.signalJoins, "fraud_signal_joins", signalJoinSchema, decoded.joined),
        write(
          streamingPrefixes.lateFraudSignals,
          "late_fraud_signals",
          indexedFraudSignalSchema,
          decoded.lateSignals
        )
      ],
      { concurrency: "unbounded" }
    )).flat()
    const quarantineFiles = yield* writeQuarantine(processed, "stream", decoded.batchId, decoded.quarantined)
    return { decoded, files, quarantineFiles } satisfies WrittenBatch
  }).pipe(Effect.retry({ schedule: transientFailureRetry, while: isTransientFailure }))

/** Sends a written batch's dead letters and writes its manifest: from here on readers see the batch. */
const commitBatchManifest = (group: string, written: WrittenBatch) =>
  Effect.gen(function* () {
    const processed = yield* ProcessedBucket
    const log = yield* EventLogService
    const { decoded } = written
    for (const [topic, messages] of decoded.deadLetters) yield* log.produce(deadLetterTopic(topic), messages)
    const offsets = nextOffsets(decoded.records)
    const manifest: StreamingBatchManifest = {
      batch_id: decoded.batchId,
      group,
      ...(log.instance === "" ? {} : { log_instance: log.instance }),
      quarantine_files: written.quarantineFiles,
      committed_at: new Date(yield* Clock.currentTimeMillis).toISOString(),
      files: written.files,
      offsets,
      first_offsets: firstOffsets(decoded.records),
      consumed: decoded.records.length,
      quarantined: decoded.quarantined.length,
      duplicates: decoded.duplicates
    }
    yield* processed.put(
      batchManifestKey(decoded.batchId),
      new TextEncoder().encode(JSON.stringify(manifest, null, 2))
    )
    return {
      offsets,
      summary: {
        batches: 1,
        consumed: decoded.records.length,
        accepted: decoded.records.length - decoded.quarantined.length,
        quarantined: decoded.quarantined.length,
        indexed: decoded.indexed.length + decoded.signals.length,
        late: decoded.lateTransactions.length + decoded.lateSignals.length,
        duplicates: decoded.duplicates
      }
    } satisfies BatchOutcome
  }).pipe(Effect.retry({ schedule: transientFailureRetry, while: isTransientFailure }))

const addSummaries = (a: StreamingSummary, b: StreamingSummary): StreamingSummary => ({
  batches: a.batches + b.batches,
  consumed: a.consumed + b.consumed,
  accepted: a.accepted + b.accepted,
  quarantined: a.quarantined + b.quarantined,
  indexed: a.indexed + b.indexed,
  late: a.late + b.late,
  duplicates: a.duplicates + b.duplicates
})

/**
 * The offsets the committed manifests of a group reached, per partition: where the group must resume.
 * The log's committed offsets can lag them when the service died between writing a manifest and
 * committing to the log; they are then moved forward before consuming, so no committed batch is read twice.
 */
export const resumeFromManifests = (
  group: string,
  topicNames: TopicNames,
  manifests: ReadonlyArray<StreamingBatchManifest>
) =>
  Effect.gen(function* () {
    const log = yield* EventLogService
    const reached = new Map<string, PartitionOffset>()
    for (const manifest of manifests) {
      if (!isOwnManifest(manifest, group, log.instance)) continue
      for (const offset of manifest.offsets) {
        const key = `${offset.topic}\u0000${offset.partition}`
        if ((reached.get(key)?.offset ?? -1) < offset.offset) reached.set(key, offset)
      }
    }
    const behind: Array<PartitionOffset> = []
    for (const topic of [topicNames.transactions, topicNames.fraudSignals]) {
      for (const committed of yield* log.committedOffsets(group, topic)) {
        const manifest = reached.get(`${topic}\u0000${committed.partition}`)
        if (manifest !== undefined && manifest.offset > committed.offset) behind.push(manifest)
      }
    }
    if (behind.length > 0) {
      yield* Effect.logWarning("log offsets behind the committed manifests: moving them forward").pipe(
        Effect.annotateLogs({ group, partitions: behind.length })
      )
      // A member killed a moment ago holds the group until its session times out: retry until it is gone.
      yield* Effect.retry(log.commit(group, behind), {
        schedule: transientFailureRetry,
        while: isTransientFailure
      })
    }
    return behind
  })

const partitionOfLocation = (location: string): string => /\/(\d+)@\d+$/.exec(location)?.[1] ?? ""

/**
 * Rebuilds the dedup and watermark state after a restart from the group's committed micro-batches whose
 * partition date is within the lateness window (plus a day) of the newest: a replayed or duplicated
 * event that arrives after the restart is then still recognised as a duplicate.
 */
const rebuildEventTimeState = (
  group: string,
  manifests: ReadonlyArray<StreamingBatchManifest>,
  latenessMicros: number,
  transactionState: EventTimeState,
  signalState: EventTimeState,
  scoring: LiveScoringState | undefined
) =>
  Effect.gen(function* () {
    const processed = yield* ProcessedBucket
    const codec = yield* Parquet
    // Every log's batches of the group: dedup keys are content, not offsets, so they hold across embedded logs.
    const files = manifests
      .filter((manifest) => manifest.group === group)
      .flatMap((manifest) => manifest.files)
      // Late files only feed live scoring's state; without scoring they are not read.
      .filter(
        (file) =>
          file.dataset === "transactions" ||
          file.dataset === "fraud_signals" ||
          (scoring !== undefined &&
            (file.dataset === "late_transactions" || file.dataset === "late_fraud_signals"))
      )
    if (files.length === 0) return
    const newest =
      files
        .map((file) => file.dt)
        .sort()
        .at(-1) ?? ""
    const horizon = utcDate(Date.parse(`${newest}T00:00:00Z`) * 1000 - latenessMicros - 86_400_000_000)
    let restored = 0
    const scoredTransactions: Array<ScoringEvent> = []
    for (const file of files.filter((listed) => listed.dt >= horizon)) {
      const rows = yield* readCommittedFile(processed, codec, "streaming_index", file.key)
      const isSignal = file.dataset === "fraud_signals" || file.dataset === "late_fraud_signals"
      const isLate = file.dataset === "late_transactions" || file.dataset === "late_fraud_signals"
      for (const row of rows) {
        if (!isLate) {
          const id = dedupKey(
            String(row["transaction_id"]),
            String(isSignal ? row["signal_id"] : row["event_id"]),
            row,
            isSignal ? signalContentFields : transactionContentFields
          )
          const partition = partitionOfLocation(String(row["source_location"]))
          ;(isSignal ? signalState : transactionState).observe(id, Number(row["event_time"]), partition)
          restored++
        }
        if (scoring === undefined) continue
        if (isSignal)
          scoring.observeSignal({
            transaction_id: String(row["transaction_id"]),
            event_time: Number(row["event_time"]),
            source: String(row["source"]),
            score: Number(row["score"]),
            confirmed_fraud: row["confirmed_fraud"] === true
          })
        else
          scoredTransactions.push({
            transaction_id: String(row["transaction_id"]),
            user_id: String(row["user_id"]),
            device_id: row["device_id"] === null ? null : String(row["device_id"]),
            event_time: Number(row["event_time"]),
            status: String(row["status"]),
            sequence: Number(row["sequence"]),
            amount_minor: Number(row["amount_minor"]),
            currency: String(row["currency"])
          })
      }
    }
    // Live scoring's activity state continues from the committed transactions, in event-time order.
    scoredTransactions.sort((a, b) => a.event_time - b.event_time)
    for (const row of scoredTransactions) scoring?.observeTransaction(row)
    transactionState.evict()
    signalState.evict()
    yield* Effect.logInfo("event-time state rebuilt from committed batches").pipe(
      Effect.annotateLogs({ restored, kept: transactionState.size + signalState.size })
    )
  })

/**
 * Drops records that committed manifests of the group already cover. The log's offsets can lag the
 * manifests when an instance died between its manifest and its offset commit; the partition's next owner
 * (this instance after a restart, or another one after a rebalance) then receives those records again.
 * The manifests are looked at again whenever a partition delivers records to this instance for the first
 * time or under a new assignment (after a rebalance another member may have committed batches of it); of the
 * group's own manifests only those not read before are fetched (`known`: those the caller already read),
 * since a manifest's key is its batch id and the group's batch written again covers the same offsets.
 */
export const makeCommittedFilter = (group: string, known: ReadonlyArray<StreamingBatchManifest> = []) =>
  Effect.gen(function* () {
    const processed = yield* ProcessedBucket
    const log = yield* EventLogService
    const reached = new Map<string, number>()
    const assignmentOf = new Map<string, number | undefined>()
    const readKeys = new Set<string>()
    const absorb = (manifests: ReadonlyArray<readonly [string, StreamingBatchManifest]>) => {
      for (const [manifestKey, manifest] of manifests) {
        // Batch ids do not name the group: another group's manifest may yet be overwritten by this group's.
        if (!isOwnManifest(manifest, group, log.instance)) continue
        readKeys.add(manifestKey)
        for (const offset of manifest.offsets) {
          const key = `${offset.topic}/${offset.partition}`
          if ((reached.get(key) ?? 0) < offset.offset) reached.set(key, offset.offset)
        }
      }
    }
    absorb(known.map((manifest) => [batchManifestKey(manifest.batch_id), manifest] as const))
    const reload = Effect.gen(function* () {
      const unread = (yield* listBatchManifestKeys(processed)).filter((key) => !readKeys.has(key))
      absorb(yield* fetchBatchManifests(processed, unread))
    })
    return {
      filter: (records: ReadonlyArray<LogRecord>) =>
        Effect.gen(function* () {
          const delivered = new Map<string, number | undefined>()
          for (const record of records)
            delivered.set(`${record.topic}/${record.partition}`, record.assignment)
          const changed = [...delivered].filter(
            ([key, assignment]) => !assignmentOf.has(key) || assignmentOf.get(key) !== assignment
          )
          if (changed.length > 0) {
            yield* reload
            for (const [key, assignment] of changed) assignmentOf.set(key, assignment)
          }
          const kept = records.filter(
            (record) => record.offset >= (reached.get(`${record.topic}/${record.partition}`) ?? 0)
          )
          if (kept.length < records.length) {
            yield* Effect.logWarning("skipped records already in committed manifests").pipe(
              Effect.annotateLogs({ skipped: records.length - kept.length })
            )
          }
          return kept
        })
    }
  })

/** Consumer lag (end offset − committed offset) of the partitions a batch advanced; best effort. */
const observeConsumerLag = (log: EventLog, offsets: ReadonlyArray<PartitionOffset>) =>
  Effect.forEach(
    [...new Set(offsets.map((offset) => offset.topic))],
    (topic) =>
      Effect.flatMap(log.endOffsets(topic), (ends) =>
        Effect.forEach(
          offsets.filter((offset) => offset.topic === topic),
          (offset) =>
            observeLag(
              topic,
              offset.partition,
              Math.max(
                0,
                (ends.find((end) => end.partition === offset.partition)?.offset ?? 0) - offset.offset
              )
            ),
          { discard: true }
        )
      ),
    { discard: true }
  ).pipe(Effect.catchAll(() => Effect.void))

/**
 * The streaming index: consumes `transactions` and `fraud_signals` as a consumer group, validates each
 * record (bad ones to `<topic>.dlq` and `quarantine/stream/`), drops duplicate ids within the watermark,
 * routes events older than the watermark to `late/`, joins the newest dimensions and writes micro-batches
 * (closed by size or time) as Parquet. Each batch's manifest is written after its files, and offsets are
 * committed to the log only after the manifest.
 */
export const runStreamingIndex = (options: Partial<StreamingIndexOptions> = {}) =>
  Effect.gen(function* () {
    const settings = { ...defaultStreamingIndexOptions, ...options }
    const log = yield* EventLogService
    const raw = yield* RawBucket
    const dimensions = yield* Ref.make((yield* loadDimensions(raw)).tables)
    yield* loadDimensions(raw).pipe(
      Effect.flatMap((loaded) => Ref.set(dimensions, loaded.tables)),
      Effect.tap(() => Effect.logDebug("dimensions reloaded")),
      Effect.catchAll((error) =>
        Effect.logWarning(`dimension refresh failed; keeping the previous: ${error.message}`)
      ),
      Effect.schedule(Schedule.spaced(settings.dimensionsRefresh)),
      Effect.forkScoped
    )
    const latenessMicros = Duration.toMillis(settings.allowedLateness) * 1000
    const idleTimeoutMillis = Duration.toMillis(settings.idleTimeout)
    const transactionState = new EventTimeState(latenessMicros, idleTimeoutMillis)
    const signalState = new EventTimeState(latenessMicros, idleTimeoutMillis)
    const scorer = yield* Effect.serviceOption(FraudScoring)
    const scoringState = Option.isSome(scorer) ? new LiveScoringState() : undefined
    // The committed manifests as they stand at start serve both the state rebuild and the resume below.
    const manifests = yield* readCommittedBatches(yield* ProcessedBucket)
    yield* rebuildEventTimeState(
      settings.group,
      manifests,
      latenessMicros,
      transactionState,
      signalState,
      scoringState
    )
    const joins = new SignalJoinWindow(Duration.toMillis(settings.joinWindow) * 1000)
    yield* log.ensureTopic(settings.topics.transactions, 4)
    yield* log.ensureTopic(settings.topics.fraudSignals, 4)
    yield* resumeFromManifests(settings.group, settings.topics, manifests)
    const skipCommitted = yield* makeCommittedFilter(settings.group, manifests)
    return yield* log
      .subscribe(settings.group, [settings.topics.transactions, settings.topics.fraudSignals], {
        stopAtEnd: settings.stopAtEnd
      })
      .pipe(
        Stream.mapEffect((records) => skipCommitted.filter(records)),
        Stream.flattenIterables,
        Stream.groupedWithin(settings.maxBatchRecords, settings.maxBatchWait),
        Stream.mapEffect((chunk) =>
          Effect.gen(function* () {
            const started = yield* Clock.currentTimeMillis
            transactionState.advanceTo(started)
            signalState.advanceTo(started)
            const tables = yield* Ref.get(dimensions)
            const records = Chunk.toReadonlyArray(chunk)
            const decoded = decodeBatch(
              settings.topics,
              records,
              tables,
              transactionState,
              signalState,
              joins,
              scoringState,
              log.instance
            )
            return { started, decoded: yield* scoreDecodedBatch(scorer, decoded) }
          })
        ),
        // The files of the next batch are written while this one commits; manifests and offset commits stay
        // strictly in batch order (a later batch's manifest never lands before an earlier one's).
        Stream.mapEffect(
          ({ started, decoded }) => Effect.map(writeBatchFiles(decoded), (written) => ({ started, written })),
          { concurrency: 2 }
        ),
        Stream.mapEffect(({ started, written }) =>
          Effect.gen(function* () {
            const outcome = yield* commitBatchManifest(settings.group, written)
            yield* Effect.retry(log.commit(settings.group, outcome.offsets), {
              schedule: transientFailureRetry,
              while: isTransientFailure
            })
            const committedAt = yield* Clock.currentTimeMillis
            yield* observeBatch(outcome.summary, (committedAt - started) / 1000)
            yield* observeEventLatencies(
              written.decoded.records.map((record) => record.timestamp),
              committedAt
            )
            yield* observeStateSize(
              transactionState.size + signalState.size + joins.size + (scoringState?.size ?? 0)
            )
            yield* observeConsumerLag(log, outcome.offsets)
            yield* Effect.logInfo("micro-batch committed").pipe(Effect.annotateLogs(outcome.summary))
            return outcome.summary
          })
        ),
        Stream.runFold(emptySummary, addSummaries)
      )
  }).pipe(Effect.scoped, Effect.withSpan("runStreamingIndex"))
