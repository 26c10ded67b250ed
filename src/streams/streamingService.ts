import { Effect } from "effect"
import { scopedScratchDirectory } from "../layers/scratch.js"
import { generateDataset } from "./generate.js"
import { runStreamIngest } from "./ingest.js"
import { makeReadiness, operationsPortConfig, startOperationsServer } from "./operationsServer.js"
import {
  defaultStreamingIndexOptions,
  runStreamingIndex,
  type StreamingIndexOptions
} from "./streamingIndex.js"

/** How the streaming service is started. */
export interface StreamingServiceOptions extends Partial<StreamingIndexOptions> {
  /**
   * On the embedded log, producer files to feed in first: a directory with `stream/*.jsonl`, or a number of
   * transactions to generate (seeded) into a temporary directory. Ignored when the log is Kafka.
   */
  readonly feed?: { readonly directory: string } | { readonly generate: number; readonly seed: number }
  /**
   * Port of the operations server (`/healthz`, `/readyz`, `/metrics` on 127.0.0.1); 0 for a random free
   * port, `"disabled"` for none. Default: `RECON_OPS_PORT`, else 9464.
   */
  readonly operationsPort?: number | "disabled"
}

/**
 * The streaming service: optionally feeds the embedded log from producer files, then runs the streaming
 * index until interrupted (SIGINT/SIGTERM end it gracefully after the current micro-batch) or, with
 * `stopAtEnd`, until the log is drained. The operations server runs for the life of the service; `/readyz`
 * turns ready once the feed is in and the streaming index starts consuming.
 */
export const runStreamingService = (options: StreamingServiceOptions) =>
  Effect.gen(function* () {
    const readiness = yield* makeReadiness
    const operationsPort = options.operationsPort ?? (yield* operationsPortConfig)
    if (operationsPort !== "disabled") {
      yield* startOperationsServer({ port: operationsPort, readiness })
    }
    if (options.feed !== undefined) {
      const feed = options.feed
      const directory = "directory" in feed ? feed.directory : yield* scopedScratchDirectory("recon-feed-")
      if ("generate" in feed) {
        yield* generateDataset({ outDir: directory, transactions: feed.generate, seed: feed.seed })
      }
      const fed = yield* runStreamIngest(
        directory,
        1_000,
        options.topics ?? defaultStreamingIndexOptions.topics
      )
      yield* Effect.logInfo("fed the event log").pipe(Effect.annotateLogs({ ...fed }))
    }
    yield* readiness.markReady
    yield* Effect.logInfo("streaming index started")
    const summary = yield* runStreamingIndex(options)
    yield* readiness.markNotReady
    yield* Effect.logInfo("streaming index stopped").pipe(Effect.annotateLogs({ ...summary }))
    return summary
  }).pipe(Effect.scoped)
