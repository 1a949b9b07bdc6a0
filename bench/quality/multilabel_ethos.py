"""ETHOS multi-label: per-label F1, macro and micro F1, Hamming loss, macro ROC-AUC and fit time on
the 87 test comments (``agilecls.datasets.load_ethos_multilabel``: labels at annotator agreement
>= 0.5, seeded 80/20 split, 346 training comments) for

- ``baseline``: binary-relevance logistic regression on frozen MiniLM embeddings
  (``EncoderClassifier("minilm", head="logistic", multilabel=True)``, one regression per label);
- ``encoder``: MiniLM fine-tuned with a sigmoid MLP head and binary cross-entropy (the ensemble's
  fine-tuned encoder member, ``multilabel=True``);
- ``agile``: ``AgileClassifier(multilabel=True, tuning="lora")`` on the bundled SmolLM2, every
  (comment, label) pair a yes/no question;
- ``ensemble``: the soft vote (mean probability) of ``encoder`` and ``agile``;
- ``baseline_cal``, ``encoder_cal``, ``agile_cal``: the same classifiers in a
  ``CalibratedClassifier(threshold="f1")``: one binary calibration map and one F1-best threshold per
  label, on out-of-fold probabilities (the baseline 5-fold; the two costly ones on a seeded 25%
  hold-out of the training comments, the model fitted on the other 75% kept);
- ``ensemble_cal``: the soft vote of ``encoder_cal``'s and ``agile_cal``'s uncalibrated members,
  calibrated and cut per label on their shared 25% hold-out (the same library functions).

Nothing is chosen on the test rows: the plain parts predict every label at probability >= 0.5,
the ``_cal`` parts at the per-label thresholds chosen out of fold; the baseline's
``C`` and the fine-tuned encoder's epochs are chosen by macro F1 on a seeded 20% hold-out of the
training comments, then refitted on all of them; the LoRA settings are the package defaults with
``--lora-epochs`` fixed beforehand to fit the time budget. Each part can run on its own (``--parts``);
results, including each part's test probabilities (for the ensemble), merge into one JSON file
(``--no-resume`` starts a new one).

    python -m bench.quality.multilabel_ethos --parts baseline encoder
    python -m bench.quality.multilabel_ethos --parts agile ensemble
    python -m bench.quality.multilabel_ethos --parts baseline_cal encoder_cal agile_cal ensemble_cal
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from agilecls import AgileClassifier, CalibratedClassifier, EncoderClassifier
from agilecls.calibration.multilabel import PerLabelCalibrator, fit_label_thresholds
from agilecls.datasets import load_ethos_multilabel
from agilecls.encoders.members import ENCODER_MEMBERS
from agilecls.ensemble import soft_vote
from agilecls.evaluation.metrics import format_table, multilabel_metrics
from agilecls.validation import check_multilabel_y
from bench.common import RESULTS, bench_parser, load_previous, setup, write_results

PARTS = ("baseline", "encoder", "agile", "ensemble", "baseline_cal", "encoder_cal", "agile_cal", "ensemble_cal")
#: Out-of-fold rows of each calibrated part: 5 folds for the cheap baseline, a 25% hold-out otherwise.
CAL_CV = {"baseline_cal": 5, "encoder_cal": 0.25, "agile_cal": 0.25}
C_GRID = (1.0, 10.0, 100.0)
EPOCH_GRID = (4, 8, 16)


def macro_f1_on_holdout(make, texts, Y, labels, seed: int) -> float:
    """Macro F1 (threshold 0.5) of ``make()`` fitted on 80% of the training rows, scored on the rest."""
    fit_rows, hold_rows = train_test_split(np.arange(len(texts)), test_size=0.2, random_state=seed)
    clf = make().fit([texts[i] for i in fit_rows], Y[fit_rows])
    return multilabel_metrics(Y[hold_rows], clf.predict_proba([texts[i] for i in hold_rows]), labels)["f1_macro"]


def choose(name: str, grid, make, texts, Y, labels, seed: int) -> tuple:
    scores = {value: macro_f1_on_holdout(lambda value=value: make(value), texts, Y, labels, seed) for value in grid}
    best = max(grid, key=lambda v: scores[v])
    print(f"{name}: hold-out macro F1 {({k: round(v, 3) for k, v in scores.items()})} -> {best}", flush=True)
    return best, {str(k): v for k, v in scores.items()}


def fitted(make, texts, Y):
    start = time.perf_counter()
    clf = make().fit(texts, Y)
    return clf, time.perf_counter() - start


def make_part(part: str, train, Y_train, args, done: dict):
    """(a factory of the unfitted classifier of ``part``, its settings); the encoder's epochs and the
    baseline's C are chosen here on a hold-out of the training rows, or taken from their done part."""
    labels = train.labels
    if part == "baseline":
        def make(C):
            return EncoderClassifier("minilm", head="logistic", C=C, multilabel=True, labels=labels)

        if "baseline" in done:
            C = done["baseline"]["setting"]["C"]
            return (lambda: make(C)), {"C": C}
        C, holdout = choose("baseline C", C_GRID, make, train.texts, Y_train, labels, args.seed)
        return (lambda: make(C)), {"C": C, "holdout_f1_macro": holdout}
    if part == "encoder":
        params = {**ENCODER_MEMBERS["finetuned"]["params"], "multilabel": True, "labels": labels,
                  "random_state": args.seed}
        def make(epochs):
            return EncoderClassifier("minilm", **{**params, "epochs": epochs})

        shown = {k: v for k, v in params.items() if k != "labels"}
        if "encoder" in done:
            epochs = done["encoder"]["setting"]["epochs"]
            return (lambda: make(epochs)), {**shown, "epochs": epochs}
        epochs, holdout = choose("encoder epochs", EPOCH_GRID, make, train.texts, Y_train, labels, args.seed)
        return (lambda: make(epochs)), {**shown, "epochs": epochs, "holdout_f1_macro": holdout}
    return (lambda: AgileClassifier(labels=labels, tuning="lora", multilabel=True, epochs=args.lora_epochs,
                                    instructions=train.meta["instructions"], seed=args.seed,
                                    progress=args.progress)), {"epochs": args.lora_epochs}


def run_part(part: str, train, test, Y_train, args, done: dict) -> dict:
    labels = train.labels
    if part == "ensemble":
        missing = [p for p in ("encoder", "agile") if p not in done]
        if missing:
            raise SystemExit(f"the ensemble needs the {missing} part(s) first (run them with --parts)")
        proba = soft_vote([np.asarray(done[p]["test_proba"]) for p in ("encoder", "agile")])
        seconds = done["encoder"]["fit_seconds"] + done["agile"]["fit_seconds"]
        return {"setting": {"members": ["encoder", "agile"], "weights": "equal"}, "fit_seconds": seconds,
                "test_proba": proba.tolist()}
    if part == "ensemble_cal":
        return calibrated_vote(done, Y_train, labels)
    base = part.removesuffix("_cal")
    make, setting = make_part(base, train, Y_train, args, done)
    if part == base:
        clf, seconds = fitted(make, train.texts, Y_train)
        if part == "agile":
            setting = {**setting, "model": clf.describe(), "history": clf.history_}
        return {"setting": setting, "fit_seconds": seconds, "test_proba": clf.predict_proba(test.texts).tolist()}
    clf, seconds = fitted(lambda: CalibratedClassifier(make(), cv=CAL_CV[part], threshold="f1"), train.texts,
                          Y_train)
    raw = clf.estimator_.predict_proba(test.texts)
    out = {"setting": {**setting, "cv": CAL_CV[part], "threshold": "f1",
                       "maps": [m.name for m in clf.calibrator_.maps]},
           "fit_seconds": seconds, "thresholds": [t.threshold for t in clf.threshold_],
           "test_proba": clf.calibrator_.transform(raw).tolist(), "test_raw_proba": raw.tolist(),
           "oof_rows": clf.oof_rows_.tolist()}
    if CAL_CV[part] < 1:  # the kept model's own hold-out probabilities, for the calibrated vote
        out["holdout_raw_proba"] = clf.estimator_.predict_proba([train.texts[i] for i in clf.oof_rows_]).tolist()
    return out


def calibrated_vote(done: dict, Y_train, labels) -> dict:
    """The soft vote of the two hold-out members, calibrated and cut per label on their shared hold-out."""
    parts = ("encoder_cal", "agile_cal")
    missing = [p for p in parts if p not in done]
    if missing:
        raise SystemExit(f"ensemble_cal needs the {missing} part(s) first (run them with --parts)")
    rows = done[parts[0]]["oof_rows"]
    if done[parts[1]]["oof_rows"] != rows:
        raise SystemExit("encoder_cal and agile_cal held out different rows; rerun them with the same --seed")
    held = soft_vote([np.asarray(done[p]["holdout_raw_proba"]) for p in parts])
    calibrator = PerLabelCalibrator()
    calibrator.fit(held, Y_train[rows])
    thresholds = fit_label_thresholds(calibrator.transform(held), Y_train[rows], labels, "f1")
    test = calibrator.transform(soft_vote([np.asarray(done[p]["test_raw_proba"]) for p in parts]))
    return {"setting": {"members": list(parts), "weights": "equal", "maps": [m.name for m in calibrator.maps]},
            "fit_seconds": sum(done[p]["fit_seconds"] for p in parts),
            "thresholds": [t.threshold for t in thresholds], "test_proba": test.tolist()}


def table_rows(results: dict, Y_test, labels) -> list[dict]:
    rows = []
    for part in PARTS:
        if part not in results:
            continue
        cuts = np.asarray(results[part].get("thresholds", 0.5))
        m = multilabel_metrics(Y_test, np.asarray(results[part]["test_proba"]), labels, threshold=cuts)
        results[part]["metrics"] = m
        rows.append({"model": part, **{label: m[f"f1[{label}]"] for label in labels}, "macro_f1": m["f1_macro"],
                     "micro_f1": m["f1_micro"], "hamming": m["hamming_loss"], "roc_auc": m["roc_auc_macro"],
                     "fit_s": round(results[part]["fit_seconds"], 1)})
    return rows


def main(argv=None) -> None:
    parser = bench_parser(__doc__, out=str(RESULTS / "multilabel_ethos.json"), threads=2, seed=0, resume=True)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--lora-epochs", type=int, default=2)
    parser.add_argument("--progress", action="store_true")
    args = setup(parser.parse_args(argv))
    train, test = load_ethos_multilabel("train"), load_ethos_multilabel("test")
    Y_train, labels = check_multilabel_y(train.y, train.labels)
    Y_test, _ = check_multilabel_y(test.y, labels)
    out = Path(args.out)
    results = load_previous(out, args).get("results", {})
    for part in args.parts:
        print(f"--- {part}", flush=True)
        results[part] = {**run_part(part, train, test, Y_train, args, results), "command_args": vars(args)}
        rows = table_rows(results, Y_test, labels)
        write_results(out.stem, {"dataset": {"train": len(train), "test": len(test), "labels": labels,
                                             "binarised_at": 0.5, "split": "train_test_split(test_size=0.2, "
                                                                           "random_state=42)"},
                                 "threshold": "0.5, or per label for the _cal parts", "table": rows,
                                 "results": results}, out, argv=argv)
    print(format_table(table_rows(results, Y_test, labels)))


if __name__ == "__main__":
    main()
