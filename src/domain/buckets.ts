import { compareCodePoints } from "./order.js"

/** A worker's share of a job split n ways: worker `index` of `count` (0 <= index < count). */
export interface Shard {
  readonly index: number
  readonly count: number
}

/** Why a shard is not a valid `i/n`, or undefined when it is. */
export const shardProblem = (shard: Shard): string | undefined =>
  Number.isInteger(shard.count) &&
  Number.isInteger(shard.index) &&
  shard.count >= 1 &&
  shard.index >= 0 &&
  shard.index < shard.count
    ? undefined
    : `shard must be i/n with 0 <= i < n, got ${shard.index}/${shard.count}`

/**
 * Which worker reads each file when `count` workers split a list of files: largest first, each to the
 * worker with the fewest bytes so far (the lowest index on a tie), so every worker computes the same
 * answer from the same listing and the bytes come out even.
 */
export const assignFilesToShards = (
  files: ReadonlyArray<{ readonly key: string; readonly size: number }>,
  count: number
): Map<string, number> => {
  const load = new Array<number>(count).fill(0)
  const owner = new Map<string, number>()
  const order = [...files].sort((a, b) => b.size - a.size || compareCodePoints(a.key, b.key))
  for (const file of order) {
    let lightest = 0
    for (let index = 1; index < count; index++) if (load[index]! < load[lightest]!) lightest = index
    owner.set(file.key, lightest)
    load[lightest]! += file.size
  }
  return owner
}

/**
 * FNV-1a (32 bit, unsigned) of an id's UTF-16 code units. Stable across processes and versions; index rows
 * carry it for their transaction_id (`transaction_id_hash`) so a reader can select a shard's rows in SQL.
 */
export const idHashOf = (id: string): number => {
  let hash = 0x811c9dc5
  for (let index = 0; index < id.length; index++) {
    hash ^= id.charCodeAt(index)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}

/**
 * The bucket of an id: {@link idHashOf} modulo `buckets`, so every worker agrees on who owns a transaction
 * (final-aggregate shards and passes) and on the salt of its partial aggregate.
 */
export const bucketOf = (id: string, buckets: number): number => idHashOf(id) % buckets
