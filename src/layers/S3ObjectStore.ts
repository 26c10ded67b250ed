import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs/promises"
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import { Config, Context, Data, Duration, Effect, Layer, Option, Redacted, Schedule } from "effect"
import { ObjectStoreError } from "../domain/errors.js"
import { type ObjectInfo, type ObjectStore, ProcessedBucket, RawBucket } from "./ObjectStore.js"

const MiB = 1024 * 1024

/** How to reach an S3-compatible server. */
export interface S3Settings {
  /** e.g. `http://127.0.0.1:19000`; absent means AWS itself. */
  readonly endpoint: Option.Option<string>
  readonly region: string
  readonly accessKeyId: Redacted.Redacted
  readonly secretAccessKey: Redacted.Redacted
  /** `http://host/bucket/key` instead of `http://bucket.host/key`; local servers need it. */
  readonly forcePathStyle: boolean
  /** Attempts per call inside the SDK (first try included), with its own exponential backoff. Default 8. */
  readonly maxAttempts?: number
}

/** Tuning for {@link makeS3ObjectStore}. */
export interface S3ObjectStoreOptions {
  /** Bodies strictly larger than this go up as a multipart upload. Default 16 MiB. */
  readonly multipartThreshold?: number
  /** Size of every part but the last. S3 refuses parts under 5 MiB (except the last). Default 8 MiB. */
  readonly partSize?: number
  /** Parts uploaded at once. Default 4. */
  readonly partConcurrency?: number
  /** Retries of a call on top of the SDK's own, for retryable failures only. Default 6. */
  readonly retries?: number
  /** First delay of the exponential, jittered retry schedule. Default 200 millis. */
  readonly retryBaseDelay?: Duration.DurationInput
  /** `Content-MD5` on every upload so the server refuses a corrupted body. Default true. */
  readonly contentMd5?: boolean
}

/** A call to S3 failed; `cause` is what the SDK threw. */
class S3CallFailed extends Data.TaggedError("S3CallFailed")<{ readonly cause: unknown }> {}

const retryableErrorNames = new Set([
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "ThrottledException",
  "RequestThrottled",
  "RequestThrottledException",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "ProvisionedThroughputExceededException",
  "RequestTimeout",
  "RequestTimeoutException",
  "InternalError",
  "InternalServerError",
  "ServiceUnavailable",
  "TimeoutError"
])

const retryableNetworkCodes = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "UND_ERR_SOCKET"
])

/**
 * Whether an AWS SDK failure is worth another try: a 5xx or 429 answer, a throttling or timeout error
 * code, or a dropped connection. Client errors (4xx such as NoSuchKey, AccessDenied) are not.
 */
export const isRetryableAwsError = (error: unknown): boolean => {
  if (typeof error !== "object" || error === null) return false
  const candidate = error as {
    readonly name?: unknown
    readonly code?: unknown
    readonly $metadata?: { readonly httpStatusCode?: unknown }
    readonly $retryable?: unknown
    readonly cause?: unknown
  }
  const status = candidate.$metadata?.httpStatusCode
  if (typeof status === "number" && (status >= 500 || status === 429)) return true
  if (candidate.$retryable !== undefined && candidate.$retryable !== null) return true
  if (typeof candidate.name === "string" && retryableErrorNames.has(candidate.name)) return true
  if (typeof candidate.code === "string" && retryableNetworkCodes.has(candidate.code)) return true
  return candidate.cause !== undefined && candidate.cause !== error && isRetryableAwsError(candidate.cause)
}

const httpStatusOf = (error: unknown): number | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  const status = (error as { readonly $metadata?: { readonly httpStatusCode?: unknown } }).$metadata
    ?.httpStatusCode
  return typeof status === "number" ? status : undefined
}

const errorNameOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && typeof (error as { name?: unknown }).name === "string"
    ? (error as { name: string }).name
    : undefined

const isMissingObject = (error: unknown): boolean => {
  const name = errorNameOf(error)
  return (
    name === "NoSuchKey" || name === "NotFound" || (httpStatusOf(error) === 404 && name !== "NoSuchBucket")
  )
}

const compareKeys = (a: ObjectInfo, b: ObjectInfo) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)

const md5Base64 = (body: Uint8Array) => NodeCrypto.createHash("md5").update(body).digest("base64")

/** The exponential, jittered, bounded schedule used around every S3 and DynamoDB call. */
export const awsRetrySchedule = (retries: number, baseDelay: Duration.DurationInput) =>
  Schedule.exponential(baseDelay, 2).pipe(
    Schedule.jittered,
    Schedule.union(Schedule.spaced(Duration.seconds(5))),
    Schedule.intersect(Schedule.recurs(retries))
  )

/** Builds an S3 client with the SDK's retries configured; the caller destroys it. */
export const makeS3Client = (settings: S3Settings): S3Client =>
  new S3Client({
    ...Option.match(settings.endpoint, { onNone: () => ({}), onSome: (endpoint) => ({ endpoint }) }),
    region: settings.region,
    credentials: {
      accessKeyId: Redacted.value(settings.accessKeyId),
      secretAccessKey: Redacted.value(settings.secretAccessKey)
    },
    forcePathStyle: settings.forcePathStyle,
    maxAttempts: settings.maxAttempts ?? 8,
    retryMode: "standard",
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED"
  })

/**
 * An {@link ObjectStore} over one S3 bucket. Bodies above `multipartThreshold` go up as a multipart
 * upload (aborted if any part fails); listings follow continuation tokens to the end; every call is
 * retried with jittered exponential backoff on 5xx, throttling and dropped connections.
 */
export const makeS3ObjectStore = (
  client: S3Client,
  bucket: string,
  options: S3ObjectStoreOptions = {}
): ObjectStore => {
  const multipartThreshold = options.multipartThreshold ?? 16 * MiB
  const partSize = Math.max(1, options.partSize ?? 8 * MiB)
  const partConcurrency = Math.max(1, options.partConcurrency ?? 4)
  const contentMd5 = options.contentMd5 ?? true
  const retrySchedule = awsRetrySchedule(options.retries ?? 6, options.retryBaseDelay ?? Duration.millis(200))

  const call = <A>(send: (abortSignal: AbortSignal) => Promise<A>): Effect.Effect<A, S3CallFailed> =>
    Effect.tryPromise({ try: send, catch: (cause) => new S3CallFailed({ cause }) }).pipe(
      Effect.retry({ schedule: retrySchedule, while: (failure) => isRetryableAwsError(failure.cause) })
    )

  const toStoreError = (operation: string, key: string) => (failure: S3CallFailed) =>
    new ObjectStoreError({ operation, key, cause: failure.cause })

  const md5Of = (body: Uint8Array) => (contentMd5 ? { ContentMD5: md5Base64(body) } : {})

  const putSingle = (key: string, body: Uint8Array) =>
    call((abortSignal) =>
      client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentLength: body.byteLength,
          ...md5Of(body)
        }),
        { abortSignal }
      )
    )

  /** A multipart upload of `size` bytes whose parts `readPart(offset, length)` supplies as they go up. */
  const putMultipart = (
    key: string,
    size: number,
    readPart: (offset: number, length: number) => Effect.Effect<Uint8Array, S3CallFailed>
  ) =>
    Effect.gen(function* () {
      const created = yield* call((abortSignal) =>
        client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }), { abortSignal })
      )
      const uploadId = created.UploadId
      if (uploadId === undefined) {
        return yield* new S3CallFailed({ cause: "CreateMultipartUpload answered without an UploadId" })
      }
      const partCount = Math.ceil(size / partSize)
      const partNumbers = Array.from({ length: partCount }, (_, index) => index + 1)
      const upload = Effect.gen(function* () {
        const parts = yield* Effect.forEach(
          partNumbers,
          (partNumber) => {
            const offset = (partNumber - 1) * partSize
            return Effect.flatMap(readPart(offset, Math.min(size, offset + partSize) - offset), (part) =>
              call((abortSignal) =>
                client.send(
                  new UploadPartCommand({
                    Bucket: bucket,
                    Key: key,
                    UploadId: uploadId,
                    PartNumber: partNumber,
                    Body: part,
                    ContentLength: part.byteLength,
                    ...md5Of(part)
                  }),
                  { abortSignal }
                )
              ).pipe(
                Effect.flatMap((answer) =>
                  answer.ETag === undefined
                    ? Effect.fail(
                        new S3CallFailed({ cause: `UploadPart ${partNumber} answered without an ETag` })
                      )
                    : Effect.succeed({ PartNumber: partNumber, ETag: answer.ETag })
                )
              )
            )
          },
          { concurrency: partConcurrency }
        )
        yield* call((abortSignal) =>
          client.send(
            new CompleteMultipartUploadCommand({
              Bucket: bucket,
              Key: key,
              UploadId: uploadId,
              MultipartUpload: { Parts: parts }
            }),
            { abortSignal }
          )
        )
      })
      yield* upload.pipe(
        Effect.onError(() =>
          call((abortSignal) =>
            client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }), {
              abortSignal
            })
          ).pipe(Effect.ignore)
        )
      )
    })

  const listPage = (prefix: string, continuationToken: string | undefined) =>
    call((abortSignal) =>
      client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix,
          ...(continuationToken === undefined ? {} : { ContinuationToken: continuationToken })
        }),
        { abortSignal }
      )
    )

  return {
    describe: `s3://${bucket}`,
    put: (key, body) =>
      (body.byteLength > multipartThreshold
        ? putMultipart(key, body.byteLength, (offset, length) =>
            Effect.succeed(body.subarray(offset, offset + length))
          )
        : putSingle(key, body)
      ).pipe(
        Effect.asVoid,
        Effect.mapError(toStoreError("put", key)),
        Effect.withSpan("S3ObjectStore.put", { attributes: { bucket, key, size: body.byteLength } })
      ),
    putFile: (key, path) =>
      Effect.gen(function* () {
        const size = (yield* Effect.tryPromise({
          try: () => NodeFs.stat(path),
          catch: (cause) => new S3CallFailed({ cause })
        })).size
        if (size <= multipartThreshold) {
          const body = yield* Effect.tryPromise({
            try: async () => new Uint8Array(await NodeFs.readFile(path)),
            catch: (cause) => new S3CallFailed({ cause })
          })
          return yield* putSingle(key, body)
        }
        const file = yield* Effect.acquireRelease(
          Effect.tryPromise({
            try: () => NodeFs.open(path, "r"),
            catch: (cause) => new S3CallFailed({ cause })
          }),
          (handle) => Effect.promise(() => handle.close())
        )
        return yield* putMultipart(key, size, (offset, length) =>
          Effect.tryPromise({
            try: async () => {
              const part = new Uint8Array(length)
              const { bytesRead } = await file.read(part, 0, length, offset)
              if (bytesRead !== length)
                throw new Error(`${path} changed while uploading (short read at ${offset})`)
              return part
            },
            catch: (cause) => new S3CallFailed({ cause })
          })
        )
      }).pipe(
        Effect.scoped,
        Effect.asVoid,
        Effect.mapError(toStoreError("putFile", key)),
        Effect.withSpan("S3ObjectStore.putFile", { attributes: { bucket, key, path } })
      ),
    get: (key) =>
      call(async (abortSignal) => {
        try {
          const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), {
            abortSignal
          })
          if (answer.Body === undefined) return Option.some(new Uint8Array())
          return Option.some(await answer.Body.transformToByteArray())
        } catch (error) {
          if (isMissingObject(error)) return Option.none<Uint8Array>()
          throw error
        }
      }).pipe(
        Effect.mapError(toStoreError("get", key)),
        Effect.withSpan("S3ObjectStore.get", { attributes: { bucket, key } })
      ),
    list: (prefix) =>
      Effect.gen(function* () {
        const found: Array<ObjectInfo> = []
        let continuationToken: string | undefined
        do {
          const page = yield* listPage(prefix, continuationToken)
          for (const entry of page.Contents ?? []) {
            if (entry.Key !== undefined) found.push({ key: entry.Key, size: entry.Size ?? 0 })
          }
          continuationToken = page.IsTruncated === true ? page.NextContinuationToken : undefined
        } while (continuationToken !== undefined)
        return found.sort(compareKeys)
      }).pipe(
        Effect.mapError(toStoreError("list", prefix)),
        Effect.withSpan("S3ObjectStore.list", { attributes: { bucket, prefix } })
      ),
    delete: (key) =>
      call((abortSignal) =>
        client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal })
      ).pipe(
        Effect.asVoid,
        Effect.mapError(toStoreError("delete", key)),
        Effect.withSpan("S3ObjectStore.delete", { attributes: { bucket, key } })
      ),
    localPath: () => Option.none()
  }
}

/** Creates the bucket unless it already exists (and is ours). */
export const ensureBucket = (client: S3Client, bucket: string): Effect.Effect<void, ObjectStoreError> =>
  Effect.tryPromise({
    try: async (abortSignal) => {
      try {
        await client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal })
        return
      } catch (error) {
        if (
          httpStatusOf(error) !== 404 &&
          errorNameOf(error) !== "NotFound" &&
          errorNameOf(error) !== "NoSuchBucket"
        ) {
          throw error
        }
      }
      try {
        await client.send(new CreateBucketCommand({ Bucket: bucket }), { abortSignal })
      } catch (error) {
        if (errorNameOf(error) !== "BucketAlreadyOwnedByYou") throw error
      }
    },
    catch: (cause) => new S3CallFailed({ cause })
  }).pipe(
    Effect.retry({
      schedule: awsRetrySchedule(6, Duration.millis(200)),
      while: (failure) => isRetryableAwsError(failure.cause)
    }),
    Effect.mapError(
      (failure) => new ObjectStoreError({ operation: "ensureBucket", key: bucket, cause: failure.cause })
    )
  )

/** {@link S3Settings} from `RECON_S3_*`; credentials default to s3rver's `S3RVER`/`S3RVER`. */
export const s3SettingsConfig: Config.Config<S3Settings> = Config.all({
  endpoint: Config.option(Config.string("RECON_S3_ENDPOINT")),
  region: Config.string("RECON_S3_REGION").pipe(Config.withDefault("us-east-1")),
  accessKeyId: Config.redacted("RECON_S3_ACCESS_KEY_ID").pipe(Config.withDefault(Redacted.make("S3RVER"))),
  secretAccessKey: Config.redacted("RECON_S3_SECRET_ACCESS_KEY").pipe(
    Config.withDefault(Redacted.make("S3RVER"))
  ),
  forcePathStyle: Config.boolean("RECON_S3_FORCE_PATH_STYLE").pipe(Config.withDefault(true))
})

/** A scoped S3 client: destroyed (sockets closed) when the scope closes. */
export const acquireS3Client = (settings: S3Settings) =>
  Effect.acquireRelease(
    Effect.sync(() => makeS3Client(settings)),
    (client) => Effect.sync(() => client.destroy())
  )

/** The S3 client shared by both buckets. */
export class S3 extends Context.Tag("S3")<S3, S3Client>() {
  static readonly layer = (settings: S3Settings) => Layer.scoped(S3, acquireS3Client(settings))
  /** From `RECON_S3_ENDPOINT`, `RECON_S3_REGION`, `RECON_S3_ACCESS_KEY_ID`, `RECON_S3_SECRET_ACCESS_KEY`, `RECON_S3_FORCE_PATH_STYLE`. */
  static readonly layerConfig = Layer.scoped(S3, Effect.flatMap(s3SettingsConfig, acquireS3Client))
}

const bucketStore = (bucket: string, options: S3ObjectStoreOptions) =>
  Effect.flatMap(S3, (client) =>
    Effect.as(ensureBucket(client, bucket), makeS3ObjectStore(client, bucket, options))
  )

/** {@link RawBucket} on the named S3 bucket (created if missing). */
export const layerRawBucket = (bucket: string, options: S3ObjectStoreOptions = {}) =>
  Layer.effect(RawBucket, bucketStore(bucket, options))

/** {@link ProcessedBucket} on the named S3 bucket (created if missing). */
export const layerProcessedBucket = (bucket: string, options: S3ObjectStoreOptions = {}) =>
  Layer.effect(ProcessedBucket, bucketStore(bucket, options))

/** {@link RawBucket} on `RECON_S3_RAW_BUCKET` (default `recon-raw`). Needs {@link S3}. */
export const layerRawBucketConfig = Layer.unwrapEffect(
  Effect.map(Config.string("RECON_S3_RAW_BUCKET").pipe(Config.withDefault("recon-raw")), (bucket) =>
    layerRawBucket(bucket)
  )
)

/** {@link ProcessedBucket} on `RECON_S3_PROCESSED_BUCKET` (default `recon-processed`). Needs {@link S3}. */
export const layerProcessedBucketConfig = Layer.unwrapEffect(
  Effect.map(
    Config.string("RECON_S3_PROCESSED_BUCKET").pipe(Config.withDefault("recon-processed")),
    (bucket) => layerProcessedBucket(bucket)
  )
)

/** Both buckets on S3, with one client built from config and closed with the layer. */
export const layerBucketsConfig = Layer.merge(layerRawBucketConfig, layerProcessedBucketConfig).pipe(
  Layer.provide(S3.layerConfig)
)
