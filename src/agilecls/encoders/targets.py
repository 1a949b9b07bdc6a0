"""What an EncoderClassifier trains on: in-scope rows and class indices, 0/1 label rows for
multi-label heads, or soft class probabilities (distillation)."""

from __future__ import annotations

import warnings

import numpy as np

from ..validation import check_multilabel_xy, check_xy

#: Heads that take ``multilabel=True``: a sigmoid output per label, trained with binary cross-entropy.
MULTILABEL_HEADS = ("logistic", "softmax")


def in_scope_rows(X, y, oos_label: str | None, warn: bool = False) -> tuple[list[str], list[str]]:
    """(texts, labels) without the rows labelled ``oos_label`` (``warn``: say how many were dropped;
    None: every row is in scope)."""
    texts, y_list, _ = check_xy(X, y)
    keep = [i for i, v in enumerate(y_list) if v != oos_label]
    if warn and len(keep) < len(texts):
        warnings.warn(f"{len(texts) - len(keep)} rows labelled {oos_label!r} are left out of training; "
                      f"pass them to calibrate() to choose a reject threshold", stacklevel=4)
    return [texts[i] for i in keep], [y_list[i] for i in keep]


def class_indices(y_list: list[str], classes) -> np.ndarray:
    """Index of each label in ``classes``; labels the classifier does not know are refused."""
    index = {label: i for i, label in enumerate(list(classes))}
    unknown = sorted(set(y_list) - set(index))
    if unknown:
        raise ValueError(f"y contains labels {unknown[:10]} the classifier was not trained on")
    return np.array([index[v] for v in y_list], dtype=np.int64)


def multilabel_targets(clf, X, y) -> tuple[list[str], np.ndarray]:
    """Texts and their 0/1 label matrix for a multi-label fit (sets ``clf.classes_``); refuses heads
    without a sigmoid output and a reject threshold."""
    if clf.head not in MULTILABEL_HEADS:
        raise ValueError(f"head={clf.head!r} does not support multilabel=True; use head='logistic' (binary "
                         f"relevance, or a sigmoid output when fine-tuned) or head='softmax' (an MLP with a "
                         f"sigmoid output)")
    if clf.reject_threshold is not None:
        raise ValueError("reject_threshold does not apply to multilabel=True (a text may have no label); leave it None")
    texts, Y, labels = check_multilabel_xy(X, y, clf.labels, fitting=True)
    clf.classes_ = np.array(labels, dtype=object)
    return texts, Y


def check_soft_targets(clf, targets, n_texts: int) -> np.ndarray:
    """Soft targets [n_texts, classes] as float32 rows that sum to 1, for a head trained by gradient."""
    if clf.multilabel or clf.head in ("logistic", "mahalanobis") and not clf.fine_tune:
        raise ValueError("targets (soft labels) train a softmax or SNGP head, or a fine-tuned encoder; "
                         "use head='softmax' or fine_tune=True, and multilabel=False")
    soft = np.asarray(targets, dtype=np.float32)
    if soft.shape != (n_texts, len(clf.classes_)) or (soft < 0).any() or not np.isfinite(soft).all():
        raise ValueError(f"targets must be non-negative class probabilities of shape ({n_texts}, "
                         f"{len(clf.classes_)}) in classes_ order, got {soft.shape} (with oos_label rows, "
                         f"set oos_label=None)")
    return soft / np.maximum(soft.sum(axis=1, keepdims=True), 1e-12)
