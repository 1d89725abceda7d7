// kpng observer dashboard: the latency-over-time chart (inline SVG) and the node map, drawn
// by hand from the API's JSON (no library: the observer serves offline clusters too).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const CHART = { width: 640, height: 200, left: 52, right: 10, top: 12, bottom: 24 };

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

// the smallest of 1, 2, 5 x 10^n at or above value: round numbers for the y axis
function niceCeiling(value) {
  if (!(value > 0)) return 0.1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function shortSeconds(value) {
  if (value === 0) return "0";
  return value < 1 ? `${+(value * 1000).toPrecision(3)} ms` : `${+value.toPrecision(3)} s`;
}

// one SVG path per series; a step without samples breaks the line
function linePath(points, key, x, y) {
  let d = "";
  let drawing = false;
  for (const p of points) {
    if (p[key] === null) { drawing = false; continue; }
    d += `${drawing ? "L" : "M"}${x(p.start).toFixed(1)},${y(p[key]).toFixed(1)}`;
    drawing = true;
  }
  return d;
}

function renderLatencyChart(history) {
  const chart = document.getElementById("latency-chart");
  const { width, height, left, right, top, bottom } = CHART;
  const points = history.points;
  const withSamples = points.filter((p) => p.count > 0);
  const first = points.length ? points[0].start : 0;
  const end = points.length ? points[points.length - 1].start + history.step : 1;
  const yMax = niceCeiling(Math.max(0, ...withSamples.map((p) => p.p99)));
  const x = (t) => left + ((t + history.step / 2 - first) / (end - first)) * (width - left - right);
  const y = (v) => height - bottom - (v / yMax) * (height - top - bottom);
  const parts = [];
  for (const fraction of [0, 0.5, 1]) {
    const value = yMax * fraction;
    parts.push(svg("line", { class: "axis", x1: left, x2: width - right, y1: y(value), y2: y(value) }));
    parts.push(svg("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end" }, shortSeconds(value)));
  }
  for (const minutes of [15, 10, 5, 0]) {
    const at = left + (1 - minutes * 60 / (end - first)) * (width - left - right);
    const label = minutes ? `-${minutes} min` : "now";
    parts.push(svg("text", { x: at, y: height - 6, "text-anchor": minutes ? "middle" : "end" }, label));
  }
  for (const key of ["p50", "p99"]) {
    parts.push(svg("path", { class: key, d: linePath(points, key, x, y) }));
    const dots = svg("g", { class: `${key} dots` });
    for (const p of withSamples) {
      const dot = svg("circle", { cx: x(p.start).toFixed(1), cy: y(p[key]).toFixed(1), r: 2.5 });
      const when = new Date(p.start * 1000).toLocaleTimeString();
      dot.append(svg("title", {}, `${when} ${key} ${shortSeconds(p[key])} (${p.count} samples)`));
      dots.append(dot);
    }
    parts.push(dots);
  }
  chart.replaceChildren(...parts);
  chart.dataset.points = String(withSamples.length);
  const samples = withSamples.reduce((sum, p) => sum + p.count, 0);
  document.getElementById("chart-note").textContent = samples
    ? `· ${samples} samples, ${history.step} s steps` : "· no change applied in 15 minutes";
}

// colour of a node: its state; lagging ones from amber to red as the lag grows (60 s: red)
const STATE_COLOURS = {
  ok: "hsl(137, 66%, 30%)", syncing: "hsl(38, 95%, 40%)", diverged: "hsl(280, 55%, 45%)",
  failed: "hsl(0, 65%, 45%)", silent: "hsl(0, 40%, 35%)", unknown: "hsl(220, 9%, 55%)",
};

function nodeColour(node) {
  if (node.state === "lagging" || (node.state === "ok" && node.lag)) {
    const lag = Math.min(node.lag ? node.lag.seconds : 0, 60) / 60;
    return `hsl(${Math.round(40 - 35 * lag)}, 90%, ${Math.round(42 - 12 * lag)}%)`;
  }
  return STATE_COLOURS[node.state] || STATE_COLOURS.unknown;
}

function renderNodeGrid(nodes) {
  const grid = document.getElementById("node-grid");
  grid.replaceChildren(...nodes.map((n) => {
    const lag = n.lag ? `${n.lag.seconds.toFixed(1)} s · ${n.lag.seqs ?? "?"} seq` : "in sync";
    const tile = el("div", { class: `tile ${n.state}`, "data-node": n.name, "data-state": n.state,
      title: `${n.name}: ${n.state}, ${n.lag ? `behind ${lag}` : "not behind"}` },
      el("div", { class: "name" }, n.name), el("div", { class: "detail" }, n.state),
      el("div", { class: "detail" }, lag));
    tile.style.background = nodeColour(n);
    return tile;
  }));
  const legend = document.getElementById("grid-legend");
  if (!legend.childElementCount) {
    const shown = { ok: "ok", lagging: "lagging", failed: "failed", silent: "silent", syncing: "syncing" };
    for (const [state, label] of Object.entries(shown)) {
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = nodeColour({ state, lag: state === "lagging" ? { seconds: 30 } : null });
      legend.append(swatch, label);
    }
  }
}
