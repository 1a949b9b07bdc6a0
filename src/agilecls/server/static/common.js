// agilecls web pages, the shared part: the API call (with the server's token), the status line,
// escaping and number formats, the salience method titles from /api/info, and the salience heat map.
// index.html and label.html load this file before their own scripts. Plain JS, no build step.
"use strict";

const $ = (id) => document.getElementById(id);

// A server started with --token: open a page as http://HOST:PORT/#token=TOKEN; the tab keeps it.
const TOKEN = new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem("agilecls-token");
if (TOKEN) sessionStorage.setItem("agilecls-token", TOKEN);

/** GET `path` (no body) or POST `body` as JSON; the parsed answer, or an Error with the server's detail. */
async function api(path, body) {
  const headers = TOKEN ? { Authorization: "Bearer " + TOKEN } : {};
  const opts = body === undefined ? { headers } : {
    method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const res = await fetch(path, opts);
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const detail = Array.isArray(data.detail) ? data.detail.map((d) => d.msg).join("; ") : data.detail;
    throw new Error(detail || res.statusText);
  }
  return data;
}

function setStatus(text, kind = "") {
  $("status").textContent = text;
  $("status").className = "status " + kind;
}

/** `fn()` with the status line saying what runs, then how long it took (or the error, rethrown). */
async function busy(label, fn) {
  setStatus(label + "…", "busy");
  document.body.classList.add("working");
  const t0 = performance.now();
  try {
    const out = await fn();
    setStatus(`${label}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`, "ok");
    return out;
  } catch (err) {
    setStatus(err.message, "error");
    throw err;
  } finally {
    document.body.classList.remove("working");
  }
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const pct = (p) => (p === null || p === undefined ? "–" : (100 * p).toFixed(0) + "%");
const num = (v, d = 3) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));

// ---- salience methods ---------------------------------------------------------------------------
/** {name: display title} of the salience methods, filled by loadInfo() from /api/info. */
const METHOD_TITLES = {};
const methodTitle = (name) => METHOD_TITLES[name] || name;

/** The server's /api/info; keeps its method titles for methodTitle(). */
async function loadInfo() {
  const info = await api("/api/info");
  Object.assign(METHOD_TITLES, info.method_titles || {});
  return info;
}

/** Fill a <select> with the salience methods `names`, shown by title, `selected` chosen. */
function fillMethods(select, names, selected = null) {
  select.innerHTML = names.map((n) => `<option value="${esc(n)}"${n === selected ? " selected" : ""}>${esc(methodTitle(n))}</option>`).join("");
}

/** One line per warning of an explanation (e.g. a path integral far from completeness) in `box`; hidden when none. */
function showWarnings(box, warnings) {
  const list = Array.isArray(warnings) ? warnings : [];
  box.textContent = list.map((w) => "⚠ " + w).join("\n");
  box.classList.toggle("hidden", list.length === 0);
}

/** One bar per class of `probs` ({label: probability}), most probable first, `best` highlighted. */
function probBars(probs, best) {
  return Object.entries(probs).sort((x, y) => y[1] - x[1]).map(([label, p]) =>
    `<div class="prob${label === best ? " best" : ""}" data-label="${esc(label)}"><span class="plabel">${esc(label)}</span>` +
    `<div class="ptrack"><div class="pbar" style="width:${(100 * p).toFixed(1)}%"></div></div><span class="pval">${(100 * p).toFixed(1)}%</span></div>`).join("");
}

// ---- heat map -----------------------------------------------------------------------------------
// Intensity multiplies each span's share of the maximum: above 1 brings out the weaker spans.
const weight = (score, scale, intensity) => Math.min(1, intensity * Math.abs(score) / (scale || 1));

/** Background of a span: purple for unsigned scores; orange (for) or blue (against) for signed ones. */
function colour(score, scale, signed, intensity = 1.5) {
  const a = (0.08 + 0.82 * weight(score, scale, intensity)) * (score === 0 ? 0 : 1);
  if (!signed) return `rgba(124, 58, 237, ${a.toFixed(3)})`;
  return score >= 0 ? `rgba(234, 88, 12, ${a.toFixed(3)})` : `rgba(37, 99, 235, ${a.toFixed(3)})`;
}

/** `text` into `el`, each span of `spans` ({start, end, score, special}) coloured by its score
 *  relative to the largest one; special tokens are left out. Returns that largest score. */
function drawHeatmap(el, text, spans, signed, intensity = 1.5) {
  const sorted = spans.filter((s) => !s.special).sort((x, y) => x.start - y.start);
  const scale = Math.max(1e-12, ...sorted.map((s) => Math.abs(s.score)));
  el.innerHTML = "";
  el.classList.remove("empty");
  let cursor = 0;
  for (const s of sorted) {
    if (s.start < cursor) continue;
    if (s.start > cursor) el.appendChild(document.createTextNode(text.slice(cursor, s.start)));
    const span = document.createElement("span");
    span.className = "hl";
    span.textContent = text.slice(s.start, s.end);
    span.style.background = colour(s.score, scale, signed, intensity);
    if (weight(s.score, scale, intensity) > 0.62) span.style.color = "#fff";
    span.title = `${s.score.toPrecision(4)}  (${(100 * Math.abs(s.score) / scale).toFixed(0)}% of max)`;
    span.dataset.score = s.score;
    el.appendChild(span);
    cursor = s.end;
  }
  if (cursor < text.length) el.appendChild(document.createTextNode(text.slice(cursor)));
  return scale;
}
