// Reading the committed streaming manifests (what every streaming start, final aggregate, SQL view and
// aggregation refresh does) over N micro-batches: one GET per manifest, beside the same read through a
// batch checkpoint (one GET for the checkpoint plus the manifests committed after it), on a local directory
// and, with RECON_S3_ENDPOINT set (source .services/env), on S3.
// Usage: npm run build && node bench/manifests.mjs [batches=2000] [after=100]
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { Effect } from "effect"
import { makeLocalObjectStore } from "../dist/layers/ObjectStore.js"
import {
  ensureBucket,
  makeS3Client,
  makeS3ObjectStore,
  s3SettingsConfig
} from "../dist/layers/S3ObjectStore.js"
import {
  batchCheckpointKey,
  checkpointCommittedBatches,
  readCommittedBatches,
  streamingPrefixes
} from "../dist/streams/streamingIndex.js"

const batches = Number(process.argv[2] ?? 2000)
const after = Number(process.argv[3] ?? 100)
const manifestOf = (index) => ({
  batch_id: `bench-${String(index).padStart(8, "0")}`,
  group: "streaming-index",
  committed_at: new Date(Date.UTC(2026, 10, 26) + index * 500).toISOString(),
  files: ["transactions", "fraud_signals", "fraud_signal_joins"].map((dataset) => ({
    dataset,
    dt: "2026-11-26",
    key: `streaming_index/${dataset}/dt=2026-11-26/part-bench-${index}-00000.parquet`,
    rows: 20000
  })),
  offsets: [0, 1, 2, 3].map((partition) => ({ topic: "transactions", partition, offset: index * 5000 })),
  first_offsets: [0, 1, 2, 3].map((partition) => ({
    topic: "transactions",
    partition,
    offset: index * 5000 - 5000
  })),
  consumed: 20000,
  quarantined: 0,
  duplicates: 0
})
const put = (store, index) =>
  store.put(
    `${streamingPrefixes.batches}${manifestOf(index).batch_id}.json`,
    new TextEncoder().encode(JSON.stringify(manifestOf(index), null, 2))
  )
const seconds = async (effect) => {
  const started = process.hrtime.bigint()
  const result = await Effect.runPromise(effect)
  return [Number(process.hrtime.bigint() - started) / 1e9, result]
}

const measure = async (label, store) => {
  await Effect.runPromise(
    Effect.forEach(
      Array.from({ length: batches }, (_, index) => index),
      (index) => put(store, index),
      { concurrency: 32, discard: true }
    )
  )
  const [plain, read] = await seconds(readCommittedBatches(store))
  await Effect.runPromise(checkpointCommittedBatches(store, 1))
  await Effect.runPromise(
    Effect.forEach(
      Array.from({ length: after }, (_, index) => batches + index),
      (index) => put(store, index),
      { concurrency: 32, discard: true }
    )
  )
  const [withCheckpoint, readAgain] = await seconds(readCommittedBatches(store))
  await Effect.runPromise(store.delete(batchCheckpointKey))
  const [withoutCheckpoint, readPlain] = await seconds(readCommittedBatches(store))
  if (JSON.stringify(readAgain) !== JSON.stringify(readPlain))
    throw new Error("the checkpoint changed what readers get")
  console.log(
    `${label}: ${batches} manifests one by one ${plain.toFixed(2)} s (${read.length}); ` +
      `${batches + after} through a checkpoint of ${batches} ${withCheckpoint.toFixed(2)} s, one by one ${withoutCheckpoint.toFixed(2)} s`
  )
}

const directory = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "recon-manifests-"))
await measure("local directory", makeLocalObjectStore(directory))
NodeFs.rmSync(directory, { recursive: true, force: true })
if (process.env.RECON_S3_ENDPOINT !== undefined) {
  const client = makeS3Client(await Effect.runPromise(s3SettingsConfig))
  const bucket = `bench-manifests-${Date.now().toString(36)}`
  await Effect.runPromise(ensureBucket(client, bucket))
  await measure("S3", makeS3ObjectStore(client, bucket))
  client.destroy()
}
