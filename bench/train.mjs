// Fraud-model training speed and live-scoring latency on generated data. Generates BENCH_TRANSACTIONS
// (default 200k) seeded transactions, runs the batch index and final aggregate with the CLI, then in one
// process: streams final_aggregate into examples (past activity included), trains the network and, beside
// it, the logistic-regression baseline (the same loop on one unit) and a bare tf.fit on the same matrix;
// then live scoring: per-event latency (features + predict for one event) and per-event cost inside a
// micro-batch of 1000, beside a bare model.predict of one prepared row.
// Usage: npm run build && node bench/train.mjs   (BENCH_DIR keeps the files, BENCH_EPOCHS default 4)
import { spawnSync } from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Layer } from "effect"

const here = NodePath.dirname(fileURLToPath(import.meta.url))
const dist = (path) => import(NodePath.join(here, "..", "dist", path))
const transactions = Number(process.env.BENCH_TRANSACTIONS ?? 200_000)
const epochs = Number(process.env.BENCH_EPOCHS ?? 4)
const root = process.env.BENCH_DIR ?? NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "recon-train-bench-"))
const cli = NodePath.join(here, "..", "dist", "programs", "cli.js")

const run = (args) => {
  const started = performance.now()
  const result = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", maxBuffer: 1 << 26 })
  if (result.status !== 0) throw new Error(`recon ${args.join(" ")} failed:\n${result.stderr}`)
  return (performance.now() - started) / 1000
}

const processed = NodePath.join(root, "processed")
if (!NodeFs.existsSync(NodePath.join(processed, "final_aggregate", "_manifest.json"))) {
  const generated = NodePath.join(root, "generated")
  console.log(`generating ${transactions} transactions and building final_aggregate under ${root} …`)
  const generateSeconds = run([
    "generate",
    "--out",
    generated,
    "--transactions",
    String(transactions),
    "--seed",
    "7"
  ])
  const batchSeconds = run(["batch", "--input", generated, "--output", processed])
  console.log(`  generate ${generateSeconds.toFixed(1)} s, batch + final ${batchSeconds.toFixed(1)} s`)
}

const { ProcessedBucket } = await dist("layers/ObjectStore.js")
const { Parquet } = await dist("layers/ParquetCodec.js")
const { Tensorflow } = await dist("layers/Tensorflow.js")
const train = await dist("streams/train.js")
const { LiveScoringState, scoreFacts } = await dist("streams/liveScoring.js")
const { featureMatrix } = await dist("streams/train/features.js")

const layers = Layer.mergeAll(ProcessedBucket.layerLocal(processed), Parquet.layer(), Tensorflow.layer)
const percentile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
const micros = (ms) => `${(ms * 1000).toFixed(0)} µs`

const program = Effect.gen(function* () {
  const { tf, backend } = yield* Tensorflow
  let started = performance.now()
  const { examples, rowsRead } = yield* train.readTrainingExamples({ seed: 1 })
  const readSeconds = (performance.now() - started) / 1000
  const options = yield* train.resolveTrainOptions({ seed: 42, epochs })
  started = performance.now()
  const fitted = yield* train.fitFraudModel(examples, options)
  const fitSeconds = (performance.now() - started) / 1000

  // Bare tf.fit on the same matrix and network shape: the floor the training loop can reach.
  const trainRows = fitted.rows.train
  const width = fitted.featureSpec.featureNames.length
  const matrix = featureMatrix(examples.slice(0, trainRows), fitted.featureSpec)
  const bare = tf.sequential()
  bare.add(tf.layers.dense({ units: 16, activation: "relu", inputShape: [width] }))
  bare.add(tf.layers.dense({ units: 8, activation: "relu" }))
  bare.add(tf.layers.dense({ units: 1, activation: "sigmoid" }))
  bare.compile({ optimizer: tf.train.adam(0.005), loss: "binaryCrossentropy" })
  const x = tf.tensor2d(matrix, [trainRows, width])
  const y = tf.tensor2d(
    Float32Array.from(examples.slice(0, trainRows), (e) => Number(e.confirmed_fraud)),
    [trainRows, 1]
  )
  started = performance.now()
  yield* Effect.promise(() => bare.fit(x, y, { epochs, batchSize: 512, shuffle: true, verbose: 0 }))
  const bareRate = (trainRows * epochs) / ((performance.now() - started) / 1000)
  tf.dispose([x, y])
  bare.dispose()

  // Live scoring: features from the stream state + one predict, per event and per micro-batch.
  const active = { version: "bench", model: fitted.model, featureSpec: fitted.featureSpec }
  const state = new LiveScoringState()
  const rowsFor = examples.slice(-20_000).map((example, index) => ({
    ...example,
    event_id: `e-${index}`,
    sequence: 0,
    event_time: example.first_event_time,
    status: "authorized",
    card_last4: null,
    processor: "p",
    processor_reference: `r-${index}`,
    ip_address: null,
    merchant_name: null,
    merchant_country: null,
    ingest_path: "stream",
    source_location: ""
  }))
  const single = []
  for (const row of rowsFor.slice(0, 5_000)) {
    const begin = performance.now()
    scoreFacts(tf, active, [state.factsFor(row)])
    single.push(performance.now() - begin)
  }
  single.sort((a, b) => a - b)
  const batchCosts = []
  for (let start = 5_000; start + 1000 <= rowsFor.length; start += 1000) {
    const begin = performance.now()
    scoreFacts(
      tf,
      active,
      rowsFor.slice(start, start + 1000).map((row) => state.factsFor(row))
    )
    batchCosts.push((performance.now() - begin) / 1000)
  }
  batchCosts.sort((a, b) => a - b)
  const prepared = tf.tensor2d(matrix.subarray(0, width), [1, width])
  const barePredict = []
  for (let index = 0; index < 5_000; index++) {
    const begin = performance.now()
    tf.tidy(() => fitted.model.predict(prepared).dataSync())
    barePredict.push(performance.now() - begin)
  }
  barePredict.sort((a, b) => a - b)
  prepared.dispose()
  train.disposeFraudModel(fitted.model)

  console.log(
    `backend ${backend}; final_aggregate rows ${rowsRead}; train ${fitted.rows.train} / validation ${fitted.rows.validation}; ${epochs} epochs`
  )
  console.log(
    `read final_aggregate into examples (past activity included): ${readSeconds.toFixed(1)} s, ${Math.round(rowsRead / readSeconds)} rows/s`
  )
  console.log(`fit (logistic baseline + network + evaluation): ${fitSeconds.toFixed(1)} s`)
  console.log(
    `training samples/s   network ${Math.round(fitted.samplesPerSecond)}   bare tf.fit same shape ${Math.round(bareRate)}   (goal ≥ 50000)`
  )
  console.log(
    `validation PR-AUC    model ${fitted.metrics.prAuc.toFixed(4)}   logistic ${fitted.logisticMetrics.prAuc.toFixed(4)}   rules ${fitted.baselineMetrics.prAuc.toFixed(4)}`
  )
  console.log(
    `live scoring, one event (features + predict): p50 ${micros(percentile(single, 0.5))}  p99 ${micros(percentile(single, 0.99))}   bare predict of a prepared row: p50 ${micros(percentile(barePredict, 0.5))}  p99 ${micros(percentile(barePredict, 0.99))}`
  )
  console.log(
    `live scoring in a micro-batch of 1000, per event: p50 ${micros(percentile(batchCosts, 0.5))}  p99 ${micros(percentile(batchCosts, 0.99))}`
  )
})

await Effect.runPromise(program.pipe(Effect.provide(layers)))
