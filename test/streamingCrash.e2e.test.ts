import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Logger, LogLevel, Option, Redacted } from "effect"
import { EventLogService } from "../src/layers/EventLog.js"
import { layerKafka } from "../src/layers/KafkaEventLog.js"
import { type ObjectStore, ProcessedBucket, RawBucket } from "../src/layers/ObjectStore.js"
import { Parquet, type ParquetCodec } from "../src/layers/ParquetCodec.js"
import * as S3Buckets from "../src/layers/S3ObjectStore.js"
import { prefixes } from "../src/streams/datasets.js"
import { generateDataset } from "../src/streams/generate.js"
import { runBatchIngest, runStreamIngest } from "../src/streams/ingest.js"
import {
  readCommittedBatches,
  runStreamingIndex,
  type StreamingBatchManifest,
  type TopicNames
} from "../src/streams/streamingIndex.js"
import { requireService } from "./support/services.js"
import {
  countManifests,
  describeGroup,
  type StreamingProcess,
  startStreamingProcess,
  waitUntil
} from "./support/streamingProcess.js"

const kafkaBrokers = requireService("Kafka", "RECON_KAFKA_BROKERS")
const s3Endpoint = requireService("S3", "RECON_S3_ENDPOINT")

const runId = `${process.pid}-${Date.now().toString(36)}`
const decoder = new TextDecoder()

/** The test's own view of the real services: buckets of one test, the Kafka log, the Parquet codec. */
const realLayers = (suffix: string) =>
  Layer.mergeAll(
    S3Buckets.layerRawBucket(`raw-${suffix}`),
    S3Buckets.layerProcessedBucket(`processed-${suffix}`),
    layerKafka({ brokers: kafkaBrokers!.split(","), clientId: `crash-${suffix}` }),
    Parquet.layer()
  ).pipe(
    Layer.provide(
      S3Buckets.S3.layer({
        endpoint: Option.some(s3Endpoint!),
        region: "us-east-1",
        accessKeyId: Redacted.make(process.env.RECON_S3_ACCESS_KEY_ID ?? "S3RVER"),
        secretAccessKey: Redacted.make(process.env.RECON_S3_SECRET_ACCESS_KEY ?? "S3RVER"),
        forcePathStyle: true
      })
    )
  )

/** Names of one test's topics, group and buckets, and the service env that selects them. */
const namesFor = (scenario: string) => {
  const suffix = `${scenario}-${runId}`
  const topics: TopicNames = {
    transactions: `transactions-${suffix}`,
    fraudSignals: `fraud_signals-${suffix}`
  }
  const group = `streaming-${suffix}`
  const env = {
    RECON_S3_RAW_BUCKET: `raw-${suffix}`,
    RECON_S3_PROCESSED_BUCKET: `processed-${suffix}`,
    RECON_STREAM_GROUP: group,
    RECON_TOPIC_TRANSACTIONS: topics.transactions,
    RECON_TOPIC_FRAUD_SIGNALS: topics.fraudSignals,
    RECON_STREAM_MAX_BATCH_RECORDS: "200",
    RECON_STREAM_MAX_BATCH_WAIT_MS: "500",
    RECON_KAFKA_CLIENT_ID: `service-${suffix}`
  }
  return { suffix, topics, group, env }
}

/** Everything committed micro-batches of a group hold, keyed by the source record. */
interface CommittedState {
  readonly manifests: ReadonlyArray<StreamingBatchManifest>
  /** `<topic>/<partition>@<offset>` of every committed row and quarantined entry → the batches holding it. */
  readonly sources: ReadonlyMap<string, ReadonlyArray<string>>
  readonly eventIds: ReadonlySet<string>
  readonly signalIds: ReadonlySet<string>
  readonly consumed: number
  readonly quarantined: number
  readonly duplicates: number
  /** Manifests whose files' row counts plus quarantined plus duplicates differ from consumed. */
  readonly unbalanced: ReadonlyArray<string>
}

/** Reads committed state only: manifests, the Parquet files they list, and the quarantine files of their batches. */
const readCommittedState = (processed: ObjectStore, codec: ParquetCodec, group: string) =>
  Effect.gen(function* () {
    const manifests = (yield* readCommittedBatches(processed)).filter((manifest) => manifest.group === group)
    const sources = new Map<string, Array<string>>()
    const note = (source: string, batch: string) => {
      const list = sources.get(source) ?? []
      list.push(batch)
      sources.set(source, list)
    }
    const eventIds = new Set<string>()
    const signalIds = new Set<string>()
    const unbalanced: Array<string> = []
    const quarantineKeys = (yield* processed.list(`${prefixes.quarantine}stream/`)).map((info) => info.key)
    for (const manifest of manifests) {
      let rows = 0
      // Join rows derive from indexed records; they carry no source of their own.
      for (const file of manifest.files.filter((listed) => listed.dataset !== "fraud_signal_joins")) {
        const body = yield* processed.get(file.key)
        assert.isTrue(Option.isSome(body), `committed file ${file.key} exists`)
        const decoded = yield* codec.decode(Option.getOrThrow(body))
        assert.strictEqual(decoded.length, file.rows, `${file.key} holds the rows its manifest says`)
        rows += decoded.length
        for (const row of decoded) {
          note(String(row.source_location), manifest.batch_id)
          if (file.dataset === "transactions" || file.dataset === "late_transactions")
            eventIds.add(String(row.event_id))
          else signalIds.add(String(row.signal_id))
        }
      }
      let quarantined = 0
      for (const key of quarantineKeys.filter((key) => key.endsWith(`/${manifest.batch_id}.jsonl`))) {
        const body = yield* processed.get(key)
        for (const line of decoder.decode(Option.getOrThrow(body)).split("\n")) {
          if (line.trim() === "") continue
          const entry = JSON.parse(line) as { readonly source: string }
          note(entry.source, manifest.batch_id)
          quarantined++
        }
      }
      assert.strictEqual(quarantined, manifest.quarantined, `batch ${manifest.batch_id}: quarantine entries`)
      if (rows + quarantined + manifest.duplicates !== manifest.consumed) unbalanced.push(manifest.batch_id)
    }
    const sum = (pick: (manifest: StreamingBatchManifest) => number) =>
      manifests.reduce((total, manifest) => total + pick(manifest), 0)
    return {
      manifests,
      sources,
      eventIds,
      signalIds,
      consumed: sum((manifest) => manifest.consumed),
      quarantined: sum((manifest) => manifest.quarantined),
      duplicates: sum((manifest) => manifest.duplicates),
      unbalanced
    } satisfies CommittedState
  })

/** Every (topic, partition, offset) the input topics hold: `<topic>/<partition>@<offset>`. */
const producedSources = (topics: TopicNames) =>
  Effect.gen(function* () {
    const log = yield* EventLogService
    const sources: Array<string> = []
    for (const topic of [topics.transactions, topics.fraudSignals]) {
      for (const end of yield* log.endOffsets(topic)) {
        for (let offset = 0; offset < end.offset; offset++)
          sources.push(`${topic}/${end.partition}@${offset}`)
      }
    }
    return sources
  })

/**
 * Exactly once: the manifests consumed each produced record once (sum of `consumed`), no source appears
 * twice among committed rows and quarantine entries, every one of them was produced, and the records
 * without a row or entry are exactly the dropped duplicates.
 */
const assertExactlyOnce = (state: CommittedState, produced: ReadonlyArray<string>) => {
  const producedSet = new Set(produced)
  const twice = [...state.sources].filter(([, batches]) => batches.length > 1)
  const unknown = [...state.sources.keys()].filter((source) => !producedSet.has(source))
  const unaccounted = produced.filter((source) => !state.sources.has(source))
  assert.deepStrictEqual(
    twice.slice(0, 20).map(([source, batches]) => `${source} in batches ${batches.join(",")}`),
    [],
    `${twice.length} source records committed more than once`
  )
  assert.deepStrictEqual(unknown, [], "committed sources that were never produced")
  assert.deepStrictEqual(state.unbalanced, [], "manifests whose rows + quarantined + duplicates ≠ consumed")
  assert.strictEqual(state.consumed, produced.length, "sum of consumed over manifests = records produced")
  assert.strictEqual(
    unaccounted.length,
    state.duplicates,
    `records with no committed row or quarantine entry (${unaccounted.slice(0, 10).join(" ")}) are the dropped duplicates`
  )
}

/** Uploads the raw files (the service joins the dimension snapshots) and produces the stream files to Kafka. */
const feed = (inputDir: string, topics: TopicNames) =>
  Effect.gen(function* () {
    yield* runBatchIngest(inputDir)
    return yield* runStreamIngest(inputDir, 500, topics)
  })

/** The uninterrupted embedded run: memory log and buckets, the same batch size. */
const embeddedState = (inputDir: string) =>
  Effect.gen(function* () {
    const topics: TopicNames = { transactions: "transactions", fraudSignals: "fraud_signals" }
    yield* feed(inputDir, topics)
    yield* runStreamingIndex({ stopAtEnd: true, topics, group: "embedded", maxBatchRecords: 200 })
    return yield* readCommittedState(yield* ProcessedBucket, yield* Parquet, "embedded")
  }).pipe(
    Logger.withMinimumLogLevel(LogLevel.Warning),
    Effect.provide(
      Layer.mergeAll(
        RawBucket.layerMemory,
        ProcessedBucket.layerMemory,
        EventLogService.layerMemory(4),
        Parquet.layer()
      )
    )
  )

/** Per `<topic>/<partition>`, the furthest next offset the group's committed manifests reached. */
const reachedOffsets = (manifests: ReadonlyArray<StreamingBatchManifest>, group: string) => {
  const reached = new Map<string, number>()
  for (const manifest of manifests.filter((entry) => entry.group === group))
    for (const { topic, partition, offset } of manifest.offsets) {
      const key = `${topic}/${partition}`
      reached.set(key, Math.max(reached.get(key) ?? 0, offset))
    }
  return reached
}

const manifestsAtLeast = (count: number) =>
  Effect.flatMap(ProcessedBucket, (processed) => Effect.map(countManifests(processed), (n) => n >= count))

const deadline = Duration.seconds(90)

describe.skipIf(kafkaBrokers === undefined || s3Endpoint === undefined)(
  "streaming service killed with SIGKILL, on real Kafka and S3",
  () => {
    it.scopedLive(
      "killed at start and after the 1st, 3rd and 6th manifests, then drained: every record exactly once",
      () =>
        Effect.gen(function* () {
          const root = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "recon-crash-"))
          const inputDir = NodePath.join(root, "in")
          yield* generateDataset({ outDir: inputDir, transactions: 1500, seed: 31 })
          const { suffix, topics, group, env } = namesFor("crash")
          const outcome = yield* Effect.gen(function* () {
            const fed = yield* feed(inputDir, topics)
            const produced = yield* producedSources(topics)
            assert.strictEqual(produced.length, fed.transactions + fed.fraudSignals)
            const processed = yield* ProcessedBucket

            const started = yield* startStreamingProcess("start 0", env)
            yield* waitUntil(
              "the service to start",
              Effect.sync(() => started.logs().includes("streaming index started")),
              {
                timeout: deadline,
                watched: [started]
              }
            )
            assert.strictEqual((yield* started.kill9).signal, "SIGKILL")
            yield* Effect.logInfo(`killed at start with ${yield* countManifests(processed)} manifests`)

            const kills: Array<{ readonly at: number; readonly manifests: number }> = []
            for (const [index, target] of [1, 3, 6].entries()) {
              const service: StreamingProcess = yield* startStreamingProcess(`start ${index + 1}`, env)
              yield* waitUntil(`${target} manifests`, manifestsAtLeast(target), {
                timeout: deadline,
                watched: [service]
              })
              assert.strictEqual((yield* service.kill9).signal, "SIGKILL", "killed while running")
              kills.push({ at: target, manifests: yield* countManifests(processed) })
            }
            assert.isBelow(kills.at(-1)!.manifests, Math.ceil(produced.length / 200), "killed before the end")

            const last = yield* startStreamingProcess("last start", {
              ...env,
              RECON_STREAM_UNTIL_IDLE: "true"
            })
            const exit = yield* last.waitForExit(Duration.seconds(120))
            assert.deepStrictEqual(exit, { code: 0, signal: null }, last.logTail())
            const state = yield* readCommittedState(processed, yield* Parquet, group)
            return { produced, state }
          }).pipe(Effect.provide(realLayers(suffix)))

          assertExactlyOnce(outcome.state, outcome.produced)

          const embedded = yield* embeddedState(inputDir)
          assert.strictEqual(embedded.consumed, outcome.produced.length)
          assert.strictEqual(outcome.state.quarantined, embedded.quarantined)
          assert.deepStrictEqual([...outcome.state.eventIds].sort(), [...embedded.eventIds].sort())
          assert.deepStrictEqual([...outcome.state.signalIds].sort(), [...embedded.signalIds].sort())
        }),
      240_000
    )

    it.scopedLive(
      "two instances in one group, one killed mid-run: the survivor drains the rest, every record exactly once",
      () =>
        Effect.gen(function* () {
          const root = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "recon-pair-"))
          const inputDir = NodePath.join(root, "in")
          yield* generateDataset({ outDir: inputDir, transactions: 1500, seed: 31 })
          const { suffix, topics, group, env } = namesFor("pair")
          const brokers = kafkaBrokers!.split(",")
          const state = yield* Effect.gen(function* () {
            const log = yield* EventLogService
            yield* log.ensureTopic(topics.transactions, 4)
            yield* log.ensureTopic(topics.fraudSignals, 4)
            yield* runBatchIngest(inputDir)
            const victimClient = `victim-${suffix}`
            const victim = yield* startStreamingProcess("victim", {
              ...env,
              RECON_STREAM_MAX_BATCH_RECORDS: "100",
              RECON_KAFKA_CLIENT_ID: victimClient
            })
            const survivor = yield* startStreamingProcess("survivor", {
              ...env,
              RECON_STREAM_MAX_BATCH_RECORDS: "100",
              RECON_STREAM_UNTIL_IDLE: "false",
              RECON_KAFKA_CLIENT_ID: `survivor-${suffix}`
            })
            yield* waitUntil(
              "both instances to join the group",
              Effect.map(
                describeGroup(brokers, group),
                (found) => found.state === "Stable" && found.members === 2
              ),
              { timeout: deadline, interval: Duration.millis(250), watched: [victim, survivor] }
            )
            yield* runStreamIngest(inputDir, 500, topics)
            const produced = yield* producedSources(topics)
            yield* waitUntil(
              "both instances to commit micro-batches",
              Effect.sync(() => victim.committedBatches() >= 2 && survivor.committedBatches() >= 1),
              { timeout: deadline, watched: [victim, survivor] }
            )
            const victimPartitions =
              (yield* describeGroup(brokers, group)).assignments.get(victimClient) ?? []
            assert.strictEqual((yield* victim.kill9).signal, "SIGKILL", "victim killed while running")
            const processed = yield* ProcessedBucket
            const codec = yield* Parquet
            const reached = reachedOffsets(yield* readCommittedBatches(processed), group)
            const ends = new Map<string, number>()
            for (const topic of [topics.transactions, topics.fraudSignals])
              for (const end of yield* log.endOffsets(topic))
                ends.set(`${topic}/${end.partition}`, end.offset)
            assert.isTrue(
              victimPartitions.some(
                (partition) => (reached.get(partition) ?? 0) < (ends.get(partition) ?? 0)
              ),
              `the victim died with work left on its partitions ${victimPartitions.join(" ")}`
            )
            yield* waitUntil(
              "the survivor to drain the topics",
              Effect.map(
                readCommittedBatches(processed),
                (manifests) =>
                  manifests
                    .filter((manifest) => manifest.group === group)
                    .reduce((sum, m) => sum + m.consumed, 0) >= produced.length
              ),
              { timeout: Duration.seconds(120), interval: Duration.millis(500), watched: [survivor] }
            )
            const exit = yield* survivor.stop()
            assert.strictEqual(exit.code, 0, survivor.logTail())
            return { produced, state: yield* readCommittedState(processed, codec, group) }
          }).pipe(Effect.provide(realLayers(suffix)))
          assertExactlyOnce(state.state, state.produced)
        }),
      240_000
    )
  }
)
