"""Which decision rule and which class-share estimate the loop's fast model should use, chosen on
validation rows: the pool's texts the simulated annotator has not labelled (their true labels are
known to the script, never to the project). Test rows are not read.

    python -m bench.defaults.loop_rules    # ETHOS (15% hateful) and the tweets' smallest class, 3 seeds

The projects and rounds are those of ``bench.quality.loop_decisions`` (the default strategy and random).
After each round, from the fast model's calibrated probabilities:

- class-share estimates of the unlabelled pool: EM run to convergence (Saerens et al. 2002) and
  its first step (the mean calibrated probability), against the true share;
- ``pool_share``: flag the pool's estimated share of the class (the project's estimate, which
  pools the model's mean probability with the random audit texts), most probable first;
- F1 of the rare class on the validation rows for each rule, as a share of the best cut there
  (the oracle): ``expected_f1`` on the pool under each estimate, ``f1`` (the best F1 on the labelled
  texts out of fold) and ``f1`` with the labelled texts weighted to the pool's estimated shares.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, precision_recall_curve

from agilecls.calibration.priors import estimate_priors, shift_priors
from agilecls.calibration.thresholds import expected_f1_cut
from agilecls.evaluation.metrics import format_table
from agilecls.loop.decisions import MIN_PER_CLASS_TO_BLEND, share_cut
from bench.common import bench_parser, setup, write_results
from bench.quality.loop_decisions import load, make_project, positive_of

LABEL_COUNTS = (32, 64, 128, 256)


def best_cut(p: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> float:
    """The cut on ``p`` with the best (weighted) F1 of ``y``."""
    order = np.argsort(-p)
    p, y = p[order], y[order]
    w = np.ones(len(y)) if weight is None else weight[order]
    tp, fp = np.cumsum(w * y), np.cumsum(w * (1 - y))
    return float(p[int(np.argmax(2 * tp / (tp + fp + (w * y).sum())))])


def rules(fit, pos: int, popu: np.ndarray, val: np.ndarray, y_val: np.ndarray) -> dict:
    """Each rule's validation F1 and each estimate's class share."""
    raw, shares = fit.raw, fit.train_shares
    y_oof = (fit.y_idx == pos).astype(int)
    estimates = {"em": estimate_priors(raw[popu], shares)[0], "mean_p": raw[popu].mean(axis=0)}
    out = {f"share_{k}": float(v[pos]) for k, v in estimates.items()}
    out["share_true"] = float(y_val.mean())
    for name, priors in estimates.items():
        q = shift_priors(raw, shares, priors)[:, pos]
        out[f"expected_f1 ({name})"] = f1_score(y_val, q[val] >= expected_f1_cut(q[popu]))
        w = np.where(y_oof == 1, priors[pos] / shares[pos], (1 - priors[pos]) / (1 - shares[pos]))
        out[f"f1 weighted ({name})"] = f1_score(y_val, raw[val, pos] >= best_cut(fit.oof_raw[:, pos], y_oof, w))
    out["f1"] = f1_score(y_val, raw[val, pos] >= best_cut(fit.oof_raw[:, pos], y_oof))
    shifted = fit.proba[:, pos]  # under the project's own estimate of the pool's shares
    share = share_cut(shifted[popu], "x").threshold
    out["pool_share"] = f1_score(y_val, shifted[val] >= share)
    out["f1, pool_share below 5 positives"] = out["f1"] if y_oof.sum() >= MIN_PER_CLASS_TO_BLEND else out["pool_share"]
    precision, recall, _ = precision_recall_curve(y_val, raw[val, pos])
    out["oracle"] = float(np.nanmax(2 * precision * recall / np.clip(precision + recall, 1e-12, None)))
    return out


def run(name: str, strategy: str, seed: int) -> list[dict]:
    data = {**load(name), "name": name}
    data["positive"] = positive_of(data)
    work = Path(tempfile.mkdtemp(prefix="loop-rules-"))
    cache = Path(tempfile.gettempdir()) / f"agilecls-bench-emb-{name}"
    try:
        project, truth = make_project(work / "project", data, seed, cache)
        pos = project.labels.index(data["positive"])
        done, rows = 0, []
        for target in LABEL_COUNTS:
            while done < target:
                for row in project.suggest(16, strategy, seed=seed * 1000 + done):
                    project.label(row["id"], truth[row["id"]], "sim")
                    done += 1
            fit = project.scores().fit
            if fit is None:
                continue
            frame = project.store.frame()
            in_pool = frame["id"].str.startswith("p").to_numpy()
            popu, val = np.flatnonzero(in_pool), np.flatnonzero(in_pool & frame["label"].isna().to_numpy())
            y_val = np.array([truth[i] == data["positive"] for i in frame["id"].iloc[val]], dtype=int)
            rows.append({"dataset": name, "strategy": strategy, "seed": seed, "labels": done,
                         **rules(fit, pos, popu, val, y_val)})
            print(rows[-1], flush=True)
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> dict:
    parser = bench_parser(__doc__.split("\n\n")[0], seeds=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=["ethos", "tweets"])
    args = setup(parser.parse_args(argv))
    rows = [r for name in args.datasets for strategy in ("diverse_margin", "random") for seed in args.seeds
            for r in run(name, strategy, seed)]
    frame = pd.DataFrame(rows)
    rule_cols = [c for c in frame if c.startswith(("expected_f1", "f1", "pool_share"))]
    ratios = frame[rule_cols].div(frame["oracle"], axis=0)
    summary = []
    for col in rule_cols:
        summary.append({"rule": col, "mean F1 / oracle": float(ratios[col].mean()),
                        "rounds under 0.9": int((ratios[col] < 0.9).sum()), "worst": float(ratios[col].min())})
    shares = {k: float((frame[f"share_{k}"] - frame["share_true"]).abs().mean()) for k in ("em", "mean_p")}
    print(format_table(summary))
    print("mean absolute error of the rare class's share:", shares)
    payload = {"summary": summary, "share_error": shares, "rounds": rows}
    write_results("loop_rules", payload, args.out, argv=argv)
    return payload


if __name__ == "__main__":
    main()
