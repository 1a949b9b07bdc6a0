"""``agilecls classify`` and ``agilecls eval``: label texts, or score a classifier on a dataset."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer

from ..persistence import is_saved, load_classifier
from ..validation import decision_labels
from .common import check_output_file, check_split, fail, load_or_zero_shot, parse_labels, read_texts, refuse
from .multilabel import LABEL_COLUMNS_HELP, MULTILABEL_HELP, check_matches, evaluate_multilabel


def evaluate(clf, data, report: Path, title: str, info: dict, proba=None, seconds: float | None = None) -> dict:
    """Predict ``data`` (unless its ``proba`` is given, computed in ``seconds``), print the metrics
    table and write the HTML report."""
    from ..encoders.classifier import EncoderClassifier
    from ..evaluation.metrics import format_table
    from ..evaluation.plots import ood_histogram
    from ..evaluation.report import write_report

    if proba is None:
        start = time.perf_counter()
        proba = clf.predict_proba(data.texts)
        seconds = time.perf_counter() - start
    info = {**info, "texts": len(data), "seconds": f"{seconds:.1f}", "texts/s": f"{len(data) / seconds:.2f}"}
    known = set(map(str, clf.classes_))
    in_scope = [i for i, y in enumerate(data.y) if y in known]
    uncertainty, figures = {}, []
    if isinstance(clf, EncoderClassifier):
        # it knows out-of-scope: its own metrics over all rows, incl. unknown-label (oos) rows
        uncertainty = clf.evaluate(data.texts, data.y)
        if clf.reject_threshold_ is not None:  # it abstains: a cut on the out-of-scope score
            info["abstains"] = f"{clf.oos_label!r} when the out-of-scope score > {clf.reject_threshold_:.3f}"
            typer.echo(f"abstains: {info['abstains']}")
        if len(in_scope) < len(data):
            scores = clf.ood_score(data.texts)
            figures.append(ood_histogram(scores[in_scope], np.delete(scores, in_scope)))
    elif len(in_scope) < len(data):
        unknown = sorted({y for y in data.y if y not in known})
        raise ValueError(f"labels {unknown[:10]} in the data are not among the classifier's {sorted(known)}")
    meanings, positive = data.meta.get("label_meanings", {}), data.meta.get("positive_label")
    named = [f"{c} ({meanings[c]})" if c in meanings else str(c) for c in clf.classes_]
    info = {"classes": ", ".join(named), **info}
    if len(named) == 2:  # binary precision, recall and F1 are of one class: say which, and what it means
        positive = positive or str(clf.classes_[1])
        info["precision, recall, F1 of"] = named[list(map(str, clf.classes_)).index(positive)]
        typer.echo(f"classes: {info['classes']}; precision, recall and F1 are of {info['precision, recall, F1 of']}")
    rule = clf.decision_rule()  # a tuned decision threshold decides, not the argmax
    y_pred = None if rule is None else rule.decide(proba[in_scope], clf.classes_)
    if rule is not None:
        info["decision"] = rule.describe()
        typer.echo(f"decision: {rule.describe()}")
    metrics = write_report(report, [data.y[i] for i in in_scope], proba[in_scope], list(clf.classes_), title=title,
                           positive_label=positive, info=info, extra_figures=figures, y_pred=y_pred)
    shown = {k: v for k, v in metrics.items() if k != "n"}
    typer.echo(format_table([shown]))
    if uncertainty:
        typer.echo("uncertainty (all rows, out-of-scope included):")
        typer.echo(format_table([uncertainty]))
    typer.echo(f"{len(data)} texts in {seconds:.1f} s; report written to {report}")
    return metrics


MODEL = typer.Option(None, "--model", "-m", help="A saved classifier folder, or a language model spec "
                                                 "(bundled name, Hugging Face id, local folder) to prompt "
                                                 "zero-shot (default: the bundled default).")
TEXTS = typer.Argument(None, help="Texts to classify (or use --file / stdin).")
FILE = typer.Option(None, help="Text file (one per line), CSV, TSV, JSONL or Parquet.")
LIMIT = typer.Option(None, help="Read only the first N texts.")
REPORT = typer.Option(Path("reports/eval.html"), help="Where to write the HTML report.")
#: Options that build a zero-shot classifier: no effect on a saved one.
PROMPT_OPTIONS = ("labels", "template", "instructions", "shots")


def refuse_prompt_options(ctx, model: str | None) -> None:
    """With a saved classifier as --model, the options that build a prompted one are errors."""
    if model and is_saved(model):
        refuse(ctx, [n for n in PROMPT_OPTIONS if n in ctx.params], f"has no effect with a saved classifier "
                                                                    f"(--model {model}); it builds a prompted one")


def register(app: typer.Typer) -> None:
    @app.command()
    def classify(ctx: typer.Context, texts: list[str] = TEXTS,
                 model: str | None = MODEL,
                 labels: str | None = typer.Option(None, help="Comma-separated class names (zero-shot)."),
                 file: Path | None = FILE,
                 text_col: str = typer.Option("text", help="Text column of a CSV/TSV/JSONL/Parquet --file."),
                 limit: int | None = LIMIT,
                 template: str = typer.Option("auto", help="auto, separator, separator-newlines or chat."),
                 instructions: str | None = typer.Option(None, help="Instruction sentence of the prompt."),
                 as_json: bool = typer.Option(False, "--json", help="Print the labels as one JSON object.")):
        """Print the label and per-label probabilities of each text."""
        refuse_prompt_options(ctx, model)
        if file is None:
            refuse(ctx, ["text_col"], "needs --file")
        items = read_texts(texts, file, text_col)[:limit]
        if not items:
            fail("no texts to classify")

        clf = load_or_zero_shot(model, labels, template=template, instructions=instructions)
        details = clf.details(items)  # a multi-label classifier's labels are joined by |
        decisions = decision_labels(details["pred"], [str(c) for c in clf.classes_])
        rows = []
        for text, best, p in zip(items, decisions, details["proba"], strict=True):
            probs = {str(label): round(float(v), 4) for label, v in zip(clf.classes_, p, strict=True)}
            rows.append({"text": text, "label": str(best), "probabilities": probs})
            if not as_json:
                shown = "  ".join(f"{k}={v:.3f}" for k, v in probs.items())
                typer.echo(f"{best}\t{shown}\t{text[:80]}")
        return {"model": clf.describe(), "classes": [str(c) for c in clf.classes_], "predictions": rows}

    @app.command("eval")
    def eval_command(ctx: typer.Context,
                     data: str = typer.Argument(..., help="ethos, tweets, clinc150 (name[:split]) or a "
                                                          "CSV/TSV/JSONL/Parquet file."),
                     model: str | None = MODEL,
                     split: str = typer.Option("test", help="Split of a reference dataset."),
                     text_col: str = typer.Option("text", help="Text column of a file."),
                     label_col: str = typer.Option("label", help="Label column of a file."),
                     labels: str | None = typer.Option(None, help="Comma-separated class names."),
                     shots: int = typer.Option(0, help="In-context examples per class from the train split."),
                     template: str = typer.Option("auto", help="auto, separator, separator-newlines or chat."),
                     limit: int | None = LIMIT, report: Path = REPORT,
                     multilabel: bool = typer.Option(False, "--multilabel", help=MULTILABEL_HELP),
                     label_columns: str | None = typer.Option(None, help=LABEL_COLUMNS_HELP),
                     as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object.")):
        """Evaluate a classifier on a dataset: metrics table + HTML report."""
        from ..datasets import load_dataset
        from ..lm.classifier import AgileClassifier
        from ..lm.loading import DEFAULT_MODEL

        check_output_file(report, "--report")
        check_split(ctx, data)
        if model and is_saved(model):
            refuse(ctx, ["shots", "template"], f"has no effect with a saved classifier (--model {model}); it "
                                               f"builds a prompted one")

        def run():
            test = load_dataset(data, split, text_col, label_col, parse_labels(labels), multilabel=multilabel,
                                label_columns=parse_labels(label_columns))
            test = test.head(limit) if limit else test
            if model and is_saved(model):
                clf = load_classifier(model)
                check_matches(clf, bool(test.meta.get("multilabel")), model)
                return clf, test
            clf = AgileClassifier(labels=test.labels, model=model or DEFAULT_MODEL, template=template, shots=shots,
                                  instructions=test.meta.get("instructions"),
                                  multilabel=bool(test.meta.get("multilabel")))
            if shots:
                train = load_dataset(data, "train", text_col, label_col, test.labels)
                return clf.fit(train.texts, train.y), test
            return clf.fit(), test

        clf, test = run()
        name = clf.describe()
        if test.meta.get("multilabel"):
            metrics = evaluate_multilabel(clf, test, report, f"{test.name}: {name}", {"model": name})
        else:
            metrics = evaluate(clf, test, report, f"{test.name}: {name}", {"model": name, "shots": shots})
        return {"model": name, "data": test.name, "texts": len(test), "report": str(report), "metrics": metrics}
