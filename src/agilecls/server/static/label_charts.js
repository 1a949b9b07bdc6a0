// agilecls labelling page, the drawing half: metric tiles, the learning curve (inline SVG), the
// confusion matrix, the versions table and the salience heat map, each drawn from the API's JSON
// into its element; label.js (loaded after this file) calls them. No build step, no external assets.
"use strict";

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const pct = (p) => (p === null || p === undefined ? "–" : (100 * p).toFixed(0) + "%");
const num = (v, d = 3) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));

function renderMetrics(ev) {
  const cv = ev.cross_validated;
  const tiles = [["accuracy", cv.accuracy], ["macro F1", cv.f1_macro]];
  if (state.labels.length === 2) tiles.push(["ROC-AUC", cv.roc_auc]);
  tiles.push(["ECE", cv.ece], ["labels", cv.n]);
  let html = tiles.map(([k, v]) => `<div class="tile"><div class="v">${k === "labels" ? v : num(v)}</div><div class="k">${k}</div></div>`).join("");
  if (ev.test) html += `<div class="tile test" title="the newest version on the held-out texts"><div class="v">${num(ev.test.accuracy)}</div><div class="k">test acc. (${ev.test.n})</div></div>`;
  $("metrics").innerHTML = html;
}

function renderCurve(points) {
  const svg = $("curve");
  const W = 380, H = 170, L = 38, R = 12, T = 12, B = 28;
  const pts = points.filter((p) => p.cross_validated !== null || p.test !== null);
  if (!pts.length) { svg.innerHTML = `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no version yet</text>`; return; }
  const xs = pts.map((p) => p.labels), ys = pts.flatMap((p) => [p.cross_validated, p.test]).filter((v) => v !== null);
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  const y0 = Math.min(0.5, Math.floor(Math.min(...ys) * 10) / 10), y1 = 1;
  const X = (v) => L + (W - L - R) * (v - x0) / (x1 - x0), Y = (v) => T + (H - T - B) * (1 - (v - y0) / (y1 - y0));
  let g = `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#c9cee0"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#c9cee0"/>`;
  const step = y1 - y0 > 0.5 ? 0.2 : 0.1;
  for (let v = y1; v >= y0 - 1e-9; v -= step) {
    g += `<line x1="${L}" x2="${W - R}" y1="${Y(v)}" y2="${Y(v)}" stroke="#eef0f5"/><text x="${L - 4}" y="${Y(v) + 3}" text-anchor="end">${v.toFixed(2)}</text>`;
  }
  for (const v of [...new Set(xs)]) g += `<text x="${X(v)}" y="${H - B + 12}" text-anchor="middle">${v}</text>`;
  g += `<text x="${(L + W - R) / 2}" y="${H - 3}" text-anchor="middle">labels · ${esc(pts[0].metric === "roc_auc" ? "ROC-AUC" : "macro F1")}</text>`;
  for (const [key, colour] of [["cross_validated", "#5b3fd6"], ["test", "#d9480f"]]) {
    const ser = pts.filter((p) => p[key] !== null).sort((a, b) => a.labels - b.labels);
    if (!ser.length) continue;
    g += `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${ser.map((p) => `${X(p.labels)},${Y(p[key])}`).join(" ")}"/>`;
    for (const p of ser) g += `<circle class="pt-${key}" cx="${X(p.labels)}" cy="${Y(p[key])}" r="3.5" fill="${colour}"><title>version ${p.version} (${p.kind}), ${p.labels} labels: ${key.replace("_", "-")} ${num(p[key])}</title></circle>`;
  }
  g += `<text x="${W - R - 4}" y="${H - B - 6}" text-anchor="end" style="fill:#5b3fd6">● cross-validated</text>`;
  if (pts.some((p) => p.test !== null)) g += `<text x="${W - R - 4}" y="${H - B - 18}" text-anchor="end" style="fill:#d9480f">● test</text>`;
  svg.innerHTML = g;
}

function renderConfusion(conf) {
  const max = Math.max(1, ...conf.matrix.flat());
  let html = `<tr><th></th>${conf.labels.map((l) => `<th>${esc(l)}</th>`).join("")}</tr>`;
  conf.matrix.forEach((row, i) => {
    html += `<tr><th>${esc(conf.labels[i])}</th>` + row.map((n, j) => {
      const a = (0.08 + 0.6 * n / max).toFixed(2);
      const bg = n ? (i === j ? `rgba(15,157,138,${a})` : `rgba(217,72,15,${a})`) : "transparent";
      return `<td style="background:${bg}">${n}</td>`;
    }).join("") + "</tr>";
  });
  $("confusion").innerHTML = html;
}

function renderVersions(versions) {
  if (!versions.length) { $("versions").innerHTML = ""; return; }
  const key = state.labels.length === 2 ? "roc_auc" : "f1_macro";
  $("versions").innerHTML = `<tr><th>version</th><th>kind</th><th>labels</th><th>CV ${key === "roc_auc" ? "AUC" : "F1"}</th><th>CV acc.</th><th>test acc.</th></tr>` +
    [...versions].reverse().map((v) => {
      const cv = v.metrics.cross_validated || {}, test = v.metrics.test || {};
      return `<tr><td>${v.id}</td><td>${esc(v.kind)}</td><td>${v.n_labels}</td><td>${num(cv[key])}</td><td>${num(cv.accuracy)}</td><td>${num(test.accuracy)}</td></tr>`;
    }).join("");
}

function colour(score, scale, signed) {
  const w = Math.min(1, 1.5 * Math.abs(score) / (scale || 1));
  const a = (0.08 + 0.82 * w) * (score === 0 ? 0 : 1);
  if (!signed) return `rgba(124, 58, 237, ${a.toFixed(3)})`;
  return score >= 0 ? `rgba(234, 88, 12, ${a.toFixed(3)})` : `rgba(37, 99, 235, ${a.toFixed(3)})`;
}


/** The text with each word's background coloured by its salience (signed: orange for, blue against). */
function drawWords(el, text, spans, signed) {
  spans = spans.filter((s) => !s.special).sort((a, b) => a.start - b.start);
  const scale = Math.max(1e-12, ...spans.map((s) => Math.abs(s.score)));
  el.innerHTML = "";
  let cursor = 0;
  for (const s of spans) {
    if (s.start < cursor) continue;
    if (s.start > cursor) el.appendChild(document.createTextNode(text.slice(cursor, s.start)));
    const span = document.createElement("span");
    span.className = "hl";
    span.textContent = text.slice(s.start, s.end);
    span.style.background = colour(s.score, scale, signed);
    if (Math.min(1, 1.5 * Math.abs(s.score) / scale) > 0.62) span.style.color = "#fff";
    span.title = `${s.score.toPrecision(3)} (${(100 * Math.abs(s.score) / scale).toFixed(0)}% of max)`;
    span.dataset.score = s.score;
    el.appendChild(span);
    cursor = s.end;
  }
  if (cursor < text.length) el.appendChild(document.createTextNode(text.slice(cursor)));
}
