"""``agilecls demo``: the main job, end to end on the ETHOS hate-speech reference split."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ..recipes import build_recipe
from .classify import evaluate
from .common import check_output_file, check_output_folder, refuse

DEMO_REPORT = Path("reports/demo.html")
#: Demo tuning budget: a few minutes on a 2-core CPU (docs/benchmarks.md).
DEMO_TRAIN_SIZE = 800
DEMO_EPOCHS = 6
DEMO_ENCODER = "minilm"
#: Share of the training rows held out to fit the stacker and the threshold on. Cross-fitting (k
#: fits per member) would multiply the demo's few minutes; one hold-out costs nothing extra, as the
#: members train on the other rows only.
DEMO_HOLDOUT = 0.25


def demo_estimator(train, model: str | None, encoder: str, combine: str, holdout: float, threshold: str | None,
                   epochs: int):
    """The demo's tuned classifier, unfitted: the ``best`` recipe (``llm`` when ``encoder`` is '')."""
    return build_recipe("best" if encoder else "llm", train.labels, model=model, encoder=encoder or "minilm",
                        instructions=train.meta["instructions"], positive=train.meta.get("positive_label"),
                        holdout=holdout, combine=combine, threshold=threshold or "none", llm={"epochs": epochs})


MODEL = typer.Option(None, "--model", "-m", help="Language model spec (default: the bundled default).")
OUT = typer.Option(None, "--out", "-o", help="Also save the tuned classifier to this folder.")
LIMIT = typer.Option(None, help="Read only the first N test texts.")
REPORT = typer.Option(DEMO_REPORT, help="Where to write the HTML report.")
THRESHOLD = typer.Option("expected_f1", help="Decision threshold of the hateful class chosen on the held-out rows: "
                                             "expected_f1, f1, precision:<t>, recall:<t> or 'none' (with "
                                             "--combine stack).")
#: Options that only the tuned demo reads, and those that only its ensemble (an --encoder) reads.
TUNED_ONLY = ("encoder", "combine", "holdout", "threshold", "train_size", "epochs", "out")
ENSEMBLE_ONLY = ("combine", "holdout", "threshold")


def check_options(ctx, tune: bool, encoder: str, combine: str) -> None:
    """Refuse options that the chosen demo would ignore (one line naming what they need)."""
    if combine not in ("stack", "vote"):
        raise ValueError(f"--combine {combine!r}: use 'stack' or 'vote'")
    if not tune:
        refuse(ctx, TUNED_ONLY, "has no effect with --no-tune (it sets the tuned demo)")
        return
    refuse(ctx, ["shots"], "needs --no-tune (the tuned demo prompts without examples)")
    if not encoder:
        refuse(ctx, ENSEMBLE_ONLY, "has no effect with --encoder '' (it sets the ensemble)")
    if combine == "vote":
        refuse(ctx, ["threshold", "holdout"], "has no effect with --combine vote")


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(ctx: typer.Context, model: str | None = MODEL,
             tune: bool = typer.Option(True, "--tune/--no-tune", help="LoRA-tune on ETHOS training rows first "
                                                                      "(else few-shot prompting)."),
             encoder: str = typer.Option(DEMO_ENCODER, help="Sentence encoder that is fine-tuned and joins the tuned "
                                                            "model in an ensemble ('' = the LLM alone)."),
             combine: str = typer.Option("stack", help="How the ensemble combines its members: 'stack' (a "
                                                       "logistic regression fitted on held-out rows, calibrated) "
                                                       "or 'vote' (the mean, on all training rows)."),
             holdout: float = typer.Option(DEMO_HOLDOUT, help="Share of the training rows held out for the "
                                                              "stacker and the threshold (with --combine stack)."),
             threshold: str | None = THRESHOLD,
             train_size: int = typer.Option(DEMO_TRAIN_SIZE, help="Training rows used for tuning."),
             epochs: int = typer.Option(DEMO_EPOCHS, help="Tuning epochs."),
             shots: int = typer.Option(1, help="In-context examples per class (with --no-tune)."),
             limit: int | None = LIMIT, out: Path | None = OUT,
             report: Path = REPORT,
             as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object.")):
        """The main job: classify the ETHOS hate-speech test split with the bundled default model,
        LoRA-tuned on ETHOS training rows in a few minutes on a CPU and joined by a sentence-encoder
        head (or prompted, with --no-tune)."""
        from ..datasets import load_ethos
        from ..lm.classifier import AgileClassifier
        from ..lm.loading import DEFAULT_MODEL

        check_options(ctx, tune, encoder, combine)
        check_output_file(report, "--report")
        if out is not None:
            check_output_folder(out)

        def run():
            train, test = load_ethos("train"), load_ethos("test")
            test = test.head(limit) if limit else test
            if not tune:
                clf = AgileClassifier(labels=train.labels, model=model or DEFAULT_MODEL, shots=shots,
                                      instructions=train.meta["instructions"])
                typer.echo(f"agilecls demo: {clf.model}, {shots}-shot, ETHOS test split ({len(test)} texts)")
                return clf.fit(train.texts, train.y), test
            clf = demo_estimator(train, model, encoder, combine, holdout, threshold, epochs)
            llm = clf.estimators[1][1] if encoder else clf
            what = f"{llm.model} LoRA-tuned for {epochs} epochs (top {llm.top_layers} layers, rank {llm.rank})"
            if encoder:
                what += f" + the {encoder} sentence encoder fine-tuned with a softmax head"
                what += (f", stacked by a logistic regression on {holdout:.0%} held-out rows"
                         if combine == "stack" else ", soft-voted")
            typer.echo(f"agilecls demo: {what}; {train_size} ETHOS training texts; ETHOS test split "
                       f"({len(test)} texts)")
            start = time.perf_counter()
            clf.fit(train.texts[:train_size], train.y[:train_size])
            tuned = clf.named_estimators_["llm"] if encoder else clf
            typer.echo(f"trained in {time.perf_counter() - start:.0f} s; train loss per epoch: "
                       + ", ".join(f"{h['train_loss']:.3f}" for h in tuned.history_))
            if out is not None:
                clf.save(out)
                typer.echo(f"saved to {out}")
            return clf, test

        clf, test = run()
        name = clf.describe()
        how = f"trained on {train_size} texts, {epochs} epochs" if tune else f"{shots}-shot"
        info = {"model": name}
        info.update({"train texts": train_size, "epochs": epochs} if tune else {"shots": shots})
        proba = seconds = None
        result = {"model": name, "data": test.name, "texts": len(test), "report": str(report),
                  "out": None if out is None else str(out)}
        if tune and encoder:  # each member alone and their plain mean, for comparison with the ensemble
            from ..ensemble import soft_vote
            from ..evaluation.metrics import classification_metrics, format_table

            start = time.perf_counter()
            members = clf.member_probas(test.texts)
            proba, seconds = clf.combine_probas(list(members.values())), time.perf_counter() - start
            compared = {f"{member}: {clf.named_estimators_[member].describe()}": p for member, p in members.items()}
            if clf.combine == "stack":
                compared["soft vote of both (uncalibrated mean)"] = soft_vote(list(members.values()))
            rows = []
            for what, member_proba in compared.items():
                m = classification_metrics(test.y, member_proba, test.labels,
                                           positive_label=test.meta.get("positive_label"))
                rows.append({"member": what, **{k: m[k] for k in ("accuracy", "f1", "roc_auc", "ece")}})
            typer.echo("each member alone" + (", and their plain mean:" if clf.combine == "stack" else ":"))
            typer.echo(format_table(rows))
            typer.echo("the ensemble:")
            result["members"] = rows
        result["metrics"] = evaluate(clf, test, report, f"ETHOS hate speech, {how}, {name}", info, proba, seconds)
        if out is not None:  # the drift checks of `agilecls serve --model OUT` compare traffic with the test split
            from ..monitoring.drift import record_profile

            record_profile(clf, test.texts, out, source=f"the {len(test)} texts of {test.name}")
        return result
