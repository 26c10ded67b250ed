import { Clock, Effect } from "effect"
import type { ObjectStoreError } from "../domain/errors.js"
import { describeProblems, type RecordProblem } from "../domain/validation.js"
import type { ObjectStore } from "../layers/ObjectStore.js"
import { prefixes } from "./datasets.js"

/** A refused record as kept in `quarantine/`: enough to understand, fix and replay it; never a card number. */
export interface QuarantineEntry {
  readonly dataset: string
  /** Object key and line, or topic/partition/offset. */
  readonly source: string
  readonly reason: string
  readonly problems: ReadonlyArray<RecordProblem>
  /** The original payload, card numbers redacted. */
  readonly payload: string
}

/** Builds an entry from a rejection. */
export const quarantineEntry = (
  dataset: string,
  source: string,
  problems: ReadonlyArray<RecordProblem>,
  payload: string
): QuarantineEntry =>
  // A JSON round trip gives the entry strings of its own: a payload sliced from a whole input file would
  // otherwise keep that file's text alive for as long as the entry (the 10M bench ran out of heap on it).
  JSON.parse(
    JSON.stringify({ dataset, source, reason: describeProblems(problems), problems, payload })
  ) as QuarantineEntry

/**
 * Writes entries as one JSON Lines object `quarantine/<origin>/<dataset>/<name>.jsonl`, each line with the
 * time it was quarantined. Writes nothing for no entries.
 */
export const writeQuarantine = (
  store: ObjectStore,
  origin: string,
  name: string,
  entries: ReadonlyArray<QuarantineEntry>
): Effect.Effect<ReadonlyArray<string>, ObjectStoreError> =>
  Effect.gen(function* () {
    if (entries.length === 0) return []
    const now = new Date(yield* Clock.currentTimeMillis).toISOString()
    const byDataset = new Map<string, Array<QuarantineEntry>>()
    for (const entry of entries) {
      const list = byDataset.get(entry.dataset) ?? []
      list.push(entry)
      byDataset.set(entry.dataset, list)
    }
    const keys: Array<string> = []
    for (const [dataset, list] of byDataset) {
      const key = `${prefixes.quarantine}${origin}/${dataset}/${name}.jsonl`
      const text = list.map((entry) => JSON.stringify({ ...entry, quarantined_at: now })).join("\n") + "\n"
      yield* store.put(key, new TextEncoder().encode(text))
      keys.push(key)
    }
    return keys
  })
