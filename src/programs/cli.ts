#!/usr/bin/env node
import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import { Args, Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { FetchHttpClient } from "@effect/platform"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Logger, Option, Schema } from "effect"
import { mintApiKey } from "../domain/apiAuth.js"
import { shardProblem } from "../domain/buckets.js"
import { BreakType, defaultReconcileRules, type ReconcileRules } from "../domain/reconcile.js"
import { ProcessorMapping } from "../domain/settlement.js"
import { bytesOfSize, DuckDb } from "../layers/DuckDb.js"
import { ProcessedBucket, RawBucket } from "../layers/ObjectStore.js"
import { Parquet } from "../layers/ParquetCodec.js"
import { Tensorflow } from "../layers/Tensorflow.js"
import { aggregateMerchantTotals } from "../streams/aggregate.js"
import { athenaDdl, athenaDdlOptionsConfig } from "../streams/athena.js"
import { runBatchIndexWith } from "../streams/batchIndex.js"
import { runEndToEnd } from "../streams/endToEnd.js"
import {
  defaultFinalAggregateEngine,
  type FinalAggregateOptions,
  runFinalAggregateWith
} from "../streams/finalAggregate.js"
import { generateDataset } from "../streams/generate.js"
import { generateSettlements, readIndexColumns, reconcileRange } from "../streams/generateSettlements.js"
import { runBatchIngest, runUpload } from "../streams/ingest.js"
import { FraudScoring } from "../streams/liveScoring.js"
import { runShardedWorkers, WorkerFailed } from "../streams/localWorkers.js"
import {
  acknowledgeException,
  ExceptionState,
  listExceptions,
  ReconError,
  resolveException,
  runReconcile
} from "../streams/reconcile.js"
import {
  readyQueries,
  registerFinalAggregateView,
  registerIndexViews,
  runReadyQuery,
  runSql
} from "../streams/sql.js"
import { streamingIndexOptionsConfig } from "../streams/streamingIndex.js"
import { runStreamingService } from "../streams/streamingService.js"
import { formatEndToEndSummary } from "../streams/summary.js"
import { promoteFraudModel, trainFraudModel } from "../streams/train.js"
import { embeddedLayer, eventLogLayer, expiringKeyValueLayer, keyValueLayer, storageLayer } from "./layers.js"

const printJson = (value: unknown) =>
  Console.log(JSON.stringify(value, (_key, item) => (typeof item === "bigint" ? item.toString() : item), 2))

const inputOption = Options.directory("input").pipe(
  Options.withDescription(
    "Directory that holds the contract's raw/ tree (the raw bucket); default RECON_RAW_DIR"
  ),
  Options.optional
)
const outputOption = Options.directory("output", { exists: "either" }).pipe(
  Options.withDescription("Directory of the processed bucket; default RECON_PROCESSED_DIR"),
  Options.optional
)
const shardOption = Options.text("shard").pipe(
  Options.withDescription(
    "This worker's share i/n, e.g. 0/4: of the transactions (hash of transaction_id) for final, of the raw files for index; the last shard to finish publishes. Default 0/1"
  ),
  Options.mapEffect((text) => {
    const match = /^(\d+)\/(\d+)$/.exec(text.trim())
    const index = Number(match?.[1])
    const count = Number(match?.[2])
    return match !== null && shardProblem({ index, count }) === undefined
      ? Effect.succeed({ index, count })
      : Effect.fail(
          ValidationError.invalidValue(HelpDoc.p(`--shard must be i/n with 0 <= i < n, got "${text}"`))
        )
  }),
  Options.optional
)
const passesOption = Options.integer("passes").pipe(
  Options.withDescription(
    "Passes over the input, each holding 1/passes of the shard's transactions in memory; default: ~1.5M input rows per GB of --memory-limit in SQL (3M), ~700k in JavaScript"
  ),
  Options.optional
)
const engineOption = Options.choice("engine", ["sql", "js"]).pipe(
  Options.withDescription(
    "Where the final aggregate runs: sql (DuckDB, the default with the DuckDB Parquet writer) or js (JavaScript, the default with RECON_PARQUET_WRITER=parquetjs); both give the same rows"
  ),
  Options.optional
)
const memoryLimitOption = Options.text("memory-limit").pipe(
  Options.withDescription(
    "DuckDB's memory limit for the SQL final aggregate, e.g. 2GB (the default); beyond it DuckDB spills to local disk"
  ),
  Options.mapEffect((text) =>
    bytesOfSize(text) !== undefined
      ? Effect.succeed(text.trim())
      : Effect.fail(
          ValidationError.invalidValue(
            HelpDoc.p(`--memory-limit must be a size such as 512MB or 2GB, got "${text}"`)
          )
        )
  ),
  Options.optional
)
const finalOptionsOf = (
  shard: Option.Option<{ index: number; count: number }>,
  passes: Option.Option<number>,
  engine: Option.Option<"sql" | "js">,
  memoryLimit: Option.Option<string>
): FinalAggregateOptions => ({
  ...Option.match(shard, { onNone: () => ({}), onSome: (value) => ({ shard: value }) }),
  ...Option.match(passes, { onNone: () => ({}), onSome: (value) => ({ passes: value }) }),
  ...Option.match(engine, { onNone: () => ({}), onSome: (value) => ({ engine: value }) }),
  ...Option.match(memoryLimit, { onNone: () => ({}), onSome: (value) => ({ memoryLimit: value }) })
})

const directoriesOf = (input: Option.Option<string>, output: Option.Option<string>) => ({
  raw: Option.getOrUndefined(input),
  processed: Option.getOrUndefined(output)
})

const generate = Command.make(
  "generate",
  {
    out: Options.directory("out", { exists: "either" }).pipe(Options.withDefault("data/generated")),
    transactions: Options.integer("transactions").pipe(Options.withDefault(1000)),
    seed: Options.integer("seed").pipe(Options.withDefault(42))
  },
  ({ out, transactions, seed }) =>
    Effect.flatMap(generateDataset({ outDir: out, transactions, seed }), printJson)
).pipe(Command.withDescription("Write a seeded, realistic payments dataset (raw/ tree and stream files)"))

const ingest = Command.make(
  "ingest",
  {
    from: Options.directory("from").pipe(Options.withDescription("Directory holding raw/ to upload")),
    input: inputOption
  },
  ({ from, input }) =>
    runBatchIngest(from).pipe(
      Effect.flatMap(printJson),
      Effect.provide(storageLayer(directoriesOf(input, Option.none())))
    )
).pipe(Command.withDescription("Upload producer files into raw/ of the raw bucket (same bytes: no-op)"))

const upload = Command.make(
  "upload",
  {
    source: Args.text({ name: "source" }).pipe(
      Args.withDescription(
        "A .jsonl, .jsonl.gz or .parquet file, a directory of them, or an http(s) URL of an export"
      )
    ),
    dataset: Options.choice("dataset", [
      "transactions",
      "fraud_signals",
      "dimensions/users",
      "dimensions/merchants"
    ]),
    dt: Options.text("dt").pipe(
      Options.withDescription("Partition date YYYY-MM-DD (default: dt= in the source path, else today UTC)"),
      Options.optional
    ),
    snapshot: Options.text("snapshot").pipe(
      Options.withDescription("Dimension snapshot YYYYMMDDTHHMMSSZ (default: now UTC)"),
      Options.optional
    ),
    input: inputOption
  },
  ({ source, dataset, dt, snapshot, input }) =>
    runUpload({
      source,
      dataset,
      dt: Option.getOrUndefined(dt),
      snapshot: Option.getOrUndefined(snapshot)
    }).pipe(
      Effect.flatMap(printJson),
      Effect.provide(Layer.merge(storageLayer(directoriesOf(input, Option.none())), FetchHttpClient.layer))
    )
).pipe(
  Command.withDescription(
    "Upload producer files into raw/<dataset>/dt=…/ (or a dimension snapshot) with SHA-256 checks; same bytes: no-op"
  )
)

const workersOption = Options.integer("workers").pipe(
  Options.withDescription(
    "Run the batch index, then the final aggregate, as this many worker processes at once (--shard i/n each); default 1"
  ),
  Options.withDefault(1)
)

/** The arguments that point a child worker at the same buckets as this process. */
const directoryArgs = (input: Option.Option<string>, output: Option.Option<string>) => [
  ...Option.match(input, { onNone: () => [], onSome: (directory) => ["--input", directory] }),
  ...Option.match(output, { onNone: () => [], onSome: (directory) => ["--output", directory] })
]

const index = Command.make(
  "index",
  { input: inputOption, output: outputOption, shard: shardOption },
  ({ input, output, shard }) =>
    runBatchIndexWith(
      Option.match(shard, { onNone: () => ({}), onSome: (value) => ({ shard: value }) })
    ).pipe(Effect.flatMap(printJson), Effect.provide(storageLayer(directoriesOf(input, output))))
).pipe(
  Command.withDescription(
    "Batch index only (raw/ → batch_index/); --shard i/n reads a share of the raw files, the last shard publishes"
  )
)

const batch = Command.make(
  "batch",
  {
    input: inputOption,
    output: outputOption,
    shard: shardOption,
    passes: passesOption,
    engine: engineOption,
    memoryLimit: memoryLimitOption,
    workers: workersOption
  },
  ({ input, output, shard, passes, engine, memoryLimit, workers }) =>
    Effect.gen(function* () {
      if (workers < 1 || (workers > 1 && Option.isSome(shard))) {
        const message =
          "--workers must be at least 1, and more than 1 only without --shard (it assigns the shards)"
        yield* Console.error(message)
        return yield* Effect.fail(ValidationError.invalidValue(HelpDoc.p(message)))
      }
      if (workers > 1) {
        const script = process.argv[1] ?? ""
        const where = directoryArgs(input, output)
        const passArgs = [
          ...Option.match(passes, { onNone: () => [], onSome: (value) => ["--passes", String(value)] }),
          ...Option.match(engine, { onNone: () => [], onSome: (value) => ["--engine", value] }),
          ...Option.match(memoryLimit, { onNone: () => [], onSome: (value) => ["--memory-limit", value] })
        ]
        const batchIndex = yield* runShardedWorkers(script, ["index", ...where], workers)
        if (!batchIndex.some((summary) => (summary as { published?: unknown }).published === true))
          return yield* new WorkerFailed({
            args: ["index", ...where],
            exit: "every index shard finished but none published the batch index"
          })
        // DuckDB already spreads the SQL final aggregate over the cores: one process; JavaScript: n shards.
        const codec = yield* Effect.provide(Parquet, Parquet.layerConfig)
        const sqlEngine = Option.getOrElse(engine, () => defaultFinalAggregateEngine(codec)) === "sql"
        const finalAggregate = yield* runShardedWorkers(
          script,
          ["final", ...where, ...passArgs],
          sqlEngine ? 1 : workers
        )
        return yield* printJson({ batchIndex, finalAggregate })
      }
      yield* Effect.gen(function* () {
        const batchIndex = yield* runBatchIndexWith()
        const final = yield* runFinalAggregateWith(finalOptionsOf(shard, passes, engine, memoryLimit))
        yield* printJson({ batchIndex, finalAggregate: final })
      }).pipe(Effect.provide(storageLayer(directoriesOf(input, output))))
    })
).pipe(
  Command.withDescription(
    "Batch index (raw/ → batch_index/) then final aggregate (→ final_aggregate/); --workers n runs n index shards as processes at once, then the final aggregate (one process in SQL, which uses every core; n shards with --engine js)"
  )
)

const final = Command.make(
  "final",
  {
    input: inputOption,
    output: outputOption,
    shard: shardOption,
    passes: passesOption,
    engine: engineOption,
    memoryLimit: memoryLimitOption
  },
  ({ input, output, shard, passes, engine, memoryLimit }) =>
    runFinalAggregateWith(finalOptionsOf(shard, passes, engine, memoryLimit)).pipe(
      Effect.flatMap(printJson),
      Effect.provide(storageLayer(directoriesOf(input, output)))
    )
).pipe(
  Command.withDescription("Merge committed streaming_index/, batch_index/ and late/ into final_aggregate/")
)

const sql = Command.make(
  "sql",
  {
    output: outputOption,
    query: Options.text("query").pipe(
      Options.withDescription(`A ready query: ${readyQueries.map((query) => query.name).join(", ")}`),
      Options.optional
    ),
    statement: Options.text("sql").pipe(
      Options.withDescription(
        "Any SQL over the views final_aggregate, batch_index_transactions, batch_index_fraud_signals, streaming_index_transactions, streaming_index_fraud_signals, streaming_index_fraud_signal_joins"
      ),
      Options.optional
    )
  },
  ({ output, query, statement }) =>
    Effect.scoped(
      Effect.gen(function* () {
        yield* registerFinalAggregateView()
        yield* registerIndexViews()
        const rows = Option.isSome(statement)
          ? yield* runSql(statement.value)
          : yield* runReadyQuery(Option.getOrElse(query, () => "volume_by_status_currency"))
        yield* Console.table(rows)
      })
    ).pipe(Effect.provide(Layer.merge(storageLayer(directoriesOf(Option.none(), output)), DuckDb.layer)))
).pipe(
  Command.withDescription(
    "SQL with DuckDB over the committed final_aggregate, batch_index and streaming_index"
  )
)

const aggregate = Command.make("aggregate", { output: outputOption }, ({ output }) =>
  aggregateMerchantTotals().pipe(
    Effect.flatMap(printJson),
    Effect.provide(
      Layer.mergeAll(storageLayer(directoriesOf(Option.none(), output)), expiringKeyValueLayer, DuckDb.layer)
    )
  )
).pipe(Command.withDescription("Per-merchant totals from final_aggregate into the key-value store"))

const train = Command.make(
  "train",
  {
    output: outputOption,
    epochs: Options.integer("epochs").pipe(Options.optional),
    sampleSize: Options.integer("sample-size").pipe(Options.optional),
    seed: Options.integer("seed").pipe(Options.withDefault(42)),
    noPromote: Options.boolean("no-promote").pipe(
      Options.withDescription(
        "never move the promoted pointer (default: promote when the new model beats it)"
      )
    )
  },
  ({ output, epochs, sampleSize, seed, noPromote }) =>
    trainFraudModel({
      seed,
      autoPromote: !noPromote,
      ...(Option.isSome(epochs) ? { epochs: epochs.value } : {}),
      ...(Option.isSome(sampleSize) ? { sampleSize: sampleSize.value } : {})
    }).pipe(
      Effect.flatMap(printJson),
      Effect.provide(Layer.merge(storageLayer(directoriesOf(Option.none(), output)), Tensorflow.layer))
    )
).pipe(Command.withDescription("Train the fraud model on final_aggregate and save it under models/"))

const promote = Command.make(
  "promote",
  { output: outputOption, version: Args.text({ name: "version" }) },
  ({ output, version }) =>
    promoteFraudModel(version).pipe(
      Effect.flatMap(printJson),
      Effect.provide(storageLayer(directoriesOf(Option.none(), output)))
    )
).pipe(
  Command.withDescription("Point models/promoted.json at a saved model version (live scoring picks it up)")
)

const streaming = Command.make(
  "streaming",
  {
    output: outputOption,
    input: inputOption,
    feed: Options.directory("feed").pipe(
      Options.withDescription("Embedded log only: produce <dir>/stream/*.jsonl first"),
      Options.optional
    ),
    generate: Options.integer("generate").pipe(
      Options.withDescription("Embedded log only: generate and produce this many transactions first"),
      Options.optional
    ),
    untilIdle: Options.boolean("until-idle").pipe(Options.withDescription("Stop once the log is drained"))
  },
  ({ output, input, feed, generate, untilIdle }) =>
    Effect.flatMap(streamingIndexOptionsConfig, (configured) =>
      runStreamingService({
        ...configured,
        stopAtEnd: untilIdle || configured.stopAtEnd,
        ...(Option.isSome(feed)
          ? { feed: { directory: feed.value } }
          : Option.isSome(generate)
            ? { feed: { generate: generate.value, seed: 42 } }
            : {})
      })
    ).pipe(
      Effect.flatMap(printJson),
      Effect.provide(
        Layer.provideMerge(
          FraudScoring.layerForService,
          Layer.merge(storageLayer(directoriesOf(input, output)), eventLogLayer)
        )
      )
    )
).pipe(Command.withDescription("Run the streaming index service (long-lived unless --until-idle)"))

const all = Command.make(
  "all",
  {
    data: Options.directory("data", { exists: "either" }).pipe(
      Options.withDescription("Working directory for generated files, buckets and the key-value store"),
      Options.withDefault("data")
    ),
    transactions: Options.integer("transactions").pipe(Options.withDefault(5000)),
    seed: Options.integer("seed").pipe(Options.withDefault(42))
  },
  ({ data, transactions, seed }) =>
    Effect.gen(function* () {
      const report = yield* runEndToEnd({
        generatedDir: NodePath.join(data, "generated"),
        transactions,
        seed
      })
      yield* Console.log(formatEndToEndSummary(report))
    }).pipe(
      Effect.provide(
        embeddedLayer({
          raw: NodePath.join(data, "raw-bucket"),
          processed: NodePath.join(data, "processed-bucket"),
          keyValue: NodePath.join(data, "kv")
        })
      )
    )
).pipe(
  Command.withDescription(
    "Everything on embedded layers: generate → ingest → stream → batch → final → SQL → aggregate → train → settlements → reconcile"
  )
)

const dateOption = (name: string, description: string) =>
  Options.text(name).pipe(
    Options.withDescription(description),
    Options.mapEffect((text) =>
      /^\d{4}-\d{2}-\d{2}$/.test(text)
        ? Effect.succeed(text)
        : Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--${name} must be YYYY-MM-DD, got "${text}"`)))
    ),
    Options.optional
  )

const mappingsOption = Options.file("mappings").pipe(
  Options.withDescription(
    "JSON array of processor column mappings (see docs/CONTRACT-settlements.md); default the built-in five"
  ),
  Options.optional
)

const readMappings = (file: Option.Option<string>) =>
  Option.match(file, {
    onNone: () => Effect.succeed(undefined),
    onSome: (path) =>
      Effect.flatMap(
        Effect.tryPromise({
          try: () => NodeFs.readFile(path, "utf8"),
          catch: (cause) => new ReconError({ reason: `cannot read ${path}: ${String(cause)}` })
        }),
        (text) =>
          Schema.decodeUnknown(Schema.parseJson(Schema.Array(ProcessorMapping)))(text).pipe(
            Effect.mapError(
              (error) => new ReconError({ reason: `bad mappings in ${path}: ${error.message}` })
            )
          )
      )
  })

const rulesOptions = {
  toleranceMinor: Options.integer("tolerance-minor").pipe(
    Options.withDescription(
      `Amount tolerance in minor units (default ${defaultReconcileRules.amount_tolerance_minor})`
    ),
    Options.withDefault(defaultReconcileRules.amount_tolerance_minor)
  ),
  toleranceBps: Options.integer("tolerance-bps").pipe(
    Options.withDescription(
      `Amount tolerance in basis points of the amount, the larger wins (default ${defaultReconcileRules.amount_tolerance_bps})`
    ),
    Options.withDefault(defaultReconcileRules.amount_tolerance_bps)
  ),
  windowDays: Options.integer("window-days").pipe(
    Options.withDescription(
      `Days after capture a settlement is due (default ${defaultReconcileRules.settlement_window_days})`
    ),
    Options.withDefault(defaultReconcileRules.settlement_window_days)
  )
}

const rulesOf = (values: { toleranceMinor: number; toleranceBps: number; windowDays: number }) =>
  Schema.decodeUnknown(
    Schema.Struct({
      amount_tolerance_minor: Schema.NonNegativeInt,
      amount_tolerance_bps: Schema.NonNegativeInt,
      settlement_window_days: Schema.NonNegativeInt
    })
  )({
    amount_tolerance_minor: values.toleranceMinor,
    amount_tolerance_bps: values.toleranceBps,
    settlement_window_days: values.windowDays
  }).pipe(Effect.mapError((error) => new ReconError({ reason: `bad tolerance: ${error.message}` })))

const settlements = Command.make(
  "settlements",
  {
    input: inputOption,
    output: outputOption,
    out: Options.directory("out", { exists: "either" }).pipe(
      Options.withDescription(
        "Write the reports under DIR/raw/settlements/… (for `ingest --from DIR`) instead of into the raw bucket"
      ),
      Options.optional
    ),
    truth: Options.file("truth", { exists: "either" }).pipe(
      Options.withDescription("Write the injected breaks (the truth) to this JSON file"),
      Options.optional
    ),
    seed: Options.integer("seed").pipe(Options.withDefault(42)),
    mappings: mappingsOption,
    ...rulesOptions
  },
  ({ input, output, out, truth, seed, mappings, ...rules }) =>
    Effect.gen(function* () {
      const processed = yield* ProcessedBucket
      const raw = yield* RawBucket
      const mappingList = yield* readMappings(mappings)
      const generated = generateSettlements(yield* readIndexColumns(processed), {
        seed,
        rules: yield* rulesOf(rules),
        ...(mappingList === undefined ? {} : { mappings: mappingList })
      })
      for (const file of generated.files) {
        if (Option.isSome(out)) {
          const path = NodePath.join(out.value, ...file.key.split("/"))
          yield* Effect.promise(() => NodeFs.mkdir(NodePath.dirname(path), { recursive: true }))
          yield* Effect.promise(() => NodeFs.writeFile(path, file.text))
        } else yield* raw.put(file.key, new TextEncoder().encode(file.text))
      }
      if (Option.isSome(truth))
        yield* Effect.promise(() =>
          NodeFs.writeFile(
            truth.value,
            JSON.stringify({ breaks: generated.breaks, clean: generated.clean }, null, 2)
          )
        )
      const byType: Record<string, number> = {}
      for (const item of generated.breaks) byType[item.type] = (byType[item.type] ?? 0) + 1
      yield* printJson({
        files: generated.files.length,
        lines: generated.lines,
        badRows: generated.badRows,
        injectedBreaks: byType,
        clean: generated.clean,
        reconcile: reconcileRange(generated)
      })
    }).pipe(Effect.provide(storageLayer(directoriesOf(input, output))))
).pipe(
  Command.withDescription(
    "Generate processor settlement reports for the committed final_aggregate, with a known share of every break type"
  )
)

const reconcileCommand = Command.make(
  "reconcile",
  {
    input: inputOption,
    output: outputOption,
    processor: Options.text("processor").pipe(
      Options.withDescription("Processor to reconcile (repeatable); default every processor with reports"),
      Options.repeated
    ),
    from: dateOption("from", "First settlement date (default: the first report's dt)"),
    to: dateOption("to", "Last settlement date (default: the last report's dt)"),
    mappings: mappingsOption,
    noMatches: Options.boolean("no-matches").pipe(Options.withDescription("Do not write matches.parquet")),
    ...rulesOptions
  },
  ({ input, output, processor, from, to, mappings, noMatches, ...rules }) =>
    Effect.gen(function* () {
      const mappingList = yield* readMappings(mappings)
      const ruleValues: ReconcileRules = yield* rulesOf(rules)
      const report = yield* runReconcile({
        rules: ruleValues,
        writeMatches: !noMatches,
        ...(processor.length > 0 ? { processors: processor } : {}),
        ...(Option.isSome(from) ? { from: from.value } : {}),
        ...(Option.isSome(to) ? { to: to.value } : {}),
        ...(mappingList === undefined ? {} : { mappings: mappingList })
      })
      yield* printJson(report)
    }).pipe(Effect.provide(Layer.merge(storageLayer(directoriesOf(input, output)), keyValueLayer)))
).pipe(
  Command.withDescription(
    "Match processor settlement reports (raw/settlements/) against final_aggregate; breaks, matches and summary to recon/, exceptions to the key-value store"
  )
)

const breakIdArg = Args.text({ name: "break-id" }).pipe(Args.withDescription("The break_id of the exception"))

const exceptionsList = Command.make(
  "list",
  {
    output: outputOption,
    processor: Options.text("processor").pipe(Options.optional),
    day: dateOption("day", "Only this day"),
    state: Options.choice("state", ExceptionState.literals).pipe(Options.optional),
    type: Options.choice("type", BreakType.literals).pipe(Options.optional),
    json: Options.boolean("json").pipe(Options.withDescription("Print JSON instead of a table"))
  },
  ({ output, processor, day, state, type, json }) =>
    Effect.gen(function* () {
      const found = yield* listExceptions({
        ...(Option.isSome(processor) ? { processor: processor.value } : {}),
        ...(Option.isSome(day) ? { day: day.value } : {}),
        ...(Option.isSome(state) ? { state: state.value } : {}),
        ...(Option.isSome(type) ? { type: type.value } : {})
      })
      if (json) return yield* printJson(found)
      yield* Console.table(
        found.map((item) => ({
          break_id: item.break_id,
          state: item.state,
          type: item.type,
          processor: item.processor,
          day: item.day,
          reference: item.processor_reference,
          amount: `${item.amount_minor} ${item.currency}`,
          reason: item.reason ?? ""
        }))
      )
      yield* Console.log(`${found.length} exceptions`)
    }).pipe(Effect.provide(Layer.merge(storageLayer(directoriesOf(Option.none(), output)), keyValueLayer)))
).pipe(Command.withDescription("List reconciliation exceptions of the current run days"))

const exceptionsAck = Command.make(
  "ack",
  {
    breakId: breakIdArg,
    reason: Options.text("reason").pipe(Options.withDescription("Optional note"), Options.optional)
  },
  ({ breakId, reason }) =>
    acknowledgeException(breakId, Option.getOrUndefined(reason)).pipe(
      Effect.flatMap(printJson),
      Effect.provide(keyValueLayer)
    )
).pipe(Command.withDescription("Acknowledge an exception: seen and being worked"))

const exceptionsResolve = Command.make(
  "resolve",
  {
    breakId: breakIdArg,
    reason: Options.text("reason").pipe(Options.withDescription("Why it needs no more work (required)"))
  },
  ({ breakId, reason }) =>
    resolveException(breakId, reason).pipe(Effect.flatMap(printJson), Effect.provide(keyValueLayer))
).pipe(Command.withDescription("Resolve an exception with a reason"))

const exceptions = Command.make("exceptions").pipe(
  Command.withDescription("Work reconciliation exceptions: list, ack, resolve --reason"),
  Command.withSubcommands([exceptionsList, exceptionsAck, exceptionsResolve])
)

const apiKey = Command.make(
  "api-key",
  {
    client: Args.text({ name: "client" }).pipe(
      Args.withDescription("Client id the key identifies ([A-Za-z0-9_.-])")
    )
  },
  ({ client }) =>
    Effect.sync(() => {
      const minted = mintApiKey(client)
      process.stdout.write(
        `API key for ${client} (shown once; give it to the client):\n${minted.key}\n` +
          `Add to RECON_API_KEYS (comma-separated; only the hash is stored):\n${minted.entry}\n`
      )
    })
).pipe(Command.withDescription("Mint an API key for the ingestion API: prints the key and its hashed entry"))

const athena = Command.make("athena-ddl", {}, () =>
  Effect.flatMap(athenaDdlOptionsConfig, (options) => Console.log(athenaDdl(options)))
).pipe(
  Command.withDescription(
    "Print Athena DDL for final_aggregate, batch_index and streaming_index (RECON_ATHENA_DATABASE, RECON_ATHENA_LOCATION)"
  )
)

const recon = Command.make("recon").pipe(
  Command.withDescription("Payment reconciliation index"),
  Command.withSubcommands([
    all,
    generate,
    ingest,
    upload,
    streaming,
    index,
    batch,
    final,
    sql,
    athena,
    aggregate,
    train,
    promote,
    settlements,
    reconcileCommand,
    exceptions,
    apiKey
  ])
)

const cli = Command.run(recon, { name: "recon", version: "0.1.0" })

cli(process.argv).pipe(
  // The CLI has already printed why a command line is bad: exit with 2 instead of logging the error object.
  Effect.catchIf(ValidationError.isValidationError, () =>
    Effect.sync(() => {
      process.exitCode = 2
    })
  ),
  Effect.provide(NodeContext.layer),
  // Logs go to standard error: standard output carries the JSON a command prints (and --workers parses).
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true }))),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
