"""Out-of-fold probabilities of any agilecls classifier: k-fold cross-fitting or one hold-out split.

scikit-learn's ``cross_val_predict`` re-encodes string labels as integers before fitting each fold.
An :class:`~agilecls.AgileClassifier`'s labels are the words its language model answers with, so
its folds must see the real label strings: the fold loop here keeps them, and reorders every fold's
columns to one class order. The splitters are scikit-learn's (stratified, seeded; plain shuffled
folds for a multi-label 0/1 matrix, which no scikit-learn splitter stratifies).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit
from tqdm.auto import tqdm


@dataclass
class CrossFit:
    """Out-of-fold probabilities and what the cross-fitting left behind.

    Attributes
    ----------
    proba : ndarray of shape (n_rows, n_classes)
        Each row's probabilities from a model that did not see it, columns in ``classes`` order.
    rows : ndarray of int
        Which of the input rows ``proba`` belongs to (all rows for k-fold, the hold-out for a split).
    fitted : estimator or None
        For a hold-out split, the clone fitted on the other rows (it is the final model: refitting
        on every row would change the scores the calibration was fitted to); None for k-fold.
    models : list of estimators
        Every fold's fitted clone, in fold order, when ``out_of_fold(keep_models=True)``; else empty.
    """

    proba: np.ndarray
    rows: np.ndarray
    fitted: object | None
    models: list = field(default_factory=list)


def check_cv(cv, y, random_state: int = 0):
    """A scikit-learn splitter for ``cv``: an int k >= 2 (stratified k-fold, k lowered to the smallest
    class's count) or a float in (0, 1) (one stratified hold-out of that share). ``y`` is a list of
    labels, or a 0/1 matrix [rows, labels] for a multi-label classifier (shuffled, not stratified)."""
    multilabel = np.ndim(y) == 2
    counts = np.array([len(y)]) if multilabel else np.unique(np.asarray(y, dtype=object), return_counts=True)[1]
    if isinstance(cv, Integral) and not isinstance(cv, bool):
        if cv < 2:
            raise ValueError(f"cv={cv}: use k >= 2 folds, or a float in (0, 1) for one hold-out share")
        k = int(min(cv, counts.min()))
        if k < 2:
            raise ValueError("cross-fitting needs at least two examples of every class; label more texts")
        kind = KFold if multilabel else StratifiedKFold
        return kind(n_splits=k, shuffle=True, random_state=random_state), k
    if isinstance(cv, Real) and 0 < cv < 1:
        if counts.min() < 2:
            raise ValueError("a hold-out split needs at least two examples of every class; label more texts")
        n_test = max(int(round(cv * len(y))), 1 if multilabel else len(counts))
        if len(y) - n_test < (1 if multilabel else len(counts)):
            raise ValueError(f"cv={cv} leaves fewer training rows than classes; use a smaller share")
        kind = ShuffleSplit if multilabel else StratifiedShuffleSplit
        return kind(n_splits=1, test_size=n_test, random_state=random_state), 1
    raise ValueError(f"cv={cv!r}: use an int k >= 2 (k-fold) or a float in (0, 1) (hold-out share)")


def with_shared_lower_cache(estimator, fit_params: dict | None) -> dict:
    """``fit_params`` plus one ``lower_cache`` dict for every fit of ``estimator`` when it can share
    the frozen lower layers' outputs between fits (a LoRA-tuned ``AgileClassifier`` adapting only
    its top layers). The k folds and the refit are clones of one estimator on one base model, so
    the lower layers then run once per distinct prompt instead of once per fit, and a fold costs
    only the top layers."""
    params = dict(fit_params or {})
    shares = "lower_cache" in inspect.signature(estimator.fit).parameters
    if shares and getattr(estimator, "tuning", None) == "lora" and getattr(estimator, "top_layers", None) is not None:
        params.setdefault("lower_cache", {})
    return params


def clone_with_labels(estimator, labels: Sequence[str]):
    """An unfitted clone of ``estimator`` told the label names and their order: its ``labels``
    and every wrapped classifier's (``estimator__labels`` of a calibrated one, ``name__labels``
    of an ensemble's member), so every fit of it answers in the same columns."""
    model = clone(estimator)
    model.set_params(**{key: list(labels) for key in model.get_params()
                        if key == "labels" or key.endswith("__labels")})
    return model


def columns_in(estimator, classes: Sequence[str]) -> list[int]:
    """Indices of ``classes`` among a fitted estimator's ``classes_``."""
    own = [str(c) for c in estimator.classes_]
    return [own.index(str(c)) for c in classes]


def out_of_fold(estimator, X, y: Sequence[str], classes: Sequence[str], cv=5, random_state: int = 0,
                fit_params: dict | None = None, desc: str = "cross-fitting", progress: bool = True,
                keep_models: bool = False) -> CrossFit:
    """Out-of-fold probabilities of ``estimator`` on (``X``, ``y``).

    Parameters
    ----------
    estimator : classifier
        Cloned for every fold; fitted with ``fit(X_part, y_part, **fit_params)``.
    X : list of str or ndarray
        Texts (or a feature matrix).
    y : list of str, or ndarray of shape (n_rows, n_labels)
        Labels, or a multi-label 0/1 matrix (columns in ``classes`` order).
    classes : list of str
        The column order of the result.
    cv : int or float, default=5
        k >= 2 folds, or a float in (0, 1): one stratified hold-out of that share.
    random_state : int, default=0
        Seed of the split.
    fit_params : dict or None, default=None
    desc : str, default="cross-fitting"
    progress : bool, default=True
        A progress bar over the folds.
    keep_models : bool, default=False
        Keep every fold's fitted clone (``CrossFit.models``), e.g. to average them.

    Returns
    -------
    CrossFit
    """
    splitter, n_fits = check_cv(cv, y, random_state)
    y_arr = np.asarray(y, dtype=int) if np.ndim(y) == 2 else np.asarray([str(v) for v in y], dtype=object)
    x_arr = X if isinstance(X, np.ndarray) else np.asarray(list(X), dtype=object)
    proba = np.full((len(y_arr), len(classes)), np.nan)
    fitted, models = None, []
    strata = y_arr if y_arr.ndim == 1 else None
    for train, test in tqdm(list(splitter.split(np.zeros(len(y_arr)), strata)), desc=desc, unit="fit",
                            disable=n_fits < 2 or not progress):
        model = clone_with_labels(estimator, classes)
        x_train, x_test = x_arr[train], x_arr[test]
        if x_arr.dtype == object:
            x_train, x_test = x_train.tolist(), x_test.tolist()
        model.fit(x_train, y_arr[train] if y_arr.ndim == 2 else y_arr[train].tolist(), **(fit_params or {}))
        proba[test] = np.asarray(model.predict_proba(x_test))[:, columns_in(model, classes)]
        fitted = model
        if keep_models:
            models.append(model)
    rows = np.flatnonzero(~np.isnan(proba[:, 0]))
    return CrossFit(proba=proba[rows], rows=rows, fitted=None if n_fits > 1 else fitted, models=models)
