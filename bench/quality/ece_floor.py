"""How much ECE a test set of a given size shows by chance: the 15-bin ECE a *perfectly calibrated*
classifier would measure, next to the ECE a saved classifier measured.

ECE sums, over confidence bins, the gap between confidence and accuracy. On a small test set each
bin holds few rows, so the accuracy in a bin is noisy and the sum is positive even when the
probabilities are exactly right. This script takes a saved classifier's test probabilities and:

- ``measured``: its ECE on the test rows, with a 90% bootstrap interval (rows resampled);
- ``perfect``: the ECE of a classifier whose probabilities are these and exactly right: labels
  drawn from the probabilities themselves (``y ~ Categorical(p)``), ECE computed, repeated; the mean,
  the 95th percentile and the share of draws at or below ``--target``;
- the same ``perfect`` ECE for larger test sets with the same distribution of probabilities (rows
  of probabilities resampled to n), to show how many test rows a target needs before it can be
  told apart from chance.

Nothing is fitted; the test rows are only scored once.

    python -m bench.quality.ece_floor --model models/demo-stack --data ethos
"""

from __future__ import annotations

import sys

import numpy as np

from agilecls.datasets import load_dataset
from agilecls.evaluation.metrics import expected_calibration_error, format_table
from agilecls.persistence import load_classifier
from bench.common import RESULTS, bench_parser, setup, timed, write_results


def perfect_ece(proba: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """ECE of ``draws`` label sets drawn from ``proba`` itself (a perfectly calibrated classifier)."""
    cumulative = proba.cumsum(axis=1)
    out = np.empty(draws)
    for i in range(draws):
        y = (rng.random((len(proba), 1)) > cumulative).sum(axis=1).clip(0, proba.shape[1] - 1)
        out[i] = expected_calibration_error(y, proba)
    return out


def summary(values: np.ndarray, target: float) -> dict:
    return {"mean": float(values.mean()), "p05": float(np.quantile(values, 0.05)),
            "p95": float(np.quantile(values, 0.95)), "share_at_or_below_target": float((values <= target).mean())}


def main(argv=None) -> int:
    ap = bench_parser(__doc__.split("\n\n")[0], out=str(RESULTS / "ece_floor.json"), seed=0)
    ap.add_argument("--model", default="models/demo-stack", help="a saved agilecls classifier")
    ap.add_argument("--data", default="ethos", help="dataset name or file, scored on its test split")
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--sizes", nargs="+", type=int, default=[1000, 5000], help="larger test sets to compare")
    ap.add_argument("--target", type=float, default=0.05)
    args = setup(ap.parse_args(argv))
    rng = np.random.default_rng(args.seed)

    test = load_dataset(args.data, split="test")
    clf = load_classifier(args.model)
    scored = timed(lambda: np.asarray(clf.predict_proba(test.texts), dtype=np.float64))
    proba, score_seconds = scored.result, scored.best
    index = {str(c): i for i, c in enumerate(clf.classes_)}
    y = np.array([index[str(v)] for v in test.y])
    measured = expected_calibration_error(y, proba)
    boot = np.array([expected_calibration_error(y[r], proba[r])
                     for r in (rng.integers(0, len(y), len(y)) for _ in range(args.draws))])

    rows = [{"test rows": len(y), "what": "measured (90% bootstrap interval)", "ECE": measured,
             "p05": float(np.quantile(boot, 0.05)), "p95": float(np.quantile(boot, 0.95)),
             f"share <= {args.target}": float((boot <= args.target).mean())}]
    perfect = {}
    for n in [len(y), *args.sizes]:
        p = proba if n == len(y) else proba[rng.integers(0, len(y), n)]
        s = summary(perfect_ece(p, args.draws, rng), args.target)
        perfect[n] = s
        rows.append({"test rows": n, "what": "perfectly calibrated, same probabilities", "ECE": s["mean"],
                     "p05": s["p05"], "p95": s["p95"], f"share <= {args.target}": s["share_at_or_below_target"]})
    table = format_table(rows)
    print(f"{args.model} on {args.data} test ({len(y)} rows, scored in {score_seconds:.0f} s); 15-bin top-label "
          f"ECE, {args.draws} draws each\n")
    print(table)
    write_results("ece_floor", {"model": args.model, "data": args.data, "test_rows": len(y), "draws": args.draws,
                                "target": args.target, "measured": measured, "bootstrap": summary(boot, args.target),
                                "perfect": {str(k): v for k, v in perfect.items()}, "table": table},
                  args.out, argv=argv)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
