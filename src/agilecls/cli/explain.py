"""``agilecls explain``: token salience of a prompt for a target, in the console, as JSON or HTML."""

from __future__ import annotations

import sys
from html import escape
from pathlib import Path

import typer

from ..atomic import atomic_write_text
from ..persistence import is_saved
from ..readers import parse_prompt_records, read_text_file
from .common import check_output_file, fail, load_or_zero_shot, refuse


def _records(prompt_or_file: str, target: str | None) -> list[dict]:
    """A JSONL file of prompt/target records, a text file holding one prompt, or the prompt itself."""
    path = Path(prompt_or_file)
    if prompt_or_file == "-":
        return [{"prompt": sys.stdin.read(), "target": target}]
    if len(prompt_or_file) < 4096 and path.is_file():
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            records = parse_prompt_records(read_text_file(path))
            if not records:
                raise ValueError(f"{path} holds no prompt records")
            return [{**r, "target": target if target is not None else (r["target"] or None)} for r in records]
        return [{"prompt": read_text_file(path), "target": target}]
    return [{"prompt": prompt_or_file, "target": target}]


MODEL = typer.Option(None, "--model", "-m", help="A language model spec (default: the bundled default), or a "
                                                 "saved classifier folder to explain its decision.")
REPORT = typer.Option(None, "--report", help="Write a standalone HTML heat map to this file.")


def check_options(ctx, method: str, granularity: str, as_json: bool, model: str | None, labels: str | None,
                  target: str | None) -> None:
    """Refuse options that this explanation would ignore."""
    if model and is_saved(model):
        refuse(ctx, ["labels"], f"has no effect with a saved classifier (--model {model}); it builds a zero-shot one")
    if labels or (model and is_saved(model)) or target is not None:
        refuse(ctx, ["max_new_tokens"], "has no effect with --target or a classifier (it sets the length of a "
                                        "generated target)")
    if method != "integrated_gradients":
        refuse(ctx, ["steps"], "needs --method integrated_gradients")
    if granularity != "regex" and not as_json:
        refuse(ctx, ["pattern"], "needs --granularity regex (or --json, whose spans it adds)")
    if as_json:
        refuse(ctx, ["top"], "has no effect with --json (every span is printed)")


def register(app: typer.Typer) -> None:
    @app.command()
    def explain(ctx: typer.Context,
                prompt_or_file: str = typer.Argument(..., help="A prompt, a text file, a JSONL of prompt/target "
                                                               "records, or - for standard input."),
                model: str | None = MODEL,
                target: str | None = typer.Option(None, help="Target continuation (default: the model's greedy "
                                                             "continuation) or, with a classifier, a label."),
                method: str = typer.Option("grad_l2", help="grad_l2, grad_dot_input or integrated_gradients."),
                granularity: str = typer.Option("sentences", help="tokens, words, sentences, lines, paragraphs "
                                                                  "or regex."),
                pattern: str | None = typer.Option(None, help="Regex whose matches are the spans "
                                                              "(granularity regex)."),
                span: str | None = typer.Option(None, help="Score only this substring of the target."),
                labels: str | None = typer.Option(None, help="Comma-separated labels: explain a zero-shot "
                                                             "classifier's decision for the text."),
                steps: int = typer.Option(16, help="Integrated-gradients interpolation steps."),
                max_new_tokens: int = typer.Option(32, help="Length of a generated target."),
                select: str | None = typer.Option(None, help="Only JSONL records whose source is this."),
                report: Path | None = REPORT,
                as_json: bool = typer.Option(False, "--json", help="Print the explanations as one JSON object."),
                top: int = typer.Option(5, help="How many top spans to list.")):
        """Which parts of a prompt made the model write its answer (or a classifier pick its label)."""
        from ..salience.explanation import explain as run_explain

        check_options(ctx, method, granularity, as_json, model, labels, target)
        if report is not None:
            check_output_file(report, "--report")
        records = _records(prompt_or_file, target)
        if select:
            records = [r for r in records if r.get("source") == select]
            if not records:
                fail(f"no record with source {select!r}")

        def load():
            if labels or (model and is_saved(model)):
                return load_or_zero_shot(model, labels, progress=False)
            from ..lm.loading import DEFAULT_MODEL, load_lm

            return load_lm(model or DEFAULT_MODEL)

        predictor = load()
        pages = []
        for record in records:
            exp = run_explain(predictor, record["prompt"], record["target"], method, target_span=span,
                              steps=steps, max_new_tokens=max_new_tokens)
            if not as_json:
                if record.get("source"):
                    typer.echo(f"== {record['source']}")
                typer.echo(exp.to_console(granularity, pattern, color=sys.stdout.isatty(), top=top))
                typer.echo(f"({exp.seconds:.2f} s)")
            pages.append((record.get("source") or f"prompt {len(pages) + 1}", exp))
        if report is not None:
            from ..salience.render import render_html

            body = "".join(f"<h2>{escape(title)}</h2>" + render_html(exp, granularity, pattern, fragment=True)
                           for title, exp in pages)
            page = render_html(pages[0][1], granularity, pattern, title="agilecls salience")
            if len(pages) > 1:
                start = page.index("<div class=\"agilecls-salience\">")
                page = page[:start] + body + "</body></html>"
            atomic_write_text(report, page)
            typer.echo(f"heat map written to {report}")
        if not as_json:
            return None
        spans = ("words", "sentences", "lines", "paragraphs")
        return {"report": None if report is None else str(report),
                "explanations": [{"source": record.get("source"), **exp.to_dict(spans, pattern)}
                                 for record, (_, exp) in zip(records, pages, strict=True)]}
