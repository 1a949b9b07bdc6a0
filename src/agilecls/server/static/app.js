// agilecls prompt-debugging page: plain JS, no build step, no external assets. Loaded after common.js
// (api, busy, esc, the method titles, the heat map).
"use strict";

const state = {
  info: null,
  datapoints: [],      // {id, source, prompt, target, result, stale}
  current: null,
  pins: { a: null, b: null },
  span: null,          // [start, end) of target tokens to score, null = all
  anchor: null,
  nextId: 1,
  classify: null,
};

// ---- datapoints -------------------------------------------------------------------------------
function addDatapoints(records) {
  for (const r of records) {
    state.datapoints.push({ id: state.nextId++, source: r.source || "typed", prompt: r.prompt || "",
                            target: r.target || "", result: null, stale: false });
  }
  if (state.current === null && state.datapoints.length) select(state.datapoints[0].id);
  renderList();
}

function dp(id) { return state.datapoints.find((d) => d.id === id) || null; }
function currentDp() { return dp(state.current); }

function select(id) {
  state.current = id;
  state.span = null;
  const d = currentDp();
  $("prompt").value = d ? d.prompt : "";
  $("target").value = d ? d.target : "";
  $("dp-title").textContent = d ? `#${d.id} · ${d.source}` : "";
  renderList();
  renderResult();
}

function renderList() {
  const list = $("dp-list");
  list.innerHTML = "";
  $("dp-count").textContent = state.datapoints.length;
  for (const d of state.datapoints) {
    const li = document.createElement("li");
    li.className = "dp" + (d.id === state.current ? " active" : "");
    li.dataset.id = d.id;
    li.dataset.source = d.source;
    const pins = ["a", "b"].filter((k) => state.pins[k] === d.id).map((k) => `<span class="pin-tag ${k}">${k.toUpperCase()}</span>`).join("");
    const first = d.prompt.split("\n").find((l) => l.trim()) || "(empty)";
    li.innerHTML = `<div class="dp-top"><span class="source">${esc(d.source)}</span>${pins}` +
      `${d.result ? `<span class="dot ${d.stale ? "stale" : ""}" title="${d.stale ? "edited since explained" : "explained"}"></span>` : ""}</div>` +
      `<div class="preview">${esc(first.slice(0, 90))}</div>`;
    li.onclick = () => select(d.id);
    list.appendChild(li);
  }
}

// ---- heat maps --------------------------------------------------------------------------------
const intensity = () => parseFloat($("intensity").value);

function spansFor(result, granularity, key = "spans") {
  const all = result[key] || {};
  return (all[granularity] || []).filter((s) => !s.special);
}

function drawRanking(el, spans, signed) {
  el.innerHTML = "";
  const key = (s) => (signed ? Math.abs(s.score) : s.score);
  const top = [...spans].sort((x, y) => key(y) - key(x)).slice(0, 8);
  const scale = Math.max(1e-12, ...top.map((s) => Math.abs(s.score)));
  for (const s of top) {
    const li = document.createElement("li");
    const share = (100 * Math.abs(s.score) / scale).toFixed(1);
    const cls = signed && s.score < 0 ? "neg" : signed ? "pos" : "uns";
    li.innerHTML = `<div class="bar ${cls}" style="width:${share}%"></div>` +
      `<span class="score">${s.score.toPrecision(3)}</span><span class="span-text">${esc(s.text.replace(/\s+/g, " ").slice(0, 80))}</span>`;
    el.appendChild(li);
  }
}

async function ensureGranularity(result, granularity, key = "spans", textKey = "prompt", tokensKey = "tokens") {
  if (granularity !== "regex") return;
  const pattern = $("pattern").value;
  result[key] = result[key] || {};
  if (result[key].regex && result._pattern === pattern) return;
  result[key].regex = await api("/api/aggregate", { prompt: result[textKey], tokens: result[tokensKey],
                                                    granularity: "regex", pattern });
  result._pattern = pattern;
}

function legend(signed) {
  $("legend").innerHTML = signed
    ? `<i class="sw pos"></i> raises the target <i class="sw neg"></i> lowers it`
    : `<i class="sw uns"></i> darker = the target is more sensitive to it`;
}

/** The warnings box under the card head holding `metaEl`, made on first use. */
function warningsBox(metaEl) {
  let box = $(metaEl.id + "-warnings");
  if (!box) {
    box = document.createElement("div");
    box.id = metaEl.id + "-warnings";
    box.className = "salience-warnings hidden";
    box.setAttribute("role", "alert");
    (metaEl.closest(".card-head") || metaEl).after(box);
  }
  return box;
}

async function renderResult() {
  const d = currentDp();
  const g = $("granularity").value;
  const r = d && d.result;
  showWarnings(warningsBox($("result-meta")), r && r.warnings);
  if (!r) {
    $("heatmap").className = "heatmap empty";
    $("heatmap").textContent = "Run “Explain” to see which parts of the prompt drive the target.";
    $("top-spans").innerHTML = "";
    $("result-meta").textContent = "";
    $("target-chips").innerHTML = "";
    renderCompare();
    return;
  }
  await ensureGranularity(r, g);
  legend(r.signed);
  drawHeatmap($("heatmap"), r.prompt, spansFor(r, g), r.signed, intensity());
  drawRanking($("top-spans"), spansFor(r, g), r.signed);
  let meta = `${methodTitle(r.method)} · log p(span) = ${r.score.toFixed(3)} · ${r.tokens.length} tokens · ${r.seconds.toFixed(2)} s`;
  if (r.info && r.info.completeness_error !== undefined) meta += ` · completeness error ${r.info.completeness_error.toExponential(1)}`;
  if (d.stale) meta += " · edited since — explain again";
  $("result-meta").textContent = meta;
  renderChips(r);
  renderCompare();
}

function renderChips(r) {
  const box = $("target-chips");
  box.innerHTML = `<span class="chips-label">Target span${r.info && r.info.generated ? " (generated)" : ""}:</span>`;
  const [a, b] = state.span || r.target_span;
  r.target_tokens.forEach((t, i) => {
    const chip = document.createElement("button");
    chip.className = "chip" + (i >= a && i < b ? " on" : "");
    chip.textContent = t.text.replace(/\n/g, "⏎") || "·";
    chip.title = "click: start a span here; click again: extend it";
    chip.onclick = () => {
      if (state.anchor === null) { state.anchor = i; state.span = [i, i + 1]; }
      else { state.span = [Math.min(state.anchor, i), Math.max(state.anchor, i) + 1]; state.anchor = null; }
      renderChips(r);
    };
    box.appendChild(chip);
  });
  const all = document.createElement("button");
  all.className = "chip reset";
  all.textContent = "all";
  all.onclick = () => { state.span = null; state.anchor = null; renderChips(r); };
  box.appendChild(all);
}

async function renderCompare() {
  const a = dp(state.pins.a), b = dp(state.pins.b);
  const card = $("compare-card");
  if (!a || !b) { card.classList.add("hidden"); return; }
  card.classList.remove("hidden");
  const g = $("granularity").value;
  for (const [key, d] of [["a", a], ["b", b]]) {
    const col = $("compare-" + key);
    col.innerHTML = `<div class="compare-head"><span class="pin-tag ${key}">${key.toUpperCase()}</span> ` +
      `<b>${esc(d.source)}</b> <span class="muted">#${d.id}</span></div>`;
    if (!d.result) {
      col.insertAdjacentHTML("beforeend", `<p class="muted">Not explained yet — select it and press Explain.</p>`);
      continue;
    }
    await ensureGranularity(d.result, g);
    col.insertAdjacentHTML("beforeend", `<div class="muted small">target: <code>${esc(d.result.target)}</code> · log p = ${d.result.score.toFixed(3)}</div>`);
    const pre = document.createElement("pre");
    pre.className = "heatmap compact";
    col.appendChild(pre);
    drawHeatmap(pre, d.result.prompt, spansFor(d.result, g), d.result.signed, intensity());
  }
}

// ---- actions ----------------------------------------------------------------------------------
function syncEditor() {
  const d = currentDp();
  if (!d) return;
  const changed = d.prompt !== $("prompt").value || d.target !== $("target").value;
  d.prompt = $("prompt").value;
  d.target = $("target").value;
  if (changed && d.result) d.stale = true;
}

async function doExplain() {
  if (!currentDp()) addDatapoints([{ source: "typed", prompt: $("prompt").value, target: $("target").value }]);
  syncEditor();
  const d = currentDp();
  const body = { prompt: d.prompt, target: d.target || null, method: $("method").value,
                 steps: parseInt($("steps").value, 10) || 16,
                 target_span: d.result && !d.stale && state.span ? state.span : null };
  if (!body.prompt.trim()) { setStatus("type a prompt first", "error"); return; }
  const r = await busy("computing salience", () => api("/api/salience", body));
  if (!d.target) { d.target = r.target; if (d.id === state.current) $("target").value = r.target; }
  d.result = r;
  d.stale = false;
  state.span = null; state.anchor = null;
  renderList();
  renderResult();
}

async function doGenerate() {
  syncEditor();
  const d = currentDp();
  const prompt = $("prompt").value;
  if (!prompt.trim()) { setStatus("type a prompt first", "error"); return; }
  const r = await busy("generating", () => api("/api/generate", { prompt, max_new_tokens: 32 }));
  $("target").value = r.target;
  syncEditor();
  if (d) renderList();
}

function pin(key) {
  if (state.current === null) return;
  const other = key === "a" ? "b" : "a";
  if (state.pins[other] === state.current) state.pins[other] = null;
  state.pins[key] = state.current;
  renderList();
  renderCompare();
}

async function doClassify() {
  const text = $("clf-text").value;
  const source = $("clf-source").value;
  const body = { text, method: $("clf-method").value };
  if (source) body.classifier = source;
  else body.labels = $("clf-labels").value.split(",").map((s) => s.trim()).filter(Boolean);
  const r = await busy("classifying", () => api("/api/classify", body));
  state.classify = r;
  renderClassify();
}

function renderClassify() {
  const r = state.classify;
  if (!r) return;
  $("clf-probs").innerHTML = probBars(r.probabilities, r.label);
  showWarnings(warningsBox($("clf-meta")), r.warnings);
  if (!r.explanation) {
    $("clf-meta").textContent = `${r.classifier} · no prompt to explain (not a language-model classifier)`;
    $("clf-heatmap").className = "heatmap empty";
    $("clf-heatmap").textContent = "Salience needs a language-model (AgileClassifier) classifier.";
    return;
  }
  $("clf-meta").textContent = `${r.classifier} · explains “${r.label}” · ${methodTitle(r.method)} · ${r.seconds.toFixed(2)} s`;
  const g = "words";
  drawHeatmap($("clf-heatmap"), r.text, r.text_spans[g] || [], r.signed, intensity());
  drawHeatmap($("clf-prompt-heatmap"), r.prompt, spansFor(r, "words"), r.signed, intensity());
}

function showTab(name) {
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.dataset.tab === name);
  $("view-salience").classList.toggle("hidden", name !== "salience");
  $("view-classify").classList.toggle("hidden", name !== "classify");
}

async function init() {
  for (const t of document.querySelectorAll(".tab")) t.onclick = () => showTab(t.dataset.tab);
  $("load-samples").onclick = async () => addDatapoints(await busy("loading samples", () => api("/api/examples")));
  $("upload").onchange = async (ev) => {
    const file = ev.target.files[0];
    if (!file) return;
    const text = await file.text();
    addDatapoints(await busy("reading " + file.name, () => api("/api/examples/parse", { jsonl: text })));
    ev.target.value = "";
  };
  $("new-dp").onclick = () => { addDatapoints([{ source: "typed", prompt: "", target: "" }]);
                                select(state.datapoints[state.datapoints.length - 1].id); $("prompt").focus(); };
  $("duplicate").onclick = () => {
    syncEditor();
    const d = currentDp();
    if (!d) return;
    addDatapoints([{ source: d.source + " (edit)", prompt: d.prompt, target: d.target }]);
    select(state.datapoints[state.datapoints.length - 1].id);
  };
  $("prompt").oninput = $("target").oninput = () => { syncEditor(); renderList(); };
  $("explain").onclick = () => doExplain().catch(() => {});
  $("generate").onclick = () => doGenerate().catch(() => {});
  $("pin-a").onclick = () => pin("a");
  $("pin-b").onclick = () => pin("b");
  $("method").onchange = () => $("steps-wrap").classList.toggle("hidden", $("method").value !== "integrated_gradients");
  $("granularity").onchange = () => {
    $("pattern-wrap").classList.toggle("hidden", $("granularity").value !== "regex");
    renderResult().catch((e) => setStatus(e.message, "error"));
  };
  $("pattern").onchange = () => renderResult().catch((e) => setStatus(e.message, "error"));
  $("intensity").oninput = () => { renderResult(); renderClassify(); };
  $("classify").onclick = () => doClassify().catch(() => {});
  document.addEventListener("keydown", (ev) => {
    if ((ev.ctrlKey || ev.metaKey) && ev.key === "Enter") { ev.preventDefault(); $("explain").click(); }
  });
  state.info = await loadInfo();
  $("model-name").textContent = state.info.model;
  if (state.info.project) {  // started with --project: link its labelling page
    $("label-link").href = "/label" + (TOKEN ? "#token=" + encodeURIComponent(TOKEN) : "");
    $("label-link").classList.remove("hidden");
  }
  for (const select of [$("method"), $("clf-method")]) fillMethods(select, state.info.methods);  // the server's registry
  for (const name of state.info.classifiers) {
    const opt = document.createElement("option");
    opt.value = name; opt.textContent = name;
    $("clf-source").appendChild(opt);
  }
  $("clf-source").onchange = () => $("clf-labels").disabled = !!$("clf-source").value;
  document.body.dataset.ready = "1";
}

init().catch((err) => setStatus(err.message, "error"));
