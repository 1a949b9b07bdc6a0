"""Which zero-shot scorer should pre-label a new project: the language model prompted with the
label names, sentence-embedding similarity between each text and each label name, or both
(the mean of the two probability vectors).

    python -m bench.defaults.zero_shot_scorers

Scored on the marketing tweets' test split (7 Spanish sector names) and on CLINC150's test rows
of the 20 intents :mod:`bench.quality.active_learning` uses (intent names with ``_`` read as spaces;
in-scope rows only: a zero-shot scorer has no out-of-scope class), plus three obvious support
messages. Nothing here is tuned: the similarity temperature is fixed in
:mod:`agilecls.loop.zero_shot` and only changes calibration, not accuracy or macro F1.
"""

from __future__ import annotations

import time

from agilecls.datasets import load_tweets
from agilecls.encoders.sentence import SentenceEncoder
from agilecls.evaluation.metrics import classification_metrics, format_table
from agilecls.loop.zero_shot import SCORERS, llm_proba, similarity_proba
from bench.common import bench_parser, setup, write_results
from bench.quality.active_learning import clinc20

SUPPORT = (["I was charged twice for my subscription this month", "The app crashes every time I open settings",
            "Your team was fantastic, thank you so much!"], ["billing", "technical problem", "praise"])


def tasks(limit: int | None):
    tweets = load_tweets("test")
    x, y, labels = clinc20("test")
    keep = [i for i, v in enumerate(y) if v != "oos"]
    intents = [lab for lab in labels if lab != "oos"]
    named = {lab: lab.replace("_", " ") for lab in intents}
    out = {"tweets": (tweets.texts, tweets.y, tweets.labels, tweets.meta["instructions"]),
           "clinc20": ([x[i] for i in keep], [named[y[i]] for i in keep], [named[v] for v in intents],
                       "Classify the user's request into one of the following intents"),
           "support": (SUPPORT[0], SUPPORT[1], sorted(SUPPORT[1]), "Classify the support message")}
    if limit:
        out = {k: (t[:limit], y[:limit], labels, ins) for k, (t, y, labels, ins) in out.items()}
    return out


def main(argv=None) -> dict:
    parser = bench_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="score only the first N texts of each task")
    args = setup(parser.parse_args(argv))
    encoder = SentenceEncoder("minilm")
    rows = []
    for name, (texts, y, labels, instructions) in tasks(args.limit).items():
        start = time.perf_counter()
        sim = similarity_proba(encoder.embed(texts, show_progress=False), encoder.embed(labels, show_progress=False))
        sim_s = time.perf_counter() - start
        start = time.perf_counter()
        llm = llm_proba(texts, labels, instructions, progress=False)
        llm_s = time.perf_counter() - start
        for scorer, proba, seconds in (("similarity", sim, sim_s), ("llm", llm, llm_s),
                                       ("combined", (sim + llm) / 2, sim_s + llm_s)):
            m = classification_metrics(y, proba, labels)
            rows.append({"task": name, "texts": len(texts), "classes": len(labels), "scorer": scorer,
                         "accuracy": m["accuracy"], "macro F1": m["f1_macro"], "ECE": m["ece"],
                         "seconds": round(seconds, 1)})
        print(format_table([r for r in rows if r["task"] == name]), flush=True)
    best = {}
    for task in ("tweets", "clinc20"):
        scored = [r for r in rows if r["task"] == task]
        best[task] = max(scored, key=lambda r: r["macro F1"])["scorer"]
    print(format_table(rows))
    print("best scorer by macro F1:", best)
    payload = {"rows": rows, "best": best, "scorers": list(SCORERS)}
    write_results("zero_shot_scorers", payload, args.out, argv=argv)
    return payload


if __name__ == "__main__":
    main()
