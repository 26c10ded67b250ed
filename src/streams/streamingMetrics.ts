import {
  Effect,
  Metric,
  MetricBoundaries,
  MetricKeyType,
  type MetricLabel,
  type MetricPair,
  MetricState,
  Option
} from "effect"
import type { StreamingSummary } from "./streamingIndex.js"

/** Records read from the event log (all topics). */
export const recordsConsumed = Metric.counter("recon_stream_records_consumed_total", {
  description: "Records consumed from the event log",
  incremental: true
})

/** Records written to the streaming index. */
export const recordsIndexed = Metric.counter("recon_stream_records_indexed_total", {
  description: "Records written to the streaming index",
  incremental: true
})

/** Records that failed validation and went to the dead-letter topic and quarantine. */
export const recordsQuarantined = Metric.counter("recon_stream_records_quarantined_total", {
  description: "Records quarantined after failing validation",
  incremental: true
})

/** Records older than the watermark, routed to `late/`. */
export const recordsLate = Metric.counter("recon_stream_records_late_total", {
  description: "Records older than the watermark, routed to late storage",
  incremental: true
})

/** Records dropped as duplicates of an id already seen within the watermark. */
export const duplicatesDropped = Metric.counter("recon_stream_duplicates_total", {
  description: "Duplicate records dropped within the watermark",
  incremental: true
})

/** Micro-batches committed. */
export const batchesCommitted = Metric.counter("recon_stream_batches_total", {
  description: "Micro-batches committed",
  incremental: true
})

/** Upper bounds, in seconds, of the batch latency histogram buckets (`+Inf` is added by Effect). */
export const batchLatencyBoundaries: ReadonlyArray<number> = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60
]

/** Wall time from the start of a micro-batch to its commit, in seconds. */
export const batchLatencySeconds = Metric.histogram(
  "recon_stream_batch_latency_seconds",
  MetricBoundaries.fromIterable(batchLatencyBoundaries),
  "Time from the start of a micro-batch to its commit, in seconds"
)

/** Records behind the end of the log, per topic and partition (use {@link observeLag}). */
export const consumerLag = Metric.gauge("recon_stream_consumer_lag", {
  description: "Records between the committed offset and the end of the log, per topic and partition"
})

/** Ids held by the dedup state (both topics). */
export const dedupStateSize = Metric.gauge("recon_stream_dedup_state_size", {
  description: "Ids currently held in the deduplication state"
})

/** Time from a record's append to the log to the commit of the micro-batch that indexed it. */
export const eventToCommitSeconds = Metric.summary({
  name: "recon_stream_event_to_commit_seconds",
  description: "Seconds from a record's append to the log to its micro-batch's commit",
  maxAge: "10 minutes",
  maxSize: 200_000,
  error: 0.001,
  quantiles: [0.5, 0.9, 0.99]
})

/**
 * Adds the append-to-commit latency of every record of a committed batch, in one step (an effect per record
 * cost 1.4–2.7 µs each, the loop 0.3 µs).
 */
export const observeEventLatencies = (appendTimesMillis: ReadonlyArray<number>, committedAtMillis: number) =>
  Effect.sync(() => {
    for (const appended of appendTimesMillis) {
      eventToCommitSeconds.unsafeUpdate(Math.max(0, committedAtMillis - appended) / 1000, [])
    }
  })

const lagByPartition = new Map<string, Metric.Metric.Gauge<number>>()

const lagGauge = (topic: string, partition: number): Metric.Metric.Gauge<number> => {
  const cacheKey = `${topic}\u0000${partition}`
  const cached = lagByPartition.get(cacheKey)
  if (cached !== undefined) return cached
  const gauge = consumerLag.pipe(Metric.tagged("topic", topic), Metric.tagged("partition", String(partition)))
  lagByPartition.set(cacheKey, gauge)
  return gauge
}

/** Records a committed micro-batch: adds its counts to the counters and its latency to the histogram. */
export const observeBatch = (summary: StreamingSummary, latencySeconds: number): Effect.Effect<void> =>
  Effect.all(
    [
      Metric.incrementBy(recordsConsumed, summary.consumed),
      Metric.incrementBy(recordsIndexed, summary.indexed),
      Metric.incrementBy(recordsQuarantined, summary.quarantined),
      Metric.incrementBy(recordsLate, summary.late),
      Metric.incrementBy(duplicatesDropped, summary.duplicates),
      Metric.incrementBy(batchesCommitted, summary.batches),
      Metric.update(batchLatencySeconds, latencySeconds)
    ],
    { discard: true }
  )

/** Sets the dedup state size gauge to the number of ids currently held. */
export const observeStateSize = (size: number): Effect.Effect<void> => Metric.set(dedupStateSize, size)

/** Sets the consumer lag gauge of one topic partition. */
export const observeLag = (topic: string, partition: number, lag: number): Effect.Effect<void> =>
  Metric.set(lagGauge(topic, partition), lag)

/**
 * Registers the streaming counters, the latency histogram and the dedup gauge so they are exported
 * (at zero) before the first batch; Effect only lists a metric once it has been touched.
 */
export const registerStreamingMetrics: Effect.Effect<void> = Effect.all(
  [
    Metric.value(recordsConsumed),
    Metric.value(recordsIndexed),
    Metric.value(recordsQuarantined),
    Metric.value(recordsLate),
    Metric.value(duplicatesDropped),
    Metric.value(batchesCommitted),
    Metric.value(batchLatencySeconds),
    Metric.value(dedupStateSize),
    Metric.value(eventToCommitSeconds)
  ],
  { discard: true }
)

type PrometheusType = "counter" | "gauge" | "histogram" | "summary"

interface MetricFamily {
  readonly name: string
  readonly type: PrometheusType
  readonly help: string
  readonly samples: Array<string>
}

const sanitizeMetricName = (name: string): string => {
  const cleaned = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return /^[0-9]/.test(cleaned) ? `_${cleaned}` : cleaned
}

const sanitizeLabelName = (name: string): string => {
  const cleaned = name.replace(/[^a-zA-Z0-9_]/g, "_")
  return /^[0-9]/.test(cleaned) ? `_${cleaned}` : cleaned
}

const escapeLabelValue = (value: string): string =>
  value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')

const escapeHelp = (help: string): string => help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

/** A sample value as Prometheus writes it: `+Inf`, `-Inf`, `NaN`, or the shortest decimal. */
export const formatSampleValue = (value: number | bigint): string => {
  if (typeof value === "bigint") return value.toString()
  if (Number.isNaN(value)) return "NaN"
  if (value === Number.POSITIVE_INFINITY) return "+Inf"
  if (value === Number.NEGATIVE_INFINITY) return "-Inf"
  return String(value)
}

const renderLabels = (labels: ReadonlyArray<readonly [string, string]>): string =>
  labels.length === 0
    ? ""
    : `{${labels.map(([key, value]) => `${sanitizeLabelName(key)}="${escapeLabelValue(value)}"`).join(",")}}`

const sample = (
  name: string,
  labels: ReadonlyArray<readonly [string, string]>,
  value: number | bigint
): string => `${name}${renderLabels(labels)} ${formatSampleValue(value)}`

const labelPairs = (tags: ReadonlyArray<MetricLabel.MetricLabel>): Array<readonly [string, string]> =>
  [...tags]
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((tag) => [tag.key, tag.value] as const)

interface RenderedState {
  readonly type: PrometheusType
  readonly samples: (name: string, labels: Array<readonly [string, string]>) => Array<string>
}

const renderState = (pair: MetricPair.MetricPair.Untyped): RenderedState | undefined => {
  const state = pair.metricState
  if (MetricState.isCounterState(state)) {
    const monotonic =
      !MetricKeyType.isCounterKey(pair.metricKey.keyType) || pair.metricKey.keyType.incremental
    return {
      type: monotonic ? "counter" : "gauge",
      samples: (name, labels) => [sample(name, labels, state.count)]
    }
  }
  if (MetricState.isGaugeState(state)) {
    return { type: "gauge", samples: (name, labels) => [sample(name, labels, state.value)] }
  }
  if (MetricState.isHistogramState(state)) {
    return {
      type: "histogram",
      samples: (name, labels) => {
        const finite = state.buckets.filter(([bound]) => bound !== Number.POSITIVE_INFINITY)
        return [
          ...finite.map(([bound, cumulative]) =>
            sample(`${name}_bucket`, [...labels, ["le", formatSampleValue(bound)]], cumulative)
          ),
          sample(`${name}_bucket`, [...labels, ["le", "+Inf"]], state.count),
          sample(`${name}_sum`, labels, state.sum),
          sample(`${name}_count`, labels, state.count)
        ]
      }
    }
  }
  if (MetricState.isSummaryState(state)) {
    return {
      type: "summary",
      samples: (name, labels) => [
        ...state.quantiles.flatMap(([quantile, value]) =>
          Option.isSome(value)
            ? [sample(name, [...labels, ["quantile", formatSampleValue(quantile)]], value.value)]
            : []
        ),
        sample(`${name}_sum`, labels, state.sum),
        sample(`${name}_count`, labels, state.count)
      ]
    }
  }
  if (MetricState.isFrequencyState(state)) {
    return {
      type: "counter",
      samples: (name, labels) =>
        [...state.occurrences.entries()].map(([key, count]) => sample(name, [...labels, ["key", key]], count))
    }
  }
  return undefined
}

/**
 * Renders metric pairs in the Prometheus text exposition format 0.0.4: one `# HELP` and `# TYPE` per
 * metric name, its samples (labels sorted by name) below, histograms as cumulative `_bucket{le=...}`,
 * `_sum` and `_count`. Effect counters that are not `incremental` (they may go down) are written as gauges. Families are sorted by name, samples by their labels, so output is stable.
 */
export const renderPrometheusText = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, MetricFamily>()
  for (const pair of pairs) {
    const rendered = renderState(pair)
    if (rendered === undefined) continue
    const name = sanitizeMetricName(pair.metricKey.name)
    const existing = families.get(name)
    if (existing !== undefined && existing.type !== rendered.type) continue
    const family: MetricFamily = existing ?? {
      name,
      type: rendered.type,
      help: Option.getOrElse(pair.metricKey.description, () => name),
      samples: []
    }
    family.samples.push(rendered.samples(name, labelPairs(pair.metricKey.tags)).join("\n"))
    families.set(name, family)
  }
  const lines: Array<string> = []
  for (const family of [...families.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`)
    lines.push(...family.samples.sort())
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`
}

/** All metrics of the global registry in the Prometheus text exposition format 0.0.4. */
export const renderPrometheus = (): Effect.Effect<string> => Effect.map(Metric.snapshot, renderPrometheusText)

/** The content type of {@link renderPrometheus}'s output. */
export const prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"
