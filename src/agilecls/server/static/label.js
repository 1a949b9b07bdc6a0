// agilecls labelling page: plain JS, no build step, no external assets. API: /api/project/*. Loaded
// after common.js (api, busy, esc, the method titles, the heat map) and label_charts.js.
"use strict";

/** The project's API: `path` under /api/project/. */
const projectApi = (path, body) => api("/api/project/" + path, body);

// Each tab is one annotator: its labels, its undo history and the texts held for its queue.
const CLIENT = sessionStorage.getItem("agilecls-client") || (() => {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  const id = "tab-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  sessionStorage.setItem("agilecls-client", id);
  return id;
})();

const state = {
  labels: [], strategy: null, queue: [], current: null, done: new Set(), seen: new Map(), fetching: null,
  acting: false, labelled: 0, polling: null, list: "errors", lists: { errors: [], issues: [] }, explaining: null,
};

// ---- the queue ----------------------------------------------------------------------------------
function fetchNext() {
  if (!state.fetching) {
    state.fetching = projectApi("next", { k: 8, strategy: state.strategy, client: CLIENT }).then((rows) => {
      const have = new Set(state.queue.map((r) => r.id));
      if (state.current) have.add(state.current.id);
      for (const r of rows) {
        state.seen.set(r.id, r);
        if (!have.has(r.id) && !state.done.has(r.id)) state.queue.push(r);
      }
    }).finally(() => { state.fetching = null; });
  }
  return state.fetching;
}

async function advance() {
  if (!state.queue.length) await fetchNext();
  state.current = state.queue.shift() || null;
  showCurrent();
  if (state.queue.length < 2) fetchNext().catch((err) => setStatus(err.message, "error"));
}

function showCurrent() {
  const r = state.current;
  const box = $("text");
  document.body.dataset.current = r ? r.id : "";
  $("test-badge").classList.toggle("hidden", !(r && r.is_test && !r.audit));
  $("audit-badge").classList.toggle("hidden", !(r && r.audit));
  $("current-label").classList.toggle("hidden", !(r && r.label));
  $("current-label").textContent = r && r.label ? "now: " + r.label : "";
  for (const b of document.querySelectorAll(".lbtn")) b.disabled = !r;
  if (!r) {
    box.className = "text-box empty";
    box.textContent = "Nothing left to label: every text is labelled, skipped or held by another tab.";
    $("text-id").textContent = ""; $("suggestion").textContent = "";
    return;
  }
  box.className = "text-box";
  box.textContent = r.text;
  $("text-id").textContent = "#" + r.id;
  $("suggestion").innerHTML = (r.suggested ? `Suggested: <b>${esc(r.suggested)}</b> (${pct(r.probability)})` : "No suggestion yet") +
    (r.source ? ` <span class="source">· from ${esc(r.source)}</span>` : "");
  for (const b of document.querySelectorAll(".lbtn")) {
    const p = r.proba ? r.proba[b.dataset.label] : null;
    b.classList.toggle("suggested", b.dataset.label === r.suggested);
    b.querySelector(".lp").textContent = p === null || p === undefined ? "" : pct(p);
    b.querySelector(".lbar").style.width = p ? (100 * p).toFixed(1) + "%" : "0";
  }
  $("queue-info").textContent = `${state.queue.length} more queued · ${state.strategy}`;
}

/** Run one action on the current text at a time; keys pressed meanwhile are ignored. */
async function act(fn) {
  if (state.acting) return;
  state.acting = true;
  try { await fn(); } catch (err) { setStatus(err.message, "error"); } finally { state.acting = false; }
}

const labelCurrent = (label) => act(async () => {
  const r = state.current;
  if (!r) return;
  const out = await projectApi("label", { id: r.id, label, client: CLIENT });  // 200 = committed
  state.done.add(r.id);
  state.labelled += 1;
  renderCounts(out.counts);
  setStatus(`#${r.id} → ${label}`, "ok");
  if (out.retraining) watchRetrain();
  try { await advance(); } finally { document.body.dataset.labelled = state.labelled; }  // ready for the next key
});

/** A label started a background retrain: when the new version is in, refresh the model panel and
 *  the queue (the text on screen stays), so suggestions follow the labels without a button. */
function watchRetrain() {
  if (state.retraining) return;
  state.retraining = true;
  $("retrain").classList.remove("hidden");
  const tick = async () => {
    try {
      const s = await projectApi("status");
      if (s.retraining) { setTimeout(tick, 400); return; }
      state.retraining = false;
      $("retrain").classList.add("hidden");
      if (s.retrain_error) { setStatus(s.retrain_error, "error"); return; }
      state.queue = [];
      await refreshModel();
      await fetchNext();
      $("queue-info").textContent = `${state.queue.length} more queued · ${state.strategy}`;
      document.body.dataset.retrained = s.versions;
    } catch (err) { state.retraining = false; setStatus(err.message, "error"); }
  };
  setTimeout(tick, 300);
}

const skip = () => act(async () => {
  if (!state.current) return;
  await projectApi("skip", { id: state.current.id });
  state.done.add(state.current.id);
  await advance();
});

const toggleTest = () => act(async () => {
  const r = state.current;
  if (!r) return;
  r.is_test = (await projectApi("test", { id: r.id, is_test: !r.is_test })).is_test;
  setStatus(r.is_test ? `#${r.id} held out for testing` : `#${r.id} back in training`, "ok");
  showCurrent();
});

const undo = () => act(async () => {
  const out = await projectApi("undo", { client: CLIENT });
  if (!out.undone) { setStatus("nothing to undo"); return; }
  renderCounts(out.counts);
  const t = out.text;
  state.done.delete(t.id);
  state.labelled = Math.max(0, state.labelled - 1);
  document.body.dataset.labelled = state.labelled;
  if (state.current && state.current.id !== t.id) state.queue.unshift(state.current);
  state.queue = state.queue.filter((r) => r.id !== t.id);
  const known = state.seen.get(t.id) || {};
  state.current = { ...known, id: t.id, text: t.text, is_test: t.is_test, label: t.label };
  setStatus(`undid “${out.undone.undone}” on #${t.id}` + (out.undone.superseded ? " (relabelled since by someone else: kept)" : ""), "ok");
  showCurrent();
});

// ---- counts and the training job ----------------------------------------------------------------
function renderCounts(counts) {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const max = Math.max(1, ...Object.values(counts));
  $("counts").innerHTML = state.labels.map((l, i) => {
    const n = counts[l] || 0;
    return `<div class="count-row" data-label="${esc(l)}"><kbd>${i < 9 ? i + 1 : ""}</kbd><span class="name">${esc(l)}</span>` +
      `<div class="ptrack"><div class="pbar" style="width:${(100 * n / max).toFixed(1)}%"></div></div><span class="n">${n}</span></div>`;
  }).join("");
  $("totals").textContent = `${total} labelled`;
}

function renderStatus(s) {
  renderCounts(s.counts);
  $("totals").textContent = `${s.labelled} of ${s.texts} labelled · ${s.test} held out` +
    (s.served ? ` · ${s.served} from production` : "");
  renderJob(s.job);
}

function seconds(s) {
  if (s === null || s === undefined) return "";
  s = Math.round(s);
  return s >= 60 ? `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s` : `${s} s`;
}

function renderJob(job) {
  const box = $("job");
  box.classList.toggle("hidden", !job);
  if (!job) return;
  state.jobId = job.id;
  const p = job.progress || {};
  const active = job.status === "queued" || job.status === "running";
  box.classList.toggle("failed", job.status === "failed");
  const what = job.kind === "distilled" ? "Publish: distilling the serving version" : "Full model";
  $("job-title").textContent = `${what} (job ${job.id}): ${job.status}`;
  $("cancel").classList.toggle("hidden", !active);
  const parts = [p.stage, p.epoch ? `epoch ${p.epoch}/${p.epochs}` : "", p.loss !== undefined ? `loss ${num(p.loss, 3)}` : "",
                 p.seconds_left !== undefined ? `about ${seconds(p.seconds_left)} left` : "",
                 p.scored !== undefined ? `${p.scored}/${p.total} texts scored` : ""].filter(Boolean);
  if (job.status === "done") parts.push(`version ${job.version_id}`);
  if (job.error) parts.push(job.error);
  $("job-detail").textContent = parts.join(" · ");
  const frac = job.status === "done" ? 1 : p.epoch && p.epochs ? p.epoch / p.epochs
    : p.scored && p.total ? p.scored / p.total : active ? 0.03 : 0;
  $("job-bar").style.width = (100 * frac).toFixed(1) + "%";
  $("train-full").disabled = active;
  $("publish").disabled = active;
}

function pollJob() {
  if (state.polling) return;
  state.polling = setInterval(async () => {
    try {
      const s = await projectApi("status");
      renderStatus(s);
      if (!s.training) {
        clearInterval(state.polling); state.polling = null;
        if (s.job && s.job.status === "done") refreshModel().catch((err) => setStatus(err.message, "error"));
      }
    } catch (err) { setStatus(err.message, "error"); }
  }, 1000);
}

async function trainFast() {
  const out = await busy("training", () => projectApi("train", { kind: "fast" }));
  const v = out.version;
  $("train-info").textContent = `version ${v.id} · ${v.n_labels} labels · ${num(v.metrics.fit_seconds, 1)} s`;
  await refreshModel();
}

async function startJob(kind, what) {
  const out = await busy(what, () => projectApi("train", { kind }));
  $("train-info").textContent = `job ${out.job} started`;
  renderJob({ id: out.job, kind, status: "queued", progress: { stage: "starting" } });
  pollJob();
}

// ---- evaluation ---------------------------------------------------------------------------------
async function refreshModel() {
  const versions = await projectApi("versions");
  renderVersions(versions, null);
  if (!versions.length) return;
  const ev = await projectApi("evaluate");
  renderVersions(versions, ev);
  renderAudit(ev);
  renderServing(ev.serving);
  renderMetrics(ev);
  renderCurve(ev.learning_curve);
  renderConfusion(ev.confusion);
  $("stopping").textContent = ev.stopping.message;
  $("stopping").classList.toggle("stable", ev.stopping.stable);
  $("issues-note").textContent = ev.review.message || "";
  $("issues-note").classList.toggle("hidden", !ev.review.message);
  await refreshReview();
}

async function serveVersion(id) {
  await busy(`serving version ${id}`, () => projectApi("serve", { version: id }));
  await refreshModel();
}

// ---- review: errors, possible label errors, salience, fixing labels -----------------------------
async function refreshReview() {
  const [errors, issues] = await Promise.all([projectApi("errors?limit=40"), projectApi("issues?limit=40")]);
  state.lists = { errors, issues };
  $("review-hint").textContent = errors.length || issues.length
    ? "Click a text to see which words drive the model's decision; fix a wrong label in place."
    : "No disagreements between the labels and the out-of-fold model.";
  renderReview();
}

function renderReview() {
  for (const kind of ["errors", "issues"]) {
    const ul = $(kind);
    $(kind + "-count").textContent = state.lists[kind].length;
    ul.innerHTML = "";
    for (const row of state.lists[kind]) {
      const li = document.createElement("li");
      li.className = "review-row" + (row.id === state.explaining ? " active" : "") + (row.fixed ? " fixed" : "");
      li.dataset.id = row.id;
      const options = state.labels.map((l) => `<option value="${esc(l)}"${l === row.label ? " disabled" : ""}>${esc(l)}</option>`).join("");
      li.innerHTML = `<div class="review-text" title="${esc(row.text)}">${esc(row.text)}</div>` +
        `<div class="review-meta">${row.fixed ? `<span class="done">✓ relabelled ${esc(row.label)}</span> · ` : `label <b>${esc(row.label)}</b> · `}` +
        `model <b>${esc(row.predicted)}</b> ${pct(row.confidence)}</div>` +
        `<select class="fix" title="Fix this text's label"><option value="">fix label…</option>${options}</select>`;
      const select = li.querySelector("select");
      select.onclick = (ev) => ev.stopPropagation();
      select.onchange = () => { select.blur(); if (select.value) fixLabel(row, select.value).catch((err) => setStatus(err.message, "error")); };
      li.onclick = () => explainRow(row).catch((err) => setStatus(err.message, "error"));
      ul.appendChild(li);
    }
  }
}

async function fixLabel(row, label) {
  const out = await projectApi("label", { id: row.id, label, client: CLIENT });
  for (const list of Object.values(state.lists)) for (const r of list) if (r.id === row.id) { r.label = label; r.fixed = true; }
  renderCounts(out.counts);
  setStatus(`#${row.id} relabelled ${label}`, "ok");
  renderReview();
}

function showList(kind) {
  state.list = kind;
  for (const b of document.querySelectorAll(".subtab")) b.classList.toggle("active", b.dataset.list === kind);
  $("errors").classList.toggle("hidden", kind !== "errors");
  $("issues").classList.toggle("hidden", kind !== "issues");
}

async function explainRow(row) {
  state.explaining = row.id;
  renderReview();
  $("explain-card").classList.remove("hidden");
  const data = await busy("explaining #" + row.id, () => projectApi("explain", { id: row.id, method: $("method").value, label: row.predicted }));
  if (state.explaining !== row.id) return;
  const probs = data.info.probabilities || {};
  $("explain-label").textContent = `“${data.info.label || data.target}”`;
  const cerr = data.info.completeness_error;
  $("explain-meta").textContent = `#${row.id} · version ${data.version} · ${methodTitle(data.method)} · ${num(data.seconds, 2)} s` +
    (cerr !== undefined && cerr !== null ? ` · completeness error ${Number(cerr).toExponential(1)}` : "");
  showWarnings($("explain-warnings"), data.warnings);
  $("explain-probs").innerHTML = `<div class="muted small">Probabilities of version ${data.version}, which trained on this text's label:</div>` + probBars(probs, data.info.label);
  drawHeatmap($("explain-heatmap"), data.text, data.text_spans.words || [], data.signed);
  document.body.dataset.explained = row.id;
}

// ---- start --------------------------------------------------------------------------------------
function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (["INPUT", "SELECT", "TEXTAREA"].includes(ev.target.tagName)) return;
  const n = parseInt(ev.key, 10);
  if (n >= 1 && n <= Math.min(9, state.labels.length)) { ev.preventDefault(); labelCurrent(state.labels[n - 1]); }
  else if (ev.key === "s") { ev.preventDefault(); skip(); }
  else if (ev.key === "u") { ev.preventDefault(); undo(); }
  else if (ev.key === "t") { ev.preventDefault(); toggleTest(); }
}

async function init() {
  if (TOKEN) $("debug-link").href = "/#token=" + encodeURIComponent(TOKEN);
  const [s] = await Promise.all([projectApi("status"), loadInfo()]);
  state.labels = s.labels;
  state.strategy = s.default_strategy;
  $("project-name").textContent = s.name;
  document.title = `agilecls · labelling ${s.name}`;
  $("strategy").innerHTML = s.strategies.map((n) => `<option value="${esc(n)}"${n === s.default_strategy ? " selected" : ""}>${esc(n)}</option>`).join("");
  fillMethods($("method"), s.methods, "grad_dot_input");
  $("label-buttons").innerHTML = s.labels.map((l, i) =>
    `<button class="lbtn" data-label="${esc(l)}">${i < 9 ? `<kbd>${i + 1}</kbd>` : ""}<span>${esc(l)}</span><span class="lp"></span><span class="lbar"></span></button>`).join("");
  for (const b of document.querySelectorAll(".lbtn")) b.onclick = () => labelCurrent(b.dataset.label);
  $("strategy").onchange = () => {
    $("strategy").blur();
    state.strategy = $("strategy").value;
    state.queue = [];
    fetchNext().then(() => showCurrent()).catch((err) => setStatus(err.message, "error"));
  };
  $("skip").onclick = skip;
  $("undo").onclick = undo;
  $("test").onclick = toggleTest;
  $("train-fast").onclick = () => trainFast().catch(() => {});
  $("train-full").onclick = () => startJob("full", "starting the full model").catch(() => {});
  $("publish").onclick = () => startJob("distilled", "starting to distil the serving version").catch(() => {});
  $("versions").onclick = (ev) => {
    const b = ev.target.closest("button[data-serve]");
    if (b) serveVersion(Number(b.dataset.serve)).catch(() => {});
  };
  $("cancel").onclick = () => busy("cancelling", () => projectApi("cancel", { job: state.jobId })).then(renderJob).catch(() => {});
  $("method").onchange = () => { $("method").blur(); const row = [...state.lists.errors, ...state.lists.issues].find((r) => r.id === state.explaining); if (row) explainRow(row).catch(() => {}); };
  for (const b of document.querySelectorAll(".subtab")) b.onclick = () => showList(b.dataset.list);
  document.addEventListener("keydown", onKey);
  renderStatus(s);
  renderCurve([]);
  if (s.training) pollJob();
  await advance();
  if (s.versions) await refreshModel().catch((err) => setStatus(err.message, "error"));
  document.body.dataset.ready = "1";
}

init().catch((err) => setStatus(err.message, "error"));
