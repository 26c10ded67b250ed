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
