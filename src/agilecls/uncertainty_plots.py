"""Figures for the uncertainty report: reliability diagram and OOD-score histogram.

Each function returns a matplotlib ``Figure`` (never shows it), so the CLI can save it and the
HTML report can embed it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _figure(figsize):
    from matplotlib.figure import Figure  # no pyplot: no global state, works headless

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def reliability_diagram(y_true_idx: Sequence[int], proba: np.ndarray, n_bins: int = 15, title: str | None = None,
                        ax=None):
    """Accuracy against confidence in equal-width bins (the ECE's bins), with the bins' counts as
    bar shading and the ECE in the legend: bars under the diagonal mean over-confidence."""
    from .metrics import expected_calibration_error

    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y_true_idx)
    conf, correct = proba.max(axis=1), proba.argmax(axis=1) == y
    edges = np.linspace(0, 1, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    acc = np.array([correct[bins == b].mean() if (bins == b).any() else np.nan for b in range(n_bins)])
    mean_conf = np.array([conf[bins == b].mean() if (bins == b).any() else np.nan for b in range(n_bins)])
    counts = np.bincount(bins, minlength=n_bins)
    if ax is None:
        fig, ax = _figure((4.5, 4.5))
    else:
        fig = ax.figure
    ece = expected_calibration_error(y, proba, n_bins)
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
    different sizes compare), with the reject threshold and AUROC / AUPRC in the legend."""
    from .uncertainty import ood_metrics

    a, b = np.asarray(in_scope_scores, np.float64), np.asarray(oos_scores, np.float64)
    if ax is None:
        fig, ax = _figure((6, 3.5))
    else:
        fig = ax.figure
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
