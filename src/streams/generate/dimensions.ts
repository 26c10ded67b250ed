import * as NodeFsPromises from "node:fs/promises"
import * as NodePath from "node:path"
import type { EpochMicros } from "../../domain/time.js"
import { merchantProfile, merchantRow, userProfile, userRow } from "./catalog.js"
import { snapshotStamp } from "./format.js"
import { mixSeed, Random } from "./random.js"
import { LineSink } from "./sinks.js"

/** Counts of the dimension files written. */
export interface DimensionSummary {
  readonly users: number
  readonly merchants: number
  readonly usersInNewestSnapshot: number
  readonly merchantsInNewestSnapshot: number
  /** Users referenced by some transaction but absent from the newest snapshot (unknown downstream). */
  readonly referencedUsersMissingFromNewest: number
  readonly referencedMerchantsMissingFromNewest: number
  readonly userSnapshots: ReadonlyArray<string>
  readonly merchantSnapshots: ReadonlyArray<string>
}

const dayMicros = 86_400_000_000

/**
 * Marks a small share of referenced entities (flag 1) as missing from the newest snapshot (flag 2); at
 * least one when any entity is referenced. Returns how many were marked.
 */
const markMissing = (flags: Uint8Array, share: number, random: Random): number => {
  let marked = 0
  let firstReferenced = -1
  for (let index = 0; index < flags.length; index++) {
    if (flags[index] !== 1) continue
    if (firstReferenced < 0) firstReferenced = index
    if (random.chance(share)) {
      flags[index] = 2
      marked++
    }
  }
  if (marked === 0 && firstReferenced >= 0) {
    flags[firstReferenced] = 2
    marked = 1
  }
  return marked
}

const writeLines = async (path: string, rows: Iterable<object>): Promise<number> => {
  await NodeFsPromises.mkdir(NodePath.dirname(path), { recursive: true })
  const sink = new LineSink(path, false)
  for (const row of rows) {
    const pending = sink.write(JSON.stringify(row))
    if (pending) await pending
  }
  await sink.close()
  return sink.lines
}

/**
 * Writes the user and merchant dimensions under `root` (= `raw/dimensions`): for users an unnamed base
 * file (the oldest snapshot), an older named snapshot and the newest one; for merchants an older and a
 * newest snapshot. Older snapshots hold fewer rows and some changed values. `referencedUsers` and
 * `referencedMerchants` hold 1 for every entity a transaction used.
 */
export const writeDimensions = async (
  root: string,
  seed: number,
  startMicros: EpochMicros,
  days: number,
  referencedUsers: Uint8Array,
  referencedMerchants: Uint8Array
): Promise<DimensionSummary> => {
  const random = new Random(mixSeed(seed, 0x64696d73))
  const usersMissing = markMissing(referencedUsers, 0.02, random)
  const merchantsMissing = markMissing(referencedMerchants, 0.03, random)
  const newestMicros = startMicros + days * dayMicros
  const olderMicros = startMicros - dayMicros
  const baseMicros = startMicros - 30 * dayMicros
  const newestStamp = `snapshot=${snapshotStamp(newestMicros)}`
  const olderStamp = `snapshot=${snapshotStamp(olderMicros)}`

  function* users(asOf: EpochMicros, newest: boolean, changeSeed: number) {
    const changes = new Random(mixSeed(seed, changeSeed))
    for (let index = 0; index < referencedUsers.length; index++) {
      const user = userProfile(seed, index, startMicros)
      const changed = changes.chance(0.1)
      if (newest && referencedUsers[index] === 2) continue
      if (user.createdAt >= asOf) continue
      yield newest || !changed
        ? userRow(user)
        : userRow(user, {
            kycLevel: user.kycLevel === "full" ? "basic" : "none",
            riskTier: user.riskTier === "low" ? "medium" : "low"
          })
    }
  }
  function* merchants(newest: boolean) {
    const changes = new Random(mixSeed(seed, 0x6d636867))
    for (let index = 0; index < referencedMerchants.length; index++) {
      const merchant = merchantProfile(seed, index)
      const onboardedLater = changes.chance(0.05)
      const changed = changes.chance(0.1)
      if (newest && referencedMerchants[index] === 2) continue
      if (!newest && onboardedLater) continue
      yield newest || !changed
        ? merchantRow(merchant)
        : merchantRow(merchant, {
            name: merchant.name.slice(0, -3),
            riskLevel: merchant.riskLevel === "high" ? "medium" : "high"
          })
    }
  }

  const usersRoot = NodePath.join(root, "users")
  const merchantsRoot = NodePath.join(root, "merchants")
  await writeLines(NodePath.join(usersRoot, "users.jsonl"), users(baseMicros, false, 0x62617365))
  await writeLines(NodePath.join(usersRoot, olderStamp, "users.jsonl"), users(olderMicros, false, 0x6f6c6472))
  const usersInNewest = await writeLines(
    NodePath.join(usersRoot, newestStamp, "users.jsonl"),
    users(newestMicros, true, 0x6e657773)
  )
  await writeLines(NodePath.join(merchantsRoot, olderStamp, "merchants.jsonl"), merchants(false))
  const merchantsInNewest = await writeLines(
    NodePath.join(merchantsRoot, newestStamp, "merchants.jsonl"),
    merchants(true)
  )
  return {
    users: referencedUsers.length,
    merchants: referencedMerchants.length,
    usersInNewestSnapshot: usersInNewest,
    merchantsInNewestSnapshot: merchantsInNewest,
    referencedUsersMissingFromNewest: usersMissing,
    referencedMerchantsMissingFromNewest: merchantsMissing,
    userSnapshots: ["(base)", olderStamp, newestStamp],
    merchantSnapshots: [olderStamp, newestStamp]
  }
}
