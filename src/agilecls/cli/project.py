"""``agilecls project ...``: the agile loop from the command line, and ``agilecls label``, which
opens the labelling page."""

from __future__ import annotations

import socket
import threading
import time
import webbrowser
from pathlib import Path

import pandas as pd
import typer

from ..batch.io import output_format, write_frame
from .common import check_output_file, guarded, parse_labels, prints_result, refuse
from .serve import check_project

project_app = typer.Typer(no_args_is_help=True, help="A labelling project: import texts, label the ones that "
                                                     "teach most, train, review errors, export.")
FOLDER = typer.Argument(..., help="The project folder.")
POSITIVE_HELP = "Two labels: the one the decision rule cuts on, e.g. the violation (default: the rarer in the pool)."
RULE_HELP = ("Two labels: the decision rule, f1 (the best F1 on your labels out of fold), pool_share, "
             "expected_f1, precision:<t> or recall:<t> (e.g. recall:0.9).")
AUDIT_HELP = "Share of the texts shown that are random audit texts, never trained on (0 turns it off)."
RETRAIN_HELP = "Labels between background retrains of the fast model on the Label page (0 turns it off)."
JSON = typer.Option(False, "--json", help="Print the result as one JSON object.")
DESCRIBE = typer.Option(None, "--describe", metavar="LABEL=TEXT",
                        help="A sentence saying what a label means, used by the zero-shot pre-labels instead of "
                             "the bare name (repeat it for each label).")
SUGGEST_OUT = typer.Option(None, "--out", "-o", help="Write them to a CSV / JSONL file to label offline.")
EXPORT_OUT = typer.Option(..., "--out", "-o", help="The file to write: CSV / TSV / JSONL / Parquet.")


def _open(folder: Path):
    from ..loop import Project

    return Project(folder)


def parse_descriptions(given: list[str] | None) -> dict[str, str]:
    """``--describe LABEL=TEXT`` options as ``{label: text}``; a malformed or repeated one is an error."""
    out: dict[str, str] = {}
    for item in given or []:
        label, sep, text = item.partition("=")
        label, text = label.strip(), text.strip()
        if not sep or not label or not text:
            raise ValueError(f"--describe {item!r}: write it as LABEL=TEXT, e.g. --describe 'billing=payments, "
                             "invoices and refunds'")
        if label in out:
            raise ValueError(f"--describe gives label {label!r} twice; give one description per label")
        out[label] = text
    return out


@project_app.command("new")
def new(folder: Path = FOLDER,
        labels: str = typer.Option(..., help="Comma-separated label names, e.g. 'billing,technical,praise'."),
        instructions: str = typer.Option("", help="The policy, in a sentence or a paragraph (the language "
                                                  "model's instructions)."),
        describe: list[str] | None = DESCRIBE,
        model: str | None = typer.Option(None, "--model", "-m", help="The language model of the full model "
                                                                        "and the LLM pre-labels: a bundled name, a "
                                                                        "Hugging Face id or a local folder "
                                                                        "(default: the bundled one)."),
        encoder: str = typer.Option("minilm", help="Sentence encoder of the fast model and the pre-labels."),
        positive: str | None = typer.Option(None, help=POSITIVE_HELP),
        rule: str = typer.Option("f1", help=RULE_HELP),
        audit_rate: float = typer.Option(0.2, help=AUDIT_HELP),
        retrain_every: int = typer.Option(8, help=RETRAIN_HELP),
        as_json: bool = JSON) -> dict:
    """Create an empty project in FOLDER."""
    from ..loop import Project

    project = Project.create(folder, parse_labels(labels), instructions, descriptions=parse_descriptions(describe),
                             encoder=encoder, model=model, positive=positive, rule=rule, audit_rate=audit_rate,
                             retrain_every=retrain_every)
    typer.echo(f"created {folder} with labels {', '.join(project.labels)}; next: agilecls project import {folder} FILE")
    return {"folder": str(folder), "labels": project.labels, "model": project.meta.get("model"),
            "descriptions": project.meta.get("descriptions", {}), "settings": project.settings()}


@project_app.command("import")
def import_(ctx: typer.Context, folder: Path = FOLDER,
            source: str = typer.Argument(..., help="CSV / TSV / JSONL / Parquet file, or ethos | tweets | clinc150."),
            text_col: str = typer.Option("text", help="Column holding the text."),
            id_col: str | None = typer.Option(None, help="Column holding a stable id (default: row numbers)."),
            label_col: str | None = typer.Option(None, help="Column holding labels already given, if any."),
            annotator: str | None = typer.Option(None, help="Who gave those labels (needs --label-col)."),
            prelabel: bool = typer.Option(True, help="Pre-label every text zero-shot afterwards."),
            as_json: bool = JSON) -> dict:
    """Add texts (and any labels they already have) to a project; all or nothing."""
    if label_col is None:
        refuse(ctx, ["annotator"], "names who gave the labels of --label-col; add --label-col")
    project = _open(folder)
    counts = project.import_texts(source, text_col, id_col, label_col, annotator)
    typer.echo(f"imported {counts['imported']} texts ({counts['labelled']} labelled)")
    if prelabel:
        counts["prelabelled"] = project.prelabel()
        typer.echo(f"pre-labelled {counts['prelabelled']} texts zero-shot")
    return counts


@project_app.command("status")
def status(folder: Path = FOLDER, as_json: bool = JSON) -> dict:
    """Texts, labels per class, versions and the training job."""
    info = _open(folder).status()
    typer.echo(f"{info['texts']} texts, {info['labelled']} labelled ({info['test']} held out for testing), "
               f"{info['versions']} version(s)")
    for label, n in info["counts"].items():
        typer.echo(f"  {label}: {n}")
    for job in info["jobs"]:
        progress = ", ".join(f"{k} {v}" for k, v in job["progress"].items())
        typer.echo(f"job {job['id']} ({job['kind']}): {job['status']}" + (f" - {progress}" if progress else "")
                   + (f" - {job['error']}" if job["error"] else ""))
    return info


@project_app.command("settings")
def settings(folder: Path = FOLDER, positive: str | None = typer.Option(None, help=POSITIVE_HELP),
             rule: str | None = typer.Option(None, help=RULE_HELP),
             audit_rate: float | None = typer.Option(None, help=AUDIT_HELP),
             retrain_every: int | None = typer.Option(None, help=RETRAIN_HELP), as_json: bool = JSON) -> dict:
    """Show the decision rule, the audit share and the retrain interval, or change them."""
    given_values = {k: v for k, v in {"positive": positive, "rule": rule, "audit_rate": audit_rate,
                                      "retrain_every": retrain_every}.items() if v is not None}
    values = _open(folder).settings(**given_values)
    for key, value in values.items():
        typer.echo(f"{key}: {value}")
    return values


def _score(value) -> str:
    return "-" if value is None else f"{value:.3f}"


@project_app.command("versions")
def versions(folder: Path = FOLDER, as_json: bool = JSON) -> dict:
    """Every version: id, kind, labels trained on, its scores (out of fold on your labels, on your
    test texts, on the random audit texts with a 95% interval), the serving one marked (*), and
    its folder (for `agilecls predict --model` or `agilecls serve --model`)."""
    project = _open(folder)
    rows = project.version_table()
    for row in rows:
        a = row["audit_estimate"]
        est = (f"audit {a['metric']} {a['value']:.3f} ({a['low']:.3f}-{a['high']:.3f}, {a['n']} texts)" if a["enough"]
               else f"no audit estimate: {a['reason']}")
        typer.echo(f"{'*' if row['serving'] else ' '} {row['version']}\t{row['kind']}\t{row['labels']} labels\t"
                   f"{row['metric']} {_score(row['cross_validated'])} out of fold, {_score(row['test'])} on test\t"
                   f"{est}\t{row['folder']}")
    state = project.serving_state()
    if state:
        typer.echo(f"* serving: version {state['version']} ({state['reason']})")
    return {"versions": rows, "serving": state}


@project_app.command("promote")
def promote(folder: Path = FOLDER, version: int = typer.Argument(..., help="The version to serve."),
            as_json: bool = JSON) -> dict:
    """Make VERSION the serving version (exports and predictions use it), whatever the audit says."""
    state = _open(folder).serve(version)
    typer.echo(f"version {version} now serves")
    return state


@project_app.command("suggest")
def suggest(folder: Path = FOLDER, count: int = typer.Option(16, "--count", "-k", help="How many texts."),
            strategy: str | None = typer.Option(None, help="random, breaking_ties, entropy, ood_uncertainty, "
                                                              "diverse_margin or kmeans (default: diverse_margin)."),
            out: Path | None = SUGGEST_OUT,
            as_json: bool = JSON) -> dict:
    """The texts to label next, with the suggested label."""
    if out is not None:
        check_output_file(out, "--out")
    project = _open(folder)
    rows = project.suggest(count, strategy)
    if out is not None:
        write_frame(pd.DataFrame(rows).drop(columns=["proba"]), out, output_format(out))
        typer.echo(f"wrote {len(rows)} texts to {out}; label them with `agilecls project label {folder} ID LABEL` "
                   f"or on the Label page (`agilecls label {folder}`)")
        return {"out": str(out), "texts": len(rows)}
    for row in rows:
        hint = f"{row['suggested']} {row['probability']:.2f}" if row["suggested"] else "-"
        typer.echo(f"{row['id']}\t{hint}\t{row['text'][:100]}")
    return {"suggestions": rows}


@project_app.command("label")
def label(folder: Path = FOLDER, text_id: str = typer.Argument(..., help="The text's id."),
          value: str = typer.Argument(..., help="The label."),
          annotator: str | None = typer.Option(None, help="Who labels."), as_json: bool = JSON) -> dict:
    """Label one text (committed before this returns)."""
    entry = _open(folder).label(text_id, value, annotator)
    typer.echo(f"{text_id}: {value}")
    return entry


@project_app.command("undo")
def undo(folder: Path = FOLDER, annotator: str | None = typer.Option(None, help="Take back this annotator's "
                                                                                   "newest label (default: "
                                                                                   "anyone's)."),
         as_json: bool = JSON) -> dict:
    """Take back the newest label change (a label given with `project import` is not undone)."""
    entry = _open(folder).undo(annotator)
    if entry is None:
        typer.echo("nothing to undo")
    elif entry["superseded"]:
        typer.echo(f"{entry['id']}: its label was changed since by another annotator; theirs ({entry['label']}) stays")
    else:
        typer.echo(f"{entry['id']}: {entry['undone'] or 'no label'} taken back, now {entry['label'] or 'unlabelled'}")
    return {"undone": entry}


@project_app.command("skip")
def skip(folder: Path = FOLDER, text_id: str = typer.Argument(..., help="The text's id."),
         as_json: bool = JSON) -> dict:
    """Leave a text out of the queue: `project suggest` and the Label page stop offering it (until it
    is labelled)."""
    _open(folder).skip(text_id)
    typer.echo(f"{text_id}: skipped")
    return {"id": text_id, "skipped": True}


@project_app.command("test")
def test(folder: Path = FOLDER, text_id: str = typer.Argument(..., help="The text's id."),
         remove: bool = typer.Option(False, "--remove", help="Put the text back among the training texts."),
         as_json: bool = JSON) -> dict:
    """Hold a text out for testing: never trained on; once labelled, every version is scored on it
    ("on test" in `project versions`). The random audit texts are test texts already."""
    project = _open(folder)
    project.mark_test(text_id, not remove)
    text = project.text(text_id)
    state = "held out for testing" if text["is_test"] else "a training text"
    hint = "" if text["label"] or not text["is_test"] else "; label it to score versions on it"
    typer.echo(f"{text_id}: {state} (label: {text['label'] or 'none yet'}{hint})")
    return text


@project_app.command("cancel")
def cancel(folder: Path = FOLDER, job: int | None = typer.Option(None, help="The job to stop (default: the "
                                                                               "one running)."),
           as_json: bool = JSON) -> dict:
    """Stop a background training job (`project train --full --background` or `project publish --background`)."""
    state = _open(folder).cancel(job)
    typer.echo(f"job {state['id']} ({state['kind']}): {state['status']}")
    return state


def train_and_report(folder: Path, kind: str, background: bool) -> dict:
    """Train a ``kind`` version (in a background job with ``background``) and print what it scored."""
    project = _open(folder)
    if background:
        job = project.start_training(kind)
        typer.echo(f"started training job {job}; follow it with `agilecls project status {folder}`")
        return {"job": job, "kind": kind}

    def show(info):
        typer.echo("  " + ", ".join(f"{k} {v}" for k, v in info.items()), err=True)

    start = time.time()
    version = project.train(kind, progress=show)
    seconds = time.time() - start
    typer.echo(f"version {version} in {seconds:.1f} s")
    report = project.evaluate()
    audit = report["audit"]
    typer.echo(f"  on random audit texts: {audit['metric']} {audit['value']:.3f} (95% interval {audit['low']:.3f}-"
               f"{audit['high']:.3f}, {audit['n']} texts)" if audit["enough"]
               else f"  no audit estimate yet: {audit['reason']}")
    metrics = project.version(version)["metrics"]
    cv = metrics.get("cross_validated")
    if cv:
        typer.echo(f"  on the texts you labelled (out of fold): accuracy {cv['accuracy']:.3f}, "
                   f"macro F1 {cv['f1_macro']:.3f}")
    teacher = metrics.get("distilled_from")
    if teacher:
        typer.echo(f"  distilled from version {teacher['version']}: agreement {teacher['agreement']} on "
                   f"{teacher['held_out']} held-out labels")
    typer.echo(f"  decision rule: {report['rule']['describe']}")
    typer.echo(f"  serving: version {report['serving']['version']} ({report['serving']['reason']})")
    return {"version": version, "kind": kind, "seconds": round(seconds, 2), "metrics": metrics, "audit": audit,
            "rule": report["rule"], "serving": report["serving"]}


@project_app.command("train")
def train(folder: Path = FOLDER,
          full: bool = typer.Option(False, "--full", help="Train the full model (tuned LLM + fine-tuned encoder, "
                                                          "minutes) instead of the fast one (seconds)."),
          background: bool = typer.Option(False, "--background", help="With --full: start it and return; follow "
                                                                      "it with `agilecls project status`."),
          as_json: bool = JSON) -> dict:
    """Train a new version on every label (the held-out test rows excepted)."""
    if background and not full:
        raise ValueError("--background needs --full (the fast model takes seconds)")
    return train_and_report(folder, "full" if full else "fast", background)


@project_app.command("publish")
def publish(folder: Path = FOLDER,
            background: bool = typer.Option(False, "--background", help="Start it and return; follow it with "
                                                                        "`agilecls project status`."),
            as_json: bool = JSON) -> dict:
    """Distil the serving version into a fast sentence encoder on every text of the pool (a new
    version, served when the audit says it is no worse)."""
    return train_and_report(folder, "distilled", background)


@project_app.command("review")
def review(folder: Path = FOLDER, per_list: int = typer.Option(10, "--per-list", min=1, help="Rows per list."),
           as_json: bool = JSON) -> dict:
    """Out-of-fold errors (most confident first) and possible label errors (cleanlab's label quality)."""
    project = _open(folder)
    lists = {"errors": project.errors(per_list), "label_issues": project.label_issues(per_list)}
    state = project.review_state()
    if state["message"]:
        typer.echo(f"({state['message']})")
    for title, key in (("model disagrees with the label", "errors"), ("possible label errors", "label_issues")):
        typer.echo(f"{title}:")
        for row in lists[key]:
            typer.echo(f"  {row['id']}\tlabel {row['label']}, model {row['predicted']} {row['confidence']:.2f}\t"
                       f"{row['text'][:80]}")
    return {**lists, "review": state}


@project_app.command("export")
def export(folder: Path = FOLDER,
           out: Path = EXPORT_OUT,
           predictions: bool = typer.Option(False, "--predictions", help="Every text with the serving version's "
                                                                         "predictions (by its decision rule), not "
                                                                         "just the labels."),
           as_json: bool = JSON) -> dict:
    """Write the labels (or every prediction) to a file."""
    check_output_file(out, "--out")
    path = _open(folder).export(out, "predictions" if predictions else "labels")
    typer.echo(f"wrote {path}")
    return {"out": str(path)}


def label_page(folder: Path = FOLDER, port: int = typer.Option(8765, help="Port (on 127.0.0.1)."),
               token: str | None = typer.Option(None, envvar="AGILECLS_TOKEN", show_default=False,
                                                   help="Require this bearer token on /api (or set "
                                                        "$AGILECLS_TOKEN); the page is opened with it."),
               no_browser: bool = typer.Option(False, "--no-browser", help="Do not open a browser.")):
    """Label a project in the browser: serve its labelling page and open it."""
    check_project(folder)
    if not 0 < port < 65536:
        raise ValueError(f"--port {port} is not a port number (1-65535)")
    import uvicorn

    from ..server import create_app

    server = create_app(project=folder, token=token)
    url = f"http://127.0.0.1:{port}/label" + (f"#token={token}" if token else "")
    typer.echo(f"labelling {folder} at {url} (Ctrl+C stops)")
    if not no_browser:
        threading.Thread(target=_open_when_up, args=(port, url), daemon=True).start()
    uvicorn.run(server, host="127.0.0.1", port=port, log_level="warning")


def _open_when_up(port: int, url: str, wait: float = 60.0) -> None:
    """Open ``url`` in the browser once the server accepts connections."""
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
        command.callback = guarded(prints_result(command.callback))
    app.add_typer(project_app, name="project")
    app.command("label")(guarded(label_page))
