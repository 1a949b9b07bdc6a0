"""``agilecls monitor`` (a running server's state in the terminal) and ``agilecls profile`` (a saved
classifier's reference profile for the drift checks, measured on texts it is meant for)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ..persistence import load_classifier
from ..readers import read_texts
from .common import fail


def read_server(url: str, token: str | None) -> tuple[dict, dict]:
    """(parsed ``/metrics``, ``/healthz``) of the server at ``url``."""
    import httpx

    from ..monitoring.summary import read_metrics

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        metrics = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
        health = httpx.get(f"{url}/healthz", headers=headers, timeout=10)
    except httpx.HTTPError as err:
        raise OSError(f"cannot reach {url}: {err}; is `agilecls serve` running there?") from err
    if metrics.status_code == 401:
        raise ValueError(f"{url} needs its token: give --token or set AGILECLS_TOKEN")
    if metrics.status_code != 200 or health.status_code != 200:
        raise OSError(f"{url} answered {metrics.status_code} to /metrics and {health.status_code} to /healthz; "
                      f"is it an agilecls server?")
    return read_metrics(metrics.text), health.json()


def register(app: typer.Typer) -> None:
    @app.command()
    def monitor(url: str = typer.Argument("http://127.0.0.1:8765", help="Base URL of a running agilecls server."),
                interval: float = typer.Option(5.0, "--interval", help="Seconds between two readings."),
                count: int | None = typer.Option(None, "--count", help="Stop after this many readings "
                                                                           "(default: until Ctrl-C)."),
                token: str | None = typer.Option(None, "--token", envvar="AGILECLS_TOKEN", show_default=False,
                                                    help="The server's bearer token."),
                as_json: bool = typer.Option(False, "--json", help="Print the last reading as one JSON object.")):
        """Print a running server's state every few seconds: texts/s, requests and errors, queue depth,
        latency p50/p95, label shares, the out-of-scope share and each classifier's drift state."""
        from ..monitoring.summary import summarise, summary_line

        if interval <= 0:
            fail("--interval must be above 0 seconds")
        if count is not None and count < 1:
            fail("--count must be at least 1")
        url = url.rstrip("/")
        before, at, summary, n = None, 0.0, {}, 0
        while count is None or n < count:
            if n:
                time.sleep(interval)
            now, health = read_server(url, token)
            summary = summarise(now, health, before, time.monotonic() - at)
            before, at, n = now, time.monotonic(), n + 1
            if not as_json:
                typer.echo(f"{time.strftime('%H:%M:%S')} {summary_line(summary)}")
        return summary

    @app.command()
    def profile(data: str = typer.Argument(..., help="Texts the classifier is meant for (held-out rows are best): "
                                                     "CSV/TSV/JSONL/Parquet with --text-col, one per line, or a "
                                                     "reference dataset."),
                model: Path = typer.Option(..., "--model", "-m", help="Folder of the saved classifier."),
                text_col: str = typer.Option("text", "--text-col", help="Text column of the file."),
                split: str = typer.Option("test", "--split", help="Split of a reference dataset."),
                limit: int | None = typer.Option(None, "--limit", help="Read at most the first N texts."),
                as_json: bool = typer.Option(False, "--json", help="Print the profile as one JSON object.")):
        """Measure a saved classifier's reference profile (label shares and out-of-scope score
        distribution of its predictions) on DATA and save it in the folder; the server compares live
        traffic with it (/healthz, /metrics)."""
        from ..datasets import load_dataset
        from ..monitoring.drift import record_profile

        texts = read_texts(data, text_col) if Path(data).is_file() else load_dataset(data, split).texts
        texts = texts[:limit] if limit is not None else texts
        if not texts:
            fail(f"{data} has no texts")
        found = record_profile(load_classifier(model), texts, model, source=f"{len(texts)} texts of {data}")
        if not as_json:
            shares = ", ".join(f"{k} {v:.0%}" for k, v in zip(found.labels, found.shares, strict=True))
            typer.echo(f"{model}: reference profile of {found.texts} texts saved ({shares})")
        return found.to_dict()
