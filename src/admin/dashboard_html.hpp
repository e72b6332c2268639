// The live dashboard served at /dashboard on admin listeners: one self-contained page (no external scripts,
// styles or fonts) that polls /stats.json every second and turns the totals into rates and percentiles.
#pragma once

#include <string_view>

namespace virex::admin {

inline constexpr std::string_view kDashboardHtml = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Virex Edge</title>
<style>
:root{--bg:#0f1419;--card:#1a2129;--fg:#e6e9ec;--dim:#8b98a5;--accent:#4fb3ff;--bad:#ff6b6b;--ok:#5fd38d}
*{box-sizing:border-box}body{margin:0;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;flex-wrap:wrap;gap:.5em 1.5em;align-items:baseline;padding:14px 18px;border-bottom:1px solid #26303a}
h1{font-size:18px;margin:0}header span{color:var(--dim);font-size:13px}
main{padding:14px 18px;display:grid;gap:12px;grid-template-columns:repeat(auto-fit,minmax(150px,1fr))}
.card{background:var(--card);border-radius:8px;padding:12px 14px}.card b{display:block;font-size:26px;font-variant-numeric:tabular-nums}
.card small{color:var(--dim)}.wide{grid-column:1/-1}canvas{width:100%;height:90px;display:block}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}th,td{text-align:right;padding:4px 6px;border-bottom:1px solid #26303a}
th:first-child,td:first-child{text-align:left}th{color:var(--dim);font-weight:500}.bad{color:var(--bad)}.ok{color:var(--ok)}
.scroll{overflow-x:auto}td:first-child{overflow-wrap:anywhere}.scroll+small{display:block;margin-top:10px}
@media (max-width:480px){main{padding:10px;gap:8px}table{font-size:13px}th,td{padding:3px 4px}}
</style></head><body>
<header><h1>Virex Edge</h1><span id="who">…</span><span id="state">connecting…</span></header>
<main>
<div class="card"><small>requests / s</small><b id="rps">–</b></div>
<div class="card"><small>p50 latency</small><b id="p50">–</b></div>
<div class="card"><small>p99 latency</small><b id="p99">–</b></div>
<div class="card"><small>5xx error rate</small><b id="err">–</b></div>
<div class="card"><small>open connections</small><b id="conns">–</b></div>
<div class="card"><small>requests since start</small><b id="total">–</b></div>
<div class="card"><small>in / out per s</small><b id="bytes">–</b></div>
<div class="card"><small>malformed · timeouts · failed reloads</small><b id="faults" style="font-size:20px">–</b></div>
<div class="card wide"><small>requests / s, last 2 minutes</small><canvas id="spark" width="600" height="90"></canvas></div>
<div class="card wide"><small>routes (rates over the last second)</small>
<table><thead><tr><th>route</th><th>req/s</th><th>5xx/s</th><th>total</th></tr></thead><tbody id="routes"></tbody></table></div>
<div class="card wide" id="cache" hidden><small>cache tiers (hit ratio over the last second; since start when idle)</small><div class="scroll">
<table><thead><tr><th>tier</th><th>hit ratio</th><th>hits/s</th><th>lookups/s</th><th>objects</th><th>size</th></tr></thead><tbody id="tiers"></tbody></table></div></div>
<div class="card wide" id="shards" hidden><small>database shards (queries over the last second; since start when idle)</small><div class="scroll">
<table><thead><tr><th>shard · endpoint</th><th>role</th><th>queries/s</th><th>errors</th><th>in use</th><th>idle</th><th>waiting</th><th>lag</th></tr></thead><tbody id="shard-rows"></tbody></table></div></div>
<div class="card wide" id="upstreams" hidden><small>upstream clusters (last second; since start when idle)</small><div class="scroll">
<table><thead><tr><th>cluster</th><th>req/s</th><th>errors</th><th>p99</th><th>healthy</th></tr></thead><tbody id="up-clusters"></tbody></table></div>
<small>upstream endpoints</small><div class="scroll">
<table><thead><tr><th>endpoint</th><th>state</th><th>req/s</th><th>active</th><th>idle</th></tr></thead><tbody id="up-endpoints"></tbody></table></div></div>
</main>
<script>
"use strict";
const $ = id => document.getElementById(id);
let prev = null; const history = [];
function fmtNum(v){ return v >= 1e6 ? (v/1e6).toFixed(2)+"M" : v >= 1e4 ? (v/1e3).toFixed(1)+"k" : v >= 100 ? v.toFixed(0) : v.toFixed(v >= 10 ? 1 : 2); }
function fmtInt(v){ return v >= 1e6 ? (v/1e6).toFixed(2)+"M" : v >= 1e4 ? (v/1e3).toFixed(1)+"k" : String(Math.round(v)); }
function fmtSec(s){ if (s == null || !isFinite(s)) return "–"; return s >= 1 ? s.toFixed(2)+" s" : s >= 1e-3 ? (s*1e3).toFixed(1)+" ms" : (s*1e6).toFixed(0)+" µs"; }
function fmtBytes(b){ return b >= 1e9 ? (b/1e9).toFixed(1)+" GB" : b >= 1e6 ? (b/1e6).toFixed(1)+" MB" : b >= 1e3 ? (b/1e3).toFixed(1)+" kB" : b.toFixed(0)+" B"; }
// Prometheus' histogram_quantile: linear interpolation inside the bucket holding the rank.
function quantile(q, bounds, cum){
  const total = cum[cum.length-1]; if (!(total > 0)) return null;
  const rank = q * total; let i = 0; while (i < cum.length-1 && cum[i] < rank) i++;
  if (i >= bounds.length) return bounds[bounds.length-1];
  const lo = i ? bounds[i-1] : 0, below = i ? cum[i-1] : 0, inb = cum[i] - below;
  return inb > 0 ? lo + (bounds[i]-lo) * (rank-below) / inb : bounds[i];
}
function spark(){
  const c = $("spark"), r = window.devicePixelRatio || 1;
  if (c.width !== Math.round(c.clientWidth * r)) { c.width = Math.round(c.clientWidth * r); c.height = Math.round(90 * r); }
  const g = c.getContext("2d"); g.setTransform(r, 0, 0, r, 0, 0);
  const w = c.width / r, h = c.height / r; g.clearRect(0,0,w,h);
  if (history.length < 2) return; const max = Math.max(1, ...history);
  g.strokeStyle = "#4fb3ff"; g.lineWidth = 2; g.beginPath();
  history.forEach((v,i) => { const x = i*(w-2)/(120-1)+1, y = h-2-(h-4)*v/max; i ? g.lineTo(x,y) : g.moveTo(x,y); });
  g.stroke(); g.fillStyle = "#8b98a5"; g.font = "12px system-ui"; g.fillText(fmtNum(max)+"/s", 4, 12);
}
function row(body, cells){
  const tr = document.createElement("tr");
  for (const [v, cls] of cells) { const td = document.createElement("td"); td.textContent = v; if (cls) td.className = cls; tr.appendChild(td); }
  body.appendChild(tr);
}
// Upstreams: per cluster tries/s, the share of tries failed (5xx or an RFC 9209 error) and p99 over the last
// second (since start when no try ended in it); per endpoint its state and pooled connections.
function renderUpstreams(s, dt){
  const ups = s.upstreams || [];
  $("upstreams").hidden = ups.length === 0;
  const before = new Map(((prev && prev.upstreams) || []).map(u => [u.cluster, u]));
  const cb = $("up-clusters"), eb = $("up-endpoints");
  cb.textContent = ""; eb.textContent = "";
  for (const u of ups) {
    const p = before.get(u.cluster), pe = new Map(((p && p.endpoints) || []).map(e => [e.endpoint, e]));
    let fails = u.responses_5xx + u.errors, ends = u.responses + u.errors, cum = u.latency.cumulative;
    if (p && dt) {
      const dends = ends - (p.responses + p.errors);
      if (dends > 0) { fails -= p.responses_5xx + p.errors; ends = dends; }
      const dcum = cum.map((v,i) => v - (p.latency.cumulative[i] || 0));
      if (p.latency.cumulative.length === cum.length && dcum[dcum.length-1] > 0) cum = dcum;
    }
    const healthy = u.endpoints.filter(e => e.healthy > 0).length;
    row(cb, [[u.cluster], [p && dt ? fmtNum((u.requests-p.requests)/dt) : "–"],
             [ends > 0 ? (100*fails/ends).toFixed(2)+" %" : "0 %", fails > 0 ? "bad" : ""],
             [fmtSec(quantile(0.99, u.latency.bounds, cum))],
             [`${healthy}/${u.endpoints.length}`, healthy ? "ok" : "bad"]]);
    for (const e of u.endpoints) {
      const q = pe.get(e.endpoint), state = e.ejected > 0 ? "ejected" : e.healthy > 0 ? "up" : "down";
      row(eb, [[`${u.cluster} · ${e.endpoint}`], [state, state === "up" ? "ok" : "bad"],
               [q && dt ? fmtNum((e.requests-q.requests)/dt) : "–"], [fmtInt(e.active)], [fmtInt(e.idle)]]);
    }
  }
}
// Cache tiers: the share of lookups each tier answered, over the last second (since start when idle).
function renderCache(s, dt){
  const tiers = s.cache || [];
  $("cache").hidden = tiers.length === 0;
  const before = new Map(((prev && prev.cache) || []).map(t => [t.tier, t]));
  const tb = $("tiers"); tb.textContent = "";
  for (const t of tiers) {
    const p = before.get(t.tier);
    let hits = t.hits, lookups = t.lookups;
    if (p && dt && t.lookups > p.lookups) { hits -= p.hits; lookups -= p.lookups; }
    const ratio = lookups > 0 ? hits / lookups : null;
    row(tb, [[t.tier], [ratio == null ? "–" : (100*ratio).toFixed(1)+" %", ratio != null && ratio < 0.5 ? "bad" : "ok"],
             [p && dt ? fmtNum((t.hits-p.hits)/dt) : "–"], [p && dt ? fmtNum((t.lookups-p.lookups)/dt) : "–"],
             [t.objects == null ? "–" : fmtInt(t.objects)], [t.bytes == null ? "–" : fmtBytes(t.bytes)]]);
  }
}
// Shards: per shard its queries/s and failed statements; per endpoint its role, pool and replica lag.
function renderShards(s, dt){
  const shards = s.shards || [];
  $("shards").hidden = shards.length === 0;
  const before = new Map(((prev && prev.shards) || []).map(x => [x.shard, x]));
  const tb = $("shard-rows"); tb.textContent = "";
  for (const sh of shards) {
    const p = before.get(sh.shard);
    for (const e of sh.endpoints) {
      const lag = e.lag_ms < -1 ? "–" : e.lag_ms < 0 ? "unknown" : e.lag_ms >= 1000 ? (e.lag_ms/1000).toFixed(1)+" s" : e.lag_ms.toFixed(0)+" ms";
      row(tb, [[`${sh.shard} · ${e.endpoint}`], [e.role], [p && dt ? fmtNum((sh.queries-p.queries)/dt) : "–"],
               [fmtInt(sh.errors), sh.errors > 0 ? "bad" : ""], [fmtInt(e.in_use)], [fmtInt(e.idle)],
               [fmtInt(e.waiting), e.waiting > 0 ? "bad" : ""], [lag, e.lag_ms === -1 || e.lag_ms >= 5000 ? "bad" : ""]]);
    }
  }
}
function render(s){
  $("who").textContent = `${s.node} · ${s.region} · v${s.version}`;
  $("total").textContent = fmtInt(s.requests);
  $("conns").textContent = fmtInt(s.connections_open);
  $("faults").textContent = `${fmtInt(s.parse_errors)} · ${fmtInt(s.timeouts)} · ${fmtInt(s.reloads_failed)}`;
  const status5 = s.status["5xx"] || 0;
  let cum = s.latency.cumulative, scope = "since start";
  if (prev) {
    const dt = Math.max(1e-3, (s.time_ms - prev.time_ms) / 1000), dreq = s.requests - prev.requests;
    const rps = dreq / dt; history.push(rps); if (history.length > 120) history.shift();
    $("rps").textContent = fmtNum(rps);
    $("bytes").textContent = `${fmtBytes((s.received_bytes-prev.received_bytes)/dt)} / ${fmtBytes((s.sent_bytes-prev.sent_bytes)/dt)}`;
    const d5 = status5 - ((prev.status["5xx"]) || 0);
    $("err").textContent = dreq > 0 ? (100*d5/dreq).toFixed(2)+" %" : "0 %";
    $("err").className = d5 > 0 ? "bad" : "ok";
    if (dreq > 0 && prev.latency.cumulative.length === cum.length) { cum = cum.map((v,i) => v - prev.latency.cumulative[i]); scope = "last second"; }
    const before = new Map(prev.routes.map(r => [r.route, r]));
    $("routes").innerHTML = "";
    for (const r of s.routes) {
      const p = before.get(r.route) || {requests: r.requests, errors: r.errors}, tr = document.createElement("tr");
      for (const v of [r.route, fmtNum((r.requests-p.requests)/dt), fmtNum((r.errors-p.errors)/dt), fmtInt(r.requests)]) {
        const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
      }
      $("routes").appendChild(tr);
    }
  } else {
    $("err").textContent = s.requests > 0 ? (100*status5/s.requests).toFixed(2)+" %" : "0 %";
  }
  $("p50").textContent = fmtSec(quantile(0.5, s.latency.bounds, cum));
  $("p99").textContent = fmtSec(quantile(0.99, s.latency.bounds, cum));
  $("p50").title = $("p99").title = scope;
  renderUpstreams(s, prev ? Math.max(1e-3, (s.time_ms - prev.time_ms) / 1000) : null);
  renderCache(s, prev ? Math.max(1e-3, (s.time_ms - prev.time_ms) / 1000) : null);
  renderShards(s, prev ? Math.max(1e-3, (s.time_ms - prev.time_ms) / 1000) : null);
  spark(); prev = s;
}
async function poll(){
  try {
    const r = await fetch("stats.json", {cache: "no-store"});
    if (!r.ok) throw new Error(r.status);
    render(await r.json()); $("state").textContent = "live"; $("state").className = "ok";
  } catch (e) { $("state").textContent = "no data (" + e.message + ")"; $("state").className = "bad"; }
}
poll(); setInterval(poll, 1000);
</script></body></html>
)html";

}  // namespace virex::admin
