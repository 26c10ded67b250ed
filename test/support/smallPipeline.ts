import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { Effect, Layer } from "effect"
import { EventLogService } from "../../src/layers/EventLog.js"
import {
  makeLocalObjectStore,
  type ObjectStore,
  ProcessedBucket,
  RawBucket
} from "../../src/layers/ObjectStore.js"
import { Parquet } from "../../src/layers/ParquetCodec.js"
import { runBatchIndex } from "../../src/streams/batchIndex.js"
import { runFinalAggregate } from "../../src/streams/finalAggregate.js"
import { generateDataset } from "../../src/streams/generate.js"
import { runBatchIngest, runStreamIngest } from "../../src/streams/ingest.js"
import { runStreamingIndex } from "../../src/streams/streamingIndex.js"

/**
 * Every stage on a small seeded dataset (embedded log, local directories): generate, batch and stream
 * ingest, streaming index, batch index, final aggregate. Returns the processed bucket and its directory.
 */
export const runSmallPipeline = (name: string, transactions: number, seed: number) =>
  Effect.gen(function* () {
    const root = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), `${name}-`))
    const processedRoot = NodePath.join(root, "processed")
    const processed: ObjectStore = makeLocalObjectStore(processedRoot)
    yield* Effect.gen(function* () {
      yield* generateDataset({ outDir: NodePath.join(root, "generated"), transactions, seed })
      yield* runBatchIngest(NodePath.join(root, "generated"))
      yield* runStreamIngest(NodePath.join(root, "generated"))
      yield* runStreamingIndex({ stopAtEnd: true })
      yield* runBatchIndex
      yield* runFinalAggregate
    }).pipe(
      Effect.provide(
        Layer.mergeAll(
          RawBucket.layerLocal(NodePath.join(root, "raw")),
          Layer.succeed(ProcessedBucket, processed),
          EventLogService.layerMemory(2),
          Parquet.layer()
        )
      )
    )
    return { processed, processedRoot }
  })
