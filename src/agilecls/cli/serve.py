"""``agilecls serve``: the local prompt-debugging web app."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..persistence import is_saved
from .common import fail


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(model: Optional[str] = typer.Argument(None, help="Model spec (default: the bundled default)."),
              host: str = typer.Option("127.0.0.1", help="Address to bind; keep the loopback default unless "
                                                         "the machine's network is trusted."),
              port: int = typer.Option(8765, help="Port."),
              classifier: List[Path] = typer.Option(None, help="A saved classifier folder (repeatable)."),
              max_body: int = typer.Option(1_000_000, help="Largest accepted request body in bytes.")):
        """Open the salience / prompt-debugging app in a browser at http://HOST:PORT."""
        import uvicorn  # loads torch/pandas: only when the command runs

        from ..server import create_app  # loads torch/pandas: only when the command runs

        named = {}
        for folder in classifier or []:
            if not is_saved(folder):
                fail(f"{folder} holds no saved classifier; create one with `agilecls train`")
            named[folder.name] = str(folder)
        if host not in ("127.0.0.1", "localhost", "::1"):
            typer.secho(f"warning: serving on {host}: anyone who can reach it can run the model",
                        fg=typer.colors.YELLOW, err=True)
        typer.echo(f"agilecls app on http://{host}:{port}  (model loads on first use; Ctrl+C stops)")
        uvicorn.run(create_app(model, named, max_body), host=host, port=port, log_level="warning")
