import { execFile } from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { promisify } from "node:util"
import { gunzipSync } from "node:zlib"
import { DuckDBInstance } from "@duckdb/node-api"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import { FraudSignal, Merchant, TransactionEvent, User } from "../src/domain/events.js"
import { buildFinalAggregate, type DimensionTables } from "../src/domain/finalAggregate.js"
import { decodeJsonRecord } from "../src/domain/validation.js"
import { DuckDb } from "../src/layers/DuckDb.js"
import { EventLogService } from "../src/layers/EventLog.js"
import * as KeyValueStore from "../src/layers/KeyValueStore.js"
import { makeLocalObjectStore, ProcessedBucket, RawBucket } from "../src/layers/ObjectStore.js"
import { makeDuckDbCodec, Parquet } from "../src/layers/ParquetCodec.js"
import { Tensorflow } from "../src/layers/Tensorflow.js"
import { readFinalAggregate } from "../src/streams/datasets.js"
import { runEndToEnd } from "../src/streams/endToEnd.js"

const temporaryDirectory = (name: string) =>
  NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), `recon-${name}-`))

const linesOf = (file: string): Array<string> => {
  const body = NodeFs.readFileSync(file)
  const text = file.endsWith(".gz") ? gunzipSync(body).toString("utf8") : body.toString("utf8")
  return text.split("\n").filter((line) => line.trim().length > 0)
}

const filesUnder = (directory: string): Array<string> =>
  NodeFs.existsSync(directory)
    ? NodeFs.readdirSync(directory, { recursive: true, withFileTypes: true })
        .filter((entry) => entry.isFile())
        .map((entry) => NodePath.join(entry.parentPath, entry.name))
        .sort()
    : []

const newestSnapshotFiles = (directory: string): Array<string> => {
  const snapshots = NodeFs.readdirSync(directory)
    .filter((name) => name.startsWith("snapshot="))
    .sort()
  const newest = snapshots.at(-1)
  return newest === undefined ? [] : filesUnder(NodePath.join(directory, newest))
}

/** Contract §6 straight from the producer files, without any of the pipelines. */
const expectedFromProducerFiles = (generated: string) => {
  const transactionFiles = [
    ...filesUnder(NodePath.join(generated, "raw", "transactions")),
    NodePath.join(generated, "stream", "transactions.jsonl")
  ]
  const signalFiles = [
    ...filesUnder(NodePath.join(generated, "raw", "fraud_signals")),
    NodePath.join(generated, "stream", "fraud_signals.jsonl")
  ]
  const decodeAll = <A, I>(
    files: ReadonlyArray<string>,
    schema: Parameters<typeof decodeJsonRecord<A, I>>[0]
  ) =>
    files.flatMap(linesOf).flatMap((line) => {
      const decoded = decodeJsonRecord(schema, line)
      return Either.isRight(decoded) ? [decoded.right] : []
    })
  const users = decodeAll(newestSnapshotFiles(NodePath.join(generated, "raw", "dimensions", "users")), User)
  const merchants = decodeAll(
    newestSnapshotFiles(NodePath.join(generated, "raw", "dimensions", "merchants")),
    Merchant
  )
  const dimensions: DimensionTables = {
    users: new Map(users.map((user) => [user.user_id, user])),
    merchants: new Map(merchants.map((merchant) => [merchant.merchant_id, merchant]))
  }
  const events = decodeAll(transactionFiles, TransactionEvent).map((event) => ({
    ...event,
    card_bin: event.card_bin ?? null,
    card_last4: event.card_last4 ?? null,
    country: event.country ?? null,
    device_id: event.device_id ?? null
  }))
  const signals = decodeAll(signalFiles, FraudSignal).map((signal) => ({
    ...signal,
    confirmed_fraud: signal.confirmed_fraud ?? null
  }))
  return buildFinalAggregate(events, signals, dimensions)
}

describe("the whole flow on embedded layers", () => {
  it.effect(
    "publishes exactly the contract §6 rows of every valid producer record, with nothing lost",
    () =>
      Effect.gen(function* () {
        const root = temporaryDirectory("e2e")
        const generatedDir = NodePath.join(root, "generated")
        const report = yield* runEndToEnd({
          generatedDir,
          transactions: 1500,
          seed: 11,
          trainEpochs: 2
        }).pipe(
          Effect.provide(
            Layer.mergeAll(
              RawBucket.layerLocal(NodePath.join(root, "raw-bucket")),
              ProcessedBucket.layerLocal(NodePath.join(root, "processed-bucket")),
              Parquet.layer({ rowGroupSize: 5000 }),
              EventLogService.layerMemory(3),
              KeyValueStore.layerMemory,
              DuckDb.layer,
              Tensorflow.layerWasm
            )
          )
        )
        const summary = JSON.parse(NodeFs.readFileSync(NodePath.join(generatedDir, "summary.json"), "utf8"))

        const { streaming, batch } = report
        assert.strictEqual(streaming.consumed, streaming.accepted + streaming.quarantined)
        assert.strictEqual(streaming.accepted, streaming.indexed + streaming.late + streaming.duplicates)
        assert.strictEqual(
          batch.transactions.recordsIn,
          batch.transactions.accepted + batch.transactions.quarantined
        )
        assert.strictEqual(
          streaming.quarantined + batch.transactions.quarantined + batch.fraudSignals.quarantined,
          summary.invalid,
          "every injected bad line is quarantined, and nothing else"
        )
        assert.strictEqual(
          streaming.consumed,
          summary.stream.transactions.lines + summary.stream.fraud_signals.lines
        )

        const expected = expectedFromProducerFiles(generatedDir)
        const published = yield* readFinalAggregate(
          makeLocalObjectStore(NodePath.join(root, "processed-bucket")),
          makeDuckDbCodec({ rowGroupSize: 1000, compression: "zstd" })
        )
        assert.strictEqual(published.length, summary.transactions)
        assert.strictEqual(new Set(published.map((row) => row.transaction_id)).size, published.length)
        const byId = new Map(published.map((row) => [row.transaction_id, row]))
        assert.strictEqual(expected.length, published.length)
        for (const row of expected) assert.deepStrictEqual(byId.get(row.transaction_id), row)
        assert.strictEqual(report.sql.check["row_count"], String(summary.transactions))
        assert.isAbove(report.model.rows.train, 0)
      }),
    120_000
  )
})

describe("recon CLI (built)", () => {
  const cli = NodePath.resolve("dist/programs/cli.js")
  const run = promisify(execFile)

  it("runs batch + final on a directory holding raw/ and the result reads in DuckDB with every §6 column", async () => {
    assert.isTrue(NodeFs.existsSync(cli), "build first: npm run build (npm run test:all does)")
    const root = temporaryDirectory("cli")
    await run("node", [
      cli,
      "generate",
      "--out",
      NodePath.join(root, "in"),
      "--transactions",
      "300",
      "--seed",
      "3"
    ])
    const { stdout } = await run("node", [
      cli,
      "batch",
      "--input",
      NodePath.join(root, "in"),
      "--output",
      NodePath.join(root, "out")
    ])
    const result = JSON.parse(stdout)
    assert.strictEqual(
      result.batchIndex.transactions.recordsIn,
      result.batchIndex.transactions.accepted + result.batchIndex.transactions.quarantined
    )
    const connection = await (await DuckDBInstance.create(":memory:")).connect()
    const glob = NodePath.join(root, "out", "final_aggregate", "*", "*.parquet")
    const described = await connection.runAndReadAll(
      `DESCRIBE SELECT * FROM read_parquet('${glob}', hive_partitioning = true)`
    )
    const columns = Object.fromEntries(described.getRows().map((row) => [String(row[0]), String(row[1])]))
    const expectedTypes: Record<string, string> = {
      transaction_id: "VARCHAR",
      status: "VARCHAR",
      sequence: "BIGINT",
      amount_minor: "BIGINT",
      currency: "VARCHAR",
      user_id: "VARCHAR",
      merchant_id: "VARCHAR",
      payment_method: "VARCHAR",
      card_bin: "VARCHAR",
      card_last4: "VARCHAR",
      processor: "VARCHAR",
      processor_reference: "VARCHAR",
      country: "VARCHAR",
      first_event_time: "TIMESTAMP WITH TIME ZONE",
      last_event_time: "TIMESTAMP WITH TIME ZONE",
      authorized_at: "TIMESTAMP WITH TIME ZONE",
      captured_at: "TIMESTAMP WITH TIME ZONE",
      settled_at: "TIMESTAMP WITH TIME ZONE",
      refunded_at: "TIMESTAMP WITH TIME ZONE",
      chargeback_at: "TIMESTAMP WITH TIME ZONE",
      event_count: "BIGINT",
      fraud_signal_count: "BIGINT",
      fraud_max_score: "DOUBLE",
      fraud_reasons: "VARCHAR[]",
      confirmed_fraud: "BOOLEAN",
      user_country: "VARCHAR",
      user_kyc_level: "VARCHAR",
      user_risk_tier: "VARCHAR",
      user_created_at: "TIMESTAMP WITH TIME ZONE",
      merchant_name: "VARCHAR",
      merchant_mcc: "VARCHAR",
      merchant_country: "VARCHAR",
      merchant_risk_level: "VARCHAR",
      first_amount_minor: "BIGINT",
      first_currency: "VARCHAR",
      device_id: "VARCHAR",
      fraud_prior_signal_max_score: "DOUBLE",
      dt: "DATE"
    }
    assert.deepStrictEqual(columns, expectedTypes)
    const counts = await connection.runAndReadAll(
      `SELECT count(*) AS n, count(DISTINCT transaction_id) AS ids, count(*) FILTER (WHERE dt <> CAST(first_event_time AS DATE)) AS misplaced FROM read_parquet('${glob}', hive_partitioning = true)`
    )
    const [n, ids, misplaced] = counts.getRows()[0]!.map(Number)
    assert.strictEqual(n, result.finalAggregate.rows)
    assert.isAbove(n!, 150, "most transactions have events in raw/ (the rest are stream-only)")
    assert.strictEqual(ids, n)
    assert.strictEqual(misplaced, 0)
  }, 120_000)

  it("--workers 2 runs two index shards, then the final aggregate (one SQL process, or two JavaScript shards), and publishes the rows of one worker", async () => {
    assert.isTrue(NodeFs.existsSync(cli), "build first: npm run build (npm run test:all does)")
    const root = temporaryDirectory("cli-workers")
    const input = NodePath.join(root, "in")
    await run("node", [cli, "generate", "--out", input, "--transactions", "400", "--seed", "5"])
    // The summary a `batch` run into `root/<output>` prints.
    const batch = async (output: string, ...options: ReadonlyArray<string>) =>
      JSON.parse(
        (
          await run("node", [
            cli,
            "batch",
            "--input",
            input,
            "--output",
            NodePath.join(root, output),
            ...options
          ])
        ).stdout
      )
    const one = await batch("one")
    const two = await batch("two", "--workers", "2")
    const twoInJs = await batch("two-js", "--workers", "2", "--engine", "js")
    // Which shard publishes depends on which finishes last; the order of the summaries does not.
    const shardsOf = (stage: ReadonlyArray<{ shard: unknown; engine?: string }>) =>
      stage.map((summary) => [summary.shard, summary.engine])
    assert.deepStrictEqual(shardsOf(two.batchIndex), [
      [{ index: 0, count: 2 }, undefined],
      [{ index: 1, count: 2 }, undefined]
    ])
    assert.deepStrictEqual(shardsOf(two.finalAggregate), [[{ index: 0, count: 1 }, "sql"]])
    assert.deepStrictEqual(shardsOf(twoInJs.finalAggregate), [
      [{ index: 0, count: 2 }, "js"],
      [{ index: 1, count: 2 }, "js"]
    ])
    const sum = (key: "recordsIn" | "accepted" | "quarantined") =>
      two.batchIndex.reduce(
        (total: number, shard: { transactions: Record<string, number> }) =>
          total + (shard.transactions[key] ?? 0),
        0
      )
    assert.strictEqual(sum("recordsIn"), one.batchIndex.transactions.recordsIn)
    assert.strictEqual(sum("quarantined"), one.batchIndex.transactions.quarantined)
    // Usually one shard publishes; two finishing at the same instant both may, with the same manifest.
    for (const stage of [two.batchIndex, two.finalAggregate, twoInJs.finalAggregate])
      assert.isAbove(stage.filter((shard: { published: boolean }) => shard.published).length, 0)
    const connection = await (await DuckDBInstance.create(":memory:")).connect()
    // Through the published manifests only: a file on disk that a manifest does not list must not count.
    const rowsOf = async (output: string, dataset: string, order: string) => {
      const manifest = JSON.parse(
        NodeFs.readFileSync(NodePath.join(root, output, dataset, "_manifest.json"), "utf8")
      ) as { files: ReadonlyArray<{ key: string }> }
      const files = manifest.files.map((file) => `'${NodePath.join(root, output, file.key)}'`).join(", ")
      return (
        await connection.runAndReadAll(
          `SELECT * EXCLUDE (dt), CAST(dt AS VARCHAR) AS dt FROM read_parquet([${files}], hive_partitioning = true) ORDER BY ${order}`
        )
      ).getRowObjectsJson()
    }
    const expected = await rowsOf("one", "final_aggregate", "transaction_id")
    assert.isAbove(expected.length, 200)
    assert.deepStrictEqual(await rowsOf("two", "final_aggregate", "transaction_id"), expected)
    assert.deepStrictEqual(await rowsOf("two-js", "final_aggregate", "transaction_id"), expected)
    for (const [dataset, id] of [
      ["batch_index/transactions", "event_id"],
      ["batch_index/fraud_signals", "signal_id"]
    ] as const) {
      const order = `${id}, source_location`
      assert.deepStrictEqual(await rowsOf("two", dataset, order), await rowsOf("one", dataset, order))
    }
    const refused = await run("node", [
      cli,
      "batch",
      "--input",
      input,
      "--workers",
      "2",
      "--shard",
      "0/2"
    ]).catch((error: { code: number; stderr: string }) => error)
    assert.strictEqual((refused as { code: number }).code, 2)
    assert.include((refused as { stderr: string }).stderr, "--workers must be at least 1")
  }, 180_000)
})
