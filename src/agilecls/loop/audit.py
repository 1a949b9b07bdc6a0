"""The random audit sample: the project's honest estimate of a version's quality.

Why: the query strategy picks texts because they are hard or rare, so metrics cross-validated on
the labelled texts describe those texts, neither the pool nor new data. The audit sample is drawn
at random instead. Each text is in the audit *reserve* with probability ``rate``, fixed by a hash
of its id and the project's salt (so texts imported later join it the same way); the strategies
never pick from the reserve, and one text in every ``1 / rate`` shown is the reserve's next text in
that random order. A reserve text handed out is marked audit and test at once: once labelled it
scores versions and is never trained on, whatever the settings say later. The labelled audit texts
are thus a uniform sample of the pool. The 95% interval of F1 is drawn from the posterior of the
pool's confusion proportions given the audit counts (:func:`posterior_f1`), that of ROC-AUC from
resampling the audit texts (the bootstrap).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

#: Share of the texts shown that are audit texts (one in five).
DEFAULT_RATE = 0.2
#: Fewer labelled audit texts than this (or, for two classes, fewer than MIN_POSITIVES of the
#: positive class) and the page shows no number: a bootstrap on so few rows is not a 95% interval.
MIN_TEXTS = 12
MIN_POSITIVES = 3
#: The interval half-width the page says how many more audit labels would reach.
TARGET_HALF_WIDTH = 0.05
BOOTSTRAP = 1000


def draw_keys(ids: Sequence[str], salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per id, fixed by the id and the project's salt."""
    return np.array([int.from_bytes(hashlib.sha256(f"{salt}:{i}".encode()).digest()[:8], "big") / 2.0**64
                     for i in ids])


def in_reserve(ids: Sequence[str], salt: str, rate: float) -> np.ndarray:
    """Which texts belong to the audit reserve at ``rate`` (0: none)."""
    return draw_keys(ids, salt) < rate if rate > 0 else np.zeros(len(ids), dtype=bool)


def quota(k: int, rate: float, shown_before: int) -> int:
    """How many of the next ``k`` texts shown are audit texts, so that over every text shown the
    share is ``rate`` (the count is exact, not random)."""
    if rate <= 0:
        return 0
    return int(math.floor((shown_before + k) * rate + 1e-9) - math.floor(shown_before * rate + 1e-9))


def next_audit_rows(frame, unlabelled: np.ndarray, salt: str, rate: float, k: int,
                    shown: int) -> tuple[np.ndarray, np.ndarray]:
    """(the audit rows among the next ``k`` texts shown, the reserve mask over ``frame``).

    Audit texts handed out before and still unlabelled come first, then the reserve's texts in
    their random order; ``unlabelled`` marks the rows that may be shown (unlabelled, not skipped,
    not held by another annotator)."""
    reserve = in_reserve(frame["id"], salt, rate)
    pending = np.flatnonzero(unlabelled & frame["audit"].to_numpy())
    fresh = np.flatnonzero(unlabelled & reserve & ~frame["is_test"].to_numpy())
    order = np.argsort(draw_keys(frame["id"].iloc[fresh], salt))
    return np.r_[pending, fresh[order]][: quota(k, rate, shown)].astype(int), reserve


def f1_from_confusion(cm: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """F1 averaged over ``classes`` from confusion matrices (``[..., true, predicted]``, counts or
    probabilities)."""
    diag = np.diagonal(cm, axis1=-2, axis2=-1)
    rows, cols = cm.sum(axis=-1), cm.sum(axis=-2)
    f1 = 2 * diag / np.maximum(rows + cols, 1e-12)
    return f1[..., list(classes)].mean(axis=-1)


def posterior_f1(cm: np.ndarray, classes: Sequence[int], draws: int, seed: int) -> np.ndarray:
    """F1 under draws of the pool's confusion proportions given the audit counts ``cm``: a
    Dirichlet posterior with a total prior weight of 2 spread over the cells (0.5 per cell for
    two classes, Jeffreys' prior). Unlike resampling the rows, it does not collapse to one value
    when a cell is empty (no true positive among a few audit texts does not prove F1 is 0)."""
    alpha = cm.astype(np.float64).ravel() + 2.0 / cm.size
    sample = np.random.default_rng(seed).dirichlet(alpha, size=draws).reshape(draws, *cm.shape)
    return f1_from_confusion(sample, classes)


def _auc(y_pos: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y_pos, score)) if 0 < y_pos.sum() < len(y_pos) else float("nan")


def _aucs(y_pos: np.ndarray, score: np.ndarray) -> np.ndarray:
    """ROC-AUC of every row of ``y_pos`` / ``score`` at once (Mann-Whitney on ranks; NaN where a
    row has one class only)."""
    ranks = rankdata(score, axis=1)
    n1 = y_pos.sum(axis=1)
    n0 = y_pos.shape[1] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * y_pos).sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def estimate(y_idx: np.ndarray, proba: np.ndarray, pred: np.ndarray, labels: Sequence[str],
             positive: str | None = None, seed: int = 0, boot: int = BOOTSTRAP) -> dict:
    """A version's quality on the labelled audit texts with 95% intervals.

    Parameters
    ----------
    y_idx : ndarray of int
        The audit texts' labels (class indices).
    proba : ndarray of shape (n, classes)
        The version's probabilities of those texts.
    pred : ndarray of int
        Its decisions (by its own rule).
    labels : sequence of str
    positive : str or None
        Two classes: the class whose F1 is reported (else macro F1).
    seed, boot : int

    Returns
    -------
    dict
        ``n``, ``metric`` ("f1" of ``positive`` or "f1_macro"), ``value``, ``low``, ``high``,
        ``roc_auc`` with ``roc_auc_low`` / ``roc_auc_high`` (two classes), ``enough`` (False: too
        few texts to show a number, with ``reason``) and ``more_for_target``: the audit labels more
        that would narrow the interval to ±0.05 (the half-width shrinks as 1/sqrt(n)).
    """
    y_idx, pred, proba = np.asarray(y_idx, dtype=int), np.asarray(pred, dtype=int), np.asarray(proba, dtype=float)
    n = len(y_idx)
    binary = len(labels) == 2
    pos = list(labels).index(positive) if binary and positive else len(labels) - 1
    out = {"n": n, "metric": "f1" if binary else "f1_macro", "positive": positive if binary else None,
           "enough": False, "reason": None, "value": None, "low": None, "high": None, "more_for_target": None}
    needed = MIN_TEXTS - n
    if binary and needed <= 0 and (y_idx == pos).sum() < MIN_POSITIVES:
        out["reason"] = (f"{int((y_idx == pos).sum())} audit text(s) labelled {labels[pos]!r} so far; "
                         f"an estimate needs {MIN_POSITIVES}")
        return out
    if needed > 0:
        out["reason"] = f"{n} audit text(s) labelled; an estimate needs {MIN_TEXTS} (label {needed} more)"
        return out
    c = len(labels)
    cm = np.zeros((c, c))
    np.add.at(cm, (y_idx, pred), 1)
    classes = [pos] if binary else sorted(set(y_idx.tolist()) | set(pred.tolist()))
    value = float(f1_from_confusion(cm, classes))
    low, high = np.percentile(posterior_f1(cm, classes, boot, seed), [2.5, 97.5])
    low, high = min(low, value), max(high, value)  # the prior pulls a perfect score's interval just below it
    half = (high - low) / 2
    out.update(enough=True, value=value, low=float(low), high=float(high),
               more_for_target=int(max(0, math.ceil(n * (half / TARGET_HALF_WIDTH) ** 2) - n)))
    if binary:
        idx = np.random.default_rng(seed).integers(0, n, size=(boot, n))
        score = proba[:, pos]
        aucs = _aucs(y_idx[idx] == pos, score[idx])  # the rows resampled
        aucs = aucs[~np.isnan(aucs)]
        out.update(roc_auc=_auc(y_idx == pos, score),
                   roc_auc_low=float(np.percentile(aucs, 2.5)) if len(aucs) else None,
                   roc_auc_high=float(np.percentile(aucs, 97.5)) if len(aucs) else None)
    return out
