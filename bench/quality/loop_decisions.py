"""Does the labelling loop draw the right conclusions on imbalanced data? A simulated annotator
labels real projects through the ``Project`` API (the same calls the Label page makes), and after
every round the newest version is scored on test rows the loop never trains on or looks at.

    python -m bench.quality.loop_decisions                                    # fast model, 3 seeds, 3 datasets
    python -m bench.quality.loop_decisions --full-seeds 0                     # + the full model at 128 and 256
    python -m bench.quality.loop_decisions --reference                        # + the stacked recipe on all rows
    python -m bench.quality.loop_decisions --datasets ethos --seeds 0 --max-labels 64   # a quick look

Datasets (pool: the training split, labels hidden; test: the test split, same class shares):
- ``ethos``: every ETHOS row with the hateful comments subsampled to 15%, two thirds as the pool
  and one third as test rows (a seeded split: the reference split's 198 test rows would keep only
  about 15 hateful ones);
- ``tweets``: the marketing tweets' smallest class (telefonía) against the rest;
- ``clinc20``: 20 CLINC150 intents drawn with seed 0 plus out-of-scope (its test rows
  subsampled to the pool's out-of-scope share).

Each project imports the pool, then the test rows with their labels marked as test (so the loop
scores every version on them but never trains on them; their texts join the pool's class-share
estimate as any unlabelled text would), and is pre-labelled zero-shot (similarity to a label
description). Rounds: 8 labels at a time to 32 (the cold start), then 16 to ``--max-labels``; the
default strategy and random; one in five texts shown is an audit text (the project default).
Per round: the version's F1 at its own decision rule (F1 of the rare class for two classes, macro F1
for CLINC), the oracle F1 (the best cut on the test rows for two classes; for CLINC the most probable
class under the test rows' true class shares), ROC-AUC, the audit estimate and its interval, and
the ROC-AUC of the suggestions shown (blend) against the zero-shot scores alone.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, precision_recall_curve

from agilecls.calibration.priors import shift_priors
from agilecls.datasets import load_ethos, load_tweets
from agilecls.evaluation.metrics import format_table
from agilecls.loop import Project
from agilecls.loop.decisions import ranking_score
from agilecls.loop.serving import version_proba
from bench.common import bench_parser, setup, write_results
from bench.quality.active_learning import clinc20

SCHEDULE_COLD = (8, 16, 24, 32)
ROUND = 16
FULL_AT = (128, 256)
STRATEGIES = ("diverse_margin", "random")
ETHOS_DESCRIPTIONS = {"Negative": "a hateful comment: hate speech, insults or threats against people",
                      "Positive": "an ordinary comment that is not hateful"}
TWEET_CLASS = "telefonía"
TWEET_DESCRIPTIONS = {TWEET_CLASS: "un tuit sobre telefonía, móviles y operadores de telecomunicaciones",
                      "otros": "un tuit sobre supermercados, bebidas, deportes, bancos, coches o alimentos"}


def _subsample(texts, y, positive, share, seed):
    rng = np.random.default_rng(seed)
    pos = [i for i, v in enumerate(y) if v == positive]
    neg = [i for i, v in enumerate(y) if v != positive]
    keep_pos = rng.choice(pos, size=min(len(pos), round(share / (1 - share) * len(neg))), replace=False)
    keep = sorted(np.r_[neg, keep_pos].astype(int).tolist())
    return [texts[i] for i in keep], [y[i] for i in keep]


def load(name: str) -> dict:
    """Pool and test texts with labels, the label names, descriptions and instructions."""
    if name == "ethos":
        every = load_ethos("all")
        texts, y = _subsample(every.texts, every.y, "Negative", 0.15, 0)
        order = np.random.default_rng(0).permutation(len(texts))
        cut = len(texts) * 2 // 3
        pool, test = order[:cut], order[cut:]
        return {"pool": ([texts[i] for i in pool], [y[i] for i in pool]),
                "test": ([texts[i] for i in test], [y[i] for i in test]), "labels": every.labels,
                "descriptions": ETHOS_DESCRIPTIONS, "instructions": every.meta["instructions"]}
    if name == "tweets":
        train, test = load_tweets("train"), load_tweets("test")
        relabel = lambda y: [v if v == TWEET_CLASS else "otros" for v in y]  # noqa: E731
        return {"pool": (train.texts, relabel(train.y)), "test": (test.texts, relabel(test.y)),
                "labels": [TWEET_CLASS, "otros"], "descriptions": TWEET_DESCRIPTIONS,
                "instructions": "¿El tuit trata de telefonía?"}
    px, py, labels = clinc20("train")
    tx, ty, _ = clinc20("test")
    share = py.count("oos") / len(py)
    in_scope = [i for i, v in enumerate(ty) if v != "oos"]
    oos = [i for i, v in enumerate(ty) if v == "oos"]
    keep = in_scope + np.random.default_rng(2).choice(oos, size=round(share / (1 - share) * len(in_scope)),
                                                       replace=False).tolist()
    descriptions = {lab: lab.replace("_", " ") for lab in labels if lab != "oos"} | {"oos": "something else"}
    return {"pool": (px, py), "test": ([tx[i] for i in keep], [ty[i] for i in keep]), "labels": labels,
            "descriptions": descriptions, "instructions": "Which intent does the request express?"}


def make_project(folder: Path, data: dict, seed: int, cache: Path | None) -> tuple[Project, dict]:
    """A project holding the pool (unlabelled) and the test rows (labelled, marked test)."""
    project = Project.create(folder, data["labels"], data["instructions"], descriptions=data["descriptions"])
    project.store.set_meta(salt=f"bench-{seed}")
    project.meta["salt"] = f"bench-{seed}"
    if cache is not None and cache.exists():
        shutil.copytree(cache, folder / "embeddings", dirs_exist_ok=True)
    px, py = data["pool"]
    tx, ty = data["test"]
    pd.DataFrame({"id": [f"p{i}" for i in range(len(px))], "text": px}).to_csv(folder.parent / "pool.csv", index=False)
    pd.DataFrame({"id": [f"t{i}" for i in range(len(tx))], "text": tx, "label": ty}).to_csv(
        folder.parent / "test.csv", index=False)
    project.import_texts(folder.parent / "pool.csv", id_col="id")
    project.import_texts(folder.parent / "test.csv", id_col="id", label_col="label")
    for i in range(len(tx)):
        project.mark_test(f"t{i}")
    project.prelabel(progress=False)
    truth = {f"p{i}": v for i, v in enumerate(py)}
    return project, truth


def positive_of(data: dict) -> str | None:
    return {"ethos": "Negative", "tweets": TWEET_CLASS}.get(data.get("name"))


def test_scores(project: Project, version: dict, data: dict) -> dict:
    """F1 at the version's rule, the oracle F1 and ROC-AUC on the test rows."""
    tx, ty = data["test"]
    labels = project.labels
    ids = [f"t{i}" for i in range(len(tx))]
    proba = version_proba(project.store, version, ids, len(labels))
    y_idx = np.array([labels.index(v) for v in ty])
    metrics = version["metrics"].get("test", {})
    if len(labels) == 2:
        pos = labels.index(data["positive"])
        precision, recall, _ = precision_recall_curve(y_idx == pos, proba[:, pos])
        oracle = float(np.nanmax(2 * precision * recall / np.clip(precision + recall, 1e-12, None)))
        return {"f1": metrics.get("f1"), "oracle_f1": oracle, "roc_auc": metrics.get("roc_auc")}
    truth_shares = np.bincount(y_idx, minlength=len(labels)) / len(y_idx)
    shares = np.array(list(version["metrics"]["rule"]["priors"].values()))
    oracle_pred = shift_priors(proba, np.clip(shares, 1e-9, None), np.clip(truth_shares, 1e-9, None)).argmax(axis=1)
    return {"f1": metrics.get("f1_macro"), "oracle_f1": float(f1_score(y_idx, oracle_pred, average="macro")),
            "roc_auc": metrics.get("roc_auc")}


def shown_auc(project: Project, data: dict) -> tuple[float, float, float]:
    """ROC-AUC of the suggestions shown and of the zero-shot scores alone on the test rows, and
    the zero-shot weight of the blend."""
    scored = project.scores()
    tx, ty = data["test"]
    rows = np.flatnonzero(scored.frame["id"].str.startswith("t").to_numpy())
    y_idx = np.array([project.labels.index(v) for v in ty])
    zero = project.zero_shot(scored.frame)
    shown = scored.proba if scored.proba is not None else zero
    return ranking_score(y_idx, shown[rows]), ranking_score(y_idx, zero[rows]), scored.weight


def run(name: str, data: dict, strategy: str, seed: int, max_labels: int, full: bool, cache: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"loop-{name}-"))
    try:
        project, truth = make_project(work / "project", data, seed, cache)
        if not cache.exists():
            shutil.copytree(work / "project" / "embeddings", cache)
        rounds, served = [], []
        schedule = list(SCHEDULE_COLD) + list(range(SCHEDULE_COLD[-1] + ROUND, max_labels + 1, ROUND))
        done = 0
        for target in schedule:
            while done < target:
                batch = project.suggest(min(target - done, ROUND), strategy, seed=seed * 1000 + done)
                if not batch:
                    break
                for row in batch:
                    project.label(row["id"], truth[row["id"]], "sim")
                    done += 1
            auc_shown, auc_zero, weight = shown_auc(project, data)
            row = {"labels": done, "shown_auc": auc_shown, "zero_shot_auc": auc_zero, "zero_shot_weight": weight}
            try:
                vid = project.train("fast")
            except ValueError:  # not two classes with two labels yet
                rounds.append(row)
                continue
            version = project.version(vid)
            audit = project.audit_estimate(vid)
            scores = test_scores(project, version, data)
            row.update(scores, n_train=version["n_labels"], audit_n=audit["n"], audit_enough=audit["enough"],
                       audit=audit["value"], audit_low=audit["low"], audit_high=audit["high"],
                       covered=None if not audit["enough"] or scores["f1"] is None else
                       bool(audit["low"] <= scores["f1"] <= audit["high"]))
            rounds.append(row)
            if full and done in FULL_AT:
                try:
                    served.append({"total_labels": done, **full_version(project, data)})
                except ValueError as err:  # too few labels of a class for the stacker's hold-out
                    served.append({"total_labels": done, "error": str(err)})
                    print("full:", err, flush=True)
        return {"dataset": name, "strategy": strategy, "seed": seed, "rounds": rounds, "full": served}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def full_version(project: Project, data: dict) -> dict:
    """Train the full version now; its test scores and whether it became the serving version."""
    serving_before = project.serving()
    start = time.perf_counter()
    vid = project.train("full")
    seconds = time.perf_counter() - start
    version = project.version(vid)
    ev = project.evaluate()
    serving_after = ev["serving"]
    before_audit = next(p["audit"] for p in ev["learning_curve"] if p["version"] == serving_before["id"])
    out = {"labels": version["n_labels"], "version": vid, "seconds": round(seconds),
           **test_scores(project, version, data),
           "audit": ev["audit"]["value"], "serving_audit_before": before_audit,
           "serves": serving_after["version"] == vid, "reason": (serving_after.get("passed_over") or {}).get("reason")
           if serving_after["version"] != vid else serving_after["reason"]}
    out["worse_but_serves"] = bool(out["serves"] and out["audit"] is not None and before_audit is not None
                                   and out["audit"] < before_audit)
    print("full:", out, flush=True)
    return out


def reference(name: str, data: dict) -> dict:
    """The demo's stacked recipe fitted on every pool row with its true label, scored on the test rows."""
    from agilecls.encoders.members import encoder_member
    from agilecls.ensemble import EnsembleClassifier
    from agilecls.lm.classifier import AgileClassifier

    px, py = data["pool"]
    tx, ty = data["test"]
    labels = data["labels"]
    binary = len(labels) == 2
    clf = EnsembleClassifier([("encoder", encoder_member("minilm", "finetuned")),
                              ("llm", AgileClassifier(labels=labels, tuning="lora", epochs=6,
                                                      instructions=data["instructions"]))],
                             labels=labels, combine="stack", cv=0.25,
                             threshold="expected_f1" if binary else None, pos_label=data.get("positive"))
    start = time.perf_counter()
    clf.fit(px, py)
    seconds = time.perf_counter() - start
    pred = clf.predict(tx)
    f1 = float(f1_score(ty, pred, pos_label=data["positive"]) if binary else f1_score(ty, pred, average="macro"))
    out = {"dataset": name, "rows": len(px), "f1": f1, "fit_seconds": round(seconds)}
    print("reference:", out, flush=True)
    return out


def summarise(runs: list[dict], references: dict) -> tuple[list[dict], dict]:
    """Per dataset, strategy and label count: 3-seed means; the targets' verdicts."""
    table, verdict = [], {}
    frame = pd.DataFrame([{**r, "dataset": run["dataset"], "strategy": run["strategy"], "seed": run["seed"]}
                          for run in runs for r in run["rounds"]])
    if frame.empty:
        return table, verdict
    for (name, strategy, n), part in frame.groupby(["dataset", "strategy", "labels"], sort=True):
        def mean(col, part=part):
            return float(part[col].astype(float).mean()) if col in part and part[col].notna().any() else None

        table.append({"dataset": name, "strategy": strategy, "labels": int(n), "f1_rule": mean("f1"),
                      "f1_oracle": mean("oracle_f1"), "roc_auc": mean("roc_auc"), "audit": mean("audit"),
                      "covered": mean("covered"), "shown_auc": mean("shown_auc"),
                      "zero_shot_auc": mean("zero_shot_auc"), "zs_weight": mean("zero_shot_weight")})
    rows = pd.DataFrame(table)
    late = rows[rows["labels"] >= 32]
    ratio = late["f1_rule"] / late["f1_oracle"]
    verdict["rule_vs_oracle_min_ratio_from_32"] = float(ratio.min())
    verdict["rule_vs_oracle_met"] = bool((ratio >= 0.9).all())
    cold = rows[rows["labels"].isin(SCHEDULE_COLD[:3])]
    verdict["cold_start_min_margin"] = float((cold["shown_auc"] - cold["zero_shot_auc"]).min())
    verdict["cold_start_met"] = bool(verdict["cold_start_min_margin"] >= -0.01)
    cov = frame[(frame["labels"] >= 64) & frame["covered"].notna()]
    verdict["audit_coverage_from_64"] = float(cov["covered"].astype(float).mean()) if len(cov) else None
    verdict["audit_rounds_with_estimate_from_64"] = int(len(cov))
    verdict["audit_met"] = bool(len(cov) and verdict["audit_coverage_from_64"] >= 0.8)
    zero = frame[frame["f1"].notna()]  # every round with a version: two classes had two labels
    verdict["f1_zero_rounds"] = int((zero["f1"].astype(float) == 0).sum())
    at128 = rows[(rows["labels"] == 128) & (rows["strategy"] == STRATEGIES[0])]
    verdict["default_at_128_vs_reference"] = {
        r["dataset"]: {"f1": r["f1_rule"], "reference": references.get(r["dataset"], {}).get("f1"),
                       "ratio": (r["f1_rule"] / references[r["dataset"]]["f1"]) if r["dataset"] in references else None}
        for _, r in at128.iterrows()}
    fulls = [f for run in runs for f in run["full"] if "error" not in f]
    verdict["full_versions"] = len(fulls)
    verdict["worse_full_served"] = int(sum(f["worse_but_serves"] for f in fulls))
    return table, verdict


def plot(table: list[dict], path: Path) -> None:
    """Per dataset: F1 at the rule and the oracle F1 against labels, both strategies; the audit mean."""
    from matplotlib.figure import Figure

    rows = pd.DataFrame(table)
    names = list(dict.fromkeys(rows["dataset"]))
    fig = Figure(figsize=(5 * len(names), 4), layout="constrained")
    for ax, name in zip(fig.subplots(1, len(names), squeeze=False)[0], names, strict=True):
        for strategy, colour in zip(STRATEGIES, ("#5b3fd6", "#d9480f"), strict=True):
            part = rows[(rows["dataset"] == name) & (rows["strategy"] == strategy)]
            ax.plot(part["labels"], part["f1_rule"], "-o", ms=3, color=colour, label=f"{strategy}: F1 at its rule")
            ax.plot(part["labels"], part["f1_oracle"], ":", color=colour, label=f"{strategy}: oracle cut")
            ax.plot(part["labels"], part["audit"], "x", color=colour, label=f"{strategy}: audit estimate")
        ax.set(title=name, xlabel="labels", ylabel="F1 (rare class) / macro F1", ylim=(0, 1))
        ax.legend(fontsize=7, loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def loop_step(pool: int = 10_000, labelled: int = 256, repeats: int = 5) -> dict:
    """Seconds of one loop step on a ``pool``-text project with cached embeddings: a label, the
    fast model retrained as a new version (what the page's background retrain runs), 16 new
    suggestions."""
    from bench.corpus import mixed_texts

    work = Path(tempfile.mkdtemp(prefix="loop-step-"))
    try:
        texts = mixed_texts(pool, 1)
        pd.DataFrame({"id": [f"x{i}" for i in range(pool)], "text": texts}).to_csv(work / "pool.csv", index=False)
        project = Project.create(work / "p", ["a", "b"])
        project.import_texts(work / "pool.csv", id_col="id")
        project.embeddings(project.store.frame(), progress=True)
        rng = np.random.default_rng(0)
        for i in rng.choice(pool, size=labelled, replace=False):
            project.label(f"x{i}", "a" if len(texts[i]) % 3 else "b")
        times = []
        for r in range(repeats):
            start = time.perf_counter()
            project.label(f"x{r}", "a")
            project.train("fast")
            project.suggest(16)
            times.append(time.perf_counter() - start)
        return {"pool": pool, "labels": labelled, "seconds": [round(t, 3) for t in times], "best": round(min(times), 3),
                "median": round(float(np.median(times)), 3)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> dict:
    parser = bench_parser(__doc__.split("\n\n")[0], seeds=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=["ethos", "tweets", "clinc20"])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--max-labels", type=int, default=256)
    parser.add_argument("--full-seeds", type=int, nargs="*", default=[],
                        help="seeds whose default-strategy runs also train the full model at 128 and 256 labels")
    parser.add_argument("--reference", action="store_true", help="also fit the stacked recipe on every pool row")
    parser.add_argument("--step-pool", type=int, default=10_000, help="0 skips the loop-step latency")
    parser.add_argument("--plot", default="bench/results/loop_decisions.png")
    args = setup(parser.parse_args(argv))
    runs, references = [], {}
    for name in args.datasets:
        data = {**load(name), "name": name}
        data["positive"] = positive_of(data)
        cache = Path(tempfile.gettempdir()) / f"agilecls-bench-emb-{name}"
        for strategy in args.strategies:
            for seed in args.seeds:
                full = strategy == STRATEGIES[0] and seed in args.full_seeds
                runs.append(run(name, data, strategy, seed, args.max_labels, full, cache))
                last = runs[-1]["rounds"][-1]
                print(f"{name} {strategy} seed {seed}: {last}", flush=True)
        if args.reference:
            references[name] = reference(name, data)
        table, verdict = summarise(runs, references)  # written after every dataset: a stopped run keeps them
        write_results("loop_decisions", {"table": table, "verdict": verdict, "runs": runs, "references": references,
                                         "loop_step": None}, args.out, argv=argv)
    table, verdict = summarise(runs, references)
    print(format_table(table))
    print(verdict)
    step = loop_step(args.step_pool) if args.step_pool else None
    if step:
        print("loop step:", step)
    payload = {"table": table, "verdict": verdict, "runs": runs, "references": references, "loop_step": step}
    write_results("loop_decisions", payload, args.out, argv=argv)
    if table:
        plot(table, Path(args.plot))
    return payload


if __name__ == "__main__":
    main()
