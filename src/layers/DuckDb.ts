import { DuckDBInstance, type Json } from "@duckdb/node-api"
import { Context, Data, Effect, Layer, type Scope } from "effect"

/**
 * A value as DuckDB's JSON conversion returns it. BIGINT, HUGEINT and DECIMAL come back as decimal
 * strings and stay strings here: a `count(*)` or a `sum(amount_minor)` is exact whatever its size, and a
 * column never mixes numbers and strings. TIMESTAMP and DATE come back as strings too.
 */
export type JsonValue = Json

/** A SQL identifier, double-quoted with embedded quotes doubled. */
export const quoteIdentifier = (name: string): string => `"${name.replaceAll('"', '""')}"`

/** A SQL string literal, single-quoted with embedded quotes doubled. */
export const quoteLiteral = (text: string): string => `'${text.replaceAll("'", "''")}'`

const sizeUnits: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40
}
/** Bytes of a DuckDB size setting such as `2GB` or `512MiB` (`memory_limit`); undefined when it is not one. */
export const bytesOfSize = (size: string): number | undefined => {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(size.trim())
  const unit = match === null ? undefined : sizeUnits[match[2]!.toLowerCase()]
  return match === null || unit === undefined ? undefined : Number(match[1]) * unit
}

/** One result row, keyed by column name. */
export type SqlRow = Readonly<Record<string, JsonValue>>

/** A DuckDB statement failed, or the database could not be opened. */
export class SqlError extends Data.TaggedError("SqlError")<{
  readonly statement: string
  readonly cause: unknown
}> {
  override get message(): string {
    const reason = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `DuckDB statement failed: ${reason}\n  in: ${this.statement}`
  }
}

/** An embedded DuckDB database with one connection; statements run one at a time. */
export interface DuckDbService {
  /** Runs a statement and returns every row; BIGINT values as decimal strings (see {@link JsonValue}). */
  readonly query: (sql: string) => Effect.Effect<ReadonlyArray<SqlRow>, SqlError>
  /** Runs a statement for its effect (DDL, SET), discarding any rows. */
  readonly run: (sql: string) => Effect.Effect<void, SqlError>
}

const openStatement = "<open in-memory database>"

const ignoreFailure = (close: () => void) =>
  Effect.sync(() => {
    try {
      close()
    } catch {
      // Already closed, or closing failed at shutdown: nothing left to release.
    }
  })

/**
 * Opens an in-memory DuckDB database with `config` (DuckDB settings such as `memory_limit`,
 * `temp_directory`), closed when the scope closes; a statement still running then is interrupted first.
 */
export const makeDuckDb = (
  config: Readonly<Record<string, string>> = {}
): Effect.Effect<DuckDbService, SqlError, Scope.Scope> =>
  Effect.gen(function* () {
    const instance = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => DuckDBInstance.create(":memory:", { ...config }),
        catch: (cause) => new SqlError({ statement: openStatement, cause })
      }),
      (opened) => ignoreFailure(() => opened.closeSync())
    )
    const connection = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => instance.connect(),
        catch: (cause) => new SqlError({ statement: openStatement, cause })
      }),
      (opened) =>
        ignoreFailure(() => {
          opened.interrupt()
          opened.closeSync()
        })
    )
    const oneAtATime = yield* Effect.makeSemaphore(1)
    const query = Effect.fn("DuckDb.query")(function* (sql: string) {
      return yield* oneAtATime.withPermits(1)(
        Effect.tryPromise({
          try: async (): Promise<ReadonlyArray<SqlRow>> =>
            (await connection.runAndReadAll(sql)).getRowObjectsJson(),
          catch: (cause) => new SqlError({ statement: sql, cause })
        })
      )
    })
    const run = Effect.fn("DuckDb.run")(function* (sql: string) {
      yield* oneAtATime.withPermits(1)(
        Effect.tryPromise({
          try: () => connection.run(sql),
          catch: (cause) => new SqlError({ statement: sql, cause })
        })
      )
    })
    return { query, run } satisfies DuckDbService
  })

/** The DuckDB service: an in-memory database, closed when the layer's scope closes. */
export class DuckDb extends Context.Tag("DuckDb")<DuckDb, DuckDbService>() {
  /** A fresh in-memory database per layer build. */
  static readonly layer: Layer.Layer<DuckDb, SqlError> = Layer.scoped(DuckDb, makeDuckDb())
}
