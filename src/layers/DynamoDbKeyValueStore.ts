import {
  type AttributeValue,
  BatchWriteItemCommand,
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  type WriteRequest
} from "@aws-sdk/client-dynamodb"
import { KeyValueStore } from "@effect/platform"
import { SystemError } from "@effect/platform/Error"
import { Clock, Config, Data, Duration, Effect, Layer, Option, Redacted, Schedule } from "effect"
import { kvTtlSecondsConfig } from "./KeyValueStore.js"
import { awsRetrySchedule, isRetryableAwsError } from "./S3ObjectStore.js"

/** How to reach DynamoDB (or dynalite) and which table holds the store. */
export interface DynamoDbSettings {
  /** e.g. `http://127.0.0.1:18000`; absent means AWS itself. */
  readonly endpoint: Option.Option<string>
  readonly region: string
  readonly accessKeyId: Redacted.Redacted
  readonly secretAccessKey: Redacted.Redacted
  readonly table: string
  /** SDK attempts per call (first try included). Default 8. */
  readonly maxAttempts?: number
  /** Items per Scan page for `clear` and `size` (DynamoDB's own cap is 1 MB a page). */
  readonly scanPageSize?: number
  /** Every written item expires this many seconds later (`expires_at`); none when absent. */
  readonly ttlSeconds?: number
}

/** A DynamoDB call failed; `cause` is what the SDK threw. */
class DynamoDbCallFailed extends Data.TaggedError("DynamoDbCallFailed")<{ readonly cause: unknown }> {}

/** The table exists but is not ACTIVE yet (or was just created). */
class TableNotActive extends Data.TaggedError("TableNotActive")<{ readonly status: string }> {}

const describeCause = (cause: unknown) =>
  cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)

const toSystemError =
  (table: string, method: string, key: string | undefined) => (failure: DynamoDbCallFailed) =>
    new SystemError({
      reason: "Unknown",
      module: "KeyValueStore",
      method,
      ...(key === undefined ? {} : { pathOrDescriptor: key }),
      description: `dynamodb ${method} on table ${table} failed: ${describeCause(failure.cause)}`,
      cause: failure.cause
    })

const retrySchedule = awsRetrySchedule(6, Duration.millis(100))

const call = <A>(send: (abortSignal: AbortSignal) => Promise<A>): Effect.Effect<A, DynamoDbCallFailed> =>
  Effect.tryPromise({ try: send, catch: (cause) => new DynamoDbCallFailed({ cause }) }).pipe(
    Effect.retry({ schedule: retrySchedule, while: (failure) => isRetryableAwsError(failure.cause) })
  )

const encoder = new TextEncoder()
const decoder = new TextDecoder()

const itemValue = (value: string | Uint8Array): AttributeValue =>
  typeof value === "string" ? { S: value } : { B: Uint8Array.from(value) }

const asString = (value: AttributeValue | undefined): Option.Option<string> =>
  value?.S !== undefined
    ? Option.some(value.S)
    : value?.B !== undefined
      ? Option.some(decoder.decode(value.B))
      : Option.none()

const asBytes = (value: AttributeValue | undefined): Option.Option<Uint8Array> =>
  value?.B !== undefined
    ? Option.some(new Uint8Array(value.B))
    : value?.S !== undefined
      ? Option.some(encoder.encode(value.S))
      : Option.none()

const batchWriteLimit = 25

/**
 * A {@link KeyValueStore.KeyValueStore} over one DynamoDB table: partition key `k` (string), value `v`
 * (a string stays `S`, bytes are `B`). Reads are strongly consistent; `clear` and `size` walk the table
 * with a paginated Scan, which suits a store of aggregates, not a huge table. DynamoDB caps an item at
 * 400 KB, so larger values fail.
 */
/** The item attribute holding the expiry (epoch seconds): enable DynamoDB TTL on it for the table. */
export const expiresAttribute = "expires_at"

export const makeDynamoDbKeyValueStore = (
  client: DynamoDBClient,
  table: string,
  options: { readonly scanPageSize?: number; readonly ttlSeconds?: number } = {}
): KeyValueStore.KeyValueStore => {
  const getValue = (method: string, key: string) =>
    call((abortSignal) =>
      client.send(new GetItemCommand({ TableName: table, Key: { k: { S: key } }, ConsistentRead: true }), {
        abortSignal
      })
    ).pipe(
      Effect.flatMap((answer) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          // DynamoDB deletes expired items lazily (within days): an expired one reads as absent.
          const expiresAt = answer.Item?.[expiresAttribute]?.N
          return expiresAt !== undefined && Number(expiresAt) * 1000 <= now ? undefined : answer.Item?.v
        })
      ),
      Effect.mapError(toSystemError(table, method, key))
    )
  const expiry = (now: number) =>
    options.ttlSeconds === undefined
      ? {}
      : { [expiresAttribute]: { N: String(Math.floor(now / 1000) + options.ttlSeconds) } }

  const scanKeys = (onPage: (keys: ReadonlyArray<string>) => Effect.Effect<void, DynamoDbCallFailed>) =>
    Effect.gen(function* () {
      let startKey: Record<string, AttributeValue> | undefined
      do {
        const exclusiveStartKey = startKey
        const page = yield* call((abortSignal) =>
          client.send(
            new ScanCommand({
              TableName: table,
              ProjectionExpression: "k",
              ConsistentRead: true,
              ...(options.scanPageSize === undefined ? {} : { Limit: options.scanPageSize }),
              ...(exclusiveStartKey === undefined ? {} : { ExclusiveStartKey: exclusiveStartKey })
            }),
            { abortSignal }
          )
        )
        const keys = (page.Items ?? []).flatMap((item) => (item.k?.S === undefined ? [] : [item.k.S]))
        if (keys.length > 0) yield* onPage(keys)
        startKey = page.LastEvaluatedKey
      } while (startKey !== undefined)
    })

  const deleteBatch = (keys: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      let pending: Array<WriteRequest> = keys.map((key) => ({ DeleteRequest: { Key: { k: { S: key } } } }))
      let round = 0
      while (pending.length > 0) {
        const requests = pending
        const answer = yield* call((abortSignal) =>
          client.send(new BatchWriteItemCommand({ RequestItems: { [table]: requests } }), { abortSignal })
        )
        pending = answer.UnprocessedItems?.[table] ?? []
        if (pending.length > 0) {
          round += 1
          if (round > 10) {
            return yield* new DynamoDbCallFailed({ cause: `${pending.length} deletes left unprocessed` })
          }
          yield* Effect.sleep(Duration.millis(Math.min(2000, 50 * 2 ** round)))
        }
      }
    })

  return KeyValueStore.make({
    get: (key) => Effect.map(getValue("get", key), asString),
    getUint8Array: (key) => Effect.map(getValue("getUint8Array", key), asBytes),
    has: (key) => Effect.map(getValue("has", key), (value) => value !== undefined),
    set: (key, value) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        call((abortSignal) =>
          client.send(
            new PutItemCommand({
              TableName: table,
              Item: { k: { S: key }, v: itemValue(value), ...expiry(now) }
            }),
            { abortSignal }
          )
        )
      ).pipe(Effect.asVoid, Effect.mapError(toSystemError(table, "set", key))),
    remove: (key) =>
      call((abortSignal) =>
        client.send(new DeleteItemCommand({ TableName: table, Key: { k: { S: key } } }), { abortSignal })
      ).pipe(Effect.asVoid, Effect.mapError(toSystemError(table, "remove", key))),
    clear: scanKeys((keys) =>
      Effect.forEach(
        Array.from({ length: Math.ceil(keys.length / batchWriteLimit) }, (_, index) =>
          keys.slice(index * batchWriteLimit, (index + 1) * batchWriteLimit)
        ),
        deleteBatch,
        { concurrency: 4, discard: true }
      )
    ).pipe(Effect.mapError(toSystemError(table, "clear", undefined))),
    size: Effect.suspend(() => {
      let count = 0
      return scanKeys((keys) =>
        Effect.sync(() => {
          count += keys.length
        })
      ).pipe(
        Effect.map(() => count),
        Effect.mapError(toSystemError(table, "size", undefined))
      )
    })
  })
}

/**
 * Creates the table (`k` string partition key, on-demand billing) unless it exists, then waits until it
 * is ACTIVE (at most a minute).
 */
export const ensureTable = (client: DynamoDBClient, table: string): Effect.Effect<void, SystemError> => {
  const describeStatus = call((abortSignal) =>
    client
      .send(new DescribeTableCommand({ TableName: table }), { abortSignal })
      .then((answer) => Option.fromNullable(answer.Table?.TableStatus))
      .catch((error: unknown) => {
        if (error instanceof Error && error.name === "ResourceNotFoundException") return Option.none<string>()
        throw error
      })
  )
  const create = call((abortSignal) =>
    client
      .send(
        new CreateTableCommand({
          TableName: table,
          AttributeDefinitions: [{ AttributeName: "k", AttributeType: "S" }],
          KeySchema: [{ AttributeName: "k", KeyType: "HASH" }],
          BillingMode: "PAY_PER_REQUEST"
        }),
        { abortSignal }
      )
      .then(
        () => undefined,
        (error: unknown) => {
          if (error instanceof Error && error.name === "ResourceInUseException") return undefined
          throw error
        }
      )
  )
  const waitUntilActive = describeStatus.pipe(
    Effect.filterOrFail(
      (status) => Option.contains(status, "ACTIVE"),
      (status) => new TableNotActive({ status: Option.getOrElse(status, () => "missing") })
    ),
    Effect.retry({
      schedule: Schedule.spaced(Duration.millis(100)).pipe(Schedule.upTo(Duration.minutes(1))),
      while: (failure) => failure._tag === "TableNotActive"
    }),
    Effect.catchTag("TableNotActive", (failure) =>
      Effect.fail(new DynamoDbCallFailed({ cause: `table still ${failure.status} after a minute` }))
    )
  )
  return Effect.gen(function* () {
    const status = yield* describeStatus
    if (Option.isNone(status)) yield* create
    yield* waitUntilActive
  }).pipe(Effect.asVoid, Effect.mapError(toSystemError(table, "ensureTable", undefined)))
}

/** A DynamoDB client with the SDK's retries configured, destroyed when the scope closes. */
export const acquireDynamoDbClient = (settings: DynamoDbSettings) =>
  Effect.acquireRelease(
    Effect.sync(
      () =>
        new DynamoDBClient({
          ...Option.match(settings.endpoint, { onNone: () => ({}), onSome: (endpoint) => ({ endpoint }) }),
          region: settings.region,
          credentials: {
            accessKeyId: Redacted.value(settings.accessKeyId),
            secretAccessKey: Redacted.value(settings.secretAccessKey)
          },
          maxAttempts: settings.maxAttempts ?? 8,
          retryMode: "standard"
        })
    ),
    (client) => Effect.sync(() => client.destroy())
  )

/** The DynamoDB key-value store: client opened with the layer, table created if missing. */
export const layer = (settings: DynamoDbSettings) =>
  Layer.scoped(
    KeyValueStore.KeyValueStore,
    Effect.gen(function* () {
      const client = yield* acquireDynamoDbClient(settings)
      yield* ensureTable(client, settings.table)
      return makeDynamoDbKeyValueStore(client, settings.table, {
        ...(settings.scanPageSize === undefined ? {} : { scanPageSize: settings.scanPageSize }),
        ...(settings.ttlSeconds === undefined ? {} : { ttlSeconds: settings.ttlSeconds })
      })
    })
  )

/**
 * {@link DynamoDbSettings} from `RECON_DYNAMODB_ENDPOINT`, `RECON_DYNAMODB_TABLE` (default `recon-kv`),
 * `RECON_DYNAMODB_REGION` (else `RECON_S3_REGION`, else `us-east-1`) and `RECON_DYNAMODB_ACCESS_KEY_ID` /
 * `RECON_DYNAMODB_SECRET_ACCESS_KEY` (default `local`/`local`, which dynalite accepts).
 */
export const dynamoDbSettingsConfig: Config.Config<DynamoDbSettings> = Config.all({
  endpoint: Config.option(Config.string("RECON_DYNAMODB_ENDPOINT")),
  table: Config.string("RECON_DYNAMODB_TABLE").pipe(Config.withDefault("recon-kv")),
  region: Config.string("RECON_DYNAMODB_REGION").pipe(
    Config.orElse(() => Config.string("RECON_S3_REGION")),
    Config.withDefault("us-east-1")
  ),
  accessKeyId: Config.redacted("RECON_DYNAMODB_ACCESS_KEY_ID").pipe(
    Config.withDefault(Redacted.make("local"))
  ),
  secretAccessKey: Config.redacted("RECON_DYNAMODB_SECRET_ACCESS_KEY").pipe(
    Config.withDefault(Redacted.make("local"))
  )
})

/** {@link layer} from {@link dynamoDbSettingsConfig}; items do not expire. */
export const layerConfig = Layer.unwrapEffect(Effect.map(dynamoDbSettingsConfig, layer))

/** {@link layerConfig} whose items expire after `RECON_KV_TTL_SECONDS` when set (the aggregation's figures). */
export const layerConfigExpiring = Layer.unwrapEffect(
  Effect.map(
    Config.all({ settings: dynamoDbSettingsConfig, ttlSeconds: kvTtlSecondsConfig }),
    ({ settings, ttlSeconds }) =>
      layer(Option.isSome(ttlSeconds) ? { ...settings, ttlSeconds: ttlSeconds.value } : settings)
  )
)
