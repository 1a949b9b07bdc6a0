"""Calibration and decision thresholds of a multi-label classifier, one label at a time.

A multi-label classifier gives every label its own probability, so each label is a binary problem
of its own: each gets the binary calibration map with the lowest cross-validated log loss on its
out-of-fold probabilities (:func:`agilecls.calibration.calibrators.choose_calibrator`: none,
temperature, Platt or isotonic) and its own decision threshold by the same rule (:func:`fit_threshold`). Labels are
rare and unequal: on the ETHOS multi-label training comments the share of comments with a label
runs from 10% to 36%, so one fixed cut of 0.5 for all of them fits none well (a classifier that
learnt only each label's base rate answers "no" to every label at 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .calibrators import choose_calibrator, make_calibrator
from .thresholds import DecisionThreshold, fit_threshold

#: A label whose out-of-fold rows are all of one class keeps probability 0.5 as its cut.
FALLBACK_THRESHOLD = 0.5


def _pair(p: np.ndarray) -> np.ndarray:
    return np.column_stack([1.0 - p, p])


class PerLabelCalibrator:
    """One binary calibration map per label (columns of a [texts, labels] probability matrix)."""

    name = "per-label"

    def __init__(self, maps: Sequence | None = None):
        self.maps = list(maps or [])

    def fit(self, proba: np.ndarray, Y: np.ndarray, method: str = "auto", random_state: int = 0) -> dict:
        """Fit every label's map on its out-of-fold column; returns {label index: {method: log loss}}."""
        proba, Y = np.asarray(proba, dtype=np.float64), np.asarray(Y, dtype=int)
        self.maps, scores = [], {}
        for k in range(Y.shape[1]):
            if Y[:, k].min() == Y[:, k].max():  # one class only: nothing to calibrate against
                self.maps.append(make_calibrator("none"))
                continue
            calibrator, scores[k] = choose_calibrator(_pair(proba[:, k]), Y[:, k], method, random_state)
            self.maps.append(calibrator)
        return scores

    def transform(self, proba: np.ndarray) -> np.ndarray:
        proba = np.asarray(proba, dtype=np.float64)
        return np.column_stack([m.transform(_pair(proba[:, k]))[:, 1] for k, m in enumerate(self.maps)])

    def state(self) -> dict:
        return {"maps": [{"method": m.name, "state": m.state()} for m in self.maps]}

    @classmethod
    def from_state(cls, state: dict) -> PerLabelCalibrator:
        return cls([make_calibrator(m["method"], m["state"]) for m in state["maps"]])


def fit_label_thresholds(proba: np.ndarray, Y: np.ndarray, labels: Sequence[str], rule) -> list[DecisionThreshold]:
    """Each label's threshold on its own probability column, chosen by ``rule`` ("f1",
    "expected_f1", "precision:t", "recall:t" or a fixed number); a label without both classes out of fold keeps
    :data:`FALLBACK_THRESHOLD`."""
    proba, Y = np.asarray(proba, dtype=np.float64), np.asarray(Y, dtype=int)
    out = []
    for k, label in enumerate(labels):
        if Y[:, k].min() == Y[:, k].max():
            out.append(DecisionThreshold("fixed", str(label), FALLBACK_THRESHOLD))
            continue
        try:
            out.append(fit_threshold(proba[:, k], Y[:, k] == 1, rule, str(label)))
        except ValueError as error:  # an unreachable target names the label it failed on
            raise ValueError(f"label {label!r}: {error}") from None
    return out


def decide_labels(proba: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """The 0/1 decisions [texts, labels]: label k where its probability is at least ``cuts[k]``."""
    return (np.asarray(proba, dtype=np.float64) >= np.asarray(cuts, dtype=np.float64)).astype(int)


def label_cuts(classifier, n_labels: int) -> np.ndarray:
    """The probability at which ``classifier`` gives each label: its per-label thresholds when it
    has them (a :class:`~agilecls.CalibratedClassifier` with ``threshold``), else 0.5 for all."""
    thresholds = classifier.decision_rule()
    if isinstance(thresholds, list):
        return np.array([t.threshold for t in thresholds], dtype=np.float64)
    return np.full(n_labels, FALLBACK_THRESHOLD)
