"""What sharing the frozen lower layers' cache saves when a LoRA-tuned model is calibrated by
k-fold cross-fitting: ``CalibratedClassifier(AgileClassifier(tuning="lora"), cv=k)`` fits k fold
models and a final one. Each fit of the bundled SmolLM2 adapts only its top 4 layers, so the
lower layers' output for a prompt is the same in every fit; with one shared cache (the default)
they run once per prompt, without it (``lower_cache=None``) once per fit.

Both variants run in this process, one after the other, on the same ETHOS training rows; the table
gives the wall time, the lower-layer rows run, and the out-of-fold log loss and test ROC-AUC of
each (they should agree: the same computation, ordered differently). The test rows are scored once
per variant and choose nothing.

    python -m bench.speed.shared_cache --rows 200 --epochs 2 --cv 3
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

from agilecls import AgileClassifier, CalibratedClassifier
from agilecls.datasets import load_ethos
from agilecls.evaluation.metrics import format_table
from agilecls.lm.layer_split import LayerSplit
from bench.common import RESULTS, bench_parser, setup, write_results


def count_lower_rows() -> list[int]:
    """Record the number of rows of every lower-layer batch (the real computation still runs)."""
    counts: list[int] = []
    real = LayerSplit._lower_batch

    def counting(self, prefix, rows, cache):
        counts.append(len(rows))
        return real(self, prefix, rows, cache)

    LayerSplit._lower_batch = counting
    return counts


def main(argv=None) -> None:
    parser = bench_parser(__doc__, out=str(RESULTS / "shared_cache.json"), threads=2)
    parser.add_argument("--rows", type=int, default=200, help="ETHOS training rows (the first of the seeded split)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cv", type=int, default=3)
    args = setup(parser.parse_args(argv))
    train, test = load_ethos("train"), load_ethos("test")
    texts, y = list(train.texts[: args.rows]), list(train.y[: args.rows])
    counts = count_lower_rows()
    rows = []
    for variant, fit_params in (("shared cache (default)", {}), ("a cache per fit", {"lower_cache": None})):
        counts.clear()
        clf = CalibratedClassifier(AgileClassifier(labels=train.labels, tuning="lora", epochs=args.epochs,
                                                   instructions=train.meta["instructions"], progress=False),
                                   cv=args.cv)
        start = time.perf_counter()
        clf.fit(texts, y, **fit_params)
        seconds = time.perf_counter() - start
        y_idx = np.array([list(clf.classes_).index(v) for v in y])
        positive = list(clf.classes_).index(train.meta["positive_label"])
        test_p = clf.predict_proba(list(test.texts))[:, positive]
        rows.append({"variant": variant, "fits": args.cv + 1, "lower_rows_run": sum(counts),
                     "fit_s": round(seconds, 1), "oof_log_loss": log_loss(y_idx, clf.oof_proba_),
                     "test_roc_auc": roc_auc_score(np.array(test.y) == train.meta["positive_label"], test_p)})
        print(format_table(rows[-1:]), flush=True)
    print(format_table(rows))
    write_results("shared_cache", {"rows": args.rows, "epochs": args.epochs, "cv": args.cv, "table": rows}, args.out,
                  argv=argv)


if __name__ == "__main__":
    main()
