"""The metric suite: one function from (true labels, probabilities) to a flat dict of numbers.

Plots live in :mod:`agilecls.evaluation.plots`; the HTML page that combines both in
:mod:`agilecls.evaluation.report`. Out-of-scope and abstention metrics are here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

#: Equal-width confidence bins of the ECE and the reliability diagram (the usual 15).
CONFIDENCE_BINS = 15


def encode_labels(y_true: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    missing = sorted({str(y) for y in y_true} - set(index))
    if missing:
        raise ValueError(f"true labels {missing[:10]} are not among the classifier's labels {list(labels)}")
    return np.array([index[y] for y in y_true])


@dataclass(frozen=True)
class ConfidenceBins:
    """Top-label confidence in equal-width bins: what the ECE sums and a reliability diagram draws.

    Attributes
    ----------
    edges : ndarray of shape (n_bins + 1,)
        Bin ``b`` holds confidences in (``edges[b]``, ``edges[b + 1]``]; a confidence of 0 falls in bin 0.
    counts : ndarray of int, shape (n_bins,)
    confidence : ndarray of shape (n_bins,)
        Mean confidence (the highest probability) of each bin's rows; NaN for an empty bin.
    accuracy : ndarray of shape (n_bins,)
        Share of each bin's rows whose most probable class is the true one; NaN for an empty bin.
    """

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean gap between accuracy and confidence."""
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float(np.sum(self.counts[filled] * gaps) / max(self.counts.sum(), 1))


def confidence_bins(y_true_idx: Sequence[int], proba: np.ndarray, n_bins: int = CONFIDENCE_BINS) -> ConfidenceBins:
    """Rows binned by their top-label confidence into ``n_bins`` equal-width bins over [0, 1].

    Parameters
    ----------
    y_true_idx : array-like of int, shape (n,)
        True class indices.
    proba : ndarray of shape (n, classes)
    n_bins : int, default=CONFIDENCE_BINS

    Returns
    -------
    ConfidenceBins

    Examples
    --------
    >>> bins = confidence_bins([0, 1, 1], np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]]), n_bins=2)
    >>> bins.counts.tolist(), bins.accuracy.tolist()
    ([0, 3], [nan, 0.6666666666666666])
    """
    proba = np.asarray(proba, dtype=np.float64)
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == np.asarray(y_true_idx)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=n_bins) / counts
        accuracy = np.bincount(index, weights=correct, minlength=n_bins) / counts
    return ConfidenceBins(edges, counts, mean_confidence, accuracy)


def expected_calibration_error(y_true_idx: np.ndarray, proba: np.ndarray, n_bins: int = CONFIDENCE_BINS) -> float:
    """Top-label ECE over :func:`confidence_bins` (equal-width bins; the usual definition, 15 bins)."""
    return confidence_bins(y_true_idx, proba, n_bins).ece()


def _clipped(proba: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Probabilities kept away from 0 for the log loss, rows summing to one again."""
    clipped = np.clip(proba, eps, 1.0)
    return clipped / clipped.sum(axis=1, keepdims=True)


def classification_metrics(y_true: Sequence[str], proba: np.ndarray, labels: Sequence[str],
                           positive_label: str | None = None, y_pred: Sequence[str] | None = None
                           ) -> dict[str, float]:
    """Accuracy, precision/recall/F1 (binary for two classes, macro always), ROC-AUC, PR-AUC,
    log loss, Brier score and ECE.

    Parameters
    ----------
    y_true : list of str
    proba : array of shape (n_texts, n_labels)
        Probabilities, columns in the order of ``labels``.
    labels : list of str
    positive_label : str or None, default=None
        The positive class of a binary task (default: the second label).
    y_pred : list of str or None, default=None
        The classifier's decisions when they are not the most probable class (a tuned decision
        threshold); accuracy, precision, recall and F1 are of these. ECE stays of the probabilities.

    Returns
    -------
    dict of str to float

    Examples
    --------
    >>> m = classification_metrics(["a", "b"], np.array([[0.9, 0.1], [0.2, 0.8]]), ["a", "b"])
    >>> m["accuracy"], m["roc_auc"]
    (1.0, 1.0)
    """
    labels = list(labels)
    proba = np.asarray(proba, dtype=np.float64)
    y = encode_labels(y_true, labels)
    pred = proba.argmax(axis=1) if y_pred is None else encode_labels([str(v) for v in y_pred], labels)
    onehot = np.eye(len(labels))[y]
    out: dict[str, float] = {
        "n": len(y),
        "accuracy": skm.accuracy_score(y, pred),
        "precision_macro": skm.precision_score(y, pred, average="macro", labels=range(len(labels)), zero_division=0),
        "recall_macro": skm.recall_score(y, pred, average="macro", labels=range(len(labels)), zero_division=0),
        "f1_macro": skm.f1_score(y, pred, average="macro", labels=range(len(labels)), zero_division=0),
        "log_loss": skm.log_loss(y, _clipped(proba), labels=range(len(labels))),
        "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1))),
        "ece": expected_calibration_error(y, proba),
    }
    present = np.unique(y)
    if len(labels) == 2:
        pos = labels.index(positive_label) if positive_label is not None else 1
        y_pos, p_pos = (y == pos).astype(int), proba[:, pos]
        out["precision"] = skm.precision_score(y_pos, pred == pos, zero_division=0)
        out["recall"] = skm.recall_score(y_pos, pred == pos, zero_division=0)
        out["f1"] = skm.f1_score(y_pos, pred == pos, zero_division=0)
        if len(present) == 2:
            out["roc_auc"] = skm.roc_auc_score(y_pos, p_pos)
            out["pr_auc"] = skm.average_precision_score(y_pos, p_pos)
    elif len(present) > 1:
        cols = present if len(present) < len(labels) else np.arange(len(labels))
        renorm = proba[:, cols] / np.clip(proba[:, cols].sum(axis=1, keepdims=True), 1e-12, None)
        out["roc_auc"] = skm.roc_auc_score(y, renorm, multi_class="ovr", labels=cols)
        out["pr_auc"] = skm.average_precision_score(onehot[:, cols], proba[:, cols], average="macro")
    return {k: int(v) if k == "n" else float(v) for k, v in out.items()}  # a count prints as one


def multilabel_metrics(Y_true, proba: np.ndarray, labels: Sequence[str], threshold=0.5) -> dict:
    """Multi-label metrics from a 0/1 indicator matrix and independent per-label probabilities.

    Parameters
    ----------
    Y_true : array of shape (n_texts, n_labels)
        0/1 indicator matrix, columns in the order of ``labels``.
    proba : array of shape (n_texts, n_labels)
        Probability of each label (independent; rows need not sum to one).
    labels : list of str
    threshold : float or array of shape (n_labels,), default=0.5
        A text gets a label when its probability is at least this (one cut, or one per label).

    Returns
    -------
    dict
        ``n`` (int); ``f1_micro``, ``f1_macro``, ``precision_micro``, ``precision_macro``,
        ``recall_micro``, ``recall_macro``; ``roc_auc_macro`` (mean over labels that have both
        classes in ``Y_true``; absent when none has); ``hamming_loss``; ``subset_accuracy`` (the
        whole label set right); per label ``f1[label]`` and, where both classes occur,
        ``roc_auc[label]``.

    Examples
    --------
    >>> m = multilabel_metrics([[1, 0], [0, 1]], np.array([[0.9, 0.2], [0.4, 0.3]]), ["a", "b"])
    >>> m["f1[a]"], m["f1[b]"], m["hamming_loss"], m["subset_accuracy"]
    (1.0, 0.0, 0.25, 0.5)
    """
    labels = [str(label) for label in labels]
    Y = np.asarray(Y_true, dtype=int)
    proba = np.asarray(proba, dtype=np.float64)
    if Y.ndim != 2 or Y.shape != proba.shape or Y.shape[1] != len(labels):
        raise ValueError(f"Y_true {Y.shape} and proba {proba.shape} must both be [texts, {len(labels)} labels]")
    pred = (proba >= threshold).astype(int)
    out: dict[str, float] = {"n": len(Y)}
    for avg in ("micro", "macro"):
        out[f"f1_{avg}"] = skm.f1_score(Y, pred, average=avg, zero_division=0)
        out[f"precision_{avg}"] = skm.precision_score(Y, pred, average=avg, zero_division=0)
        out[f"recall_{avg}"] = skm.recall_score(Y, pred, average=avg, zero_division=0)
    out["hamming_loss"] = skm.hamming_loss(Y, pred)
    out["subset_accuracy"] = skm.accuracy_score(Y, pred)
    per_f1 = skm.f1_score(Y, pred, average=None, zero_division=0)
    aucs = {}
    for k, label in enumerate(labels):
        out[f"f1[{label}]"] = per_f1[k]
        if 0 < Y[:, k].sum() < len(Y):
            aucs[label] = skm.roc_auc_score(Y[:, k], proba[:, k])
    if aucs:
        out["roc_auc_macro"] = float(np.mean(list(aucs.values())))
    out.update({f"roc_auc[{label}]": v for label, v in aucs.items()})
    return {k: int(v) if k == "n" else float(v) for k, v in out.items()}


def ood_metrics(is_ood: Sequence[bool], score: Sequence[float]) -> dict[str, float]:
    """AUROC and AUPRC with out-of-scope as the positive class and ``score`` as its score (higher =
    more out of scope), as the Uncertainty Baselines CLINC benchmark reports them. AUPRC is
    sklearn's average precision (Keras' AUC(curve='PR') interpolates and reads slightly higher)."""
    is_ood = np.asarray(is_ood, dtype=int)
    score = np.asarray(score, dtype=np.float64)
    return {"ood_auroc": float(skm.roc_auc_score(is_ood, score)),
            "ood_auprc": float(skm.average_precision_score(is_ood, score))}


def abstention_metrics(y_true: Sequence[str], y_pred: Sequence[str], oos_label: str = "oos") -> dict[str, float]:
    """Combined accuracy over in-scope and out-of-scope rows when the classifier may answer
    ``oos_label``, plus in-scope accuracy, out-of-scope recall and precision."""
    t, p = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    ood, said_ood = t == oos_label, p == oos_label
    return {
        "combined_accuracy": float((t == p).mean()),
        "in_scope_accuracy": float((t[~ood] == p[~ood]).mean()) if (~ood).any() else float("nan"),
        "oos_recall": float(said_ood[ood].mean()) if ood.any() else float("nan"),
        "oos_precision": float(ood[said_ood].mean()) if said_ood.any() else float("nan"),
        "rejected": float(said_ood.mean()),
    }



def uncertainty_metrics(y_true: Sequence[str], proba: np.ndarray, ood_score: np.ndarray, y_pred: Sequence[str],
                        labels: Sequence[str], oos_label: str = "oos") -> dict[str, float]:
    """Metrics of a classifier that knows out-of-scope, on rows that may be labelled ``oos_label``:
    in-scope accuracy, ECE and NLL (in-scope rows), OOD AUROC / AUPRC (when both kinds are
    present) and the abstention metrics of its predictions ``y_pred`` (which may say ``oos_label``)."""
    y_arr = np.array([str(v) for v in y_true], dtype=object)
    ood = y_arr == oos_label
    out: dict[str, float] = {}
    if (~ood).any():
        m = classification_metrics(y_arr[~ood].tolist(), np.asarray(proba)[~ood], list(labels))
        out.update(accuracy=m["accuracy"], ece=m["ece"], nll=m["log_loss"])
    if ood.any() and (~ood).any():
        out.update(ood_metrics(ood, ood_score))
    out.update(abstention_metrics(y_arr, y_pred, oos_label))
    return out


def format_table(rows: list[dict], columns: Sequence[str] | None = None, floatfmt: str = ".3f") -> str:
    """A plain-text table (benchmarks and the CLI print these); columns default to every key of
    every row, in order of first appearance."""
    if not rows:
        return "(no rows)"
    columns = list(columns or dict.fromkeys(key for row in rows for key in row))
    cells = [[(format(r.get(c), floatfmt) if isinstance(r.get(c), float) else str(r.get(c, ""))) for c in columns]
             for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths, strict=True)))

    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])
