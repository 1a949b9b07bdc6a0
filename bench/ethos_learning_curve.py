"""ETHOS learning curve: a LoRA-tuned AgileClassifier, a sentence-encoder logistic head, and their
soft-voting EnsembleClassifier; F1 (hateful class) and ROC-AUC on the 198 test rows after each
tuning epoch, for the first 200 / 400 / 800 training rows of the seed's split.

Each run fits one real ``EnsembleClassifier`` (encoder member first, then the LLM member, whose
per-epoch callback scores the test rows alone and in the ensemble). Nothing is selected on the
test rows: every epoch of a fixed schedule is reported. ``run_seconds`` is the whole fit of a
run (encoder embedding + head, LoRA tuning incl. caching the frozen lower layers), without the
per-epoch test scoring; the lower layers' cache is rebuilt for every run, so each run is timed
as a user would run it.

    python bench/ethos_learning_curve.py --models smollm2-135m-instruct --sizes 200 400 800 \
        --epochs 6 --learning-rate 2e-3 --encoder mpnet
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from agilecls import AgileClassifier, EnsembleClassifier  # noqa: E402
from agilecls.datasets import load_ethos  # noqa: E402
from agilecls.encoder_classifier import EncoderClassifier  # noqa: E402
from agilecls.ensemble import soft_vote  # noqa: E402
from agilecls.metrics import classification_metrics, format_table  # noqa: E402
from agilecls.plots import learning_curve_figure  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SEED_RESULTS = {200: {"f1": 0.80, "roc_auc": 0.78}, 800: {"f1": 0.84, "roc_auc": 0.88}}
TARGETS = {200: {"f1": 0.80, "roc_auc": 0.85}, 800: {"f1": 0.85, "roc_auc": 0.90}}


def scores(test, proba) -> dict:
    m = classification_metrics(test.y, proba, test.labels, positive_label="Negative")
    return {"f1": m["f1"], "roc_auc": m["roc_auc"], "accuracy": m["accuracy"]}


def run(model: str, size: int, train, test, args) -> list[dict]:
    llm = AgileClassifier(labels=train.labels, model=model, tuning="lora", instructions=train.meta["instructions"],
                          epochs=args.epochs, top_layers=args.top_layers, target_modules=args.target_modules,
                          loss=args.loss, rank=args.rank, learning_rate=args.learning_rate,
                          lr_schedule=args.lr_schedule, seed=args.seed, progress=args.progress)
    members = [("encoder", EncoderClassifier(args.encoder, head="logistic", C=args.C))] if args.encoder else []
    ens = EnsembleClassifier(members + [("llm", llm)]) if members else None
    rows, scoring = [], [0.0]
    enc_proba = {}

    def on_epoch(info, clf):
        t0 = time.perf_counter()
        proba = clf.predict_proba(test.texts)
        row = {"model": model, "encoder": args.encoder, "train_size": size, "epoch": info.epoch,
               "train_loss": info.train_loss, "epoch_seconds": info.seconds}
        row.update({f"llm_{k}": v for k, v in scores(test, proba).items()})
        if ens is not None:
            if not enc_proba:
                enc_proba["p"] = ens.named_estimators_["encoder"].predict_proba(test.texts)
            row.update({f"encoder_{k}": v for k, v in scores(test, enc_proba["p"]).items()})
            row.update(scores(test, soft_vote([enc_proba["p"], proba])))
        else:
            row.update({k: row[f"llm_{k}"] for k in ("f1", "roc_auc", "accuracy")})
        rows.append(row)
        scoring[0] += time.perf_counter() - t0
        print(format_table([{k: row.get(k) for k in ("model", "train_size", "epoch", "train_loss", "llm_f1",
                                                     "llm_roc_auc", "f1", "roc_auc", "epoch_seconds")}]), flush=True)

    start = time.perf_counter()
    if ens is not None:
        ens.fit(train.texts[:size], train.y[:size], llm={"callback": on_epoch})
        final = ens.predict_proba(test.texts)
    else:
        final = llm.fit(train.texts[:size], train.y[:size], callback=on_epoch).predict_proba(test.texts)
    total = time.perf_counter() - start - scoring[0]
    # the saved estimator's own predictions are what the last epoch's row reported
    assert abs(scores(test, final)["roc_auc"] - rows[-1]["roc_auc"]) < 1e-9
    for r in rows:
        r["run_seconds"] = total
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma-3-270m"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[200, 400, 800])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--top-layers", type=int, default=4)
    parser.add_argument("--target-modules", default="attention")
    parser.add_argument("--loss", default="label")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--lr-schedule", default="linear")
    parser.add_argument("--encoder", default="mpnet", help="sentence encoder of the ensemble ('' = LLM alone)")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the encoder's logistic head")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "ethos_learning_curve"))
    parser.add_argument("--report-only", nargs="*", help="Only print and plot saved JSON results (merged).")
    args = parser.parse_args()
    if args.report_only is not None:
        rows = [r for f in args.report_only for r in json.loads(Path(f).read_text())["rows"]]
        return report(rows, Path(args.out))
    torch.set_num_threads(args.threads)
    train, test = load_ethos("train"), load_ethos("test")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    all_rows: list[dict] = []
    for model in args.models:
        for size in args.sizes:
            all_rows += run(model, size, train, test, args)
            out.with_suffix(".json").write_text(json.dumps({"config": vars(args), "seed_gemma_2b": SEED_RESULTS,
                                                            "targets": TARGETS, "rows": all_rows}, indent=2))
    report(all_rows, out)


def report(all_rows: list[dict], out: Path) -> None:
    """Print the last-epoch table and draw F1 and ROC-AUC against epochs, one line per model and size."""
    import matplotlib.pyplot as plt

    last = {}
    for r in all_rows:
        last[(r["model"], r["train_size"])] = r
    print("\nLast epoch (seed: 2.5B Gemma LoRA on GPU: F1 0.80 / ROC-AUC 0.78 at 200, 0.84 / 0.88 at 800; "
          "targets: 0.80 / 0.85 at 200, 0.85 / 0.90 at 800)")
    print(format_table(list(last.values()), ["model", "encoder", "train_size", "epoch", "llm_f1", "llm_roc_auc",
                                             "encoder_f1", "encoder_roc_auc", "f1", "roc_auc", "accuracy",
                                             "epoch_seconds", "run_seconds"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, metric in zip(axes, ("f1", "roc_auc")):
        curves, styles = {}, {}
        for model, size in sorted(last):
            rows = [r for r in all_rows if (r["model"], r["train_size"]) == (model, size)]
            short = f"{model.split('-')[0]} n={size}"
            encoder = rows[0].get("encoder")
            curves[f"{short} + {encoder}" if encoder else short] = [(r["epoch"], r[metric]) for r in rows]
            if encoder:
                curves[f"{short} alone"] = [(r["epoch"], r[f"llm_{metric}"]) for r in rows]
                styles[f"{short} alone"] = {"ls": "--", "alpha": 0.5}
        refs = {f"seed 2.5B n={n}": v[metric] for n, v in SEED_RESULTS.items()}
        learning_curve_figure(curves, metric, ax=ax, references=refs, styles=styles)
        ax.set_title(f"ETHOS test {metric} vs. epochs")
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
