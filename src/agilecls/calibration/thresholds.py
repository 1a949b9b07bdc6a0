"""The decision threshold of a binary classifier, chosen on out-of-fold probabilities.

A trust-and-safety team often needs "catch 90% of the violations" (a target recall) or "when it
flags, be right 95% of the time" (a target precision) rather than the 0.5 cut; F1 is the default
balance. The threshold is chosen on probabilities of rows the model did not train on, saved with the
model and reported with the precision, recall and F1 it reached there.

The same rules choose an encoder's reject (abstention) threshold on its out-of-scope score from
held-out rows with out-of-scope examples (:func:`choose_reject_threshold`): "recall:0.8" rejects
at least 80% of the held-out out-of-scope rows while wrongly rejecting as few in-scope ones as it can.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import precision_recall_curve

_SPEC = re.compile(r"^(precision|recall)\s*[:=>]+\s*(0?\.\d+|1(\.0*)?)$")


@dataclass
class DecisionThreshold:
    """Predict ``positive`` when its probability is at least ``threshold``.

    Attributes
    ----------
    rule : str
        How it was chosen ("f1", "precision:0.9", "recall:0.8" or "fixed").
    positive : str
    threshold : float
    precision, recall, f1 : float
        What it reached on the out-of-fold probabilities it was chosen on (NaN for "fixed").
    """

    rule: str
    positive: str
    threshold: float
    precision: float = float("nan")
    recall: float = float("nan")
    f1: float = float("nan")

    def decide(self, proba: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        """Predicted labels of ``proba`` (columns in ``classes`` order)."""
        classes = [str(c) for c in classes]
        pos = classes.index(self.positive)
        other = classes[1 - pos]
        return np.where(np.asarray(proba)[:, pos] >= self.threshold, self.positive, other).astype(object)

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and v != v else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> DecisionThreshold:
        return cls(**{k: (float("nan") if v is None else v) for k, v in data.items()})

    def describe(self) -> str:
        reached = "" if self.rule == "fixed" else (f" (out of fold: precision {self.precision:.3f}, recall "
                                                   f"{self.recall:.3f}, F1 {self.f1:.3f})")
        return f"{self.positive!r} when p >= {self.threshold:.3f}, chosen by {self.rule}{reached}"


def check_rule(rule) -> str | float:
    """``rule`` normalised: "f1", "expected_f1", "precision:t", "recall:t" or a fixed float in (0, 1)."""
    if isinstance(rule, (int, float)) and not isinstance(rule, bool):
        if not 0 < rule < 1:
            raise ValueError(f"threshold={rule}: a fixed threshold must be in (0, 1)")
        return float(rule)
    if isinstance(rule, str):
        text = rule.strip().lower()
        if text in ("f1", "expected_f1"):
            return text
        match = _SPEC.match(text)
        if match and 0 < float(match.group(2)) <= 1:
            return f"{match.group(1)}:{float(match.group(2)):g}"
    raise ValueError(f"threshold={rule!r}: use 'f1', 'expected_f1', 'precision:0.9', 'recall:0.8', a number in (0, 1), "
                     "or None")


def expected_f1_cut(p_pos: np.ndarray) -> float:
    """The cut that maximises the F1 that calibrated probabilities ``p_pos`` expect, labels unused.

    Flagging the k most probable rows expects ``sum(top k p)`` true positives, so F1 ≈
    ``2 * TP / (k + sum(p))``. Its maximiser satisfies Lipton et al.'s (2014) rule that the best F1
    cut of a calibrated classifier is half the best F1; unlike the best cut on labelled rows, it does
    not jump with which few rows happen to sit near the cut.

    Examples
    --------
    >>> round(expected_f1_cut(np.array([0.9, 0.8, 0.4, 0.3, 0.1])), 2)
    0.4
    """
    p = np.sort(np.asarray(p_pos, dtype=np.float64))[::-1]
    expected_f1 = 2 * np.cumsum(p) / (np.arange(1, len(p) + 1) + p.sum())
    return float(p[int(np.argmax(expected_f1))])


def check_threshold_setting(threshold, pos_label: str | None, labels: Sequence[str]) -> tuple[str | float | None, str]:
    """The checked rule (None for no threshold) and the positive class (default: the last of
    ``labels``), refused before any model is trained: a rule needs exactly two classes, and a given
    ``pos_label`` must be one of them."""
    labels = list(labels)
    rule = None if threshold is None else check_rule(threshold)
    positive = pos_label if pos_label is not None else labels[-1]
    if positive not in labels:
        raise ValueError(f"pos_label {positive!r} is not one of the classes {labels}")
    if rule is not None and len(labels) != 2:
        raise ValueError(f"a decision threshold needs two classes, got {len(labels)} ({labels}); leave threshold=None")
    return rule, positive


def fit_threshold(p_pos: np.ndarray, is_pos: np.ndarray, rule, positive: str) -> DecisionThreshold:
    """The threshold on ``p_pos`` that follows ``rule`` on rows whose truth is ``is_pos``.

    "f1": the best F1 of the positive class. "expected_f1": the cut whose F1, as the probabilities
    themselves expect it, is best (:func:`expected_f1_cut`; for calibrated probabilities, such as
    a stacker's or a :class:`CalibratedClassifier`'s). "precision:t": the lowest threshold whose
    precision is at least t (so the most recall at that precision). "recall:t": the highest threshold whose
    recall is still at least t (so the most precision at that recall).

    Examples
    --------
    >>> t = fit_threshold(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]), "f1", "yes")
    >>> round(t.threshold, 2), t.f1
    (0.35, 0.8)
    """
    rule = check_rule(rule)
    if isinstance(rule, float):
        return DecisionThreshold("fixed", positive, rule)
    is_pos = np.asarray(is_pos).astype(bool)
    if is_pos.all() or not is_pos.any():
        raise ValueError("choosing a threshold needs out-of-fold rows of both classes; label more texts")
    precision, recall, cuts = precision_recall_curve(is_pos, np.asarray(p_pos, dtype=np.float64))
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
    if rule == "f1":
        i = int(np.argmax(f1))
    elif rule == "expected_f1":
        i = int(np.searchsorted(cuts, expected_f1_cut(p_pos)))  # cuts ascend; this one is among them
    else:
        kind, target = rule.split(":")
        reached = (precision if kind == "precision" else recall) >= float(target) - 1e-12
        if not reached.any():
            best = (precision if kind == "precision" else recall).max()
            raise ValueError(f"no threshold reaches {kind} {target} on the out-of-fold predictions (best "
                             f"{best:.3f}); lower the target or label more texts")
        ok = np.flatnonzero(reached)
        i = int(ok[0] if kind == "precision" else ok[-1])
    return DecisionThreshold(rule, positive, float(cuts[i]), float(precision[i]), float(recall[i]), float(f1[i]))


def choose_reject_threshold(score: np.ndarray, correct: np.ndarray, is_ood: np.ndarray, rule="auto") -> float:
    """The out-of-scope score above which a classifier abstains, chosen on held-out rows.

    Parameters
    ----------
    score : array of shape (n,)
        Out-of-scope scores (higher = more likely out of scope).
    correct : bool array of shape (n,)
        Whether the in-scope prediction of each row is right.
    is_ood : bool array of shape (n,)
        Whether each row is out of scope.
    rule : str, default="auto"
        "auto": the threshold that maximises combined accuracy (in-scope rows right and kept,
        out-of-scope rows rejected). Out-of-scope rows are usually few among held-out rows
        (CLINC150 validation: 100 of 3,100), so "auto" rejects cautiously; "f1",
        "recall:t" or "precision:t" choose it as :func:`fit_threshold` does, with out-of-scope as
        the positive class.

    Returns
    -------
    float
        Reject when ``score > threshold``.
    """
    score = np.asarray(score, dtype=np.float64)
    if rule != "auto":
        cut = fit_threshold(score, is_ood, rule, "out of scope").threshold  # positive when score >= cut
        return float(np.nextafter(cut, -np.inf))
    order = np.argsort(score)
    s, c, o = score[order], np.asarray(correct, bool)[order], np.asarray(is_ood, bool)[order]
    # keeping the first i rows (lowest scores): right = in-scope correct among kept + oos among rejected
    kept_right = np.concatenate([[0], np.cumsum(c & ~o)])
    rejected_oos = o.sum() - np.concatenate([[0], np.cumsum(o)])
    acc = kept_right + rejected_oos
    i = int(np.argmax(acc))
    if i == 0:
        return float(s[0] - 1e-9)
    if i == len(s):
        return float(s[-1])
    return float((s[i - 1] + s[i]) / 2)
