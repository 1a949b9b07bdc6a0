"""Write the measured tables into the docs from bench/results, so no number there is copied by hand.

    python -m bench.docs_tables            # rewrite every marked block and docs/reference/cli.md
    python -m bench.docs_tables --check    # exit 1 if a block or the CLI page is out of date (CI-friendly)

A block in README.md or a docs page is ``<!-- results:NAME -->`` ... ``<!-- /results -->``; NAME is
one of :data:`TABLES`, each a function from a results JSON to markdown lines ending with the command
and machine of the run. The command-line reference is written from the Typer app.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"(<!-- results:([a-z_]+) -->\n)(.*?)(<!-- /results -->)", re.S)


def _num(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *["| " + " | ".join(r) + " |" for r in rows],
    ]


def _load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def _machine(data: dict) -> str:
    m = data.get("machine") or {}
    command = f"`{data['command']}`" if data.get("command") else "a command not recorded in the results file"
    cpu = m.get("cpu_model") or m.get("device") or "a CPU whose model was not recorded"
    cores = m.get("cpus_usable") or m.get("cpu_count") or m.get("cpus")
    when = (data.get("written_at") or "")[:10] or "date not recorded"
    return f"{command} on {cpu}" + (f" ({cores} cores)" if cores else "") + f", {when}."


def _cell(value, digits: int | None) -> str:
    if value is None:
        return "–"
    if digits is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}f}"
    return str(value)


def _rows(rows: list[dict], columns: list[tuple[str, str, int | None]]) -> list[str]:
    """A markdown table of ``rows``: one column per ``(header, key, digits)``; ``digits=None`` prints as is."""
    return _table([c[0] for c in columns], [[_cell(r.get(key), d) for _, key, d in columns] for r in rows])


def _simple(
    name: str, columns: list[tuple[str, str, int | None]], *, key: str = "rows", note: str = "", keep=None
) -> list[str]:
    data = _load(name)
    rows = [r for r in data[key] if keep is None or keep(r)]
    return _rows(rows, columns) + ["", (note + " " if note else "") + f"Measured with {_machine(data)}"]


def loop_decisions() -> list[str]:
    data = _load("loop_decisions")
    rows = [
        [
            r["dataset"],
            r["strategy"],
            str(r["labels"]),
            _num(r["f1_rule"]),
            _num(r["f1_oracle"]),
            _num(r["roc_auc"]),
            _num(r["audit"]),
            _num(r["covered"], 2),
            _num(r["shown_auc"]),
            _num(r["zero_shot_auc"]),
        ]
        for r in data["table"]
        if r["labels"] in (8, 16, 24, 32, 64, 128, 256)
    ]
    v = data["verdict"]
    lines = _table(
        [
            "dataset",
            "strategy",
            "labels",
            "F1 at the rule",
            "F1 at the best test cut",
            "ROC-AUC",
            "audit F1",
            "interval covers test",
            "suggestions' AUC",
            "zero-shot AUC",
        ],
        rows,
    )
    lines += ["", f"Measured with {_machine(data)} Means over seeds {sorted({r['seed'] for r in data['runs']})}."]
    yes = {True: "yes", False: "no"}
    checks = [
        [
            "F1 at the rule ≥ 0.9 × the best test cut, from 32 labels",
            f"lowest ratio {_num(v['rule_vs_oracle_min_ratio_from_32'])}",
            yes[bool(v["rule_vs_oracle_met"])],
        ],
        [
            "F1 never 0 once each class has 2 labels",
            f"{v['f1_zero_rounds']} rounds at 0",
            yes[v["f1_zero_rounds"] == 0],
        ],
        [
            "suggestions' AUC ≥ zero-shot AUC − 0.01 at 8, 16, 24 labels",
            f"smallest margin {_num(v['cold_start_min_margin'])}",
            yes[bool(v["cold_start_met"])],
        ],
        [
            "audit interval covers the test value in ≥ 80% of rounds from 64 labels",
            f"{_num(v['audit_coverage_from_64'], 2)} of {v['audit_rounds_with_estimate_from_64']} rounds "
            "with an estimate",
            yes[bool(v["audit_met"])],
        ],
    ]
    step = data.get("loop_step")
    if step:
        checks.append(
            [
                f"loop step ≤ 1 s on a {step['pool']:,}-text pool",
                f"median {step['median']:.2f} s, best {step['best']:.2f} s",
                yes[step["median"] <= 1],
            ]
        )
    lines += ["", *_table(["target", "measured", "met"], checks)]
    return lines


def loop_decisions_full() -> list[str]:
    data = _load("loop_decisions_full")
    rows = []
    for run in data["runs"]:
        fast = {r["labels"]: r for r in run["rounds"]}
        for f in run["full"]:
            r = fast.get(f["total_labels"], {})
            if "error" in f:
                rows.append([run["dataset"], str(run["seed"]), f"({f['total_labels']} in all)", f["error"], *[""] * 6])
                continue
            rows.append(
                [
                    run["dataset"],
                    str(run["seed"]),
                    str(f["labels"]),
                    _num(f["f1"]),
                    _num(r.get("f1")),
                    _num(f["roc_auc"]),
                    _num(f["audit"]),
                    _num(f["serving_audit_before"]),
                    "yes" if f["serves"] else "no",
                    f"{f['seconds']} s",
                ]
            )
    lines = _table(
        [
            "dataset",
            "seed",
            "training labels",
            "full F1",
            "fast F1",
            "full ROC-AUC",
            "full audit F1",
            "serving audit F1 before",
            "serves",
            "fit",
        ],
        rows,
    )
    refs = data.get("references") or {}
    if refs:
        lines += [
            "",
            *_table(
                ["dataset", "stacked recipe on every pool row: F1", "rows", "fit"],
                [[k, _num(r["f1"]), str(r["rows"]), f"{r['fit_seconds']} s"] for k, r in refs.items()],
            ),
        ]
    lines += ["", f"Measured with {_machine(data)}"]
    return lines


def loop_rules() -> list[str]:
    data = _load("loop_rules")
    lines = _table(
        ["rule", "mean F1 / best cut", "rounds under 0.9", "worst"],
        [
            [r["rule"], _num(r["mean F1 / oracle"]), str(r["rounds under 0.9"]), _num(r["worst"])]
            for r in data["summary"]
        ],
    )
    err = data["share_error"]
    lines += [
        "",
        f"Mean absolute error of the rare class's share among the unlabelled texts: EM to convergence "
        f"{_num(err['em'])}, its first step (the mean probability) {_num(err['mean_p'])}.",
        "",
        f"Measured with {_machine(data)}",
    ]
    return lines


def label_review_floor() -> list[str]:
    data = _load("label_review_floor")
    names = list(dict.fromkeys(r["dataset"] for r in data["rows"]))
    counts = sorted({r["per class"] for r in data["rows"]})
    cell = {(r["dataset"], r["per class"]): r for r in data["rows"]}
    lines = _table(
        ["labels per class", *[f"{n}: precision at k (lift)" for n in names]],
        [
            [str(c), *[f"{cell[(n, c)]['precision at k']:.2f} ({cell[(n, c)]['lift']:.1f}×)" for n in names]]
            for c in counts
        ],
    )
    lines += [
        "",
        f"Smallest count with a median lift of at least {data['min_lift']:g} over the datasets: "
        f"**{data['floor']}**. Measured with {_machine(data)}",
    ]
    return lines


def distill() -> list[str]:
    data = _load("distill")
    summary = data["summary"]
    header = [
        "dataset",
        "model",
        "agilecls encoders",
        "seeds",
        "ROC-AUC",
        "F1",
        "macro F1",
        "ECE",
        "fit s",
        "predict texts/s",
    ]
    rows = [
        [
            r["dataset"],
            r["model"],
            r.get("encoder_embedding", "fp32"),
            str(r["seeds"]),
            _num(r.get("roc_auc")),
            _num(r.get("f1")),
            _num(r.get("f1_macro")),
            _num(r.get("ece")),
            _num(r.get("fit_seconds"), 0),
            _num(r.get("texts_per_second"), 1),
        ]
        for r in summary
    ]
    flags = ", ".join(data["machine"].get("cpu_flags") or [])
    lines = _table(header, rows) + [
        "",
        f"Measured with {_machine(data)} CPU flags: {flags}; language models in "
        f"{data['machine']['dtype'].replace('torch.', '')}. Means over the seeds; "
        "F1 is the hateful "
        f"class's at each model's rule (ETHOS), macro F1 the tweets'. \"agilecls "
        f"encoders\" is how agilecls's sentence encoders embedded in that run "
        f"(SetFit's body runs in fp32).",
    ]

    def get(dataset, embedding, model, key):
        return next(
            (
                r.get(key)
                for r in summary
                if r["dataset"] == dataset
                and r["model"].startswith(model)
                and r.get("encoder_embedding", "fp32") == embedding
            ),
            None,
        )

    def verdict(ok) -> str:
        return "yes" if ok else "no"

    checks = []
    for dataset, embedding in dict.fromkeys((r["dataset"], r.get("encoder_embedding", "fp32")) for r in summary):
        key = "roc_auc" if dataset == "ethos" else "f1_macro"
        where = f"{dataset} ({embedding})"
        teacher, student, alone = (get(dataset, embedding, m, key) for m in ("teacher", "student", "labels only"))
        if None in (teacher, student, alone):
            continue
        checks.append(
            [
                f"{where}: student {key} within 0.01 of the teacher's and above labels only",
                f"{_num(student)} vs teacher {_num(teacher)}, labels only {_num(alone)}",
                verdict(student >= teacher - 0.01 and student > alone),
            ]
        )
        speeds = [get(dataset, embedding, m, "texts_per_second") for m in ("teacher", "student", "SetFit")]
        if None not in speeds:
            checks.append(
                [
                    f"{where}: student predicts ≥ 8× the teacher's texts/s and ≥ SetFit's",
                    f"{speeds[1]:.0f} vs teacher {speeds[0]:.1f} ({speeds[1] / speeds[0]:.1f}×), "
                    f"SetFit {speeds[2]:.0f}",
                    verdict(speeds[1] >= 8 * speeds[0] and speeds[1] >= speeds[2]),
                ]
            )
        ece_s, ece_t = get(dataset, embedding, "student", "ece"), get(dataset, embedding, "teacher", "ece")
        target = 0.05 if dataset == "tweets" else ece_t
        checks.append(
            [
                f"{where}: student ECE ≤ " + ("0.05" if dataset == "tweets" else "the teacher's"),
                f"{_num(ece_s)} (teacher {_num(ece_t)})",
                verdict(ece_s <= target),
            ]
        )
    lines += ["", *_table(["target", "measured", "met"], checks)]
    estimates = data.get("estimate_20k") or []
    if estimates:
        lines += [
            "",
            "Distilling 20,000 unlabelled texts, estimated from the rates measured above (no run on "
            "20,000 texts was made):",
            "",
            *_table(
                ["texts like", "seed", "teacher labels texts/s", "student s per step", "minutes in all"],
                [
                    [
                        e["dataset"],
                        str(e["seed"]),
                        _num(e["teacher_texts_per_s"], 1),
                        _num(e["student_s_per_step"]),
                        _num(e["minutes_for_20k"], 0),
                    ]
                    for e in estimates
                ],
            ),
        ]
    return lines


# --- speed ------------------------------------------------------------------------------------------------------


def load_times() -> list[str]:
    return _simple(
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
    data = _load("throughput")
    lines = _rows(
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
        f"{data['max_prob_diff']:.1e}. Measured with {_machine(data)}",
    ]


def zero_few_shot_tweets() -> list[str]:
    return _simple(
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
    return _simple(
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
    return _simple(
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
    return _simple(
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
    data = _load("inference_options_avx512bf16")
    return _simple(
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
    data = _load("batch_predict")
    lines = _rows(
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
        f"{data['rows_duplicated']}. Measured with {_machine(data)}",
    ]


def serve_load() -> list[str]:
    data = _load("serve_load")
    keys = ["texts/s", "p50 s", "p95 s", "p99 s", "healthz p99 s", "model calls", "texts per call", "errors"]
    rows = [[mode, *[_cell(v.get(k), None) for k in keys]] for mode, v in data["modes"].items()]
    return _table(["mode", *keys], rows) + [
        "",
        f"{data['clients']} clients × {data['requests_per_client']} requests on {data['cpu_count']} cores; "
        f"micro-batching is {data['batching_speedup']:.2f}× the texts/s without it. Measured with {_machine(data)}",
    ]


def salience_avx2_fp32() -> list[str]:
    data = _load("salience_avx2_fp32")
    return _simple(
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
        data = _load(name)
        lines += _rows(
            [dict(r, layers=label) for r in data["rows"]],
            [
                ("layers tuned", "layers", None),
                ("schedule", "schedule", None),
                ("texts/s", "texts_per_s", 1),
                ("padding share", "padding_share", 2),
                ("speed-up", "speedup", 2),
            ],
        )
        lines += ["", f"Measured with {_machine(data)}", ""]
    return lines[:-1]


def shared_cache() -> list[str]:
    return _simple(
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


# --- quality ----------------------------------------------------------------------------------------------------

PEER_NAMES = {
    "tfidf": "TF-IDF + logistic",
    "setfit": "SetFit",
    "setfit_it2": "SetFit (2 pair iterations)",
    "encoder": "agilecls MiniLM fine-tuned",
    "encoder_s200": "agilecls MiniLM fine-tuned, 200 steps",
    "mpnet": "agilecls mpnet fine-tuned",
    "mpnet_s200": "agilecls mpnet fine-tuned, 200 steps",
    "encoder_cal": "MiniLM, calibrated (hold-out)",
    "encoder_cal5": "MiniLM, calibrated (5 folds)",
    "encoder_cal5e": "MiniLM, 5 fold models averaged",
    "stack_mpnet": "agilecls mpnet + SmolLM2 stacked",
}


def peers() -> list[str]:
    data = _load("peers")
    rows = [
        dict(
            r,
            name=PEER_NAMES.get(r["config"], r["config"]),
            seeds=len(r["seeds"]),
            score=r.get("roc_auc") if r["dataset"] == "ethos" else r.get("f1_macro"),
        )
        for r in sorted(data["summary"], key=lambda r: (r["dataset"], r["size"], r["config"]))
    ]
    lines = _rows(
        rows,
        [
            ("dataset", "dataset", None),
            ("labelled rows", "size", None),
            ("model", "name", None),
            ("seeds", "seeds", None),
            ("ROC-AUC (ETHOS) / macro F1 (tweets)", "score", 3),
            ("ECE", "ece", 3),
            ("fit s", "fit_seconds", 0),
        ],
    )
    lines += [
        "",
        *_rows(
            data["margins"],
            [
                ("dataset", "dataset", None),
                ("rows", "size", None),
                ("metric", "metric", None),
                ("encoders", "encoders", None),
                ("best agilecls", "best_agilecls", None),
                ("score", "best_agilecls_score", 3),
                ("peer", "peer", None),
                ("peer score", "peer_score", 3),
                ("paired margin", "paired_margin", 3),
                ("± std", "paired_margin_std", 3),
                ("fit time ratio", "fit_seconds_ratio", 2),
            ],
        ),
    ]
    return lines + ["", f"Means over the seeds, on the same rows for every model. Measured with {_machine(data)}"]


def _clinc(name: str) -> list[str]:
    data = _load(name)
    cols = [
        ("method", "method", None),
        ("accuracy", "acc", 3),
        ("ECE", "ece", 3),
        ("NLL", "nll", 3),
        ("OOS AUROC", "ood_auroc", 3),
        ("OOS AUPRC", "ood_auprc", 3),
        ("combined accuracy", "combined_acc", 3),
        ("OOS recall", "oos_recall", 3),
        ("fit s", "time_s", 0),
    ]
    return _rows(data["rows"] + data.get("reference_rows", []), cols) + [
        "",
        f"Encoder {data['encoder']}. Measured with {_machine(data)}",
    ]


def clinc_oos() -> list[str]:
    return _clinc("clinc_oos")


def clinc_oos_mpnet() -> list[str]:
    return _clinc("clinc_oos_mpnet")


def multilabel_ethos() -> list[str]:
    data = _load("multilabel_ethos")
    labels = data["dataset"]["labels"]
    cols = [
        ("model", "model", None),
        *[(lab, lab, 2) for lab in labels],
        ("macro F1", "macro_f1", 3),
        ("micro F1", "micro_f1", 3),
        ("Hamming loss", "hamming", 3),
        ("ROC-AUC", "roc_auc", 3),
        ("fit s", "fit_s", 0),
    ]
    return _rows(data["table"], cols) + ["", f"Per-label F1; cut {data['threshold']}. Measured with {_machine(data)}"]


def multilabel_lora_steps() -> list[str]:
    return _simple(
        "multilabel_lora_steps",
        [
            ("texts per step : learning rate", "config", None),
            ("steps", "steps", None),
            ("hold-out macro F1", "holdout_f1_macro", 3),
            ("hold-out macro ROC-AUC", "holdout_roc_auc_macro", 3),
            ("fit s", "fit_seconds", 0),
        ],
        key="table",
    )


def active_learning() -> list[str]:
    cols = [
        ("dataset", "dataset", None),
        ("metric", "metric", None),
        ("strategy", "strategy", None),
        *[(k, k, 3) for k in ("@16", "@32", "@64", "@128", "@256")],
        ("area", "area", 3),
        ("labels to reach random@256", "labels to reach random@max", None),
    ]
    return _simple("active_learning", cols, note="Means over the seeds.")


def active_learning_full_model() -> list[str]:
    return _simple(
        "active_learning_full_model",
        [
            ("labels chosen by", "labels chosen by", None),
            ("labels", "labels", None),
            ("ROC-AUC", "roc_auc", 3),
            ("F1", "f1", 3),
            ("accuracy", "accuracy", 3),
            ("fit s", "fit seconds", None),
        ],
    )


def prior_shift() -> list[str]:
    return _simple(
        "prior_shift",
        [
            ("shots/class", "shots", None),
            ("probabilities", "probabilities", None),
            ("seeds", "seeds", None),
            ("macro F1", "f1_macro", None),
            ("accuracy", "accuracy", None),
            ("ROC-AUC", "roc_auc", None),
            ("ECE", "ece", None),
            ("largest share error", "max_share_error", None),
        ],
        key="summary",
        note="Mean ± std over the seeds.",
    )


def ece_floor() -> list[str]:
    data = _load("ece_floor")
    rows = [dict(data["bootstrap"], rows=data["test_rows"], what="measured (90% bootstrap interval)")]
    rows += [dict(v, rows=int(k), what="perfectly calibrated, same probabilities") for k, v in data["perfect"].items()]
    return _rows(
        rows,
        [
            ("test rows", "rows", None),
            ("what", "what", None),
            ("ECE", "mean", 3),
            ("5%", "p05", 3),
            ("95%", "p95", 3),
            (f"share ≤ {data['target']}", "share_at_or_below_target", 3),
        ],
    ) + ["", f"Measured ECE on the {data['test_rows']} rows: {data['measured']:.3f}. Measured with {_machine(data)}"]


# --- defaults ---------------------------------------------------------------------------------------------------


def ethos_validation() -> list[str]:
    data = _load("ethos_validation")
    rows = []
    for name, run in data.items():
        if name.startswith("_"):
            continue
        last = run["epochs"][-1]
        rows.append(
            {
                "run": name,
                "epochs": last.get("epoch") or "–",
                "f1": last.get("raw_f1"),
                "roc": last.get("raw_roc_auc"),
                "s": run.get("seconds"),
            }
        )
    return _rows(
        rows,
        [
            ("run", "run", None),
            ("epochs", "epochs", None),
            ("F1 (hateful, at 0.5)", "f1", 3),
            ("ROC-AUC", "roc", 3),
            ("fit s", "s", 0),
        ],
    ) + [
        "",
        f"Trained on ETHOS training rows 0–600, scored on rows 600–800. {data['_note']['source']}. "
        f"Measured with {_machine(data)}",
    ]


def threshold_rules() -> list[str]:
    return _simple(
        "threshold_rules",
        [
            ("stack", "stack", None),
            ("hold-out rows", "hold-out", None),
            ("rule", "rule", None),
            ("splits", "splits", None),
            ("F1 mean", "F1 mean", 3),
            ("F1 std", "F1 std", 3),
            ("F1 5%", "F1 5%", 3),
            ("ROC-AUC", "ROC-AUC", 3),
            ("cut median", "cut median", 3),
            ("cut 5–95%", "cut 5-95%", None),
        ],
    )


def fewshot_steps() -> list[str]:
    return _simple(
        "fewshot_steps",
        [
            ("shots/class", "shots", None),
            ("seed", "seed", None),
            ("epochs", "epochs", None),
            ("steps", "steps", None),
            ("fit s", "fit_s", 0),
            ("macro F1", "f1_macro", 3),
            ("accuracy", "accuracy", 3),
            ("ECE", "ece", 3),
        ],
        note="MiniLM fine-tuned on the Spanish tweets, scored on 700 validation rows.",
    )


TABLES = {
    f.__name__: f
    for f in (
        distill,
        loop_decisions,
        loop_decisions_full,
        loop_rules,
        label_review_floor,
        load_times,
        throughput,
        zero_few_shot_tweets,
        zero_shot_scorers,
        call_sizes,
        inference_options,
        inference_options_avx512bf16,
        batch_predict,
        serve_load,
        salience_avx2_fp32,
        finetune_batching,
        shared_cache,
        peers,
        clinc_oos,
        clinc_oos_mpnet,
        multilabel_ethos,
        multilabel_lora_steps,
        active_learning,
        active_learning_full_model,
        prior_shift,
        ece_floor,
        ethos_validation,
        threshold_rules,
        fewshot_steps,
    )
}


CLI_PAGE = ROOT / "docs" / "reference" / "cli.md"
#: A markdown table row, and a decimal number outside code spans (a measurement unless a results block writes it).
TABLE_ROW = re.compile(r"^\|.*\|[ \t]*$", re.M)
DECIMAL = re.compile(r"\d\.\d")
CODE_SPAN = re.compile(r"`[^`]*`")


def render(text: str) -> str:
    """``text`` with every results block rewritten from bench/results.

    Raises
    ------
    KeyError
        When a block names no table in :data:`TABLES`.
    """

    def fill(match: re.Match) -> str:
        name = match.group(2)
        if name not in TABLES:
            raise KeyError(f"no table named {name!r} in bench.docs_tables.TABLES")
        return match.group(1) + "\n".join(TABLES[name]()) + "\n" + match.group(4)

    return BLOCK.sub(fill, text)


def tables_outside_blocks(text: str) -> list[str]:
    """Table rows with decimal numbers that no results block writes (numbers copied by hand)."""
    rows = TABLE_ROW.findall(BLOCK.sub("", text))
    return [row for row in rows if DECIMAL.search(CODE_SPAN.sub("", row))]


def cli_reference() -> str:
    """The command-line reference page, written from the Typer app (every command and option)."""
    import click
    import typer
    from typer.cli import get_docs_for_click

    from agilecls.cli import app

    command = typer.main.get_command(app)
    ctx = click.Context(command, info_name="agilecls", obj={})
    body = get_docs_for_click(obj=command, ctx=ctx, name="agilecls", title="Command line")
    head = "<!-- written by python -m bench.docs_tables from the Typer app (agilecls.cli); do not edit -->\n\n"
    return head + body.strip() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    pages = {path: render(path.read_text()) for path in DOCS if path != CLI_PAGE}
    pages[CLI_PAGE] = cli_reference()
    for path, new in pages.items():
        if not path.exists() or new != path.read_text():
            stale.append(path)
            if not args.check:
                path.write_text(new)
    print(("out of date: " if args.check else "rewrote: ") + (", ".join(map(str, stale)) or "nothing"))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
