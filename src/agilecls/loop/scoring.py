"""The pool as the page shows it: the fast model's fit (:mod:`agilecls.loop.decisions`) blended
with the zero-shot scores while those are as good, each text's probabilities and decision, and
the project's settings that steer them.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import pandas as pd

from ..calibration.thresholds import check_rule
from ..encoders.sentence import SentenceEncoder
from ..validation import check_labels
from . import audit, decisions, strategies
from .feedback import PRODUCTION
from .store import ProjectError

#: The loop's settings and their defaults.
SETTINGS = {"positive": None, "rule": decisions.DEFAULT_RULE, "audit_rate": audit.DEFAULT_RATE, "retrain_every": 8}


def check_settings(values: dict, labels) -> dict:
    """``values`` checked (names and values), or a :class:`ProjectError` saying what to give."""
    unknown = sorted(set(values) - set(SETTINGS))
    if unknown:
        raise ProjectError(f"unknown setting(s) {', '.join(unknown)}; the settings are {', '.join(SETTINGS)}")
    return {key: check_setting(key, value, labels) for key, value in values.items()}


def new_meta(labels, descriptions: dict[str, str] | None, settings: dict, **meta) -> dict:
    """A new project's meta data: ``labels`` and ``descriptions`` (a sentence per label) checked,
    the ``settings`` checked and completed with their defaults, and ``meta`` as given (``None``
    for ``llm_params``: none)."""
    labels = check_labels([], [str(v).strip() for v in labels])[1]
    unknown = sorted(set(descriptions or {}) - set(labels))
    if unknown:
        raise ProjectError(f"descriptions given for unknown label(s) {', '.join(unknown)}")
    return {"labels": labels, "descriptions": descriptions or {}, **meta, "llm_params": meta.get("llm_params") or {},
            **SETTINGS, **check_settings(settings, labels)}


def count_texts(frame: pd.DataFrame, labels) -> dict:
    """Texts, labelled texts, held-out test texts (not audit), labelled audit texts, labels per class."""
    labelled = frame["label"].notna()
    return {"texts": len(frame), "labelled": int(labelled.sum()),
            "test": int((labelled & frame["is_test"] & ~frame["audit"]).sum()),
            "audit": int((labelled & frame["audit"]).sum()),
            "served": int(served_rows(frame).sum()),
            "counts": {lab: int((frame["label"] == lab).sum()) for lab in labels}}


def served_rows(frame: pd.DataFrame) -> np.ndarray:
    """Which rows a server appended to the pool (``agilecls serve --project DIR --sample RATE``)."""
    return np.array([extra.get("source") == PRODUCTION for extra in frame["extra"]], dtype=bool)


def check_setting(key: str, value, labels) -> object:
    """``value`` checked for setting ``key`` (a :class:`ProjectError` saying what to give)."""
    if key == "positive":
        if value is not None and value not in labels:
            raise ProjectError(f"positive={value!r} is not a label; the labels are {', '.join(labels)}")
        return value
    if key == "rule":
        if value == "pool_share":
            return value
        try:
            checked = check_rule(value)
        except ValueError as err:
            raise ProjectError(str(err)) from None
        return checked
    if key == "audit_rate":
        if not isinstance(value, Real) or isinstance(value, bool) or not 0 <= value <= 0.5:
            raise ProjectError(f"audit_rate={value!r}: give a share between 0 (off) and 0.5")
        return float(value)
    if key == "retrain_every":
        if not isinstance(value, Integral) or isinstance(value, bool) or value < 0:
            raise ProjectError(f"retrain_every={value!r}: give a whole number of labels (0: off)")
        return int(value)
    raise ProjectError(f"unknown setting {key!r}; the settings are {', '.join(SETTINGS)}")


class EmbeddingCache:
    """A sentence encoder loaded on first use, and the embeddings of the texts asked for last.

    Parameters
    ----------
    encoder : str
        The encoder's name or path (:class:`agilecls.encoders.sentence.SentenceEncoder`).
    cache_dir : path
        Its on-disk embedding cache.
    """

    def __init__(self, encoder: str, cache_dir):
        self.name, self.cache_dir = encoder, cache_dir
        self.loaded = None
        self.last: tuple[tuple[str, ...], np.ndarray] | None = None

    def encoder(self):
        if self.loaded is None:
            self.loaded = SentenceEncoder(self.name, cache_dir=self.cache_dir)
        return self.loaded

    def embed(self, texts, progress: bool = False) -> np.ndarray:
        """Embeddings of ``texts`` in order (kept until other texts are asked for)."""
        texts = tuple(texts)
        if self.last is None or self.last[0] != texts:
            self.last = (texts, self.encoder().embed(list(texts), show_progress=progress))
        return self.last[1]


@dataclass
class Scores:
    """Every row of the pool as the page shows it.

    Attributes
    ----------
    frame : DataFrame
        The project's texts (``store.frame()``).
    embeddings : ndarray of shape (n, d)
    fit : PoolFit or None
        The fast model (None until two classes have two labels each).
    proba : ndarray of shape (n, classes) or None
        The probabilities shown: the fit's, the zero-shot scores', or their blend.
    pred : ndarray of int or None
        The class shown for each row, by the shown scores' rule.
    weight : float
        The zero-shot scores' share of the blend (1: zero-shot only, 0: the model only).
    blend_scores : dict
        Each weight's out-of-fold ROC-AUC on the labelled texts.
    """

    frame: pd.DataFrame
    embeddings: np.ndarray
    fit: decisions.PoolFit | None
    proba: np.ndarray | None
    pred: np.ndarray | None
    weight: float
    blend_scores: dict

    def source(self) -> dict:
        """What the shown suggestions come from, for the page."""
        return {"weight": self.weight, "name": decisions.source_name(self.weight) if self.proba is not None
                else "nothing yet: label a few texts, or pre-label the project",
                "scores": {f"{w:g}": s for w, s in self.blend_scores.items()}}


def stored_zero_shot(cached: dict[str, list[float]], ids, n_classes: int) -> np.ndarray | None:
    """The stored zero-shot probabilities (``cached``, by id) of ``ids`` in order, uniform where a
    text has none; None when none are stored."""
    if not cached:
        return None
    uniform = [1.0 / n_classes] * n_classes
    return np.array([cached.get(i, uniform) for i in ids], dtype=np.float64)


def training_rows(frame: pd.DataFrame, labels) -> tuple[np.ndarray, np.ndarray]:
    """Row positions labelled and not held out (test or audit), and their class indices."""
    rows = np.flatnonzero(frame["label"].notna().to_numpy() & ~frame["is_test"].to_numpy())
    return rows, np.array([list(labels).index(v) for v in frame["label"].iloc[rows]], dtype=int)


def suggestion(scored: Scores, row: int, labels, is_audit: bool = False) -> dict:
    """Row ``row`` of the pool as a suggestion: id, text, whether it is an audit text, the label
    shown (by the shown scores' rule), its probability and every label's."""
    frame, proba, labels = scored.frame, scored.proba, list(labels)
    p = None if proba is None else proba[row]
    best = None if p is None else int(scored.pred[row])
    return {"id": frame["id"].iloc[row], "text": frame["text"].iloc[row], "audit": is_audit,
            "suggested": None if best is None else labels[best],
            "probability": None if best is None else float(p[best]),
            "proba": None if p is None else dict(zip(labels, map(float, p), strict=False))}


def score_pool(frame: pd.DataFrame, emb: np.ndarray, rows: np.ndarray, y_idx: np.ndarray, labels,
               zero_shot: np.ndarray | None, rule=decisions.DEFAULT_RULE, positive: str | None = None,
               audit_idx: np.ndarray | None = None) -> Scores:
    """Fit the fast model on ``rows`` (if it can be) and choose what the page shows.

    Parameters
    ----------
    frame : DataFrame
    emb : ndarray of shape (n, d)
    rows, y_idx : ndarray of int
        The training rows and their class indices.
    labels : list of str
    zero_shot : ndarray of shape (n, classes) or None
        Zero-shot probabilities of every row (None: none).
    rule, positive
        The two-class decision rule and its positive class (:func:`decisions.fit_pool`).
    audit_idx : ndarray of int or None
        Class indices of the labelled audit texts (pooled into the class-share estimate).

    Returns
    -------
    Scores
    """
    fit = (decisions.fit_pool(emb, rows, y_idx, labels, rule, positive, audit_idx=audit_idx)
           if decisions.can_fit(y_idx) else None)
    if fit is None and zero_shot is None:
        return Scores(frame, emb, None, None, None, 1.0, {})
    if zero_shot is None:
        return Scores(frame, emb, fit, fit.proba, fit.decide(), 0.0, {})
    if fit is None:
        return Scores(frame, emb, None, zero_shot, zero_shot.argmax(axis=1), 1.0, {})
    weight, scores = decisions.choose_blend(fit.oof, zero_shot[fit.rows], fit.y_idx)
    if weight == 0:
        return Scores(frame, emb, fit, fit.proba, fit.decide(), weight, scores)
    shown = decisions.blend(fit.proba, zero_shot, weight)
    positive_label = None if fit.threshold is None else fit.threshold.positive
    cut = (None if positive_label is None else
           decisions.fit_rule(shown, decisions.blend(fit.oof, zero_shot[fit.rows], weight), fit.y_idx,
                              labels, rule, positive_label))
    return Scores(frame, emb, fit, shown, decisions.decide(shown, labels, cut), weight, scores)


def queue_rows(scored: Scores, blocked: np.ndarray, k: int, *, strategy: str, salt: str, audit_rate: float,
               shown: int, seed: int = 0) -> tuple[list[int], np.ndarray]:
    """The rows of the next ``k`` texts to show, in order, and the random audit rows among them.

    Parameters
    ----------
    scored : Scores
        The pool as shown (:func:`score_pool`).
    blocked : ndarray of bool
        Rows not to offer (skipped, or held for another annotator).
    k : int
    strategy : str
        A query strategy (:data:`agilecls.loop.strategies.STRATEGIES`).
    salt, audit_rate, shown
        The project's audit draw, the share of audit texts and the texts shown so far
        (:func:`agilecls.loop.audit.next_audit_rows`).
    seed : int, default=0

    Returns
    -------
    picks : list of int
        The strategy's rows with the audit rows spread evenly through them.
    audit_rows : ndarray of int
    """
    frame, fit = scored.frame, scored.fit
    unlabelled = frame["label"].isna().to_numpy() & ~blocked
    audit_rows, reserve = audit.next_audit_rows(frame, unlabelled, salt, audit_rate, k, shown)
    free = unlabelled & ~frame["is_test"].to_numpy() & ~reserve
    pool = strategies.PoolScores(scored.embeddings, np.flatnonzero(free), None if fit is None else fit.raw,
                                 None if fit is None else fit.ood, served=served_rows(frame))
    chosen = strategies.select(strategy, pool, k - len(audit_rows), seed)
    return spread(list(chosen), list(audit_rows)), audit_rows


def spread(chosen: list, extra: list) -> list:
    """``chosen`` with ``extra`` placed at even intervals through it (not all at its end)."""
    total = len(chosen) + len(extra)
    slots = {int((i + 0.5) * total / len(extra)) for i in range(len(extra))} if extra else set()
    rest, more = iter(chosen), iter(extra)
    return [next(more) if j in slots else next(rest) for j in range(total)]
