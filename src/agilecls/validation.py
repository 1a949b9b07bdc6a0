"""Input checks shared by every estimator: errors that say which item is wrong and what to do."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def check_texts(X, name: str = "X") -> list[str]:
    """A list of non-empty strings from a list, numpy array or pandas Series."""
    if X is None:
        raise ValueError(f"{name} is None; pass a list of texts")
    if isinstance(X, str):
        raise TypeError(f"{name} is a single string; pass a list of texts, e.g. [{X[:30]!r}]")
    if hasattr(X, "ndim") and getattr(X, "ndim", 1) == 2:
        if X.shape[1] != 1:
            raise ValueError(f"{name} has {X.shape[1]} columns; pass one column of texts")
        X = X.iloc[:, 0] if hasattr(X, "iloc") else X[:, 0]
    texts = list(X.tolist() if hasattr(X, "tolist") else X)
    bad_type = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad_type:
        i = bad_type[0]
        raise TypeError(f"{name}[{i}] is {type(texts[i]).__name__} ({texts[i]!r}), not a string "
                        f"({len(bad_type)} such item(s)); convert or drop them")
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise ValueError(f"{name} has {len(empty)} empty or whitespace-only text(s), first at index {empty[0]}; "
                         f"drop them before classifying")
    return texts


def check_labels(y, labels: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(y as strings, the label list): labels default to the sorted distinct values of y."""
    if isinstance(y, str):
        raise TypeError(f"y is a single string; pass a list of labels, e.g. [{y[:30]!r}]")
    y_list = [str(v) for v in (y.tolist() if hasattr(y, "tolist") else list(y))]
    if labels is None:
        labels = sorted(set(y_list))
    labels = [str(label) for label in labels]
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate labels in {labels}")
    unknown = sorted(set(y_list) - set(labels))
    if unknown:
        raise ValueError(f"y contains labels {unknown[:10]} that are not in labels={labels}")
    return y_list, labels


def check_xy(X, y, labels: Sequence[str] | None = None) -> tuple[list[str], list[str], list[str]]:
    """(texts, y as strings, the label list) after checking that ``X`` and ``y`` are the same length.

    Examples
    --------
    >>> check_xy(["good", "bad"], ["pos", "neg"])
    (['good', 'bad'], ['pos', 'neg'], ['neg', 'pos'])
    """
    texts = check_texts(X)
    if y is None:
        raise ValueError("y is None; pass one label per text")
    y_list, labels = check_labels(y, labels)
    if len(texts) != len(y_list):
        raise ValueError(f"X has {len(texts)} texts but y has {len(y_list)} labels; pass one label per text")
    return texts, y_list, labels


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class TextInputTags:
    """Tells scikit-learn's checks that X is a sequence of strings, not a 2-D array (mixed into
    every agilecls estimator before ``ClassifierMixin``)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags
