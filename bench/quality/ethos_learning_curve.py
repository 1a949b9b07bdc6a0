"""ETHOS learning curve: LoRA-tuned AgileClassifiers on the bundled language models, sentence-encoder
classifiers (logistic heads on frozen embeddings, or fine-tuned encoders), and their soft-voting
EnsembleClassifier. F1 (hateful class) and ROC-AUC
on the 198 test rows after each tuning epoch of each language model, and of the fitted ensemble
and each member at the end, for the first 200 / 400 / 800 training rows of the seed's split.

Each run fits one real ``EnsembleClassifier`` (encoder members first, then the language models,
whose per-epoch callbacks score the test rows). Nothing is selected on the test rows: every epoch
of a fixed schedule is reported, and the members were chosen on validation rows of the training
split (bench/defaults/ethos_validation.py). ``run_seconds`` is the whole fit (embedding, heads, encoder
fine-tuning, LoRA tuning incl. caching the frozen lower layers), without the per-epoch test scoring.

    python -m bench.quality.ethos_learning_curve --models smollm2-135m-instruct gemma-3-270m \
        --encoders mpnet --finetuned-encoders mpnet --sizes 200 400 800 --epochs 6
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from agilecls import AgileClassifier, EnsembleClassifier
from agilecls.datasets import load_ethos
from agilecls.encoders.members import ENCODER_MEMBERS, encoder_member
from agilecls.evaluation.metrics import classification_metrics, format_table
from agilecls.evaluation.plots import learning_curve_figure
from bench.common import RESULTS, bench_parser, setup, write_results

FINETUNED = ENCODER_MEMBERS["finetuned"]
SEED_RESULTS = {200: {"f1": 0.80, "roc_auc": 0.78}, 800: {"f1": 0.84, "roc_auc": 0.88}}
TARGETS = {200: {"f1": 0.80, "roc_auc": 0.85}, 800: {"f1": 0.85, "roc_auc": 0.90}}


def scores(test, proba) -> dict:
    m = classification_metrics(test.y, proba, test.labels, positive_label="Negative")
    return {"f1": m["f1"], "roc_auc": m["roc_auc"], "accuracy": m["accuracy"]}


def short(name: str) -> str:
    return name.split("-")[0]


def run(size: int, train, test, args) -> dict:
    """Fit one ensemble on the first ``size`` rows; returns per-epoch rows and the final scores."""
    members = [(f"enc_{e}", encoder_member(e, "logistic", args.seed)) for e in args.encoders]
    members += [(f"enc_{e}_ft", encoder_member(e, "finetuned", args.seed)) for e in args.finetuned_encoders]
    members += [(f"llm_{short(m)}", AgileClassifier(
        labels=train.labels, model=m, tuning="lora", instructions=train.meta["instructions"], epochs=args.epochs,
        top_layers=args.top_layers, target_modules=args.target_modules, loss=args.loss, rank=args.rank,
        learning_rate=args.learning_rate, lr_schedule=args.lr_schedule, seed=args.seed, progress=args.progress))
        for m in args.models]
    epochs, scoring = [], [0.0]

    def on_epoch(member):
        def callback(info, clf):
            t0 = time.perf_counter()
            row = {"member": member, "train_size": size, "epoch": info.epoch, "train_loss": info.train_loss,
                   "epoch_seconds": info.seconds, **scores(test, clf.predict_proba(test.texts))}
            epochs.append(row)
            scoring[0] += time.perf_counter() - t0
            print(format_table([row]), flush=True)
        return callback

    start = time.perf_counter()
    fit_params = {name: {"callback": on_epoch(name)} for name, _ in members if name.startswith("llm_")}
    ens = EnsembleClassifier(members).fit(train.texts[:size], train.y[:size], **fit_params)
    seconds = time.perf_counter() - start - scoring[0]
    # the fitted estimators' own predictions (full forward pass, as after loading them); the
    # per-epoch rows score through the cached lower layers, which agrees up to the dtype's rounding
    probas = ens.member_probas(test.texts)
    final = {"train_size": size, "run_seconds": seconds,
             "members": {name: scores(test, p) for name, p in probas.items()},
             "ensemble": scores(test, ens.predict_proba(test.texts)),
             "member_seconds": {name: getattr(m, "tuning_seconds_", None) or getattr(m, "fit_seconds_", None)
                                for name, m in ens.estimators_},
             "dtype": {name: str(m.lm_.dtype) for name, m in ens.estimators_ if hasattr(m, "lm_")}}
    print(json.dumps(final, indent=1), flush=True)
    return {"epochs": epochs, "final": final}


def main(argv=None) -> None:
    parser = bench_parser(__doc__, out=str(RESULTS / "ethos_learning_curve"), threads=2, seed=0,
                          out_help="results file, .json and .png are added "
                                   "(default: bench/results/ethos_learning_curve)")
    parser.add_argument("--models", nargs="*", default=["smollm2-135m-instruct", "gemma-3-270m"])
    parser.add_argument("--encoders", nargs="*", default=["mpnet"], help="logistic heads on frozen embeddings")
    parser.add_argument("--finetuned-encoders", nargs="*", default=["mpnet"],
                        help=f"encoders {FINETUNED['describe']} ({FINETUNED['params']['epochs']} epochs, "
                             f"batches of {FINETUNED['params']['batch_size']})")
    parser.add_argument("--sizes", nargs="+", type=int, default=[200, 400, 800])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--top-layers", type=int, default=4)
    parser.add_argument("--target-modules", default="attention")
    parser.add_argument("--loss", default="label")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--lr-schedule", default="linear")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--report-only", action="store_true", help="Only print and plot the saved JSON.")
    args = setup(parser.parse_args(argv))
    out = Path(args.out)
    if args.report_only:
        return report(json.loads(out.with_suffix(".json").read_text())["runs"], out)
    if len(args.models) + len(args.encoders) + len(args.finetuned_encoders) < 2:
        parser.error("an ensemble needs at least two members (--models, --encoders, --finetuned-encoders)")
    train, test = load_ethos("train"), load_ethos("test")
    runs = []
    for size in args.sizes:
        runs.append(run(size, train, test, args))
        write_results(out.stem, {"config": vars(args), "seed_gemma_2b": SEED_RESULTS, "targets": TARGETS,
                                 "runs": runs}, out.with_suffix(".json"), argv=argv)
    report(runs, out)


def report(runs: list[dict], out: Path) -> None:
    """Print the fitted estimators' table and draw F1 and ROC-AUC against epochs: one line per
    language model and training size, the ensemble as a star at the last epoch."""
    from matplotlib.figure import Figure  # no pyplot, as agilecls.evaluation.plots: works headless

    table = []
    for r in runs:
        f = r["final"]
        for name, m in list(f["members"].items()) + [("ensemble", f["ensemble"])]:
            table.append({"train_size": f["train_size"], "estimator": name, **m,
                          "fit_seconds": f["run_seconds"] if name == "ensemble" else f["member_seconds"].get(name)})
    print("\nFitted estimators on the 198 ETHOS test rows (seed, 2.5B Gemma LoRA on a GPU: F1 0.80 / ROC-AUC 0.78 "
          "at 200 rows, 0.84 / 0.88 at 800; targets 0.80 / 0.85 at 200, 0.85 / 0.90 at 800)")
    print(format_table(table, ["train_size", "estimator", "f1", "roc_auc", "accuracy", "fit_seconds"]))
    fig = Figure(figsize=(11, 4.5))
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("f1", "roc_auc"), strict=True):
        curves = {}
        for r in runs:
            size = r["final"]["train_size"]
            for member in sorted({e["member"] for e in r["epochs"]}):
                curves[f"{member[4:]} n={size}"] = [(e["epoch"], e[metric]) for e in r["epochs"]
                                                    if e["member"] == member]
        refs = {f"seed 2.5B n={n}": v[metric] for n, v in SEED_RESULTS.items()}
        learning_curve_figure(curves, metric, ax=ax, references=refs, styles={k: {"alpha": 0.7} for k in curves})
        last = max(e["epoch"] for r in runs for e in r["epochs"])
        for r in runs:
            ax.plot([last], [r["final"]["ensemble"][metric]], marker="*", ms=14, ls="none",
                    label=f"ensemble n={r['final']['train_size']}")
        ax.legend(fontsize=7)
        ax.set_title(f"ETHOS test {metric} vs. epochs")
    fig.savefig(out.with_suffix(".png"), dpi=110)


if __name__ == "__main__":
    main()
