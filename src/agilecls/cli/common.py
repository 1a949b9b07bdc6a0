"""What every ``agilecls`` command shares: one-line errors (exit code 2), reading texts, loading
a saved classifier or building a zero-shot one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..persistence import is_saved, load_classifier


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def read_texts(texts: List[str], file: Optional[Path], text_col: str) -> list[str]:
    """Texts from arguments, a file (one per line, or CSV/JSONL with ``text_col``) or standard input."""
    if file is not None:
        if file.suffix.lower() in (".csv", ".tsv", ".jsonl", ".json"):
            from ..datasets import load_file  # loads torch/pandas: only when the command runs

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
    """Turn the errors users cause into one clear line: bad data, labels or folders (``ValueError``,
    which ``DatasetError`` and ``ModelFormatError`` are), unknown models and unreadable files
    (``OSError``, which ``ModelNotFoundError`` is) and wrong types."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError, OSError) as err:
        fail(str(err))


def load_or_zero_shot(model: Optional[str], labels: Optional[str], **params):
    """The saved classifier in folder ``model``, or a zero-shot AgileClassifier over ``labels``."""
    if model and is_saved(model):
        return load_classifier(model)
    if not parse_labels(labels):
        raise ValueError("give --labels a,b,... (or --model a saved classifier folder)")
    from ..lm.classifier import AgileClassifier  # loads torch/pandas: only when the command runs
    from ..lm.loading import DEFAULT_MODEL  # loads torch/pandas: only when the command runs

    return AgileClassifier(labels=parse_labels(labels), model=model or DEFAULT_MODEL, **params).fit()
