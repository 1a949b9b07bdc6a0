"""ETHOS learning curve of LoRA-tuned AgileClassifiers: F1 / ROC-AUC on the 198 test rows after each
epoch, for the first 200 / 400 / 800 training rows of the seed's split, on the bundled models.

Nothing is selected on the test rows: every epoch of a fixed schedule is reported. The frozen lower
layers' outputs are cached once per model and shared by all training sizes (the 200 rows are the
first of the 800), which the per-epoch times below therefore exclude (reported separately).

    python bench/ethos_learning_curve.py --models smollm2-135m-instruct --sizes 200 400 800 --epochs 4
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

from agilecls import AgileClassifier  # noqa: E402
from agilecls.classifier import CONTENT_FREE_TEXTS  # noqa: E402
from agilecls.datasets import load_ethos  # noqa: E402
from agilecls.metrics import classification_metrics, format_table  # noqa: E402
from agilecls.plots import learning_curve_figure  # noqa: E402
from agilecls.validation import softmax  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SEED_RESULTS = {200: {"f1": 0.80, "roc_auc": 0.78}, 800: {"f1": 0.84, "roc_auc": 0.88}}


def run(model: str, size: int, epochs: int, train, test, store: dict, args) -> list[dict]:
    rows = []
    clf = AgileClassifier(labels=train.labels, model=model, tuning="lora", instructions=train.meta["instructions"],
                          epochs=epochs, top_layers=args.top_layers, target_modules=args.target_modules,
                          loss=args.loss, rank=args.rank, learning_rate=args.learning_rate, seed=args.seed,
                          progress=args.progress)
    start = time.perf_counter()

    def on_epoch(info, c):
        t0 = time.perf_counter()
        raw = c.raw_scores(test.texts)
        bias = np.log(softmax(c.raw_scores(list(CONTENT_FREE_TEXTS))).mean(0))
        eval_s = time.perf_counter() - t0
        row = {"model": model, "train_size": size, "epoch": info.epoch, "train_loss": info.train_loss,
               "epoch_seconds": info.seconds, "eval_seconds": eval_s}
        for name, proba in (("", softmax(raw - bias)), ("raw_", softmax(raw))):
            m = classification_metrics(test.y, proba, test.labels, positive_label="Negative")
            row.update({f"{name}f1": m["f1"], f"{name}roc_auc": m["roc_auc"], f"{name}accuracy": m["accuracy"]})
        rows.append(row)
        print(format_table([{k: row[k] for k in ("model", "train_size", "epoch", "train_loss", "f1", "roc_auc",
                                                  "raw_f1", "epoch_seconds")}]), flush=True)

    clf.fit(train.texts[:size], train.y[:size], callback=on_epoch, lower_cache=store)
    total = time.perf_counter() - start
    for r in rows:
        r["run_seconds"] = total
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma-3-270m"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[200, 400, 800])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--top-layers", type=int, default=4)
    parser.add_argument("--target-modules", default="attention")
    parser.add_argument("--loss", default="label")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "ethos_learning_curve"))
    parser.add_argument("--report-only", nargs="*", help="Only print and plot saved JSON results (merged).")
    args = parser.parse_args()
    if args.report_only is not None:
        rows = [r for f in args.report_only for r in json.loads(Path(f).read_text())["rows"]]
        return report(rows, args.epochs, Path(args.out))
    torch.set_num_threads(2)
    train, test = load_ethos("train"), load_ethos("test")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    all_rows: list[dict] = []
    for model in args.models:
        store: dict = {}
        for size in args.sizes:
            all_rows += run(model, size, args.epochs, train, test, store, args)
            out.with_suffix(".json").write_text(json.dumps({"config": vars(args), "seed_gemma_2b": SEED_RESULTS,
                                                            "rows": all_rows}, indent=2))
    report(all_rows, args.epochs, out)


def report(all_rows: list[dict], epochs: int, out: Path) -> None:
    """Print the final-epoch table and draw F1 and ROC-AUC against epochs, one line per model and size."""
    import matplotlib.pyplot as plt

    final = [r for r in all_rows if r["epoch"] == max(x["epoch"] for x in all_rows
                                                       if x["model"] == r["model"] and x["train_size"] == r["train_size"])]
    print("\nLast epoch (seed: 2.5B Gemma LoRA on GPU: F1 0.80 / ROC-AUC 0.78 at 200, 0.84 / 0.88 at 800)")
    print(format_table(final, ["model", "train_size", "epoch", "f1", "roc_auc", "accuracy", "raw_f1", "raw_roc_auc",
                               "epoch_seconds", "run_seconds"]))
    series = sorted({(r["model"], r["train_size"]) for r in all_rows})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("f1", "roc_auc")):
        sub = learning_curve_figure({f"{m.split('-')[0]} n={n}": [(r["epoch"], r[metric]) for r in all_rows
                                                                 if (r["model"], r["train_size"]) == (m, n)]
                                     for m, n in series}, metric)
        for line in sub.axes[0].get_lines():
            ax.plot(*line.get_data(), marker="o", label=line.get_label())
        plt.close(sub)
        for n, ref in SEED_RESULTS.items():
            ax.axhline(ref[metric], ls=":", c="grey")
            ax.annotate(f"seed 2.5B n={n}", (1, ref[metric]), fontsize=7, color="grey")
        ax.set(xlabel="epoch", ylabel=metric, title=f"ETHOS test {metric} vs. epochs")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)

if __name__ == "__main__":
    main()
