"""Active learning with a simulated annotator: each query strategy's test score after every batch
of labels, per dataset, 3 seeds; the loop step's latency on a 10,000-text pool.

    python -m bench.quality.active_learning                       # all datasets, strategies and seeds
    python -m bench.quality.active_learning --datasets ethos --seeds 1 --max-labels 64   # a quick look

The pool is a dataset's training split with its labels hidden; the script "labels" what the
strategy asks for. Every strategy starts from the same 16 random texts of a seed (so the curves
differ only by what the strategy picks), except ``kmeans start`` rows, which start from the
product's cold-start batch (k-means) and continue with the default strategy. The model is the
loop's fast model (logistic regression on frozen MiniLM embeddings, :mod:`agilecls.loop.fast`);
the score is the test split's ROC-AUC for ETHOS (binary) and macro F1 otherwise.

Datasets: ETHOS (pool: the 800 training rows; test: the 198 test rows); the marketing tweets
(7 classes, the seeded 67/33 split); CLINC150 restricted to 20 intents drawn with seed 0, with
the out-of-scope training texts in the pool and the out-of-scope test texts in the test set
(``oos`` is then a 21st class).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from agilecls.datasets import load_clinc150, load_ethos, load_tweets
from agilecls.encoders.sentence import SentenceEncoder
from agilecls.evaluation.metrics import classification_metrics, format_table
from agilecls.loop import fast, strategies
from agilecls.runtime import cache_dir
from bench.common import bench_parser, setup, write_results

STRATEGIES = ["random", "breaking_ties", "entropy", "ood_uncertainty", "diverse_margin"]
COLD_START = "kmeans start"


def clinc20(split: str, seed: int = 0):
    data = load_clinc150(split, include_oos=True)
    intents = sorted(np.random.default_rng(seed).choice(data.labels, size=20, replace=False).tolist())
    keep = [i for i, y in enumerate(data.y) if y in intents or y == "oos"]
    return [data.texts[i] for i in keep], [data.y[i] for i in keep], intents + ["oos"]


def load(name: str):
    """(pool texts, pool labels, test texts, test labels, labels, metric)."""
    if name == "ethos":
        train, test = load_ethos("train"), load_ethos("test")
        return train.texts, train.y, test.texts, test.y, train.labels, "roc_auc"
    if name == "tweets":
        train, test = load_tweets("train"), load_tweets("test")
        return train.texts, train.y, test.texts, test.y, train.labels, "f1_macro"
    pool_x, pool_y, labels = clinc20("train")
    test_x, test_y, _ = clinc20("test")
    return pool_x, pool_y, test_x, test_y, labels, "f1_macro"


def simulate(strategy: str, pool_emb, pool_y, test_emb, test_y, labels, metric, seed, seed_size, batch, max_labels,
             chosen_rows: list | None = None):
    """The test score after each batch: [(labels, score), ...]; ``chosen_rows`` receives the rows labelled."""
    rng = np.random.default_rng(seed)
    y_idx = np.array([labels.index(v) for v in pool_y])
    all_rows = np.arange(len(pool_emb))
    if strategy == COLD_START:
        labelled = list(strategies.select("kmeans", strategies.PoolScores(pool_emb, all_rows), seed_size, seed))
        strategy = "diverse_margin"
    else:
        labelled = list(rng.choice(all_rows, size=seed_size, replace=False))
    curve = []
    while True:
        rows = np.array(labelled)
        proba = ood = None
        if len(np.unique(y_idx[rows])) >= 2:
            proba, ood = fast.pool_scores(pool_emb, rows, y_idx[rows], len(labels), seed)
            test_proba = np.zeros((len(test_emb), len(labels)))
            head = fast.fit_head(pool_emb[rows], y_idx[rows], seed)
            test_proba[:, head.classes_] = head.predict_proba(test_emb)
            score = classification_metrics(test_y, test_proba, labels)[metric]
        else:
            score = float("nan")
        curve.append((len(labelled), float(score)))
        if len(labelled) >= max_labels:
            if chosen_rows is not None:
                chosen_rows.extend(labelled)
            return curve
        free = np.setdiff1d(all_rows, rows)
        chosen = strategies.select(strategy, strategies.PoolScores(pool_emb, free, proba, ood), batch, seed)
        labelled += [int(i) for i in chosen]


def labels_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((n for n, s in curve if s >= target), None)


def step_latency(encoder: SentenceEncoder, n: int = 10_000, labelled: int = 256, repeats: int = 3) -> dict:
    """Seconds for one loop step on an ``n``-text pool with cached embeddings: refit the fast model
    on ``labelled`` labels, score the pool, pick 16 with each strategy."""
    from bench.corpus import mixed_texts

    texts = mixed_texts(n, 1)
    emb = encoder.embed(texts, show_progress=True)
    rng = np.random.default_rng(0)
    rows = rng.choice(n, size=labelled, replace=False)
    y_idx = rng.integers(0, 7, size=labelled)
    free = np.setdiff1d(np.arange(n), rows)
    out = {}
    for strategy in STRATEGIES:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            proba, ood = fast.pool_scores(emb, rows, y_idx, 7)
            strategies.select(strategy, strategies.PoolScores(emb, free, proba, ood), 16)
            times.append(time.perf_counter() - start)
        out[strategy] = round(min(times), 3)
    return out


def full_model_scores(strategy: str, seed: int = 0, max_labels: int = 256) -> list[dict]:
    """The full model (the demo's recipe: LoRA-tuned default LLM + fine-tuned MiniLM, soft-voted)
    trained on the ETHOS rows ``strategy`` chose by ``max_labels``, against the same model on as
    many random rows; scored on the ETHOS test split."""
    from agilecls.encoders.members import encoder_member
    from agilecls.ensemble import EnsembleClassifier
    from agilecls.lm.classifier import AgileClassifier

    pool_x, pool_y, test_x, test_y, labels, metric = load("ethos")
    encoder = SentenceEncoder("minilm", cache_dir=cache_dir("embeddings"))
    pool_emb, test_emb = encoder.embed(pool_x, show_progress=False), encoder.embed(test_x, show_progress=False)
    out = []
    for name in (strategy, "random"):
        rows: list[int] = []
        simulate(name, pool_emb, pool_y, test_emb, test_y, labels, metric, seed, 16, 16, max_labels, rows)
        clf = EnsembleClassifier([("encoder", encoder_member("minilm", "finetuned")),
                                  ("llm", AgileClassifier(labels=labels, tuning="lora", epochs=6,
                                                          instructions=load_ethos("train").meta["instructions"]))],
                                 labels=labels)
        start = time.perf_counter()
        clf.fit([pool_x[i] for i in rows], [pool_y[i] for i in rows])
        seconds = time.perf_counter() - start
        m = classification_metrics(test_y, clf.predict_proba(test_x), labels, positive_label="Negative")  # hateful
        out.append({"labels chosen by": name, "labels": len(rows), "roc_auc": m["roc_auc"], "f1": m["f1"],
                    "accuracy": m["accuracy"], "fit seconds": round(seconds)})
        print(out[-1], flush=True)
    return out


def main(argv=None) -> dict:
    parser = bench_parser(__doc__.split("\n\n")[0],
                          out_help="results file (default: bench/results/active_learning.json, with --full-model "
                                   "active_learning_full_model.json)")
    parser.add_argument("--datasets", nargs="*", default=["ethos", "tweets", "clinc20"],
                        help="none: only the loop step's latency")
    parser.add_argument("--strategies", nargs="+", default=STRATEGIES + [COLD_START])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed-size", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-labels", type=int, default=256)
    parser.add_argument("--latency-pool", type=int, default=10_000, help="0 skips the latency measurement")
    parser.add_argument("--plot", default="bench/results/active_learning.png")
    parser.add_argument("--full-model", default=None, metavar="STRATEGY",
                        help="only train the full model on ETHOS labels chosen by STRATEGY and by random selection")
    args = setup(parser.parse_args(argv))
    if args.full_model:
        rows = full_model_scores(args.full_model, max_labels=args.max_labels)
        print(format_table(rows))
        payload = {"rows": rows}
        write_results("active_learning_full_model", payload, args.out, argv=argv)
        return payload
    encoder = SentenceEncoder("minilm", cache_dir=cache_dir("embeddings"))
    results, rows = {}, []
    for name in args.datasets:
        pool_x, pool_y, test_x, test_y, labels, metric = load(name)
        pool_emb, test_emb = encoder.embed(pool_x, show_progress=False), encoder.embed(test_x, show_progress=False)
        curves = {}
        for strategy in args.strategies:
            runs = [simulate(strategy, pool_emb, pool_y, test_emb, test_y, labels, metric, seed, args.seed_size,
                             args.batch, args.max_labels) for seed in range(args.seeds)]
            mean = np.nanmean([[s for _, s in run] for run in runs], axis=0)
            curves[strategy] = [(n, float(s)) for (n, _), s in zip(runs[0], mean, strict=True)]
        target = curves["random"][-1][1] if "random" in curves else None
        for strategy, curve in curves.items():
            scores = np.array([s for _, s in curve])
            rows.append({"dataset": name, "metric": metric, "strategy": strategy,
                         **{f"@{n}": s for n, s in curve if n in (16, 32, 64, 128, 256)},
                         "area": float(np.nanmean(scores)),
                         "labels to reach random@max": labels_to_reach(curve, target) if target else None})
        results[name] = {"metric": metric, "pool": len(pool_x), "test": len(test_x), "classes": len(labels),
                         "curves": curves, "random_final": target}
        print(format_table([r for r in rows if r["dataset"] == name]), flush=True)
    summary = {}
    for name, res in results.items():
        reach = {s: labels_to_reach(c, res["random_final"]) for s, c in res["curves"].items() if s != "random"}
        best = min((n for n in reach.values() if n is not None), default=None)
        summary[name] = {"best_labels_to_reach_random_at_max": best,
                         "met": best is not None and best <= args.max_labels // 2}
    latency = step_latency(encoder, args.latency_pool) if args.latency_pool else None
    print(format_table(rows))
    print("target (best strategy reaches random@256 with <= 128 labels):",
          {k: v["met"] for k, v in summary.items()}, f"- met on {sum(v['met'] for v in summary.values())} of "
          f"{len(summary)} datasets")
    if latency:
        print(f"loop step on a {args.latency_pool}-text pool (seconds, cached embeddings):", latency)
    if results:
        plot(results, args.plot)
    payload = {"rows": rows, "results": results, "summary": summary, "latency_seconds": latency,
               "latency_pool": args.latency_pool, "seeds": args.seeds}
    write_results("active_learning", payload, args.out, argv=argv)
    return payload


def plot(results: dict, path: str) -> None:
    """One panel per dataset: the 3-seed mean test score against labels, one line per strategy."""
    from matplotlib.figure import Figure

    from agilecls.evaluation.plots import learning_curve_figure

    fig = Figure(figsize=(5 * len(results), 4.2), layout="constrained")
    for ax, (name, res) in zip(fig.subplots(1, len(results), squeeze=False)[0], results.items(), strict=True):
        learning_curve_figure(res["curves"], res["metric"], ax=ax)
        ax.set(xlabel="labels", title=f"{name} ({res['pool']} pool, {res['classes']} classes)")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
