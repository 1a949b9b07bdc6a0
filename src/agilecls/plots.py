"""Matplotlib figures of a classifier's predictions: confusion matrix, ROC, PR and reliability."""

from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay  # noqa: E402

from .metrics import encode_labels  # noqa: E402

MAX_CURVES = 10


def _curve_classes(labels: Sequence[str], positive_label: str | None) -> list[int]:
    if len(labels) == 2:
        return [list(labels).index(positive_label) if positive_label else 1]
    return list(range(min(len(labels), MAX_CURVES)))


def confusion_matrix_figure(y_true, proba, labels) -> plt.Figure:
    y = encode_labels(y_true, labels)
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(y, proba.argmax(1), labels=range(len(labels)), display_labels=labels,
                                            ax=ax, colorbar=False, xticks_rotation=45 if len(labels) > 3 else 0)
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    return fig


def roc_figure(y_true, proba, labels, positive_label=None) -> plt.Figure:
    y = encode_labels(y_true, labels)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for k in _curve_classes(labels, positive_label):
        if 0 < (y == k).sum() < len(y):
            RocCurveDisplay.from_predictions(y == k, proba[:, k], name=str(labels[k]), ax=ax)
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set_title("ROC curve" + (" (one vs rest)" if len(labels) > 2 else ""))
    fig.tight_layout()
    return fig


def pr_figure(y_true, proba, labels, positive_label=None) -> plt.Figure:
    y = encode_labels(y_true, labels)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for k in _curve_classes(labels, positive_label):
        if 0 < (y == k).sum() < len(y):
            PrecisionRecallDisplay.from_predictions(y == k, proba[:, k], name=str(labels[k]), ax=ax)
    ax.set_title("Precision-recall curve")
    fig.tight_layout()
    return fig


def reliability_figure(y_true, proba, labels, n_bins: int = 10) -> plt.Figure:
    """Top-label reliability: accuracy against confidence per bin, with bin counts."""
    y = encode_labels(y_true, labels)
    confidence, correct = proba.max(1), proba.argmax(1) == y
    edges = np.linspace(1.0 / len(labels), 1.0, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    centers, accs, counts = [], [], []
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            centers.append(confidence[mask].mean())
            accs.append(correct[mask].mean())
            counts.append(int(mask.sum()))
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], ls=":", c="grey", label="perfect calibration")
    ax.plot(centers, accs, marker="o", label="classifier")
    for x, a, n in zip(centers, accs, counts):
        ax.annotate(str(n), (x, a), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    ax.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="confidence (max probability)", ylabel="accuracy",
           title="Reliability diagram")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def learning_curve_figure(curves: dict[str, list[tuple[float, float]]], metric: str, ax=None,
                          references: dict[str, float] | None = None,
                          styles: dict[str, dict] | None = None) -> plt.Figure:
    """One line per series of (x, value) points, e.g. F1 against epochs per training size, drawn on
    ``ax`` (a new figure when None); ``references`` adds labelled dotted horizontal lines and
    ``styles`` extra ``plot`` arguments per series."""
    fig, ax = (plt.subplots(figsize=(5, 4)) if ax is None else (ax.figure, ax))
    for name, points in curves.items():
        xs, ys = zip(*points)
        ax.plot(xs, ys, **{"marker": "o", "label": name, **(styles or {}).get(name, {})})
    for name, value in (references or {}).items():
        ax.axhline(value, ls=":", c="grey")
        ax.annotate(name, (ax.get_xlim()[0], value), fontsize=7, color="grey", va="bottom")
    ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} vs. epochs")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
