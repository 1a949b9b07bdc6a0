"""ETHOS multi-label: per-label F1, macro and micro F1, Hamming loss, macro ROC-AUC and fit time on
the 87 test comments (``agilecls.datasets.load_ethos_multilabel``: labels at annotator agreement
>= 0.5, seeded 80/20 split, 346 training comments) for

- ``baseline``: binary-relevance logistic regression on frozen MiniLM embeddings
  (``EncoderClassifier("minilm", head="logistic", multilabel=True)``, one regression per label);
- ``encoder``: MiniLM fine-tuned with a sigmoid MLP head and binary cross-entropy (the ensemble's
  fine-tuned encoder member, ``multilabel=True``);
- ``agile``: ``AgileClassifier(multilabel=True, tuning="lora")`` on the bundled SmolLM2, every
  (comment, label) pair a yes/no question;
- ``ensemble``: the soft vote (mean probability) of ``encoder`` and ``agile``.

Nothing is chosen on the test rows: every label is predicted at probability >= 0.5; the baseline's
``C`` and the fine-tuned encoder's epochs are chosen by macro F1 on a seeded 20% hold-out of the
training comments, then refitted on all of them; the LoRA settings are the package defaults with
``--lora-epochs`` fixed beforehand to fit the time budget. Each part can run on its own (``--parts``);
results, including each part's test probabilities (for the ensemble), merge into one JSON file.

    python -m bench.multilabel_ethos --parts baseline encoder
    python -m bench.multilabel_ethos --parts agile ensemble
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
from sklearn.model_selection import train_test_split  # noqa: E402

from agilecls import AgileClassifier, EncoderClassifier  # noqa: E402
from agilecls.datasets import load_ethos_multilabel  # noqa: E402
from agilecls.encoders.members import ENCODER_MEMBERS  # noqa: E402
from agilecls.ensemble import soft_vote  # noqa: E402
from agilecls.evaluation.metrics import format_table, multilabel_metrics  # noqa: E402
from agilecls.validation import check_multilabel_y  # noqa: E402
from bench.common import RESULTS, write_results  # noqa: E402

PARTS = ("baseline", "encoder", "agile", "ensemble")
C_GRID = (1.0, 10.0, 100.0)
EPOCH_GRID = (4, 8, 16)


def macro_f1_on_holdout(make, texts, Y, labels, seed: int) -> float:
    """Macro F1 (threshold 0.5) of ``make()`` fitted on 80% of the training rows, scored on the rest."""
    fit_rows, hold_rows = train_test_split(np.arange(len(texts)), test_size=0.2, random_state=seed)
    clf = make().fit([texts[i] for i in fit_rows], Y[fit_rows])
    return multilabel_metrics(Y[hold_rows], clf.predict_proba([texts[i] for i in hold_rows]), labels)["f1_macro"]


def choose(name: str, grid, make, texts, Y, labels, seed: int) -> tuple:
    scores = {value: macro_f1_on_holdout(lambda: make(value), texts, Y, labels, seed) for value in grid}
    best = max(grid, key=lambda v: scores[v])
    print(f"{name}: hold-out macro F1 {({k: round(v, 3) for k, v in scores.items()})} -> {best}", flush=True)
    return best, {str(k): v for k, v in scores.items()}


def fitted(make, texts, Y):
    start = time.perf_counter()
    clf = make().fit(texts, Y)
    return clf, time.perf_counter() - start


def run_part(part: str, train, test, Y_train, args, done: dict) -> dict:
    labels = train.labels
    if part == "baseline":
        make = lambda C: EncoderClassifier("minilm", head="logistic", C=C, multilabel=True, labels=labels)
        C, holdout = choose("baseline C", C_GRID, make, train.texts, Y_train, labels, args.seed)
        clf, seconds = fitted(lambda: make(C), train.texts, Y_train)
        setting = {"C": C, "holdout_f1_macro": holdout}
    elif part == "encoder":
        params = {**ENCODER_MEMBERS["finetuned"]["params"], "multilabel": True, "labels": labels,
                  "random_state": args.seed}
        make = lambda epochs: EncoderClassifier("minilm", **{**params, "epochs": epochs})
        epochs, holdout = choose("encoder epochs", EPOCH_GRID, make, train.texts, Y_train, labels, args.seed)
        clf, seconds = fitted(lambda: make(epochs), train.texts, Y_train)
        setting = {**{k: v for k, v in params.items() if k != "labels"}, "epochs": epochs, "holdout_f1_macro": holdout}
    elif part == "agile":
        make = lambda: AgileClassifier(labels=labels, tuning="lora", multilabel=True, epochs=args.lora_epochs,
                                       instructions=train.meta["instructions"], seed=args.seed, progress=args.progress)
        clf, seconds = fitted(make, train.texts, Y_train)
        setting = {"model": clf.describe(), "epochs": args.lora_epochs, "history": clf.history_}
    else:
        missing = [p for p in ("encoder", "agile") if p not in done]
        if missing:
            raise SystemExit(f"the ensemble needs the {missing} part(s) first (run them with --parts)")
        proba = soft_vote([np.asarray(done[p]["test_proba"]) for p in ("encoder", "agile")])
        seconds = done["encoder"]["fit_seconds"] + done["agile"]["fit_seconds"]
        return {"setting": {"members": ["encoder", "agile"], "weights": "equal"}, "fit_seconds": seconds,
                "test_proba": proba.tolist()}
    return {"setting": setting, "fit_seconds": seconds, "test_proba": clf.predict_proba(test.texts).tolist()}


def table_rows(results: dict, Y_test, labels) -> list[dict]:
    rows = []
    for part in PARTS:
        if part not in results:
            continue
        m = multilabel_metrics(Y_test, np.asarray(results[part]["test_proba"]), labels)
        results[part]["metrics"] = m
        rows.append({"model": part, **{label: m[f"f1[{label}]"] for label in labels}, "macro_f1": m["f1_macro"],
                     "micro_f1": m["f1_micro"], "hamming": m["hamming_loss"], "roc_auc": m["roc_auc_macro"],
                     "fit_s": round(results[part]["fit_seconds"], 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.multilabel_ethos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--lora-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "multilabel_ethos.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, test = load_ethos_multilabel("train"), load_ethos_multilabel("test")
    Y_train, labels = check_multilabel_y(train.y, train.labels)
    Y_test, _ = check_multilabel_y(test.y, labels)
    out = Path(args.out)
    results = json.loads(out.read_text())["results"] if out.exists() else {}
    for part in args.parts:
        print(f"--- {part}", flush=True)
        results[part] = {**run_part(part, train, test, Y_train, args, results), "command_args": vars(args)}
        rows = table_rows(results, Y_test, labels)
        write_results(out.stem, {"dataset": {"train": len(train), "test": len(test), "labels": labels,
                                             "binarised_at": 0.5, "split": "train_test_split(test_size=0.2, "
                                                                           "random_state=42)"},
                                 "threshold": 0.5, "table": rows, "results": results}, out)
    print(format_table(table_rows(results, Y_test, labels)))


if __name__ == "__main__":
    main()
