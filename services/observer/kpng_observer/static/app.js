// kpng observer dashboard: plain JS, no build step. Polls nothing on its own beyond a slow
// refresh; the event stream (/api/v1/events) drives updates.
"use strict";

const TOKEN_KEY = "kpng-observer-token";
let token = sessionStorage.getItem(TOKEN_KEY) || "";
let pending = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

async function api(path) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(path, { headers });
  if (response.status === 401) {
    token = window.prompt("kpng observer token") || "";
    sessionStorage.setItem(TOKEN_KEY, token);
    throw new Error("unauthorized");
  }
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (value < 1) return `${(value * 1000).toFixed(value < 0.01 ? 1 : 0)} ms`;
  return `${value.toFixed(2)} s`;
}

function renderNodes(nodes, latency) {
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren();
  for (const n of nodes) {
    const applied = n.applied;
    const counts = applied ? applied.counts : {};
    const lat = latency.nodes[n.name] || {};
    const lag = n.lag ? `${n.lag.seqs ?? "?"} seq · ${n.lag.seconds.toFixed(1)} s` : "–";
    const errors = applied && applied.errors.length ? ` ${applied.errors[0]}` : "";
    body.append(el("tr", { "data-node": n.name },
      el("td", {}, n.name,
        ...(n.deleting ? [" ", el("span", { class: "pill deleting" }, "going away")] : [])),
      el("td", {}, n.zone || "–"),
      el("td", {}, el("span", { class: `pill ${n.state}` }, n.state), errors),
      el("td", {}, `${applied ? applied.seq : "–"} / ${n.published.seq}`),
      el("td", {}, lag),
      el("td", {}, n.lastStatusAge === null ? "never" : `${n.lastStatusAge.toFixed(1)} s ago`),
      el("td", {}, applied ? applied.backend : "–"),
      el("td", {}, applied ? `${counts.services ?? 0} · ${counts.endpoints ?? 0}` : "–"),
      el("td", {}, `${seconds(lat.p50)} / ${seconds(lat.p99)}`)));
  }
  document.getElementById("node-count").textContent = `(${nodes.length})`;
}

function renderServices(services) {
  const body = document.querySelector("#services tbody");
  body.replaceChildren();
  for (const s of services) {
    const ports = s.ports.map((p) => `${p.port}/${p.proto}${p.node_port ? ` :${p.node_port}` : ""}`);
    const c = s.endpointCounts;
    const policies = [s.itp ? `iTP ${s.itp}` : "", s.etp ? `eTP ${s.etp}` : "",
      s.affinity_timeout ? "affinity" : ""].filter(Boolean).join(", ");
    body.append(el("tr", { "data-service": `${s.ns}/${s.name}` },
      el("td", {}, `${s.ns}/${s.name}`), el("td", {}, s.type),
      el("td", {}, s.cluster_ips.join(", ")), el("td", {}, ports.join(", ")),
      el("td", { class: "endpoints" }, `${c.ready} / ${c.total}`), el("td", {}, policies || "–")));
  }
  document.getElementById("service-count").textContent = `(${services.length})`;
}

function renderLatency(latency) {
  const c = latency.cluster;
  for (const key of ["p50", "p90", "p99"]) document.getElementById(key).textContent = seconds(c[key]);
  document.getElementById("samples").textContent = c.count;
  document.getElementById("window").textContent =
    `Kubernetes change → applied on the node, cluster-wide, last ${latency.window} s`;
}

async function refresh() {
  try {
    const [nodes, services, latency, history] = await Promise.all([
      api("/api/v1/nodes"), api("/api/v1/services"), api("/api/v1/latency"),
      api("/api/v1/latency/history")]);
    renderLatency(latency);
    renderLatencyChart(history);
    renderNodeGrid(nodes);
    renderNodes(nodes, latency);
    renderServices(services);
  } catch (error) {
    console.warn(error);
  }
}

function scheduleRefresh() {
  if (pending === null) pending = setTimeout(() => { pending = null; refresh(); }, 200);
}

function describe(type, data) {
  switch (type) {
    case "delta": return `seq ${data.seq}: ${data.ops} op(s) ${data.services.join(" ")}`;
    case "snapshot": return `seq ${data.seq}: ${data.services} services, ${data.endpoints} endpoints`;
    case "status": return `${data.node} applied seq ${data.seq}${data.healthy ? "" : " (unhealthy)"}`;
    case "node": return `${data.node}: ${data.previous ?? "new"} → ${data.state}`;
    default: return JSON.stringify(data);
  }
}

function addEvent(type, data) {
  const list = document.getElementById("events");
  const time = new Date((data.time || Date.now() / 1000) * 1000).toLocaleTimeString();
  const item = el("li", { class: `fresh ${type}` }, `${time} `, el("span", { class: "type" }, type),
    describe(type, data));
  list.prepend(item);
  while (list.children.length > 200) list.lastChild.remove();
  if (type === "delta" || type === "snapshot") {
    document.getElementById("view").textContent = `global view epoch ${data.epoch} · seq ${data.seq}`;
  }
}

function connect() {
  const url = token ? `/api/v1/events?access_token=${encodeURIComponent(token)}` : "/api/v1/events";
  const source = new EventSource(url);
  const live = document.getElementById("live");
  source.onopen = () => { live.textContent = "live"; live.className = "pill on"; };
  source.onerror = () => { live.textContent = "reconnecting"; live.className = "pill off"; };
  for (const type of ["delta", "snapshot", "status", "node", "reset"]) {
    source.addEventListener(type, (message) => {
      const data = JSON.parse(message.data);
      if (type !== "status" || data.healthy === false) addEvent(type, data);
      scheduleRefresh();
    });
  }
}

refresh();
connect();
setInterval(refresh, 5000);
