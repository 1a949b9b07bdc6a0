"""The ``agilecls`` command: one Typer app; each module here adds its sub-commands with
``register(app)``, and every command runs inside :func:`common.guarded` (one-line errors, exit code
2) and :func:`common.prints_result` (``--json``); their options follow one convention
(docs/reference/cli-conventions.md). Commands import the heavy parts of agilecls only when they
run, so ``agilecls --help`` answers at once."""

from __future__ import annotations

import os

import typer

from .. import __version__
from . import classify, demo, distill, explain, info, monitor, predict, project, serve, train
from .common import DEBUG_ENV, SETTINGS, guarded, prints_result

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Agile text classifiers on small language models.")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"agilecls {__version__}")
        raise typer.Exit()


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error instead of "
                                                           "one line."),
         version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                      help="Print the version and exit.")):
    """Agile text classifiers on small language models."""
    SETTINGS["debug"] = debug or os.environ.get(DEBUG_ENV) == "1"


for _module in (demo, classify, train, distill, predict, explain, serve, monitor, info):
    _module.register(app)
for _command in app.registered_commands:
    _command.callback = guarded(prints_result(_command.callback))
project.register(app)  # a command group: it guards its own commands
