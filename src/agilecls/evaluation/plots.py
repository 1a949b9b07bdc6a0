"""Every figure agilecls draws, in one style: confusion matrix, ROC, precision-recall, reliability
diagram, out-of-scope score histogram, learning curves and per-label multi-label scores.

Each function returns a matplotlib ``Figure`` built without pyplot (no global state, no backend
switch at import, works headless); the report embeds it, a script saves it with ``savefig``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

from .metrics import CONFIDENCE_BINS, confidence_bins, encode_labels, ood_metrics

#: Most one-vs-rest curves drawn for a multi-class task.
MAX_CURVES = 10


def new_figure(figsize=(5, 4.5)):
    """(Figure, Axes) in the house style: constrained layout, no pyplot."""
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _axes(ax, figsize):
    return new_figure(figsize) if ax is None else (ax.figure, ax)


def _curve_classes(labels: Sequence[str], positive_label: str | None) -> list[int]:
    if len(labels) == 2:
        return [list(labels).index(positive_label) if positive_label else 1]
    return list(range(min(len(labels), MAX_CURVES)))


def confusion_matrix_figure(y_true, proba, labels, y_pred=None):
    """Counts of true (rows) against predicted (columns) labels (the most probable, or ``y_pred``)."""
    y = encode_labels(y_true, labels)
    pred = np.asarray(proba).argmax(1) if y_pred is None else encode_labels([str(v) for v in y_pred], labels)
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = new_figure((size, size))
    ConfusionMatrixDisplay.from_predictions(y, pred, labels=range(len(labels)),
                                            display_labels=labels, ax=ax, colorbar=False,
                                            xticks_rotation=45 if len(labels) > 3 else 0)
    ax.set_title("Confusion matrix")
    return fig


def _curves(display, y_true, proba, labels, positive_label):
    """(Figure, Axes) with ``display`` (RocCurveDisplay or PrecisionRecallDisplay) drawn for the
    positive class (binary) or one vs rest (up to ``MAX_CURVES`` classes present in ``y_true``)."""
    y = encode_labels(y_true, labels)
    fig, ax = new_figure()
    for k in _curve_classes(labels, positive_label):
        if 0 < (y == k).sum() < len(y):
            display.from_predictions(y == k, proba[:, k], name=str(labels[k]), ax=ax)
    return fig, ax


def roc_figure(y_true, proba, labels, positive_label=None):
    """ROC curve of the positive class (binary) or one vs rest (up to ``MAX_CURVES`` classes)."""
    fig, ax = _curves(RocCurveDisplay, y_true, proba, labels, positive_label)
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set_title("ROC curve" + (" (one vs rest)" if len(labels) > 2 else ""))
    return fig


def pr_figure(y_true, proba, labels, positive_label=None):
    """Precision-recall curve of the positive class (binary) or one vs rest."""
    fig, ax = _curves(PrecisionRecallDisplay, y_true, proba, labels, positive_label)
    ax.set_title("Precision-recall curve")
    return fig


def reliability_diagram(y_true_idx: Sequence[int], proba: np.ndarray, n_bins: int = CONFIDENCE_BINS,
                        title: str | None = None, ax=None):
    """Accuracy against confidence in equal-width bins (the ECE's bins), with the bins' counts as
    bar shading and the ECE in the legend: bars under the diagonal mean over-confidence."""
    bins = confidence_bins(y_true_idx, proba, n_bins)
    edges, counts, acc, mean_conf = bins.edges, bins.counts, bins.accuracy, bins.confidence
    fig, ax = _axes(ax, (4.5, 4.5))
    ece = bins.ece()
    width = 1 / n_bins
    alpha = 0.25 + 0.75 * counts / max(counts.max(), 1)
    for b in range(n_bins):
        if counts[b]:
            ax.bar(edges[b], acc[b], width=width, align="edge", color="tab:blue", alpha=alpha[b], edgecolor="black",
                   linewidth=0.5)
            ax.plot([edges[b], edges[b] + width], [mean_conf[b]] * 2, color="tab:red", linewidth=1)
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.plot([], [], color="tab:blue", linewidth=6, label=f"accuracy (ECE {ece:.3f})")
    ax.plot([], [], color="tab:red", label="mean confidence")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (max probability)", ylabel="accuracy",
           title=title or "Reliability diagram")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def ood_histogram(in_scope_scores: Sequence[float], oos_scores: Sequence[float], threshold: float | None = None,
                  bins: int = 40, log_x: bool | None = None, title: str | None = None, ax=None):
    """Distributions of the OOD score for in-scope and out-of-scope texts (density, so sets of
    different sizes compare), with the reject threshold and AUROC / AUPRC in the title."""
    a, b = np.asarray(in_scope_scores, np.float64), np.asarray(oos_scores, np.float64)
    fig, ax = _axes(ax, (6, 3.5))
    both = np.concatenate([a, b])
    if log_x is None:  # distances span decades; probabilities do not
        log_x = both.min() > 0 and both.max() / max(both.min(), 1e-12) > 1e3
    edges = (np.geomspace(both.min(), both.max(), bins + 1) if log_x
             else np.linspace(both.min(), both.max(), bins + 1))
    m = ood_metrics(np.r_[np.zeros(len(a)), np.ones(len(b))], both) if len(a) and len(b) else {}
    ax.hist(a, bins=edges, density=True, alpha=0.6, color="tab:blue", label=f"in scope (n={len(a)})")
    ax.hist(b, bins=edges, density=True, alpha=0.6, color="tab:orange", label=f"out of scope (n={len(b)})")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"reject above {threshold:.3g}")
    if log_x:
        ax.set_xscale("log")
    extra = f"  AUROC {m['ood_auroc']:.3f}  AUPRC {m['ood_auprc']:.3f}" if m else ""
    ax.set(xlabel="OOD score (higher = more likely out of scope)", ylabel="density",
           title=(title or "OOD score") + extra)
    ax.legend(fontsize=8)
    return fig


def learning_curve_figure(curves: dict[str, list[tuple[float, float]]], metric: str, ax=None,
                          references: dict[str, float] | None = None,
                          styles: dict[str, dict] | None = None):
    """One line per series of (x, value) points, e.g. F1 against epochs per training size, drawn on
    ``ax`` (a new figure when None); ``references`` adds labelled dotted horizontal lines and
    ``styles`` extra ``plot`` arguments per series."""
    fig, ax = _axes(ax, (5, 4))
    for name, points in curves.items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, **{"marker": "o", "label": name, **(styles or {}).get(name, {})})
    for name, value in (references or {}).items():
        ax.axhline(value, ls=":", c="grey")
        ax.annotate(name, (ax.get_xlim()[0], value), fontsize=7, color="grey", va="bottom")
    ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} vs. epochs")
    ax.legend(fontsize=7)
    return fig


def per_label_figure(rows: Sequence[dict], ax=None) -> Figure:
    """Grouped horizontal bars of each label's F1 and ROC-AUC (rows as the multi-label report's
    per-label table: ``label``, ``f1``, ``roc_auc``)."""
    fig, ax = _axes(ax, (6, 0.45 * len(rows) + 1.5))
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r["f1"] for r in rows], height=0.4, label="F1")
    ax.barh(y + 0.2, [r["roc_auc"] for r in rows], height=0.4, label="ROC-AUC")
    ax.set_yticks(y, [r["label"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("score")
    ax.set_title("Per label")
    ax.legend(loc="lower right")
    return fig
