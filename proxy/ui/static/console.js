// sidestep web console: reads and steers the gateway through its admin API.
// Every value from the server is put in the page as text (never as HTML).
"use strict";

const FEED_MAX = 200;
const POLL_MS = 2000;
const ACTIONS = ["pause", "resume", "drain", "reset", "disable", "enable"];
// the operator actions that change something from each operator state
const ACTIONS_FOR = {
  active: ["pause", "drain", "disable", "reset"],
  paused: ["resume", "drain", "disable", "reset"],
  draining: ["resume", "pause", "disable", "reset"],
  disabled: ["enable", "reset"],
};
const S = { csrf: null, skew: 0, targets: [], feed: [], source: null, polling: null, selected: null, keys: {} };

const $ = (sel) => document.querySelector(sel);

/** An element with attributes/properties and children (strings become text nodes). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const svgNS = "http://www.w3.org/2000/svg";
function s(tag, attrs) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** One admin call; JSON in and out. A 401 means the session is gone: show the login. */
async function api(path, method = "GET", body) {
  const init = { method, credentials: "same-origin", cache: "no-store", headers: {} };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    if (S.csrf) init.headers["X-Sidestep-CSRF"] = S.csrf;
    init.body = JSON.stringify(body || {});
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    setConn(false, "gateway unreachable");
    return { ok: false, status: 0, doc: null };
  }
  let doc = null;
  try { doc = await resp.json(); } catch { doc = null; }
  if (resp.status === 401 && !path.startsWith("/ui/")) showLogin();
  return { ok: resp.ok, status: resp.status, doc };
}

function errorText(res) {
  const e = res.doc && res.doc.error;
  return e ? e.message : `HTTP ${res.status}`;
}

function toast(text, bad = false) {
  const t = $("#toast");
  t.textContent = text;
  t.className = "show" + (bad ? " bad" : "");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ""; }, 6000);
}

function setConn(live, text) {
  const c = $("#conn");
  c.textContent = text;
  c.className = "pill" + (live ? " live" : "");
}

/** Ask with the modal dialog; resolves true on Confirm. Esc or Cancel resolve false. */
function confirmAction(text) {
  const dlg = $("#confirm");
  $("#confirm-text").textContent = text;
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
    dlg.returnValue = "cancel";
    dlg.showModal();
    $("#confirm-ok").focus();
  });
}

async function act(question, path, body, done) {
  if (!(await confirmAction(question))) return;
  const res = await api(path, "POST", body);
  if (res.ok) toast(done(res.doc));
  else toast(errorText(res), true);
  refreshSoon();
  refreshSessionsSoon();
  return res;
}

// -- time -----------------------------------------------------------------------------------

const serverNow = () => Date.now() / 1000 + S.skew;
const fmtS = (sec) => sec == null ? "–" : sec < 1 ? `${Math.round(sec * 1000)} ms` : `${sec.toFixed(2)} s`;
const clock = (unix) => new Date((unix - S.skew) * 1000).toLocaleTimeString();

function countdowns() {
  for (const el of document.querySelectorAll("[data-until]")) {
    const left = Math.max(0, Number(el.dataset.until) - serverNow());
    el.textContent = `${Math.ceil(left)} s`;
    if (left <= 0 && !el.dataset.expired) { el.dataset.expired = "1"; refreshSoon(); }
  }
}

// -- targets --------------------------------------------------------------------------------

const STATE_WORDS = {
  ok: "serving", cooling_down: "cooling down", breaker_open: "breaker open",
  half_open: "breaker half-open", paused: "paused", draining: "draining",
  disabled: "disabled", keys_disabled: "all keys disabled",
};

function stateCell(t) {
  const badge = h("span", { class: `badge s-${t.state}`, "data-state": t.state }, STATE_WORDS[t.state] || t.state);
  const cell = [badge];
  if (t.state === "cooling_down" && t.cooling_down_until) {
    cell.push(" ", h("span", { class: "countdown mono", dataset: { until: t.cooling_down_until } }, ""));
  }
  if (t.last_error && t.state !== "ok") cell.push(h("span", { class: "small reason" }, `reason: ${t.last_error.class}`));
  const open = Object.entries(t.breakers).filter(([, v]) => v !== "closed");
  for (const [lane, v] of open) cell.push(h("span", { class: "small" }, `breaker ${lane}: ${v}`));
  return cell;
}

function budgetCell(t) {
  const parts = [];
  for (const name of ["rpm", "tpm"]) {
    const limit = t.limits[name];
    if (!limit) continue;
    const used = (t.usage || []).reduce((sum, u) => sum + (u[name] || 0), 0);
    parts.push(`${name} ${Math.round(used)} of ${limit * Math.max(1, (t.usage || []).length)}`);
  }
  return parts.length ? parts.join(" · ") : "no limit";
}

function renderTargets(status, traffic) {
  const body = $("#targets-table tbody");
  const minute = (traffic && traffic.last_minute) || {};
  const rows = status.targets.map((t) => {
    const m = minute[t.id] || { requests: 0, errors: 0, p50_latency_s: null, p50_ttft_s: null };
    const masked = (S.keys[t.id] || []).filter((k) => k).map((k, i) => t.keys_disabled.includes(i) ? `${k} (disabled)` : k);
    const keys = masked.length ? masked.join(", ") : `${t.keys} key${t.keys === 1 ? "" : "s"}` + (t.keys_disabled.length ? `, ${t.keys_disabled.length} disabled` : "");
    const buttons = (ACTIONS_FOR[t.operator] || ACTIONS).map((a) => h("button", {
      type: "button", "data-action": a,
      onclick: () => act(`${a[0].toUpperCase() + a.slice(1)} target ${t.id}?`, `/admin/targets/${encodeURIComponent(t.id)}/${a}`, {},
        (doc) => `${t.id}: ${a} done — now ${STATE_WORDS[doc.state] || doc.state}`),
    }, a));
    return h("tr", { "data-target": t.id },
      h("th", { scope: "row" }, t.id, h("span", { class: "small" }, `${keys} · priority ${t.priority}`)),
      h("td", { "data-label": "State", class: "state" }, stateCell(t)),
      h("td", { "data-label": "In flight" }, String(t.in_flight)),
      h("td", { "data-label": "Last minute" }, `${m.requests} req`, h("span", { class: "small" }, `${m.errors} error${m.errors === 1 ? "" : "s"}`)),
      h("td", { "data-label": "p50" }, fmtS(m.p50_latency_s), h("span", { class: "small" }, `TTFT ${fmtS(m.p50_ttft_s)}`)),
      h("td", { "data-label": "Budget", class: "budget" }, budgetCell(t)),
      h("td", { "data-label": "Actions" }, h("div", { class: "actions" }, buttons)),
    );
  });
  body.replaceChildren(...rows);
  const serving = status.targets.filter((t) => t.state === "ok").length;
  $("#summary").textContent = `${serving} of ${status.targets.length} serving · ${status.in_flight} in flight · ${status.queued} queued`;
  countdowns();
}

// -- charts ---------------------------------------------------------------------------------

function lineChart(svg, series, ids) {
  const max = Math.max(1, ...Object.values(series).flat());
  const n = Math.max(1, ...Object.values(series).map((v) => v.length)) - 1 || 1;
  svg.replaceChildren(...[25, 50, 75].map((y) => s("line", { x1: 0, x2: 300, y1: y, y2: y, class: "grid-line" })));
  ids.forEach((id, i) => {
    const pts = (series[id] || []).map((v, x) => `${(x / n) * 300},${100 - (v / max) * 96}`).join(" ");
    svg.append(s("polyline", { points: pts, class: `c${i % 6}` }));
  });
  return max;
}

function barChart(svg, values) {
  const max = Math.max(1, ...values);
  const w = 300 / Math.max(1, values.length);
  svg.replaceChildren(...[25, 50, 75].map((y) => s("line", { x1: 0, x2: 300, y1: y, y2: y, class: "grid-line" })));
  values.forEach((v, x) => {
    if (v) svg.append(s("rect", { x: x * w, width: Math.max(w - 0.5, 0.5), y: 100 - (v / max) * 96, height: (v / max) * 96, class: "bar" }));
  });
  return max;
}

function renderCharts(traffic, status) {
  const ids = status.targets.map((t) => t.id);
  const maxR = lineChart($("#chart-requests"), traffic.requests, ids);
  $("#max-requests").textContent = `max ${maxR} / ${traffic.bucket_s} s`;
  $("#legend").replaceChildren(...ids.map((id, i) => h("li", { class: `c${i % 6}` }, id)));
  const maxF = barChart($("#chart-failovers"), traffic.failovers);
  $("#max-failovers").textContent = `max ${maxF} / ${traffic.bucket_s} s`;
}

// -- live feed and explain ------------------------------------------------------------------

function feedRow(v) {
  const open = () => explain(v.request_id);
  const served = v.served_by || (v.no_target_left ? "no target left" : "–");
  const via = v.first_target && v.first_target !== v.served_by ? `${v.first_target} → ${served}` : served;
  return h("tr", { "data-request": v.request_id, onclick: open, class: S.selected === v.request_id ? "selected" : null },
    h("td", {}, h("button", { type: "button", class: "linkish", onclick: (e) => { e.stopPropagation(); open(); },
      "aria-label": `Explain request ${v.request_id}` }, clock(v.at))),
    h("td", {}, v.model || "–"),
    h("td", {}, via),
    h("td", {}, String(v.attempts ?? "–")),
    h("td", {}, String(v.failovers)),
    h("td", {}, String(v.resumes)),
    h("td", { class: v.status >= 400 ? "error" : null }, `${v.status ?? "–"} ${v.outcome || ""}`),
    h("td", {}, fmtS(v.duration_s)),
  );
}

function renderFeed() {
  $("#feed tbody").replaceChildren(...S.feed.map(feedRow));
  $("#feed-empty").hidden = S.feed.length > 0;
  $("#feed-count").textContent = S.feed.length ? `${S.feed.length} shown (newest first)` : "";
}

function lane(a) { return `${a.target}#${a.key_index}:${a.model}`; }

async function explain(id) {
  S.selected = id;
  renderFeed();
  const panel = $("#explain");
  panel.hidden = false;
  panel.replaceChildren(h("p", { class: "muted" }, "loading…"));
  const res = await api(`/admin/requests/${encodeURIComponent(id)}`);
  if (!res.ok) { panel.replaceChildren(h("p", { class: "error" }, errorText(res))); return; }
  const r = res.doc;
  const parts = [
    h("h3", {}, `Request ${r.request_id}`),
    h("p", { class: "muted" }, `${r.endpoint} · model ${r.client_model}${r.stream ? " · stream" : ""}${r.session ? ` · session ${r.session}` : ""} → ${r.outcome} ${r.status ?? ""}${r.error ? ` (${r.error})` : ""}`),
    h("h3", {}, `Attempts (${r.attempts.length})`),
    h("div", { class: "scroll" }, h("table", { class: "grid attempts" },
      h("thead", {}, h("tr", {}, ["#", "Lane", "Failure class", "Status", "Latency"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, r.attempts.map((a, i) => h("tr", { "data-lane": lane(a) },
        h("td", {}, String(i + 1)), h("td", { class: "mono" }, lane(a)),
        h("td", { class: a.error_class === "ok" ? null : "error" }, a.error_class),
        h("td", {}, String(a.status ?? "–")), h("td", {}, fmtS(a.latency_s))))))),
    h("h3", {}, `Routing decisions (${r.decisions.length})`),
    h("ol", { class: "decisions" }, r.decisions.map((d) => h("li", {},
      d.chosen ? h("span", {}, "chose ", h("code", {}, d.chosen)) : h("span", { class: "error" }, "no lane left"),
      d.note ? ` (${d.note})` : "",
      d.rejections.length ? h("ul", {}, d.rejections.map((x) => h("li", {}, h("code", {}, x.lane), ` rejected: ${x.reason}`))) : ""))),
  ];
  if (r.segments.length) {
    parts.push(h("h3", {}, `Stream segments (${r.segments.length})`),
      h("ol", { class: "segments" }, r.segments.map((g) => h("li", {},
        h("code", {}, `${g.target}:${g.model}`), ` chars ${g.start_char}–${g.end_char}, ${g.chunks} chunks, ended ${g.ended}` + (g.dropped ? `, ${g.dropped} dropped` : "")))));
  }
  panel.replaceChildren(...parts);
}

/** A request record of /admin/requests in the shape of a request_finished event view. */
function fromRecord(r) {
  const last = r.segments.length ? r.segments[r.segments.length - 1].target : r.served_by;
  return {
    type: "request_finished", request_id: r.request_id, at: r.started_wall + (r.duration_s || 0),
    model: r.client_model, first_target: r.attempts.length ? r.attempts[0].target : null,
    served_by: last, attempts: r.attempts.length, failovers: r.failovers, resumes: r.resumes, status: r.status,
    outcome: r.outcome, duration_s: r.duration_s, no_target_left: false,
  };
}

async function loadRecent() {
  const res = await api(`/admin/requests?limit=${FEED_MAX}`);
  if (!res.ok) return;
  const seen = new Set(S.feed.map((v) => v.request_id));
  const older = res.doc.requests.filter((r) => r.outcome && !seen.has(r.request_id)).map(fromRecord);
  S.feed = S.feed.concat(older).slice(0, FEED_MAX);
  renderFeed();
}

function connectEvents() {
  if (S.source) S.source.close();
  const src = new EventSource("/admin/events");
  S.source = src;
  src.onopen = () => setConn(true, "live");
  src.onmessage = (msg) => {
    let v;
    try { v = JSON.parse(msg.data); } catch { return; }
    if (v.type === "request_finished") {
      S.feed.unshift(v);
      if (S.feed.length > FEED_MAX) S.feed.length = FEED_MAX;
      renderFeedSoon();
    }
    if (v.type.startsWith("git_") || v.type === "failover") refreshSessionsSoon();
    if (v.type === "config_reloaded") loadConfig();
    if (STATE_EVENTS.test(v.type)) refreshSoon();
  };
  src.onerror = () => {
    setConn(false, "reconnecting…");
    if (src.readyState === EventSource.CLOSED) setTimeout(start, 3000);
  };
}

// -- sessions and git -----------------------------------------------------------------------

function lineageTree(lineage, current) {
  let node = null;
  for (let i = lineage.length - 1; i >= 0; i--) {
    const name = lineage[i];
    node = h("li", {}, h("code", { class: name === current ? "current" : null }, name), node ? h("ul", {}, node) : null);
  }
  return h("ul", { class: "tree", "aria-label": "branch lineage" }, node || h("li", { class: "muted" }, "no branches (git off)"));
}

function renderSessions(sessions, decisions, targets) {
  const box = $("#sessions-list");
  if (!sessions.length) { box.replaceChildren(h("p", { class: "muted" }, "No sessions yet.")); }
  else box.replaceChildren(...sessions.map((x) => {
    const sid = encodeURIComponent(x.id);
    const pick = h("select", { "aria-label": `Target to pin session ${x.id} to` }, targets.map((t) => h("option", { value: t.id }, t.id)));
    return h("div", { class: "panel session", "data-session": x.id },
      h("h3", {}, `Session ${x.id}`),
      h("p", {}, `on `, h("strong", {}, x.current_target || "–"), x.branch ? [" · branch ", h("code", { class: "branch" }, x.branch)] : "",
        x.pinned_target ? ` · pinned to ${x.pinned_target}` : "", h("span", { class: "small" }, `${x.requests} requests · ${x.switches} switches${x.repo ? ` · repo ${x.repo}` : ""}`)),
      lineageTree(x.lineage, x.branch),
      h("div", { class: "row" },
        h("button", { type: "button", "data-action": "rollback", disabled: x.lineage.length < 2,
          onclick: () => act(`Roll session ${x.id} back from ${x.branch} to its parent branch?`, `/admin/sessions/${sid}/rollback`, {}, gitDone) }, "Roll back"),
        h("button", { type: "button", "data-action": "merge", disabled: x.lineage.length < 2,
          onclick: () => act(`Merge ${x.branch} into its parent branch?`, `/admin/sessions/${sid}/merge`, {}, gitDone) }, "Merge"),
        pick,
        h("button", { type: "button", "data-action": "pin",
          onclick: () => act(`Pin session ${x.id} to ${pick.value}?`, `/admin/sessions/${sid}/pin`, { target: pick.value }, (d) => `session ${x.id} pinned to ${d.pinned_target}`) }, "Pin"),
        h("button", { type: "button", "data-action": "unpin", disabled: !x.pinned_target,
          onclick: () => act(`Unpin session ${x.id}?`, `/admin/sessions/${sid}/unpin`, {}, () => `session ${x.id} unpinned`) }, "Unpin")));
  }));
  const dbox = $("#decisions");
  dbox.replaceChildren(...(decisions.length ? [h("h3", {}, "Pending decisions")] : []), ...decisions.map((d) => {
    const did = encodeURIComponent(d.id);
    const answer = (choice) => act(`${choice === "isolate" ? "Isolate" : "Skip isolation for"} session ${d.session}?`, `/admin/decisions/${did}`, { choice }, gitDone);
    return h("div", { class: "panel", "data-decision": d.id },
      h("p", {}, `Session ${d.session}: tests failed before a switch ${d.from_target || ""} → ${d.to_target || ""}`),
      h("div", { class: "row" }, h("button", { type: "button", onclick: () => answer("isolate") }, "Isolate"),
        h("button", { type: "button", onclick: () => answer("skip") }, "Skip")));
  }));
}

function gitDone(doc) {
  const r = doc.result || doc;
  return `${r.action || "git"}: ${r.outcome}${r.branch_from ? ` (${r.branch_from} → ${r.branch_to})` : ""}`;
}

async function loadSessions() {
  const [s, d] = await Promise.all([api("/admin/sessions"), api("/admin/decisions?state=open")]);
  if (s.ok && d.ok) renderSessions(s.doc.sessions, d.doc.decisions, S.targets);
}

// -- config ---------------------------------------------------------------------------------

async function loadConfig() {
  const res = await api("/admin/config");
  if (!res.ok) return;
  const c = res.doc;
  const r = c.reload || {};
  const last = r.at ? `last reload ${clock(r.at)}: ${r.result}${r.trigger ? ` (${r.trigger})` : ""}` : "not reloaded since start";
  $("#config-meta").textContent = `${c.source ? `from ${c.source}` : "not from a file"} · ${last}`;
  $("#reload").disabled = !c.source;
  $("#config-json").textContent = JSON.stringify(c.config, null, 2);
  S.keys = Object.fromEntries(c.config.targets.map((t) => [t.id, t.api_keys || []]));
}

async function reloadConfig() {
  if (!(await confirmAction("Reload the config from its file now?"))) return;
  const out = $("#reload-result");
  const res = await api("/admin/reload", "POST", {});
  if (res.ok) out.replaceChildren(h("p", {}, `reload: ${res.doc.result}`));
  else {
    const problems = (res.doc && res.doc.problems) || [];
    out.replaceChildren(h("p", { class: "error" }, errorText(res)),
      problems.length ? h("ul", { class: "problems" }, problems.map((p) => h("li", { class: "mono" }, p))) : "");
  }
  loadConfig();
}

// -- refresh loop and sign-in ---------------------------------------------------------------

async function refresh() {
  const [st, tr] = await Promise.all([api("/admin/status"), api("/admin/traffic")]);
  if (!st.ok) return;
  S.skew = st.doc.now - Date.now() / 1000;
  S.targets = st.doc.targets;
  renderTargets(st.doc, tr.ok ? tr.doc : null);
  if (tr.ok) renderCharts(tr.doc, st.doc);
}

/** ``fn`` at most once per ``ms``: the first call schedules it, later ones join that run
 * (under heavy traffic the page redraws a few times a second, not once per event). */
function coalesce(fn, ms) {
  let t = null;
  return () => { if (t === null) t = setTimeout(() => { t = null; fn(); }, ms); };
}
const refreshSoon = coalesce(refresh, 150);
const refreshSessionsSoon = coalesce(loadSessions, 300);
const renderFeedSoon = coalesce(renderFeed, 100);
const STATE_EVENTS = /^(cooldown_|breaker_|target_|key_disabled|config_reloaded)/;

function showLogin() {
  if (S.source) S.source.close();
  clearInterval(S.polling);
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#logout").hidden = true;
  setConn(false, "signed out");
  $("#token").focus();
}

async function start() {
  const res = await api("/ui/session");
  if (!res.ok) { setConn(false, errorText(res)); return; }
  if (!res.doc.signed_in) { showLogin(); return; }
  S.csrf = res.doc.csrf;
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#logout").hidden = !res.doc.token_required;
  await loadConfig();
  await refresh();
  loadSessions();
  connectEvents();
  loadRecent();
  clearInterval(S.polling);
  S.polling = setInterval(() => { if (!document.hidden) { refresh(); countdowns(); } }, POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("#token");
    const res = await api("/ui/login", "POST", { token: input.value });
    input.value = "";
    if (!res.ok) { $("#login-error").textContent = errorText(res); return; }
    $("#login-error").textContent = "";
    start();
  });
  $("#logout").addEventListener("click", async () => {
    await api("/ui/logout", "POST", {});
    S.csrf = null;
    showLogin();
  });
  $("#reload").addEventListener("click", reloadConfig);
  setInterval(countdowns, 1000);
  setInterval(() => { if (!document.hidden && !$("#app").hidden) loadSessions(); }, 5000);
  start();
});
