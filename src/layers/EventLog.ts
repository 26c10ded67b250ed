import { randomUUID } from "node:crypto"
import { Config, Context, Effect, Layer, Option, Stream, SubscriptionRef } from "effect"
import { utf8Bytes } from "../domain/bytes.js"
import type { EventLogError } from "../domain/errors.js"

/** A message to append: keyed so that every event of a transaction lands in the same partition. */
export interface LogMessage {
  readonly key: string
  readonly value: Uint8Array
}

/** A message as read back, with its position in the log. */
export interface LogRecord {
  readonly topic: string
  readonly partition: number
  readonly offset: number
  readonly key: string | null
  readonly value: Uint8Array
  /** Append time, epoch milliseconds. */
  readonly timestamp: number
  /**
   * Which partition assignment of this group member delivered the record: it changes after every
   * rebalance (Kafka), so a partition seen again under a new assignment may have been consumed by another
   * member meanwhile. Absent where the assignment never changes (the embedded log).
   */
  readonly assignment?: number
}

/** A position in a partition: `offset` is the next offset to read (Kafka's committed-offset meaning). */
export interface PartitionOffset {
  readonly topic: string
  readonly partition: number
  readonly offset: number
}

/** Options of a consumer-group subscription. */
export interface SubscribeOptions {
  /** End the stream once the log's end offsets at subscription time are reached (bounded runs). */
  readonly stopAtEnd?: boolean
  /** The most records in one emitted batch. */
  readonly maxBatchSize?: number
}

/**
 * A partitioned, keyed, append-only log with consumer groups and explicitly committed offsets: the
 * part of Kafka the pipelines rely on.
 */
export interface EventLog {
  readonly ensureTopic: (topic: string, partitions: number) => Effect.Effect<void, EventLogError>
  /** Appends messages; completes once they are durably acknowledged. */
  readonly produce: (topic: string, messages: ReadonlyArray<LogMessage>) => Effect.Effect<void, EventLogError>
  /** Batches of records for a group member, from the group's committed offsets (earliest when none). */
  readonly subscribe: (
    group: string,
    topics: ReadonlyArray<string>,
    options?: SubscribeOptions
  ) => Stream.Stream<ReadonlyArray<LogRecord>, EventLogError>
  /** Commits the next offsets to read for a group. */
  readonly commit: (
    group: string,
    offsets: ReadonlyArray<PartitionOffset>
  ) => Effect.Effect<void, EventLogError>
  readonly committedOffsets: (
    group: string,
    topic: string
  ) => Effect.Effect<ReadonlyArray<PartitionOffset>, EventLogError>
  readonly endOffsets: (topic: string) => Effect.Effect<ReadonlyArray<PartitionOffset>, EventLogError>
  readonly describe: string
  /**
   * Which history the offsets belong to: "" for a log that outlives the process (Kafka: offsets mean the
   * same records to every process), a new id for each embedded log, which starts empty at offset 0, so
   * what one process committed of it says nothing about another's.
   */
  readonly instance: string
}

/** Kafka's murmur2 hash of a key's UTF-8 bytes (as a signed 32-bit integer, like Utils.murmur2). */
export const murmur2 = (key: string): number => {
  const data = utf8Bytes(key)
  const seed = 0x9747b28c
  const m = 0x5bd1e995
  let h = seed ^ data.length
  let index = 0
  for (; index + 4 <= data.length; index += 4) {
    let k = data[index]! | (data[index + 1]! << 8) | (data[index + 2]! << 16) | (data[index + 3]! << 24)
    k = Math.imul(k, m)
    k ^= k >>> 24
    k = Math.imul(k, m)
    h = Math.imul(h, m) ^ k
  }
  const rest = data.length - index
  if (rest === 3) h ^= data[index + 2]! << 16
  if (rest >= 2) h ^= data[index + 1]! << 8
  if (rest >= 1) {
    h ^= data[index]!
    h = Math.imul(h, m)
  }
  h ^= h >>> 13
  h = Math.imul(h, m)
  h ^= h >>> 15
  return h | 0
}

/** Kafka's default partitioner: murmur2 of the key, made positive, modulo the partition count. */
export const partitionForKey = (key: string, partitions: number): number =>
  (murmur2(key) & 0x7fffffff) % partitions

/**
 * The embedded event log: topics and consumer-group offsets in process memory. Consumers wait for new
 * records without polling, so TestClock-driven tests stay deterministic.
 */
export const makeMemoryEventLog = (defaultPartitions: number): Effect.Effect<EventLog> =>
  Effect.gen(function* () {
    const topics = new Map<string, Array<Array<LogRecord>>>()
    const groups = new Map<string, Map<string, number>>()
    const version = yield* SubscriptionRef.make(0)
    const bump = SubscriptionRef.update(version, (n) => n + 1)

    const partitionsOf = (topic: string, create = true): Array<Array<LogRecord>> => {
      let partitions = topics.get(topic)
      if (partitions === undefined && create) {
        partitions = Array.from({ length: defaultPartitions }, () => [])
        topics.set(topic, partitions)
      }
      return partitions ?? []
    }
    const committedFor = (group: string) => {
      let offsets = groups.get(group)
      if (offsets === undefined) {
        offsets = new Map()
        groups.set(group, offsets)
      }
      return offsets
    }
    const tp = (topic: string, partition: number) => `${topic}\u0000${partition}`

    const readBatch = (
      positions: Map<string, number>,
      topicNames: ReadonlyArray<string>,
      maxBatchSize: number
    ): Array<LogRecord> => {
      const sources = topicNames.flatMap((topic) =>
        partitionsOf(topic).map((records, partition) => ({ key: tp(topic, partition), records }))
      )
      const perPartition = Math.max(1, Math.ceil(maxBatchSize / Math.max(1, sources.length)))
      const batch: Array<LogRecord> = []
      for (const { key, records } of sources) {
        let position = positions.get(key) ?? 0
        const limit = Math.min(records.length, position + perPartition)
        while (position < limit && batch.length < maxBatchSize) {
          batch.push(records[position]!)
          position++
        }
        positions.set(key, position)
      }
      return batch
    }

    const log: EventLog = {
      describe: "embedded in-memory log",
      instance: `embedded-${randomUUID()}`,
      ensureTopic: (topic, partitions) =>
        Effect.sync(() => {
          if (!topics.has(topic))
            topics.set(
              topic,
              Array.from({ length: partitions }, () => [])
            )
        }),
      produce: (topic, messages) =>
        Effect.zipRight(
          Effect.sync(() => {
            const partitions = partitionsOf(topic)
            const now = Date.now()
            for (const message of messages) {
              const partition = partitionForKey(message.key, partitions.length)
              const records = partitions[partition]!
              records.push({
                topic,
                partition,
                offset: records.length,
                key: message.key,
                value: message.value,
                timestamp: now
              })
            }
          }),
          bump
        ),
      subscribe: (group, topicNames, options = {}) => {
        const maxBatchSize = options.maxBatchSize ?? 10_000
        return Stream.unwrap(
          Effect.sync(() => {
            const committed = committedFor(group)
            const positions = new Map<string, number>()
            const ends = new Map<string, number>()
            for (const topic of topicNames) {
              partitionsOf(topic).forEach((records, partition) => {
                positions.set(tp(topic, partition), committed.get(tp(topic, partition)) ?? 0)
                ends.set(tp(topic, partition), records.length)
              })
            }
            const reachedEnd = () => [...ends].every(([key, end]) => (positions.get(key) ?? 0) >= end)
            const nextBatch = (): Effect.Effect<Option.Option<ReadonlyArray<LogRecord>>> =>
              Effect.gen(function* () {
                while (true) {
                  if (options.stopAtEnd === true && reachedEnd()) return Option.none()
                  const seen = yield* SubscriptionRef.get(version)
                  const batch = readBatch(positions, topicNames, maxBatchSize)
                  if (options.stopAtEnd === true) {
                    const bounded = batch.filter(
                      (record) => record.offset < (ends.get(tp(record.topic, record.partition)) ?? 0)
                    )
                    for (const record of batch) {
                      const key = tp(record.topic, record.partition)
                      positions.set(key, Math.min(positions.get(key) ?? 0, ends.get(key) ?? 0))
                    }
                    if (bounded.length > 0) return Option.some(bounded)
                    continue
                  }
                  if (batch.length > 0) return Option.some(batch)
                  yield* version.changes.pipe(
                    Stream.filter((current) => current > seen),
                    Stream.take(1),
                    Stream.runDrain
                  )
                }
              })
            return Stream.repeatEffectOption(
              Effect.flatMap(nextBatch(), (batch) =>
                Option.match(batch, { onNone: () => Effect.fail(Option.none()), onSome: Effect.succeed })
              )
            )
          })
        )
      },
      commit: (group, offsets) =>
        Effect.sync(() => {
          const committed = committedFor(group)
          for (const { topic, partition, offset } of offsets) committed.set(tp(topic, partition), offset)
        }),
      committedOffsets: (group, topic) =>
        Effect.sync(() =>
          partitionsOf(topic).map((_records, partition) => ({
            topic,
            partition,
            offset: committedFor(group).get(tp(topic, partition)) ?? 0
          }))
        ),
      endOffsets: (topic) =>
        Effect.sync(() =>
          partitionsOf(topic).map((records, partition) => ({ topic, partition, offset: records.length }))
        )
    }
    return log
  })

/** The event log service. */
export class EventLogService extends Context.Tag("EventLog")<EventLogService, EventLog>() {
  static readonly layerMemory = (partitions = 4) =>
    Layer.effect(EventLogService, makeMemoryEventLog(partitions))
  /** `RECON_TOPIC_PARTITIONS` (default 4) partitions per topic. */
  static readonly layerMemoryConfig = Layer.effect(
    EventLogService,
    Effect.flatMap(Config.integer("RECON_TOPIC_PARTITIONS").pipe(Config.withDefault(4)), makeMemoryEventLog)
  )
}

/** Offsets to commit after a batch: the next offset per partition. */
export const nextOffsets = (records: Iterable<LogRecord>): ReadonlyArray<PartitionOffset> => {
  const latest = new Map<string, PartitionOffset>()
  for (const record of records) {
    const key = `${record.topic}\u0000${record.partition}`
    const current = latest.get(key)
    if (current === undefined || current.offset <= record.offset) {
      latest.set(key, { topic: record.topic, partition: record.partition, offset: record.offset + 1 })
    }
  }
  return [...latest.values()]
}
