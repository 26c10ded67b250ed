import { formatMinorUnits } from "../domain/currency.js"
import type { EndToEndReport } from "./endToEnd.js"

const percent = (value: number) => `${(value * 100).toFixed(1)}%`
const metric = (value: number | null | undefined) =>
  value === null || value === undefined ? "n/a" : value.toFixed(3)

/** The closing summary of a full run: counts in/accepted/quarantined, rows per dataset, SQL sample, model. */
export const formatEndToEndSummary = (report: EndToEndReport): string => {
  const { streaming, batch, final, sql, model, aggregation } = report
  const inTotal =
    streaming.consumed +
    batch.transactions.recordsIn +
    batch.fraudSignals.recordsIn +
    batch.dimensions.recordsIn
  const accepted =
    streaming.accepted + batch.transactions.accepted + batch.fraudSignals.accepted + batch.dimensions.accepted
  const quarantined =
    streaming.quarantined +
    batch.transactions.quarantined +
    batch.fraudSignals.quarantined +
    batch.dimensions.quarantined
  const lines = [
    "",
    "== Summary ==",
    `records in: ${inTotal}  accepted: ${accepted}  quarantined: ${quarantined}  (in = accepted + quarantined: ${
      inTotal === accepted + quarantined ? "yes" : "NO"
    })`,
    `  stream:  consumed ${streaming.consumed}, accepted ${streaming.accepted} (indexed ${streaming.indexed}, late ${streaming.late}, duplicates ${streaming.duplicates}), quarantined ${streaming.quarantined}, micro-batches ${streaming.batches}`,
    `  batch:   transactions ${batch.transactions.accepted}/${batch.transactions.recordsIn} accepted, fraud signals ${batch.fraudSignals.accepted}/${batch.fraudSignals.recordsIn}, dimensions ${batch.dimensions.accepted}/${batch.dimensions.recordsIn} (users ${batch.usersSnapshot}, merchants ${batch.merchantsSnapshot}), files read ${batch.filesRead}`,
    `rows per dataset: streaming_index ${streaming.indexed}, late ${streaming.late}, batch_index ${
      batch.transactions.accepted + batch.fraudSignals.accepted
    }, final_aggregate ${final.rows} in ${final.partitions} partitions (version ${final.version})`,
    `SQL check: ${JSON.stringify(sql.check)}`,
    "SQL sample (volume by status and currency):",
    ...sql.statusCounts
      .slice(0, 8)
      .map(
        (row) =>
          `  ${String(row["status"]).padEnd(18)} ${String(row["currency"])} ${String(row["transactions"]).padStart(7)} tx  ${String(row["amount_major"])}`
      ),
    `aggregation: ${aggregation.merchants} merchants, version ${aggregation.version}; top: ${report.topMerchants
      .map(
        (merchant) =>
          `${merchant.merchant_id} (${merchant.transaction_count} tx: ${Object.entries(merchant.volume_minor)
            .map(([currency, minor]) => `${formatMinorUnits(BigInt(minor), currency)} ${currency}`)
            .join(" + ")})`
      )
      .join(", ")}`,
    `model ${model.version} (${model.backend}): train ${model.rows.train} / validation ${model.rows.validation} rows, positives ${model.positives.validation} in validation`,
    `  model               ROC-AUC ${metric(model.metrics.rocAuc)}  PR-AUC ${metric(model.metrics.prAuc)}`,
    `  logistic regression ROC-AUC ${metric(model.logisticMetrics.rocAuc)}  PR-AUC ${metric(model.logisticMetrics.prAuc)}`,
    `  rules               ROC-AUC ${metric(model.baselineMetrics.rocAuc)}  PR-AUC ${metric(model.baselineMetrics.prAuc)}`,
    `  training ${Math.round(model.samplesPerSecond)} samples/s; saved with its model card under ${model.key}`,
    `  ${model.promotion.promoted ? "promoted" : "not promoted"}: ${model.promotion.reason}`,
    `share quarantined: ${percent(inTotal === 0 ? 0 : quarantined / inTotal)}`,
    `reconciliation: ${report.settlements.lines} settlement lines in ${report.settlements.files} reports (${report.settlements.badRows} bad rows quarantined), run ${report.reconciliation.runId} ${report.reconciliation.from} … ${report.reconciliation.to}`,
    `  matches ${report.reconciliation.counts.matches} (${Object.entries(
      report.reconciliation.counts.matches_by_rule
    )
      .map(([rule, count]) => `${rule} ${count}`)
      .join(", ")})`,
    `  breaks ${report.reconciliation.counts.breaks} (${Object.entries(
      report.reconciliation.counts.breaks_by_type
    )
      .map(([type, count]) => `${type} ${count}`)
      .join(", ")}); injected ${report.settlements.injectedBreaks}: ${
      report.settlements.injectedBreaks === report.reconciliation.counts.breaks ? "same count" : "DIFFERENT"
    }`
  ]
  return lines.join("\n")
}
