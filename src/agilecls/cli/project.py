"""``agilecls project ...``: the agile loop from the command line, and ``agilecls label``, which
opens the labelling page."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Optional

import typer

from .common import check_output_file, guarded, parse_labels

project_app = typer.Typer(no_args_is_help=True, help="A labelling project: import texts, label the ones that "
                                                     "teach most, train, review errors, export.")
FOLDER = typer.Argument(..., help="The project folder.")
POSITIVE_HELP = "Two labels: the one the decision rule cuts on, e.g. the violation (default: the rarer in the pool)."
RULE_HELP = ("Two labels: the decision rule, f1 (the best F1 on your labels out of fold), pool_share, "
             "expected_f1, precision:<t> or recall:<t> (e.g. recall:0.9).")
AUDIT_HELP = "Share of the texts shown that are random audit texts, never trained on (0 turns it off)."
RETRAIN_HELP = "Labels between background retrains of the fast model on the Label page (0 turns it off)."


def _open(folder: Path):
    from ..loop import Project  # loads pandas/sqlite only when the command runs

    return Project(folder)


@project_app.command("new")
def new(folder: Path = FOLDER,
        labels: str = typer.Option(..., help="Comma-separated label names, e.g. 'billing,technical,praise'."),
        instructions: str = typer.Option("", help="The policy, in a sentence or a paragraph (the language "
                                                  "model's instructions)."),
        encoder: str = typer.Option("minilm", help="Sentence encoder of the fast model and the pre-labels."),
        positive: Optional[str] = typer.Option(None, help=POSITIVE_HELP),
        rule: str = typer.Option("f1", help=RULE_HELP),
        audit_rate: float = typer.Option(0.2, help=AUDIT_HELP),
        retrain_every: int = typer.Option(8, help=RETRAIN_HELP)):
    """Create an empty project in FOLDER."""
    from ..loop import Project

    project = Project.create(folder, parse_labels(labels), instructions, encoder=encoder, positive=positive,
                             rule=rule, audit_rate=audit_rate, retrain_every=retrain_every)
    typer.echo(f"created {folder} with labels {', '.join(project.labels)}; next: agilecls project import {folder} FILE")


@project_app.command("import")
def import_(folder: Path = FOLDER,
            source: str = typer.Argument(..., help="CSV / TSV / JSONL / Parquet file, or ethos | tweets | clinc150."),
            text_col: str = typer.Option("text", help="Column holding the text."),
            id_col: Optional[str] = typer.Option(None, help="Column holding a stable id (default: row numbers)."),
            label_col: Optional[str] = typer.Option(None, help="Column holding labels already given, if any."),
            annotator: Optional[str] = typer.Option(None, help="Who gave those labels."),
            prelabel: bool = typer.Option(True, help="Pre-label every text zero-shot afterwards.")):
    """Add texts (and any labels they already have) to a project; all or nothing."""
    project = _open(folder)
    counts = project.import_texts(source, text_col, id_col, label_col, annotator)
    typer.echo(f"imported {counts['imported']} texts ({counts['labelled']} labelled)")
    if prelabel:
        typer.echo(f"pre-labelled {project.prelabel()} texts zero-shot")


@project_app.command("status")
def status(folder: Path = FOLDER, as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Texts, labels per class, versions and the training job."""
    from ..loop.jobs import refresh

    project = _open(folder)
    refresh(project.store)
    info = project.status()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"{info['texts']} texts, {info['labelled']} labelled ({info['test']} held out for testing), "
               f"{info['versions']} version(s)")
    for label, n in info["counts"].items():
        typer.echo(f"  {label}: {n}")
    for job in info["jobs"]:
        progress = ", ".join(f"{k} {v}" for k, v in job["progress"].items())
        typer.echo(f"job {job['id']} ({job['kind']}): {job['status']}" + (f" - {progress}" if progress else "")
                   + (f" - {job['error']}" if job["error"] else ""))


@project_app.command("settings")
def settings(folder: Path = FOLDER, positive: Optional[str] = typer.Option(None, help=POSITIVE_HELP),
             rule: Optional[str] = typer.Option(None, help=RULE_HELP),
             audit_rate: Optional[float] = typer.Option(None, help=AUDIT_HELP),
             retrain_every: Optional[int] = typer.Option(None, help=RETRAIN_HELP)):
    """Show the decision rule, the audit share and the retrain interval, or change them."""
    given = {k: v for k, v in {"positive": positive, "rule": rule, "audit_rate": audit_rate,
                               "retrain_every": retrain_every}.items() if v is not None}
    for key, value in _open(folder).settings(**given).items():
        typer.echo(f"{key}: {value}")


@project_app.command("versions")
def versions(folder: Path = FOLDER, as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Every version with its audit estimate, the serving one marked, and its folder (for
    `agilecls serve --classifier` or `agilecls predict`)."""
    from ..loop.serving import audit_estimate, current

    project = _open(folder)
    frame = project.store.frame()
    serving = (current(project) or {}).get("version")
    rows = [{"version": v["id"], "kind": v["kind"], "labels": v["n_labels"], "serving": v["id"] == serving,
             "audit": audit_estimate(project, v, frame), "folder": str(project.folder / v["folder"])}
            for v in project.versions()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        a = row["audit"]
        est = (f"audit {a['metric']} {a['value']:.3f} ({a['low']:.3f}-{a['high']:.3f}, {a['n']} texts)" if a["enough"]
               else f"no audit estimate: {a['reason']}")
        typer.echo(f"{'*' if row['serving'] else ' '} {row['version']}\t{row['kind']}\t{row['labels']} labels\t{est}\t"
                   f"{row['folder']}")
    state = current(project)
    if state:
        typer.echo(f"* serving: version {state['version']} ({state['reason']})")


@project_app.command("promote")
def promote(folder: Path = FOLDER, version: int = typer.Argument(..., help="The version to serve.")):
    """Make VERSION the serving version (exports and predictions use it), whatever the audit says."""
    _open(folder).serve(version)
    typer.echo(f"version {version} now serves")


@project_app.command("suggest")
def suggest(folder: Path = FOLDER, k: int = typer.Option(16, "-k", help="How many texts."),
            strategy: Optional[str] = typer.Option(None, help="random, breaking_ties, entropy, ood_uncertainty, "
                                                              "diverse_margin or kmeans (default: diverse_margin)."),
            out: Optional[Path] = typer.Option(None, help="Write them to a CSV / JSONL file to label offline.")):
    """The texts to label next, with the suggested label."""
    import pandas as pd

    from ..loop.project import DEFAULT_STRATEGY
    from ..loop.transfer import export_rows

    if out is not None:
        check_output_file(out, "--out")
    rows = _open(folder).suggest(k, strategy or DEFAULT_STRATEGY)
    if out is not None:
        export_rows(pd.DataFrame(rows).drop(columns=["proba"]), out)
        typer.echo(f"wrote {len(rows)} texts to {out}; label them with `agilecls project label {folder} ID LABEL` "
                   f"or on the Label page (`agilecls label {folder}`)")
        return
    for row in rows:
        hint = f"{row['suggested']} {row['probability']:.2f}" if row["suggested"] else "-"
        typer.echo(f"{row['id']}\t{hint}\t{row['text'][:100]}")


@project_app.command("label")
def label(folder: Path = FOLDER, text_id: str = typer.Argument(..., help="The text's id."),
          value: str = typer.Argument(..., help="The label."),
          annotator: Optional[str] = typer.Option(None, help="Who labels.")):
    """Label one text (committed before this returns)."""
    _open(folder).label(text_id, value, annotator)
    typer.echo(f"{text_id}: {value}")


def train_and_report(folder: Path, kind: str, background: bool) -> None:
    """Train a ``kind`` version (in a background job with ``background``) and print what it scored."""
    from ..loop.jobs import start_training

    project = _open(folder)
    if background:
        typer.echo(f"started training job {start_training(folder, kind)}")
        return

    def show(info):
        typer.echo("  " + ", ".join(f"{k} {v}" for k, v in info.items()), err=True)

    start = time.time()
    version = project.train(kind, progress=show)
    typer.echo(f"version {version} in {time.time() - start:.1f} s")
    report = project.evaluate()
    audit = report["audit"]
    typer.echo(f"  on random audit texts: {audit['metric']} {audit['value']:.3f} (95% interval {audit['low']:.3f}-"
               f"{audit['high']:.3f}, {audit['n']} texts)" if audit["enough"] else f"  no audit estimate yet: {audit['reason']}")
    metrics = project.version(version)["metrics"]
    cv = metrics.get("cross_validated")
    if cv:
        typer.echo(f"  on the texts you labelled (out of fold): accuracy {cv['accuracy']:.3f}, macro F1 {cv['f1_macro']:.3f}")
    teacher = metrics.get("distilled_from")
    if teacher:
        typer.echo(f"  distilled from version {teacher['version']}: agreement {teacher['agreement']} on "
                   f"{teacher['held_out']} held-out labels")
    typer.echo(f"  decision rule: {report['rule']['describe']}")
    typer.echo(f"  serving: version {report['serving']['version']} ({report['serving']['reason']})")


@project_app.command("train")
def train(folder: Path = FOLDER,
          full: bool = typer.Option(False, "--full", help="Train the full model (tuned LLM + fine-tuned encoder, "
                                                          "minutes) instead of the fast one (seconds)."),
          background: bool = typer.Option(False, "--background", help="With --full: start it and return; follow "
                                                                      "it with `agilecls project status`.")):
    """Train a new version on every label (the held-out test rows excepted)."""
    if background and not full:
        raise ValueError("--background runs the full model in a job; add --full (the fast model takes seconds)")
    train_and_report(folder, "full" if full else "fast", background)


@project_app.command("publish")
def publish(folder: Path = FOLDER,
            background: bool = typer.Option(False, "--background", help="Start it and return; follow it with "
                                                                        "`agilecls project status`.")):
    """Distil the serving version into a fast sentence encoder on every text of the pool (a new
    version, served when the audit says it is no worse)."""
    train_and_report(folder, "distilled", background)


@project_app.command("review")
def review(folder: Path = FOLDER, limit: int = typer.Option(10, help="Rows per list.")):
    """Out-of-fold errors (most confident first) and possible label errors (cleanlab's label quality)."""
    from ..loop.review import REVIEW_MIN_PER_CLASS, errors, label_issues

    project = _open(folder)
    typer.echo(f"(possible label errors are listed once every label has {REVIEW_MIN_PER_CLASS} training labels)")
    for title, rows in (("model disagrees with the label", errors(project, limit)),
                        ("possible label errors", label_issues(project, limit))):
        typer.echo(f"{title}:")
        for row in rows:
            typer.echo(f"  {row['id']}\tlabel {row['label']}, model {row['predicted']} {row['confidence']:.2f}\t"
                       f"{row['text'][:80]}")


@project_app.command("export")
def export(folder: Path = FOLDER, out: Path = typer.Argument(..., help="CSV / TSV / JSONL / Parquet file."),
           predictions: bool = typer.Option(False, "--predictions", help="Every text with the serving version's "
                                                                         "predictions (by its decision rule), not "
                                                                         "just the labels.")):
    """Write the labels (or every prediction) to a file."""
    check_output_file(out, "OUT")
    path = _open(folder).export(out, "predictions" if predictions else "labels")
    typer.echo(f"wrote {path}")


def label_page(folder: Path = FOLDER, port: int = typer.Option(8765, help="Port (on 127.0.0.1)."),
               token: Optional[str] = typer.Option(None, envvar="AGILECLS_TOKEN", show_default=False,
                                                   help="Require this bearer token on /api (or set "
                                                        "$AGILECLS_TOKEN); the page is opened with it."),
               no_browser: bool = typer.Option(False, "--no-browser", help="Do not open a browser.")):
    """Label a project in the browser: serve its labelling page and open it."""
    from .serve import check_project

    check_project(folder)
    if not 0 < port < 65536:
        raise ValueError(f"--port {port} is not a port number (1-65535)")
    import uvicorn  # loads torch/pandas: only when the command runs

    from ..server import create_app

    server = create_app(project=folder, token=token)
    url = f"http://127.0.0.1:{port}/label" + (f"#token={token}" if token else "")
    typer.echo(f"labelling {folder} at {url} (Ctrl+C stops)")
    if not no_browser:
        threading.Thread(target=_open_when_up, args=(port, url), daemon=True).start()
    uvicorn.run(server, host="127.0.0.1", port=port, log_level="warning")


def _open_when_up(port: int, url: str, wait: float = 60.0) -> None:
    """Open ``url`` in the browser once the server accepts connections."""
    import socket
    import webbrowser

    deadline = time.time() + wait
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    webbrowser.open(url)


def register(app: typer.Typer) -> None:
    for command in project_app.registered_commands:
        command.callback = guarded(command.callback)
    app.add_typer(project_app, name="project")
    app.command("label")(guarded(label_page))
