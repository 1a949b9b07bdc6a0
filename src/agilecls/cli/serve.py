"""``agilecls serve``: the prediction API for saved classifiers and the prompt-debugging web app."""

from __future__ import annotations

from pathlib import Path

import typer

from ..persistence import is_saved
from .common import fail, given, refuse

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_ENV = "AGILECLS_TOKEN"


MODEL = typer.Option(None, "--model", "-m", help="A saved classifier folder to serve at /v1/predict (repeatable; "
                                                 "named by the folder's name).")
LM = typer.Option(None, "--lm", help="Language model of the prompt-debugging pages (default: the bundled default; "
                                     "loaded on first use).")
TOKEN = typer.Option(None, envvar=TOKEN_ENV, show_default=False,
                     help=f"Require 'Authorization: Bearer TOKEN' on /v1 and /api (or set ${TOKEN_ENV}).")
PROJECT = typer.Option(None, "--project", help="A labelling project folder: serve its labelling page at /label "
                                               "(and, without --model, its serving version at /v1/predict; with "
                                               "--engine ray, only its serving version).")
SAMPLE = typer.Option(0.0, "--sample", help="With --project: the share of the texts answered at /v1/predict "
                                            "appended to the project's pool (0 = none, 1 = all).")
ENGINE = typer.Option("local", "--engine", help="local (one process) or ray (Ray Serve replicas; needs "
                                                "agilecls[ray]; /v1/predict, /healthz and /metrics only).")
REPLICAS = typer.Option(1, "--replicas", help="With --engine ray: copies of the classifiers behind one endpoint.")
RAY_ADDRESS = typer.Option(None, "--ray-address", help="With --engine ray: the Ray cluster to join (default: the "
                                                       "one RAY_ADDRESS names, else a new local one).")


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(ctx: typer.Context, model: list[Path] | None = MODEL, lm: str | None = LM,
              host: str = typer.Option("127.0.0.1", help="Address to bind; anything but loopback lets other "
                                                         "machines call the model."),
              port: int = typer.Option(8765, help="Port."),
              token: str | None = TOKEN,
              max_batch: int = typer.Option(64, help="Texts scored together (1 turns micro-batching off)."),
              max_wait: float = typer.Option(0.02, help="Seconds to wait to fill a batch."),
              queue: int = typer.Option(64, help="Requests allowed to wait; more get 503 with Retry-After."),
              time_limit: float = typer.Option(120.0, help="Seconds a request may take before 504."),
              max_body: int = typer.Option(1_000_000, help="Largest accepted request body in bytes."),
              project: Path | None = PROJECT, sample: float = SAMPLE, engine: str = ENGINE,
              replicas: int = REPLICAS, ray_address: str | None = RAY_ADDRESS):
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
        check_serving_options(ctx, engine, project, sample, replicas)
        if project is not None and not named:
            named = project_version(project)
            if sample and not named:
                fail(f"--sample: {project} has no model version to serve yet; train one (agilecls project train) "
                     "or give --model DIR")
        if engine == "ray":
            from ..server.ray_serve import serve_on_ray

            if not named:
                fail(f"--engine ray: {project} has no model version to serve yet; train one (agilecls project "
                     "train) or give --model DIR" if project is not None
                     else "--engine ray serves saved classifiers: give --model DIR or --project DIR")
            typer.echo(f"agilecls on Ray Serve at http://{host}:{port}: POST /v1/predict with {', '.join(named)}, "
                       f"{replicas} replica(s) (Ctrl+C stops)")
            serve_on_ray(named, replicas=replicas, address=ray_address, host=host, port=port, max_body=max_body,
                         token=token, max_pending=queue, max_batch=max_batch, max_wait=max_wait,
                         time_limit=time_limit)
            return
        server = create_app(lm, named, max_body=max_body, token=token, max_pending=queue, max_batch=max_batch,
                            max_wait=max_wait, time_limit=time_limit, project=project, sample=sample)
        typer.echo(f"agilecls on http://{host}:{port}: "
                   + (f"POST /v1/predict with {', '.join(named)}; " if named else "")
                   + (f"the labelling page of {project} at /label; " if project is not None else "")
                   + (f"{sample:.0%} of the served texts into {project}'s pool; " if sample else "")
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


def check_serving_options(ctx, engine: str, project: Path | None, sample: float, replicas: int) -> None:
    """Refuse options that would be ignored or cannot hold, before loading anything."""
    if engine not in ("local", "ray"):
        fail(f"--engine must be local or ray, got {engine!r}")
    if not 0 <= sample <= 1:
        fail(f"--sample is a share of the served texts, between 0 and 1; got {sample}")
    if sample and project is None:
        fail("--sample needs --project (the project whose pool receives the served texts)")
    if engine == "local":
        refuse(ctx, ["replicas", "ray_address"], "needs --engine ray")
    else:
        if replicas < 1:
            fail(f"--replicas must be at least 1, got {replicas}")
        refuse(ctx, ["lm"], "is not served by --engine ray (it serves /v1/predict, /healthz and /metrics)")
        refuse(ctx, ["sample"], "is local-engine only: Ray Serve replicas cannot share the project's database")
        if project is not None and given(ctx, "model"):
            fail("--engine ray serves --model folders or --project's serving version, not both (the Label page "
                 "is local-engine only)")
        try:
            import ray.serve  # noqa: F401
        except ImportError:
            fail('--engine ray needs Ray Serve: pip install "agilecls[ray]"')


def project_version(folder: Path) -> dict[str, str]:
    """``{project name: folder}`` of a project's serving version, or ``{}`` before its first version."""
    from ..loop import Project

    project = Project(folder)
    if not project.versions():
        return {}
    record = project.serving()
    name = project.store.meta().get("name") or Path(folder).resolve().name
    return {name: str(Path(folder) / record["folder"])}
