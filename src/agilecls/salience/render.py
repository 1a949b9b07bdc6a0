"""Renderers of an :class:`~agilecls.salience.result.Explanation`: a standalone HTML heat map
and a coloured console view. They read only the explanation's plain data (:class:`Renderable`), so
this module imports nothing of the explanation's own."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Protocol


class Renderable(Protocol):
    """What the renderers read of an explanation."""

    prompt: str
    target: str
    method: str
    model: str
    score: float
    signed: bool
    warnings: list[str]

    def spans(self, granularity: str = "words", pattern: str | None = None) -> list[dict]: ...

    def top(self, k: int = 5, granularity: str = "sentences", pattern: str | None = None) -> list[dict]: ...


def _scale(values: Sequence[float], signed: bool) -> float:
    m = max((abs(v) for v in values), default=0.0)
    return m if m > 0 else 1.0


def _color(score: float, scale: float, signed: bool) -> str:
    w = min(1.0, abs(score) / scale)
    if signed and score < 0:
        return f"rgba(37, 99, 235, {w * 0.85:.3f})"
    return f"rgba(234, 88, 12, {w * 0.85:.3f})" if signed else f"rgba(124, 58, 237, {w * 0.85:.3f})"


def _html_body(exp: Renderable, granularity: str, pattern: str | None) -> str:
    spans = [s for s in exp.spans(granularity, pattern) if not s["special"]]
    scale = _scale([s["score"] for s in spans], exp.signed)
    parts, cursor = [], 0
    for s in sorted(spans, key=lambda s: s["start"]):
        if s["start"] < cursor:
            continue
        parts.append(html.escape(exp.prompt[cursor:s["start"]]))
        parts.append(f'<span class="s" style="background:{_color(s["score"], scale, exp.signed)}" '
                     f'title="{s["score"]:.4g}">{html.escape(exp.prompt[s["start"]:s["end"]])}</span>')
        cursor = s["end"]
    parts.append(html.escape(exp.prompt[cursor:]))
    return "".join(parts)


def render_html(exp: Renderable, granularity: str = "words", pattern: str | None = None,
                title: str | None = None, fragment: bool = False) -> str:
    body = _html_body(exp, granularity, pattern)
    top = "".join(f"<li><b>{s['score']:.4g}</b> {html.escape(s['text'][:120])}</li>"
                  for s in exp.top(5, "sentences"))
    legend = ("orange: pushes the target up, blue: pushes it down" if exp.signed
              else "darker: the score is more sensitive to it")
    warned = "".join(f'<p class="warn" role="alert" style="color:#92400e;background:#fef3c7;border:1px solid #fcd34d;'
                     f'border-radius:6px;padding:.4rem .7rem">&#9888; {html.escape(w)}</p>'
                     for w in getattr(exp, "warnings", []))
    inner = (f'<div class="agilecls-salience">{warned}'
             f'<p class="meta">{html.escape(exp.method)} · {html.escape(granularity)}'
             f' · model {html.escape(exp.model)} · log p(target span) = {exp.score:.4f} · {legend}</p>'
             f'<pre class="text">{body}</pre><p class="meta">Target: <code>{html.escape(exp.target)}</code></p>'
             f'<p class="meta">Top sentences</p><ol>{top}</ol></div>')
    if fragment:
        return inner
    style = ("body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#1f2937}"
             ".text{white-space:pre-wrap;font:14px/1.7 ui-monospace,monospace;background:#fafafa;"
             "border:1px solid #e5e7eb;border-radius:8px;padding:1rem}.s{border-radius:3px}"
             ".meta{color:#6b7280;font-size:13px}code{background:#f3f4f6;padding:0 .3em}")
    heading = html.escape(title or "agilecls salience")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{heading}</title><style>{style}</style>"
            f"</head><body><h1>{heading}</h1>{inner}</body></html>")


def render_console(exp: Renderable, granularity: str = "words", pattern: str | None = None,
                   color: bool = True, top: int = 5) -> str:
    """The prompt with 24-bit background colours per span (or [score] marks without colour),
    followed by the top spans."""
    spans = [s for s in exp.spans(granularity, pattern) if not s["special"]]
    scale = _scale([s["score"] for s in spans], exp.signed)
    out, cursor = [], 0
    for s in sorted(spans, key=lambda s: s["start"]):
        out.append(exp.prompt[cursor:s["start"]])
        piece = exp.prompt[s["start"]:s["end"]]
        if color:
            w = min(1.0, abs(s["score"]) / scale)
            base = (37, 99, 235) if exp.signed and s["score"] < 0 else (234, 88, 12)
            r, g, b = (int(255 - (255 - c) * w * 0.8) for c in base)
            out.append("\n".join(f"\x1b[48;2;{r};{g};{b}m\x1b[30m{line}\x1b[0m" for line in piece.split("\n")))
        else:
            out.append(f"{piece}[{s['score']:.3g}]")
        cursor = s["end"]
    out.append(exp.prompt[cursor:])
    lines = ["".join(out), "",
             f"method {exp.method}, log p(target span) = {exp.score:.4f}, target: {exp.target!r}"]
    for w in getattr(exp, "warnings", []):
        lines.append(f"\x1b[1;33mwarning: {w}\x1b[0m" if color else f"warning: {w}")
    lines.append(f"top {granularity}:")
    for s in exp.top(top, granularity, pattern):
        lines.append(f"  {s['score']:+.4g}  {s['text'][:100]!r}")
    return "\n".join(lines)


