import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { DuckDBInstance } from "@duckdb/node-api"
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { DuckDb } from "../src/layers/DuckDb.js"
import { ProcessedBucket } from "../src/layers/ObjectStore.js"
import { athenaDdl, athenaTableDdl, athenaTables, athenaType } from "../src/streams/athena.js"
import { prefixes, readManifest, symlinkManifestKey } from "../src/streams/datasets.js"
import { registerIndexViews, runSql } from "../src/streams/sql.js"
import { readCommittedBatches, replayedRanges } from "../src/streams/streamingIndex.js"
import { runSmallPipeline } from "./support/smallPipeline.js"

const options = { database: "recon", location: "s3://recon-processed/", projectionStart: "2024-01-01" }

describe("Athena DDL", () => {
  it("declares every column of each dataset with its Athena type, dt by partition projection", () => {
    for (const table of athenaTables) {
      const ddl = athenaTableDdl(table, options)
      const declared = [...ddl.matchAll(/^ {2}`([^`]+)` (\S+?),?$/gm)].map((match) => [match[1], match[2]])
      assert.deepStrictEqual(
        declared,
        table.schema.map((column) => [column.name, athenaType(column.type)]),
        table.name
      )
      expect(ddl).toContain("PARTITIONED BY (`dt` string)")
      expect(ddl).toContain("'projection.dt.range' = '2024-01-01,NOW'")
      const root =
        table.source === "symlink"
          ? `s3://recon-processed/${table.prefix}_symlink_format_manifest/`
          : `s3://recon-processed/${table.prefix}`
      expect(ddl).toContain(`LOCATION '${root}'`)
      expect(ddl).toContain(`'storage.location.template' = '${root}dt=\${dt}/'`)
      expect(ddl.includes("SymlinkTextInputFormat")).toBe(table.source === "symlink")
    }
    expect(athenaDdl(options).startsWith("CREATE DATABASE IF NOT EXISTS `recon`;")).toBe(true)
  })

  it.live(
    "matches the Parquet files the pipelines write, and symlink manifests list exactly the committed files",
    () =>
      Effect.gen(function* () {
        const { processed, processedRoot } = yield* runSmallPipeline("athena", 300, 11)
        const duckdb = yield* Effect.promise(() => DuckDBInstance.create(":memory:"))
        const connection = yield* Effect.promise(() => duckdb.connect())
        const duckToAthena: Record<string, string> = {
          VARCHAR: "string",
          BIGINT: "bigint",
          DOUBLE: "double",
          BOOLEAN: "boolean",
          "TIMESTAMP WITH TIME ZONE": "timestamp",
          "VARCHAR[]": "array<string>"
        }
        for (const table of athenaTables) {
          const files = (yield* processed.list(table.prefix))
            .map((info) => info.key)
            .filter((key) => key.endsWith(".parquet"))
          assert.isAbove(files.length, 0, `${table.name} has files`)
          const reader = yield* Effect.promise(() =>
            connection.runAndReadAll(
              `DESCRIBE SELECT * FROM read_parquet('${NodePath.join(processedRoot, files[0] ?? "")}', hive_partitioning = false)`
            )
          )
          const described = reader
            .getRowObjects()
            .map((row) => [
              String(row["column_name"]),
              duckToAthena[String(row["column_type"])] ?? String(row["column_type"])
            ])
          assert.deepStrictEqual(
            described,
            table.schema.map((column) => [column.name, athenaType(column.type)]),
            `${table.name} (${files[0]})`
          )
        }
        connection.closeSync()
        const views = yield* Effect.scoped(
          Effect.gen(function* () {
            const registered = yield* registerIndexViews()
            const counts = yield* Effect.forEach(registered, (view) =>
              Effect.map(
                runSql(`SELECT count(*) AS n FROM ${view.viewName}`),
                (rows) => [view.viewName, Number(rows[0]?.["n"])] as const
              )
            )
            return { registered, counts: new Map(counts) }
          })
        ).pipe(Effect.provide(Layer.mergeAll(DuckDb.layer, Layer.succeed(ProcessedBucket, processed))))
        for (const table of athenaTables.filter(
          (candidate) => candidate.prefix !== prefixes.finalAggregate
        )) {
          const written = (yield* processed.list(table.prefix)).filter((info) =>
            info.key.endsWith(".parquet")
          ).length
          const view = views.registered.find((registered) => registered.viewName === table.name)
          assert.strictEqual(view?.files.length, written, `${table.name}: every committed file, no other`)
          assert.isAbove(views.counts.get(table.name) ?? 0, 0, `${table.name} has rows`)
        }
        for (const prefix of [prefixes.finalAggregate]) {
          const manifest = Option.getOrThrow(yield* readManifest(processed, prefix))
          const dts = [...new Set(manifest.files.map((file) => file.dt))].sort()
          const symlinks = (yield* processed.list(`${prefix}_symlink_format_manifest/`)).map(
            (info) => info.key
          )
          assert.deepStrictEqual(symlinks, dts.map((dt) => symlinkManifestKey(prefix, dt)).sort())
          for (const dt of dts) {
            const listed = NodeFs.readFileSync(
              NodePath.join(processedRoot, symlinkManifestKey(prefix, dt)),
              "utf8"
            )
              .split("\n")
              .filter(Boolean)
            assert.deepStrictEqual(
              listed.map((uri) =>
                NodePath.relative(processedRoot, fileURLToPath(uri)).split(NodePath.sep).join("/")
              ),
              manifest.files.filter((file) => file.dt === dt).map((file) => file.key)
            )
          }
        }
      }),
    120_000
  )

  it.live(
    "streaming views drop rows a second batch committed again for offsets an earlier batch reached (rebalance race)",
    () =>
      Effect.gen(function* () {
        const { processed } = yield* runSmallPipeline("replay", 200, 3)
        const countRows = Effect.scoped(
          Effect.gen(function* () {
            yield* registerIndexViews()
            const [row] = yield* runSql(
              "SELECT count(*) AS n, count(DISTINCT source_location) AS locations FROM streaming_index_transactions"
            )
            return [Number(row?.["n"]), Number(row?.["locations"])] as const
          })
        ).pipe(Effect.provide(Layer.mergeAll(DuckDb.layer, Layer.succeed(ProcessedBucket, processed))))
        const [before, locations] = yield* countRows
        assert.strictEqual(before, locations)
        const batches = yield* readCommittedBatches(processed)
        const original = batches.find((batch) => batch.files.some((file) => file.dataset === "transactions"))
        assert.isDefined(original)
        if (original === undefined) return
        assert.isAbove(original.first_offsets?.length ?? 0, 0, "manifests record first offsets")
        const copies = yield* Effect.forEach(original.files, (file) =>
          Effect.gen(function* () {
            const key = file.key.replace(/([^/]+)$/, "replay-$1")
            yield* processed.put(key, Option.getOrThrow(yield* processed.get(file.key)))
            return { ...file, key }
          })
        )
        const replay = {
          ...original,
          batch_id: `replay-${original.batch_id}`,
          committed_at: "9999-12-31T00:00:00.000Z",
          files: copies
        }
        yield* processed.put(
          `streaming_index/_batches/${replay.batch_id}.json`,
          new TextEncoder().encode(JSON.stringify(replay))
        )
        assert.deepStrictEqual(
          replayedRanges(yield* readCommittedBatches(processed)).map((range) => range.batchId),
          (original.first_offsets ?? []).map(() => replay.batch_id)
        )
        const [after, locationsAfter] = yield* countRows
        assert.deepStrictEqual(
          [after, locationsAfter],
          [before, locations],
          "the replayed copies are not shown"
        )
      }),
    120_000
  )
})
