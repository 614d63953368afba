// agentjournal viewer: plain JS, no build step, nothing loaded from elsewhere.
// Every value from a journal is rendered with textContent (el() below), never as HTML.
"use strict";

const ROW_H = 22;          // px per row of the virtual step list
const PAGE = 200;          // rows fetched per page
const STR_MAX = 160;       // characters of a string shown before "show more"
const KIDS_MAX = 100;      // children of a container shown before "show more"

// ------------------------------------------------------------------ helpers
function el(tag, attrs, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") n.className = v;
    else if (k === "style") n.style.cssText = v;  // CSSOM: allowed by the CSP, unlike style=""
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(n.dataset, v);
    else n.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    n.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return n;
}
const $ = (sel, root) => (root || document).querySelector(sel);
const enc = encodeURIComponent;

async function api(path, opts) {
  const r = await fetch(path, opts);
  const ct = r.headers.get("content-type") || "";
  const body = ct.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    const msg = body && body.message ? body.message + (body.hint ? " — " + body.hint : "") : r.statusText;
    const e = new Error(msg); e.status = r.status; e.body = body; throw e;
  }
  return body;
}
function fmtTime(ts) {
  if (ts === null || ts === undefined) return "–";
  const d = new Date(ts * 1000);
  return d.toISOString().replace("T", " ").slice(0, 23);
}
function fmtDt(dt) {
  if (dt === null || dt === undefined) return "";
  if (dt < 1) return "+" + (dt * 1000).toFixed(dt < 0.01 ? 2 : 0) + " ms";
  if (dt < 120) return "+" + dt.toFixed(1) + " s";
  return "+" + (dt / 60).toFixed(1) + " min";
}
function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const u = ["B", "KiB", "MiB", "GiB"]; let i = 0; let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return i ? v.toFixed(1) + " " + u[i] : v + " B";
}
function ago(ts) {
  if (!ts) return "–";
  const s = Date.now() / 1000 - ts;
  if (s < 60) return Math.max(0, Math.round(s)) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}
function errorBox(e) { return el("div", { class: "error", role: "alert" }, String(e.message || e)); }

// ------------------------------------------------------------------ JSON Pointer + patches
function parsePtr(p) {
  if (p === "") return [];
  return p.slice(1).split("/").map(t => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}
function ptr(tokens) { return tokens.map(t => "/" + String(t).replace(/~/g, "~0").replace(/\//g, "~1")).join(""); }
function getAt(doc, tokens) {
  let n = doc;
  for (const t of tokens) {
    if (n === null || typeof n !== "object") return undefined;
    n = Array.isArray(n) ? n[Number(t)] : (Object.prototype.hasOwnProperty.call(n, t) ? n[t] : undefined);
  }
  return n;
}
function clone(v) { return v === undefined ? v : JSON.parse(JSON.stringify(v)); }
// Apply one op (add/remove/replace) in place; returns the new root.
function applyOp(doc, op) {
  const tokens = parsePtr(op.path);
  const value = clone(op.value);
  if (!tokens.length) return op.op === "remove" ? null : value;
  const parent = getAt(doc, tokens.slice(0, -1));
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) {
    const i = last === "-" ? parent.length : Number(last);
    if (op.op === "add") parent.splice(i, 0, value);
    else if (op.op === "remove") parent.splice(i, 1);
    else parent[i] = value;
  } else if (parent && typeof parent === "object") {
    if (op.op === "remove") delete parent[last]; else parent[last] = value;
  } else {
    throw new Error("patch does not fit the state at " + op.path);
  }
  return doc;
}
// Undo annotated ops (each has `at` and, when it overwrote something, `old`).
function undoOps(doc, ops) {
  for (let k = ops.length - 1; k >= 0; k--) {
    const o = ops[k];
    const tokens = parsePtr(o.at);
    const parent = tokens.length ? getAt(doc, tokens.slice(0, -1)) : null;
    const isList = Array.isArray(parent);
    if (o.op === "add") {
      if ("old" in o && !isList) doc = applyOp(doc, { op: "replace", path: o.at, value: o.old });
      else doc = applyOp(doc, { op: "remove", path: o.at });
    } else if (o.op === "replace") {
      doc = applyOp(doc, { op: "replace", path: o.at, value: o.old });
    } else if (o.op === "remove") {
      doc = applyOp(doc, { op: "add", path: o.at, value: o.old });
    }
  }
  return doc;
}

// ------------------------------------------------------------------ routing
let config = { allow_fork: false };
const view = { agent: null };

function route() {
  stopAgent();
  const m = location.pathname.match(/^\/agents\/([^/]+)$/);
  if (m) showAgent(decodeURIComponent(m[1]));
  else showAgents();
}
window.addEventListener("popstate", route);
document.addEventListener("DOMContentLoaded", async () => {
  try { config = await api("/api/config"); } catch (e) { /* defaults */ }
  $("#store").textContent = config.store ? "store: " + config.store : "";
  $("#home").addEventListener("click", ev => { ev.preventDefault(); history.pushState(null, "", "/"); route(); });
  route();
});

// ------------------------------------------------------------------ agents list
async function showAgents() {
  $("#crumb").textContent = "";
  const main = $("#main");
  const filter = el("input", { id: "agent-filter", type: "search", placeholder: "filter by id", value: new URLSearchParams(location.search).get("q") || "" });
  const table = el("table", { id: "agents", class: "grid" });
  main.replaceChildren(el("h1", {}, "Agents"), filter, table);
  let rows = [];
  const witnessed = !!(config.witnesses && config.witnesses.length);
  const draw = () => {
    const q = filter.value.toLowerCase();
    const byParent = new Map();
    const ids = new Set(rows.map(r => r.agent_id));
    for (const r of rows) {
      const p = r.parent && ids.has(r.parent.agent_id) ? r.parent.agent_id : "";
      if (!byParent.has(p)) byParent.set(p, []);
      byParent.get(p).push(r);
    }
    const body = [];
    const walk = (p, depth) => {
      for (const r of byParent.get(p) || []) {
        if (!q || r.agent_id.toLowerCase().includes(q)) body.push(agentRow(r, depth));
        walk(r.agent_id, depth + 1);
      }
    };
    walk("", 0);
    table.replaceChildren(
      el("thead", {}, el("tr", {}, ["agent", "steps", "last activity", "writer", "snapshots", "bytes", "health"].concat(witnessed ? ["witness"] : []).map(h => el("th", {}, h)))),
      el("tbody", {}, body.length ? body : el("tr", {}, el("td", { colspan: 8, class: "dim" }, "no agents"))));
  };
  filter.addEventListener("input", () => {
    history.replaceState(null, "", filter.value ? "/?q=" + enc(filter.value) : "/");
    draw();
  });
  try { rows = (await api("/api/agents")).agents; draw(); } catch (e) { main.append(errorBox(e)); }
}
function agentRow(r, depth) {
  const link = el("a", { href: "/agents/" + enc(r.agent_id), onclick: ev => { ev.preventDefault(); history.pushState(null, "", "/agents/" + enc(r.agent_id)); route(); } }, r.agent_id);
  const name = el("td", { class: "agent-id" }, depth ? el("span", { class: "fork-branch", style: null }, "└".padStart(depth * 2, " ") + " ") : null, link,
    r.parent ? el("span", { class: "dim" }, " forked at step " + r.parent.step) : null);
  return el("tr", { dataset: { agent: r.agent_id } }, name,
    el("td", { class: "num" }, r.steps), el("td", {}, r.last_ts ? ago(r.last_ts) : "–"),
    el("td", {}, el("span", { class: "badge " + (r.live ? "live" : "idle") }, r.live ? "live (pid " + r.writer_pid + ")" : "idle")),
    el("td", { class: "num" }, r.snapshots), el("td", { class: "num" }, fmtBytes(r.bytes)),
    el("td", {}, el("span", { class: "health " + r.health, title: r.problem || "" }, r.health.replace("_", " "))),
    config.witnesses && config.witnesses.length ? el("td", {}, r.witness ? el("span", { class: "witness " + r.witness }, r.witness.replace("_", " ")) : "–") : null);
}

// ------------------------------------------------------------------ agent page
function stopAgent() {
  const a = view.agent;
  if (!a) return;
  if (a.source) a.source.close();
  if (a.timer) clearInterval(a.timer);
  document.removeEventListener("keydown", a.onKey);
  view.agent = null;
}

function urlState() {
  const q = new URLSearchParams(location.search);
  const num = k => (q.has(k) && q.get(k) !== "" && !isNaN(Number(q.get(k))) ? Number(q.get(k)) : null);
  return {
    step: num("step"), vs: num("vs"), vsagent: q.get("vsagent") || "",
    touching: q.get("touching") || "", text: q.get("text") || "", regex: q.get("regex") === "1",
    kind: q.get("kind") || "", since: q.get("since") || "", until: q.get("until") || "",
    pins: q.getAll("pin"), raw: q.get("view") === "raw",
  };
}
function writeUrl(a, push) {
  const q = new URLSearchParams();
  q.set("step", a.step);
  if (a.vs !== null) q.set("vs", a.vs);
  if (a.vs !== null && a.vsagent) q.set("vsagent", a.vsagent);
  for (const k of ["touching", "text", "kind", "since", "until"]) if (a.f[k]) q.set(k, a.f[k]);
  if (a.f.regex) q.set("regex", "1");
  for (const p of a.pins) q.append("pin", p);
  if (a.raw) q.set("view", "raw");
  const url = "/agents/" + enc(a.id) + "?" + q.toString();
  if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
}
function base(a) { return "/api/agents/" + enc(a.id); }
function filtersActive(f) { return !!(f.touching || f.text || f.kind || f.since || f.until); }

async function showAgent(id) {
  const u = urlState();
  const a = {
    id, info: null, step: null, state: undefined, changes: null, vs: u.vs, vsagent: u.vsagent,
    f: { touching: u.touching, text: u.text, regex: u.regex, kind: u.kind, since: u.since, until: u.until },
    pins: u.pins, raw: u.raw, pages: new Map(), follow: true, playing: false, filtered: null,
    seq: 0, busy: Promise.resolve(),
  };
  view.agent = a;
  $("#crumb").textContent = " / " + id;
  const main = $("#main");
  main.replaceChildren(el("p", { class: "dim" }, "Loading " + id + "…"));
  try {
    a.info = await api(base(a));
  } catch (e) { main.replaceChildren(errorBox(e)); return; }
  buildAgentPage(a, main);
  const start = u.step !== null ? u.step : a.info.last_step;
  await goto(a, Math.min(Math.max(start, a.info.first_step), a.info.last_step), { scroll: true });
  loadList(a);
  startTail(a);
}

function buildAgentPage(a, main) {
  const info = a.info;
  a.slider = el("input", { id: "slider", type: "range", min: info.first_step, max: info.last_step, value: info.last_step, "aria-label": "step" });
  a.slider.addEventListener("input", () => goto(a, Number(a.slider.value)));
  a.marks = el("div", { id: "marks", "aria-hidden": "true" });
  a.stepLabel = el("span", { id: "step-label" });
  a.jump = el("input", { id: "jump", type: "number", min: 0, placeholder: "jump to step" });
  a.jump.addEventListener("keydown", ev => { if (ev.key === "Enter" && a.jump.value !== "") goto(a, Number(a.jump.value), { scroll: true }); });
  a.play = el("button", { id: "play", onclick: () => togglePlay(a) }, "▶ play");
  a.followBox = el("input", { id: "follow", type: "checkbox", checked: true, onchange: () => { a.follow = a.followBox.checked; } });
  a.liveBadge = el("span", { id: "live", class: "badge idle" }, "idle");
  a.newBadge = el("span", { id: "new-steps", class: "badge", hidden: true });

  const f = a.f;
  const inp = (name, ph, type) => el("input", { name, placeholder: ph, type: type || "text", value: f[name] || "" });
  a.form = el("form", { id: "filters", onsubmit: ev => { ev.preventDefault(); applyFilters(a); } },
    inp("touching", "path touched, e.g. /messages"), inp("text", "text in values"),
    el("label", {}, el("input", { type: "checkbox", name: "regex", checked: f.regex }), " regex"),
    el("select", { name: "kind" }, ["", "step", "snapshot", "fork", "anchor", "cut"].map(k => el("option", { value: k, selected: k === f.kind }, k || "any kind"))),
    el("label", {}, "since ", inp("since", "2026-12-01T12:00", "text")),
    el("label", {}, "until ", inp("until", "", "text")),
    el("button", { type: "submit" }, "search"),
    el("button", { type: "button", onclick: () => { a.form.reset(); for (const k of Object.keys(a.f)) a.f[k] = k === "regex" ? false : ""; for (const n of a.form.querySelectorAll("input[type=text]")) n.value = ""; applyFilters(a); } }, "clear"));

  a.list = el("div", { id: "steps", tabindex: 0, role: "listbox", "aria-label": "steps" });
  a.spacer = el("div", { class: "spacer" });
  a.list.append(a.spacer);
  a.list.addEventListener("scroll", () => drawList(a));
  a.filteredBox = el("div", { id: "results", hidden: true });

  a.diffBox = el("div", { id: "diff" });
  a.vsInput = el("input", { id: "vs", type: "number", placeholder: "step", value: a.vs === null ? "" : a.vs });
  a.vsAgent = el("input", { id: "vsagent", placeholder: "agent (default: this one)", value: a.vsagent });
  a.treeBox = el("div", { id: "tree" });
  a.pinBox = el("div", { id: "pins" });
  a.blameBox = el("div", { id: "blame" });
  a.integrityBox = el("div", { id: "integrity" });
  a.verifyBox = el("div", { id: "verify-result" });
  a.forkBox = el("div", { id: "fork" });

  const header = el("div", { id: "agent-head" },
    el("h1", {}, info.agent_id),
    el("span", { id: "writer", class: "badge " + (info.live ? "live" : "idle") }, info.live ? "writer live (pid " + info.writer_pid + ")" : "no writer"), " ", a.liveBadge,
    info.parent ? el("span", { class: "dim" }, " forked from ", el("a", { href: "/agents/" + enc(info.parent.agent_id) + "?step=" + info.parent.step }, info.parent.agent_id), " at step " + info.parent.step) : null,
    info.forks.length ? el("span", { class: "dim" }, " forks: ", info.forks.map(c => el("a", { href: "/agents/" + enc(c.agent_id) }, c.agent_id + "@" + c.step + " "))) : null);
  const timeline = el("div", { id: "timeline" }, el("div", { class: "slider-wrap" }, a.slider, a.marks),
    el("div", { class: "controls" }, a.stepLabel, a.jump, a.play,
      el("button", { onclick: () => goto(a, a.info.first_step, { scroll: true }), title: "first step (Home)" }, "first"),
      el("button", { onclick: () => goto(a, a.step - 1, { scroll: true }), title: "previous step (←)" }, "◀"),
      el("button", { onclick: () => goto(a, a.step + 1, { scroll: true }), title: "next step (→)" }, "▶"),
      el("button", { onclick: () => goto(a, a.info.last_step, { scroll: true }), title: "last step (End)" }, "last"),
      el("label", {}, a.followBox, " follow"), a.newBadge));
  const exportBox = el("div", { id: "export" },
    el("a", { id: "export-all", href: base(a) + "/export", onclick: ev => { ev.preventDefault(); download(base(a) + "/export"); } }, "export journal"), " · ",
    el("a", { id: "export-state", href: "#", onclick: ev => { ev.preventDefault(); download(base(a) + "/state?download=1&step=" + a.step); } }, "state at this step (JSON)"), " · range ",
    el("input", { id: "exp-from", type: "number", min: 0, placeholder: "from" }), el("input", { id: "exp-to", type: "number", min: 0, placeholder: "to" }),
    el("a", { id: "export-range", href: "#", onclick: ev => { ev.preventDefault(); exportRange(a); } }, "export steps"),
    el("span", { id: "export-note", class: "dim" }, EXPORT_NOTE));
  const left = el("section", { id: "left" }, a.form, a.filteredBox, a.list);
  const right = el("section", { id: "right" },
    el("h2", {}, "Changes"),
    el("form", { id: "compare", onsubmit: ev => { ev.preventDefault(); setCompare(a); } }, "compare with ", a.vsInput, a.vsAgent,
      el("button", { type: "submit" }, "compare"), el("button", { type: "button", onclick: () => { a.vsInput.value = ""; setCompare(a); } }, "off"),
      info.parent ? el("button", { type: "button", onclick: () => { a.vsInput.value = info.parent.step; a.vsAgent.value = info.parent.agent_id; setCompare(a); } }, "vs parent at fork") : null),
    a.diffBox,
    el("h2", {}, "State ", el("button", { id: "pretty", onclick: () => { a.raw = false; writeUrl(a); renderState(a); } }, "Pretty"),
      el("button", { id: "raw", onclick: () => { a.raw = true; writeUrl(a); renderState(a); } }, "Raw")),
    a.pinBox, a.treeBox, a.blameBox,
    el("h2", {}, "Integrity ", el("button", { id: "verify", onclick: () => runVerify(a) }, "verify all"), " seqs ",
      el("input", { id: "verify-from", type: "number", min: 1, placeholder: "from" }), el("input", { id: "verify-to", type: "number", min: 1, placeholder: "to" }),
      el("button", { id: "verify-range", onclick: () => runVerify(a, $("#verify-from").value, $("#verify-to").value) }, "verify range")), a.verifyBox, a.integrityBox,
    el("h2", {}, "Export"), exportBox,
    config.allow_fork ? el("h2", {}, "Fork") : null, config.allow_fork ? a.forkBox : null);
  main.replaceChildren(header, timeline, el("div", { id: "panes" }, left, right));
  drawMarks(a);
  if (config.allow_fork) buildFork(a);
  loadIntegrity(a);
  a.onKey = ev => {
    // Keys typed into a field are the field's (a checkbox or a button is no field: after a
    // click on "follow", the keys still move through the steps; the slider moves itself).
    const t = ev.target;
    if (t && (t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable ||
      (t.tagName === "INPUT" && !["checkbox", "radio", "button", "submit"].includes(t.type)))) return;
    // Relative to the step last asked for, so quick repeated keys add up while loading.
    const at = a.want !== undefined ? a.want : a.step;
    const keys = { ArrowLeft: () => at - 1, ArrowRight: () => at + 1, Home: () => a.info.first_step, End: () => a.info.last_step };
    if (keys[ev.key]) { ev.preventDefault(); goto(a, keys[ev.key](), { scroll: true }); }
  };
  document.addEventListener("keydown", a.onKey);
}

// Downloads go through fetch, so that a refusal (a damaged journal, a pruned step) is said
// on the page instead of being saved as the file. The file is held by the page while saved.
const EXPORT_NOTE = " (in the export format: 'agentjournal import' verifies it)";
function note(text, bad) { const n = $("#export-note"); n.textContent = " " + text; n.className = bad ? "error-text" : "dim"; }
async function download(url) {
  note("preparing…", false);
  try {
    const r = await fetch(url);
    if (!r.ok) {
      let msg = r.statusText;
      try { const b = await r.json(); msg = b.message + (b.hint ? " — " + b.hint : ""); } catch (e) { /* not JSON */ }
      note("not exported: " + msg, true);
      return;
    }
    const m = /filename="([^"]+)"/.exec(r.headers.get("content-disposition") || "");
    const link = el("a", { href: URL.createObjectURL(await r.blob()), download: m ? m[1] : "export.jsonl", hidden: true });
    document.body.append(link); link.click(); link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    note(EXPORT_NOTE.trim(), false);
  } catch (e) { note("not exported: " + e.message, true); }
}
// A range of steps as the journal's export file. Bounds outside the history are said here.
function exportRange(a) {
  const f = $("#exp-from").value.trim(), t = $("#exp-to").value.trim();
  const lo = f === "" ? null : Number(f), hi = t === "" ? null : Number(t);
  const bad = (lo !== null && (lo < a.info.first_step || lo > a.info.last_step)) ? "from must be a step in " + a.info.first_step + ".." + a.info.last_step
    : (hi !== null && hi < 0) ? "to must be a step" : (lo !== null && hi !== null && hi < lo) ? "to is before from" : null;
  if (bad) { note(bad, true); return; }
  const q = new URLSearchParams();
  if (lo !== null) q.set("from_step", lo);
  if (hi !== null) q.set("to_step", hi);
  download(base(a) + "/export?" + q.toString());
}

function drawMarks(a) {
  const { first_step: lo, last_step: hi } = a.info;
  const span = Math.max(1, hi - lo);
  const marks = [];
  const snaps = a.info.snapshots;
  const stride = Math.max(1, Math.ceil(snaps.length / 400));  // at most ~400 ticks
  for (let i = 0; i < snaps.length; i += stride) {
    marks.push(el("span", { class: "mark snap", style: "left:" + ((snaps[i].step - lo) / span * 100).toFixed(3) + "%", title: "snapshot at step " + snaps[i].step }));
  }
  for (const c of a.info.forks) marks.push(el("span", { class: "mark fork", style: "left:" + ((c.step - lo) / span * 100).toFixed(3) + "%", title: "fork " + c.agent_id + " at step " + c.step }));
  a.marks.replaceChildren(...marks);
}

// --- moving between steps: serialised so the client state never interleaves
function goto(a, n, opts) {
  a.want = Math.min(Math.max(Math.round(n), a.info.first_step), a.info.last_step);
  a.busy = a.busy.then(() => gotoNow(a, n, opts || {})).catch(e => { a.diffBox.replaceChildren(errorBox(e)); });
  return a.busy;
}
async function gotoNow(a, n, opts) {
  if (view.agent !== a) return;
  n = Math.min(Math.max(Math.round(n), a.info.first_step), a.info.last_step);
  if (n === a.step && a.state !== undefined && !opts.force) { if (opts.scroll) scrollToStep(a); return; }
  let changes;
  if (a.state !== undefined && n === a.step + 1) {
    changes = await api(base(a) + "/changes?step=" + n);
    for (const op of changes.ops) a.state = applyOp(a.state, op);
  } else if (a.state !== undefined && n === a.step - 1 && a.changes) {
    a.state = undoOps(a.state, a.changes.ops);
    changes = await api(base(a) + "/changes?step=" + n);
  } else {
    const [st, ch] = await Promise.all([api(base(a) + "/state?step=" + n), api(base(a) + "/changes?step=" + n)]);
    a.state = st.state; changes = ch;
  }
  a.step = n; a.changes = changes;
  if (n === a.info.last_step && a.pending) { a.pending = 0; a.newBadge.hidden = true; }
  a.slider.value = n;
  a.stepLabel.textContent = "step " + n + " / " + a.info.last_step;
  writeUrl(a, !!opts.push);
  // Scroll first: drawing the list at the old position would fetch a page nobody sees.
  if (opts.scroll) await scrollToStep(a); else drawList(a);
  if (a.filtered) drawResults(a);
  if (a.vs !== null) await loadCompare(a); else { a.compareOps = null; renderDiff(a); }
  renderState(a);
}

// --- the virtual step list
function totalRows(a) { return a.info.last_seq - a.info.first_seq + 1; }
async function loadList(a) {
  if (filtersActive(a.f)) { await applyFilters(a, true); return; }
  drawList(a);
}
function pageOf(a, seq) { return Math.floor((seq - a.info.first_seq) / PAGE); }
function ensurePage(a, p) {
  if (a.pages.has(p)) return;
  a.pages.set(p, null);
  const from = a.info.first_seq + p * PAGE;
  api(base(a) + "/steps?after=" + from + "&limit=" + PAGE).then(r => {
    const m = new Map(r.rows.map(row => [row.seq, row]));
    a.pages.set(p, m);
    if (r.problems && r.problems.length) {
      a.rowErrors = a.rowErrors || [];
      a.rowErrors.push(...r.problems);
    }
    drawList(a);
  }).catch(e => {
    a.pages.set(p, new Map());
    a.pageErrors = a.pageErrors || new Map();
    a.pageErrors.set(p, e.message);
    drawList(a);
  });
}
function drawList(a) {
  if (!a.list || a.filtered) return;
  const n = totalRows(a);
  a.spacer.style.height = n * ROW_H + "px";
  const top = a.list.scrollTop, h = a.list.clientHeight || 400;
  const i0 = Math.max(0, Math.floor(top / ROW_H) - 10), i1 = Math.min(n, Math.ceil((top + h) / ROW_H) + 10);
  const rows = [];
  for (let i = i0; i < i1; i++) {
    const seq = a.info.first_seq + i;
    const p = pageOf(a, seq);
    ensurePage(a, p);
    const page = a.pages.get(p);
    const row = page ? page.get(seq) : null;
    const hit = !row && page && a.rowErrors && a.rowErrors.find(e => e.from_seq <= seq && seq <= e.to_seq);
    const bad = hit ? hit.message : (!row && a.pageErrors && a.pageErrors.get(p));
    rows.push(bad ? el("div", { class: "row damaged", style: "top:" + i * ROW_H + "px", title: bad }, el("span", { class: "c-step" }, "!"), el("span", { class: "c-sum" }, "seq " + seq + ": " + bad))
      : stepRow(a, row, seq, i * ROW_H));
  }
  a.spacer.replaceChildren(...rows);
}
function stepRow(a, row, seq, y) {
  const style = y === null ? null : "top:" + y + "px";
  if (!row) return el("div", { class: "row loading", style }, el("span", { class: "c-step" }, "…"), el("span", { class: "dim" }, "seq " + seq));
  const cur = row.step === a.step;
  return el("div", {
    class: "row kind-" + row.kind + (cur ? " current" : ""), style, role: "option", "aria-selected": cur ? "true" : "false",
    dataset: { seq: row.seq, step: row.step }, onclick: () => goto(a, row.step, { push: true }),
  },
  el("span", { class: "c-step" }, row.step), el("span", { class: "c-time" }, fmtTime(row.ts).slice(11)),
  el("span", { class: "c-dt" }, fmtDt(row.dt)), el("span", { class: "c-kind" }, row.kind),
  el("span", { class: "c-sum" }, row.summary), el("span", { class: "c-ops" }, row.nops ? row.nops + " ops" : ""));
}
async function scrollToStep(a) {
  if (a.filtered) { const r = $(".row.current", a.filteredBox); if (r) r.scrollIntoView({ block: "nearest" }); return; }
  let seq = a.changes && a.changes.seq;
  if (!seq) { try { seq = (await api(base(a) + "/steps?around_step=" + a.step + "&limit=1")).around_seq; } catch (e) { return; } }
  const y = (seq - a.info.first_seq) * ROW_H;
  const h = a.list.clientHeight || 400;
  a.spacer.style.height = totalRows(a) * ROW_H + "px";  // so that the scroll can get there
  if (y < a.list.scrollTop || y > a.list.scrollTop + h - ROW_H) a.list.scrollTop = Math.max(0, y - h / 2);
  drawList(a);
}
function atBottom(a) { return a.list.scrollTop + a.list.clientHeight >= a.list.scrollHeight - ROW_H * 2; }

// --- search and filters (server-side, paged; reflected in the URL)
async function applyFilters(a, fromUrl) {
  if (!fromUrl) {
    const fd = new FormData(a.form);
    for (const k of ["touching", "text", "kind", "since", "until"]) a.f[k] = (fd.get(k) || "").trim();
    a.f.regex = fd.get("regex") === "on";
    writeUrl(a, true);
  }
  if (!filtersActive(a.f)) { a.filtered = null; a.filteredBox.hidden = true; a.list.hidden = false; drawList(a); return; }
  a.filtered = { rows: [], next: null };
  a.filteredBox.hidden = false; a.list.hidden = true;
  await loadResults(a, null);
}
async function loadResults(a, before) {
  const q = new URLSearchParams();
  for (const k of ["touching", "text", "kind", "since", "until"]) if (a.f[k]) q.set(k, a.f[k]);
  if (a.f.regex) q.set("regex", "1");
  if (before) q.set("before", before);
  q.set("limit", PAGE);
  const f = a.filtered;
  try {
    const r = await api(base(a) + "/steps?" + q.toString());
    if (a.filtered !== f) return;  // a newer search replaced this one meanwhile
    f.rows = r.rows.concat(f.rows);
    f.next = r.next_before;
    drawResults(a);
  } catch (e) { a.filteredBox.replaceChildren(errorBox(e)); }
}
function drawResults(a) {
  const f = a.filtered;
  a.filteredBox.replaceChildren(
    el("div", { class: "dim" }, f.rows.length + " matching record" + (f.rows.length === 1 ? "" : "s"),
      f.next ? el("button", { id: "older", onclick: () => loadResults(a, f.next) }, "load older") : null),
    ...f.rows.map(row => stepRow(a, row, row.seq, null)));
}

// --- diff panel and compare
function opClass(o) { return "op op-" + o.op; }
function short(v) { const s = JSON.stringify(v); return s === undefined ? "" : s.length > 200 ? s.slice(0, 200) + "…" : s; }
function renderDiff(a) {
  const ops = a.compareOps ? a.compareOps.ops : (a.changes ? a.changes.ops : []);
  const title = a.compareOps ? "step " + a.compareOps.a + (a.compareOps.a_agent !== a.id ? " of " + a.compareOps.a_agent : "") + " → step " + a.step : "step " + a.step;
  const recs = a.compareOps ? [] : (a.changes ? a.changes.records : []);
  a.diffBox.replaceChildren(
    el("div", { class: "dim" }, title + ": " + ops.length + " op" + (ops.length === 1 ? "" : "s"),
      recs.filter(r => r.kind !== "step").map(r => el("span", { class: "badge kind-" + r.kind }, " " + r.kind + ": " + r.summary))),
    el("ol", { class: "ops" }, ops.slice(0, 500).map(o => el("li", { class: opClass(o) },
      el("span", { class: "op-name" }, o.op), " ", el("code", { class: "op-path" }, o.path || "(root)"),
      "old" in o ? el("del", { class: "old" }, short(o.old)) : null, " ",
      "value" in o ? el("ins", { class: "new" }, short(o.value)) : null))),
    ops.length > 500 ? el("div", { class: "dim" }, (ops.length - 500) + " more ops not shown") : "");
}
function setCompare(a) {
  const v = a.vsInput.value.trim();
  a.vs = v === "" ? null : Number(v);
  a.vsagent = a.vsAgent.value.trim();
  writeUrl(a, true);
  goto(a, a.step, { force: true });
}
async function loadCompare(a) {
  const q = "?a=" + a.vs + "&b=" + a.step + (a.vsagent ? "&a_agent=" + enc(a.vsagent) : "");
  try { a.compareOps = await api(base(a) + "/compare" + q); renderDiff(a); } catch (e) { a.compareOps = null; a.diffBox.replaceChildren(errorBox(e)); }
}

// --- state tree
function highlights(a) {
  const ops = a.compareOps ? a.compareOps.ops : (a.changes ? a.changes.ops : []);
  const marks = new Map();      // at-path -> op
  const open = new Set([""]);   // ancestors to expand
  const ghosts = new Map();     // parent path -> [[token, old]] removed here
  for (const o of ops) {
    const t = parsePtr(o.at);
    for (let i = 0; i < t.length; i++) open.add(ptr(t.slice(0, i)));
    if (o.op === "remove") {
      const parent = ptr(t.slice(0, -1));
      if (!ghosts.has(parent)) ghosts.set(parent, []);
      ghosts.get(parent).push([t[t.length - 1], o.old]);
    } else marks.set(o.at, o);
  }
  return { marks, open, ghosts };
}
function renderState(a) {
  $("#pretty").classList.toggle("on", !a.raw); $("#raw").classList.toggle("on", a.raw);
  renderPins(a);
  if (a.raw) { a.treeBox.replaceChildren(el("pre", { class: "raw" }, JSON.stringify(a.state, null, 2))); return; }
  const h = highlights(a);
  a.treeBox.replaceChildren(el("ul", { class: "tree" }, node(a, "(root)", a.state, [], h)));
}
function leaf(v) {
  if (typeof v === "string") {
    const s = el("span", { class: "v-str" });
    const set = full => { s.replaceChildren(JSON.stringify(full ? v : v.slice(0, STR_MAX)).slice(0, full ? undefined : -1) + (full ? "" : "…\""));
      if (!full) s.append(" ", el("button", { class: "more", onclick: ev => { ev.stopPropagation(); set(true); } }, "show more (" + v.length + " chars)")); };
    if (v.length > STR_MAX) set(false); else s.textContent = JSON.stringify(v);
    return s;
  }
  return el("span", { class: v === null ? "v-null" : "v-" + typeof v }, JSON.stringify(v));
}
function node(a, label, v, tokens, h) {
  const path = ptr(tokens);
  const op = h.marks.get(path);
  const cls = "node" + (op ? " changed ch-" + op.op : "");
  const tools = el("span", { class: "tools" },
    el("button", { class: "copy", title: "copy path " + (path || "(root)"), onclick: ev => { ev.stopPropagation(); copyPath(path); } }, "copy path"),
    el("button", { class: "pin", title: "pin", onclick: ev => { ev.stopPropagation(); if (!a.pins.includes(path)) { a.pins.push(path); writeUrl(a); renderPins(a); } } }, "pin"),
    el("button", { class: "blame", title: "blame", onclick: ev => { ev.stopPropagation(); blame(a, path); } }, "blame"));
  const key = el("span", { class: "key" }, label);
  const old = op && "old" in op ? el("del", { class: "old" }, short(op.old)) : null;
  if (v === null || typeof v !== "object") {
    return el("li", { class: cls, dataset: { path } }, key, ": ", old, old ? " " : null, leaf(v), tools);
  }
  const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x]) : Object.entries(v);
  const kids = el("ul", {});
  let shown = 0;
  // The first `limit` children, plus any further child on the way to a change (so that every
  // change of the step is visible however long the list), plus what the step removed here.
  const fill = limit => {
    shown = Math.min(entries.length, limit);
    const rows = [];
    let prev = -1;
    entries.forEach(([k, x], i) => {
      if (i >= shown) {
        const p = ptr(tokens.concat(k));
        if (!h.open.has(p) && !h.marks.has(p)) return;
      }
      if (i > prev + 1) rows.push(el("li", { class: "dim gap" }, "… " + (i - prev - 1) + " not shown"));
      rows.push(node(a, k, x, tokens.concat(k), h));
      prev = i;
    });
    if (shown < entries.length) rows.push(el("li", { class: "dim" }, el("button", { class: "more", onclick: () => fill(shown + KIDS_MAX * 10) }, "show more (" + (entries.length - shown) + " more)")));
    // What the step removed here, struck through: as many as the children shown, then a count.
    const gone = h.ghosts.get(path) || [];
    for (const [t, ov] of gone.slice(0, KIDS_MAX)) rows.push(el("li", { class: "node ghost ch-remove" }, el("span", { class: "key" }, t), ": ", el("del", { class: "old" }, short(ov))));
    if (gone.length > KIDS_MAX) rows.push(el("li", { class: "dim ghost-more" }, "… " + (gone.length - KIDS_MAX) + " more removed (see the changes above)"));
    kids.replaceChildren(...rows);
  };
  const li = el("li", { class: cls + " branch", dataset: { path } });
  const summary = el("span", { class: "sum dim" }, Array.isArray(v) ? "[" + v.length + "]" : "{" + entries.length + "}");
  const toggle = el("button", { class: "tw", "aria-label": "expand" }, "▸");
  let built = false;
  const setOpen = o => {
    li.classList.toggle("open", o); toggle.textContent = o ? "▾" : "▸";
    if (o && !built) { built = true; fill(KIDS_MAX); }
  };
  toggle.addEventListener("click", ev => { ev.stopPropagation(); setOpen(!li.classList.contains("open")); });
  li.append(...[toggle, key, ": ", old, summary, tools, kids].filter(x => x !== null));
  setOpen(h.open.has(path) || tokens.length === 0);
  return li;
}
function copyPath(path) {
  const done = () => { const t = $("#toast") || document.body.appendChild(el("div", { id: "toast" })); t.textContent = "copied " + (path || "(root)"); setTimeout(() => { t.textContent = ""; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(path).then(done, done);
  else { const ta = el("textarea", {}); ta.value = path; document.body.append(ta); ta.select(); try { document.execCommand("copy"); } catch (e) { /* shown anyway */ } ta.remove(); done(); }
}
function renderPins(a) {
  a.pinBox.replaceChildren(...a.pins.map(p => {
    const v = getAt(a.state, parsePtr(p));
    return el("div", { class: "pinned" }, el("code", {}, p || "(root)"), " = ", el("span", { class: "pin-value" }, v === undefined ? "(absent)" : short(v)),
      el("button", { class: "unpin", onclick: () => { a.pins = a.pins.filter(x => x !== p); writeUrl(a); renderPins(a); } }, "×"));
  }));
}
async function blame(a, path) {
  a.blameBox.replaceChildren(el("div", { class: "dim" }, "blame " + (path || "(root)") + "…"));
  try {
    const r = await api(base(a) + "/blame?path=" + enc(path));
    const l = r.last;
    a.blameBox.replaceChildren(el("div", { class: "blame-result" }, el("code", {}, path || "(root)"),
      l ? [" last changed at ", el("a", { href: "#", onclick: ev => { ev.preventDefault(); goto(a, l.step, { scroll: true, push: true }); } }, "step " + l.step), " (" + fmtTime(l.ts) + ", " + l.kind + ")"] : " never changed"));
  } catch (e) { a.blameBox.replaceChildren(errorBox(e)); }
}

// --- integrity, verify, fork
async function loadIntegrity(a) {
  try {
    const r = await api(base(a) + "/integrity");
    a.integrityBox.replaceChildren(
      el("div", {}, "history kept from step " + r.watermark.first_step + " (seq " + r.watermark.first_seq + ")" + (r.watermark.pruned ? ", older steps pruned" : ", nothing pruned")),
      witnessBox(r),
      el("div", { id: "verified-status" }, r.verified ? (r.verified.ok ? "verified up to seq " + r.verified.last_seq : "damaged") : "not verified yet"),
      el("details", {}, el("summary", {}, r.snapshots.length + " snapshots, " + r.segments + " segments"),
        el("table", { class: "grid small" }, el("tr", {}, el("th", {}, "seq"), el("th", {}, "step"), el("th", {}, "bytes")),
          r.snapshots.slice(-200).map(s => el("tr", {}, el("td", {}, s.seq), el("td", {}, s.step === null ? "–" : s.step), el("td", {}, fmtBytes(s.bytes)))))));
  } catch (e) { a.integrityBox.replaceChildren(errorBox(e)); }
}
const WITNESS_TEXT = {
  matches: "matches its witnessed head", behind: "behind its witnessed head (records cut off, or the store rolled back)",
  diverged: "diverged from its witnessed head (the history was rewritten)", pruned: "witnessed record pruned: cannot be checked",
  bad_witness: "witness line fails its MAC", none: "no witness",
};
function witnessBox(r) {
  const w = r.witness;
  if (!w) return el("div", { id: "witness" }, "anchored head: none (start the viewer with --witness FILE to check one)");
  const h = r.anchored_head;
  return el("div", { id: "witness" },
    el("div", {}, "anchored head: ", h ? el("code", { title: h.hash }, "seq " + h.seq + " " + h.hash.slice(0, 16) + "…") : "none", " ",
      el("span", { id: "witness-status", class: "witness " + w.status }, WITNESS_TEXT[w.status] || w.status)),
    w.heads.length ? el("ul", { class: "witness-heads" }, w.heads.map(x => el("li", { class: "witness-head", dataset: { status: x.status } },
      el("span", { class: "witness " + x.status }, x.status.replace("_", " ")), " ", el("code", {}, x.path),
      x.seq !== null ? " (seq " + x.seq + ")" : "", x.status === "matches" && x.since ? " — " + x.since + " records since" : "",
      x.message ? el("div", { class: "dim" }, x.message) : null))) : null);
}
async function runVerify(a, from, to) {
  const box = a.verifyBox;
  box.textContent = "verifying…";
  const range = from || to ? "?from=" + enc(from || 1) + (to ? "&to=" + enc(to) : "") : "";
  try {
    const r = await api(base(a) + "/verify" + range);
    box.replaceChildren(el("span", { class: "health " + (r.ok ? "verified" : "damaged") }, r.ok ? "verified: " + r.records + " records, chain intact" : "damaged: first bad seq " + (r.first_bad_seq === null ? "?" : r.first_bad_seq)),
      ...r.problems.slice(0, 5).map(p => el("div", { class: "problem" }, p.kind + ": " + p.message + (p.path ? " (" + p.path + (p.offset !== null ? ", byte " + p.offset : "") + ")" : ""))),
      ...(r.cuts || []).map(c => el("div", { class: "problem cut" }, "seq " + c.seq + ": recovery cut " + c.size + " bytes (" + c.reason.replace("_", " ") + ") at byte " + c.offset + " of segment " + c.segment + "; " + (c.kept ? "kept in quarantine/" + c.quarantine : "quarantine/" + c.quarantine + " is gone"))));
  } catch (e) { box.replaceChildren(errorBox(e)); }
}
function buildFork(a) {
  const id = el("input", { id: "fork-id", placeholder: "new agent id", value: a.id + "-retry" });
  const edit = el("input", { id: "fork-edit", type: "checkbox" });
  const ta = el("textarea", { id: "fork-state", rows: 8, hidden: true });
  edit.addEventListener("change", () => { ta.hidden = !edit.checked; if (edit.checked) ta.value = JSON.stringify(a.state, null, 2); });
  const out = el("div", { id: "fork-result" });
  const go = async () => {
    const body = { at_step: a.step, new_id: id.value.trim() };
    try {
      if (edit.checked) body.state = JSON.parse(ta.value);
      const r = await api(base(a) + "/fork", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      out.replaceChildren(el("div", {}, "created ", el("a", { href: "/agents/" + enc(r.agent_id) }, r.agent_id), " from step " + r.at_step + ". Resume it with:"),
        el("pre", {}, r.resume.python), el("pre", {}, r.resume.cli));
    } catch (e) { out.replaceChildren(errorBox(e)); }
  };
  a.forkBox.replaceChildren(el("div", {}, "fork from step ", el("span", { class: "fork-step" }, "(current)"), " as ", id, " ", el("label", {}, edit, " edit the state first"), " ", el("button", { id: "fork-go", onclick: go }, "fork")), ta, out,
    el("div", { class: "dim" }, "Forking writes a new journal; it never runs agent code."));
}

// --- play and the live tail
function togglePlay(a) {
  a.playing = !a.playing;
  a.play.textContent = a.playing ? "❚❚ pause" : "▶ play";
  if (a.timer) { clearInterval(a.timer); a.timer = null; }
  if (a.playing) a.timer = setInterval(() => {
    if (a.step >= a.info.last_step) { togglePlay(a); return; }
    goto(a, a.step + 1, { scroll: true });
  }, 300);
}
function startTail(a) {
  const src = new EventSource(base(a) + "/events?from_seq=" + (a.info.last_seq + 1));
  a.source = src;
  src.addEventListener("open", () => { a.liveBadge.textContent = "live tail"; a.liveBadge.className = "badge tail"; });
  src.addEventListener("error", () => { a.liveBadge.textContent = "reconnecting"; a.liveBadge.className = "badge idle"; });
  src.addEventListener("record", ev => {
    if (view.agent !== a) return;
    const row = JSON.parse(ev.data);
    if (row.seq <= a.info.last_seq) return;
    const wasBottom = atBottom(a);
    // The step being moved to counts, not the one shown: in a burst of records the page is
    // still on its way to the previous one when the next arrives.
    const wasLast = (a.want !== undefined ? a.want : a.step) === a.info.last_step;
    const newStep = row.step > a.info.last_step;
    a.info.last_seq = row.seq;
    a.info.last_step = Math.max(a.info.last_step, row.step);
    if (row.kind === "snapshot") a.info.snapshots.push({ seq: row.seq, step: row.step });
    const p = pageOf(a, row.seq);
    if (a.pages.get(p)) a.pages.get(p).set(row.seq, row);
    a.slider.max = a.info.last_step;
    a.stepLabel.textContent = "step " + a.step + " / " + a.info.last_step;
    drawMarks(a);
    if (a.follow && wasLast && wasBottom && !a.filtered) {
      goto(a, a.info.last_step).then(() => { a.list.scrollTop = a.list.scrollHeight; drawList(a); });
    } else {
      if (newStep) a.pending = (a.pending || 0) + 1;  // in steps: a snapshot record is no step
      a.newBadge.hidden = !a.pending; a.newBadge.textContent = a.pending + " new";
      drawList(a);  // the list grows below; the view does not jump
    }
  });
}
