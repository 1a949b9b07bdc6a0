"""How many epochs a fine-tuned MiniLM member needs with 8 examples per class, on validation rows.

The tweets' 8-per-class comparison with SetFit (bench/quality/peers.py) left the fine-tuned MiniLM member
(4 epochs of batch 16: 16 optimiser steps on 56 texts) near uniform. This script trains the same
member for 4, 12 and 25 epochs on 8 examples per class drawn (seeded) from the tweets' train
split and scores up to 700 *other train rows* (validation; the test split is not read), so that
a longer schedule can be chosen without looking at test rows.

Run: ``python -m bench.defaults.fewshot_epochs`` (writes bench/results/fewshot_epochs.json).

``--steps`` checks the member's step floor instead (``min_steps``, with ``epochs=1`` so the floor
decides): ``python -m bench.defaults.fewshot_epochs --shots 16 32 --steps 100 200 --seeds 0 1
--out bench/results/fewshot_steps`` trains with 100 and 200 optimiser steps at 16 and 32 examples
per class, two seeded draws each, and scores the same validation rows per draw.

``--encoder mpnet`` trains the optional mpnet member instead, on the same draws and validation
rows: ``python -m bench.defaults.fewshot_epochs --encoder mpnet --shots 16 32 --steps 200 --seeds 0 1
--out bench/results/fewshot_mpnet`` compares it with the MiniLM rows of ``fewshot_steps.json``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from agilecls.datasets import load_dataset
from agilecls.encoders.members import encoder_member
from agilecls.encoders.training import Schedule
from agilecls.evaluation.metrics import classification_metrics, format_table
from bench.common import bench_parser, setup, write_results


def main(argv=None) -> dict:
    parser = bench_parser(__doc__, threads=2, seeds=[0],
                          out_help="results file, .json is added (default: bench/results/fewshot_epochs.json)")
    parser.add_argument("--shots", type=int, nargs="+", default=[8])
    parser.add_argument("--epochs", type=int, nargs="+", default=[4, 12, 25])
    parser.add_argument("--steps", type=int, nargs="+", help="step floors to compare (epochs=1, min_steps=N)")
    parser.add_argument("--validation", type=int, default=700)
    parser.add_argument("--encoder", default="minilm", help="bundled encoder of the member (minilm or mpnet)")
    args = setup(parser.parse_args(argv))
    train = load_dataset("tweets", "train")
    y = np.array(train.y, dtype=object)
    schedules = [{"epochs": 1, "min_steps": s} for s in args.steps] if args.steps else \
        [{"epochs": e, "min_steps": 0} for e in args.epochs]
    rows = []
    for shots in args.shots:
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            pick = np.concatenate([rng.choice(np.flatnonzero(y == c), shots, replace=False) for c in train.labels])
            rest = np.setdiff1d(np.arange(len(y)), pick)
            val = rng.choice(rest, min(args.validation, len(rest)), replace=False)
            texts, labels = [train.texts[i] for i in pick], list(y[pick])
            for schedule in schedules:
                clf = encoder_member(args.encoder, "finetuned", seed).set_params(**schedule)
                start = time.perf_counter()
                clf.fit(texts, labels)
                seconds = time.perf_counter() - start
                m = classification_metrics(list(y[val]), clf.predict_proba([train.texts[i] for i in val]),
                                           list(clf.classes_))
                epochs = Schedule(schedule["epochs"], clf.batch_size, min_steps=schedule["min_steps"]
                                  ).fine_tune_epochs(len(texts))  # as fine-tuning ran them
                rows.append({"encoder": args.encoder, "shots": shots, "seed": seed, "epochs": epochs,
                             "steps": epochs * math.ceil(len(texts) / clf.batch_size),
                             "fit_s": round(seconds, 1), "f1_macro": m["f1_macro"], "accuracy": m["accuracy"],
                             "ece": m["ece"], "validation_rows": int(len(val))})
                print(format_table(rows[-1:]), flush=True)
    print(format_table(rows))
    payload = {"encoder": args.encoder, "shots": args.shots, "seeds": args.seeds, "rows": rows}
    write_results("fewshot_epochs", payload, args.out and Path(args.out).with_suffix(".json"), argv=argv)
    return payload


if __name__ == "__main__":
    main()
