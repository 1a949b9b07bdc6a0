"""Gradient salience over a prompt: which input tokens made the model write (or choose) its answer.

``explain(model, prompt, target)`` scores the summed log-probability of a span of the target
continuation (a language model) or of a label (an :class:`AgileClassifier`, through the
classifier's own prompts, label ids and :class:`LabelScorer`), and attributes it to the prompt's
input embeddings with a method from one registry:

- ``grad_l2``: L2 norm of the gradient at each token's embedding (how sensitive, unsigned);
- ``grad_dot_input``: gradient · embedding (first-order contribution, signed);
- ``integrated_gradients``: (embedding − baseline) · the gradient averaged along the straight
  path from a zero-embedding baseline (signed; sums to f(input) − f(baseline)).

Results are plain data (:class:`Explanation`) with JSON, HTML and console renderers.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from .lm import LanguageModel, load_lm
from .scoring import softcap
from .spans import GRANULARITIES, aggregate

METHODS: dict[str, Callable] = {}


def register_method(name: str, signed: bool):
    """Add a salience method to the registry: ``fn(objective, embeds, **options) -> (scores, info)``."""

    def wrap(fn):
        fn.signed = signed
        METHODS[name] = fn
        return fn

    return wrap


# ---- objectives: a differentiable score of the prompt's input embeddings ------------------------
class _Objective:
    """f(x): x [B, prompt_len, d] prompt embeddings → [B] scores; everything else held fixed."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class TargetLogProb(_Objective):
    """Summed log-probability of target tokens ``span`` after the prompt, full-vocabulary softmax
    at those positions only (the LM head is never run over the prompt)."""

    def __init__(self, lm: LanguageModel, target_ids: list[int], span: tuple[int, int]):
        self.lm = lm
        self.target_ids = target_ids
        self.span = span
        ids = torch.tensor([target_ids], device=lm.device)
        with torch.no_grad():
            self.target_embeds = lm.model.get_input_embeddings()(ids)[0] if target_ids else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        batch, n_prompt = x.shape[0], x.shape[1]
        a, b = self.span
        # Tokens after the last scored one cannot influence the score: leave them out.
        inputs = x if b <= 1 else torch.cat([x, self.target_embeds[:b - 1].expand(batch, -1, -1)], dim=1)
        hidden = self.lm.base_model()(inputs_embeds=inputs, use_cache=False).last_hidden_state
        positions = torch.arange(n_prompt - 1 + a, n_prompt - 1 + b, device=x.device)
        logits = softcap(hidden[:, positions] @ self.lm.output_embedding().T, self.lm.logit_softcap())
        logp = torch.log_softmax(logits, dim=-1)
        wanted = torch.tensor(self.target_ids[a:b], device=x.device)
        return logp[:, torch.arange(b - a, device=x.device), wanted].sum(dim=1)


class ClassifierLogProb(_Objective):
    """Calibrated log-probability of one label of an AgileClassifier, computed by the classifier's
    own LabelScorer (``rows_for`` / ``row_scores`` / ``combine``) on embeddings instead of ids."""

    def __init__(self, clf, prompt, label: int):
        self.clf = clf
        self.scorer = clf.scorer_
        self.lm = self.scorer.lm
        self.label = label
        ((prefix, rows),) = self.scorer.rows_for([prompt]).items()
        self.prefix = prefix
        self.rows = rows
        self.n_prompt = len(prefix) + len(prompt.body)
        embed = self.lm.model.get_input_embeddings()
        with torch.no_grad():  # row tokens beyond the prompt: a multi-token label's continuation
            self.extra = [embed(torch.tensor([r.tokens[len(prompt.body):]], dtype=torch.long, device=self.lm.device))[0]
                          for r in rows]
        self.bias = torch.tensor(np.asarray(getattr(clf, "bias_", 0.0)), dtype=torch.float32)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        pieces = [torch.cat([x[b], extra], dim=0) for b in range(batch) for extra in self.extra]
        width = max(len(p) for p in pieces)
        inputs = torch.stack([torch.nn.functional.pad(p, (0, 0, 0, width - len(p))) for p in pieces])
        mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in pieces], device=x.device)
        hidden = self.lm.base_model()(inputs_embeds=inputs, attention_mask=mask, use_cache=False).last_hidden_state
        hidden = hidden[:, len(self.prefix):]
        rows = list(self.rows) * batch
        first, cont = self.scorer.row_scores(hidden, rows)
        out = []
        n = len(self.rows)
        for b in range(batch):
            scored = [(rows[j], first[j], cont.get(j)) for j in range(b * n, (b + 1) * n)]
            scores = self.scorer.combine(1, scored)[0] - self.bias.to(x)
            out.append(torch.log_softmax(scores, dim=-1)[self.label])
        return torch.stack(out)


# ---- methods ----------------------------------------------------------------------------------
def _gradients(objective: _Objective, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(x) [B], ∂f/∂x [B, L, d]); only the input gradient is computed, never weight gradients."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        f = objective(x)
        (grad,) = torch.autograd.grad(f.sum(), [x])
    return f.detach(), grad


@register_method("grad_l2", signed=False)
def grad_l2(objective, embeds, **_):
    f, grad = _gradients(objective, embeds[None])
    return grad[0].norm(dim=-1), {"score": float(f[0])}


@register_method("grad_dot_input", signed=True)
def grad_dot_input(objective, embeds, **_):
    f, grad = _gradients(objective, embeds[None])
    return (grad[0] * embeds).sum(-1), {"score": float(f[0])}


@register_method("integrated_gradients", signed=True)
def integrated_gradients(objective, embeds, steps: int = 16, batch_size: int = 8, **_):
    """Midpoint Riemann sum of the path integral from a zero-embedding baseline; the ``steps``
    interpolation points run ``batch_size`` at a time. Also reports f(baseline) and how far the
    attributions' sum is from f(x) − f(baseline) (completeness; shrinks as steps grow)."""
    if steps < 1:
        raise ValueError("integrated_gradients needs steps >= 1")
    baseline = torch.zeros_like(embeds)
    alphas = (torch.arange(steps, dtype=embeds.dtype, device=embeds.device) + 0.5) / steps
    total = torch.zeros_like(embeds)
    for chunk in alphas.split(max(1, batch_size)):
        x = baseline + chunk[:, None, None] * (embeds - baseline)[None]
        _, grad = _gradients(objective, x)
        total += grad.sum(0)
    scores = ((embeds - baseline) * total / steps).sum(-1)
    with torch.no_grad():
        ends = objective(torch.stack([embeds, baseline]))
    delta = float(ends[0] - ends[1])
    return scores, {"score": float(ends[0]), "baseline_score": float(ends[1]), "steps": steps,
                    "completeness_error": float(scores.sum()) - delta}


# ---- results ----------------------------------------------------------------------------------
@dataclass
class Explanation:
    """Salience of each prompt token for a target: plain data plus renderers.

    ``tokens``: dicts ``text``, ``start``, ``end`` (character offsets in ``prompt``), ``score`` and
    ``special`` (True for tokens not in the text, e.g. BOS or a chat template's markers when
    ``prompt`` is only the user text). ``target_tokens``: the target's tokens with offsets in
    ``target``; ``target_span``: the scored token range [start, end)."""

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
                "target_tokens": self.target_tokens}
        if granularities:
            data["spans"] = {g: self.spans(g, pattern) for g in granularities}
        return data

    def to_json(self, granularities: Sequence[str] | None = ("words", "sentences", "lines", "paragraphs"),
                pattern: str | None = None, **kwargs) -> str:
        return json.dumps(self.to_dict(granularities, pattern), ensure_ascii=False, **kwargs)

    @classmethod
    def from_dict(cls, data: dict) -> "Explanation":
        keys = cls.__dataclass_fields__
        data = {k: v for k, v in data.items() if k in keys}
        data["target_span"] = tuple(data["target_span"])
        return cls(**data)

    def to_html(self, granularity: str = "words", pattern: str | None = None, path=None,
                title: str | None = None) -> str:
        """A standalone HTML heat map (no scripts, no external assets); written to ``path`` if given."""
        page = render_html(self, granularity, pattern, title)
        if path is not None:
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(page, encoding="utf-8")
        return page

    def to_console(self, granularity: str = "words", pattern: str | None = None, color: bool = True,
                   top: int = 5) -> str:
        return render_console(self, granularity, pattern, color, top)

    def _repr_html_(self) -> str:  # notebooks
        return render_html(self, "words", None, None, fragment=True)


# ---- building explanations -------------------------------------------------------------------
def _offsets(tokenizer, text: str, ids: Sequence[int], add_special: bool) -> list[tuple[int, int, bool]]:
    """(start, end, special) per id: the tokenizer's offset mapping when it reproduces ``ids``,
    else offsets found by decoding each token and locating it in ``text``."""
    enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True,
                    return_special_tokens_mask=True)
    if list(enc["input_ids"]) == list(ids):
        return [(int(a), int(b), bool(s)) for (a, b), s in zip(enc["offset_mapping"], enc["special_tokens_mask"])]
    out, cursor = [], 0
    special_ids = set(getattr(tokenizer, "all_special_ids", []))
    for tid in ids:
        piece = tokenizer.decode([tid])
        if tid in special_ids or not piece:
            out.append((cursor, cursor, True))
            continue
        found = text.find(piece, cursor)
        if found < 0:
            found = text.find(piece.strip(), cursor) if piece.strip() else -1
            piece = piece.strip()
        if found < 0:
            out.append((cursor, cursor, True))
            continue
        out.append((found, found + len(piece), False))
        cursor = found + len(piece)
    return out


def _token_dicts(tokenizer, text: str, ids: Sequence[int], offsets, scores=None) -> list[dict]:
    out = []
    for i, (tid, (a, b, special)) in enumerate(zip(ids, offsets)):
        out.append({"id": int(tid), "text": text[a:b] if not special else tokenizer.decode([tid]),
                    "start": a, "end": b, "special": special,
                    **({"score": float(scores[i])} if scores is not None else {})})
    return out


def _target_span(span, target: str, offsets) -> tuple[int, int]:
    n = len(offsets)
    if span is None:
        return (0, n)
    if isinstance(span, str):
        at = target.find(span)
        if at < 0 or not span:
            raise ValueError(f"target span {span!r} is not in the target {target!r}")
        hit = [i for i, (a, b, _) in enumerate(offsets) if a < at + len(span) and b > at]
        return (hit[0], hit[-1] + 1)
    a, b = int(span[0]), int(span[1])
    if not 0 <= a < b <= n:
        raise ValueError(f"target span {span} must satisfy 0 <= start < end <= {n} (target tokens)")
    return (a, b)


def generate(lm: LanguageModel, prompt: str, max_new_tokens: int = 32) -> str:
    """The model's greedy continuation of ``prompt`` (stops at end of text)."""
    tok = lm.tokenizer
    ids = tok(prompt, return_tensors="pt")["input_ids"].to(lm.device)
    with torch.inference_mode():
        out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def _run(method: str, objective, embeds, options) -> tuple[torch.Tensor, dict]:
    if method not in METHODS:
        raise ValueError(f"unknown salience method {method!r}; use one of {', '.join(METHODS)}")
    return METHODS[method](objective, embeds, **options)


def explain(model, prompt: str, target: str | None = None, method: str = "grad_l2", target_span=None,
            max_new_tokens: int = 32, steps: int = 16, batch_size: int = 8, label: str | None = None) -> Explanation:
    """Salience of each token of ``prompt`` for ``target``.

    ``model``: a :class:`LanguageModel`, a model spec (bundled name, folder, hub id) or a fitted
    :class:`AgileClassifier`. For a language model the score is the summed log-probability of
    ``target`` (default: the model's own greedy continuation of up to ``max_new_tokens`` tokens)
    restricted to ``target_span`` — a token range (start, end) or a substring of the target. For a
    classifier ``prompt`` is the text to classify and the score is the calibrated log-probability
    of ``target`` (alias ``label``; default the predicted label) from the classifier's own scorer.
    ``steps`` and ``batch_size`` apply to integrated gradients."""
    from .classifier import AgileClassifier

    options = {"steps": steps, "batch_size": batch_size}
    if isinstance(model, AgileClassifier):
        return _explain_classifier(model, prompt, label or target, method, options)
    lm = load_lm(model)
    start = time.perf_counter()
    tok = lm.tokenizer
    if not prompt:
        raise ValueError("the prompt is empty")
    prompt_ids = tok(prompt)["input_ids"]
    info = {}
    if target is None:
        target = generate(lm, prompt, max_new_tokens)
        info["generated"] = True
    target_ids = tok(target, add_special_tokens=False)["input_ids"]
    if not target_ids:
        raise ValueError("the target is empty (the model generated nothing); pass a target")
    if len(prompt_ids) + len(target_ids) > lm.max_length:
        raise ValueError(f"prompt and target are {len(prompt_ids) + len(target_ids)} tokens, more than the "
                         f"model's context of {lm.max_length}")
    target_offsets = _offsets(tok, target, target_ids, False)
    span = _target_span(target_span, target, target_offsets)
    objective = TargetLogProb(lm, target_ids, span)
    with torch.no_grad():
        embeds = lm.model.get_input_embeddings()(torch.tensor([prompt_ids], device=lm.device))[0]
    scores, extra = _run(method, objective, embeds, options)
    info.update(extra)
    offsets = _offsets(tok, prompt, prompt_ids, True)
    return Explanation(prompt, target, method, METHODS[method].signed,
                       _token_dicts(tok, prompt, prompt_ids, offsets, scores.detach().double().cpu().numpy()),
                       _token_dicts(tok, target, target_ids, target_offsets), span, extra["score"],
                       lm.spec, time.perf_counter() - start, info)


def _explain_classifier(clf, text: str, label, method: str, options: dict) -> Explanation:
    """The decision of an AgileClassifier for one text, attributed over its whole prompt (template,
    instructions, in-context examples and text; only the text's tokens are marked non-special)."""
    start = time.perf_counter()
    lm = clf.lm_
    tok = lm.tokenizer
    (prompt,) = clf.prompts([text])
    proba = clf.predict_proba([text])[0]
    classes = [str(c) for c in clf.classes_]
    if label is None:
        k = int(np.argmax(proba))
    elif str(label) in classes:
        k = classes.index(str(label))
    else:
        raise ValueError(f"label {label!r} is not one of the classifier's classes {classes}")
    parts = clf.template_.render([text], classes, tok)[0]
    objective = ClassifierLogProb(clf, prompt, k)
    ids = list(prompt.prefix) + list(prompt.body)
    with torch.no_grad():
        embeds = lm.model.get_input_embeddings()(torch.tensor([ids], device=lm.device))[0]
    scores, extra = _run(method, objective, embeds, options)
    scores = scores.detach().double().cpu().numpy()
    # Offsets in the full prompt string; the prefix and the body were tokenized separately.
    full = parts.full()
    has_bos = bool(tok.bos_token) and parts.prefix.startswith(tok.bos_token)
    prefix_off = _offsets(tok, parts.prefix, prompt.prefix, not has_bos)
    text_ids = tok(parts.text, add_special_tokens=False)["input_ids"]
    n_text = len(prompt.body) - len(tok(parts.tail, add_special_tokens=False)["input_ids"])
    text_off = _offsets(tok, parts.text, text_ids, False)[:n_text]
    tail_ids = prompt.body[n_text:]
    tail_off = _offsets(tok, parts.tail, tail_ids, False)
    shift_text, shift_tail = len(parts.prefix), len(parts.prefix) + len(parts.text)
    offsets = (prefix_off + [(a + shift_text, b + shift_text, s) for a, b, s in text_off]
               + [(a + shift_tail, b + shift_tail, s) for a, b, s in tail_off])
    tokens = _token_dicts(tok, full, ids, offsets, scores)
    text_range = (shift_text, shift_tail)
    for t in tokens:
        t["in_text"] = bool(text_range[0] <= t["start"] < text_range[1]) and not t["special"]
    label_tokens = [{"id": i, "text": tok.decode([i]), "start": 0, "end": 0, "special": False}
                    for i in clf.label_ids_[k]]
    info = {**extra, "label": classes[k], "probabilities": dict(zip(classes, map(float, proba))),
            "text_range": list(text_range)}
    return Explanation(full, classes[k], method, METHODS[method].signed, tokens, label_tokens,
                       (0, len(label_tokens)), extra["score"], lm.spec, time.perf_counter() - start, info)


# ---- renderers --------------------------------------------------------------------------------
def _scale(values: Sequence[float], signed: bool) -> float:
    m = max((abs(v) for v in values), default=0.0)
    return m if m > 0 else 1.0


def _color(score: float, scale: float, signed: bool) -> str:
    w = min(1.0, abs(score) / scale)
    if signed and score < 0:
        return f"rgba(37, 99, 235, {w * 0.85:.3f})"
    return f"rgba(234, 88, 12, {w * 0.85:.3f})" if signed else f"rgba(124, 58, 237, {w * 0.85:.3f})"


def _html_body(exp: Explanation, granularity: str, pattern: str | None) -> str:
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


def render_html(exp: Explanation, granularity: str = "words", pattern: str | None = None,
                title: str | None = None, fragment: bool = False) -> str:
    body = _html_body(exp, granularity, pattern)
    top = "".join(f"<li><b>{s['score']:.4g}</b> {html.escape(s['text'][:120])}</li>"
                  for s in exp.top(5, "sentences"))
    legend = ("orange: pushes the target up, blue: pushes it down" if exp.signed
              else "darker: the score is more sensitive to it")
    inner = (f'<div class="agilecls-salience"><p class="meta">{html.escape(exp.method)} · {html.escape(granularity)}'
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


def render_console(exp: Explanation, granularity: str = "words", pattern: str | None = None,
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
             f"method {exp.method}, log p(target span) = {exp.score:.4f}, target: {exp.target!r}",
             f"top {granularity}:"]
    for s in exp.top(top, granularity, pattern):
        lines.append(f"  {s['score']:+.4g}  {s['text'][:100]!r}")
    return "\n".join(lines)


__all__ = ["Explanation", "METHODS", "GRANULARITIES", "explain", "generate", "register_method"]
