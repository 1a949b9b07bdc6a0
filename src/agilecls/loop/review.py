"""Evaluation a person can trust, and the rows to look at again.

Numbers come from three places, each named for what it is: the random audit sample (the honest
estimate of a version on the pool, :mod:`agilecls.loop.audit`), texts the user held out as test,
and out-of-fold probabilities of the fast model on the training labels ("on the texts you
labelled": the strategy chose them because they were hard or rare, so they describe those texts,
not the pool). Nothing is scored by a model trained on it. Every decision shown is by the rule of
the model that made it. Possible label errors are ranked by cleanlab's label quality score on the
same out-of-fold probabilities, once every class has enough labels for them to mean something.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix

from ..evaluation.metrics import classification_metrics, confidence_bins
from . import decisions, serving
from .versions import headline, training_data

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


def out_of_fold(project) -> dict:
    """``frame`` (training rows only), ``y_idx``, ``proba`` (out of fold, calibrated, under the
    pool's class shares) and ``pred`` (by the rule), from the project's current fit (which it keeps
    until a label changes: the page asks for the evaluation, the errors and the label issues together)."""
    frame = project.store.frame()
    rows, y_idx = training_data(project, frame)
    fit = project.scores(frame).fit
    return {"frame": frame.iloc[rows].reset_index(drop=True), "y_idx": y_idx, "proba": fit.oof,
            "pred": fit.decide(fit.oof), "rule": fit.rule(),
            "positive": None if fit.threshold is None else fit.threshold.positive}


def reliability(y_idx: np.ndarray, proba: np.ndarray, bins: int = RELIABILITY_BINS) -> list[dict]:
    """Per non-empty confidence bin (:func:`~agilecls.evaluation.metrics.confidence_bins`): mean
    confidence, accuracy and count (a reliability diagram's points)."""
    binned = confidence_bins(y_idx, proba, bins)
    return [{"confidence": float(c), "accuracy": float(a), "count": int(n)}
            for c, a, n in zip(binned.confidence, binned.accuracy, binned.counts, strict=True) if n]


def stopping(project) -> dict:
    """Whether the fast model's predictions on the pool have stopped changing: Cohen's kappa
    between each pair of consecutive fast versions' decisions on the texts unlabelled now, and
    small-text's ``KappaAverage`` verdict over the last :data:`STOP_WINDOW` pairs."""
    from small_text.stopping_criteria import KappaAverage

    fast = [v for v in project.store.versions() if v["kind"] == "fast"][-(STOP_WINDOW + 1):]
    frame = project.store.frame()
    ids = frame["id"][frame["label"].isna()].tolist()
    out = {"stable": False, "kappas": [], "window": STOP_WINDOW, "kappa": STOP_KAPPA, "versions": len(fast)}
    if not ids:
        out["message"] = "every text is labelled: nothing left to compare predictions on"
        return out
    if len(fast) < 2:
        out["message"] = "the model is still changing: too few versions to tell"
        return out
    criterion = KappaAverage(len(project.labels), window_size=STOP_WINDOW, kappa=STOP_KAPPA)
    for version in fast:
        pred = decisions.decide(serving.version_proba(project, version, ids), project.labels,
                                        serving.version_threshold(version))
        out["stable"] = bool(criterion.stop(predictions=pred))
    out["kappas"] = [float(k) for k in criterion.kappa_history]
    last = out["kappas"][-1] if out["kappas"] else float("nan")
    out["message"] = (f"predictions on the pool have stopped changing (kappa {np.mean(out['kappas']):.3f} over the "
                      f"last {STOP_WINDOW} versions): more labels of this kind may not help" if out["stable"] else
                      f"the model is still changing (kappa {last:.3f} between the last two versions)")
    return out


def review_state(project, counts: np.ndarray) -> dict:
    """Whether possible label errors are listed, and why not."""
    short = [lab for lab, n in zip(project.labels, counts) if 0 < n < REVIEW_MIN_PER_CLASS]
    enough = not short and (counts > 0).sum() >= 2
    return {"enough": enough, "min_per_class": REVIEW_MIN_PER_CLASS,
            "message": None if enough else (f"possible label errors are listed once every label has "
                                            f"{REVIEW_MIN_PER_CLASS} labels (fewer: {', '.join(short) or 'all'})")}


def evaluate(project) -> dict:
    """Everything the page's evaluation panel shows (see the module docstring)."""
    oof = out_of_fold(project)
    labels = project.labels
    y = [labels[i] for i in oof["y_idx"]]
    versions = project.store.versions()
    frame = project.store.frame()
    curve = []
    for v in versions:
        key, value = headline(v["metrics"].get("cross_validated", {}), labels)
        estimate = serving.audit_estimate(project, v, frame)
        curve.append({"version": v["id"], "kind": v["kind"], "labels": v["n_labels"], "metric": key,
                      "cross_validated": value, "audit": estimate["value"],
                      "test": headline(v["metrics"].get("test", {}), labels)[1]})
    chosen = serving.current(project)
    serving_row = serving.serving_version(project) if versions else None
    return {"cross_validated": classification_metrics(y, oof["proba"], labels, oof["positive"],
                                                      [labels[i] for i in oof["pred"]]),
            "rule": oof["rule"],
            "confusion": {"labels": labels, "matrix": confusion_matrix(oof["y_idx"], oof["pred"],
                                                                       labels=range(len(labels))).tolist()},
            "reliability": reliability(oof["y_idx"], oof["proba"]),
            "audit": serving.audit_estimate(project, versions[-1], frame) if versions else None,
            "serving": None if serving_row is None else {
                **(chosen or {"version": serving_row["id"], "reason": "the newest version"}),
                "kind": serving_row["kind"], "audit": serving.audit_estimate(project, serving_row, frame),
                "passed_over": project.store.meta().get("passed_over")},
            "test": versions[-1]["metrics"].get("test") if versions else None,
            "review": review_state(project, np.bincount(oof["y_idx"], minlength=len(labels))),
            "stopping": stopping(project),
            "learning_curve": curve}


def errors(project, limit: int = 50) -> list[dict]:
    """Training rows whose out-of-fold decision disagrees with their label, most confident first."""
    oof = out_of_fold(project)
    pred = oof["pred"]
    wrong = np.flatnonzero(pred != oof["y_idx"])
    wrong = wrong[np.argsort(-oof["proba"][wrong, pred[wrong]], kind="stable")][:limit]
    return [_row(project, oof, i, pred[i]) for i in wrong]


def label_issues(project, limit: int = 50) -> list[dict]:
    """Rows whose label may be wrong, the likeliest first: cleanlab's label quality score
    (self-confidence) on the out-of-fold probabilities, lowest first, once every labelled class
    has :data:`REVIEW_MIN_PER_CLASS` labels (else none)."""
    from cleanlab.rank import get_label_quality_scores

    oof = out_of_fold(project)
    counts = np.bincount(oof["y_idx"], minlength=len(project.labels))
    if not review_state(project, counts)["enough"]:
        return []
    present = np.flatnonzero(counts)
    proba = oof["proba"][:, present]
    proba = proba / proba.sum(axis=1, keepdims=True)
    quality = get_label_quality_scores(np.searchsorted(present, oof["y_idx"]), proba)
    ranked = np.argsort(quality, kind="stable")[:limit]
    return [{**_row(project, oof, i, oof["pred"][i]), "quality": float(quality[i])} for i in ranked]


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
    base = getattr(clf, "estimator_", clf)  # a version is saved calibrated; explain what it wraps
    if member is None and hasattr(base, "estimators_"):
        member = "encoder"
    text = project.store.text(text_id)["text"]
    return explain(clf, text, method=method, label=label, member=member).to_dict(list(granularities))
