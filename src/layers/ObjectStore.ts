import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import { Config, Context, Effect, Layer, Option } from "effect"
import { ObjectStoreError } from "../domain/errors.js"

/** One stored object as a listing shows it. */
export interface ObjectInfo {
  readonly key: string
  readonly size: number
}

/**
 * A bucket of immutable objects addressed by `/`-separated keys, the shape S3 offers. Every `put` is
 * atomic: a reader sees the old object or the new one, never a partial one.
 */
export interface ObjectStore {
  readonly put: (key: string, body: Uint8Array) => Effect.Effect<void, ObjectStoreError>
  /**
   * Stores a local file's bytes under `key`, atomically like `put`, without holding a large file in
   * memory (S3: a multipart upload read part by part).
   */
  readonly putFile: (key: string, path: string) => Effect.Effect<void, ObjectStoreError>
  readonly get: (key: string) => Effect.Effect<Option.Option<Uint8Array>, ObjectStoreError>
  /** Every object whose key starts with `prefix`, sorted by key. */
  readonly list: (prefix: string) => Effect.Effect<ReadonlyArray<ObjectInfo>, ObjectStoreError>
  readonly delete: (key: string) => Effect.Effect<void, ObjectStoreError>
  /** A path on this machine's filesystem for the key, when the store is a local directory (for DuckDB). */
  readonly localPath: (key: string) => Option.Option<string>
  /** Human-readable location, e.g. `file:///data/processed` or `memory:`. */
  readonly describe: string
}

const fail = (operation: string, key: string) => (cause: unknown) =>
  new ObjectStoreError({ operation, key, cause })

/** Reads an object that must exist. */
export const getRequired = (store: ObjectStore, key: string): Effect.Effect<Uint8Array, ObjectStoreError> =>
  Effect.flatMap(store.get(key), (found) =>
    Option.match(found, {
      onNone: () => Effect.fail(new ObjectStoreError({ operation: "get", key, cause: "no such object" })),
      onSome: Effect.succeed
    })
  )

/** An object store kept in process memory: the fast twin for tests. */
export const makeMemoryObjectStore = (): ObjectStore => {
  const objects = new Map<string, Uint8Array>()
  return {
    describe: "memory:",
    put: (key, body) => Effect.sync(() => void objects.set(key, Uint8Array.from(body))),
    putFile: (key, path) =>
      Effect.tryPromise({
        try: async () => void objects.set(key, new Uint8Array(await NodeFs.readFile(path))),
        catch: fail("putFile", key)
      }),
    get: (key) => Effect.sync(() => Option.fromNullable(objects.get(key))),
    list: (prefix) =>
      Effect.sync(() =>
        [...objects.entries()]
          .filter(([key]) => key.startsWith(prefix))
          .map(([key, body]) => ({ key, size: body.byteLength }))
          .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      ),
    delete: (key) => Effect.sync(() => void objects.delete(key)),
    localPath: () => Option.none()
  }
}

let temporarySequence = 0

/**
 * An object store on a local directory. Writes go to a temporary file that is renamed into place, so a
 * crash never leaves a half-written object under its key.
 */
export const makeLocalObjectStore = (root: string): ObjectStore => {
  const absoluteRoot = NodePath.resolve(root)
  const pathOf = (key: string) => NodePath.join(absoluteRoot, ...key.split("/"))
  const walk = async (directory: string, found: Array<ObjectInfo>): Promise<void> => {
    let entries: Array<import("node:fs").Dirent>
    try {
      entries = await NodeFs.readdir(directory, { withFileTypes: true })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return
      throw error
    }
    for (const entry of entries) {
      const full = NodePath.join(directory, entry.name)
      if (entry.isDirectory()) await walk(full, found)
      else if (entry.isFile() && !entry.name.startsWith(".tmp-")) {
        const stat = await NodeFs.stat(full)
        found.push({
          key: NodePath.relative(absoluteRoot, full).split(NodePath.sep).join("/"),
          size: stat.size
        })
      }
    }
  }
  /** Writes a temporary file beside the target and renames it into place. */
  const writeAtomically = async (key: string, write: (temporary: string) => Promise<void>) => {
    const target = pathOf(key)
    await NodeFs.mkdir(NodePath.dirname(target), { recursive: true })
    const temporary = NodePath.join(
      NodePath.dirname(target),
      `.tmp-${process.pid}-${++temporarySequence}-${NodePath.basename(target)}`
    )
    try {
      await write(temporary)
      await NodeFs.rename(temporary, target)
    } catch (error) {
      await NodeFs.rm(temporary, { force: true })
      throw error
    }
  }
  return {
    describe: `file://${absoluteRoot}`,
    put: (key, body) =>
      Effect.tryPromise({
        try: () => writeAtomically(key, (temporary) => NodeFs.writeFile(temporary, body)),
        catch: fail("put", key)
      }),
    putFile: (key, path) =>
      Effect.tryPromise({
        try: () => writeAtomically(key, (temporary) => NodeFs.copyFile(path, temporary)),
        catch: fail("putFile", key)
      }),
    get: (key) =>
      Effect.tryPromise({
        try: async () => {
          try {
            return Option.some(new Uint8Array(await NodeFs.readFile(pathOf(key))))
          } catch (error) {
            const code = (error as NodeJS.ErrnoException).code
            if (code === "ENOENT" || code === "EISDIR") return Option.none()
            throw error
          }
        },
        catch: fail("get", key)
      }),
    list: (prefix) =>
      Effect.tryPromise({
        try: async () => {
          const slash = prefix.lastIndexOf("/")
          const start = slash < 0 ? absoluteRoot : pathOf(prefix.slice(0, slash))
          const found: Array<ObjectInfo> = []
          await walk(start, found)
          return found
            .filter((info) => info.key.startsWith(prefix))
            .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
        },
        catch: fail("list", prefix)
      }),
    delete: (key) =>
      Effect.tryPromise({ try: () => NodeFs.rm(pathOf(key), { force: true }), catch: fail("delete", key) }),
    localPath: (key) => Option.some(pathOf(key))
  }
}

/** The bucket producers write to: holds the contract's `raw/` tree. */
export class RawBucket extends Context.Tag("RawBucket")<RawBucket, ObjectStore>() {
  /** A local directory that holds (or will hold) `raw/`. */
  static readonly layerLocal = (root: string) => Layer.succeed(RawBucket, makeLocalObjectStore(root))
  static readonly layerMemory = Layer.sync(RawBucket, makeMemoryObjectStore)
  /** `RECON_RAW_DIR`, default `data/raw-bucket`. */
  static readonly layerConfig = Layer.effect(
    RawBucket,
    Effect.map(
      Config.string("RECON_RAW_DIR").pipe(Config.withDefault("data/raw-bucket")),
      makeLocalObjectStore
    )
  )
}

/** The bucket the pipelines write: streaming_index/, batch_index/, final_aggregate/, quarantine/, late/, models/. */
export class ProcessedBucket extends Context.Tag("ProcessedBucket")<ProcessedBucket, ObjectStore>() {
  static readonly layerLocal = (root: string) => Layer.succeed(ProcessedBucket, makeLocalObjectStore(root))
  static readonly layerMemory = Layer.sync(ProcessedBucket, makeMemoryObjectStore)
  /** `RECON_PROCESSED_DIR`, default `data/processed-bucket`. */
  static readonly layerConfig = Layer.effect(
    ProcessedBucket,
    Effect.map(
      Config.string("RECON_PROCESSED_DIR").pipe(Config.withDefault("data/processed-bucket")),
      makeLocalObjectStore
    )
  )
}
