"""Gradient salience over a prompt: which input tokens made the model write (or choose) its answer.

``explain(model, prompt, target)`` scores the summed log-probability of a span of the target
continuation (a language model), of a label of an :class:`AgileClassifier` (through the
classifier's own prompts, label ids and :class:`LabelScorer`) or of a class of an
:class:`EncoderClassifier` (through its own encoder, head and temperature; an ensemble's member is
chosen with ``member``), and attributes it to the input embeddings with a method from one registry:

- ``grad_l2``: L2 norm of the gradient at each token's embedding (how sensitive, unsigned);
- ``grad_dot_input``: gradient · embedding (first-order contribution, signed);
- ``integrated_gradients``: (embedding − baseline) · the gradient averaged along the straight
  path from a zero-embedding baseline (signed; sums to f(input) − f(baseline)).

A classifier tells ``explain`` what to differentiate through one of two methods:
``salience_members(text, label, member)`` when it is made of other classifiers
(:class:`CalibratedClassifier`, :class:`EnsembleClassifier`, :class:`DistilledClassifier`: which
of them to explain, for which label, and what the explanation records), or
``salience_objective(text, label)`` when it scores the text itself (:class:`AgileClassifier`,
:class:`EncoderClassifier`: the objective, from :mod:`.objectives` or :mod:`.encoder_objective`).

Results are plain data (:class:`Explanation`) with JSON, HTML and console renderers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.exceptions import NotFittedError

from ..lm.loading import LanguageModel, load_lm
from .averaging import mean_explanation
from .encoder_objective import EncoderLogProb
from .methods import METHODS, check_method, completeness_warnings, run_method
from .objectives import ClassifierLogProb, TargetLogProb
from .result import Explanation


# ---- building explanations -------------------------------------------------------------------
def _offsets(tokenizer, text: str, ids: Sequence[int], add_special: bool,
             max_length: int | None = None) -> list[tuple[int, int, bool]]:
    """(start, end, special) per id: the tokenizer's offset mapping (of ``text`` truncated to
    ``max_length`` tokens, if given) when it reproduces ``ids``, else offsets found by decoding
    each token and locating it in ``text``."""
    cut = {"truncation": True, "max_length": int(max_length)} if max_length else {}
    enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True,
                    return_special_tokens_mask=True, **cut)
    if list(enc["input_ids"]) == list(ids):
        pairs = zip(enc["offset_mapping"], enc["special_tokens_mask"], strict=True)
        return [(int(a), int(b), bool(s)) for (a, b), s in pairs]
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
    for i, (tid, (a, b, special)) in enumerate(zip(ids, offsets, strict=False)):
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
    if ids.shape[1] == 0:
        raise ValueError("the prompt has no tokens for this model (only whitespace?); give it some text")
    if ids.shape[1] >= lm.max_length:  # past its context the model fails mid-generation
        raise ValueError(f"the prompt has {ids.shape[1]} tokens; this model reads at most {lm.max_length}: shorten it")
    max_new_tokens = min(max_new_tokens, lm.max_length - ids.shape[1])
    with torch.inference_mode():
        out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def explain(model, prompt: str, target: str | None = None, method: str = "grad_l2", target_span=None,
            max_new_tokens: int = 32, steps: int = 16, batch_size: int = 8, label: str | None = None,
            member: str | None = None) -> Explanation:
    """Salience of each token of ``prompt`` for ``target``.

    Parameters
    ----------
    model : LanguageModel, str, AgileClassifier, EncoderClassifier, EnsembleClassifier or CalibratedClassifier
        A loaded model, a model spec (bundled name, folder, hub id) or a fitted classifier.
    prompt : str
        For a language model, the prompt; for an AgileClassifier, the text to classify (its whole
        prompt, instructions and examples included, is explained); for an EncoderClassifier, the
        text (its tokens, [CLS]/[SEP] marked special, up to the encoder's ``max_seq_length``).
    target : str or None, default=None
        For a language model, the continuation whose summed log-probability is explained (None:
        the model's own greedy continuation of up to ``max_new_tokens`` tokens); for a classifier,
        the label (None: the predicted one; for an ensemble's member, the ensemble's prediction).
    method : {"grad_l2", "grad_dot_input", "integrated_gradients"}, default="grad_l2"
        A method of :data:`agilecls.salience.methods.METHODS`.
    target_span : tuple of int, str or None, default=None
        Explain only these target tokens: a range (start, end) or a substring of the target.
    max_new_tokens : int, default=32
    steps, batch_size : int, default=16, 8
        Integrated-gradients interpolation points, and how many run at once.
    label : str or None, default=None
        Alias of ``target`` for a classifier.
    member : str or None, default=None
        For an EnsembleClassifier, the name of the member to explain (the members read different
        inputs, so the ensemble's vote has no single gradient); refused for any other model.

    Returns
    -------
    Explanation
        Token scores with character offsets; ``spans(granularity)`` sums them into words,
        sentences, lines, paragraphs or regex spans; JSON, HTML and console renderers.
        ``warnings`` lists doubts (Integrated Gradients far from completeness: raise ``steps``).

    Examples
    --------
    >>> from agilecls import explain
    >>> exp = explain("smollm2-135m-instruct", "Is the soup good? Answer:", " No")  # doctest: +SKIP
    >>> exp.top(3, "words")  # doctest: +SKIP
    >>> explain(encoder_clf, "where is my parcel", method="integrated_gradients", steps=64)  # doctest: +SKIP
    """
    options = {"steps": steps, "batch_size": batch_size}
    if isinstance(model, (str, os.PathLike, LanguageModel)):
        if member is not None:
            raise ValueError(f"member={member!r} picks a member of an EnsembleClassifier; a language model has none")
        return _explain_lm(model, prompt, target, method, target_span, max_new_tokens, options)
    try:
        return _explain_fitted(model, prompt, label if label is not None else target, member, method, options)
    except NotFittedError:
        raise ValueError(f"explain needs a fitted classifier; fit {type(model).__name__} first") from None


def _explain_fitted(model, text: str, label, member, method: str, options: dict) -> Explanation:
    """A classifier's decision for ``text``, explained through the classifier's own answers:
    ``salience_members`` (a classifier made of others: which of them, for which label) or
    ``salience_objective`` (one that scores the text itself: the function to differentiate)."""
    members = getattr(model, "salience_members", None)
    if callable(members):
        plan = members(text, label=label, member=member)
        parts = [_explain_fitted(m, text, plan["label"], plan["member"], method, options) for m in plan["models"]]
        if len(parts) > 1:  # e.g. the fold models of CalibratedClassifier(ensemble=True): their mean
            return mean_explanation(parts, model.describe(), plan["info"])
        parts[0].info.update(plan["info"])
        return parts[0]
    if member is not None:
        raise ValueError(f"member={member!r} picks a member of an EnsembleClassifier; this model has no members")
    if not callable(getattr(model, "salience_objective", None)):
        raise ValueError(f"explain needs a language model or an agilecls classifier, not {type(model).__name__}")
    check_method(method)
    if not text.strip():
        raise ValueError("the text is empty")
    start = time.perf_counter()
    proba = model.predict_proba([text])[0]
    objective = model.salience_objective(text, _class_index([str(c) for c in model.classes_], proba, label))
    layout = {ClassifierLogProb: _explain_classifier, EncoderLogProb: _explain_encoder}[type(objective)]
    return layout(model, text, objective, proba, method, options, start)


def _explain_lm(model, prompt: str, target, method: str, target_span, max_new_tokens: int,
                options: dict) -> Explanation:
    """A language model's (given or greedy) continuation attributed over the prompt."""
    lm = load_lm(model)
    start = time.perf_counter()
    tok = lm.tokenizer
    if not prompt:
        raise ValueError("the prompt is empty")
    check_method(method)
    prompt_ids = tok(prompt)["input_ids"]
    room = lm.max_length - len(prompt_ids)
    if room < (1 if target is not None else max_new_tokens):  # refused before any generation
        raise ValueError(f"the prompt is {len(prompt_ids)} tokens; with "
                         f"{'a target' if target is not None else f'{max_new_tokens} new tokens'} it exceeds the "
                         f"model's context of {lm.max_length}; shorten it")
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
    scores, extra = run_method(method, objective, embeds, options)
    info.update(extra)
    offsets = _offsets(tok, prompt, prompt_ids, True)
    return Explanation(prompt, target, method, METHODS[method].signed,
                       _token_dicts(tok, prompt, prompt_ids, offsets, scores.detach().double().cpu().numpy()),
                       _token_dicts(tok, target, target_ids, target_offsets), span, extra["score"],
                       lm.spec, time.perf_counter() - start, info, completeness_warnings(extra))


def _explain_classifier(clf, text: str, objective: ClassifierLogProb, proba, method: str, options: dict,
                        start: float) -> Explanation:
    """The decision of an AgileClassifier for one text, attributed over its whole prompt (template,
    instructions, in-context examples and text; only the text's tokens are marked non-special)."""
    lm = clf.lm_
    tok = lm.tokenizer
    (prompt,) = clf.prompts([text])
    classes = [str(c) for c in clf.classes_]
    k = objective.label
    parts = clf.template_.render([text], classes, tok)[0]
    ids = list(prompt.prefix) + list(prompt.body)
    with torch.no_grad():
        embeds = lm.model.get_input_embeddings()(torch.tensor([ids], device=lm.device))[0]
    scores, extra = run_method(method, objective, embeds, options)
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
    info = {**extra, "label": classes[k], "probabilities": dict(zip(classes, map(float, proba), strict=True)),
            "text_range": list(text_range)}
    return Explanation(full, classes[k], method, METHODS[method].signed, tokens, label_tokens,
                       (0, len(label_tokens)), extra["score"], lm.spec, time.perf_counter() - start, info,
                       completeness_warnings(extra))




def _class_index(classes: list[str], proba, label) -> int:
    """Index of ``label`` in ``classes`` (None: the most probable class)."""
    if label is None:
        return int(np.argmax(proba))
    if str(label) in classes:
        return classes.index(str(label))
    raise ValueError(f"label {label!r} is not one of the classifier's classes {classes}")


def _explain_encoder(clf, text: str, objective: EncoderLogProb, proba, method: str, options: dict,
                     start: float) -> Explanation:
    """The decision of an EncoderClassifier for one text, attributed over the encoder's input
    word embeddings of its tokens ([CLS]/[SEP] and other special tokens are marked special)."""
    classes = [str(c) for c in clf.classes_]
    k = objective.label
    scores, extra = run_method(method, objective, objective.embeds, options)
    tok = clf.encoder_.model.tokenizer
    max_length = getattr(clf.encoder_.model, "max_seq_length", None)
    offsets = _offsets(tok, text, objective.ids, True, max_length)
    tokens = _token_dicts(tok, text, objective.ids, offsets, scores.detach().double().cpu().numpy())
    for t in tokens:
        t["in_text"] = not t["special"]
    warnings = completeness_warnings(extra)
    seen = max((t["end"] for t in tokens if not t["special"]), default=0)
    if text[seen:].strip():
        warnings.append(f"the text was cut to the encoder's {max_length} tokens: the words after character "
                        f"{seen} were not read and have no score")
    info = {**extra, "label": classes[k], "probabilities": dict(zip(classes, map(float, proba), strict=True)),
            "text_range": [0, len(text)], "truncated": bool(text[seen:].strip())}
    return Explanation(text, classes[k], method, METHODS[method].signed, tokens,
                       [{"id": k, "text": classes[k], "start": 0, "end": 0, "special": False}], (0, 1),
                       extra["score"], clf.describe(),
                       time.perf_counter() - start, info, warnings)
