"""agilecls against what a user would pick instead, fitted on the same rows in the same run.

Peers: SetFit (setfit 1.2, body = the bundled all-MiniLM-L6-v2 sentence encoder, logistic head)
and TF-IDF + logistic regression (``TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))`` +
``LogisticRegression(max_iter=2000)``). The agilecls configurations (public API only) are listed,
with their recipes, in :mod:`bench.quality.peer_configs`.

Data: ETHOS (800 training rows, 198 test rows), training sizes 200 / 400 / 800 drawn from the
training rows with the seed, stratified (at 800: all rows, so the seed changes only the models'
seeds); the Spanish marketing tweets (7 classes), 8 / 16 / 32 examples per class drawn from the
train split with the seed, scored on the 1242 test rows. Every model gets the seed (torch, numpy,
random, SetFit's ``seed``, agilecls's ``random_state`` / ``seed``, and the calibration and
stacking hold-out split). Torch runs on 2 threads.

Measured per (dataset, size, seed, configuration): ``fit_seconds`` (construction, model loading
and ``fit``; no test scoring) and, scoring the test rows once, ROC-AUC (ETHOS: of the hateful
class ``train.meta["positive_label"]``; tweets: one-vs-rest macro), F1 of the hateful class
(ETHOS), macro F1, accuracy and ECE (15 bins), from
:func:`agilecls.evaluation.metrics.classification_metrics`. Nothing is chosen on the test rows.
The summary is the mean ± sample std over seeds per dataset x size x configuration, and the margin
of agilecls's best configuration (by mean ROC-AUC on ETHOS, mean macro F1 on tweets; a reporting
choice among fixed configurations, not a model selection) over SetFit, with the std of the
per-seed paired differences.

Notes
-----
SetFit setting. SetFit 1.x's default ``sampling_strategy="oversampling"`` trains one epoch on twice
the larger of the same-label and different-label pair counts (pairs drawn with replacement):
20,200 pairs, 1,263 steps of 16 pairs, for 200 ETHOS rows (100 per class) and 320,808 pairs,
20,051 steps, for all 800. Timed on this machine (2-core AMD EPYC, avx2, 2 torch threads, shared with
other work): a default fit at 200 rows ran 141 of its 1,263 steps in 466 s (3.3 s per step of 32
sentences at SetFit's 256-token limit) before it was stopped at 8 minutes, so one default fit
would take about 70 min at 200 rows and about 18 h at 800, far over the 4 minutes allowed.
SetFit therefore runs with ``num_iterations=20`` (the SetFit paper's setting: 2 x 20 pairs per
training row) on both datasets; every other SetFit setting is its default (``batch_size=(16, 2)``,
``num_epochs=(1, 16)``, ``body_learning_rate=(2e-5, 1e-5)``, logistic-regression head). That is
still the costliest fit here: 40 x rows pairs at 3.2 s per 16 (measured: 50 steps in 160 s at 200
ETHOS rows), about 27 / 53 / 107 min per ETHOS fit at 200 / 400 / 800 rows; 1.7 s per step on the
short tweets, about 4 / 8 / 16 min at 8 / 16 / 32 per class. ``--setfit-iterations 0`` runs
SetFit's default sampling instead (stored as configuration ``setfit_oversampling``, any other
value as ``setfit_it<N>``, so results of different settings never mix). Checkpoints go to a
temporary folder and no tracker is reported to; neither changes the fit. ``SETFIT_DECISION`` in
the JSON records these numbers.

Resumable: each finished fit is appended to the JSON (through :func:`bench.common.write_results`)
and fits already there are skipped on a re-run with the same ``--out``, so the long run can be done
in pieces (``--no-resume`` starts afresh); the summary is recomputed over every fit in the file.

Examples
--------
The full run, about 11.5 h on 2 CPU cores, 9.3 h of it SetFit on ETHOS (``--with-llm``: about
35 min more); in pieces by ``--datasets`` / sizes / ``--configs``, but one SetFit fit at 800 ETHOS
rows is about 107 min and cannot be split::

    python -m bench.quality.peers --datasets ethos tweets --ethos-sizes 200 400 800 --tweets-shots 8 16 32 \\
        --seeds 0 1 2 --configs tfidf setfit encoder encoder_cal encoder_cal5 [--with-llm]

Only the summary of a results file::

    python -m bench.quality.peers --report-only --out bench/results/peers
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from agilecls.datasets import load_dataset, load_ethos, stratified_sample
from agilecls.evaluation.metrics import classification_metrics, format_table
from bench.common import RESULTS, bench_parser, command_line, seed_everything, setup, write_results
from bench.quality.peer_configs import CONFIGS, ETHOS_ONLY, MPNET_CONFIGS, agile_estimator, fitted_facts, recipes

PEERS = ("tfidf", "setfit")
AGILE = tuple(CONFIGS)
#: SetFit's num_iterations used unless --setfit-iterations says otherwise (0: SetFit's default sampling).
SETFIT_ITERATIONS = 20
#: The timing that decided SETFIT_ITERATIONS (this machine, 2 torch threads).
SETFIT_DECISION = {
    "default": "sampling_strategy='oversampling' (SetFit 1.2), 1 epoch, batches of 16 pairs, 256-token limit",
    "default_pairs": {"ethos_200": 20200, "ethos_400": 80402, "ethos_800": 320808,
                      "tweets_8": 2688, "tweets_16": 10752, "tweets_32": 43008},
    "default_ethos_200_measured": "141 of 1263 steps in 466 s (3.3 s/step), stopped at 8 min",
    "default_ethos_200_estimated_seconds": 4170,
    "default_ethos_800_estimated_seconds": 66000,
    "limit_seconds_at_800": 240,
    "chosen": f"num_iterations={SETFIT_ITERATIONS}",
    "chosen_pairs": "2 x num_iterations x training rows (8,000 at 200 ETHOS rows, 32,000 at 800)",
    "chosen_measured": "3.2 s/step on ETHOS (50 steps in 160 s, num_iterations=2 at 200 rows); "
                       "1.7 s/step on tweets (140 steps in 242 s, 8 per class)",
    "chosen_ethos_estimated_seconds": {"200": 1600, "400": 3200, "800": 6400},
    "machine": "2-core AMD EPYC (avx2), 2 torch threads",
}
#: The score the margin over SetFit is taken on, per dataset.
PRIMARY = {"ethos": "roc_auc", "tweets": "f1_macro"}
METRICS = ("roc_auc", "f1", "f1_macro", "accuracy", "ece")


def setfit_name(iterations: int) -> str:
    if iterations == 0:
        return "setfit_oversampling"
    return "setfit" if iterations == SETFIT_ITERATIONS else f"setfit_it{iterations}"


def setfit_pairs(y: list[str], iterations: int) -> int:
    """Sentence pairs SetFit 1.2 trains on: 2 x iterations x rows, or (oversampling) twice the larger
    of the same-label pairs and the different-label pairs, drawn with replacement."""
    if iterations:
        return 2 * iterations * len(y)
    counts = np.unique(np.asarray(y, dtype=object), return_counts=True)[1].astype(np.int64)
    same = int((counts * (counts + 1) // 2).sum())
    different = int((counts.sum() ** 2 - (counts ** 2).sum()) // 2)
    return 2 * max(same, different)


def load(name: str):
    if name == "ethos":
        return load_ethos("train"), load_ethos("test")
    return load_dataset(name, "train"), load_dataset(name, "test")


def training_rows(name: str, train, size: int, seed: int) -> list[int]:
    """ETHOS: ``size`` rows drawn stratified with the seed (all rows at ``size >= len(train)``);
    tweets: ``size`` rows per class drawn with the seed, shuffled so no model sees them by class."""
    if name == "ethos":
        if size >= len(train):
            return list(range(len(train)))
        picked, _ = train_test_split(np.arange(len(train)), train_size=size, stratify=train.y, random_state=seed)
        return [int(i) for i in picked]
    picked = stratified_sample(train.y, size, seed)
    np.random.default_rng(seed).shuffle(picked)
    return [int(i) for i in picked]


def in_order(proba, own_classes, labels) -> np.ndarray:
    """Probability columns reordered from a model's ``own_classes`` to ``labels``."""
    own = [str(c) for c in own_classes]
    return np.asarray(proba, dtype=np.float64)[:, [own.index(str(c)) for c in labels]]


def fit_tfidf(texts, y, labels, test_texts, seed, args):
    start = time.perf_counter()
    clf = make_pipeline(TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)), LogisticRegression(max_iter=2000))
    clf.fit(texts, y)
    seconds = time.perf_counter() - start
    return seconds, lambda: (in_order(clf.predict_proba(test_texts), clf.classes_, labels), None), {}


def fit_setfit(texts, y, labels, test_texts, seed, args):
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from agilecls.encoders.sentence import minilm_path

    folder = tempfile.mkdtemp(prefix="agilecls-peers-setfit-")
    try:
        start = time.perf_counter()
        model = SetFitModel.from_pretrained(str(minilm_path()))
        settings = {"seed": seed, "output_dir": folder, "save_strategy": "no", "report_to": "none"}
        if args.setfit_iterations:
            settings["num_iterations"] = args.setfit_iterations
        train = Dataset.from_dict({"text": list(texts), "label": [labels.index(v) for v in y]})
        trainer = Trainer(model=model, args=TrainingArguments(**settings), train_dataset=train)
        trainer.train()
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    classes = [labels[int(i)] for i in model.model_head.classes_]
    extra = {"setfit": {"num_iterations": args.setfit_iterations or None,
                        "sampling_strategy": None if args.setfit_iterations else "oversampling",
                        "pairs": setfit_pairs(y, args.setfit_iterations),
                        "body_steps": -(-setfit_pairs(y, args.setfit_iterations) // 16)}}
    return seconds, lambda: (in_order(model.predict_proba(list(test_texts), as_numpy=True), classes, labels),
                             None), extra


def fit_agile(config, train):
    def fit(texts, y, labels, test_texts, seed, args):
        start = time.perf_counter()
        clf = agile_estimator(config, train, seed)
        clf.fit(list(texts), list(y))
        seconds = time.perf_counter() - start
        def score():
            proba = in_order(clf.predict_proba(list(test_texts)), clf.classes_, labels)
            threshold = clf.decision_rule()
            return proba, (threshold.decide(proba, labels) if threshold is not None else None)
        return seconds, score, fitted_facts(config, clf)
    return fit


def run_fit(dataset: str, size: int, seed: int, config: str, rows: list[int], train, test, args) -> dict:
    texts, y = [train.texts[i] for i in rows], [train.y[i] for i in rows]
    fit = fit_tfidf if config == "tfidf" else fit_setfit if config.startswith("setfit") else fit_agile(config, train)
    seed_everything(seed)
    seconds, score, extra = fit(texts, y, train.labels, test.texts, seed, args)
    start = time.perf_counter()
    proba, y_pred = score()  # the test rows, once; y_pred: decisions of a chosen threshold, else None
    score_seconds = time.perf_counter() - start
    m = classification_metrics(test.y, proba, test.labels, positive_label=train.meta.get("positive_label"),
                               y_pred=y_pred)
    return {"dataset": dataset, "size": size, "seed": seed, "config": config, "train_rows": len(rows),
            "train_rows_sha1": hashlib.sha1(json.dumps(sorted(rows)).encode()).hexdigest()[:12],
            "fit_seconds": seconds, "score_seconds": score_seconds, "test_rows": len(test),
            **{k: m.get(k) for k in METRICS}, "metrics": m, **extra}


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def cell(mean: float | None, std: float | None, fmt: str = ".3f") -> str:
    if mean is None:
        return ""
    return format(mean, fmt) + ("" if std is None else "±" + format(std, fmt))


def summarize(fits: list[dict]) -> tuple[list[dict], list[dict]]:
    """(per dataset x size x config: means and stds over seeds; margins of agilecls's best over SetFit)."""
    groups: dict[tuple, list[dict]] = {}
    for f in fits:
        groups.setdefault((f["dataset"], f["size"], f["config"]), []).append(f)
    order = {c: i for i, c in enumerate(PEERS + AGILE)}
    rank = lambda config: order.get("setfit" if config.startswith("setfit") else config, len(order))  # noqa: E731
    summary = []
    for (dataset, size, config), rows in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], rank(kv[0][2]),
                                                                                  kv[0][2])):
        entry = {"dataset": dataset, "size": size, "config": config, "seeds": sorted(r["seed"] for r in rows)}
        for key in ("fit_seconds",) + METRICS:
            mean, std = mean_std([r.get(key) for r in rows])
            if mean is not None:
                entry[key], entry[f"{key}_std"] = mean, std
        summary.append(entry)
    margins = []
    for dataset, size in dict.fromkeys((s["dataset"], s["size"]) for s in summary):
        metric = PRIMARY.get(dataset, "f1_macro")
        here = [s for s in summary if (s["dataset"], s["size"]) == (dataset, size) and s.get(metric) is not None]
        seeds = max((len(s["seeds"]) for s in here), default=0)
        agile = [s for s in here if s["config"] in AGILE and len(s["seeds"]) == seeds]  # the best of full runs
        same_body = [s for s in agile if s["config"] not in MPNET_CONFIGS]
        pools = [("minilm (SetFit's body)", same_body), ("any bundled encoder", agile)]
        bests = {}
        for body, pool in pools:
            best = max(pool, key=lambda s: s[metric]) if pool else None
            if best and best["config"] not in {b["config"] for b in bests.values()}:
                bests[body] = best
        for (body, best), peer in ((b, p) for b in bests.items() for p in here if p["config"].startswith("setfit")):
            by_seed = {f["seed"]: f[metric] for f in groups[(dataset, size, peer["config"])]}
            paired = [f[metric] - by_seed[f["seed"]] for f in groups[(dataset, size, best["config"])]
                      if f["seed"] in by_seed]
            diff, diff_std = mean_std(paired)
            margins.append({"dataset": dataset, "size": size, "metric": metric, "encoders": body,
                            "best_agilecls": best["config"],
                            "best_agilecls_score": best[metric], "peer": peer["config"], "peer_score": peer[metric],
                            "margin": best[metric] - peer[metric], "paired_margin": diff,
                            "paired_margin_std": diff_std, "paired_seeds": len(paired),
                            "fit_seconds_ratio": best["fit_seconds"] / peer["fit_seconds"]})
    return summary, margins


def print_summary(summary: list[dict], margins: list[dict]) -> None:
    rows = []
    for s in summary:
        row = {"dataset": s["dataset"], "size": s["size"], "config": s["config"], "seeds": len(s["seeds"]),
               "fit_s": cell(s.get("fit_seconds"), s.get("fit_seconds_std"), ".2f" if s["fit_seconds"] < 10 else ".0f")}
        for key in METRICS:
            row[key] = cell(s.get(key), s.get(f"{key}_std"))
        rows.append(row)
    print("\nMeans ± std over seeds (size: ETHOS training rows, tweets examples per class; fit_s: seconds per fit)")
    print(format_table(rows))
    if margins:
        print("\nagilecls's best configuration against SetFit (ETHOS: ROC-AUC, tweets: macro F1; "
              "paired: mean ± std of the per-seed differences)")
        print(format_table([{"dataset": m["dataset"], "size": m["size"], "metric": m["metric"],
                             "encoders": m.get("encoders", ""), "best agilecls": m["best_agilecls"],
                             "score": m["best_agilecls_score"],
                             "peer": m["peer"], "peer score": m["peer_score"],
                             "margin": cell(m["paired_margin"], m["paired_margin_std"]),
                             "fit time ratio": f"{m['fit_seconds_ratio']:.2f}x"} for m in margins]))


def main(argv=None) -> dict:
    parser = bench_parser(__doc__, out=str(RESULTS / "peers"), threads=2, seeds=[0, 1, 2], resume=True,
                          out_help="results file, .json is added (default: bench/results/peers.json)")
    parser.add_argument("--datasets", nargs="+", choices=["ethos", "tweets"], default=["ethos", "tweets"])
    parser.add_argument("--ethos-sizes", nargs="+", type=int, default=[200, 400, 800], help="training rows")
    parser.add_argument("--tweets-shots", nargs="+", type=int, default=[8, 16, 32], help="examples per class")
    parser.add_argument("--configs", nargs="+", choices=list(PEERS) + list(AGILE),
                        default=list(PEERS) + ["encoder", "encoder_s200", "encoder_cal5e"])
    parser.add_argument("--with-llm", action="store_true",
                        help="add stack_llm on ETHOS (the demo's stacked ensemble; ~6 min per fit at 800 rows)")
    parser.add_argument("--with-mpnet", action="store_true",
                        help="add mpnet and stack_mpnet on ETHOS (the optional mpnet encoder must be installed)")
    parser.add_argument("--setfit-iterations", type=int, default=SETFIT_ITERATIONS,
                        help="SetFit num_iterations (0: SetFit's default sampling_strategy='oversampling')")
    parser.add_argument("--report-only", action="store_true", help="only print the summary of --out")
    args = setup(parser.parse_args(argv))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = Path(args.out).with_suffix(".json")
    old = json.loads(out.read_text()) if out.exists() and (args.resume or args.report_only) else {}
    fits = list(old.get("fits", []))
    if args.report_only:
        print_summary(*summarize(fits))
        return old
    done = {(f["dataset"], f["size"], f["seed"], f["config"]) for f in fits}
    settings = {"threads": args.threads, "setfit_num_iterations": args.setfit_iterations or None,
                "tfidf": "TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)) + LogisticRegression(max_iter=2000)",
                **recipes()}

    pieces = list(old.get("pieces", [])) + [command_line(argv, "bench.quality.peers")]  # every run that added fits

    def save() -> None:
        summary, margins = summarize(fits)
        write_results(out.stem, {"settings": settings, "setfit_decision": SETFIT_DECISION, "pieces": pieces,
                                 "fits": fits, "summary": summary, "margins": margins}, out, argv=argv)

    for dataset in args.datasets:
        train, test = load(dataset)
        sizes = args.ethos_sizes if dataset == "ethos" else args.tweets_shots
        configs = [setfit_name(args.setfit_iterations) if c == "setfit" else c for c in args.configs]
        configs += ["stack_llm"] if args.with_llm and dataset == "ethos" else []
        configs += ["mpnet", "stack_mpnet"] if args.with_mpnet and dataset == "ethos" else []
        for size in sizes:
            for seed in args.seeds:
                rows = training_rows(dataset, train, size, seed)
                for config in configs:
                    if dataset != "ethos" and config in ETHOS_ONLY:
                        print(f"skip {dataset} {config}: it needs ETHOS's positive label", flush=True)
                        continue
                    if (dataset, size, seed, config) in done:
                        print(f"skip {dataset} size={size} seed={seed} {config}: already in {out}", flush=True)
                        continue
                    print(f"fit {dataset} size={size} ({len(rows)} rows) seed={seed} {config}", flush=True)
                    fits.append(run_fit(dataset, size, seed, config, rows, train, test, args))
                    done.add((dataset, size, seed, config))
                    save()
                    print(format_table([{k: v for k, v in fits[-1].items()
                                         if v is not None and not isinstance(v, (dict, list))}]), flush=True)
    summary, margins = summarize(fits)
    print_summary(summary, margins)
    return {"fits": fits, "summary": summary, "margins": margins}


if __name__ == "__main__":
    main()
