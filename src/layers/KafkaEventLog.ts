import {
  Clock,
  Config,
  Effect,
  Exit,
  Layer,
  LogLevel,
  Queue,
  Runtime,
  Schedule,
  type Scope,
  Stream,
  Take
} from "effect"
import {
  type Admin,
  type Consumer,
  type EachBatchPayload,
  Kafka,
  type KafkaMessage,
  type LogEntry,
  logLevel,
  Partitioners,
  type Producer
} from "kafkajs"
import { EventLogError } from "../domain/errors.js"
import {
  type EventLog,
  EventLogService,
  type LogRecord,
  type PartitionOffset,
  type SubscribeOptions
} from "./EventLog.js"

/** Settings of the Kafka event log. */
export interface KafkaEventLogOptions {
  /** Bootstrap brokers, `host:port`. */
  readonly brokers: ReadonlyArray<string>
  /** Default `recon`. */
  readonly clientId?: string
  /** Replication factor of the topics this log creates. Default 1 (one local broker). */
  readonly replicationFactor?: number
  /** Partitions of a topic first touched by produce/subscribe/offset calls without `ensureTopic`. Default 4. */
  readonly defaultPartitions?: number
  /** Longest a fetch waits on the broker for new records; also bounds how long a disconnect waits. Default 1000. */
  readonly maxWaitTimeInMs?: number
  /** Consumer-group session timeout. Default 30000. */
  readonly sessionTimeoutMs?: number
  /** Interval of the heartbeats sent while a batch waits for the stream to take it. Default 3000. */
  readonly heartbeatIntervalMs?: number
}

/**
 * The Kafka settings from config: `RECON_KAFKA_BROKERS` (comma-separated, required),
 * `RECON_KAFKA_CLIENT_ID` (default `recon`), `RECON_KAFKA_REPLICATION_FACTOR` (default 1),
 * `RECON_KAFKA_SESSION_TIMEOUT_MS` (default 30000) and
 * `RECON_TOPIC_PARTITIONS` (default 4, as for the embedded log).
 */
export const kafkaEventLogConfig: Config.Config<KafkaEventLogOptions> = Config.all({
  brokers: Config.string("RECON_KAFKA_BROKERS").pipe(
    Config.map((list) =>
      list
        .split(",")
        .map((broker) => broker.trim())
        .filter((broker) => broker !== "")
    ),
    Config.validate({ message: "needs at least one host:port", validation: (list) => list.length > 0 })
  ),
  clientId: Config.string("RECON_KAFKA_CLIENT_ID").pipe(Config.withDefault("recon")),
  replicationFactor: Config.integer("RECON_KAFKA_REPLICATION_FACTOR").pipe(Config.withDefault(1)),
  sessionTimeoutMs: Config.integer("RECON_KAFKA_SESSION_TIMEOUT_MS").pipe(Config.withDefault(30_000)),
  defaultPartitions: Config.integer("RECON_TOPIC_PARTITIONS").pipe(Config.withDefault(4))
})

const tryKafka = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, EventLogError> =>
  Effect.tryPromise({ try: run, catch: (cause) => new EventLogError({ operation, cause }) })

/** kafkajs log fields that never carry record contents; everything else (and any stack) is dropped. */
const loggedFields = [
  "broker",
  "clientId",
  "groupId",
  "memberId",
  "topic",
  "partition",
  "error",
  "retryCount",
  "retryTime",
  "apiName",
  "apiVersion"
] as const

/** Routes kafkajs logs (warn and above) to Effect's logger, with only the fields in `loggedFields`. */
const effectLogCreator =
  (runtime: Runtime.Runtime<never>) =>
  () =>
  (entry: LogEntry): void => {
    const annotations: Record<string, string | number | boolean> = { kafkajs: entry.namespace }
    for (const field of loggedFields) {
      const value: unknown = entry.log[field]
      if (typeof value === "string" || typeof value === "number" || typeof value === "boolean")
        annotations[field] = value
    }
    const level = entry.level === logLevel.ERROR ? LogLevel.Error : LogLevel.Warning
    Runtime.runSync(runtime)(
      Effect.logWithLevel(level, `kafkajs: ${entry.log.message}`).pipe(Effect.annotateLogs(annotations))
    )
  }

const partitionKey = (topic: string, partition: number) => `${topic}\u0000${partition}`

/**
 * A fetched Kafka message seen as a `LogRecord`. The key and the append time are decoded on first read:
 * most readers never look at the key, and building a million plain records per second eagerly cost more
 * than kafkajs' own decoding (bench/services.mjs).
 */
class KafkaLogRecord implements LogRecord {
  readonly offset: number
  readonly value: Uint8Array
  #key: string | null | undefined
  #timestamp: number | undefined
  constructor(
    readonly topic: string,
    readonly partition: number,
    private readonly message: KafkaMessage,
    readonly assignment: number
  ) {
    this.offset = Number(message.offset)
    this.value = message.value ?? new Uint8Array()
  }
  get key(): string | null {
    if (this.#key === undefined)
      this.#key = this.message.key === null ? null : this.message.key.toString("utf8")
    return this.#key
  }
  get timestamp(): number {
    if (this.#timestamp === undefined) this.#timestamp = Number(this.message.timestamp)
    return this.#timestamp
  }
}

const chunksOf = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> => {
  const chunks: Array<ReadonlyArray<A>> = []
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size))
  return chunks
}

const byTopic = (offsets: ReadonlyArray<PartitionOffset>): Map<string, Array<PartitionOffset>> => {
  const grouped = new Map<string, Array<PartitionOffset>>()
  for (const offset of offsets) {
    const list = grouped.get(offset.topic) ?? []
    list.push(offset)
    grouped.set(offset.topic, list)
  }
  return grouped
}

/** The joined consumers of one group in this process; the lock orders commits against their shutdown. */
interface GroupMembers {
  readonly lock: Effect.Semaphore
  readonly consumers: Set<Consumer>
}

/** How far a bounded (`stopAtEnd`) subscription must read in one partition. */
interface PartitionBound {
  readonly end: number
  position: number
}

/**
 * The Kafka event log on kafkajs. The Kafka client, an idempotent producer (acks=all, one request in
 * flight, Java-compatible murmur2 partitioner, so `partitionForKey` predicts every placement) and an admin
 * client live as long as the scope; every subscription gets its own consumer, connected and disconnected
 * within the stream's scope.
 *
 * Subscriptions: kafkajs' `eachBatch` awaits the offer of each batch (split to `maxBatchSize`) into a
 * two-slot queue that the stream reads, heartbeating while it waits, so Kafka fetches no faster than the
 * stream consumes. Offsets are never committed there (`autoCommit: false`); a batch's offsets are only
 * *resolved* once the stream took it, which in kafkajs moves the fetch position and nothing else.
 * `stopAtEnd` reads the end offsets and the group's committed offsets at subscription time and ends the
 * stream once every partition's position reached its end (at once when nothing is left to read).
 *
 * Commits: Kafka accepts a commit for a group with members only from a member (generation and member
 * id), so `commit(group, …)` goes through a live consumer of that group in this process when there is one
 * (a registry of joined consumers per group). With none (typically the final commit of a bounded run whose
 * subscription already ended) it commits as a short-lived member of its own, after checking, as
 * `admin.setOffsets` does, that the group is Empty or Dead: with members in other processes it fails
 * rather than force a rebalance on them. A per-group lock covers each commit and the whole shutdown of
 * that group's consumers, so a commit never reaches a stopping consumer (kafkajs would drop it silently)
 * and the fallback never sees a member of this process that is still leaving.
 */
export const makeKafkaEventLog = (
  options: KafkaEventLogOptions
): Effect.Effect<EventLog, EventLogError, Scope.Scope> =>
  Effect.gen(function* () {
    const replicationFactor = options.replicationFactor ?? 1
    const defaultPartitions = options.defaultPartitions ?? 4
    const maxWaitTimeInMs = options.maxWaitTimeInMs ?? 1000
    const sessionTimeout = options.sessionTimeoutMs ?? 30_000
    const heartbeatInterval = options.heartbeatIntervalMs ?? 3000
    const runtime = yield* Effect.runtime<never>()
    const liveClock = Clock.make()

    const kafka = new Kafka({
      brokers: [...options.brokers],
      clientId: options.clientId ?? "recon",
      logLevel: logLevel.WARN,
      logCreator: effectLogCreator(runtime)
    })
    const admin: Admin = yield* Effect.acquireRelease(
      Effect.suspend(() => {
        const client = kafka.admin()
        return Effect.as(
          tryKafka("connect admin", () => client.connect()),
          client
        )
      }),
      (client) => Effect.promise(() => client.disconnect().catch(() => undefined))
    )
    const producer: Producer = yield* Effect.acquireRelease(
      Effect.suspend(() => {
        const client = kafka.producer({
          idempotent: true,
          maxInFlightRequests: 1,
          allowAutoTopicCreation: false,
          createPartitioner: Partitioners.DefaultPartitioner
        })
        return Effect.as(
          tryKafka("connect producer", () => client.connect()),
          client
        )
      }),
      (client) => Effect.promise(() => client.disconnect().catch(() => undefined))
    )

    const knownTopics = new Set<string>()
    /** Creates a missing topic; an existing one is left as it is (like the embedded log). */
    const ensureTopic = (topic: string, partitions: number): Effect.Effect<void, EventLogError> =>
      knownTopics.has(topic)
        ? Effect.void
        : tryKafka("ensureTopic", async () => {
            const existing = await admin.listTopics()
            if (!existing.includes(topic))
              await admin.createTopics({
                waitForLeaders: true,
                topics: [{ topic, numPartitions: partitions, replicationFactor }]
              })
            knownTopics.add(topic)
          })
    const touch = (topic: string) => ensureTopic(topic, defaultPartitions)

    const groups = new Map<string, GroupMembers>()
    const membersOf = (group: string): GroupMembers => {
      let members = groups.get(group)
      if (members === undefined) {
        members = { lock: Effect.unsafeMakeSemaphore(1), consumers: new Set() }
        groups.set(group, members)
      }
      return members
    }

    const endOffsets = (topic: string) =>
      Effect.zipRight(
        touch(topic),
        tryKafka("endOffsets", () => admin.fetchTopicOffsets(topic)).pipe(
          Effect.map((partitions) =>
            partitions
              .map(({ partition, high, low }) => ({
                topic,
                partition,
                offset: Number(high),
                low: Number(low)
              }))
              .sort((a, b) => a.partition - b.partition)
          )
        )
      )

    const committedOffsets = (group: string, topic: string) =>
      Effect.zipRight(
        touch(topic),
        tryKafka("committedOffsets", () => admin.fetchOffsets({ groupId: group, topics: [topic] })).pipe(
          Effect.map((topics) =>
            (topics.find((entry) => entry.topic === topic)?.partitions ?? [])
              .map(({ partition, offset }) => ({ topic, partition, offset: Math.max(0, Number(offset)) }))
              .sort((a, b) => a.partition - b.partition)
          )
        )
      )

    /** Where a bounded subscription starts (committed offset, else earliest) and must stop, per partition. */
    const boundsOf = (group: string, topics: ReadonlyArray<string>) =>
      Effect.gen(function* () {
        const bounds = new Map<string, PartitionBound>()
        for (const topic of topics) {
          const ends = yield* endOffsets(topic)
          const committed = yield* tryKafka("subscribe", () =>
            admin.fetchOffsets({ groupId: group, topics: [topic] })
          )
          const committedByPartition = new Map(
            (committed.find((entry) => entry.topic === topic)?.partitions ?? []).map(
              ({ partition, offset }) => [partition, Number(offset)] as const
            )
          )
          for (const { partition, offset, low } of ends) {
            const start = committedByPartition.get(partition) ?? -1
            bounds.set(partitionKey(topic, partition), { end: offset, position: start >= 0 ? start : low })
          }
        }
        return bounds
      })

    const subscribe = (
      group: string,
      topics: ReadonlyArray<string>,
      subscribeOptions: SubscribeOptions = {}
    ): Stream.Stream<ReadonlyArray<LogRecord>, EventLogError> =>
      Stream.unwrapScoped(
        Effect.gen(function* () {
          const maxBatchSize = Math.max(1, subscribeOptions.maxBatchSize ?? 10_000)
          yield* Effect.forEach(topics, touch, { discard: true })
          const bounds = subscribeOptions.stopAtEnd === true ? yield* boundsOf(group, topics) : undefined
          const reachedEnd = () =>
            bounds !== undefined && [...bounds.values()].every((bound) => bound.position >= bound.end)
          if (reachedEnd()) return Stream.empty

          const queue = yield* Queue.bounded<Take.Take<ReadonlyArray<LogRecord>, EventLogError>>(2)
          const members = membersOf(group)
          let closing = false
          let assignment = 0

          /**
           * Hands a take to the stream: at once when the queue has room, otherwise waiting and heartbeating
           * meanwhile; false once the stream is gone.
           */
          const deliver = (
            take: Take.Take<ReadonlyArray<LogRecord>, EventLogError>,
            heartbeat: () => Promise<void>
          ): Promise<boolean> =>
            Queue.unsafeOffer(queue, take)
              ? Promise.resolve(true)
              : Runtime.runPromiseExit(runtime)(
                  Effect.scoped(
                    Effect.zipRight(
                      Effect.forkScoped(
                        Effect.tryPromise(heartbeat).pipe(
                          Effect.ignore,
                          Effect.repeat(Schedule.spaced(heartbeatInterval)),
                          Effect.withClock(liveClock)
                        )
                      ),
                      Queue.offer(queue, take)
                    )
                  )
                ).then(Exit.isSuccess)

          const eachBatch = async ({ batch, resolveOffset, heartbeat, isRunning }: EachBatchPayload) => {
            const key = partitionKey(batch.topic, batch.partition)
            const bound = bounds?.get(key)
            const end = bounds === undefined ? Number.POSITIVE_INFINITY : (bound?.end ?? 0)
            const lastOffset = Number(batch.lastOffset())
            const records: Array<LogRecord> = []
            for (const message of batch.messages) {
              const record = new KafkaLogRecord(batch.topic, batch.partition, message, assignment)
              if (lastOffset < end || record.offset < end) records.push(record)
            }
            for (const chunk of chunksOf(records, maxBatchSize)) {
              if (!isRunning() || closing) return
              if (!(await deliver(Take.of(chunk), heartbeat))) return
              resolveOffset(String(chunk[chunk.length - 1]!.offset))
            }
            resolveOffset(batch.lastOffset())
            if (bound !== undefined) {
              bound.position = Math.max(bound.position, lastOffset + 1)
              if (reachedEnd()) await deliver(Take.end, heartbeat)
            }
          }

          yield* Effect.acquireRelease(
            Effect.gen(function* () {
              const consumer = kafka.consumer({
                groupId: group,
                allowAutoTopicCreation: false,
                maxWaitTimeInMs,
                sessionTimeout,
                heartbeatInterval
              })
              consumer.on(consumer.events.GROUP_JOIN, () => {
                assignment++
                if (!closing) members.consumers.add(consumer)
              })
              consumer.on(consumer.events.CRASH, ({ payload }) => {
                members.consumers.delete(consumer)
                if (!payload.restart)
                  Runtime.runFork(runtime)(
                    Queue.offer(
                      queue,
                      Take.fail(new EventLogError({ operation: "subscribe", cause: payload.error }))
                    )
                  )
              })
              yield* tryKafka("subscribe", async () => {
                await consumer.connect()
                await consumer.subscribe({ topics: [...topics], fromBeginning: true })
                await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch })
              }).pipe(
                Effect.tapError(() => Effect.promise(() => consumer.disconnect().catch(() => undefined)))
              )
              return consumer
            }),
            (consumer) =>
              Effect.gen(function* () {
                closing = true
                members.consumers.delete(consumer)
                yield* Queue.shutdown(queue)
                yield* Effect.promise(() => consumer.disconnect().catch(() => undefined))
              }).pipe(members.lock.withPermits(1))
          )
          return Stream.fromQueue(queue).pipe(Stream.flattenTake)
        })
      )

    const commitThroughConsumer = (consumer: Consumer, offsets: ReadonlyArray<PartitionOffset>) =>
      tryKafka("commit", () =>
        consumer.commitOffsets(
          offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset: String(offset) }))
        )
      )

    /**
     * Commits for a group with no member in this process, as `admin.setOffsets` does (refused unless the
     * group is Empty or Dead) but with one short-lived member for all topics, not one slow join per topic.
     */
    const commitAsTransientMember = (group: string, offsets: ReadonlyArray<PartitionOffset>) =>
      Effect.acquireUseRelease(
        Effect.sync(() =>
          kafka.consumer({
            groupId: group,
            allowAutoTopicCreation: false,
            maxWaitTimeInMs: 100,
            sessionTimeout
          })
        ),
        (consumer) =>
          tryKafka("commit", async () => {
            const { groups: described } = await admin.describeGroups([group])
            const state = described.find((entry) => entry.groupId === group)?.state ?? "Dead"
            if (state !== "Empty" && state !== "Dead")
              throw new Error(
                `group ${group} has members outside this process (state ${state}); cannot commit`
              )
            const topics = [...byTopic(offsets).keys()]
            let joined = false
            consumer.on(consumer.events.GROUP_JOIN, () => {
              joined = true
            })
            await consumer.connect()
            await consumer.subscribe({ topics, fromBeginning: true })
            await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: async () => {} })
            consumer.pause(topics.map((topic) => ({ topic })))
            if (!joined) throw new Error(`could not join group ${group} to commit`)
            await consumer.commitOffsets(
              offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset: String(offset) }))
            )
          }),
        (consumer) => Effect.promise(() => consumer.disconnect().catch(() => undefined))
      )

    const log: EventLog = {
      describe: `kafka ${options.brokers.join(",")}`,
      instance: "",
      ensureTopic,
      produce: (topic, messages) =>
        messages.length === 0
          ? Effect.void
          : Effect.zipRight(
              touch(topic),
              tryKafka("produce", () =>
                producer.send({
                  topic,
                  acks: -1,
                  messages: messages.map(({ key, value }) => ({
                    key,
                    value: Buffer.isBuffer(value)
                      ? value
                      : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
                  }))
                })
              )
            ),
      subscribe,
      commit: (group, offsets) => {
        if (offsets.length === 0) return Effect.void
        const members = membersOf(group)
        return members.lock.withPermits(1)(
          Effect.suspend(() => {
            const [live] = members.consumers
            return live === undefined
              ? commitAsTransientMember(group, offsets)
              : commitThroughConsumer(live, offsets)
          })
        )
      },
      committedOffsets,
      endOffsets: (topic) =>
        Effect.map(endOffsets(topic), (ends) =>
          ends.map(({ topic, partition, offset }) => ({ topic, partition, offset }))
        )
    }
    return log
  })

/** The Kafka event log as the `EventLogService`, clients released with the layer. */
export const layerKafka = (options: KafkaEventLogOptions) =>
  Layer.scoped(EventLogService, makeKafkaEventLog(options))

/** {@link layerKafka} with the settings of {@link kafkaEventLogConfig}. */
export const layerKafkaConfig = Layer.scoped(
  EventLogService,
  Effect.flatMap(kafkaEventLogConfig, makeKafkaEventLog)
)
