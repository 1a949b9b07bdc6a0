"""The result of an explanation, :class:`Explanation`: plain data (prompt, tokens with scores, target)
with its spans, JSON, HTML and console views."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .render import render_console, render_html
from .spans import aggregate


@dataclass
class Explanation:
    """Salience of each prompt token for a target: plain data plus renderers.

    ``tokens``: dicts ``text``, ``start``, ``end`` (character offsets in ``prompt``), ``score`` and
    ``special`` (True for tokens not in the text, e.g. BOS or a chat template's markers when
    ``prompt`` is only the user text). ``target_tokens``: the target's tokens with offsets in
    ``target``; ``target_span``: the scored token range [start, end). ``warnings``: what makes the
    scores doubtful, e.g. Integrated Gradients whose attributions miss f(input) − f(baseline) by
    more than 10% (``info["completeness_error"]``, ``info["score_difference"]``).

    Examples
    --------
    >>> exp = explain(lm, "The soup was cold. Verdict:", " bad")  # doctest: +SKIP
    >>> exp.top(2, "sentences"), exp.to_html("words", path="salience.html")  # doctest: +SKIP
    """

    prompt: str
    target: str
    method: str
    signed: bool
    tokens: list[dict]
    target_tokens: list[dict]
    target_span: tuple[int, int]
    score: float
    model: str = ""
    seconds: float = 0.0
    info: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def spans(self, granularity: str = "words", pattern: str | None = None) -> list[dict]:
        """Token scores summed into spans of the prompt (see :func:`agilecls.spans.aggregate`)."""
        return aggregate(self.prompt, self.tokens, granularity, pattern)

    def top(self, k: int = 5, granularity: str = "sentences", pattern: str | None = None) -> list[dict]:
        """The ``k`` spans with the largest score (by absolute value for signed methods)."""
        spans = [s for s in self.spans(granularity, pattern) if not s["special"]]
        key = (lambda s: abs(s["score"])) if self.signed else (lambda s: s["score"])
        return sorted(spans, key=key, reverse=True)[:k]

    def to_dict(self, granularities: Sequence[str] | None = None, pattern: str | None = None) -> dict:
        data = {"prompt": self.prompt, "target": self.target, "method": self.method, "signed": self.signed,
                "score": self.score, "target_span": list(self.target_span), "model": self.model,
                "seconds": round(self.seconds, 4), "info": self.info, "tokens": self.tokens,
                "target_tokens": self.target_tokens, "warnings": list(self.warnings)}
        if granularities:
            data["spans"] = {g: self.spans(g, pattern) for g in granularities}
        return data

    def to_json(self, granularities: Sequence[str] | None = ("words", "sentences", "lines", "paragraphs"),
                pattern: str | None = None, **kwargs) -> str:
        return json.dumps(self.to_dict(granularities, pattern), ensure_ascii=False, **kwargs)

    @classmethod
    def from_dict(cls, data: dict) -> Explanation:
        keys = cls.__dataclass_fields__
        data = {k: v for k, v in data.items() if k in keys}
        data["target_span"] = tuple(data["target_span"])
        return cls(**data)

    def to_html(self, granularity: str = "words", pattern: str | None = None, path=None,
                title: str | None = None) -> str:
        """A standalone HTML heat map (no scripts, no external assets); written to ``path`` if given."""
        page = render_html(self, granularity, pattern, title)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(page, encoding="utf-8")
        return page

    def to_console(self, granularity: str = "words", pattern: str | None = None, color: bool = True,
                   top: int = 5) -> str:
        return render_console(self, granularity, pattern, color, top)

    def _repr_html_(self) -> str:  # notebooks
        return render_html(self, "words", None, None, fragment=True)
