/** Precision and recall when the top `rate` share of rows by score is alerted. */
export interface AlertRateMetrics {
  readonly alertRate: number
  readonly alerts: number
  readonly precision: number
  readonly recall: number
}

/** Ranking quality of a score against binary labels. */
export interface ClassificationMetrics {
  readonly rocAuc: number
  /** Average precision: the step-wise area under the precision-recall curve. */
  readonly prAuc: number
  readonly atAlertRates: ReadonlyArray<AlertRateMetrics>
  readonly positives: number
  readonly negatives: number
}

/** Alert rates the reports show: 1% and 5% of rows. */
export const defaultAlertRates: ReadonlyArray<number> = [0.01, 0.05]

const countPositives = (labels: ReadonlyArray<boolean>): number => labels.filter(Boolean).length

const assertSameLength = (scores: ArrayLike<number>, labels: ReadonlyArray<boolean>): void => {
  if (scores.length !== labels.length)
    throw new RangeError(`scores (${scores.length}) and labels (${labels.length}) differ in length`)
}

/** Row indices by descending score; ties keep row order so the result is deterministic. */
const indicesByDescendingScore = (scores: ArrayLike<number>): Array<number> =>
  Array.from({ length: scores.length }, (_, index) => index).sort(
    (a, b) => (scores[b] as number) - (scores[a] as number) || a - b
  )

/**
 * ROC-AUC by the Mann-Whitney statistic with average ranks for ties: the probability that a random
 * positive scores above a random negative (a tie counts one half). NaN when either class is absent.
 */
export const rocAuc = (scores: ArrayLike<number>, labels: ReadonlyArray<boolean>): number => {
  assertSameLength(scores, labels)
  const positives = countPositives(labels)
  const negatives = labels.length - positives
  if (positives === 0 || negatives === 0) return Number.NaN
  const ascending = Array.from({ length: scores.length }, (_, index) => index).sort(
    (a, b) => (scores[a] as number) - (scores[b] as number)
  )
  let positiveRankSum = 0
  for (let start = 0; start < ascending.length; ) {
    let end = start
    const score = scores[ascending[start] as number] as number
    while (end < ascending.length && scores[ascending[end] as number] === score) end++
    const averageRank = (start + 1 + end) / 2
    for (let position = start; position < end; position++)
      if (labels[ascending[position] as number]) positiveRankSum += averageRank
    start = end
  }
  return (positiveRankSum - (positives * (positives + 1)) / 2) / (positives * negatives)
}

/** Precision and recall at each distinct score threshold, highest first (rows with equal scores enter together). */
const thresholdPoints = (
  scores: ArrayLike<number>,
  labels: ReadonlyArray<boolean>
): Array<{ readonly threshold: number; readonly precision: number; readonly recall: number }> => {
  const positives = countPositives(labels)
  const order = indicesByDescendingScore(scores)
  const points: Array<{ readonly threshold: number; readonly precision: number; readonly recall: number }> =
    []
  let truePositives = 0
  for (let start = 0; start < order.length; ) {
    let end = start
    const score = scores[order[start] as number] as number
    while (end < order.length && scores[order[end] as number] === score) {
      if (labels[order[end] as number]) truePositives++
      end++
    }
    points.push({ threshold: score, precision: truePositives / end, recall: truePositives / positives })
    start = end
  }
  return points
}

/**
 * Average precision, Σ (Rₖ − Rₖ₋₁)·Pₖ over the distinct score thresholds from highest to lowest (rows
 * with equal scores enter together). NaN when there are no positives.
 */
export const averagePrecision = (scores: ArrayLike<number>, labels: ReadonlyArray<boolean>): number => {
  assertSameLength(scores, labels)
  if (countPositives(labels) === 0) return Number.NaN
  let previousRecall = 0
  let area = 0
  for (const point of thresholdPoints(scores, labels)) {
    area += (point.recall - previousRecall) * point.precision
    previousRecall = point.recall
  }
  return area
}

/**
 * Precision and recall when the top ⌈rate·n⌉ rows (at least one) by score are alerted; ties at the
 * cut are broken by row order. Recall is NaN when there are no positives.
 */
export const atAlertRate = (
  scores: ArrayLike<number>,
  labels: ReadonlyArray<boolean>,
  alertRate: number
): AlertRateMetrics => {
  assertSameLength(scores, labels)
  if (labels.length === 0) return { alertRate, alerts: 0, precision: Number.NaN, recall: Number.NaN }
  const alerts = Math.min(labels.length, Math.max(1, Math.ceil(alertRate * labels.length - 1e-9)))
  const order = indicesByDescendingScore(scores)
  let truePositives = 0
  for (let position = 0; position < alerts; position++) if (labels[order[position] as number]) truePositives++
  const positives = countPositives(labels)
  return {
    alertRate,
    alerts,
    precision: truePositives / alerts,
    recall: positives === 0 ? Number.NaN : truePositives / positives
  }
}

/** ROC-AUC, PR-AUC, precision/recall at each alert rate, and the class counts. */
export const classificationMetrics = (
  scores: ArrayLike<number>,
  labels: ReadonlyArray<boolean>,
  alertRates: ReadonlyArray<number> = defaultAlertRates
): ClassificationMetrics => {
  const positives = countPositives(labels)
  return {
    rocAuc: rocAuc(scores, labels),
    prAuc: averagePrecision(scores, labels),
    atAlertRates: alertRates.map((rate) => atAlertRate(scores, labels, rate)),
    positives,
    negatives: labels.length - positives
  }
}

/** One bin of a reliability diagram. */
export interface CalibrationBin {
  readonly lower: number
  readonly upper: number
  readonly count: number
  /** Mean predicted probability in the bin; NaN when empty. */
  readonly meanScore: number
  /** Share of positives in the bin; NaN when empty. */
  readonly observedRate: number
}

/** How well scores read as probabilities. */
export interface Calibration {
  readonly bins: ReadonlyArray<CalibrationBin>
  /** Mean squared error of the scores against the 0/1 labels. */
  readonly brierScore: number
  /** Expected calibration error: Σ (count/n)·|meanScore − observedRate| over non-empty bins. */
  readonly expectedCalibrationError: number
}

/** Reliability bins of equal width over [0, 1] (a score of exactly 1 falls in the last bin). */
export const calibration = (
  scores: ArrayLike<number>,
  labels: ReadonlyArray<boolean>,
  binCount = 10
): Calibration => {
  assertSameLength(scores, labels)
  const counts = new Array<number>(binCount).fill(0)
  const scoreSums = new Array<number>(binCount).fill(0)
  const positives = new Array<number>(binCount).fill(0)
  let squaredError = 0
  for (let index = 0; index < labels.length; index++) {
    const score = Math.min(1, Math.max(0, scores[index] as number))
    const label = labels[index] ? 1 : 0
    const bin = Math.min(binCount - 1, Math.floor(score * binCount))
    counts[bin] = (counts[bin] as number) + 1
    scoreSums[bin] = (scoreSums[bin] as number) + score
    positives[bin] = (positives[bin] as number) + label
    squaredError += (score - label) ** 2
  }
  const bins = counts.map((count, bin) => ({
    lower: bin / binCount,
    upper: (bin + 1) / binCount,
    count,
    meanScore: count === 0 ? Number.NaN : (scoreSums[bin] as number) / count,
    observedRate: count === 0 ? Number.NaN : (positives[bin] as number) / count
  }))
  const total = labels.length
  return {
    bins,
    brierScore: total === 0 ? Number.NaN : squaredError / total,
    expectedCalibrationError:
      total === 0
        ? Number.NaN
        : bins.reduce(
            (sum, bin) =>
              bin.count === 0 ? sum : sum + (bin.count / total) * Math.abs(bin.meanScore - bin.observedRate),
            0
          )
  }
}

/** A point of the precision-recall curve at a score threshold. */
export interface PrecisionRecallPoint {
  readonly threshold: number
  readonly precision: number
  readonly recall: number
}

/**
 * The precision-recall curve over distinct score thresholds from highest to lowest, thinned to at most
 * `maxPoints` (the first and last points are always kept).
 */
export const precisionRecallCurve = (
  scores: ArrayLike<number>,
  labels: ReadonlyArray<boolean>,
  maxPoints = 200
): Array<PrecisionRecallPoint> => {
  assertSameLength(scores, labels)
  if (countPositives(labels) === 0) return []
  const points = thresholdPoints(scores, labels)
  if (points.length <= maxPoints) return points
  const step = (points.length - 1) / (maxPoints - 1)
  return Array.from(
    { length: maxPoints },
    (_, index) => points[Math.round(index * step)] as PrecisionRecallPoint
  )
}
