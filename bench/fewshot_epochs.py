"""How many epochs a fine-tuned MiniLM member needs with 8 examples per class, on validation rows.

The tweets' 8-per-class comparison with SetFit (bench/peers.py) left the fine-tuned MiniLM member
(4 epochs of batch 16: 16 optimiser steps on 56 texts) near uniform. This script trains the same
member for 4, 12 and 25 epochs on 8 examples per class drawn (seeded) from the tweets' train
split and scores up to 700 *other train rows* (validation; the test split is not read), so that
a longer schedule can be chosen without looking at test rows.

Run: ``python -m bench.fewshot_epochs`` (writes bench/results/fewshot_epochs.json).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from agilecls.datasets import load_dataset
from agilecls.encoders.members import encoder_member
from agilecls.evaluation.metrics import classification_metrics, format_table

from .common import write_results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.fewshot_epochs", description=__doc__)
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--epochs", type=int, nargs="+", default=[4, 12, 25])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validation", type=int, default=700)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    train = load_dataset("tweets", "train")
    y = np.array(train.y, dtype=object)
    rng = np.random.default_rng(args.seed)
    pick = np.concatenate([rng.choice(np.flatnonzero(y == c), args.shots, replace=False) for c in train.labels])
    rest = np.setdiff1d(np.arange(len(y)), pick)
    val = rng.choice(rest, min(args.validation, len(rest)), replace=False)
    texts, labels = [train.texts[i] for i in pick], list(y[pick])
    rows = []
    for epochs in args.epochs:
        clf = encoder_member("minilm", "finetuned", args.seed).set_params(epochs=epochs)
        start = time.perf_counter()
        clf.fit(texts, labels)
        seconds = time.perf_counter() - start
        m = classification_metrics(list(y[val]), clf.predict_proba([train.texts[i] for i in val]), list(clf.classes_))
        steps = epochs * int(np.ceil(len(texts) / clf.batch_size))
        rows.append({"epochs": epochs, "steps": steps, "fit_s": round(seconds, 1), "f1_macro": m["f1_macro"],
                     "accuracy": m["accuracy"], "ece": m["ece"]})
    print(format_table(rows))
    payload = {"shots": args.shots, "seed": args.seed, "validation_rows": int(len(val)), "rows": rows}
    write_results("fewshot_epochs", payload, argv=argv)
    return payload


if __name__ == "__main__":
    main()
