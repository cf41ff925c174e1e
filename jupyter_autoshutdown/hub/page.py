"""The hub service's page for hub admins: the fleet as a table a person can sort, with its totals.

One static HTML document (no build step, no third-party script): it reads `api/fleet` beside it
with the page's own hub OAuth cookie every 30 s and renders every value as text (`textContent`),
never as markup, since user and server names come from the hub's users.
"""

PAGE_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Auto-shutdown: the fleet</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1f2328; }
  h1 { font-size: 1.4rem; margin: 0 0 0.25rem; }
  .sub { color: #59636e; margin: 0 0 1rem; }
  .totals { display: flex; flex-wrap: wrap; gap: 0.75rem; margin-bottom: 1rem; }
  .total { border: 1px solid #d1d9e0; border-radius: 6px; padding: 0.5rem 0.9rem; min-width: 9rem; }
  .total b { display: block; font-size: 1.5rem; }
  .total span { color: #59636e; font-size: 0.85rem; }
  table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
  th, td { text-align: left; padding: 0.35rem 0.6rem; border-bottom: 1px solid #d1d9e0; vertical-align: top; }
  th { cursor: pointer; user-select: none; background: #f6f8fa; position: sticky; top: 0; }
  th[aria-sort="ascending"]::after { content: " \\25B2"; }
  th[aria-sort="descending"]::after { content: " \\25BC"; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  td.when { white-space: nowrap; }
  .state { border-radius: 1em; padding: 0 0.5em; font-size: 0.8rem; white-space: nowrap; }
  .state-held { background: #dafbe1; } .state-managed { background: #ddf4ff; }
  .state-no-extension, .state-unreachable, .state-stale { background: #fff1e5; }
  .error { color: #d1242f; }
  #message { margin: 0.5rem 0; }
</style>
</head>
<body>
<h1>Auto-shutdown: the fleet</h1>
<p class="sub" id="sweep">Waiting for the first sweep&hellip;</p>
<div class="totals" id="totals"></div>
<p id="message" role="status"></p>
<table>
  <thead><tr id="head"></tr></thead>
  <tbody id="rows"></tbody>
</table>
<script>
"use strict";
const COLUMNS = [
  ["user", "User"], ["server", "Server"], ["state", "State"], ["version", "Extension"],
  ["idle_seconds", "Idle"], ["stops_at", "Stops at"], ["stop_reason", "Why"],
  ["held_by", "Held by"], ["hub_last_activity", "Hub last activity"], ["error", "Error"],
];
let view = null;
let sortKey = "stops_at";
let ascending = true;

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.round(seconds);
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function when(text) {
  if (!text) return "";
  const moment = new Date(text);
  return isNaN(moment) ? text : moment.toLocaleString();
}
function cell(row, key) {
  const value = row[key];
  if (key === "idle_seconds") return duration(value);
  if (key === "stops_at" || key === "hub_last_activity") return when(value);
  if (key === "server") return value || "(default)";
  return value === null || value === undefined ? "" : String(value);
}
function compare(a, b) {
  const x = a[sortKey], y = b[sortKey];
  if (x === y) return 0;
  if (x === null || x === undefined || x === "") return 1;  // empty last either way
  if (y === null || y === undefined || y === "") return -1;
  const order = x < y ? -1 : 1;
  return ascending ? order : -order;
}
function total(label, value) {
  const box = document.createElement("div");
  box.className = "total";
  const number = document.createElement("b");
  number.textContent = value;
  const name = document.createElement("span");
  name.textContent = label;
  box.append(number, name);
  return box;
}
function render() {
  const head = document.getElementById("head");
  head.replaceChildren(...COLUMNS.map(([key, label]) => {
    const th = document.createElement("th");
    th.textContent = label;
    th.scope = "col";
    th.tabIndex = 0;
    th.setAttribute("aria-sort", key === sortKey ? (ascending ? "ascending" : "descending") : "none");
    const sortBy = () => { ascending = key === sortKey ? !ascending : true; sortKey = key; render(); };
    th.addEventListener("click", sortBy);
    th.addEventListener("keydown", event => { if (event.key === "Enter") sortBy(); });
    return th;
  }));
  if (view === null) return;
  const sweep = view.sweep;
  document.getElementById("sweep").textContent = sweep
    ? `Last sweep ${when(sweep.started_at)}: ${sweep.duration_seconds} s, ` +
      `${sweep.hub_requests} hub API requests, ${sweep.status_requests} status reads` +
      (sweep.error ? `; failed: ${sweep.error}` : "")
    : "Waiting for the first sweep\\u2026";
  const totals = view.totals || {};
  const reference = duration(totals.savings_reference_timeout_seconds);
  document.getElementById("totals").replaceChildren(
    total("servers running", totals.servers ?? 0),
    total("held (running work, keep-alive)", totals.held ?? 0),
    total("stopping within the hour", totals.stopping_within_hour ?? 0),
    total(`server-hours stopped early this week (vs. a ${reference} idle culler)`,
          totals.server_hours_stopped_early_this_week ?? 0),
  );
  const rows = [...view.servers].sort(compare);
  document.getElementById("rows").replaceChildren(...rows.map(row => {
    const tr = document.createElement("tr");
    for (const [key] of COLUMNS) {
      const td = document.createElement("td");
      if (key === "state") {
        const badge = document.createElement("span");
        badge.className = "state state-" + row.state;
        badge.textContent = row.state;
        td.append(badge);
      } else {
        td.textContent = cell(row, key);
      }
      if (key === "idle_seconds") td.className = "num";
      if (key === "stops_at" || key === "hub_last_activity") td.className = "when";
      if (key === "error" && row.error) td.className = "error";
      tr.append(td);
    }
    return tr;
  }));
}
async function refresh() {
  const message = document.getElementById("message");
  try {
    const response = await fetch("api/fleet", { credentials: "same-origin" });
    if (!response.ok) throw new Error(`api/fleet answered ${response.status}`);
    view = await response.json();
    message.textContent = "";
  } catch (error) {
    message.textContent = `Could not read the fleet: ${error.message}`;
    message.className = "error";
  }
  render();
}
render();
refresh();
setInterval(refresh, 30000);
</script>
</body>
</html>
"""
