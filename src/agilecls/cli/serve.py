"""``agilecls serve``: the prediction API for saved classifiers and the prompt-debugging web app."""

from __future__ import annotations

from pathlib import Path

import typer

from ..persistence import is_saved
from .common import fail

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_ENV = "AGILECLS_TOKEN"


MODEL = typer.Option(None, "--model", "-m", help="A saved classifier folder to serve at /v1/predict (repeatable; "
                                                 "named by the folder's name).")
LM = typer.Option(None, "--lm", help="Language model of the prompt-debugging pages (default: the bundled default; "
                                     "loaded on first use).")
TOKEN = typer.Option(None, envvar=TOKEN_ENV, show_default=False,
                     help=f"Require 'Authorization: Bearer TOKEN' on /v1 and /api (or set ${TOKEN_ENV}).")
PROJECT = typer.Option(None, "--project", help="A labelling project folder: serve its labelling page at /label.")


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(model: list[Path] | None = MODEL, lm: str | None = LM,
              host: str = typer.Option("127.0.0.1", help="Address to bind; anything but loopback lets other "
                                                         "machines call the model."),
              port: int = typer.Option(8765, help="Port."),
              token: str | None = TOKEN,
              max_batch: int = typer.Option(64, help="Texts scored together (1 turns micro-batching off)."),
              max_wait: float = typer.Option(0.02, help="Seconds to wait to fill a batch."),
              queue: int = typer.Option(64, help="Requests allowed to wait; more get 503 with Retry-After."),
              time_limit: float = typer.Option(120.0, help="Seconds a request may take before 504."),
              max_body: int = typer.Option(1_000_000, help="Largest accepted request body in bytes."),
              project: Path | None = PROJECT):
        """Serve saved classifiers at POST /v1/predict (and GET /healthz), the salience /
        prompt-debugging app at http://HOST:PORT and, with --project, the labelling page at /label."""
        import uvicorn

        from ..server import create_app

        named = {}
        for folder in model or []:
            if not is_saved(folder):
                fail(f"--model {folder} holds no saved classifier; create one with `agilecls train`")
            if folder.name in named:
                fail(f"two classifier folders are named {folder.name!r}; rename one")
            named[folder.name] = str(folder)
        if min(max_batch, queue, port) < 1 or min(max_wait, time_limit) < 0:
            fail("--max-batch, --queue and --port must be positive; --max-wait and --time-limit not negative")
        if host not in LOOPBACK:
            typer.secho(f"warning: serving on {host}: anyone who can reach it can run the model"
                        + ("" if token else f"; consider --token or ${TOKEN_ENV}"), fg=typer.colors.YELLOW, err=True)
        if project is not None:
            check_project(project)
        server = create_app(lm, named, max_body, token=token, max_pending=queue, max_batch=max_batch,
                            max_wait=max_wait, time_limit=time_limit, project=project)
        typer.echo(f"agilecls on http://{host}:{port}: "
                   + (f"POST /v1/predict with {', '.join(named)}; " if named else "")
                   + (f"the labelling page of {project} at /label; " if project is not None else "")
                   + "the prompt-debugging app at / (Ctrl+C stops)")
        uvicorn.run(server, host=host, port=port, log_level="warning")


def check_project(folder: Path) -> None:
    """Refuse, before loading anything, a folder that holds no labelling project.

    Parameters
    ----------
    folder : Path
        Must hold a project database (``project.sqlite``); otherwise one line and exit code 2.
    """
    from ..loop.store import DB_NAME

    if not (Path(folder) / DB_NAME).is_file():
        fail(f"{folder} is not an agilecls project (no {DB_NAME}); create one with `agilecls project new`")
