"""Zero-shot and few-shot quality of each bundled model on the ETHOS and marketing-tweets test splits.

    python -m bench.quality.zero_few_shot [--tweets-per-class 20] [--models smollm2-135m-instruct gemma-3-270m]

Prints a table and writes bench/results/zero_few_shot_<data>.json. Both the content-free calibrated
probabilities (the default) and the raw label probabilities are reported, from the same scores.
"""

from __future__ import annotations

import time

from agilecls import AgileClassifier
from agilecls.datasets import load_ethos, load_tweets, stratified_sample
from agilecls.evaluation.metrics import classification_metrics, format_table
from agilecls.validation import softmax
from bench.common import bench_parser, setup, write_results


def datasets(tweets_per_class: int):
    tweets = load_tweets("test")
    keep = sorted(stratified_sample(tweets.y, tweets_per_class, seed=0))
    tweets.texts, tweets.y = [tweets.texts[i] for i in keep], [tweets.y[i] for i in keep]
    return {"ethos": (load_ethos("train"), load_ethos("test")), "tweets": (load_tweets("train"), tweets)}


def main(argv=None) -> None:
    parser = bench_parser(__doc__, out_help="results file (default: bench/results/zero_few_shot_<data>.json)")
    parser.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma-3-270m"])
    parser.add_argument("--shots", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--tweets-per-class", type=int, default=20)
    parser.add_argument("--data", nargs="+", default=["ethos", "tweets"])
    args = setup(parser.parse_args(argv))
    rows = []
    for data_name, (train, test) in datasets(args.tweets_per_class).items():
        if data_name not in args.data:
            continue
        for model in args.models:
            for shots in args.shots:
                clf = AgileClassifier(labels=train.labels, model=model, shots=shots,
                                      instructions=train.meta.get("instructions"), progress=False)
                clf.fit(train.texts, train.y)
                start = time.perf_counter()
                raw = clf.raw_scores(test.texts)
                seconds = time.perf_counter() - start
                for calibration, scores in (("content_free", raw - clf.bias_), ("none", raw)):
                    m = classification_metrics(test.y, softmax(scores), train.labels, test.meta.get("positive_label"))
                    rows.append({"data": data_name, "n": len(test), "model": model, "template": clf.template_.style,
                                 "shots": shots, "calibration": calibration, "accuracy": m["accuracy"],
                                 "f1": m.get("f1", m["f1_macro"]), "roc_auc": m.get("roc_auc", float("nan")),
                                 "texts_per_s": len(test) / seconds})
                print(format_table(rows[-2:]), flush=True)
    print("\nf1 = binary F1 of the hateful class on ETHOS, macro F1 on tweets")
    print(format_table(rows))
    path = write_results("zero_few_shot_" + "_".join(args.data),
                         {"rows": rows, "tweets_per_class": args.tweets_per_class}, args.out, argv=argv)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
