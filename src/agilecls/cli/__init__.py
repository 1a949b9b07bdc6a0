"""The ``agilecls`` command: one Typer app; each module here adds its sub-commands with
``register(app)``. Commands import the heavy parts of agilecls only when they run, so
``agilecls --help`` answers at once."""

from __future__ import annotations

import typer

from . import classify, demo, explain, predict, serve, train

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Agile text classifiers on small language models.")

for _module in (demo, classify, train, predict, explain, serve):
    _module.register(app)
