// agilecls labelling page, the drawing half: metric tiles, the learning curve (inline SVG), the
// confusion matrix and the versions table, each drawn from the API's JSON into its element; label.js
// (loaded after this file) calls them; esc, pct and num come from common.js (loaded before). No build
// step, no external assets.
"use strict";

function renderMetrics(ev) {
  const cv = ev.cross_validated;
  const binary = state.labels.length === 2;
  const tiles = binary ? [["F1 at the rule", cv.f1], ["ROC-AUC", cv.roc_auc]] : [["macro F1", cv.f1_macro]];
  tiles.push(["accuracy", cv.accuracy], ["ECE", cv.ece], ["labels", cv.n]);
  let html = tiles.map(([k, v]) => `<div class="tile"><div class="v">${k === "labels" ? v : num(v)}</div><div class="k">${k}</div></div>`).join("");
  if (ev.test) html += `<div class="tile test" title="the newest version on the texts you held out"><div class="v">${num(binary ? ev.test.f1 : ev.test.f1_macro)}</div><div class="k">held-out ${binary ? "F1" : "macro F1"} (${ev.test.n})</div></div>`;
  $("metrics").innerHTML = html;
  $("rule").textContent = ev.rule ? "Decision rule: " + ev.rule.describe : "";
}

/** The newest version on the random audit texts: the number with its interval, or why there is none yet. */
function renderAudit(ev) {
  const a = ev.audit;
  if (!a) { $("audit").textContent = "No version yet."; return; }
  const what = a.metric === "f1" ? `F1 of ${esc(a.positive)}` : "macro F1";
  if (!a.enough) {
    $("audit").innerHTML = `<b>Not enough audit texts yet</b> for an estimate of version ${a.version}: ${esc(a.reason)}.`;
    $("audit").dataset.enough = "0";
    return;
  }
  const auc = a.roc_auc !== undefined && a.roc_auc !== null ? ` · ROC-AUC ${num(a.roc_auc)} (${num(a.roc_auc_low)}–${num(a.roc_auc_high)})` : "";
  $("audit").innerHTML = `<span class="big">${num(a.value)}</span> ${what} of version ${a.version}, ` +
    `95% interval <b class="interval">${num(a.low)}–${num(a.high)}</b> on ${a.n} random texts${auc}.` +
    (a.more_for_target ? ` About ${a.more_for_target} more audit labels would narrow it to ±0.05.` : " Within ±0.05.");
  $("audit").dataset.enough = "1";
}

function renderServing(s) {
  const box = $("serving");
  box.classList.toggle("hidden", !s);
  if (!s) return;
  const passed = s.passed_over && s.passed_over.version !== s.version
    ? `<div class="passed">Version ${s.passed_over.version}: ${esc(s.passed_over.reason)}</div>` : "";
  box.innerHTML = `Serving: <b>version ${s.version}</b> (${esc(s.kind)}) · ${esc(s.reason)}${passed}`;
  box.dataset.version = s.version;
}

function renderCurve(points) {
  const svg = $("curve");
  const W = 380, H = 170, L = 38, R = 12, T = 12, B = 28;
  const pts = points.filter((p) => p.cross_validated !== null || p.test !== null || p.audit !== null);
  if (!pts.length) { svg.innerHTML = `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no version yet</text>`; return; }
  const xs = pts.map((p) => p.labels), ys = pts.flatMap((p) => [p.cross_validated, p.test, p.audit]).filter((v) => v !== null && v !== undefined);
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
  g += `<text x="${(L + W - R) / 2}" y="${H - 3}" text-anchor="middle">labels · ${esc(pts[0].metric === "roc_auc" ? "ROC-AUC (out of fold) · F1 (audit)" : "macro F1")}</text>`;
  for (const [key, colour] of [["cross_validated", "#5b3fd6"], ["audit", "#1c7ed6"], ["test", "#d9480f"]]) {
    const ser = pts.filter((p) => p[key] !== null && p[key] !== undefined).sort((a, b) => a.labels - b.labels);
    if (!ser.length) continue;
    g += `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${ser.map((p) => `${X(p.labels)},${Y(p[key])}`).join(" ")}"/>`;
    for (const p of ser) g += `<circle class="pt-${key}" cx="${X(p.labels)}" cy="${Y(p[key])}" r="3.5" fill="${colour}"><title>version ${p.version} (${p.kind}), ${p.labels} labels: ${key.replace("_", "-")} ${num(p[key])}</title></circle>`;
  }
  g += `<text x="${W - R - 4}" y="${H - B - 6}" text-anchor="end" style="fill:#5b3fd6">● on your labels (out of fold)</text>`;
  if (pts.some((p) => p.audit !== null)) g += `<text x="${W - R - 4}" y="${H - B - 18}" text-anchor="end" style="fill:#1c7ed6">● audit</text>`;
  if (pts.some((p) => p.test !== null)) g += `<text x="${W - R - 4}" y="${H - B - 30}" text-anchor="end" style="fill:#d9480f">● held out</text>`;
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

function renderVersions(versions, ev) {
  if (!versions.length) { $("versions").innerHTML = ""; return; }
  const key = state.labels.length === 2 ? "roc_auc" : "f1_macro";
  const audit = new Map(((ev && ev.learning_curve) || []).map((p) => [p.version, p.audit]));
  const serving = ev && ev.serving ? ev.serving.version : null;
  $("versions").innerHTML = `<tr><th>version</th><th>kind</th><th>labels</th><th>audit ${key === "roc_auc" ? "F1" : "macro F1"}</th><th>CV ${key === "roc_auc" ? "AUC" : "F1"}</th><th></th></tr>` +
    [...versions].reverse().map((v) => {
      const cv = v.metrics.cross_validated || {};
      const serves = v.id === serving;
      const action = serves ? "<b>serving</b>" : ev ? `<button class="btn small ghost" data-serve="${v.id}" title="Serve this version whatever the audit says">Serve</button>` : "";
      return `<tr class="${serves ? "serving-row" : ""}"><td>${v.id}</td><td>${esc(v.kind)}</td><td>${v.n_labels}</td><td>${num(audit.get(v.id))}</td><td>${num(cv[key])}</td><td>${action}</td></tr>`;
    }).join("");
}
