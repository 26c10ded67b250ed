import { Effect, Either, type Schema } from "effect"
import type { ObjectStoreError } from "../domain/errors.js"
import { type Merchant, Merchant as MerchantSchema, type User, User as UserSchema } from "../domain/events.js"
import type { DimensionTables } from "../domain/finalAggregate.js"
import { compareCodePoints } from "../domain/order.js"
import { rfc3339Problem } from "../domain/time.js"
import { getRequired, type ObjectStore } from "../layers/ObjectStore.js"
import { type QuarantineEntry, quarantineEntry } from "./quarantine.js"
import { decodeRawRecord, isHiddenPath, rawFileKind, readRawRecords } from "./rawRecords.js"

/** Prefixes of the dimension snapshots in the raw bucket (contract §3). */
export const dimensionPrefixes = {
  users: "raw/dimensions/users/",
  merchants: "raw/dimensions/merchants/"
} as const

const snapshotFolder = /^snapshot=(\d{8}T\d{6}Z)\/(.+)$/

/** Whether a snapshot name (`YYYYMMDDTHHMMSSZ`) is a real UTC instant: `…T250000Z` is not a snapshot. */
const isInstant = (name: string): boolean =>
  rfc3339Problem(
    `${name.slice(0, 4)}-${name.slice(4, 6)}-${name.slice(6, 8)}T${name.slice(9, 11)}:${name.slice(11, 13)}:${name.slice(13, 15)}Z`
  ) === undefined

/** The snapshot a dimension is read from: a `snapshot=` folder name, or "(base)" for files directly under the prefix. */
export interface SnapshotChoice {
  readonly snapshot: string
  readonly keys: ReadonlyArray<string>
}

/**
 * Picks the newest snapshot of a dimension: the greatest `snapshot=YYYYMMDDTHHMMSSZ/` folder, every data file
 * below it (subfolders too, as Spark writes them, but not paths with a part starting `_` or `.`: a writer's
 * temporary files); files directly under the prefix form one snapshot older than any named one. Other
 * folders under the prefix, and names that are not a real instant (month 13, hour 25), are not snapshots.
 */
export const chooseSnapshot = (prefix: string, keys: ReadonlyArray<string>): SnapshotChoice | undefined => {
  const bySnapshot = new Map<string, Array<string>>()
  for (const key of keys) {
    if (rawFileKind(key) === undefined) continue
    const rest = key.slice(prefix.length)
    const named = snapshotFolder.exec(rest)
    const snapshot =
      named !== null
        ? isHiddenPath(named[2]!) || !isInstant(named[1]!)
          ? undefined
          : named[1]!
        : rest.includes("/")
          ? undefined
          : "(base)"
    if (snapshot === undefined) continue
    const list = bySnapshot.get(snapshot) ?? []
    list.push(key)
    bySnapshot.set(snapshot, list)
  }
  const named = [...bySnapshot.keys()].filter((name) => name !== "(base)").sort(compareCodePoints)
  const newest = named.at(-1) ?? (bySnapshot.has("(base)") ? "(base)" : undefined)
  return newest === undefined
    ? undefined
    : { snapshot: newest, keys: bySnapshot.get(newest)!.sort(compareCodePoints) }
}

/** Dimensions as loaded, with what was refused and which snapshots were used. */
export interface LoadedDimensions {
  readonly tables: DimensionTables
  readonly quarantined: ReadonlyArray<QuarantineEntry>
  readonly usersSnapshot: string | null
  readonly merchantsSnapshot: string | null
  readonly recordsIn: number
}

const loadOne = <A, I>(
  store: ObjectStore,
  prefix: string,
  dataset: string,
  schema: Schema.Schema<A, I>,
  idOf: (value: A) => string
) =>
  Effect.gen(function* () {
    const choice = chooseSnapshot(
      prefix,
      (yield* store.list(prefix)).map((info) => info.key)
    )
    const table = new Map<string, A>()
    const quarantined: Array<QuarantineEntry> = []
    let recordsIn = 0
    for (const key of choice?.keys ?? []) {
      const records = yield* readRawRecords(key, yield* getRequired(store, key))
      if (Either.isLeft(records)) {
        recordsIn++
        quarantined.push(
          quarantineEntry(dataset, key, [{ field: "(file)", reason: records.left.reason }], "")
        )
        continue
      }
      for (const record of records.right) {
        recordsIn++
        const decoded = decodeRawRecord(schema, record)
        if (Either.isLeft(decoded)) {
          quarantined.push(
            quarantineEntry(dataset, record.location, decoded.left.problems, decoded.left.redactedPayload)
          )
        } else {
          table.set(idOf(decoded.right), decoded.right)
        }
      }
    }
    return { table, quarantined, snapshot: choice?.snapshot ?? null, recordsIn }
  })

/** Loads the newest users and merchants snapshots from the raw bucket; bad rows are quarantined. */
export const loadDimensions = (store: ObjectStore): Effect.Effect<LoadedDimensions, ObjectStoreError> =>
  Effect.gen(function* () {
    const users = yield* loadOne(store, dimensionPrefixes.users, "users", UserSchema, (u: User) => u.user_id)
    const merchants = yield* loadOne(
      store,
      dimensionPrefixes.merchants,
      "merchants",
      MerchantSchema,
      (m: Merchant) => m.merchant_id
    )
    return {
      tables: { users: users.table, merchants: merchants.table },
      quarantined: [...users.quarantined, ...merchants.quarantined],
      usersSnapshot: users.snapshot,
      merchantsSnapshot: merchants.snapshot,
      recordsIn: users.recordsIn + merchants.recordsIn
    }
  })
