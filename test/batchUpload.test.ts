import * as NodeFs from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { FetchHttpClient } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Option, TestClock } from "effect"
import { makeMemoryObjectStore, type ObjectStore, RawBucket } from "../src/layers/ObjectStore.js"
import { runBatchIngest, runUpload, uploadRecordKey } from "../src/streams/ingest.js"
import { gzipped, jsonLines, transactionJson } from "./support/fixtures.js"

const workDirectory = () => NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "upload-test-"))
const writeFile = (directory: string, relative: string, body: Uint8Array | string) => {
  const path = NodePath.join(directory, relative)
  NodeFs.mkdirSync(NodePath.dirname(path), { recursive: true })
  NodeFs.writeFileSync(path, body)
  return path
}
const withStore = (store: ObjectStore) => Layer.merge(Layer.succeed(RawBucket, store), FetchHttpClient.layer)
const text = (body: Option.Option<Uint8Array>) => Option.map(body, (bytes) => new TextDecoder().decode(bytes))
const keysOf = (store: ObjectStore) =>
  Effect.map(store.list("raw/"), (infos) => infos.map((info) => info.key))

describe("batch upload", () => {
  it.effect(
    "uploads a file to raw/<dataset>/dt=<today UTC>/ with a SHA-256 record; the same file again is a no-op",
    () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(Date.parse("2026-11-25T23:59:00Z"))
        const store = makeMemoryObjectStore()
        const directory = workDirectory()
        const file = writeFile(directory, "export.jsonl", jsonLines(transactionJson()))
        const first = yield* runUpload({ source: file, dataset: "transactions" }).pipe(
          Effect.provide(withStore(store))
        )
        assert.strictEqual(first.uploaded, 1)
        const [uploaded] = first.files
        assert.strictEqual(uploaded?.key, "raw/transactions/dt=2026-11-25/export.jsonl")
        assert.deepStrictEqual(
          text(yield* store.get("raw/transactions/dt=2026-11-25/export.jsonl")),
          Option.some(NodeFs.readFileSync(file, "utf8"))
        )
        const record = JSON.parse(
          Option.getOrThrow(text(yield* store.get(uploadRecordKey(uploaded?.key ?? ""))))
        )
        assert.strictEqual(record.key, uploaded?.key)
        assert.match(String(record.sha256), /^[0-9a-f]{64}$/)

        const again = yield* runUpload({ source: file, dataset: "transactions" }).pipe(
          Effect.provide(withStore(store))
        )
        assert.deepStrictEqual([again.uploaded, again.unchanged, again.bytes], [0, 1, 0])
        const renamed = writeFile(directory, "copy-of-export.jsonl", NodeFs.readFileSync(file))
        const copy = yield* runUpload({ source: renamed, dataset: "transactions", dt: "2026-11-20" }).pipe(
          Effect.provide(withStore(store))
        )
        assert.deepStrictEqual(
          [copy.uploaded, copy.files[0]?.key],
          [1, "raw/transactions/dt=2026-11-20/copy-of-export.jsonl"],
          "the same bytes to another key (say, the right dt after a wrong one) are uploaded there"
        )
        NodeFs.appendFileSync(file, JSON.stringify(transactionJson({ event_id: "e-2" })) + "\n")
        const changed = yield* runUpload({ source: file, dataset: "transactions" }).pipe(
          Effect.provide(withStore(store))
        )
        assert.strictEqual(changed.uploaded, 1)
        assert.isTrue(
          Option.getOrThrow(text(yield* store.get("raw/transactions/dt=2026-11-25/export.jsonl"))).includes(
            "e-2"
          )
        )
      })
  )

  it.effect("takes dt from the source path or the option, and puts dimensions in a snapshot folder", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.parse("2026-11-26T08:09:10.500Z"))
      const store = makeMemoryObjectStore()
      const directory = workDirectory()
      const dated = writeFile(
        directory,
        "exports/dt=2026-11-20/signals.jsonl.gz",
        gzipped(jsonLines({ a: 1 }))
      )
      yield* runUpload({ source: dated, dataset: "fraud_signals" }).pipe(Effect.provide(withStore(store)))
      const undated = writeFile(directory, "other.jsonl", "{}\n")
      yield* runUpload({ source: undated, dataset: "transactions", dt: "2026-01-02" }).pipe(
        Effect.provide(withStore(store))
      )
      const users = writeFile(directory, "users.jsonl", '{"user_id":"u-1"}\n')
      yield* runUpload({ source: users, dataset: "dimensions/users" }).pipe(Effect.provide(withStore(store)))
      assert.deepStrictEqual(
        (yield* keysOf(store)).filter((key) => !key.startsWith("raw/_uploads/")),
        [
          "raw/dimensions/users/snapshot=20261126T080910Z/users.jsonl",
          "raw/fraud_signals/dt=2026-11-20/signals.jsonl.gz",
          "raw/transactions/dt=2026-01-02/other.jsonl"
        ]
      )
      const badDt = yield* Effect.exit(
        runUpload({ source: undated, dataset: "transactions", dt: "26-11-2026" }).pipe(
          Effect.provide(withStore(store))
        )
      )
      assert.isTrue(Exit.isFailure(badDt) && String(badDt.cause).includes("dt must be YYYY-MM-DD"))
    })
  )

  it.effect(
    "refuses, with the reason, files that are not raw files or whose bytes contradict their name",
    () =>
      Effect.gen(function* () {
        const store = makeMemoryObjectStore()
        const directory = workDirectory()
        writeFile(directory, "batch/a.jsonl", "{}\n")
        writeFile(directory, "batch/notes.txt", "hello")
        writeFile(directory, "batch/fake.jsonl.gz", "not gzip")
        writeFile(directory, "batch/cut.parquet", "PAR1 and then the file stops")
        const summary = yield* runUpload({
          source: NodePath.join(directory, "batch"),
          dataset: "transactions",
          dt: "2026-11-24"
        }).pipe(Effect.provide(withStore(store)))
        assert.strictEqual(summary.uploaded, 1)
        assert.deepStrictEqual(
          summary.refused.map((refused) => [NodePath.basename(refused.source), refused.reason]),
          [
            ["cut.parquet", "named .parquet but not a complete Parquet file (PAR1 magic missing)"],
            ["fake.jsonl.gz", "named .gz but not gzip data"],
            ["notes.txt", "not a raw file: the name must end in .jsonl, .jsonl.gz or .parquet"]
          ]
        )
        assert.deepStrictEqual(
          (yield* keysOf(store)).filter((key) => !key.startsWith("raw/_uploads/")),
          ["raw/transactions/dt=2026-11-24/a.jsonl"]
        )
      })
  )

  it.live("downloads an HTTP export and uploads it; an HTTP error names the URL and status", () =>
    Effect.gen(function* () {
      const body = jsonLines(transactionJson(), transactionJson({ event_id: "e-2" }))
      const server = createServer((request, response) => {
        if (request.url === "/exports/partner-2026-11-24.jsonl" || request.url?.endsWith("escaped.jsonl"))
          response.writeHead(200).end(Buffer.from(body))
        else response.writeHead(404).end()
      })
      yield* Effect.acquireRelease(
        Effect.promise(() => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))),
        () => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
      )
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const store = makeMemoryObjectStore()
      const summary = yield* runUpload({
        source: `${base}/exports/partner-2026-11-24.jsonl`,
        dataset: "transactions",
        dt: "2026-11-24"
      }).pipe(Effect.provide(withStore(store)))
      assert.strictEqual(summary.files[0]?.key, "raw/transactions/dt=2026-11-24/partner-2026-11-24.jsonl")
      assert.deepStrictEqual(
        Option.map(
          yield* store.get("raw/transactions/dt=2026-11-24/partner-2026-11-24.jsonl"),
          (bytes) => bytes.length
        ),
        Option.some(body.length)
      )
      const missing = yield* Effect.exit(
        runUpload({ source: `${base}/exports/missing.jsonl`, dataset: "transactions" }).pipe(
          Effect.provide(withStore(store))
        )
      )
      assert.isTrue(Exit.isFailure(missing) && String(missing.cause).includes("download answered HTTP 404"))
      const escaping = yield* runUpload({
        source: `${base}/exports/..%2F..%2Fescaped.jsonl`,
        dataset: "transactions",
        dt: "2026-11-24"
      }).pipe(Effect.provide(withStore(store)))
      assert.strictEqual(
        escaping.files[0]?.key,
        "raw/transactions/dt=2026-11-24/escaped.jsonl",
        "an encoded ../ in the URL is reduced to the file name"
      )
      assert.isFalse((yield* keysOf(store)).some((key) => key.includes("..")))
    }).pipe(Effect.scoped)
  )

  it.effect("a producer tree keeps its keys, and a second run uploads nothing", () =>
    Effect.gen(function* () {
      const store = makeMemoryObjectStore()
      const directory = workDirectory()
      writeFile(directory, "raw/transactions/dt=2026-11-24/part-0.jsonl", jsonLines(transactionJson()))
      writeFile(directory, "raw/fraud_signals/dt=2026-11-24/part-0.jsonl", "{}\n")
      const first = yield* runBatchIngest(directory).pipe(Effect.provide(withStore(store)))
      const second = yield* runBatchIngest(directory).pipe(Effect.provide(withStore(store)))
      assert.deepStrictEqual([first.uploaded, second.uploaded, second.unchanged], [2, 0, 2])
      assert.isTrue(Option.isSome(yield* store.get("raw/transactions/dt=2026-11-24/part-0.jsonl")))
    })
  )
})
