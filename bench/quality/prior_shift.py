"""Class shares of the unlabelled texts: calibrated probabilities before and after
``CalibratedClassifier.adapt_priors`` on the few-shot tweets.

Few-shot labelling draws the same number of texts from every class (8 / 16 / 32 per class here),
while the Spanish marketing tweets arrive unevenly (test shares from 6.4% telefonía to 21.6%
supermercados). A classifier calibrated on the balanced rows answers as if every class had a share
of 1/7. ``adapt_priors`` estimates the shares of unlabelled texts by EM over the calibrated
probabilities (Saerens et al., 2002) and moves the probabilities to them.

Per seed and size: ``CalibratedClassifier(encoder_member("minilm", "finetuned", seed), cv=5,
ensemble=True)`` (``encoder_cal5e`` of ``bench.quality.peers``) is fitted on the labelled rows, then the
test rows (1,242) are scored once and the same probabilities are reported three ways:

- ``calibrated``: as fitted (balanced training shares);
- ``adapted``: after ``adapt_priors`` on ``--pool`` unlabelled texts of the *train* split (drawn
  with the seed from the rows not labelled; their labels are never read);
- ``true shares (reference)``: moved to the test rows' true class shares, which no user has: the
  ceiling of the adaptation, not a model.

Measured: macro F1, accuracy, ROC-AUC (one-vs-rest macro), ECE (15 bins), the estimated shares and
their largest error against the pool's true shares. The test rows choose nothing.

Example::

    python -m bench.quality.prior_shift --shots 8 --seeds 0 1 2
"""

from __future__ import annotations

import os
import time

import numpy as np

from agilecls import CalibratedClassifier
from agilecls.calibration.priors import shift_priors
from agilecls.encoders.members import encoder_member
from agilecls.evaluation.metrics import classification_metrics, format_table
from bench.common import RESULTS, bench_parser, seed_everything, setup, write_results
from bench.quality.peers import in_order, load, training_rows

METRICS = ("f1_macro", "accuracy", "roc_auc", "ece")


def shares(y: list[str], labels: list[str]) -> np.ndarray:
    return np.array([y.count(c) for c in labels], dtype=np.float64) / len(y)


def run(shots: int, seed: int, pool_size: int, train, test) -> list[dict]:
    labels = list(train.labels)
    rows = training_rows("tweets", train, shots, seed)
    unlabelled = np.setdiff1d(np.arange(len(train)), rows)
    pool = np.random.default_rng(seed).choice(unlabelled, size=min(pool_size, len(unlabelled)), replace=False)
    seed_everything(seed)
    start = time.perf_counter()
    clf = CalibratedClassifier(encoder_member("minilm", "finetuned", seed), cv=5, ensemble=True, random_state=seed)
    clf.fit([train.texts[i] for i in rows], [train.y[i] for i in rows])
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    clf.adapt_priors([train.texts[i] for i in pool])
    adapt_seconds = time.perf_counter() - start
    estimated = in_order(clf.priors_[None, :], clf.classes_, labels)[0]
    pool_true = shares([train.y[i] for i in pool], labels)
    trained = in_order(clf.class_shares_[None, :], clf.classes_, labels)[0]
    adapted = in_order(clf.predict_proba(test.texts), clf.classes_, labels)  # the test rows, once
    calibrated = shift_priors(adapted, estimated, trained)  # Bayes' rule back to the training shares
    reference = shift_priors(calibrated, trained, shares(list(test.y), labels))
    out = []
    for name, proba in (("calibrated", calibrated), ("adapted", adapted), ("true shares (reference)", reference)):
        m = classification_metrics(test.y, proba, test.labels)
        out.append({"shots": shots, "seed": seed, "probabilities": name, **{k: m.get(k) for k in METRICS},
                    "fit_seconds": fit_seconds, "adapt_seconds": adapt_seconds, "pool": len(pool),
                    "estimated_shares": dict(zip(labels, estimated.round(4).tolist(), strict=True)),
                    "pool_shares": dict(zip(labels, pool_true.round(4).tolist(), strict=True)),
                    "max_share_error": float(np.abs(estimated - pool_true).max()),
                    "em_iterations": int(clf.priors_iterations_), "calibration": clf.calibrator_.name})
    return out


def main(argv=None) -> dict:
    parser = bench_parser(__doc__, out=str(RESULTS / "prior_shift.json"), threads=2, seeds=[0, 1, 2])
    parser.add_argument("--shots", nargs="+", type=int, default=[8], help="labelled examples per class")
    parser.add_argument("--pool", type=int, default=1000, help="unlabelled train-split texts for adapt_priors")
    args = setup(parser.parse_args(argv))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    train, test = load("tweets")
    results = []
    for shots in args.shots:
        for seed in args.seeds:
            results += run(shots, seed, args.pool, train, test)
            write_results("prior_shift", {"results": results}, args.out, argv=argv)
            print(format_table([{k: v for k, v in r.items() if not isinstance(v, dict)} for r in results[-3:]]),
                  flush=True)
    summary = []
    for shots in args.shots:
        for name in ("calibrated", "adapted", "true shares (reference)"):
            part = [r for r in results if r["shots"] == shots and r["probabilities"] == name]
            summary.append({"shots": shots, "probabilities": name, "seeds": len(part),
                            **{k: f"{np.mean([r[k] for r in part]):.3f}±{np.std([r[k] for r in part], ddof=1):.3f}"
                               if len(part) > 1 else f"{part[0][k]:.3f}" for k in METRICS + ("max_share_error",)}})
    print(format_table(summary))
    write_results("prior_shift", {"results": results, "summary": summary}, args.out, argv=argv)
    return {"results": results, "summary": summary}


if __name__ == "__main__":
    main()
