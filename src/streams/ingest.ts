import { createHash } from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { HttpClient } from "@effect/platform"
import { Clock, Effect, Option, Schema, Stream } from "effect"
import { DatasetError } from "../domain/errors.js"
import { EventLogService, type LogMessage } from "../layers/EventLog.js"
import { RawBucket } from "../layers/ObjectStore.js"
import { scopedScratchDirectory } from "../layers/scratch.js"
import { rawFileKind } from "./rawRecords.js"
import { topics as defaultTopics, type TopicNames } from "./streamingIndex.js"

const listFiles = (directory: string): Array<string> => {
  if (!NodeFs.existsSync(directory)) return []
  return NodeFs.readdirSync(directory, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => NodePath.join(entry.parentPath, entry.name))
    .sort()
}

/** What happened to one file of an upload. */
export interface UploadedFile {
  readonly source: string
  readonly key: string
  readonly status: "uploaded" | "unchanged"
  readonly bytes: number
  readonly sha256: string
}

/** A file refused before upload, with the reason. */
export interface RefusedFile {
  readonly source: string
  readonly reason: string
}

/** What a batch upload did: every file is uploaded, unchanged (same bytes already stored) or refused. */
export interface BatchIngestSummary {
  readonly uploaded: number
  readonly unchanged: number
  readonly refused: ReadonlyArray<RefusedFile>
  readonly bytes: number
  readonly files: ReadonlyArray<UploadedFile>
}

/** Where the upload record of a raw key lives: the SHA-256 and size of the bytes last uploaded there. */
export const uploadRecordKey = (key: string): string =>
  `raw/_uploads/${createHash("sha256").update(key).digest("hex").slice(0, 32)}.json`

const UploadRecord = Schema.parseJson(
  Schema.Struct({ key: Schema.String, sha256: Schema.String, bytes: Schema.Number, source: Schema.String })
)

const readHead = async (path: string, offset: number, length: number): Promise<Buffer> => {
  const handle = await NodeFs.promises.open(path, "r")
  try {
    const buffer = Buffer.alloc(length)
    const { bytesRead } = await handle.read(buffer, 0, length, offset)
    return buffer.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
}

/**
 * Why a file cannot go into raw/, or undefined: its name must say JSON Lines, gzipped JSON Lines or Parquet
 * (as the batch job reads them), and a .gz or Parquet file must start (and Parquet end) with its magic bytes.
 */
const refusalOf = async (path: string, name: string): Promise<string | undefined> => {
  const kind = rawFileKind(name)
  if (kind === undefined) return "not a raw file: the name must end in .jsonl, .jsonl.gz or .parquet"
  const size = (await NodeFs.promises.stat(path)).size
  if (kind === "jsonl.gz" && !(await readHead(path, 0, 2)).equals(Buffer.from([0x1f, 0x8b]))) {
    return "named .gz but not gzip data"
  }
  if (kind === "parquet") {
    const magic = Buffer.from("PAR1")
    if (
      size < 8 ||
      !(await readHead(path, 0, 4)).equals(magic) ||
      !(await readHead(path, size - 4, 4)).equals(magic)
    ) {
      return "named .parquet but not a complete Parquet file (PAR1 magic missing)"
    }
  }
  return undefined
}

/** SHA-256 (hex) and size of a file, read as a stream. */
const hashFile = (path: string) =>
  Effect.tryPromise({
    try: async () => {
      const hash = createHash("sha256")
      let bytes = 0
      for await (const chunk of NodeFs.createReadStream(path)) {
        hash.update(chunk as Buffer)
        bytes += (chunk as Buffer).byteLength
      }
      return { sha256: hash.digest("hex"), bytes }
    },
    catch: (cause) => new DatasetError({ dataset: path, reason: `cannot read: ${String(cause)}` })
  })

/**
 * Uploads one local file to `key` unless the same bytes are already stored there: each key has an upload
 * record (SHA-256, size) written after the object, so a crash between the two only means the next run
 * uploads the file again, and an object replaced by other bytes has a record that no longer matches. Large
 * files go up as a multipart upload (the object store's `putFile`).
 */
const uploadFile = (path: string, key: string, source: string) =>
  Effect.gen(function* () {
    const raw = yield* RawBucket
    const { sha256, bytes } = yield* hashFile(path)
    const recordKey = uploadRecordKey(key)
    const stored = yield* raw.get(recordKey)
    if (Option.isSome(stored)) {
      const record = Schema.decodeUnknownOption(UploadRecord)(new TextDecoder().decode(stored.value))
      if (Option.isSome(record) && record.value.key === key && record.value.sha256 === sha256) {
        const present = yield* raw.list(key)
        if (present.some((info) => info.key === key && info.size === bytes)) {
          return { source, key, status: "unchanged", bytes, sha256 } satisfies UploadedFile
        }
      }
    }
    yield* raw.putFile(key, path)
    yield* raw.put(recordKey, new TextEncoder().encode(JSON.stringify({ key, sha256, bytes, source })))
    return { source, key, status: "uploaded", bytes, sha256 } satisfies UploadedFile
  })

const summarize = (
  files: ReadonlyArray<UploadedFile>,
  refused: ReadonlyArray<RefusedFile>
): BatchIngestSummary => ({
  uploaded: files.filter((file) => file.status === "uploaded").length,
  unchanged: files.filter((file) => file.status === "unchanged").length,
  refused,
  bytes: files.reduce((total, file) => total + (file.status === "uploaded" ? file.bytes : 0), 0),
  files
})

/** Uploads each (local file, key) pair, refusing files that are not raw files, with the reason. */
const uploadAll = (
  pairs: ReadonlyArray<{ readonly path: string; readonly key: string; readonly source: string }>
) =>
  Effect.gen(function* () {
    const files: Array<UploadedFile> = []
    const refused: Array<RefusedFile> = []
    for (const pair of pairs) {
      const reason = yield* Effect.promise(() => refusalOf(pair.path, NodePath.basename(pair.key)))
      if (reason !== undefined) {
        refused.push({ source: pair.source, reason })
        yield* Effect.logWarning("file refused").pipe(Effect.annotateLogs({ file: pair.source, reason }))
        continue
      }
      files.push(yield* uploadFile(pair.path, pair.key, pair.source))
    }
    return summarize(files, refused)
  })

/**
 * Batch ingest of a producer tree: uploads every file under `<inputDir>/raw/` to the raw bucket under the
 * same key (`raw/transactions/dt=…/…`). The same bytes already stored: no-op.
 */
export const runBatchIngest = (inputDir: string) =>
  Effect.gen(function* () {
    const root = NodePath.resolve(inputDir)
    const files = listFiles(NodePath.join(root, "raw"))
    if (files.length === 0) {
      return yield* new DatasetError({ dataset: inputDir, reason: "no files under raw/ to ingest" })
    }
    return yield* uploadAll(
      files.map((file) => ({
        path: file,
        key: NodePath.relative(root, file).split(NodePath.sep).join("/"),
        source: file
      }))
    )
  }).pipe(Effect.withSpan("runBatchIngest"))

/** The datasets a file upload can target (contract §1–3). */
export const UploadDataset = Schema.Literal(
  "transactions",
  "fraud_signals",
  "dimensions/users",
  "dimensions/merchants"
)
export type UploadDataset = typeof UploadDataset.Type

/** What to upload and where. */
export interface UploadOptions {
  /** A local file or directory, or an http(s) URL of an export file. */
  readonly source: string
  readonly dataset: UploadDataset
  /** The dt partition (events); default: the `dt=YYYY-MM-DD` in the source path, else today (UTC). */
  readonly dt?: string | undefined
  /** The snapshot folder (dimensions), `YYYYMMDDTHHMMSSZ`; default: now (UTC). */
  readonly snapshot?: string | undefined
}

const dtPattern = /^\d{4}-\d{2}-\d{2}$/
const snapshotPattern = /^\d{8}T\d{6}Z$/

const downloadToTemporary = (url: string) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const directory = yield* scopedScratchDirectory("recon-upload-")
    const segment = new URL(url).pathname.split("/").filter(Boolean).at(-1) ?? "export"
    let decoded = segment
    try {
      decoded = decodeURIComponent(segment)
    } catch {
      // A malformed escape: keep the segment as it is.
    }
    // Only a plain file name may come from the URL: never a path out of the download folder or the bucket.
    const name = NodePath.basename(decoded.replaceAll("\\", "/"))
    if (name === "" || name === "." || name === "..") {
      return yield* new DatasetError({ dataset: url, reason: "the URL does not end in a file name" })
    }
    const path = NodePath.join(directory, name)
    const response = yield* client
      .get(url)
      .pipe(
        Effect.mapError(
          (error) => new DatasetError({ dataset: url, reason: `download failed: ${error.message}` })
        )
      )
    if (response.status !== 200) {
      return yield* new DatasetError({ dataset: url, reason: `download answered HTTP ${response.status}` })
    }
    const file = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => NodeFs.promises.open(path, "w"),
        catch: (cause) => new DatasetError({ dataset: url, reason: `cannot write ${path}: ${String(cause)}` })
      }),
      (handle) => Effect.promise(() => handle.close())
    )
    yield* Stream.runForEach(
      response.stream.pipe(
        Stream.mapError(
          (error) => new DatasetError({ dataset: url, reason: `download failed: ${error.message}` })
        )
      ),
      (chunk) =>
        Effect.tryPromise({
          try: () => file.write(chunk),
          catch: (cause) =>
            new DatasetError({ dataset: url, reason: `cannot write ${path}: ${String(cause)}` })
        })
    )
    return { path, name }
  })

/**
 * Uploads producer files into the raw layout: `raw/<dataset>/dt=<dt>/<name>` for events,
 * `raw/dimensions/<users|merchants>/snapshot=<ts>/<name>` for dimension snapshots. The source is a local
 * file, every file of a local directory, or an HTTP(S) export (downloaded to a temporary file first).
 * Files are checked (name, gzip and Parquet magic) and refused with their reason; the same bytes already
 * stored are not uploaded again.
 */
export const runUpload = (options: UploadOptions) =>
  Effect.gen(function* () {
    if (options.dt !== undefined && !dtPattern.test(options.dt)) {
      return yield* new DatasetError({
        dataset: options.source,
        reason: `dt must be YYYY-MM-DD, got ${options.dt}`
      })
    }
    if (options.snapshot !== undefined && !snapshotPattern.test(options.snapshot)) {
      return yield* new DatasetError({
        dataset: options.source,
        reason: `snapshot must be YYYYMMDDTHHMMSSZ, got ${options.snapshot}`
      })
    }
    const now = new Date(yield* Clock.currentTimeMillis).toISOString()
    const folderFor = (source: string) => {
      if (options.dataset.startsWith("dimensions/")) {
        return `snapshot=${options.snapshot ?? now.replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}`
      }
      return `dt=${options.dt ?? /dt=(\d{4}-\d{2}-\d{2})/.exec(source)?.[1] ?? now.slice(0, 10)}`
    }
    const keyFor = (source: string, name: string) => `raw/${options.dataset}/${folderFor(source)}/${name}`
    if (/^https?:\/\//i.test(options.source)) {
      const downloaded = yield* downloadToTemporary(options.source)
      return yield* uploadAll([
        { path: downloaded.path, key: keyFor(options.source, downloaded.name), source: options.source }
      ])
    }
    const path = NodePath.resolve(options.source)
    if (!NodeFs.existsSync(path)) {
      return yield* new DatasetError({ dataset: options.source, reason: "no such file or directory" })
    }
    const files = NodeFs.statSync(path).isDirectory() ? listFiles(path) : [path]
    if (files.length === 0)
      return yield* new DatasetError({ dataset: options.source, reason: "no files to upload" })
    return yield* uploadAll(
      files.map((file) => ({ path: file, key: keyFor(file, NodePath.basename(file)), source: file }))
    )
  }).pipe(Effect.scoped, Effect.withSpan("runUpload"))

const keyDecoder = new TextDecoder()

const keyOf = (line: Uint8Array): string => {
  try {
    const parsed: unknown = JSON.parse(keyDecoder.decode(line))
    if (parsed !== null && typeof parsed === "object" && "transaction_id" in parsed) {
      const id = (parsed as { transaction_id: unknown }).transaction_id
      if (typeof id === "string") return id
    }
  } catch {
    // Unparseable lines are still sent: the streaming service quarantines them with their reason.
  }
  return ""
}

/** Only JSON's own whitespace (space, tab, CR): a line of nothing else is no record. */
const isBlankLine = (line: Uint8Array): boolean =>
  line.every((byte) => byte === 0x20 || byte === 0x09 || byte === 0x0d)

/**
 * The lines of a JSON Lines file as their bytes, split at LF only (a CR inside a line is JSON whitespace,
 * not a line end; a CR before the LF is dropped), a BOM at the start of the file dropped, blank lines
 * skipped. The bytes go to the log as they are, so the streaming index judges their UTF-8 itself.
 */
const linesOf = (file: string): Stream.Stream<Uint8Array, DatasetError> =>
  Stream.suspend(() =>
    NodeFs.existsSync(file)
      ? Stream.fromAsyncIterable(
          (async function* () {
            // The pieces of a line still open; joined once its LF arrives, so a long line is copied once.
            let pending: Array<Buffer> = []
            let firstLine = true
            const lineOf = (pieces: ReadonlyArray<Buffer>): Buffer => {
              let line = pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces)
              if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, -1)
              if (firstLine) {
                firstLine = false
                if (line[0] === 0xef && line[1] === 0xbb && line[2] === 0xbf) line = line.subarray(3)
              }
              return line
            }
            for await (const piece of NodeFs.createReadStream(file)) {
              const chunk = piece as Buffer
              let start = 0
              for (let end = chunk.indexOf(10); end !== -1; end = chunk.indexOf(10, start)) {
                pending.push(chunk.subarray(start, end))
                yield lineOf(pending)
                pending = []
                start = end + 1
              }
              if (start < chunk.length) pending.push(chunk.subarray(start))
            }
            if (pending.length > 0) yield lineOf(pending)
          })(),
          (cause) => new DatasetError({ dataset: file, reason: String(cause) })
        ).pipe(Stream.filter((line) => !isBlankLine(line)))
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
    const produce = (topic: string, file: string) =>
      linesOf(file).pipe(
        Stream.map((line): LogMessage => ({ key: keyOf(line), value: Uint8Array.from(line) })),
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
