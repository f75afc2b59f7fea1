// streamconv dashboard: one page fed by GET /events (Server-Sent Events), no build step.
"use strict";

const FLOOR_DB = -60;          // meters and traces start here
const TRACE_POINTS = 90;       // seconds of score history per template
const MAX_ROWS = 200;          // detections kept in the table

const $ = (id) => document.getElementById(id);
const traces = new Map();      // template -> {canvas, points: [{score, threshold}]}
let levels = null;             // the last "levels" event
let detectionCount = 0;
const seen = new Set();        // detections shown, so history and live never repeat one

function fmt(value, digits = 1) {
  return value === null || value === undefined ? "-" : Number(value).toFixed(digits);
}

function logEvent(text) {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  $("event-log").prepend(li);
  while ($("event-log").children.length > 50) $("event-log").lastChild.remove();
}

function showStream(id, stream) {
  const el = $(id);
  if (!stream) return;
  const name = stream.uri === "-" ? (id === "source" ? "stdin" : "stdout")
    : String(stream.uri).split("/").pop();
  el.textContent = stream.state ? `${name} (${stream.state})` : name;
  el.title = stream.last_error ? `${stream.uri}: ${stream.last_error}` : stream.uri;
  el.classList.toggle("bad", stream.state === "reopening");
}

// A canvas drawn at the size it is shown, in device pixels; returns its context in CSS pixels.
function fit(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, W: w, H: h };
}

function showStatus(s) {
  $("state").textContent = s.state;
  $("state").dataset.state = s.state;
  $("config").textContent = s.config || "";
  $("load").textContent = `${fmt(100 * s.load, 1)} %`;
  for (const key of ["overflows", "underflows", "dropped_frames"]) {
    $(key).textContent = s[key];
    $(key).classList.toggle("bad", s[key] > 0);
  }
  $("frames_in").textContent = s.frames_in;
  $("uptime").textContent = `${fmt(s.uptime_s, 0)} s`;
  $("generation").textContent = s.config_generation;
  showStream("source", s.source);
  showStream("sink", s.sink);
}

// -- level meters -------------------------------------------------------------------------

function dbToFraction(db) {
  if (db === null || db === undefined) return 0;
  return Math.max(0, Math.min(1, (db - FLOOR_DB) / -FLOOR_DB));
}

function drawMeters() {
  if (!levels) return;
  const canvas = $("meters");
  const rows = [];
  for (const side of ["input", "output"]) {
    levels[side].peak_dbfs.forEach((peak, ch) => {
      rows.push({ label: `${side === "input" ? "in" : "out"} ${ch}`, peak,
                  rms: levels[side].rms_dbfs[ch] });
    });
  }
  canvas.style.height = `${Math.max(60, 26 * rows.length + 8)}px`;
  const { ctx, W } = fit(canvas);
  const h = 26;
  const x0 = 48, w = W - x0 - 110;
  ctx.font = "12px system-ui, sans-serif";
  rows.forEach((row, i) => {
    const y = 4 + i * h;
    ctx.fillStyle = "#8b93a0";
    ctx.fillText(row.label, 4, y + h * 0.6);
    ctx.fillStyle = "#2c323c";
    ctx.fillRect(x0, y, w, h - 4);
    ctx.fillStyle = "#3fb37f";
    ctx.fillRect(x0, y, w * dbToFraction(row.rms), h - 4);
    const peak = dbToFraction(row.peak);
    ctx.fillStyle = row.peak !== null && row.peak > -1 ? "#e0604f" : "#e0b341";
    ctx.fillRect(x0 + w * peak - 2, y, 3, h - 4);
    ctx.fillStyle = "#e3e6ea";
    ctx.fillText(`${fmt(row.peak)} / ${fmt(row.rms)}`, x0 + w + 8, y + h * 0.6);
  });
}

// -- score traces -------------------------------------------------------------------------

function trace(name) {
  if (!traces.has(name)) {
    const label = document.createElement("div");
    label.className = "trace-name";
    label.textContent = name;
    const canvas = document.createElement("canvas");
    canvas.dataset.template = name;
    $("traces").append(label, canvas);
    traces.set(name, { canvas, points: [] });
  }
  return traces.get(name);
}

function drawTrace(t) {
  const { canvas, points } = t;
  const { ctx, W, H } = fit(canvas);
  const y = (v) => H - 4 - (H - 8) * Math.max(0, Math.min(1, v));   // score 0..1
  const x = (i) => W - (points.length - 1 - i) * (W / TRACE_POINTS);
  ctx.strokeStyle = "#2c323c";
  ctx.strokeRect(0.5, 0.5, W - 1, H - 1);
  if (!points.length) return;
  ctx.strokeStyle = "#e0604f";
  ctx.setLineDash([5, 4]);
  ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(i), y(p.threshold)) : ctx.moveTo(x(i), y(p.threshold))));
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.strokeStyle = "#5aa9e6";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(i), y(p.score)) : ctx.moveTo(x(i), y(p.score))));
  ctx.stroke();
  ctx.lineWidth = 1;
}

function addScores(event) {
  for (const [name, v] of Object.entries(event.templates)) {
    const t = trace(name);
    t.points.push({ score: v.score, threshold: v.threshold });
    if (t.points.length > TRACE_POINTS) t.points.shift();
    drawTrace(t);
  }
}

// -- detections ---------------------------------------------------------------------------

function play(button, name) {
  const audio = new Audio(`/snippets/${encodeURIComponent(name)}`);
  button.dataset.state = "loading";
  audio.addEventListener("playing", () => { button.dataset.state = "playing"; });
  audio.addEventListener("ended", () => { button.dataset.state = "ended"; });
  audio.addEventListener("error", () => {
    button.dataset.state = "error";
    button.title = "snippet not available (not written yet, or removed by the disk budget)";
  });
  audio.play().catch(() => { button.dataset.state = "error"; });
}

function addDetection(d, fresh) {
  const key = `${d.template}|${d.sample}|${d.channel}`;
  if (seen.has(key)) return;
  seen.add(key);
  const tr = document.createElement("tr");
  tr.dataset.sample = d.sample;
  tr.dataset.template = d.template;
  if (fresh) tr.className = "new";
  const cells = [fmt(d.time, 3), d.template, d.sample, fmt(d.score, 3),
                 d.channel === null ? "all" : d.channel];
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  const td = document.createElement("td");
  if (d.snippet) {
    const button = document.createElement("button");
    button.className = "play";
    button.textContent = "play";
    button.dataset.snippet = d.snippet;
    button.addEventListener("click", () => play(button, d.snippet));
    td.append(button);
  }
  tr.append(td);
  if (fresh) $("detection-rows").prepend(tr); else $("detection-rows").append(tr);
  while ($("detection-rows").children.length > MAX_ROWS) $("detection-rows").lastChild.remove();
  detectionCount += 1;
  $("detection-count").textContent = detectionCount;
}

// -- wiring -------------------------------------------------------------------------------

function connect() {
  const source = new EventSource("/events");
  const on = (kind, handler) =>
    source.addEventListener(kind, (e) => handler(JSON.parse(e.data)));
  source.onopen = () => {
    $("connection").textContent = "connected";
    $("connection").dataset.state = "connected";
  };
  source.onerror = () => {   // EventSource reconnects by itself
    $("connection").textContent = "disconnected";
    $("connection").dataset.state = "disconnected";
  };
  on("status", showStatus);
  on("levels", (l) => { levels = l; drawMeters(); });
  on("scores", addScores);
  on("detection", (d) => addDetection(d, true));
  on("reload", (r) => logEvent(r.ok ? `reload: generation ${r.generation}`
                                    : `reload failed: ${r.errors.join("; ")}`));
  on("device", (d) => logEvent(d.message));
  on("state", (s) => logEvent(`state: ${s.state}`));
}

async function start() {
  connect();  // first, so no detection falls between the history and the stream
  try {
    const recent = await (await fetch("/detections")).json();
    recent.slice(-MAX_ROWS).reverse().forEach((d) => addDetection(d, false));
  } catch (err) {
    logEvent(`could not read /detections: ${err}`);
  }
}

window.addEventListener("resize", () => {
  drawMeters();
  traces.forEach(drawTrace);
});
start();
