"""Which decision-threshold rule a stacked ensemble should use, chosen on ETHOS validation rows only.

The demo stacks its members on a hold-out of 200 training rows and picks the F1 threshold there
(``threshold="f1"``: the cut with the best F1 on the stacker's cross-validated probabilities). Over
runs that differed only in random draws, that cut landed at 0.357, 0.393 and 0.615, and
``stack_mpnet``'s at 0.36 / 0.63 / 0.35: on a few hundred labelled rows the best cut jumps with
which rows sit near it. ``threshold="expected_f1"`` takes the cut that maximises the F1 the
calibrated probabilities themselves expect, which moves much less.

This script compares the rules without fitting a model and without the test split: it reuses the
200 validation rows of ``bench/results/ethos_validation*.json`` (ETHOS training rows 600-800, scored
by members trained on rows 0-600), splits them at random many times into hold-out rows (100 or 150:
the stacker, its cross-validated probabilities and each rule's cut, exactly as
:class:`agilecls.EnsembleClassifier` fits them) and evaluation rows (the other 100 or 50), and
reports the F1 of the hateful class each rule reaches on the evaluation rows, with the spread of the
cuts. "0.5" is no threshold (the most probable class).

    python -m bench.defaults.threshold_rules [--splits 300] [--holdout 100 150]

Prints a table and writes bench/results/threshold_rules.json.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from agilecls.calibration.stacking import Stacker
from agilecls.calibration.thresholds import fit_threshold
from agilecls.datasets import load_ethos
from agilecls.evaluation.metrics import format_table
from bench.common import RESULTS, bench_parser, setup, write_results

#: member -> (results file, setting, epoch index): members trained on ETHOS training rows 0-600
MEMBERS = {"smollm2_lora": ("ethos_validation.json", "lr2e-3_linear", -1),
           "minilm_finetuned_s200": ("ethos_validation_steps.json", "minilm_finetuned_s200", 0),
           "mpnet_finetuned": ("ethos_validation.json", "mpnet_finetuned", 0)}
PAIRS = {"demo (MiniLM + SmolLM2)": ("minilm_finetuned_s200", "smollm2_lora"),
         "stack_mpnet (mpnet + SmolLM2)": ("mpnet_finetuned", "smollm2_lora")}
RULES = ("0.5", "f1", "expected_f1")


def member_probabilities(name: str) -> np.ndarray:
    file, setting, epoch = MEMBERS[name]
    p = np.asarray(json.loads((RESULTS / file).read_text())[setting]["epochs"][epoch]["raw_p_hateful"])
    return np.column_stack([1 - p, p])  # columns (not hateful, hateful)


def main(argv=None) -> dict:
    parser = bench_parser(__doc__)
    parser.add_argument("--splits", type=int, default=300)
    parser.add_argument("--holdout", type=int, nargs="+", default=[100, 150],
                        help="rows of the 200 that fit the stacker and choose the cut (the rest evaluate)")
    args = setup(parser.parse_args(argv))
    train = load_ethos("train")
    hateful = train.meta["positive_label"]
    other = next(c for c in train.labels if c != hateful)
    classes = [other, hateful]
    y = np.array(train.y[600:800], dtype=object)
    loaded = {name: member_probabilities(name) for name in MEMBERS}
    rows, cuts_out = [], {}
    for holdout, (pair, names) in itertools.product(args.holdout, PAIRS.items()):
        probas = [loaded[n] for n in names]
        scores, cuts = {rule: [] for rule in RULES}, {rule: [] for rule in RULES}
        aucs = []
        for split in range(args.splits):
            order = np.random.default_rng(split).permutation(len(y))
            held, rest = order[:holdout], order[holdout:]
            if len(set(y[held])) < 2 or len(set(y[rest])) < 2:
                continue
            held_probas, held_y = [p[held] for p in probas], list(y[held])
            stacker = Stacker(classes).fit(held_probas, held_y)
            oof = stacker.out_of_fold(held_probas, held_y, random_state=split)[:, 1]
            p_rest = stacker.predict_proba([p[rest] for p in probas])[:, 1]
            aucs.append(roc_auc_score(y[rest] == hateful, p_rest))
            for rule in RULES:
                cut = 0.5 if rule == "0.5" else fit_threshold(oof, y[held] == hateful, rule, hateful).threshold
                cuts[rule].append(cut)
                scores[rule].append(f1_score(y[rest] == hateful, p_rest >= cut))
        for rule in RULES:
            f1, c = np.asarray(scores[rule]), np.asarray(cuts[rule])
            row = {"stack": pair, "hold-out": holdout, "rule": rule, "splits": len(f1), "F1 mean": f1.mean(),
                   "F1 std": f1.std(), "F1 5%": np.percentile(f1, 5), "ROC-AUC": float(np.mean(aucs))}
            if rule != "0.5":  # a fixed cut has no spread
                row.update({"cut median": float(np.median(c)),
                            "cut 5-95%": f"{np.percentile(c, 5):.2f}-{np.percentile(c, 95):.2f}"})
            rows.append(row)
        paired = np.asarray(scores["expected_f1"]) - np.asarray(scores["f1"])
        cuts_out[f"{pair}, hold-out {holdout}"] = {"expected_f1_minus_f1": {
            "mean": float(paired.mean()), "std": float(paired.std()),
            "share_better": float((paired > 0).mean()), "share_worse": float((paired < 0).mean())}}
    print(format_table(rows))
    for pair, facts in cuts_out.items():
        d = facts["expected_f1_minus_f1"]
        print(f"{pair}: expected_f1 - f1 on the evaluation rows: {d['mean']:+.4f} ± {d['std']:.4f} "
              f"(better on {d['share_better']:.0%} of splits, worse on {d['share_worse']:.0%})")
    payload = {"splits": args.splits, "holdout": args.holdout, "validation_rows": 200,
               "members": {k: list(v) for k, v in MEMBERS.items()}, "rows": rows, "paired": cuts_out}
    write_results("threshold_rules", payload, args.out, argv=argv)
    return payload


if __name__ == "__main__":
    main()
