/**
 * The ops dashboard: one self-contained page (no external scripts, styles or fonts) that polls
 * `/api/aggregation` and draws the merchant leaderboard, hourly volume, rates and data freshness, and polls
 * `/api/recon` for the reconciliation panel (break counts and amounts by type).
 */
export const dashboardHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Payment recon: live rollups</title>
<style>
  :root { --ink: #1d2433; --muted: #5c667a; --line: #d9dee8; --accent: #2f6fde; --bad: #c2412d; --bg: #f6f7fb; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg); }
  header { display: flex; justify-content: space-between; align-items: baseline; padding: 16px 24px; background: #fff; border-bottom: 1px solid var(--line); }
  h1 { font-size: 18px; margin: 0; }
  #freshness { color: var(--muted); }
  #freshness.stale { color: var(--bad); font-weight: 600; }
  main { padding: 16px 24px; display: grid; gap: 16px; grid-template-columns: minmax(340px, 1fr) minmax(480px, 2fr); max-width: 1440px; }
  @media (max-width: 900px) { main { grid-template-columns: 1fr; } }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 0 0 10px; }
  .figures { display: grid; grid-template-columns: repeat(3, 1fr); gap: 10px; }
  .figure b { display: block; font-size: 22px; }
  .figure span { color: var(--muted); font-size: 12px; }
  #volumes { margin-top: 12px; }
  #volumes td:first-child { text-align: left; }
  .scroll { overflow-x: auto; }
  td.amounts { white-space: normal; min-width: 260px; }
  select { font: inherit; padding: 1px 4px; }
  table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
  th, td { text-align: right; padding: 5px 6px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th:nth-child(-n+2), td:nth-child(-n+2) { text-align: left; }
  th { color: var(--muted); font-weight: 600; font-size: 12px; }
  td.high { color: var(--bad); font-weight: 600; }
  .wide { grid-column: 1 / -1; }
  svg text { font-size: 11px; fill: var(--muted); }
  #error { color: var(--bad); }
</style>
</head>
<body>
<header><h1>Payment reconciliation index: live rollups</h1><div id="freshness">loading…</div></header>
<main>
  <section><h2>Health</h2><div class="figures" id="figures"></div>
    <table id="volumes"><thead><tr><th>Currency</th><th>Volume</th><th>Captured</th></tr></thead><tbody></tbody></table>
    <p id="error"></p></section>
  <section><h2>Volume by hour of first event, <select id="chart-currency" aria-label="currency"></select></h2><svg id="chart" width="100%" height="240" role="img" aria-label="hourly volume"></svg></section>
  <section class="wide scroll"><h2>Stream since the snapshot: merchants with new transactions</h2>
    <table id="fresh"><thead><tr><th>#</th><th>Merchant</th><th>Transactions</th><th>Volume (newest event)</th><th>Events</th></tr></thead><tbody></tbody></table>
    <p id="fresh-empty">Nothing streamed since the snapshot.</p>
  </section>
  <section class="wide scroll" id="recon"><h2>Reconciliation breaks</h2>
    <table id="recon-breaks"><thead><tr><th>Break type</th><th>Count</th><th>Amount at stake</th></tr></thead><tbody></tbody></table>
    <p id="recon-status">No reconciliation run yet.</p>
  </section>
  <section class="wide scroll"><h2>Merchant leaderboard (captured volume)</h2>
    <table id="leaderboard"><thead><tr><th>#</th><th>Merchant</th><th>Transactions</th><th>Captured volume</th><th>Refund rate</th><th>Chargeback rate</th><th>Fraud rate</th><th>Max fraud score</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script>
"use strict";
const refreshMillis = 5000;
const percent = (rate) => (rate * 100).toFixed(2) + "%";
const text = (element, value) => { element.textContent = value; return element; };
/** Minor units (decimal string) to major units, exactly, with the currency's exponent. */
const major = (minor, exponent) => {
  const negative = minor.startsWith("-");
  const digits = (negative ? minor.slice(1) : minor).padStart(exponent + 1, "0");
  const whole = digits.slice(0, digits.length - exponent).replace(/\\B(?=(\\d{3})+(?!\\d))/g, ",");
  const fraction = exponent > 0 ? "." + digits.slice(digits.length - exponent) : "";
  return (negative ? "-" : "") + whole + fraction;
};
const amounts = (byCurrency, exponents) =>
  Object.entries(byCurrency).map(([currency, minor]) => major(minor, exponents[currency] ?? 2) + " " + currency).join(" · ") || "—";
const ago = (iso) => {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return seconds < 120 ? seconds + " s ago" : seconds < 7200 ? Math.round(seconds / 60) + " min ago" : Math.round(seconds / 3600) + " h ago";
};
function renderFigures(global, exponents) {
  const figures = [
    ["Transactions", global.transaction_count.toLocaleString("en")],
    ["Merchants", global.merchant_count.toLocaleString("en")],
    ["Chargeback rate", percent(global.chargeback_rate)],
    ["Confirmed fraud rate", percent(global.confirmed_fraud_rate)],
    ["Refund rate", percent(global.refund_rate)],
    ["Currencies", String(Object.keys(global.volume_minor).length)],
    ["Stream events since snapshot", global.stream_since_snapshot.events.toLocaleString("en")],
    ["Stream transactions since snapshot", global.stream_since_snapshot.transactions.toLocaleString("en")],
    ["Stream batches not merged", String(global.stream_since_snapshot.streaming_batches)]
  ];
  const container = document.getElementById("figures");
  container.replaceChildren(...figures.map(([label, value]) => {
    const figure = document.createElement("div");
    figure.className = "figure";
    figure.dataset.figure = label;
    figure.append(text(document.createElement("b"), value), text(document.createElement("span"), label));
    return figure;
  }));
}
function renderVolumes(global, exponents) {
  const body = document.querySelector("#volumes tbody");
  body.replaceChildren(...Object.keys(global.volume_minor).map((currency) => {
    const row = document.createElement("tr");
    row.dataset.currency = currency;
    for (const value of [currency, major(global.volume_minor[currency], exponents[currency] ?? 2), major(global.captured_volume_minor[currency] ?? "0", exponents[currency] ?? 2)])
      row.append(text(document.createElement("td"), value));
    return row;
  }));
}
let chartData = { hourly: [], exponents: {} };
function renderChart(hourly, exponents) {
  chartData = { hourly, exponents };
  const svg = document.getElementById("chart");
  const select = document.getElementById("chart-currency");
  const seen = [...new Set(hourly.flatMap((hour) => Object.keys(hour.volume_minor)))].sort();
  if (select.options.length !== seen.length || [...select.options].some((option, index) => option.value !== seen[index])) {
    const chosen = select.value;
    select.replaceChildren(...seen.map((code) => { const option = text(document.createElement("option"), code); option.value = code; return option; }));
    select.value = seen.includes(chosen) ? chosen : seen.includes("EUR") ? "EUR" : seen[0] ?? "";
  }
  const currency = select.value || undefined;
  svg.replaceChildren();
  if (currency === undefined) return;
  const width = svg.clientWidth || 600, height = 240, left = 70, bottom = 24;
  const values = hourly.map((hour) => Number(BigInt(hour.volume_minor[currency] ?? "0")) / 10 ** (exponents[currency] ?? 2));
  const top = Math.max(...values, 1);
  const step = (width - left - 8) / Math.max(values.length, 1);
  const ns = "http://www.w3.org/2000/svg";
  const add = (name, attributes, content) => {
    const node = document.createElementNS(ns, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    if (content !== undefined) node.textContent = content;
    svg.append(node);
  };
  add("text", { x: 0, y: 12 }, top.toLocaleString("en", { maximumFractionDigits: 0 }));
  add("text", { x: 0, y: height - bottom }, "0");
  values.forEach((value, index) => {
    const barHeight = (value / top) * (height - bottom - 16);
    add("rect", { x: left + index * step, y: height - bottom - barHeight, width: Math.max(1, step - 1), height: barHeight, fill: "#2f6fde", "data-hour": hourly[index].hour });
  });
  if (hourly.length > 0) {
    add("text", { x: left, y: height - 6 }, hourly[0].hour.slice(0, 13).replace("T", " ") + "h UTC");
    add("text", { x: width - 150, y: height - 6 }, hourly[hourly.length - 1].hour.slice(0, 13).replace("T", " ") + "h UTC");
  }
}
function renderLeaderboard(merchants, exponents) {
  const body = document.querySelector("#leaderboard tbody");
  body.replaceChildren(...merchants.slice(0, 25).map((merchant, index) => {
    const row = document.createElement("tr");
    row.dataset.merchant = merchant.merchant_id;
    const cells = [
      String(index + 1),
      merchant.merchant_name ?? merchant.merchant_id,
      merchant.transaction_count.toLocaleString("en"),
      amounts(merchant.captured_volume_minor, exponents),
      percent(merchant.refund_rate),
      percent(merchant.chargeback_rate),
      percent(merchant.confirmed_fraud_rate),
      merchant.max_fraud_score === null ? "—" : merchant.max_fraud_score.toFixed(2)
    ];
    cells.forEach((value, column) => {
      const cell = text(document.createElement("td"), value);
      if (column === 3) cell.className = "amounts";
      if ((column === 5 && merchant.chargeback_rate > 0.01) || (column === 6 && merchant.confirmed_fraud_rate > 0.01)) cell.className = "high";
      row.append(cell);
    });
    return row;
  }));
}
function renderFresh(fresh, exponents) {
  const body = document.querySelector("#fresh tbody");
  document.getElementById("fresh-empty").hidden = fresh.merchants.length > 0;
  body.replaceChildren(...fresh.merchants.slice(0, 10).map((merchant, index) => {
    const row = document.createElement("tr");
    row.dataset.merchant = merchant.merchant_id;
    for (const value of [String(index + 1), merchant.merchant_id, merchant.transactions.toLocaleString("en"), amounts(merchant.volume_minor, exponents), merchant.events.toLocaleString("en")])
      row.append(text(document.createElement("td"), value));
    return row;
  }));
}
async function refreshRecon() {
  const status = document.getElementById("recon-status");
  try {
    const response = await fetch("/api/recon", { cache: "no-store" });
    if (response.status === 404) { text(status, "No reconciliation run yet."); return; }
    if (!response.ok) throw new Error("HTTP " + response.status);
    const data = await response.json();
    document.querySelector("#recon-breaks tbody").replaceChildren(...data.by_type.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.breakType = row.break_type;
      const cells = [row.break_type.replaceAll("_", " "), row.count.toLocaleString("en"), amounts(row.amount_minor, data.currency_exponents)];
      cells.forEach((value, column) => {
        const cell = text(document.createElement("td"), value);
        if (column === 1 && row.count > 0) cell.className = "high";
        if (column === 2) cell.className = "amounts";
        tr.append(cell);
      });
      return tr;
    }));
    text(status, data.matches.toLocaleString("en") + " matches · " + data.days + " processor-days in " + data.runs + " runs · updated " + ago(data.updated_at) +
      " · by processor: " + (data.by_processor.map((row) => row.processor + " " + row.count).join(", ") || "no breaks"));
  } catch (cause) {
    text(status, "reconciliation refresh failed: " + cause.message);
  }
}
async function refresh() {
  refreshRecon();
  const error = document.getElementById("error");
  try {
    const response = await fetch("/api/aggregation", { cache: "no-store" });
    if (response.status === 404) { text(document.getElementById("freshness"), "no aggregation published yet"); return; }
    if (!response.ok) throw new Error("HTTP " + response.status);
    const data = await response.json();
    renderFigures(data.global, data.currency_exponents);
    renderVolumes(data.global, data.currency_exponents);
    renderChart(data.global.hourly, data.currency_exponents);
    renderLeaderboard(data.merchants, data.currency_exponents);
    renderFresh(data.global.stream_since_snapshot, data.currency_exponents);
    const freshness = document.getElementById("freshness");
    const newest = data.global.max_last_event_time_iso;
    text(freshness, "version " + data.version + " · computed " + ago(data.global.computed_at) +
      (newest ? " · newest event " + newest.slice(0, 19).replace("T", " ") + " UTC" : "") +
      (data.streaming_committed_at ? " · stream committed " + ago(data.streaming_committed_at) : ""));
    freshness.classList.toggle("stale", Date.now() - Date.parse(data.global.computed_at) > 15 * 60 * 1000);
    document.body.dataset.version = data.version;
    text(error, "");
  } catch (cause) {
    text(error, "refresh failed: " + cause.message);
  }
}
document.getElementById("chart-currency").addEventListener("change", () => renderChart(chartData.hourly, chartData.exponents));
refresh();
setInterval(refresh, refreshMillis);
</script>
</body>
</html>
`
