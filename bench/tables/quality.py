"""Tables of quality and of how the defaults were chosen (docs/explanation/benchmarks.md, defaults.md, how-to pages)."""

from __future__ import annotations

from .common import load, machine, rows_table, simple

__all__ = [
    "peers",
    "clinc_oos",
    "clinc_oos_mpnet",
    "multilabel_ethos",
    "multilabel_lora_steps",
    "active_learning",
    "active_learning_full_model",
    "prior_shift",
    "ece_floor",
    "ethos_validation",
    "threshold_rules",
    "fewshot_steps",
]


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
    data = load("peers")
    rows = [
        dict(
            r,
            name=PEER_NAMES.get(r["config"], r["config"]),
            seeds=len(r["seeds"]),
            score=r.get("roc_auc") if r["dataset"] == "ethos" else r.get("f1_macro"),
        )
        for r in sorted(data["summary"], key=lambda r: (r["dataset"], r["size"], r["config"]))
    ]
    lines = rows_table(
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
        *rows_table(
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
    return lines + ["", f"Means over the seeds, on the same rows for every model. Measured with {machine(data)}"]


def _clinc(name: str) -> list[str]:
    data = load(name)
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
    return rows_table(data["rows"] + data.get("reference_rows", []), cols) + [
        "",
        f"Encoder {data['encoder']}. Measured with {machine(data)}",
    ]


def clinc_oos() -> list[str]:
    return _clinc("clinc_oos")


def clinc_oos_mpnet() -> list[str]:
    return _clinc("clinc_oos_mpnet")


def multilabel_ethos() -> list[str]:
    data = load("multilabel_ethos")
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
    return rows_table(data["table"], cols) + [
        "",
        f"Per-label F1; cut {data['threshold']}. Measured with {machine(data)}",
    ]


def multilabel_lora_steps() -> list[str]:
    return simple(
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
    return simple("active_learning", cols, note="Means over the seeds.")


def active_learning_full_model() -> list[str]:
    return simple(
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
    return simple(
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
    data = load("ece_floor")
    rows = [dict(data["bootstrap"], rows=data["test_rows"], what="measured (90% bootstrap interval)")]
    rows += [dict(v, rows=int(k), what="perfectly calibrated, same probabilities") for k, v in data["perfect"].items()]
    return rows_table(
        rows,
        [
            ("test rows", "rows", None),
            ("what", "what", None),
            ("ECE", "mean", 3),
            ("5%", "p05", 3),
            ("95%", "p95", 3),
            (f"share ≤ {data['target']}", "share_at_or_below_target", 3),
        ],
    ) + ["", f"Measured ECE on the {data['test_rows']} rows: {data['measured']:.3f}. Measured with {machine(data)}"]


# --- defaults ---


def ethos_validation() -> list[str]:
    data = load("ethos_validation")
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
    return rows_table(
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
        f"Measured with {machine(data)}",
    ]


def threshold_rules() -> list[str]:
    return simple(
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
    return simple(
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
