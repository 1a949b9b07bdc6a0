"""``agilecls explain``: token salience of a prompt for a target, in the console, as JSON or HTML."""

from __future__ import annotations

import sys
from html import escape
from pathlib import Path
from typing import Optional

import typer

from ..atomic import atomic_write_text
from ..persistence import is_saved
from ..readers import parse_prompt_records, read_text_file
from .common import check_output_file, fail, load_or_zero_shot


def _records(prompt_or_file: str, target: Optional[str]) -> list[dict]:
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


def register(app: typer.Typer) -> None:
    @app.command()
    def explain(prompt_or_file: str = typer.Argument(..., help="A prompt, a text file, a JSONL of prompt/target "
                                                               "records, or - for standard input."),
                target: Optional[str] = typer.Option(None, help="Target continuation (default: the model's greedy "
                                                                "continuation) or, with a classifier, a label."),
                method: str = typer.Option("grad_l2", help="grad_l2, grad_dot_input or integrated_gradients."),
                granularity: str = typer.Option("sentences", help="tokens, words, sentences, lines, paragraphs "
                                                                  "or regex."),
                pattern: Optional[str] = typer.Option(None, help="Regex whose matches are the spans "
                                                                 "(granularity regex)."),
                span: Optional[str] = typer.Option(None, help="Score only this substring of the target."),
                model: Optional[str] = typer.Option(None, help="Model spec or a saved classifier folder."),
                labels: Optional[str] = typer.Option(None, help="Comma-separated labels: explain a zero-shot "
                                                                "classifier's decision for the text."),
                steps: int = typer.Option(16, help="Integrated-gradients interpolation steps."),
                max_new_tokens: int = typer.Option(32, help="Length of a generated target."),
                select: Optional[str] = typer.Option(None, help="Only JSONL records whose source is this."),
                html: Optional[Path] = typer.Option(None, "--html", help="Write a standalone HTML heat map."),
                as_json: bool = typer.Option(False, "--json", help="Print one JSON object per prompt."),
                top: int = typer.Option(5, help="How many top spans to list.")):
        """Which parts of a prompt made the model write its answer (or a classifier pick its label)."""
        from ..salience.explanation import explain as run_explain  # loads torch/pandas: only when the command runs

        if html is not None:
            check_output_file(html, "--html")
        records = _records(prompt_or_file, target)
        if select:
            records = [r for r in records if r.get("source") == select]
            if not records:
                fail(f"no record with source {select!r}")

        def load():
            if labels or (model and is_saved(model)):
                return load_or_zero_shot(model, labels, progress=False)
            from ..lm.loading import DEFAULT_MODEL, load_lm  # loads torch/pandas: only when the command runs

            return load_lm(model or DEFAULT_MODEL)

        predictor = load()
        pages = []
        for record in records:
            exp = run_explain(predictor, record["prompt"], record["target"], method, target_span=span,
                              steps=steps, max_new_tokens=max_new_tokens)
            if as_json:
                typer.echo(exp.to_json(pattern=pattern))
            else:
                if record.get("source"):
                    typer.echo(f"== {record['source']}")
                typer.echo(exp.to_console(granularity, pattern, color=sys.stdout.isatty(), top=top))
                typer.echo(f"({exp.seconds:.2f} s)")
            pages.append((record.get("source") or f"prompt {len(pages) + 1}", exp))
        if html is not None:
            from ..salience.render import render_html  # loads torch/pandas: only when the command runs

            body = "".join(f"<h2>{escape(title)}</h2>" + render_html(exp, granularity, pattern, fragment=True)
                           for title, exp in pages)
            page = render_html(pages[0][1], granularity, pattern, title="agilecls salience")
            if len(pages) > 1:
                start = page.index("<div class=\"agilecls-salience\">")
                page = page[:start] + body + "</body></html>"
            atomic_write_text(html, page)
            if not as_json:
                typer.echo(f"heat map written to {html}")
