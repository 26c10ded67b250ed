import * as NodeFs from "node:fs/promises"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { Effect } from "effect"
import { generateDataset } from "./generate.js"
import { runStreamIngest } from "./ingest.js"
import { runStreamingIndex, type StreamingIndexOptions } from "./streamingIndex.js"

/** How the streaming service is started. */
export interface StreamingServiceOptions extends Partial<StreamingIndexOptions> {
  /**
   * On the embedded log, producer files to feed in first: a directory with `stream/*.jsonl`, or a number of
   * transactions to generate (seeded) into a temporary directory. Ignored when the log is Kafka.
   */
  readonly feed?: { readonly directory: string } | { readonly generate: number; readonly seed: number }
}

/**
 * The streaming service: optionally feeds the embedded log from producer files, then runs the streaming
 * index until interrupted (SIGINT/SIGTERM end it gracefully after the current micro-batch) or, with
 * `stopAtEnd`, until the log is drained.
 */
export const runStreamingService = (options: StreamingServiceOptions) =>
  Effect.gen(function* () {
    if (options.feed !== undefined) {
      const feed = options.feed
      const directory =
        "directory" in feed
          ? feed.directory
          : yield* Effect.acquireRelease(
              Effect.promise(() => NodeFs.mkdtemp(NodePath.join(NodeOs.tmpdir(), "recon-feed-"))),
              (path) => Effect.promise(() => NodeFs.rm(path, { recursive: true, force: true }))
            )
      if ("generate" in feed) {
        yield* generateDataset({ outDir: directory, transactions: feed.generate, seed: feed.seed })
      }
      const fed = yield* runStreamIngest(directory)
      yield* Effect.logInfo("fed the event log", fed)
    }
    yield* Effect.logInfo("streaming index started")
    const summary = yield* runStreamingIndex(options)
    yield* Effect.logInfo("streaming index stopped", summary)
    return summary
  }).pipe(Effect.scoped)
