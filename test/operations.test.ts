import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Metric, MetricBoundaries, Scope } from "effect"
import { makeReadiness, startOperationsServer } from "../src/streams/operationsServer.js"
import {
  batchesCommitted,
  batchLatencySeconds,
  eventToCommitSeconds,
  observeBatch,
  observeEventLatencies,
  observeLag,
  observeStateSize,
  recordsConsumed,
  recordsQuarantined,
  renderPrometheus
} from "../src/streams/streamingMetrics.js"

interface FetchedResponse {
  readonly status: number
  readonly contentType: string | null
  readonly body: string
}

const get = (url: string, init?: RequestInit) =>
  Effect.tryPromise(async (): Promise<FetchedResponse> => {
    const response = await fetch(url, init)
    return {
      status: response.status,
      contentType: response.headers.get("content-type"),
      body: await response.text()
    }
  })

/** The lines of one metric family (its HELP, TYPE and samples) in a Prometheus exposition. */
const familyLines = (exposition: string, name: string): ReadonlyArray<string> =>
  exposition
    .split("\n")
    .filter(
      (line) =>
        line.startsWith(`# HELP ${name} `) ||
        line.startsWith(`# TYPE ${name} `) ||
        line.startsWith(`${name} `) ||
        line.startsWith(`${name}{`) ||
        line.startsWith(`${name}_`)
    )

const summary = { batches: 1, consumed: 10, accepted: 8, quarantined: 2, indexed: 7, late: 1, duplicates: 0 }

describe("renderPrometheus", () => {
  it.effect("writes a labelled counter as HELP, TYPE and one sample per label set, labels sorted", () =>
    Effect.gen(function* () {
      const requests = Metric.counter("recon_test_requests_total", {
        description: "Requests served",
        incremental: true
      })
      yield* Metric.incrementBy(
        requests.pipe(Metric.tagged("route", "/metrics"), Metric.tagged("code", "200")),
        3
      )
      yield* Metric.incrementBy(
        requests.pipe(Metric.tagged("route", "/readyz"), Metric.tagged("code", "503")),
        1
      )
      const text = yield* renderPrometheus()
      assert.deepStrictEqual(familyLines(text, "recon_test_requests_total"), [
        "# HELP recon_test_requests_total Requests served",
        "# TYPE recon_test_requests_total counter",
        'recon_test_requests_total{code="200",route="/metrics"} 3',
        'recon_test_requests_total{code="503",route="/readyz"} 1'
      ])
      assert.isTrue(text.endsWith("\n"))
    })
  )

  it.effect("writes a histogram as cumulative buckets up to +Inf, then _sum and _count", () =>
    Effect.gen(function* () {
      const latency = Metric.histogram(
        "recon_test_latency_seconds",
        MetricBoundaries.fromIterable([0.1, 1, 10]),
        "Test latency"
      )
      for (const value of [0.25, 0.5, 2, 0.0625, 20]) yield* Metric.update(latency, value)
      const text = yield* renderPrometheus()
      assert.deepStrictEqual(familyLines(text, "recon_test_latency_seconds"), [
        "# HELP recon_test_latency_seconds Test latency",
        "# TYPE recon_test_latency_seconds histogram",
        'recon_test_latency_seconds_bucket{le="0.1"} 1',
        'recon_test_latency_seconds_bucket{le="1"} 3',
        'recon_test_latency_seconds_bucket{le="10"} 4',
        'recon_test_latency_seconds_bucket{le="+Inf"} 5',
        "recon_test_latency_seconds_sum 22.8125",
        "recon_test_latency_seconds_count 5"
      ])
    })
  )

  it.effect("escapes label values and HELP text", () =>
    Effect.gen(function* () {
      const gauge = Metric.gauge("recon_test_escaped", { description: "line one\nback\\slash" })
      yield* Metric.set(gauge.pipe(Metric.tagged("path", 'C:\\dir "x"\nnext')), 4)
      const text = yield* renderPrometheus()
      assert.deepStrictEqual(familyLines(text, "recon_test_escaped"), [
        "# HELP recon_test_escaped line one\\nback\\\\slash",
        "# TYPE recon_test_escaped gauge",
        'recon_test_escaped{path="C:\\\\dir \\"x\\"\\nnext"} 4'
      ])
    })
  )

  it.effect("writes an Effect counter that may go down as a gauge", () =>
    Effect.gen(function* () {
      const active = Metric.counter("recon_test_active", { description: "Active things" })
      yield* Metric.incrementBy(active, 5)
      yield* Metric.incrementBy(active, -2)
      const text = yield* renderPrometheus()
      assert.deepStrictEqual(familyLines(text, "recon_test_active"), [
        "# HELP recon_test_active Active things",
        "# TYPE recon_test_active gauge",
        "recon_test_active 3"
      ])
    })
  )

  it.effect("observeEventLatencies adds every record's append-to-commit time to the summary", () =>
    Effect.gen(function* () {
      const before = yield* Metric.value(eventToCommitSeconds)
      yield* observeEventLatencies([9_000, 9_750, 12_000], 10_000)
      const after = yield* Metric.value(eventToCommitSeconds)
      assert.strictEqual(after.count - before.count, 3)
      assert.closeTo(after.sum - before.sum, 1 + 0.25 + 0, 1e-9)
      assert.strictEqual(after.max, Math.max(before.max, 1))
    })
  )

  it.effect("observeBatch adds a batch's counts and latency; lag and state size are gauges", () =>
    Effect.gen(function* () {
      const consumedBefore = (yield* Metric.value(recordsConsumed)).count
      const quarantinedBefore = (yield* Metric.value(recordsQuarantined)).count
      const batchesBefore = (yield* Metric.value(batchesCommitted)).count
      const latencyBefore = yield* Metric.value(batchLatencySeconds)
      yield* observeBatch(summary, 0.2)
      yield* observeBatch({ ...summary, consumed: 5, quarantined: 0 }, 3)
      assert.strictEqual((yield* Metric.value(recordsConsumed)).count - consumedBefore, 15)
      assert.strictEqual((yield* Metric.value(recordsQuarantined)).count - quarantinedBefore, 2)
      assert.strictEqual((yield* Metric.value(batchesCommitted)).count - batchesBefore, 2)
      const latencyAfter = yield* Metric.value(batchLatencySeconds)
      assert.strictEqual(latencyAfter.count - latencyBefore.count, 2)
      assert.closeTo(latencyAfter.sum - latencyBefore.sum, 3.2, 1e-9)

      yield* observeLag("transactions", 2, 40)
      yield* observeLag("transactions", 2, 17)
      yield* observeLag("fraud_signals", 0, 0)
      yield* observeStateSize(1234)
      const text = yield* renderPrometheus()
      assert.deepStrictEqual(familyLines(text, "recon_stream_consumer_lag"), [
        "# HELP recon_stream_consumer_lag Records between the committed offset and the end of the log, per topic and partition",
        "# TYPE recon_stream_consumer_lag gauge",
        'recon_stream_consumer_lag{partition="0",topic="fraud_signals"} 0',
        'recon_stream_consumer_lag{partition="2",topic="transactions"} 17'
      ])
      assert.include(text, "\nrecon_stream_dedup_state_size 1234\n")
      assert.include(text, "\n# TYPE recon_stream_batch_latency_seconds histogram\n")
      assert.include(text, `\nrecon_stream_records_consumed_total ${consumedBefore + 15}\n`)
    })
  )
})

describe("operations server", () => {
  it.scoped("answers /healthz, /readyz (503 until ready), /metrics and 404 on loopback", () =>
    Effect.gen(function* () {
      const readiness = yield* makeReadiness
      const server = yield* startOperationsServer({ port: 0, readiness })
      assert.strictEqual(server.host, "127.0.0.1")
      assert.isAbove(server.port, 0)

      const health = yield* get(`${server.url}/healthz`)
      assert.strictEqual(health.status, 200)
      assert.strictEqual(health.body.trim(), "ok")

      assert.strictEqual((yield* get(`${server.url}/readyz`)).status, 503)
      yield* readiness.markReady
      assert.strictEqual((yield* get(`${server.url}/readyz`)).status, 200)
      assert.strictEqual((yield* get(`${server.url}/readyz?probe=k8s`)).status, 200)
      yield* readiness.markNotReady
      assert.strictEqual((yield* get(`${server.url}/readyz`)).status, 503)

      yield* observeBatch(summary, 0.01)
      const batches = (yield* Metric.value(batchesCommitted)).count
      const metrics = yield* get(`${server.url}/metrics`)
      assert.strictEqual(metrics.status, 200)
      assert.strictEqual(metrics.contentType, "text/plain; version=0.0.4; charset=utf-8")
      assert.include(metrics.body, "# TYPE recon_stream_batches_total counter\n")
      assert.include(metrics.body, `\nrecon_stream_batches_total ${batches}\n`)
      assert.include(metrics.body, "# TYPE recon_stream_records_indexed_total counter\n")
      assert.include(metrics.body, 'recon_stream_batch_latency_seconds_bucket{le="+Inf"}')

      assert.strictEqual((yield* get(`${server.url}/nope`)).status, 404)
      assert.strictEqual((yield* get(`${server.url}/`)).status, 404)
      assert.strictEqual((yield* get(`${server.url}/healthz`, { method: "POST" })).status, 404)
    })
  )

  it.effect("closes when its scope ends: a request afterwards fails", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const readiness = yield* makeReadiness
      const server = yield* startOperationsServer({ port: 0, readiness }).pipe(Scope.extend(scope))
      assert.strictEqual((yield* get(`${server.url}/healthz`)).status, 200)
      yield* Scope.close(scope, Exit.void)
      const after = yield* Effect.either(get(`${server.url}/healthz`))
      assert.isTrue(after._tag === "Left", "request after close must fail")
    })
  )

  it.scoped("fails with OperationsServerError when the port is taken", () =>
    Effect.gen(function* () {
      const readiness = yield* makeReadiness
      const first = yield* startOperationsServer({ port: 0, readiness })
      const error = yield* Effect.flip(startOperationsServer({ port: first.port, readiness }))
      assert.strictEqual(error._tag, "OperationsServerError")
      assert.strictEqual(error.port, first.port)
    })
  )
})
