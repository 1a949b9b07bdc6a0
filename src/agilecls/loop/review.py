"""Evaluation a person can trust, and the rows to look at again.

Numbers come from three places, each named for what it is: the random audit sample (the honest
estimate of a version on the pool, :mod:`agilecls.loop.audit`), texts the user held out as test,
and out-of-fold probabilities of the fast model on the training labels ("on the texts you
labelled": the strategy chose them because they were hard or rare, so they describe those texts,
not the pool). Nothing is scored by a model trained on it. Every decision shown is by the rule of
the model that made it. Possible label errors are ranked by cleanlab's label quality score on the
same out-of-fold probabilities, once every class has enough labels for them to mean something.

The functions take the out-of-fold scores (:func:`out_of_fold`), the project's database and its
labels; :class:`agilecls.loop.Project` gathers them and calls them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from ..ensemble import MemberNeeded
from ..evaluation.metrics import classification_metrics, confidence_bins
from ..salience.explanation import explain
from . import decisions, serving
from .store import ProjectStore

#: Labels per class before possible label errors are listed: with fewer, the out-of-fold
#: probabilities rank flipped labels no better than chance (bench/defaults/label_review_floor.py).
REVIEW_MIN_PER_CLASS = 8
#: Consecutive fast versions whose predictions on the pool must agree (Cohen's kappa, averaged)
#: before the page says the model has stopped changing (Bloodgood & Vijay-Shanker 2009, as
#: small-text's ``KappaAverage``).
STOP_WINDOW = 3
STOP_KAPPA = 0.99
#: Confidence bins of the page's reliability points: fewer than the ECE's 15, as a project's labels
#: number tens to hundreds.
RELIABILITY_BINS = 10


def headline(metrics: dict, labels) -> tuple[str, float | None]:
    """The score a learning curve plots: ROC-AUC for two classes, macro F1 otherwise."""
    key = "roc_auc" if len(labels) == 2 else "f1_macro"
    value = metrics.get(key)
    return key, None if value is None or np.isnan(value) else float(value)


def out_of_fold(frame: pd.DataFrame, rows: np.ndarray, y_idx: np.ndarray, fit: decisions.PoolFit) -> dict:
    """``frame`` (the training ``rows`` only), ``y_idx``, ``proba`` (out of fold, calibrated, under
    the pool's class shares) and ``pred`` (by the rule), from the pool's ``fit``."""
    return {"frame": frame.iloc[rows].reset_index(drop=True), "y_idx": y_idx, "proba": fit.oof,
            "pred": fit.decide(fit.oof), "rule": fit.rule(),
            "positive": None if fit.threshold is None else fit.threshold.positive}


def reliability(y_idx: np.ndarray, proba: np.ndarray, bins: int = RELIABILITY_BINS) -> list[dict]:
    """Per non-empty confidence bin (:func:`~agilecls.evaluation.metrics.confidence_bins`): mean
    confidence, accuracy and count (a reliability diagram's points)."""
    binned = confidence_bins(y_idx, proba, bins)
    return [{"confidence": float(c), "accuracy": float(a), "count": int(n)}
            for c, a, n in zip(binned.confidence, binned.accuracy, binned.counts, strict=True) if n]


def stopping(store: ProjectStore, labels: Sequence[str]) -> dict:
    """Whether the fast model's predictions on the pool have stopped changing: Cohen's kappa
    between each pair of consecutive fast versions' decisions on the texts unlabelled now, and
    small-text's ``KappaAverage`` verdict over the last :data:`STOP_WINDOW` pairs."""
    from small_text.stopping_criteria import KappaAverage

    labels = list(labels)
    fast = [v for v in store.versions() if v["kind"] == "fast"][-(STOP_WINDOW + 1):]
    frame = store.frame()
    ids = frame["id"][frame["label"].isna()].tolist()
    out = {"stable": False, "kappas": [], "window": STOP_WINDOW, "kappa": STOP_KAPPA, "versions": len(fast)}
    if not ids:
        out["message"] = "every text is labelled: nothing left to compare predictions on"
        return out
    if len(fast) < 2:
        out["message"] = "the model is still changing: too few versions to tell"
        return out
    criterion = KappaAverage(len(labels), window_size=STOP_WINDOW, kappa=STOP_KAPPA)
    for version in fast:
        pred = decisions.decide(serving.version_proba(store, version, ids, len(labels)), labels,
                                serving.version_threshold(version))
        out["stable"] = bool(criterion.stop(predictions=pred))
    out["kappas"] = [float(k) for k in criterion.kappa_history]
    last = out["kappas"][-1] if out["kappas"] else float("nan")
    out["message"] = (f"predictions on the pool have stopped changing (kappa {np.mean(out['kappas']):.3f} over the "
                      f"last {STOP_WINDOW} versions): more labels of this kind may not help" if out["stable"] else
                      f"the model is still changing (kappa {last:.3f} between the last two versions)")
    return out


def review_state(labels: Sequence[str], counts: np.ndarray) -> dict:
    """Whether possible label errors are listed, and why not."""
    short = [lab for lab, n in zip(labels, counts, strict=False) if 0 < n < REVIEW_MIN_PER_CLASS]
    enough = not short and (counts > 0).sum() >= 2
    return {"enough": enough, "min_per_class": REVIEW_MIN_PER_CLASS,
            "message": None if enough else (f"possible label errors are listed once every label has "
                                            f"{REVIEW_MIN_PER_CLASS} labels (fewer: {', '.join(short) or 'all'})")}


def version_rows(store: ProjectStore, labels: Sequence[str], frame: pd.DataFrame | None = None,
                 folder=None) -> list[dict]:
    """Every version with its headline scores (out of fold, on the test texts), its audit estimate
    and whether it serves: the learning curve's points and ``agilecls project versions``' rows
    (``folder``: the version folders' paths start with it)."""
    frame = store.frame() if frame is None else frame
    serving_id = (serving.current(store) or {}).get("version")
    rows = []
    for v in store.versions():
        key, value = headline(v["metrics"].get("cross_validated", {}), labels)
        estimate = serving.audit_estimate(store, labels, v, frame)
        rows.append({"version": v["id"], "kind": v["kind"], "labels": v["n_labels"], "metric": key,
                     "cross_validated": value, "audit": estimate["value"], "audit_estimate": estimate,
                     "test": headline(v["metrics"].get("test", {}), labels)[1], "created_at": v["created_at"],
                     "serving": v["id"] == serving_id,
                     "folder": v["folder"] if folder is None else str(Path(folder) / v["folder"])})
    return rows


def evaluate(store: ProjectStore, labels: Sequence[str], oof: dict) -> dict:
    """Everything the page's evaluation panel shows (see the module docstring), from the
    out-of-fold scores ``oof`` (:func:`out_of_fold`) and the versions in ``store``."""
    labels = list(labels)
    y = [labels[i] for i in oof["y_idx"]]
    versions = store.versions()
    frame = store.frame()
    keys = ("version", "kind", "labels", "metric", "cross_validated", "audit", "test")
    curve = [{k: row[k] for k in keys} for row in version_rows(store, labels, frame)]
    chosen = serving.current(store)
    serving_row = serving.serving_version(store) if versions else None
    return {"cross_validated": classification_metrics(y, oof["proba"], labels, oof["positive"],
                                                      [labels[i] for i in oof["pred"]]),
            "rule": oof["rule"],
            "confusion": {"labels": labels, "matrix": confusion_matrix(oof["y_idx"], oof["pred"],
                                                                       labels=range(len(labels))).tolist()},
            "reliability": reliability(oof["y_idx"], oof["proba"]),
            "audit": serving.audit_estimate(store, labels, versions[-1], frame) if versions else None,
            "serving": None if serving_row is None else {
                **(chosen or {"version": serving_row["id"], "reason": "the newest version"}),
                "kind": serving_row["kind"], "audit": serving.audit_estimate(store, labels, serving_row, frame),
                "passed_over": store.meta().get("passed_over")},
            "test": versions[-1]["metrics"].get("test") if versions else None,
            "review": review_state(labels, np.bincount(oof["y_idx"], minlength=len(labels))),
            "stopping": stopping(store, labels),
            "learning_curve": curve}


def errors(oof: dict, labels: Sequence[str], limit: int = 50) -> list[dict]:
    """Training rows whose out-of-fold decision disagrees with their label, most confident first."""
    pred = oof["pred"]
    wrong = np.flatnonzero(pred != oof["y_idx"])
    wrong = wrong[np.argsort(-oof["proba"][wrong, pred[wrong]], kind="stable")][:limit]
    return [review_row(oof, labels, i, pred[i]) for i in wrong]


def label_issues(oof: dict, labels: Sequence[str], limit: int = 50) -> list[dict]:
    """Rows whose label may be wrong, the likeliest first: cleanlab's label quality score
    (self-confidence) on the out-of-fold probabilities, lowest first, once every labelled class
    has :data:`REVIEW_MIN_PER_CLASS` labels (else none)."""
    from cleanlab.rank import get_label_quality_scores

    counts = np.bincount(oof["y_idx"], minlength=len(labels))
    if not review_state(labels, counts)["enough"]:
        return []
    present = np.flatnonzero(counts)
    proba = oof["proba"][:, present]
    proba = proba / proba.sum(axis=1, keepdims=True)
    quality = get_label_quality_scores(np.searchsorted(present, oof["y_idx"]), proba)
    ranked = np.argsort(quality, kind="stable")[:limit]
    return [{**review_row(oof, labels, i, oof["pred"][i]), "quality": float(quality[i])} for i in ranked]


def review_row(oof: dict, labels: Sequence[str], i: int, pred: int) -> dict:
    """Training row ``i`` of ``oof`` as a review list shows it, with the decision ``pred``."""
    frame = oof["frame"]
    return {"id": frame["id"].iloc[i], "text": frame["text"].iloc[i], "label": labels[oof["y_idx"][i]],
            "predicted": labels[pred], "confidence": float(oof["proba"][i, pred]),
            "label_probability": float(oof["proba"][i, oof["y_idx"][i]])}


def explain_row(clf, text: str, method: str = "grad_dot_input", label: str | None = None,
                member: str | None = None, granularities=("words", "sentences")) -> dict:
    """Salience of a version's decision on one text, as plain data (``Explanation.to_dict``).

    Parameters
    ----------
    clf : classifier
        A version's saved classifier.
    text : str
    method : str, default="grad_dot_input"
        A salience method (``grad_l2``, ``grad_dot_input``, ``integrated_gradients``).
    label : str or None, default=None
        The label whose log-probability is explained (None: the version's prediction), e.g. the
        label a person gave, to see which words argue for it.
    member : str or None, default=None
        For a full version (an ensemble, whose soft vote has no single gradient), the member to
        explain: ``"encoder"`` (default) or ``"llm"``.
    granularities : sequence of str, default=("words", "sentences")
    """
    try:
        found = explain(clf, text, method=method, label=label, member=member)
    except MemberNeeded:  # a full version's soft vote has no single gradient: its encoder member's
        found = explain(clf, text, method=method, label=label, member="encoder")
    return found.to_dict(list(granularities))
