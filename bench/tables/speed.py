"""Tables of speed: loading, scoring, batch prediction, serving, salience, fine-tuning."""

from __future__ import annotations

from dataclasses import fields

from agilecls.monitoring import DriftMonitor

from .common import cell, load, machine, rows_table, simple, table

__all__ = [
    "load_times",
    "throughput",
    "zero_few_shot_tweets",
    "zero_shot_scorers",
    "call_sizes",
    "inference_options",
    "inference_options_avx512bf16",
    "batch_predict",
    "batch_scale",
    "serve_load",
    "serve_engines",
    "serve_engines_scale",
    "salience_avx2_fp32",
    "finetune_batching",
    "shared_cache",
]


def load_times() -> list[str]:
    return simple(
        "load_times",
        [
            ("model", "model", None),
            ("first load s (GGUF parse, dequantise, cache)", "first_load_s", 1),
            ("cached load s", "cached_load_s", 1),
            ("dtype", "dtype", None),
        ],
        note="Each load in a fresh process, imports included.",
    )


def throughput() -> list[str]:
    data = load("throughput")
    lines = rows_table(
        data["rows"],
        [
            ("method", "method", None),
            ("texts", "texts", None),
            ("tokens run", "tokens_run", None),
            ("seconds", "seconds", 1),
            ("texts/s", "texts_per_s", 2),
            ("model GFLOP/s", "model_gflop_s", 1),
            ("of the matmul ceiling", "of_matmul_ceiling", 2),
        ],
    )
    return lines + [
        "",
        f"{data['model']}, {data['shots']} examples per class ({data['prefix_tokens']}-token shared "
        f"prefix); the engine is {data['speedup']:.1f}× the naive loop, label probabilities within "
        f"{data['max_prob_diff']:.1e}. Measured with {machine(data)}",
    ]


def zero_few_shot_tweets() -> list[str]:
    return simple(
        "zero_few_shot_tweets",
        [
            ("model", "model", None),
            ("template", "template", None),
            ("shots/class", "shots", None),
            ("calibration", "calibration", None),
            ("accuracy", "accuracy", 3),
            ("macro F1", "f1", 3),
            ("ROC-AUC", "roc_auc", 3),
            ("texts/s", "texts_per_s", 1),
        ],
        note="Spanish tweets, 10 test texts per class, 7 classes.",
    )


def zero_shot_scorers() -> list[str]:
    return simple(
        "zero_shot_scorers",
        [
            ("task", "task", None),
            ("texts", "texts", None),
            ("classes", "classes", None),
            ("scorer", "scorer", None),
            ("accuracy", "accuracy", 3),
            ("macro F1", "macro F1", 3),
            ("ECE", "ECE", 3),
            ("seconds", "seconds", 1),
        ],
    )


def call_sizes() -> list[str]:
    return simple(
        "call_sizes",
        [
            ("member", "member", None),
            ("texts per call", "texts per call", None),
            ("seconds", "seconds", 2),
            ("texts/s", "texts/s", 1),
        ],
        key="calls",
    )


def inference_options() -> list[str]:
    return simple(
        "inference_options",
        [
            ("member", "member", None),
            ("option", "option", None),
            ("seconds", "seconds", 2),
            ("texts/s", "texts/s", 1),
            ("speed-up", "speed-up", 2),
            ("max |Δp|", "max |Δp|", 3),
        ],
    )


def inference_options_avx512bf16() -> list[str]:
    data = load("inference_options_avx512bf16")
    return simple(
        "inference_options_avx512bf16",
        [
            ("member", "member", None),
            ("option", "option", None),
            ("seconds", "seconds", 2),
            ("texts/s", "texts/s", 1),
            ("speed-up", "speed-up", 2),
            ("max |Δp|", "max |Δp|", 3),
        ],
        note=f"{data['texts']} texts.",
    )


def batch_predict() -> list[str]:
    data = load("batch_predict")
    lines = rows_table(
        data["rows"],
        [
            ("run", "run", None),
            ("texts", "texts", None),
            ("seconds", "seconds", 1),
            ("texts/s", "texts/s", 1),
            ("peak RSS MB", "peak RSS MB", None),
        ],
    )
    return lines + [
        "",
        f"Peak memory on the large file / the small one: {data['rss_ratio_large_vs_small']:.2f}; a run "
        f"killed mid-way and resumed lost {data['rows_lost']} rows and duplicated "
        f"{data['rows_duplicated']}. Measured with {machine(data)}",
    ]


def batch_scale() -> list[str]:
    """Cores a day's corpus needs, from the batch benchmark's measured texts/s per core: an estimate."""
    data = load("batch_predict")
    cores = data["cpu_count"]
    per_day = 100_000_000
    needed = per_day / 86_400
    runs = {"fine-tuned MiniLM (local engine, large file)": "local engine, encoder",
            "stacked ensemble (streaming engine)": "ensemble, streaming engine (incl. load)"}
    rows = []
    for model, run in runs.items():
        best = max((r for r in data["rows"] if r["run"] == run), key=lambda r: r["texts"])
        per_core = best["texts/s"] / cores
        rows.append([model, cell(per_core, 1), f"{needed / per_core:,.0f}"])
    return table(["model", "texts/s per core (measured)", f"cores for {per_day:,} texts a day"], rows) + [
        "", f"Estimate, not measurement: {needed:,.0f} texts/s divided by one core's measured rate, assuming Ray "
            f"actors on separate cores scale linearly. Measured rate from {machine(data)}"]


def serve_load() -> list[str]:
    data = load("serve_load")
    keys = ["texts/s", "p50 s", "p95 s", "p99 s", "healthz p99 s", "model calls", "texts per call", "errors"]
    rows = [[mode, *[cell(v.get(k), None) for k in keys]] for mode, v in data["modes"].items()]
    return table(["mode", *keys], rows) + [
        "",
        f"{data['clients']} clients × {data['requests_per_client']} requests on {data['cpu_count']} cores; "
        f"micro-batching is {data['batching_speedup']:.2f}× the texts/s without it. Measured with {machine(data)}",
    ]


def serve_engines() -> list[str]:
    data = load("serve_engines")
    keys = ["start s", "texts/s", "p50 s", "p95 s", "p99 s", "healthz p99 s", "errors", "healthz errors"]
    rows = [[r["model"], r["engine"], *[cell(r.get(k), None) for k in keys]] for r in data["engines"]]
    lines = table(["model", "engine", *keys], rows)
    for model in dict.fromkeys(r["model"] for r in data["engines"]):
        by = {r["engine"]: r for r in data["engines"] if r["model"] == model}
        if by.get("local", {}).get("texts/s") and by.get("ray, 2 replicas", {}).get("texts/s"):
            ratio = by["ray, 2 replicas"]["texts/s"] / by["local"]["texts/s"]
            lines += ["", f"{model}: Ray Serve with 2 replicas gives {ratio:.2f}× the local server's texts/s "
                          f"(target ≥ 0.8×: {'met' if ratio >= 0.8 else 'missed'})."]
    lines += [f"\n{r['model']}, {r['engine']}: failed ({r['failed']})." for r in data["engines"] if "failed" in r]
    drift = data.get("drift")
    if drift:
        calm, shifted = drift["in_distribution"], drift["shifted_30pct_oos"]
        min_texts = {f.name: f.default for f in fields(DriftMonitor)}["min_texts"]
        lines += ["", "| drift stream | runs | flipped | texts until the flip (median, max) |",
                  "| --- | --- | --- | --- |",
                  f"| in distribution, {calm['texts']:,} texts | {calm['runs']} | {calm['false_alarms']} | – |",
                  f"| 30% out-of-scope texts | {shifted['runs']} | {shifted['flipped']} | "
                  f"{cell(shifted['median'], 0)}, {cell(shifted['max'], None)} |",
                  "", f"The monitor judges the state once its window holds {min_texts} texts "
                      f"(`DriftMonitor.min_texts`; with fewer it answers `warming up`), so {min_texts} is the "
                      f"earliest a flip can show.",
                  "", f"Reference profile: {drift['reference']['texts']:,} predictions on the "
                      f"{drift['reference']['source']}; the intent classifier is MiniLM with a logistic head "
                      f"on the CLINC150 in-scope training rows; the state is read after every request of 8 texts."]
    fed = data.get("feedback")
    if fed:
        lines += ["", f"Served texts into a project (`--sample 1`), {fed['texts']:,} distinct texts, SIGKILL after "
                      f"{fed['killed_after']:,}: {fed['stored_at_kill']:,} stored at the kill, "
                      f"{fed['lost_written_before_kill']} lost of those answered more than a second before it, "
                      f"{fed['unflushed_at_kill']} not yet written; after a restart and all texts sent again, "
                      f"{fed['stored_at_end']:,} stored, {fed['lost_at_end']} lost, "
                      f"{fed['duplicated_at_end']} duplicated."]
    lines += ["", f"{data['clients']} clients × {data['requests_per_client']} requests of 1–8 ETHOS test texts on "
                  f"{data['cpu_count']} cores, one engine at a time. Measured with {machine(data)}"]
    return lines


def serve_engines_scale() -> list[str]:
    """Texts/s of N Ray Serve nodes, each like this machine, from one node's best measured rate: an estimate."""
    data = load("serve_engines")
    rows = []
    for model in dict.fromkeys(r["model"] for r in data["engines"]):
        ray_rows = [r for r in data["engines"] if r["model"] == model and r["engine"].startswith("ray")
                    and "texts/s" in r]
        if not ray_rows:
            continue
        best = max(ray_rows, key=lambda r: r["texts/s"])
        per_node = best["texts/s"]
        rows.append([model, best["engine"].removeprefix("ray, "), cell(per_node, 1),
                     *[f"{per_node * n:,.0f}" for n in (4, 16, 64)], f"{1_000_000 / (per_node * 16) / 60:.0f} min"])
    return table(["model", "per node", "1 node texts/s (measured)", "4 nodes", "16 nodes", "64 nodes",
                  "1M texts on 16 nodes"], rows) + [
        "", f"Estimate, not measurement: N × one node's best measured rate, assuming the nodes are like this machine "
            f"({data['cpu_count']} cores) and the proxy and network are not the bottleneck. Measured rate from "
            f"{machine(data)}"]


def salience_avx2_fp32() -> list[str]:
    data = load("salience_avx2_fp32")
    return simple(
        "salience_avx2_fp32",
        [("method", "method", None), ("median s", "median_s", 2), ("best s", "best_s", 2), ("runs", "runs", None)],
        note=f"{data['model']}, a {data['prompt_tokens']}-token prompt, {data['threads']} threads, fp32.",
    )


def finetune_batching() -> list[str]:
    lines = []
    for name, label in (
        ("finetune_batching_minilm_top2", "top 2 layers"),
        ("finetune_batching_minilm_topall", "all layers"),
    ):
        data = load(name)
        lines += rows_table(
            [dict(r, layers=label) for r in data["rows"]],
            [
                ("layers tuned", "layers", None),
                ("schedule", "schedule", None),
                ("texts/s", "texts_per_s", 1),
                ("padding share", "padding_share", 2),
                ("speed-up", "speedup", 2),
            ],
        )
        lines += ["", f"Measured with {machine(data)}", ""]
    return lines[:-1]


def shared_cache() -> list[str]:
    return simple(
        "shared_cache",
        [
            ("variant", "variant", None),
            ("fits", "fits", None),
            ("rows run through the lower layers", "lower_rows_run", None),
            ("fit s", "fit_s", 1),
            ("out-of-fold log loss", "oof_log_loss", 4),
            ("test ROC-AUC", "test_roc_auc", 3),
        ],
        key="table",
    )
