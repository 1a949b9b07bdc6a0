"""Evaluation a person can trust, and the rows to look at again.

Every number here comes from out-of-fold probabilities of the fast model on the training labels
(each row scored by a model that never saw it) or from rows the user held out as test rows;
nothing is scored by a model trained on it. Possible label errors are cleanlab's
``find_label_issues`` on the same out-of-fold probabilities.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix

from ..evaluation.metrics import classification_metrics
from . import fast
from .versions import headline, training_data

RELIABILITY_BINS = 10


def out_of_fold(project) -> dict:
    """``frame`` (training rows only), ``y_idx`` and ``proba`` out of fold. Kept on the project
    until a training label changes: the page asks for the evaluation, the errors and the label
    issues together, and all three read the same out-of-fold probabilities."""
    frame = project.store.frame()
    rows, y_idx = training_data(project, frame)
    key = (tuple(frame["id"].iloc[rows]), tuple(y_idx.tolist()))
    cached = project.__dict__.get("_out_of_fold")
    if cached is None or cached[0] != key:
        proba = fast.out_of_fold(project.embeddings(frame)[rows], y_idx, len(project.labels))
        cached = (key, {"frame": frame.iloc[rows].reset_index(drop=True), "y_idx": y_idx, "proba": proba})
        project._out_of_fold = cached
    return cached[1]


def reliability(y_idx: np.ndarray, proba: np.ndarray, bins: int = RELIABILITY_BINS) -> list[dict]:
    """Per confidence bin: mean confidence, accuracy and count (a reliability diagram's points)."""
    conf, pred = proba.max(axis=1), proba.argmax(axis=1)
    edges = np.linspace(0, 1, bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            out.append({"confidence": float(conf[inside].mean()), "accuracy": float((pred[inside] == y_idx[inside]).mean()),
                        "count": int(inside.sum())})
    return out


def evaluate(project) -> dict:
    """Cross-validated metrics, confusion matrix and reliability of the fast model on the training
    labels; the newest version's test-row metrics; the learning curve across versions."""
    oof = out_of_fold(project)
    y = [project.labels[i] for i in oof["y_idx"]]
    labels = project.labels
    versions = project.store.versions()
    curve = []
    for v in versions:
        key, value = headline(v["metrics"].get("cross_validated", {}), labels)
        test_value = headline(v["metrics"].get("test", {}), labels)[1]
        curve.append({"version": v["id"], "kind": v["kind"], "labels": v["n_labels"], "metric": key,
                      "cross_validated": value, "test": test_value})
    return {"cross_validated": classification_metrics(y, oof["proba"], labels),
            "confusion": {"labels": labels, "matrix": confusion_matrix(oof["y_idx"], oof["proba"].argmax(axis=1),
                                                                       labels=range(len(labels))).tolist()},
            "reliability": reliability(oof["y_idx"], oof["proba"]),
            "test": versions[-1]["metrics"].get("test") if versions else None,
            "learning_curve": curve}


def errors(project, limit: int = 50) -> list[dict]:
    """Training rows whose out-of-fold prediction disagrees with their label, most confident first."""
    oof = out_of_fold(project)
    pred = oof["proba"].argmax(axis=1)
    wrong = np.flatnonzero(pred != oof["y_idx"])
    wrong = wrong[np.argsort(-oof["proba"][wrong, pred[wrong]], kind="stable")][:limit]
    return [_row(project, oof, i, pred[i]) for i in wrong]


def label_issues(project, limit: int = 50) -> list[dict]:
    """Rows whose label may be wrong (cleanlab's ``find_label_issues``), the likeliest first."""
    from cleanlab.filter import find_label_issues

    oof = out_of_fold(project)
    present = np.unique(oof["y_idx"])
    if len(present) < 2:
        return []
    remap = np.searchsorted(present, oof["y_idx"])
    proba = oof["proba"][:, present]
    proba = proba / proba.sum(axis=1, keepdims=True)
    ranked = find_label_issues(labels=remap, pred_probs=proba, return_indices_ranked_by="self_confidence")
    pred = oof["proba"].argmax(axis=1)
    return [_row(project, oof, i, pred[i]) for i in ranked[:limit]]


def _row(project, oof: dict, i: int, pred: int) -> dict:
    frame = oof["frame"]
    return {"id": frame["id"].iloc[i], "text": frame["text"].iloc[i], "label": project.labels[oof["y_idx"][i]],
            "predicted": project.labels[pred], "confidence": float(oof["proba"][i, pred]),
            "label_probability": float(oof["proba"][i, oof["y_idx"][i]])}


def explain_row(project, text_id: str, method: str = "grad_dot_input", version: int | None = None,
                label: str | None = None, member: str | None = None,
                granularities=("words", "sentences")) -> dict:
    """Salience of a version's decision on one text, as plain data (``Explanation.to_dict``).

    Parameters
    ----------
    project : Project
    text_id : str
    method : str, default="grad_dot_input"
        A salience method (``grad_l2``, ``grad_dot_input``, ``integrated_gradients``).
    version : int or None, default=None
        The version (None: the newest).
    label : str or None, default=None
        The label whose log-probability is explained (None: the version's prediction), e.g. the
        label a person gave, to see which words argue for it.
    member : str or None, default=None
        For a full version (an ensemble, whose soft vote has no single gradient), the member to
        explain: ``"encoder"`` (default) or ``"llm"``.
    """
    from ..salience.explanation import explain

    clf = project.classifier(version)
    if member is None and hasattr(clf, "estimators_"):
        member = "encoder"
    text = project.store.text(text_id)["text"]
    return explain(clf, text, method=method, label=label, member=member).to_dict(list(granularities))
