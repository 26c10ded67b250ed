import type { Calibration, ClassificationMetrics, PrecisionRecallPoint } from "./metrics.js"

/** A named line on a chart with coordinates in [0, 1]. */
export interface ChartSeries {
  readonly name: string
  readonly color: string
  readonly points: ReadonlyArray<readonly [number, number]>
  /** Draw markers at the points as well as the line. */
  readonly markers?: boolean
}

const width = 520
const height = 400
const margin = { left: 56, right: 16, top: 36, bottom: 48 }
const plotWidth = width - margin.left - margin.right
const plotHeight = height - margin.top - margin.bottom

const escapeXml = (text: string): string =>
  text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;")

const x = (value: number) => (margin.left + Math.min(1, Math.max(0, value)) * plotWidth).toFixed(1)
const y = (value: number) => (margin.top + (1 - Math.min(1, Math.max(0, value))) * plotHeight).toFixed(1)

/** A self-contained SVG line chart over the unit square with axes, ticks, a title and a legend. */
export const unitSquareChart = (
  title: string,
  xLabel: string,
  yLabel: string,
  series: ReadonlyArray<ChartSeries>
): string => {
  const ticks = [0, 0.2, 0.4, 0.6, 0.8, 1]
  const grid = ticks
    .map(
      (tick) =>
        `<line x1="${x(tick)}" y1="${y(0)}" x2="${x(tick)}" y2="${y(1)}" stroke="#eee"/>` +
        `<line x1="${x(0)}" y1="${y(tick)}" x2="${x(1)}" y2="${y(tick)}" stroke="#eee"/>` +
        `<text x="${x(tick)}" y="${Number(y(0)) + 16}" text-anchor="middle">${tick.toFixed(1)}</text>` +
        `<text x="${Number(x(0)) - 6}" y="${Number(y(tick)) + 4}" text-anchor="end">${tick.toFixed(1)}</text>`
    )
    .join("")
  const lines = series
    .filter((line) => line.points.length > 0)
    .map((line) => {
      const path = line.points.map(([px, py]) => `${x(px)},${y(py)}`).join(" ")
      const markers =
        line.markers === true
          ? line.points
              .map(([px, py]) => `<circle cx="${x(px)}" cy="${y(py)}" r="3" fill="${line.color}"/>`)
              .join("")
          : ""
      return `<polyline fill="none" stroke="${line.color}" stroke-width="2" points="${path}"/>${markers}`
    })
    .join("")
  const legend = series
    .map(
      (line, index) =>
        `<rect x="${width - margin.right - 150}" y="${margin.top + 8 + index * 18}" width="12" height="12" fill="${line.color}"/>` +
        `<text x="${width - margin.right - 132}" y="${margin.top + 18 + index * 18}">${escapeXml(line.name)}</text>`
    )
    .join("")
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`,
    grid,
    `<rect x="${margin.left}" y="${margin.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#333"/>`,
    lines,
    legend,
    `<text x="${margin.left + plotWidth / 2}" y="${height - 10}" text-anchor="middle">${escapeXml(xLabel)}</text>`,
    `<text transform="translate(14 ${margin.top + plotHeight / 2}) rotate(-90)" text-anchor="middle">${escapeXml(yLabel)}</text>`,
    "</svg>\n"
  ].join("\n")
}

/** Precision-recall curves as a chart (recall on x). */
export const precisionRecallChart = (
  curves: ReadonlyArray<{
    readonly name: string
    readonly color: string
    readonly curve: ReadonlyArray<PrecisionRecallPoint>
  }>
): string =>
  unitSquareChart(
    "Precision-recall on the validation window",
    "recall",
    "precision",
    curves.map(({ name, color, curve }) => ({
      name,
      color,
      points: curve.map((point) => [point.recall, point.precision] as const)
    }))
  )

/** A reliability diagram: observed positive rate against mean predicted probability per bin. */
export const calibrationChart = (
  calibrations: ReadonlyArray<{
    readonly name: string
    readonly color: string
    readonly calibration: Calibration
  }>
): string =>
  unitSquareChart(
    "Calibration on the validation window",
    "mean predicted probability",
    "observed fraud rate",
    [
      {
        name: "perfect",
        color: "#999",
        points: [
          [0, 0],
          [1, 1]
        ]
      },
      ...calibrations.map(({ name, color, calibration }) => ({
        name,
        color,
        markers: true,
        points: calibration.bins
          .filter((bin) => bin.count > 0)
          .map((bin) => [bin.meanScore, bin.observedRate] as const)
      }))
    ]
  )

const percent = (value: number) => (Number.isFinite(value) ? `${(value * 100).toFixed(1)}%` : "n/a")
const decimal = (value: number) => (Number.isFinite(value) ? value.toFixed(4) : "n/a")

/** The readable part of a model card. */
export interface ModelCardSummary {
  readonly version: string
  readonly backend: string
  readonly dataRange: {
    readonly train: { readonly from: string; readonly to: string }
    readonly validation: { readonly from: string; readonly to: string }
  }
  readonly rows: { readonly train: number; readonly validation: number }
  readonly positives: { readonly train: number; readonly validation: number }
  readonly features: ReadonlyArray<string>
  readonly metrics: {
    readonly model: ClassificationMetrics
    readonly logisticRegression: ClassificationMetrics
    readonly rules: ClassificationMetrics
  }
  readonly calibration: { readonly model: Calibration }
  readonly promotion: string
}

/** A short Markdown report of a model card, linking the two charts saved beside it. */
export const modelCardMarkdown = (card: ModelCardSummary): string => {
  const row = (name: string, metrics: ClassificationMetrics) =>
    `| ${name} | ${decimal(metrics.rocAuc)} | ${decimal(metrics.prAuc)} | ${metrics.atAlertRates
      .map((rate) => `${percent(rate.precision)} / ${percent(rate.recall)}`)
      .join(" | ")} |`
  const rates = card.metrics.model.atAlertRates.map((rate) => `P / R at ${percent(rate.alertRate)} alerts`)
  return [
    `# Fraud model ${card.version}`,
    "",
    `Label: \`confirmed_fraud\`. Backend: ${card.backend}. Time-based split: trained on ${card.dataRange.train.from} … ${card.dataRange.train.to} (${card.rows.train} rows, ${card.positives.train} confirmed fraud), validated on ${card.dataRange.validation.from} … ${card.dataRange.validation.to} (${card.rows.validation} rows, ${card.positives.validation} confirmed fraud).`,
    "",
    "## Validation metrics",
    "",
    `| score | ROC-AUC | PR-AUC | ${rates.join(" | ")} |`,
    `|---|---|---|${rates.map(() => "---").join("|")}|`,
    row("model", card.metrics.model),
    row("logistic regression", card.metrics.logisticRegression),
    row("rules", card.metrics.rules),
    "",
    `Calibration of the model: Brier score ${decimal(card.calibration.model.brierScore)}, expected calibration error ${decimal(card.calibration.model.expectedCalibrationError)}. Training weights the fraud class by negatives/positives, so scores rank well but overstate probabilities; use alert rates, not raw scores, as thresholds.`,
    "",
    "![precision-recall](pr_curve.svg)",
    "![calibration](calibration.svg)",
    "",
    "## Features",
    "",
    "Facts known when the transaction happened, and past activity from earlier transactions only:",
    "",
    ...card.features.map((name) => `- \`${name}\``),
    "",
    "## Promotion",
    "",
    card.promotion,
    ""
  ].join("\n")
}
