import { createHash } from "node:crypto"
import { Effect, Option, Schema } from "effect"
import type { Shard } from "../domain/buckets.js"
import { DatasetError, type ObjectStoreError, type ParquetError } from "../domain/errors.js"
import type { FinalAggregateRow, TableRow, TableSchema } from "../domain/rows.js"
import type { ObjectStore } from "../layers/ObjectStore.js"
import type { ParquetCodec, RowSelection } from "../layers/ParquetCodec.js"

/** Processed-bucket prefixes (contract §5). */
export const prefixes = {
  streamingIndex: "streaming_index/",
  batchIndex: "batch_index/",
  finalAggregate: "final_aggregate/",
  quarantine: "quarantine/",
  late: "late/",
  models: "models/"
} as const

/** A data file a manifest commits. */
export const ManifestFile = Schema.Struct({
  key: Schema.String,
  dt: Schema.String,
  rows: Schema.Number
})
export type ManifestFile = typeof ManifestFile.Type

/**
 * The committed state of a dataset snapshot. Readers see only files a manifest lists; the manifest is
 * written last, so a crash before it leaves the previous snapshot as the visible one.
 */
export const DatasetManifest = Schema.Struct({
  dataset: Schema.String,
  version: Schema.String,
  committed_at: Schema.String,
  files: Schema.Array(ManifestFile),
  /** final_aggregate: the committed streaming micro-batches it merged (newer ones are not in it yet). */
  streaming_batches: Schema.optional(Schema.Array(Schema.String))
})
export type DatasetManifest = typeof DatasetManifest.Type

/** Key of the manifest that names a dataset's current snapshot. */
export const manifestKey = (datasetPrefix: string): string => `${datasetPrefix}_manifest.json`

const decodeManifest = Schema.decodeUnknown(Schema.parseJson(DatasetManifest))

/** The current manifest of a dataset, if one was ever committed. */
export const readManifest = (
  store: ObjectStore,
  datasetPrefix: string
): Effect.Effect<Option.Option<DatasetManifest>, ObjectStoreError | DatasetError> =>
  Effect.flatMap(store.get(manifestKey(datasetPrefix)), (body) =>
    Option.match(body, {
      onNone: () => Effect.succeedNone,
      onSome: (bytes) =>
        decodeManifest(new TextDecoder().decode(bytes)).pipe(
          Effect.map(Option.some),
          Effect.mapError(
            (error) => new DatasetError({ dataset: datasetPrefix, reason: `bad manifest: ${error.message}` })
          )
        )
    })
  )

/** Writes a manifest: the single atomic step that publishes a snapshot. */
export const writeManifest = (
  store: ObjectStore,
  datasetPrefix: string,
  manifest: DatasetManifest
): Effect.Effect<void, ObjectStoreError> =>
  store.put(manifestKey(datasetPrefix), new TextEncoder().encode(JSON.stringify(manifest, null, 2)))

/** Reads one committed data file (only `columns` when given); a manifest naming a missing file is a broken dataset. */
export const readCommittedFile = (
  store: ObjectStore,
  codec: ParquetCodec,
  dataset: string,
  key: string,
  columns?: ReadonlyArray<string>,
  selection?: RowSelection
): Effect.Effect<ReadonlyArray<TableRow>, ObjectStoreError | ParquetError | DatasetError> =>
  Effect.flatMap(
    store.get(key),
    (body): Effect.Effect<ReadonlyArray<TableRow>, ParquetError | DatasetError> =>
      Option.isSome(body)
        ? codec.decode(body.value, columns, selection)
        : Effect.fail(new DatasetError({ dataset, reason: `committed file ${key} is missing` }))
  )

/** Every row of the files a manifest commits, read with the codec. */
export const readManifestRows = (
  store: ObjectStore,
  codec: ParquetCodec,
  manifest: DatasetManifest
): Effect.Effect<ReadonlyArray<TableRow>, ObjectStoreError | ParquetError | DatasetError> =>
  Effect.map(
    Effect.forEach(manifest.files, (file) => readCommittedFile(store, codec, manifest.dataset, file.key)),
    (parts) => parts.flat()
  )

/** The committed final_aggregate rows, each with its `dt` partition value; empty when none is committed. */
export const readFinalAggregate = (
  store: ObjectStore,
  codec: ParquetCodec
): Effect.Effect<ReadonlyArray<FinalAggregateRow>, ObjectStoreError | ParquetError | DatasetError> =>
  Effect.flatMap(readManifest(store, prefixes.finalAggregate), (manifest) =>
    Option.match(manifest, {
      onNone: () => Effect.succeed([]),
      onSome: (committed) =>
        Effect.map(
          Effect.forEach(committed.files, (file) =>
            Effect.map(readManifestRows(store, codec, { ...committed, files: [file] }), (rows) =>
              rows.map((row) => ({ ...row, dt: file.dt }) as unknown as FinalAggregateRow)
            )
          ),
          (parts) => parts.flat()
        )
    })
  )

/** Rows of one dataset grouped by their `dt`, ready to write. */
export const groupByDt = <R extends { readonly dt: string }>(rows: Iterable<R>): Map<string, Array<R>> => {
  const groups = new Map<string, Array<R>>()
  for (const row of rows) {
    const group = groups.get(row.dt)
    if (group === undefined) groups.set(row.dt, [row])
    else group.push(row)
  }
  return new Map([...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

/** Rows grouped by dt (in dt order) and cut into numbered slices of at most `maxRowsPerFile`: one file each. */
export const dtSlices = <R extends { readonly dt: string }>(
  rows: Iterable<R>,
  maxRowsPerFile: number
): Array<{ readonly dt: string; readonly part: number; readonly slice: Array<R> }> =>
  [...groupByDt(rows)].flatMap(([dt, group]) => {
    const slices: Array<{ readonly dt: string; readonly part: number; readonly slice: Array<R> }> = []
    for (let start = 0, part = 0; start < group.length; start += maxRowsPerFile, part++)
      slices.push({ dt, part, slice: group.slice(start, start + maxRowsPerFile) })
    return slices
  })

/**
 * Writes rows partitioned by dt as `<prefix>dt=<dt>/part-<tag>-<n>.parquet`, at most `maxRowsPerFile` rows
 * each. The same rows and tag always give the same keys, so a replayed write overwrites itself.
 */
export const writePartitioned = (
  store: ObjectStore,
  codec: ParquetCodec,
  datasetPrefix: string,
  schema: TableSchema,
  rows: Iterable<TableRow & { readonly dt: string }>,
  tag: string,
  maxRowsPerFile = 1_000_000
): Effect.Effect<ReadonlyArray<ManifestFile>, ObjectStoreError | ParquetError> =>
  Effect.forEach(
    dtSlices(rows, maxRowsPerFile).map(({ dt, part, slice }) => ({
      key: `${datasetPrefix}dt=${dt}/part-${tag}-${String(part).padStart(5, "0")}.parquet`,
      dt,
      slice
    })),
    ({ key, dt, slice }) =>
      Effect.as(
        Effect.flatMap(codec.encode(schema, slice), (body) => store.put(key, body)),
        {
          key,
          dt,
          rows: slice.length
        }
      ),
    { concurrency: 4 }
  )

/** Where a dataset keeps its Hive symlink manifests (for Athena, Presto, Trino): one per dt. */
export const symlinkManifestKey = (datasetPrefix: string, dt: string): string =>
  `${datasetPrefix}_symlink_format_manifest/dt=${dt}/manifest`

const filesByDt = (files: ReadonlyArray<ManifestFile>): Map<string, Array<string>> => {
  const byDt = new Map<string, Array<string>>()
  for (const file of files) {
    const keys = byDt.get(file.dt) ?? []
    keys.push(file.key)
    byDt.set(file.dt, keys)
  }
  return byDt
}

/**
 * Publishes a new snapshot of a dataset: the manifest is written, then the Hive symlink manifest of each dt
 * (absolute object URIs, one per line: what Athena's SymlinkTextInputFormat reads, so
 * SQL engines see committed files only), then files and symlink manifests of the previous snapshot that
 * the new one does not list are deleted. A crash before the manifest leaves the old snapshot current.
 */
export const publishSnapshot = (
  store: ObjectStore,
  datasetPrefix: string,
  manifest: DatasetManifest
): Effect.Effect<{ readonly removed: number }, ObjectStoreError | DatasetError> =>
  Effect.gen(function* () {
    const previous = yield* readManifest(store, datasetPrefix)
    yield* writeManifest(store, datasetPrefix, manifest)
    const before = filesByDt(Option.match(previous, { onNone: () => [], onSome: (old) => old.files }))
    const after = filesByDt(manifest.files)
    yield* Effect.forEach(
      // Every dt, not only the changed ones: a crash between the manifest and these leaves nothing stale.
      [...after],
      ([dt, keys]) =>
        store.put(
          symlinkManifestKey(datasetPrefix, dt),
          new TextEncoder().encode(keys.map((key) => `${store.describe}/${key}\n`).join(""))
        ),
      { concurrency: 8, discard: true }
    )
    yield* Effect.forEach(
      [...before.keys()].filter((dt) => !after.has(dt)),
      (dt) => store.delete(symlinkManifestKey(datasetPrefix, dt)),
      { concurrency: 8, discard: true }
    )
    const kept = new Set(manifest.files.map((file) => file.key))
    const stale = [...before.values()].flat().filter((key) => !kept.has(key))
    yield* Effect.forEach(stale, (key) => store.delete(key), { discard: true })
    return { removed: stale.length }
  })

/** A short stable hash of text (SHA-256, first 16 hex digits), for content-derived file names. */
export const contentTag = (text: string): string =>
  createHash("sha256").update(text).digest("hex").slice(0, 16)

/**
 * Records that `shard` of a sharded write is done (its manifest at `<prefix><i>-of-<n>.json`) and, once every
 * shard of that count is done, gives all their manifests in shard order (none before). The caller that gets
 * them publishes, then removes the shard manifests with {@link clearShardManifests}.
 */
export const recordShardDone = <A extends { readonly shard: Shard }>(
  store: ObjectStore,
  prefix: string,
  shard: Shard,
  manifest: A,
  decode: (text: string) => Option.Option<A>
): Effect.Effect<Option.Option<ReadonlyArray<A>>, ObjectStoreError> =>
  Effect.gen(function* () {
    yield* store.put(
      `${prefix}${shard.index}-of-${shard.count}.json`,
      new TextEncoder().encode(JSON.stringify(manifest))
    )
    const done: Array<A> = []
    for (const info of yield* store.list(prefix)) {
      const found = Option.flatMap(yield* store.get(info.key), (bytes) =>
        decode(new TextDecoder().decode(bytes))
      )
      if (Option.isSome(found) && found.value.shard.count === shard.count) done.push(found.value)
    }
    return new Set(done.map((found) => found.shard.index)).size === shard.count
      ? Option.some(done.sort((a, b) => a.shard.index - b.shard.index))
      : Option.none()
  })

/** Removes the shard manifests under `prefix` once their work is published. */
export const clearShardManifests = (
  store: ObjectStore,
  prefix: string
): Effect.Effect<void, ObjectStoreError> =>
  Effect.flatMap(store.list(prefix), (listed) =>
    Effect.forEach(listed, (info) => store.delete(info.key), { discard: true })
  )
