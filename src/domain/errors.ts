import { Data, Schema } from "effect"

/** An object store call failed (I/O, permissions, network). */
export class ObjectStoreError extends Data.TaggedError("ObjectStoreError")<{
  readonly operation: string
  readonly key: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `object store ${this.operation} ${this.key} failed: ${String(this.cause)}`
  }
}

/** The event log (Kafka or embedded) refused or failed a call. */
export class EventLogError extends Data.TaggedError("EventLogError")<{
  readonly operation: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `event log ${this.operation} failed: ${String(this.cause)}`
  }
}

/** A Parquet file could not be written or read. */
export class ParquetError extends Data.TaggedError("ParquetError")<{
  readonly operation: "write" | "read"
  readonly cause: unknown
}> {
  override get message(): string {
    return `parquet ${this.operation} failed: ${String(this.cause)}`
  }
}

/** A dataset on disk is not in the shape the pipeline expects (bad manifest, unreadable input file). */
export class DatasetError extends Data.TaggedError("DatasetError")<{
  readonly dataset: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.dataset}: ${this.reason}`
  }
}

/** Crosses boundaries (quarantine records, HTTP responses): a record refused with field and reason. */
export class RecordRejected extends Schema.TaggedError<RecordRejected>()("RecordRejected", {
  dataset: Schema.String,
  source: Schema.String,
  problems: Schema.Array(Schema.Struct({ field: Schema.String, reason: Schema.String }))
}) {}
