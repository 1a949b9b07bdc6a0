"""The loop's fast model: logistic regression on cached frozen sentence embeddings, with a
Mahalanobis distance to the labelled classes as its out-of-scope score.

Why this model: it refits in well under a second on a few hundred labels (so the queue can be
rescored after every batch), it is the same model as ``EncoderClassifier(head="logistic")``
(``LogisticRegression(C=1, max_iter=5000)`` on the same embeddings, so a saved fast version gives
the loop's numbers exactly), and on ETHOS it was the strongest frozen-encoder head on a few
hundred rows (docs/uncertainty.md).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from ..encoders.ood import MahalanobisScorer
from ..recipes.builtin import FAST_PARAMS  # the saved fast version: the same model as an EncoderClassifier

#: Shrinkage of the Mahalanobis covariance toward the identity (EncoderClassifier's default).
SHRINKAGE = 0.9


def fit_head(emb: np.ndarray, y_idx: np.ndarray, seed: int = 0) -> LogisticRegression:
    """Logistic regression as :class:`agilecls.encoders.heads.LogisticHead` fits it."""
    return LogisticRegression(C=FAST_PARAMS["C"], max_iter=5000, random_state=seed).fit(emb, y_idx)


def pool_scores(emb: np.ndarray, labelled: np.ndarray, y_idx: np.ndarray, n_classes: int, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities [n, n_classes] and out-of-scope scores [n] for every row of ``emb``, from a
    model fitted on ``emb[labelled]`` with class indices ``y_idx``."""
    head = fit_head(emb[labelled], y_idx, seed)
    proba = np.zeros((len(emb), n_classes))
    proba[:, head.classes_] = head.predict_proba(emb)
    present = np.unique(y_idx)  # distances to the classes labelled so far only
    ood = MahalanobisScorer(SHRINKAGE).fit(emb[labelled], np.searchsorted(present, y_idx)).score(emb)
    return proba, ood


def folds_for(y_idx: np.ndarray, folds: int = 5) -> int:
    """Folds usable for stratified cross-fitting: at most the smallest class's count, at least 2."""
    counts = np.bincount(y_idx)
    return int(max(2, min(folds, counts[counts > 0].min())))


def out_of_fold(emb: np.ndarray, y_idx: np.ndarray, n_classes: int, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold probabilities [n, n_classes]: each row scored by a model that never saw it
    (stratified k-fold; k shrinks to the smallest class's count so every fold sees every class).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> emb = np.r_[rng.normal(0, 1, (10, 3)), rng.normal(3, 1, (10, 3))]
    >>> out_of_fold(emb, np.r_[np.zeros(10, int), np.ones(10, int)], 2).shape
    (20, 2)
    """
    k = folds_for(y_idx, folds)
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a class with fewer rows than folds: sklearn warns, still works
        part = cross_val_predict(LogisticRegression(C=FAST_PARAMS["C"], max_iter=5000, random_state=seed),
                                 emb, y_idx, cv=cv, method="predict_proba")
    proba = np.zeros((len(emb), n_classes))
    proba[:, np.unique(y_idx)] = part
    return proba
