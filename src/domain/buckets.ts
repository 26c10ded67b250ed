/**
 * The bucket of an id: FNV-1a (32 bit) of its UTF-16 code units, modulo `buckets`. Stable across processes
 * and versions, so every worker agrees on who owns a transaction (final-aggregate shards and passes) and
 * on the salt of its partial aggregate.
 */
export const bucketOf = (id: string, buckets: number): number => {
  let hash = 0x811c9dc5
  for (let index = 0; index < id.length; index++) {
    hash ^= id.charCodeAt(index)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) % buckets
}
