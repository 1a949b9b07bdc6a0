"""How many labels per class the label-error review needs before its ranking means anything.

    python -m bench.defaults.label_review_floor

For n labelled texts per class (drawn from a dataset's training split, 30 draws per n), 10% of the
labels (at least one) are flipped to another class; the loop's fast model scores every labelled
text out of fold and cleanlab's label quality score ranks them (the review's order). Reported: the
share of the flipped labels among the first k listed (k = the number flipped; precision at k) and
its lift over chance (the flip rate). The loop lists possible label errors from the smallest n
whose median lift over the datasets is at least 3 (``REVIEW_MIN_PER_CLASS`` in
agilecls.loop.review); on a task the fast model separates poorly (ETHOS) no count reaches it.

Datasets: ETHOS (hateful or not), the marketing tweets (7 sectors), CLINC150's first 10 intents.
"""

from __future__ import annotations

import numpy as np
from cleanlab.rank import get_label_quality_scores

from agilecls.datasets import load_clinc150, load_ethos, load_tweets
from agilecls.encoders.sentence import SentenceEncoder
from agilecls.evaluation.metrics import format_table
from agilecls.loop import fast
from agilecls.runtime import cache_dir
from bench.common import bench_parser, setup, write_results

PER_CLASS = (3, 4, 6, 8, 12, 16, 24)
FLIP_RATE = 0.1
MIN_LIFT = 3.0


def datasets() -> dict:
    clinc = load_clinc150("train", include_oos=False)
    intents = sorted(set(clinc.y))[:10]
    keep = [i for i, y in enumerate(clinc.y) if y in intents]
    ethos, tweets = load_ethos("train"), load_tweets("train")
    return {"ethos": (ethos.texts, ethos.y), "tweets": (tweets.texts, tweets.y),
            "clinc10": ([clinc.texts[i] for i in keep], [clinc.y[i] for i in keep])}


def precision_at_k(emb: np.ndarray, y: np.ndarray, n: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    rows = np.concatenate([rng.choice(np.flatnonzero(y == c), n, replace=False) for c in classes])
    labels = y[rows].copy()
    k = max(1, round(FLIP_RATE * len(rows)))
    flipped = rng.choice(len(rows), k, replace=False)
    for i in flipped:
        labels[i] = rng.choice(classes[classes != labels[i]])
    proba = fast.out_of_fold(emb[rows], labels, len(classes), seed=seed)
    ranked = np.argsort(get_label_quality_scores(labels, proba), kind="stable")[:k]
    return len(set(ranked) & set(flipped)) / k


def main(argv=None) -> dict:
    parser = bench_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=30)
    args = setup(parser.parse_args(argv))
    encoder = SentenceEncoder("minilm", cache_dir=cache_dir("embeddings"))
    rows = []
    for name, (texts, y) in datasets().items():
        emb = encoder.embed(texts, show_progress=False)
        classes = sorted(set(y))
        y_idx = np.array([classes.index(v) for v in y])
        for n in PER_CLASS:
            scores = [precision_at_k(emb, y_idx, n, seed) for seed in range(args.draws)]
            rows.append({"dataset": name, "per class": n, "precision at k": float(np.mean(scores)),
                         "lift": float(np.mean(scores) / FLIP_RATE)})
        print(format_table([r for r in rows if r["dataset"] == name]), flush=True)
    floor = next((n for n in PER_CLASS
                  if np.median([r["lift"] for r in rows if r["per class"] == n]) >= MIN_LIFT), None)
    print(f"smallest labels per class with a median lift >= {MIN_LIFT} over the datasets: {floor}")
    payload = {"rows": rows, "floor": floor, "flip_rate": FLIP_RATE, "min_lift": MIN_LIFT, "draws": args.draws}
    write_results("label_review_floor", payload, args.out, argv=argv)
    return payload


if __name__ == "__main__":
    main()
