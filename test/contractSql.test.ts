import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { DuckDBInstance } from "@duckdb/node-api"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { EventLogService } from "../src/layers/EventLog.js"
import { ProcessedBucket, RawBucket } from "../src/layers/ObjectStore.js"
import { Parquet } from "../src/layers/ParquetCodec.js"
import { runBatchIndex } from "../src/streams/batchIndex.js"
import { runFinalAggregate } from "../src/streams/finalAggregate.js"
import { generateDataset } from "../src/streams/generate.js"
import { runBatchIngest, runStreamIngest } from "../src/streams/ingest.js"
import { runStreamingIndex } from "../src/streams/streamingIndex.js"
import {
  type ContractSqlDirectories,
  contractFinalAggregateSql,
  contractSessionSetup,
  contractSqlSources,
  describeDifferences,
  type FinalAggregateDifference,
  finalAggregateDifferencesSql,
  publishedFinalAggregateSql
} from "./support/contractSql.js"
import { jsonLines, merchantJson, signalJson, transactionJson, userJson } from "./support/fixtures.js"

const temporaryDirectory = (name: string) =>
  NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), `recon-${name}-`))

const localLayers = (directories: ContractSqlDirectories) =>
  Layer.mergeAll(
    RawBucket.layerLocal(directories.rawDir),
    ProcessedBucket.layerLocal(directories.processedDir),
    Parquet.layer({ rowGroupSize: 5000 }),
    EventLogService.layerMemory(3)
  )

type Row = Record<string, unknown>

/** Runs statements on a fresh in-memory DuckDB (closed afterwards) and returns the last one's rows. */
const queryDuckDb = (statements: ReadonlyArray<string>) =>
  Effect.acquireUseRelease(
    Effect.promise(() => DuckDBInstance.create(":memory:")),
    (instance) =>
      Effect.promise(async (): Promise<Array<Row>> => {
        const connection = await instance.connect()
        try {
          let rows: Array<Row> = []
          for (const statement of statements) {
            rows = (await connection.runAndReadAll(statement)).getRowObjectsJson() as Array<Row>
          }
          return rows
        } finally {
          connection.closeSync()
        }
      }),
    (instance) => Effect.sync(() => instance.closeSync())
  )

/** The §6 reference rows computed in SQL, keyed by transaction_id, timestamps as epoch micros. */
const referenceRows = (directories: ContractSqlDirectories) =>
  Effect.map(
    queryDuckDb([
      ...contractSessionSetup,
      `SELECT * REPLACE (
         epoch_us(first_event_time) AS first_event_time, epoch_us(last_event_time) AS last_event_time,
         epoch_us(authorized_at) AS authorized_at, epoch_us(captured_at) AS captured_at,
         epoch_us(settled_at) AS settled_at, epoch_us(refunded_at) AS refunded_at,
         epoch_us(chargeback_at) AS chargeback_at, epoch_us(user_created_at) AS user_created_at,
         CAST(dt AS VARCHAR) AS dt)
       FROM (${contractFinalAggregateSql(contractSqlSources(directories))})`
    ]),
    (rows) => new Map(rows.map((row) => [String(row["transaction_id"]), row]))
  )

/** Where the SQL reference and the published final_aggregate disagree, row by row and column by column. */
const differencesBetweenReferenceAndPublished = (directories: ContractSqlDirectories) =>
  Effect.map(
    queryDuckDb([
      ...contractSessionSetup,
      finalAggregateDifferencesSql(
        contractFinalAggregateSql(contractSqlSources(directories)),
        publishedFinalAggregateSql(directories.processedDir)
      )
    ]),
    (rows) => rows as unknown as ReadonlyArray<FinalAggregateDifference>
  )

const publishedCount = (directories: ContractSqlDirectories) =>
  Effect.map(
    queryDuckDb([`SELECT count(*) AS n FROM (${publishedFinalAggregateSql(directories.processedDir)})`]),
    (rows) => Number(rows[0]?.["n"])
  )

const assertAgreement = (directories: ContractSqlDirectories) =>
  Effect.gen(function* () {
    const differences = yield* differencesBetweenReferenceAndPublished(directories)
    assert.strictEqual(differences.length, 0, describeDifferences(differences))
  })

const micros = (iso: string) => Date.parse(iso) * 1000

describe("contract §6 recomputed in DuckDB SQL from the index datasets", () => {
  it.effect(
    "agrees with the published final_aggregate on a generated dataset, every row and column",
    () =>
      Effect.gen(function* () {
        const root = temporaryDirectory("contract-sql")
        const generatedDir = NodePath.join(root, "generated")
        const directories: ContractSqlDirectories = {
          rawDir: NodePath.join(root, "raw-bucket"),
          processedDir: NodePath.join(root, "processed-bucket")
        }
        const generated = yield* generateDataset({ outDir: generatedDir, transactions: 3000, seed: 5 })
        yield* Effect.gen(function* () {
          yield* runBatchIngest(generatedDir)
          yield* runStreamIngest(generatedDir)
          const streaming = yield* runStreamingIndex({ stopAtEnd: true })
          assert.isAbove(streaming.late, 0, "the dataset exercises late/")
          assert.isAbove(streaming.duplicates, 0)
          yield* runBatchIndex
          yield* runFinalAggregate
        }).pipe(Effect.provide(localLayers(directories)))

        const reference = yield* referenceRows(directories)
        assert.strictEqual(reference.size, generated.transactions, "one reference row per transaction")
        const rows = [...reference.values()]
        assert.isTrue(rows.some((row) => Number(row["fraud_signal_count"]) > 0))
        assert.isTrue(rows.some((row) => row["confirmed_fraud"] === true))
        assert.isTrue(rows.some((row) => row["merchant_name"] === null && row["user_country"] !== null))
        assert.isTrue(rows.some((row) => row["user_country"] === null))
        assert.isTrue(rows.some((row) => row["refunded_at"] !== null))
        assert.isTrue(rows.some((row) => Number(row["event_count"]) > 1))

        assert.strictEqual(yield* publishedCount(directories), generated.transactions)
        yield* assertAgreement(directories)
      }),
    60_000
  )

  it.effect("agrees on hand-made tie-breaks, offsets, unknown dimensions and duplicate signals", () =>
    Effect.gen(function* () {
      const root = temporaryDirectory("contract-sql-ties")
      const directories: ContractSqlDirectories = {
        rawDir: NodePath.join(root, "raw-bucket"),
        processedDir: NodePath.join(root, "processed-bucket")
      }
      const write = (key: string, body: Uint8Array) => {
        const path = NodePath.join(directories.rawDir, ...key.split("/"))
        NodeFs.mkdirSync(NodePath.dirname(path), { recursive: true })
        NodeFs.writeFileSync(path, body)
      }
      const event = (overrides: Record<string, unknown>) => {
        const { card_bin: _bin, country: _country, ...withoutOptional } = transactionJson(overrides)
        return overrides["processor_reference"] === "psp-emoji" ? withoutOptional : transactionJson(overrides)
      }
      write(
        "raw/transactions/dt=2026-11-24/part-0.jsonl",
        jsonLines(
          // t-time: equal sequence, the later event_time wins although it is written first.
          event({
            transaction_id: "t-time",
            event_id: "a-late",
            sequence: 1,
            event_time: "2026-11-24T10:05:00Z",
            status: "captured",
            amount_minor: 111
          }),
          event({
            transaction_id: "t-time",
            event_id: "z-early",
            sequence: 1,
            event_time: "2026-11-24T10:04:59.999999Z",
            status: "voided",
            amount_minor: 222
          }),
          event({ transaction_id: "t-time", event_id: "t-auth", sequence: 0 }),
          // t-bytes: equal sequence and event_time; the greatest event_id in UTF-8 byte order wins.
          event({ transaction_id: "t-bytes", event_id: "e-z", sequence: 2, status: "captured" }),
          event({
            transaction_id: "t-bytes",
            event_id: "e-\u00e9",
            sequence: 2,
            status: "settled",
            processor_reference: "psp-e-acute"
          }),
          event({
            transaction_id: "t-bytes",
            event_id: "e-\uffee",
            sequence: 2,
            status: "refunded",
            processor_reference: "psp-halfwidth"
          }),
          event({
            transaction_id: "t-bytes",
            event_id: "e-\u{1f600}",
            sequence: 2,
            status: "partially_refunded",
            processor_reference: "psp-emoji"
          }),
          // t-offset: 01:00 at +05:30 is 19:30 UTC the day before.
          event({
            transaction_id: "t-offset",
            event_id: "o-1",
            event_time: "2026-11-24T01:00:00+05:30",
            merchant_id: "m-unknown"
          }),
          event({
            transaction_id: "t-offset",
            event_id: "o-2",
            sequence: 3,
            event_time: "2026-11-24T09:00:00.123456+05:30",
            status: "chargeback",
            merchant_id: "m-unknown",
            user_id: "u-2"
          })
        )
      )
      write(
        "raw/transactions/dt=2026-11-25/part-0.jsonl",
        jsonLines(
          // Replays of events already seen, one by a different file: counted once.
          event({
            transaction_id: "t-offset",
            event_id: "o-1",
            event_time: "2026-11-24T01:00:00+05:30",
            merchant_id: "m-unknown"
          }),
          event({ transaction_id: "t-time", event_id: "t-auth", sequence: 0 }),
          event({
            transaction_id: "t-refund",
            event_id: "r-1",
            sequence: 4,
            status: "refunded",
            event_time: "2026-11-25T12:00:00Z",
            user_id: "u-3"
          }),
          event({
            transaction_id: "t-refund",
            event_id: "r-0",
            sequence: 3,
            status: "partially_refunded",
            event_time: "2026-11-25T11:00:00-03:00"
          })
        )
      )
      write(
        "raw/fraud_signals/dt=2026-11-24/part-0.jsonl",
        jsonLines(
          signalJson({
            signal_id: "s-dup",
            transaction_id: "t-time",
            score: 0.25,
            reasons: ["velocity", "Zeta"]
          }),
          signalJson({
            signal_id: "s-dup",
            transaction_id: "t-time",
            score: 0.25,
            reasons: ["velocity", "Zeta"]
          }),
          signalJson({
            signal_id: "s-2",
            transaction_id: "t-time",
            score: 0.7,
            reasons: ["\u00e4rger", "new_device", "velocity"],
            confirmed_fraud: true
          }),
          signalJson({
            signal_id: "s-3",
            transaction_id: "t-bytes",
            score: 0.1,
            reasons: [],
            confirmed_fraud: false
          }),
          signalJson({
            signal_id: "s-4",
            transaction_id: "t-time",
            score: 0.05,
            reasons: ["velocity"],
            confirmed_fraud: false
          }),
          signalJson({ signal_id: "s-orphan", transaction_id: "t-nowhere", score: 1, confirmed_fraud: true })
        )
      )
      write(
        "raw/fraud_signals/dt=2026-11-25/part-0.jsonl",
        jsonLines(
          signalJson({
            signal_id: "s-dup",
            transaction_id: "t-time",
            score: 0.25,
            reasons: ["velocity", "Zeta"]
          })
        )
      )
      write(
        "raw/dimensions/users/users.jsonl",
        jsonLines(userJson({ kyc_level: "none" }), userJson({ user_id: "u-2" }))
      )
      write(
        "raw/dimensions/users/snapshot=20261101T000000Z/users.jsonl",
        jsonLines(userJson({ kyc_level: "basic" }))
      )
      write(
        "raw/dimensions/users/snapshot=20261120T000000Z/users.jsonl",
        jsonLines(
          userJson({ created_at: "2025-01-01T01:30:00.5+02:00", risk_tier: "high" }),
          userJson({ user_id: "u-3", created_at: "2025-03-01t10:00:00.123456789z", country: "DE" })
        )
      )
      write("raw/dimensions/merchants/snapshot=20261120T000000Z/merchants.jsonl", jsonLines(merchantJson()))

      yield* Effect.gen(function* () {
        yield* runBatchIndex
        write(
          "raw/dimensions/merchants/snapshot=20261125T000000Z/merchants.jsonl",
          jsonLines(merchantJson({ name: "Gr\u00f6\u00dfe \u0645\u062a\u062c\u0631", risk_level: "high" }))
        )
        yield* runFinalAggregate
      }).pipe(Effect.provide(localLayers(directories)))

      const reference = yield* referenceRows(directories)
      assert.deepStrictEqual([...reference.keys()].sort(), ["t-bytes", "t-offset", "t-refund", "t-time"])
      const row = (id: string) => reference.get(id) ?? {}

      assert.strictEqual(row("t-time")["status"], "captured")
      assert.strictEqual(row("t-time")["amount_minor"], "111")
      assert.strictEqual(row("t-time")["event_count"], "3")
      assert.strictEqual(row("t-time")["fraud_signal_count"], "3")
      assert.strictEqual(row("t-time")["fraud_max_score"], 0.7)
      assert.deepStrictEqual(row("t-time")["fraud_reasons"], ["Zeta", "new_device", "velocity", "\u00e4rger"])
      assert.strictEqual(row("t-time")["confirmed_fraud"], true)
      assert.strictEqual(row("t-time")["user_risk_tier"], "high")
      assert.strictEqual(row("t-time")["user_created_at"], String(micros("2024-12-31T23:30:00.500Z")))
      assert.strictEqual(
        row("t-time")["merchant_name"],
        "Gr\u00f6\u00dfe \u0645\u062a\u062c\u0631",
        "the snapshot added after the batch index is the newest when the aggregate runs"
      )
      assert.strictEqual(row("t-time")["merchant_risk_level"], "high")

      assert.strictEqual(row("t-bytes")["status"], "partially_refunded")
      assert.strictEqual(row("t-bytes")["event_count"], "4")
      assert.strictEqual(row("t-bytes")["processor_reference"], "psp-emoji")
      assert.strictEqual(row("t-bytes")["card_bin"], null)
      assert.strictEqual(row("t-bytes")["country"], null)
      assert.strictEqual(row("t-bytes")["refunded_at"], String(micros("2026-11-24T10:00:00Z")))
      assert.deepStrictEqual(row("t-bytes")["fraud_reasons"], [])
      assert.strictEqual(row("t-bytes")["confirmed_fraud"], false)

      assert.strictEqual(row("t-offset")["dt"], "2026-11-23")
      assert.strictEqual(row("t-offset")["first_event_time"], String(micros("2026-11-23T19:30:00Z")))
      assert.strictEqual(row("t-offset")["last_event_time"], String(micros("2026-11-24T03:30:00.123Z") + 456))
      assert.strictEqual(row("t-offset")["chargeback_at"], row("t-offset")["last_event_time"])
      assert.strictEqual(row("t-offset")["status"], "chargeback")
      assert.strictEqual(row("t-offset")["event_count"], "2")
      assert.strictEqual(row("t-offset")["merchant_name"], null)
      assert.strictEqual(row("t-offset")["user_id"], "u-2")
      assert.strictEqual(row("t-offset")["user_country"], null, "u-2 is only in the older base snapshot")
      assert.strictEqual(row("t-offset")["fraud_max_score"], null)
      assert.strictEqual(row("t-offset")["fraud_signal_count"], "0")

      assert.strictEqual(row("t-refund")["refunded_at"], String(micros("2026-11-25T12:00:00Z")))
      assert.strictEqual(row("t-refund")["first_event_time"], String(micros("2026-11-25T12:00:00Z")))
      assert.strictEqual(row("t-refund")["status"], "refunded")
      assert.strictEqual(row("t-refund")["user_country"], "DE")
      assert.strictEqual(row("t-refund")["user_created_at"], String(micros("2025-03-01T10:00:00.123Z") + 456))

      yield* assertAgreement(directories)

      write(
        "raw/transactions/dt=2026-11-20/part-0.jsonl",
        jsonLines(
          event({
            transaction_id: "t-time",
            event_id: "t-earliest",
            sequence: 0,
            event_time: "2026-11-20T23:59:59.999999-00:30"
          })
        )
      )
      yield* Effect.gen(function* () {
        yield* runBatchIndex
        yield* runFinalAggregate
      }).pipe(Effect.provide(localLayers(directories)))
      const moved = (yield* referenceRows(directories)).get("t-time") ?? {}
      assert.strictEqual(moved["dt"], "2026-11-21", "an earlier event moves the row to its UTC date")
      assert.strictEqual(moved["authorized_at"], String(micros("2026-11-21T00:29:59.999Z") + 999))
      yield* assertAgreement(directories)
    })
  )

  it.effect("reports a published row that breaks the contract", () =>
    Effect.gen(function* () {
      const differences = yield* Effect.map(
        queryDuckDb([
          ...contractSessionSetup,
          finalAggregateDifferencesSql(
            `SELECT * REPLACE (CASE WHEN transaction_id = 't-1' THEN 'settled' ELSE status END AS status) FROM (${publishedFixtureSql})`,
            publishedFixtureSql
          )
        ]),
        (rows) => rows as unknown as ReadonlyArray<FinalAggregateDifference>
      )
      assert.deepStrictEqual(
        differences.map((difference) => [
          difference.transaction_id,
          difference.presence,
          difference.differences
        ]),
        [["t-1", "both", ['status: "settled" ≠ "captured"']]]
      )
      assert.include(describeDifferences(differences), '"t-1" [both]')
    })
  )
})

const publishedFixtureSql = `SELECT * FROM (VALUES
  ('t-1', 'captured', 1, 100, 'USD', 'u-1', 'm-1', 'card', NULL, NULL, 'adyen', 'psp-1', NULL,
   TIMESTAMP '2026-11-24 10:00:00', TIMESTAMP '2026-11-24 11:00:00', TIMESTAMP '2026-11-24 10:00:00', TIMESTAMP '2026-11-24 11:00:00',
   NULL::TIMESTAMP, NULL::TIMESTAMP, NULL::TIMESTAMP, 2, 0, NULL::DOUBLE, []::VARCHAR[], false,
   NULL, NULL, NULL, NULL::TIMESTAMP, NULL, NULL, NULL, NULL, DATE '2026-11-24'),
  ('t-2', 'authorized', 0, 5, 'JPY', 'u-1', 'm-1', 'card', NULL, NULL, 'adyen', 'psp-2', NULL,
   TIMESTAMP '2026-11-24 10:00:00', TIMESTAMP '2026-11-24 10:00:00', TIMESTAMP '2026-11-24 10:00:00', NULL::TIMESTAMP,
   NULL::TIMESTAMP, NULL::TIMESTAMP, NULL::TIMESTAMP, 1, 1, 0.5, ['b', 'a'], true,
   NULL, NULL, NULL, NULL::TIMESTAMP, NULL, NULL, NULL, NULL, DATE '2026-11-24')
) AS published(transaction_id, status, sequence, amount_minor, currency, user_id, merchant_id, payment_method,
  card_bin, card_last4, processor, processor_reference, country, first_event_time, last_event_time, authorized_at,
  captured_at, settled_at, refunded_at, chargeback_at, event_count, fraud_signal_count, fraud_max_score,
  fraud_reasons, confirmed_fraud, user_country, user_kyc_level, user_risk_tier, user_created_at, merchant_name,
  merchant_mcc, merchant_country, merchant_risk_level, dt)`
