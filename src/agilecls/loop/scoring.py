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
from . import audit, decisions
from .store import ProjectError

#: The loop's settings and their defaults.
SETTINGS = {"positive": None, "rule": decisions.DEFAULT_RULE, "audit_rate": audit.DEFAULT_RATE, "retrain_every": 8}


def check_settings(values: dict, labels) -> dict:
    """``values`` checked (names and values), or a :class:`ProjectError` saying what to give."""
    unknown = sorted(set(values) - set(SETTINGS))
    if unknown:
        raise ProjectError(f"unknown setting(s) {', '.join(unknown)}; the settings are {', '.join(SETTINGS)}")
    return {key: check_setting(key, value, labels) for key, value in values.items()}


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
