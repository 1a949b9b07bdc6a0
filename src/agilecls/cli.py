"""The ``agilecls`` command. Core sub-commands live here; workflow-specific ones in
``agilecls.commands.*`` modules, each exposing ``register(app)``."""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Agile text classifiers on small language models.")

DEMO_REPORT = Path("reports/demo.html")
#: Demo tuning budget: a few minutes on a 2-core CPU (see README, Agile tuning).
DEMO_TRAIN_SIZE = 800
DEMO_EPOCHS = 6
DEMO_ENCODER = "minilm"


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def read_texts(texts: List[str], file: Optional[Path], text_col: str) -> list[str]:
    """Texts from arguments, a file (one per line, or CSV/JSONL with ``text_col``) or standard input."""
    if file is not None:
        if file.suffix.lower() in (".csv", ".tsv", ".jsonl", ".json"):
            from .datasets import load_file

            return load_file(file, text_col=text_col, label_col=None).texts
        return [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if texts:
        return list(texts)
    if not sys.stdin.isatty():
        return [line for line in sys.stdin.read().splitlines() if line.strip()]
    fail("give texts as arguments, --file, or on standard input")


def parse_labels(labels: Optional[str]) -> Optional[list[str]]:
    return [label.strip() for label in labels.split(",") if label.strip()] if labels else None


def run_guarded(fn, *args, **kwargs):
    """Turn the errors users cause (bad data, unknown model, bad labels) into one clear line."""
    from .datasets import DatasetError
    from .lm import ModelNotFoundError

    try:
        return fn(*args, **kwargs)
    except (DatasetError, ModelNotFoundError, ValueError, TypeError, FileNotFoundError) as err:
        fail(str(err))


@app.command()
def classify(texts: List[str] = typer.Argument(None, help="Texts to classify (or use --file / stdin)."),
             labels: Optional[str] = typer.Option(None, help="Comma-separated class names (zero-shot)."),
             model: Optional[str] = typer.Option(None, help="Model spec or a saved classifier folder."),
             file: Optional[Path] = typer.Option(None, help="Text file (one per line), CSV or JSONL."),
             text_col: str = typer.Option("text", help="Text column of a CSV/JSONL file."),
             template: str = typer.Option("auto", help="auto, separator, separator-newlines or chat."),
             instructions: Optional[str] = typer.Option(None, help="Instruction sentence of the prompt."),
             as_json: bool = typer.Option(False, "--json", help="One JSON object per text.")):
    """Print the label and per-label probabilities of each text."""
    from .classifier import AgileClassifier
    from .lm import DEFAULT_MODEL

    items = read_texts(texts, file, text_col)

    def run():
        saved = Path(model) / "agilecls.json" if model else None
        if saved is not None and saved.exists():
            from .persistence import load_classifier

            clf = load_classifier(model)
        else:
            if not parse_labels(labels):
                raise ValueError("give --labels a,b,... (or --model a saved classifier folder)")
            clf = AgileClassifier(labels=parse_labels(labels), model=model or DEFAULT_MODEL, template=template,
                                  instructions=instructions).fit()
        return clf, clf.predict_proba(items)

    clf, proba = run_guarded(run)
    for text, p in zip(items, proba):
        best = clf.classes_[p.argmax()]
        probs = {str(label): round(float(v), 4) for label, v in zip(clf.classes_, p)}
        if as_json:
            typer.echo(json.dumps({"text": text, "label": str(best), "probabilities": probs}, ensure_ascii=False))
        else:
            shown = "  ".join(f"{k}={v:.3f}" for k, v in probs.items())
            typer.echo(f"{best}\t{shown}\t{text[:80]}")


def evaluate(clf, data, report: Path, title: str, info: dict, proba=None, seconds: float | None = None) -> dict:
    """Predict ``data`` (unless its ``proba`` is given, computed in ``seconds``), print the metrics
    table and write the HTML report."""
    from .metrics import format_table
    from .report import write_report

    if proba is None:
        start = time.perf_counter()
        proba = clf.predict_proba(data.texts)
        seconds = time.perf_counter() - start
    info = {**info, "texts": len(data), "seconds": f"{seconds:.1f}", "texts/s": f"{len(data) / seconds:.2f}"}
    known = set(map(str, clf.classes_))
    in_scope = [i for i, y in enumerate(data.y) if y in known]
    uncertainty, figures = {}, []
    if hasattr(clf, "evaluate") and hasattr(clf, "ood_score"):
        # A classifier that knows out-of-scope: its own metrics over all rows, incl. unknown-label (oos) rows.
        from .uncertainty_plots import ood_histogram

        uncertainty = clf.evaluate(data.texts, data.y)
        if len(in_scope) < len(data):
            scores = clf.ood_score(data.texts)
            figures.append(ood_histogram(scores[in_scope], np.delete(scores, in_scope)))
    elif len(in_scope) < len(data):
        unknown = sorted({y for y in data.y if y not in known})
        raise ValueError(f"labels {unknown[:10]} in the data are not among the classifier's {sorted(known)}")
    metrics = write_report(report, [data.y[i] for i in in_scope], proba[in_scope], list(clf.classes_), title=title,
                           positive_label=data.meta.get("positive_label"), info=info, extra_figures=figures)
    shown = {k: v for k, v in metrics.items() if k != "n"}
    typer.echo(format_table([shown]))
    if uncertainty:
        typer.echo("uncertainty (all rows, out-of-scope included):")
        typer.echo(format_table([uncertainty]))
    typer.echo(f"{len(data)} texts in {seconds:.1f} s; report written to {report}")
    return metrics


@app.command("eval")
def eval_command(data: str = typer.Argument(..., help="ethos, tweets, clinc150 (name[:split]) or a CSV/JSONL file."),
                 model: Optional[str] = typer.Option(None, help="Model spec or a saved classifier folder."),
                 split: str = typer.Option("test", help="Split of a reference dataset."),
                 text_col: str = typer.Option("text"), label_col: str = typer.Option("label"),
                 labels: Optional[str] = typer.Option(None, help="Comma-separated class names."),
                 shots: int = typer.Option(0, help="In-context examples per class from the train split."),
                 template: str = typer.Option("auto"),
                 limit: Optional[int] = typer.Option(None, help="Evaluate only the first N texts."),
                 report: Path = typer.Option(Path("reports/eval.html"), help="Where to write the HTML report.")):
    """Evaluate a classifier on a dataset: metrics table + HTML report."""
    from .classifier import AgileClassifier
    from .datasets import load_dataset
    from .lm import DEFAULT_MODEL

    def run():
        test = load_dataset(data, split, text_col, label_col, parse_labels(labels))
        test = test.head(limit) if limit else test
        saved = Path(model) / "agilecls.json" if model else None
        if saved is not None and saved.exists():
            from .persistence import load_classifier

            return load_classifier(model), test
        clf = AgileClassifier(labels=test.labels, model=model or DEFAULT_MODEL, template=template, shots=shots,
                              instructions=test.meta.get("instructions"))
        if shots:
            train = load_dataset(data, "train", text_col, label_col, test.labels)
            return clf.fit(train.texts, train.y), test
        return clf.fit(), test

    clf, test = run_guarded(run)
    name = classifier_name(clf)
    run_guarded(evaluate, clf, test, report, f"{test.name}: {name}", {"model": name, "shots": shots})


def classifier_name(clf) -> str:
    """A short name of any agilecls classifier for tables and report titles."""
    if hasattr(clf, "estimators_"):
        return " + ".join(classifier_name(member) for _, member in clf.estimators_)
    if hasattr(clf, "encoder") and hasattr(clf, "head"):
        return f"{clf.encoder}{' fine-tuned' if getattr(clf, 'fine_tune', False) else ''} + {clf.head} head"
    model = getattr(clf, "model", "?")
    return getattr(model, "spec", model) + (" (LoRA)" if getattr(clf, "tuning", None) == "lora" else "")


@app.command()
def demo(model: Optional[str] = typer.Option(None, help="Model spec (default: the bundled default)."),
         tune: bool = typer.Option(True, "--tune/--no-tune", help="LoRA-tune on ETHOS training rows first "
                                                                  "(else few-shot prompting)."),
         encoder: str = typer.Option(DEMO_ENCODER, help="Sentence encoder that is fine-tuned and joins the tuned "
                                                        "model in a soft-voting ensemble ('' = the LLM alone)."),
         train_size: int = typer.Option(DEMO_TRAIN_SIZE, help="Training rows used for tuning."),
         epochs: int = typer.Option(DEMO_EPOCHS, help="Tuning epochs."),
         shots: int = typer.Option(1, help="In-context examples per class (with --no-tune)."),
         limit: Optional[int] = typer.Option(None, help="Evaluate only the first N test texts."),
         save: Optional[Path] = typer.Option(None, help="Also save the tuned classifier to this folder."),
         report: Path = typer.Option(DEMO_REPORT, help="Where to write the HTML report.")):
    """The main job: classify the ETHOS hate-speech test split with the bundled default model,
    LoRA-tuned on ETHOS training rows in a few minutes on a CPU and joined by a sentence-encoder
    head (or prompted, with --no-tune)."""
    from .classifier import AgileClassifier
    from .datasets import load_ethos
    from .lm import DEFAULT_MODEL

    def run():
        train, test = load_ethos("train"), load_ethos("test")
        test = test.head(limit) if limit else test
        if not tune:
            clf = AgileClassifier(labels=train.labels, model=model or DEFAULT_MODEL, shots=shots,
                                  instructions=train.meta["instructions"])
            typer.echo(f"agilecls demo: {clf.model}, {shots}-shot, ETHOS test split ({len(test)} texts)")
            return clf.fit(train.texts, train.y), test
        clf = AgileClassifier(labels=train.labels, model=model or DEFAULT_MODEL, tuning="lora", epochs=epochs,
                              instructions=train.meta["instructions"])
        what = f"{clf.model} LoRA-tuned for {epochs} epochs (top {clf.top_layers} layers, rank {clf.rank})"
        if encoder:
            from .ensemble import EnsembleClassifier, encoder_member

            clf = EnsembleClassifier([("encoder", encoder_member(encoder, "finetuned")), ("llm", clf)])
            what += f" + the {encoder} sentence encoder fine-tuned with a softmax head, soft-voted"
        typer.echo(f"agilecls demo: {what}; {train_size} ETHOS training texts; ETHOS test split ({len(test)} texts)")
        start = time.perf_counter()
        clf.fit(train.texts[:train_size], train.y[:train_size])
        tuned = clf.named_estimators_["llm"] if encoder else clf
        typer.echo(f"trained in {time.perf_counter() - start:.0f} s; train loss per epoch: "
                   + ", ".join(f"{h['train_loss']:.3f}" for h in tuned.history_))
        if save is not None:
            clf.save(save)
            typer.echo(f"saved to {save}")
        return clf, test

    clf, test = run_guarded(run)
    name = classifier_name(clf)
    how = f"trained on {train_size} texts, {epochs} epochs" if tune else f"{shots}-shot"
    info = {"model": name}
    info.update({"train texts": train_size, "epochs": epochs} if tune else {"shots": shots})
    proba = seconds = None
    if tune and encoder:  # each member alone, for comparison with the ensemble
        from .ensemble import soft_vote
        from .metrics import classification_metrics, format_table

        start = time.perf_counter()
        members = clf.member_probas(test.texts)
        proba, seconds = soft_vote(list(members.values()), clf.weights), time.perf_counter() - start
        rows = []
        for member, member_proba in members.items():
            m = classification_metrics(test.y, member_proba, test.labels, positive_label=test.meta.get("positive_label"))
            rows.append({"member": f"{member}: {classifier_name(clf.named_estimators_[member])}",
                         **{k: m[k] for k in ("accuracy", "f1", "roc_auc")}})
        typer.echo("each member alone:")
        typer.echo(format_table(rows))
        typer.echo("the ensemble:")
    evaluate(clf, test, report, f"ETHOS hate speech, {how}, {name}", info, proba, seconds)


def _register_commands() -> None:
    from . import commands

    for module in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"{commands.__name__}.{module.name}").register(app)


_register_commands()

if __name__ == "__main__":
    app()
