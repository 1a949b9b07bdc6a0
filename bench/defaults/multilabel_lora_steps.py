"""How many ETHOS comments a multi-label LoRA step should take, chosen on training rows only.

A multi-label LoRA step takes ``train_batch_size`` whole comments, each with its yes/no question
for every label (8 here), so the top layers run each comment once per step. This script fits
``AgileClassifier(multilabel=True, tuning="lora")`` (the package defaults otherwise, the ETHOS
multi-label instructions) on a seeded 80% of the 346 training comments for each
(``train_batch_size``, ``learning_rate``) given, and scores macro F1 (each label at p >= 0.5) and
macro ROC-AUC on the other 20% (the same hold-out as ``bench.quality.multilabel_ethos`` uses to choose its
settings). The test comments are not read. All fits share one cache of the frozen lower layers, so
only the first pays for it (its fit time includes that pass).

    python -m bench.defaults.multilabel_lora_steps --configs 4:2e-3 1:2e-3 4:6e-3
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from agilecls import AgileClassifier
from agilecls.datasets import load_ethos_multilabel
from agilecls.evaluation.metrics import format_table, multilabel_metrics
from agilecls.validation import check_multilabel_y
from bench.common import RESULTS, bench_parser, load_previous, setup, write_results


def parse_config(text: str) -> tuple[int, float]:
    batch, _, rate = text.partition(":")
    return int(batch), float(rate)


def main(argv=None) -> None:
    parser = bench_parser(__doc__, out=str(RESULTS / "multilabel_lora_steps.json"), threads=2, seed=0, resume=True)
    parser.add_argument("--configs", nargs="+", default=["4:2e-3", "1:2e-3", "4:6e-3"],
                        help="train_batch_size:learning_rate pairs")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--progress", action="store_true")
    args = setup(parser.parse_args(argv))
    train = load_ethos_multilabel("train")
    Y, labels = check_multilabel_y(train.y, train.labels)
    fit_rows, hold_rows = train_test_split(np.arange(len(train.texts)), test_size=0.2, random_state=args.seed)
    fit_texts, hold_texts = [train.texts[i] for i in fit_rows], [train.texts[i] for i in hold_rows]
    out = Path(args.out)
    results = load_previous(out, args).get("results", {})
    lower_cache: dict = {}
    for text in args.configs:
        batch, rate = parse_config(text)
        print(f"--- train_batch_size {batch}, learning_rate {rate:g}", flush=True)
        clf = AgileClassifier(labels=labels, tuning="lora", multilabel=True, epochs=args.epochs,
                              train_batch_size=batch, learning_rate=rate, instructions=train.meta["instructions"],
                              seed=args.seed, progress=args.progress)
        start = time.perf_counter()
        clf.fit(fit_texts, Y[fit_rows], lower_cache=lower_cache)
        seconds = time.perf_counter() - start
        metrics = multilabel_metrics(Y[hold_rows], clf.predict_proba(hold_texts), labels)
        results[f"{batch}:{rate:g}"] = {
            "train_batch_size": batch, "learning_rate": rate, "epochs": args.epochs,
            "steps": int(np.ceil(len(fit_rows) / batch)) * args.epochs, "fit_seconds": round(seconds, 1),
            "holdout_f1_macro": metrics["f1_macro"], "holdout_roc_auc_macro": metrics["roc_auc_macro"],
            "train_loss": [round(h["train_loss"], 4) for h in clf.history_]}
        rows = [{"config": k, **{m: v[m] for m in ("steps", "holdout_f1_macro", "holdout_roc_auc_macro",
                                                    "fit_seconds")}} for k, v in results.items()]
        write_results(out.stem, {"dataset": {"fit": len(fit_rows), "holdout": len(hold_rows), "labels": labels,
                                             "split": f"train_test_split(test_size=0.2, random_state={args.seed}) "
                                                      "of the training comments"},
                                 "note": "the first config's fit includes caching the lower layers for all",
                                 "table": rows, "results": results}, out, argv=argv)
        print(format_table(rows), flush=True)


if __name__ == "__main__":
    main()
