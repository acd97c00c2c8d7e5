// The qamar ground console: polls the ground service's JSON API (qamar.ops.server) and draws
// the site map, telemetry plots, alarms, the command queue and refusals. Plain JS, no build.
"use strict";

const POLL_MS = Number(new URLSearchParams(location.search).get("poll_ms")) || 1000;
const WINDOW_S = 600;  // plots show the last ten minutes of each parameter (the twin's time)
const DEFAULT_PLOTS = ["battery_soc_pct", "bus_voltage_v", "battery_temp_c", "tilt_deg"];
const plots = new Map();  // parameter -> {t: [], v: [], canvas, info, meta}
let parameters = {};

const $ = (id) => document.getElementById(id);

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail ? JSON.stringify(body.detail).replace(/^"|"$/g, "") : response.statusText);
  return body;
}

function post(path, payload) {
  return api(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(payload)});
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

const fmt = (v) => typeof v === "number" ? String(Number(v.toPrecision(5))) : String(v);
const shortUtc = (utc) => utc ? utc.replace("T", " ").replace(/\.\d+Z$/, "Z") : "";

// --- telemetry plots ---------------------------------------------------------------------------

function addPlot(name) {
  if (plots.has(name) || !parameters[name]) return;
  const box = document.createElement("div");
  box.className = "plot";
  box.dataset.parameter = name;
  const title = document.createElement("div");
  title.className = "title";
  const info = document.createElement("span");
  info.textContent = name;
  const close = document.createElement("button");
  close.textContent = "x";
  close.onclick = () => { plots.delete(name); box.remove(); };
  title.append(info, close);
  const canvas = document.createElement("canvas");
  canvas.id = "plot-" + name;
  canvas.dataset.points = "0";
  box.append(title, canvas);
  $("plots").append(box);
  plots.set(name, {t: [], v: [], canvas, info, meta: parameters[name], limits: null});
}

async function updatePlot(name, plot) {
  const last = plot.t.length ? plot.t[plot.t.length - 1] : null;
  const query = last === null ? `last_s=${WINDOW_S}` : `after_tai_s=${last}`;
  const data = await api(`/api/telemetry/${name}?${query}`);
  plot.limits = data.limits;
  plot.t.push(...data.t_tai_s);
  plot.v.push(...data.values.map(Number));
  if (!plot.t.length) return;
  const start = plot.t[plot.t.length - 1] - WINDOW_S;
  while (plot.t.length && plot.t[0] < start) { plot.t.shift(); plot.v.shift(); }
  const latest = plot.v[plot.v.length - 1];
  plot.info.textContent = `${name} = ${fmt(latest)} ${data.units || ""}  (${shortUtc(data.last_utc) || "no new data"})`;
  plot.canvas.dataset.points = String(plot.t.length);
  plot.canvas.dataset.last = String(latest);
  draw(plot);
}

function draw(plot) {
  const c = plot.canvas, ratio = window.devicePixelRatio || 1;
  c.width = c.clientWidth * ratio;
  c.height = c.clientHeight * ratio;
  const g = c.getContext("2d");
  g.scale(ratio, ratio);
  const w = c.clientWidth, h = c.clientHeight, pad = {l: 48, r: 8, t: 6, b: 16};
  const lines = Object.values(plot.limits || {}).filter((v) => v !== null);
  let lo = Math.min(...plot.v), hi = Math.max(...plot.v);
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const near = lines.filter((v) => v > lo - (hi - lo) && v < hi + (hi - lo));
  lo = Math.min(lo, ...near); hi = Math.max(hi, ...near);
  const t1 = plot.t[plot.t.length - 1], t0 = Math.min(plot.t[0], t1 - 1);
  const x = (t) => pad.l + (w - pad.l - pad.r) * (t - t0) / (t1 - t0 || 1);
  const y = (v) => h - pad.b - (h - pad.t - pad.b) * (v - lo) / (hi - lo);
  g.fillStyle = "#8a939e";
  g.font = "10px sans-serif";
  g.fillText(fmt(hi), 2, pad.t + 8);
  g.fillText(fmt(lo), 2, h - pad.b);
  g.fillText(`-${fmt(t1 - t0)} s`, pad.l, h - 3);
  g.fillText("latest", w - pad.r - 30, h - 3);
  g.setLineDash([4, 3]);
  g.strokeStyle = "#ff6060";
  for (const v of near) { g.beginPath(); g.moveTo(pad.l, y(v)); g.lineTo(w - pad.r, y(v)); g.stroke(); }
  g.setLineDash([]);
  g.strokeStyle = "#00e0ff";
  g.beginPath();
  plot.t.forEach((t, i) => (i ? g.lineTo(x(t), y(plot.v[i])) : g.moveTo(x(t), y(plot.v[i]))));
  g.stroke();
}

// --- map, alarms, commands ---------------------------------------------------------------------

async function setupMap() {
  try {
    const m = await api("/api/map");
    $("map-overlay").setAttribute("viewBox", `0 0 ${m.width_px} ${m.height_px}`);
    $("rover").setAttribute("r", String(Math.max(m.width_px, m.height_px) / 100));
    $("map-image").src = m.png;
    $("map-image").title = `${m.dem}, ${m.pixel_m.toFixed(0)} m pixels`;
  } catch (error) {
    $("position").textContent = String(error.message);
  }
}

const track = {t: [], x: [], y: []};

async function updateRover() {
  const last = track.t.length ? track.t[track.t.length - 1] : null;
  const {position, track: more} = await api(last === null ? "/api/rover" : `/api/rover?after_tai_s=${last}`);
  if (!position) return;
  const marker = $("rover");
  track.t.push(...more.t_tai_s);
  if (more.x_px) {
    track.x.push(...more.x_px);
    track.y.push(...more.y_px);
    $("track").setAttribute("points", track.x.map((x, i) => `${x},${track.y[i]}`).join(" "));
    marker.setAttribute("cx", position.x_px);
    marker.setAttribute("cy", position.y_px);
    marker.setAttribute("visibility", "visible");
  }
  $("position").textContent = `rover at ${position.lat_deg.toFixed(5)} deg, ${position.lon_deg.toFixed(5)} deg E ` +
    `(${shortUtc(position.utc)})`;
}

// Refill the table body `id` with one row per item, newest first, each filled by fillRow(row, item).
function fillTable(id, items, fillRow) {
  const body = $(id);
  body.replaceChildren();
  for (const item of items.reverse()) fillRow(body.insertRow(), item);
}

async function updateAlarms() {
  fillTable("alarms", await api("/api/alarms"), (row, a) => {
    row.className = a.cleared_tai_s === null ? a.severity : "cleared";
    row.dataset.parameter = a.parameter;
    [a.alarm_id, a.parameter, a.severity, fmt(a.value), shortUtc(a.raised_utc), shortUtc(a.cleared_utc)]
      .forEach((v) => cell(row, v));
    const td = row.insertCell();
    if (a.acknowledged_by) td.textContent = `ack ${a.acknowledged_by}`;
    else {
      const button = document.createElement("button");
      button.textContent = "ack";
      button.onclick = () => post(`/api/alarms/${a.alarm_id}/ack`, {operator: "console"}).then(updateAlarms);
      td.append(button);
    }
  });
}

async function updateCommands() {
  fillTable("commands", await api("/api/commands"), (row, c) => {
    row.dataset.commandId = c.command_id;
    cell(row, c.command_id);
    cell(row, c.line);
    cell(row, c.sequence);
    cell(row, c.stage, "stage stage-" + c.stage);
    cell(row, shortUtc(c.release_utc));
    cell(row, c.arsn);
    cell(row, c.reason);
  });
  const refusals = await api("/api/refusals");
  $("refusals").replaceChildren(...refusals.slice(-10).reverse().map((r) => {
    const li = document.createElement("li");
    li.textContent = `${shortUtc(r.utc)} ${r.source}: ${r.what}: ${r.reason}`;
    return li;
  }));
}

async function updateStatus() {
  const s = await api("/api/status");
  $("status").textContent = `${shortUtc(s.now_utc)} | twin ${s.twin_connected ? "connected" : "not connected"} ` +
    `(${s.tcp}) | ${s.packets_archived} packets | ${s.telecommands_waiting} waiting | ${s.dictionary}`;
  $("status").className = s.twin_connected ? "ok" : "down";
}

function showResult(element, text, ok) {
  element.textContent = text;
  element.className = "result " + (ok ? "ok" : "error");
}

$("command-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const at = $("command-at").value.trim();
  try {
    const c = await post("/api/commands", {line: $("command-line").value, at_utc: at || null});
    showResult($("command-result"), `queued #${c.command_id} ${c.line}: ${c.stage}`, true);
  } catch (error) {
    showResult($("command-result"), "refused: " + error.message, false);
  }
  updateCommands();
});

$("sequence-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("sequence-file").files[0];
  if (!file) return showResult($("sequence-result"), "choose a sequence file first", false);
  const start = $("sequence-start").value.trim();
  try {
    const s = await post("/api/sequences", {text: await file.text(), name: file.name.replace(/\.[^.]*$/, ""),
      start_utc: start || null});
    showResult($("sequence-result"), `sequence ${s.name}: ${s.commands.length} commands queued`, true);
  } catch (error) {
    showResult($("sequence-result"), "refused: " + error.message, false);
  }
  updateCommands();
});

async function poll() {
  const tasks = [updateStatus(), updateRover(), updateAlarms(), updateCommands(),
    ...[...plots].map(([name, plot]) => updatePlot(name, plot))];
  const results = await Promise.allSettled(tasks);
  if (results[0].status === "rejected") {
    $("status").textContent = "ground service unreachable";
    $("status").className = "down";
  }
  setTimeout(poll, POLL_MS);
}

async function start() {
  const status = await api("/api/status");
  parameters = Object.fromEntries(Object.entries(status.parameters).filter(([, p]) => p.numeric));
  const choice = $("plot-choice");
  choice.append(new Option("", ""), ...Object.keys(parameters).map((n) => new Option(n, n)));
  choice.onchange = () => { addPlot(choice.value); choice.value = ""; };
  $("command-names").append(...Object.entries(status.commands).map(([name, args]) =>
    new Option(args.join(" "), name)));
  DEFAULT_PLOTS.forEach(addPlot);
  setupMap();
  poll();
}

start().catch((error) => { $("status").textContent = "cannot start: " + error.message; });
