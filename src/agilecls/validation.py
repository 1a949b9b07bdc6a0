"""Input checks shared by every estimator: errors that say which item is wrong and what to do."""

from __future__ import annotations

from collections.abc import Sequence

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
    if not texts:
        raise ValueError(f"{name} is empty; pass at least one text")
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


class DatasetError(ValueError):
    """Raised for data that cannot be used as given; the message says what to change."""


def is_missing(value) -> bool:
    """None, NaN (float or pandas' NA) or a blank string: a label nobody gave."""
    if value is None or type(value).__name__ == "NAType":
        return True
    if isinstance(value, float) and value != value:
        return True
    return isinstance(value, str) and not value.strip()


def check_labels(y, labels: Sequence[str] | None, fitting: bool = False, row_name: str = "y[{}]"
                 ) -> tuple[list[str], list[str]]:
    """(y as strings, the label list): labels default to the sorted distinct values of y.

    Refuses blank or missing (None, NaN) labels in ``y`` and ``labels``, duplicate labels, and
    fewer than two classes when ``labels`` is given or when ``fitting``; when ``fitting``, also a
    label without a single example in ``y``. ``row_name`` names a row in messages (e.g. ``"row {}"``
    for a file).

    Examples
    --------
    >>> check_labels(["spam", "ham", "spam"], None)
    (['spam', 'ham', 'spam'], ['ham', 'spam'])
    >>> check_labels(["spam", float("nan")], None)
    Traceback (most recent call last):
    ...
    ValueError: y[1] is a blank or missing label (nan), 1 such row(s); label those rows or drop them
    """
    if isinstance(y, str):
        raise TypeError(f"y is a single string; pass a list of labels, e.g. [{y[:30]!r}]")
    raw = y.tolist() if hasattr(y, "tolist") else list(y)
    missing = [i for i, v in enumerate(raw) if is_missing(v)]
    if missing:
        raise ValueError(f"{row_name.format(missing[0])} is a blank or missing label ({raw[missing[0]]!r}), "
                         f"{len(missing)} such row(s); label those rows or drop them")
    y_list = [str(v) for v in raw]
    explicit = labels is not None
    labels = sorted(set(y_list)) if labels is None else [str(label) for label in labels]
    if any(is_missing(label) for label in labels):
        raise ValueError(f"labels {labels} include a blank name; every class needs a name")
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate labels in {labels}")
    if (explicit or fitting) and len(labels) < 2:
        raise ValueError(f"need at least two classes, got {labels}; a classifier chooses between labels")
    unknown = sorted(set(y_list) - set(labels))
    if unknown:
        raise ValueError(f"y contains labels {unknown[:10]} that are not in labels={labels}")
    if fitting:
        unseen = [label for label in labels if label not in set(y_list)]
        if unseen:
            raise ValueError(f"no training example of label(s) {unseen[:10]}; give each class at least one "
                             f"example or drop it from labels")
    return y_list, labels


def check_xy(X, y, labels: Sequence[str] | None = None, fitting: bool = False
             ) -> tuple[list[str], list[str], list[str]]:
    """(texts, y as strings, the label list) after checking that ``X`` and ``y`` are the same length
    (``fitting``: see :func:`check_labels`).

    Examples
    --------
    >>> check_xy(["good", "bad"], ["pos", "neg"])
    (['good', 'bad'], ['pos', 'neg'], ['neg', 'pos'])
    """
    texts = check_texts(X)
    if y is None:
        raise ValueError("y is None; pass one label per text")
    y_list, labels = check_labels(y, labels, fitting)
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


def check_multilabel_y(y, labels: Sequence[str] | None = None, fitting: bool = False
                       ) -> tuple[np.ndarray, list[str]]:
    """(0/1 indicator matrix [n, L] of int, the label list) from multi-label targets, as scikit-learn
    takes them: a list of label lists/tuples/sets (a text may have none), or a 0/1 indicator matrix
    whose columns ``labels`` names.

    Label lists default ``labels`` to the sorted distinct names. When ``fitting``, every label needs
    at least one text with it and one without (a label always or never given cannot be learnt).

    Examples
    --------
    >>> Y, labels = check_multilabel_y([["sports"], [], ["sports", "politics"]])
    >>> Y.tolist(), labels
    ([[0, 1], [0, 0], [1, 1]], ['politics', 'sports'])
    """
    if y is None:
        raise ValueError("y is None; pass one list of labels per text (or a 0/1 matrix with labels=[...])")
    if isinstance(y, str):
        raise TypeError("y is a single string; pass one list of labels per text, e.g. [['sports'], []]")
    rows = None if getattr(y, "ndim", 1) == 2 else (y.tolist() if hasattr(y, "tolist") else list(y))
    if rows is None or (rows and all(isinstance(r, (list, tuple)) and r and all(_is_number(v) for v in r)
                                     for r in rows)):  # a 0/1 matrix (numpy, pandas or nested lists of numbers)
        try:
            matrix = np.asarray(y)
        except ValueError:
            raise ValueError("y is a list of 0/1 rows of unequal length; give every row one entry per label") from None
        Y, labels = _indicator(matrix, labels if labels is not None else
                               (list(map(str, y.columns)) if hasattr(y, "columns") else None))
    else:
        bad = [i for i, row in enumerate(rows) if isinstance(row, str) or not isinstance(row, (list, tuple, set,
                                                                                          frozenset, np.ndarray))]
        if bad:
            raise TypeError(f"y[{bad[0]}] is {rows[bad[0]]!r}, not a list of labels; multi-label y is one list "
                            f"(or tuple, set) of label names per text, or a 0/1 matrix with labels=[...]")
        rows = [[str(v) for v in row] for row in rows]
        found = sorted({v for row in rows for v in row})
        labels = found if labels is None else [str(label) for label in labels]
        unknown = sorted(set(found) - set(labels))
        if unknown:
            raise ValueError(f"y contains labels {unknown[:10]} that are not in labels={labels}")
        index = {label: k for k, label in enumerate(labels)}
        Y = np.zeros((len(rows), len(labels)), dtype=int)
        for i, row in enumerate(rows):
            Y[i, [index[v] for v in row]] = 1
    if any(is_missing(label) for label in labels) or len(set(labels)) != len(labels):
        raise ValueError(f"labels {labels} must be distinct, non-blank names")
    if len(labels) < 2:
        raise ValueError(f"multi-label needs at least two labels, got {labels}; for one label use a binary classifier")
    if fitting:
        constant = [label for k, label in enumerate(labels) if Y[:, k].min() == Y[:, k].max()]
        if constant:
            raise ValueError(f"label(s) {constant[:10]} are given to every training text or to none; give each "
                             f"label at least one text with it and one without, or drop it")
    return Y, list(labels)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, str)


def _indicator(Y: np.ndarray, labels) -> tuple[np.ndarray, list[str]]:
    """A checked 0/1 int matrix and its column names."""
    if labels is None:
        raise ValueError("y is a 0/1 matrix; pass labels=[...] naming its columns")
    labels = [str(label) for label in labels]
    if Y.ndim != 2 or Y.shape[1] != len(labels):
        raise ValueError(f"y has rows of {Y.shape[1:] or 'unequal length'} but labels names {len(labels)} columns; "
                         f"give every row one 0/1 entry per label")
    try:
        values = Y.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError("y is a matrix with non-numeric entries; a multi-label matrix holds only 0 and 1") from None
    if not np.isin(values, (0, 1)).all():
        raise ValueError("y is a matrix with entries other than 0 and 1 (or missing ones); a multi-label matrix "
                         "holds only 0 and 1 (binarise scores first, e.g. y >= 0.5)")
    return values.astype(int), labels


def check_multilabel_xy(X, y, labels: Sequence[str] | None = None, fitting: bool = False
                        ) -> tuple[list[str], np.ndarray, list[str]]:
    """(texts, 0/1 indicator matrix [n, L], the label list) after checking that ``X`` and ``y``
    are the same length (see :func:`check_multilabel_y`)."""
    texts = check_texts(X)
    Y, labels = check_multilabel_y(y, labels, fitting)
    if len(texts) != len(Y):
        raise ValueError(f"X has {len(texts)} texts but y has {len(Y)} rows; pass one row of labels per text")
    return texts, Y, labels


#: Separates label names in one cell of a multi-label label column (a JSON list also works) and in
#: the label a multi-label classifier answers with (``"race|violence"``; empty for no label).
MULTILABEL_SEPARATOR = "|"


def decision_labels(pred, classes: Sequence[str]) -> list[str]:
    """Each row's decision as text: the label itself, or for a multi-label classifier's 0/1 matrix
    the labels it gives, joined by ``|``.

    Examples
    --------
    >>> decision_labels(np.array([[1, 0, 1], [0, 0, 0]]), ["a", "b", "c"])
    ['a|c', '']
    >>> decision_labels(np.array(["x", "y"]), ["x", "y"])
    ['x', 'y']
    """
    if np.ndim(pred) == 2:
        return [MULTILABEL_SEPARATOR.join(str(c) for c, v in zip(classes, row, strict=True) if v) for row in pred]
    return [str(v) for v in pred]


def is_multilabel(estimator) -> bool:
    """Whether a classifier is multi-label: its own ``multilabel``, any member of an ensemble's, or
    the wrapped classifier's of a ``CalibratedClassifier`` (fitted or not)."""
    if getattr(estimator, "multilabel", False):
        return True
    members = getattr(estimator, "estimators_", None) or getattr(estimator, "estimators", None) or []
    wrapped = getattr(estimator, "estimator_", None)
    if wrapped is None:  # not fitted yet: the wrapped classifier as given
        wrapped = getattr(estimator, "estimator", None)
    return any(is_multilabel(m) for _, m in members) or (wrapped is not None and is_multilabel(wrapped))


def sigmoid(scores: np.ndarray) -> np.ndarray:
    """Element-wise logistic function (independent per-label probabilities from log-odds)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(scores, dtype=np.float64)))
