"""What every ``agilecls`` command shares: the one error guard (one line, exit code 2), ``--json``
(one JSON object on standard output, everything else on standard error), refusing options that
would be ignored, reading texts, checking output paths before any work, loading a saved classifier
or building a zero-shot one."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import click
import typer

from ..jsonsafe import jsonable
from ..persistence import is_saved, load_classifier
from ..readers import read_text_stream
from ..readers import read_texts as read_file_texts

#: ``agilecls --debug`` (or this variable set to 1): errors show their traceback instead of one line.
DEBUG_ENV = "AGILECLS_DEBUG"
SETTINGS = {"debug": False}

#: Errors that a user's input causes (bad data, labels, paths, folders or options): their message
#: says what to change. ``DatasetError``, ``ModelFormatError`` and ``UnicodeError`` are ValueErrors;
#: ``ModelNotFoundError`` and ``PermissionError`` are OSErrors.
USER_ERRORS = (ValueError, TypeError, OSError, LookupError)


def fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def one_line(err: BaseException, limit: int = 600) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def guarded(command: Callable) -> Callable:
    """``command`` with every error turned into one line on standard error and exit code 2 (the
    traceback only with ``agilecls --debug``). Typer reads the signature through ``functools.wraps``."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            if SETTINGS["debug"]:
                raise
            fail("interrupted", code=130)
        except Exception as err:
            if SETTINGS["debug"]:
                raise
            if isinstance(err, USER_ERRORS):
                fail(one_line(err))
            fail(f"internal error {type(err).__name__}: {one_line(err)} (run again with `agilecls --debug ...` "
                 f"for the traceback, and please report it)")

    return run


def prints_result(command: Callable) -> Callable:
    """``command`` whose ``--json`` (keyword ``as_json``) prints the dict it returns as one JSON
    object on standard output; while it runs, whatever else it prints goes to standard error."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        if not kwargs.get("as_json"):
            return command(*args, **kwargs)
        stdout = sys.stdout
        with contextlib.redirect_stdout(sys.stderr):
            result = command(*args, **kwargs)
        text = json.dumps(jsonable(result if result is not None else {}, finite=True), ensure_ascii=False)
        stdout.write(text + "\n")
        stdout.flush()
        return result

    return run


def option_name(ctx: click.Context, name: str) -> str:
    """The option a parameter is given by on the command line (``as_json`` → ``--json``)."""
    for param in ctx.command.params:
        if param.name == name and param.opts:
            return max(param.opts, key=len)
    return "--" + name.replace("_", "-")


def given(ctx: click.Context, *names: str) -> list[str]:
    """The options among ``names`` that the user set (on the command line or through a variable),
    by their command-line names."""
    # compared by name: Typer may carry its own copy of click and of its ParameterSource enum
    sources = ("COMMANDLINE", "ENVIRONMENT")
    return [option_name(ctx, n) for n in names if getattr(ctx.get_parameter_source(n), "name", None) in sources]


def refuse(ctx: click.Context, names: Iterable[str], reason: str) -> None:
    """Exit with ``error: OPTION REASON`` (code 2) when the user set any option of ``names``: an
    option that would be ignored is an error, e.g. ``refuse(ctx, ["head"], "needs --encoder")``."""
    set_ = given(ctx, *names)
    if set_:
        fail(f"{set_[0]} {reason}")


def check_split(ctx: click.Context, data: str | None, name: str = "split") -> None:
    """Refuse ``--split`` with a file: it picks a split of a reference dataset only."""
    if data is not None and Path(data).is_file():
        refuse(ctx, [name], f"picks a split of a reference dataset; {data} is a file")


def read_texts(texts: list[str], file: Path | None, text_col: str) -> list[str]:
    """Texts from arguments, a file (one per line, or CSV/TSV/JSONL/Parquet with ``text_col``) or
    standard input."""
    if file is not None:
        return read_file_texts(file, text_col)
    if texts:
        return list(texts)
    if not sys.stdin.isatty():
        return read_text_stream(sys.stdin)
    fail("give texts as arguments, --file, or on standard input")


def parse_labels(labels: str | None) -> list[str] | None:
    return [label.strip() for label in labels.split(",") if label.strip()] if labels else None


def check_output_file(path: Path, option: str = "--out") -> None:
    """Refuse, before any work, an output file that cannot be written: a folder, or a place whose
    nearest existing folder is a file or not writable."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"{option} {path} is not writable")
    _check_parent(path, option)


def check_output_folder(path: Path, option: str = "--out") -> None:
    """Refuse, before any work, a model folder that cannot be written or would replace something
    that is not a saved classifier."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file; give a folder for the classifier")
    if path.is_dir() and any(path.iterdir()) and not is_saved(path):
        raise FileExistsError(f"{option} {path} exists and holds something other than a saved classifier; "
                              f"choose a new or empty folder")
    _check_parent(path, option)


def _check_parent(path: Path, option: str) -> None:
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{option} {path} cannot be created: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {path} cannot be created: no permission to write in {parent}")


def load_or_zero_shot(model: str | None, labels: str | None, **params):
    """The saved classifier in folder ``model``, or a zero-shot AgileClassifier over ``labels``."""
    if model and is_saved(model):
        return load_classifier(model)
    if not parse_labels(labels):
        raise ValueError("give --labels a,b,... (or --model a saved classifier folder)")
    from ..lm.classifier import AgileClassifier
    from ..lm.loading import DEFAULT_MODEL

    return AgileClassifier(labels=parse_labels(labels), model=model or DEFAULT_MODEL, **params).fit()
