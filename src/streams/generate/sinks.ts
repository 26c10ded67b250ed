import * as NodeFs from "node:fs"
import * as NodeFsPromises from "node:fs/promises"
import * as NodePath from "node:path"
import type { Writable } from "node:stream"
import { finished } from "node:stream/promises"
import * as NodeZlib from "node:zlib"
import { compareCodePoints } from "../../domain/order.js"
import type { EpochMicros } from "../../domain/time.js"

const chunkBytes = 64 * 1024

/**
 * Appends lines to one file (plain or gzip), in 64 KiB chunks, honouring backpressure: `write` returns a
 * promise only when the stream asked to wait for 'drain'.
 */
export class LineSink {
  private pending: Array<string> = []
  private pendingLength = 0
  private readonly file: NodeFs.WriteStream
  private readonly head: Writable
  private failure: Error | undefined
  /** Lines written so far. */
  lines = 0

  constructor(
    readonly path: string,
    gzip: boolean
  ) {
    this.file = NodeFs.createWriteStream(path)
    if (gzip) {
      const compressor = NodeZlib.createGzip({ level: 6 })
      compressor.pipe(this.file)
      this.head = compressor
    } else {
      this.head = this.file
    }
    const remember = (error: Error) => {
      this.failure ??= error
    }
    this.file.on("error", remember)
    if (this.head !== this.file) this.head.on("error", remember)
  }

  /** Queues one line (without its newline); returns a promise only when the caller must wait. */
  write(line: string): Promise<void> | undefined {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    this.pending.push(line, "\n")
    this.pendingLength += line.length + 1
    this.lines++
    return this.pendingLength >= chunkBytes ? this.flush() : undefined
  }

  private flush(): Promise<void> | undefined {
    if (this.pending.length === 0) return undefined
    const chunk = this.pending.join("")
    this.pending = []
    this.pendingLength = 0
    return this.head.write(chunk) ? undefined : waitForDrain(this.head)
  }

  /** Flushes, ends and waits until the bytes are on disk. */
  async close(): Promise<void> {
    const flushed = this.flush()
    if (flushed) await flushed
    this.head.end()
    await finished(this.file)
    if (this.failure !== undefined) throw this.failure
  }

  /** Drops the file handle without waiting (used when generation failed). */
  destroy(): void {
    this.head.destroy()
    this.file.destroy()
  }
}

const waitForDrain = (stream: Writable): Promise<void> =>
  new Promise((resolve, reject) => {
    const onDrain = () => {
      stream.off("error", onError)
      resolve()
    }
    const onError = (error: Error) => {
      stream.off("drain", onDrain)
      reject(error)
    }
    stream.once("drain", onDrain)
    stream.once("error", onError)
  })

/** A raw file that was written: where, how many lines, compressed or not. */
export interface RawFileInfo {
  readonly path: string
  readonly lines: number
  readonly gzip: boolean
}

/**
 * Raw files of one dataset, partitioned `dt=YYYY-MM-DD/part-NNNNN.jsonl[.gz]`, each rotated after
 * `linesPerFile` lines. One file per partition is open at a time.
 */
export class RawPartitionWriter {
  private readonly open = new Map<string, LineSink>()
  private readonly nextPart = new Map<string, number>()
  private readonly written: Array<RawFileInfo> = []

  constructor(
    private readonly root: string,
    private readonly linesPerFile: number,
    private readonly chooseGzip: () => boolean
  ) {}

  /** Appends a line to the current part of partition `dt`, rotating when it is full. */
  write(dt: string, line: string): Promise<void> | undefined {
    const sink = this.open.get(dt)
    if (sink !== undefined && sink.lines < this.linesPerFile) return sink.write(line)
    return this.rotateAndWrite(dt, line)
  }

  private async rotateAndWrite(dt: string, line: string): Promise<void> {
    const full = this.open.get(dt)
    if (full !== undefined) {
      this.open.delete(dt)
      await this.finish(full)
    }
    const sink = await this.openPart(dt, this.chooseGzip())
    this.open.set(dt, sink)
    const pending = sink.write(line)
    if (pending) await pending
  }

  private async openPart(dt: string, gzip: boolean): Promise<LineSink> {
    const part = this.nextPart.get(dt) ?? 0
    this.nextPart.set(dt, part + 1)
    const directory = NodePath.join(this.root, `dt=${dt}`)
    await NodeFsPromises.mkdir(directory, { recursive: true })
    const name = `part-${String(part).padStart(5, "0")}.jsonl${gzip ? ".gz" : ""}`
    return new LineSink(NodePath.join(directory, name), gzip)
  }

  private async finish(sink: LineSink): Promise<void> {
    await sink.close()
    this.written.push({ path: sink.path, lines: sink.lines, gzip: sink.path.endsWith(".gz") })
  }

  /** Adds an empty, uncompressed part to partition `dt`. */
  async writeEmptyPart(dt: string): Promise<void> {
    await this.finish(await this.openPart(dt, false))
  }

  /** Closes every open file; returns all files written, in path order. */
  async close(): Promise<ReadonlyArray<RawFileInfo>> {
    const sinks = [...this.open.entries()].sort(([a], [b]) => compareCodePoints(a, b))
    this.open.clear()
    for (const [, sink] of sinks) await this.finish(sink)
    return [...this.written].sort((a, b) => compareCodePoints(a.path, b.path))
  }

  /** Drops every open file without waiting (used when generation failed). */
  destroy(): void {
    for (const sink of this.open.values()) sink.destroy()
    this.open.clear()
  }
}

const bucketMicros = 15 * 60 * 1_000_000
const bucketFlushLength = 256 * 1024
const totalFlushLength = 16 * 1024 * 1024

interface SpoolBucket {
  lines: Array<string>
  length: number
}

/**
 * Puts stream lines in arrival order with bounded memory. Lines are spooled to disk in 15-minute
 * buckets of arrival time; `drainTo` then reads one bucket at a time, sorts it by arrival time (stable,
 * so ties keep spool order) and writes it out. Memory is the write buffers plus one bucket.
 */
export class ArrivalSpool {
  private readonly buckets = new Map<number, SpoolBucket>()
  private readonly flushedBuckets = new Set<number>()
  private bufferedLength = 0

  constructor(
    private readonly directory: string,
    private readonly originMicros: EpochMicros
  ) {}

  /** Spools one line that arrives at `arrivalMicros`. */
  add(arrivalMicros: EpochMicros, line: string): Promise<void> | undefined {
    const index = Math.max(0, Math.floor((arrivalMicros - this.originMicros) / bucketMicros))
    let bucket = this.buckets.get(index)
    if (bucket === undefined) {
      bucket = { lines: [], length: 0 }
      this.buckets.set(index, bucket)
    }
    const entry = `${arrivalMicros}\t${line}\n`
    bucket.lines.push(entry)
    bucket.length += entry.length
    this.bufferedLength += entry.length
    if (bucket.length >= bucketFlushLength) return this.flushBucket(index, bucket)
    if (this.bufferedLength >= totalFlushLength) return this.flushAll()
    return undefined
  }

  private bucketPath(index: number): string {
    return NodePath.join(this.directory, `bucket-${String(index).padStart(7, "0")}.tsv`)
  }

  private async flushBucket(index: number, bucket: SpoolBucket): Promise<void> {
    const text = bucket.lines.join("")
    this.bufferedLength -= bucket.length
    bucket.lines = []
    bucket.length = 0
    if (text.length === 0) return
    if (!this.flushedBuckets.has(index)) await NodeFsPromises.mkdir(this.directory, { recursive: true })
    this.flushedBuckets.add(index)
    await NodeFsPromises.appendFile(this.bucketPath(index), text)
  }

  private async flushAll(): Promise<void> {
    for (const [index, bucket] of this.buckets) await this.flushBucket(index, bucket)
  }

  /** Writes every spooled line to `sink` in arrival order, then removes the spool files. */
  async drainTo(sink: LineSink): Promise<void> {
    const indexes = [...new Set([...this.buckets.keys(), ...this.flushedBuckets])].sort((a, b) => a - b)
    for (const index of indexes) {
      const entries: Array<{ arrival: number; line: string }> = []
      if (this.flushedBuckets.has(index)) {
        const text = await NodeFsPromises.readFile(this.bucketPath(index), "utf8")
        for (const entry of text.split("\n")) if (entry.length > 0) entries.push(parseEntry(entry))
      }
      const bucket = this.buckets.get(index)
      if (bucket !== undefined) for (const entry of bucket.lines) entries.push(parseEntry(entry.slice(0, -1)))
      this.buckets.delete(index)
      entries.sort((a, b) => a.arrival - b.arrival)
      for (const { line } of entries) {
        const pending = sink.write(line)
        if (pending) await pending
      }
    }
    this.bufferedLength = 0
    await NodeFsPromises.rm(this.directory, { recursive: true, force: true })
  }
}

const parseEntry = (entry: string): { arrival: number; line: string } => {
  const tab = entry.indexOf("\t")
  return { arrival: Number(entry.slice(0, tab)), line: entry.slice(tab + 1) }
}
