"""Training a project's model versions: the fast model (seconds) and the full model (minutes).

A version is a saved classifier folder under ``versions/`` plus a row in the database with its own
metrics, its decision rule and its predictions for every text. The folder is written atomically
first and the row committed after, so a training killed at any point leaves every earlier version
usable and no half-written one visible. Each version is then considered for serving
(:mod:`agilecls.loop.serving`).

Both kinds are saved as a :class:`~agilecls.calibration.classifier.CalibratedClassifier` that
answers under the pool's class shares and decides by the version's rule, so ``agilecls predict``,
``serve`` and ``load_classifier`` give what the page shows:

- fast: a logistic head on the project's frozen sentence embeddings, calibrated, moved to the
  pool's class shares, with the project's decision rule (:func:`agilecls.loop.decisions.fit_pool`);
- full: the ``best`` recipe (:mod:`agilecls.recipes`), a LoRA-tuned language model stacked with a
  fine-tuned sentence encoder by a logistic regression on a quarter of the labels held out, its
  probabilities moved to the pool's class shares and cut the same way. Scoring every text then goes through the streaming
  batch engine (:func:`agilecls.batch.local.predict_file`), with progress, in the job's process;
- distilled (:meth:`Project.publish`): the serving version distilled into the project's sentence
  encoder on the pool's texts, fast to serve (:mod:`agilecls.distillation`).
"""

from __future__ import annotations

import shutil
import time
from typing import Callable

import numpy as np
import pandas as pd

from ..calibration.classifier import CalibratedClassifier
from ..calibration.priors import shift_priors
from ..evaluation.metrics import classification_metrics
from ..recipes import RECIPES
from . import decisions, serving
from .store import ProjectError

#: The full model's stacker's hold-out share (the ``best`` recipe's).
FULL_HOLDOUT = 0.25
MIN_PER_CLASS = decisions.MIN_PER_CLASS
#: Labels per class the full model needs: its stacker holds out a quarter of them.
FULL_MIN_PER_CLASS = RECIPES["best"].min_per_class
#: Version kinds: the fast model, the full model, the serving version distilled into a fast student.
KINDS = ("fast", "full", "distilled")


def headline(metrics: dict, labels) -> tuple[str, float | None]:
    """The score a learning curve plots: ROC-AUC for two classes, macro F1 otherwise."""
    key = "roc_auc" if len(labels) == 2 else "f1_macro"
    value = metrics.get(key)
    return key, None if value is None or np.isnan(value) else float(value)


def training_data(project, frame, per_class: int | None = None):
    """The training rows and class indices, refused with one line unless two classes have
    :data:`MIN_PER_CLASS` labels (the fast model; a class with one label joins them) or, with
    ``per_class``, every labelled class has that many (the full model)."""
    rows, y_idx = project.training_rows(frame)
    counts = np.bincount(y_idx, minlength=len(project.labels))
    short = not decisions.can_fit(y_idx) if per_class is None else (
        (counts[counts > 0] < per_class).any() or (counts > 0).sum() < 2)
    if short:
        per_class = per_class or MIN_PER_CLASS
        raise ProjectError(f"need at least {per_class} labels in each of two classes to train "
                           f"(have {dict(zip(project.labels, counts.tolist()))})")
    return rows, y_idx


def build_full(project) -> object:
    """The full model, unfitted: the ``best`` recipe on the project's LLM and encoder, without a cut
    (the version takes the project's rule on the pool's class shares)."""
    from ..recipes import build_recipe

    return build_recipe("best", project.labels, model=project.meta.get("model"), encoder=project.meta["encoder"],
                        instructions=project.meta.get("instructions"), threshold=None, holdout=FULL_HOLDOUT,
                        llm={"progress": False, **project.meta.get("llm_params", {})})


def held_out_metrics(project, frame: pd.DataFrame, proba: np.ndarray, threshold) -> dict:
    """Metrics on the texts the user held out as test (not the audit sample), at the rule."""
    test = (frame["label"].notna() & frame["is_test"] & ~frame["audit"]).to_numpy()
    if not test.any():
        return {}
    pred = decisions.decide(proba[test], project.labels, threshold)
    return {"test": classification_metrics(frame["label"][test].tolist(), proba[test], project.labels,
                                           None if threshold is None else threshold.positive,
                                           [project.labels[i] for i in pred])}


def fit_fast(project, frame: pd.DataFrame, rows: np.ndarray, y_idx: np.ndarray):
    """The fast version: (classifier, probabilities of every row, out-of-scope scores, metrics)."""
    from ..recipes.builtin import fast_encoder

    fit = project.scores(frame).fit
    present = np.flatnonzero(fit.train_shares > 0)
    names = [project.labels[i] for i in present]
    base = fast_encoder(project.meta["encoder"], names, cache_dir=str(project.folder / "embeddings"))
    base.fit(frame["text"].iloc[rows].tolist(), [project.labels[i] for i in y_idx])
    clf = CalibratedClassifier.from_parts(base, names, fit.calibrator, fit.train_shares[present],
                                          fit.priors[present], fit.threshold)
    y = [project.labels[i] for i in y_idx]
    positive = None if fit.threshold is None else fit.threshold.positive
    metrics = {"cross_validated": classification_metrics(y, fit.oof, project.labels, positive,
                                                         [project.labels[i] for i in fit.decide(fit.oof)]),
               "rule": fit.rule()}
    return clf, fit.proba, fit.ood, metrics


def fit_full(project, frame: pd.DataFrame, rows: np.ndarray, y_idx: np.ndarray, folder, report):
    """The full version (see the module docstring): (classifier, probabilities, ood, metrics)."""
    texts, y = frame["text"].iloc[rows].tolist(), [project.labels[i] for i in y_idx]
    clf = build_full(project)
    started, epochs = time.time(), clf.estimators[1][1].epochs

    def on_epoch(info, _clf):
        per_epoch = (time.time() - started) / info.epoch
        report({"stage": "tuning the language model", "epoch": info.epoch, "epochs": epochs,
                "loss": round(float(info.train_loss), 4), "seconds_left": round(per_epoch * (epochs - info.epoch))})

    report({"stage": "fine-tuning the encoder, then tuning the language model"})
    clf.fit(texts, y, llm={"callback": on_epoch})
    raw, ood = score_through_batch_engine(project, clf, frame, folder, report)
    shares = np.bincount(y_idx, minlength=len(project.labels)) / len(y_idx)
    audit_counts = np.bincount(serving.audit_classes(frame, project.labels), minlength=len(shares))
    priors = decisions.pool_priors(raw, shares, np.bincount(y_idx, minlength=len(shares)), len(frame),
                                   audit_counts=audit_counts)
    proba = shift_priors(raw, shares, priors)
    settings = project.settings()
    positive = decisions.positive_class(project.labels, priors, settings["positive"])
    # no out-of-fold rows to meet a precision or recall target on: the full model takes the
    # expected-F1 cut on the pool unless the project fixed a number
    rule = settings["rule"] if isinstance(settings["rule"], float) else "expected_f1"
    threshold = decisions.fit_rule(proba, proba[rows], y_idx, project.labels, rule, positive)
    wrapped = CalibratedClassifier.from_parts(clf, project.labels, None, shares, priors, threshold)
    return wrapped, proba, ood, {"rule": decisions.rule_state(project.labels, priors, threshold, "stacker")}


def fit_distilled(project, frame: pd.DataFrame, rows: np.ndarray, y_idx: np.ndarray, folder, report):
    """The serving version distilled into the project's sentence encoder, fine-tuned on its
    probabilities over the pool (:func:`agilecls.distillation.distill`): (classifier,
    probabilities, ood, metrics). The student keeps the teacher's rule, fitted again on a quarter
    of the training labels held out of its training."""
    from ..distillation import distill

    teacher_version = serving.serving_version(project)  # refuses a project without versions
    teacher = project.classifier(teacher_version["id"])
    labelled = frame["label"].notna().to_numpy()
    pool = frame["text"][~labelled].tolist()
    report({"stage": f"version {teacher_version['id']} labels {len(pool) + len(rows)} texts, then the student "
                     f"learns them", "teacher": teacher_version["id"]})
    student = distill(teacher, pool, project.meta["encoder"], progress=False, labeled=(
        frame["text"].iloc[rows].tolist(), [project.labels[i] for i in y_idx]))
    proba, ood = score_through_batch_engine(project, student, frame, folder, report)
    facts = student.provenance["distilled_from"]
    priors = getattr(teacher, "priors_", None)
    shares = (priors if priors is not None and len(priors) == len(project.labels)
              else np.bincount(y_idx, minlength=len(project.labels)) / len(y_idx))
    return student, proba, ood, {"rule": decisions.rule_state(project.labels, shares, student.threshold_,
                                                              "distilled"),
                                 "distilled_from": {"version": teacher_version["id"], **{
                                     k: facts.get(k) for k in ("agreement", "held_out", "unlabelled_texts",
                                                               "teacher_seconds", "student_seconds")}}}


def score_through_batch_engine(project, clf, frame: pd.DataFrame, folder, report) -> tuple[np.ndarray, np.ndarray]:
    """Every text of the project scored by ``clf`` with the streaming batch engine, chunk by chunk
    with progress (``report``), from a scratch copy of the model beside the version folder."""
    from ..batch.local import predict_file

    scratch = folder.parent / f".{folder.name}.scoring"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        clf.save(scratch / "model")
        frame[["id", "text"]].to_parquet(scratch / "texts.parquet", index=False)
        predict_file(scratch / "model", scratch / "texts.parquet", scratch / "scores.parquet", id_col="id",
                     progress=False, on_chunk=lambda done, total: report(
                         {"stage": "scoring every text", "scored": done, "total": total}))
        scores = pd.read_parquet(scratch / "scores.parquet").set_index("id").loc[frame["id"]]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    proba = scores[[f"p_{label}" for label in project.labels]].to_numpy(dtype=np.float64)
    return proba / proba.sum(axis=1, keepdims=True), scores["ood_score"].to_numpy(dtype=np.float64)


def train_version(project, kind: str = "fast", progress: Callable[[dict], None] | None = None) -> int:
    """Fit, save and register a version of ``kind`` ("fast", "full" or "distilled": the serving
    version distilled into a fast student), consider it for serving; returns its id.

    ``progress(dict)`` is called with ``stage`` and, while the language model tunes, ``epoch``,
    ``epochs``, ``loss`` and ``seconds_left``; while every text is scored, ``scored`` and ``total``.
    """
    if kind not in KINDS:
        raise ProjectError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    report = progress or (lambda info: None)
    frame = project.store.frame()
    rows, y_idx = training_data(project, frame, FULL_MIN_PER_CLASS if kind == "full" else None)
    start = time.time()
    folder = project.folder / "versions" / f"{time.strftime('%Y%m%d-%H%M%S')}-{int(time.time() * 1e3) % 1000:03d}-{kind}"
    if kind == "fast":
        report({"stage": "fitting the fast model"})
        clf, proba, ood, metrics = fit_fast(project, frame, rows, y_idx)
    else:
        fit = fit_full if kind == "full" else fit_distilled
        clf, proba, ood, metrics = fit(project, frame, rows, y_idx, folder, report)
    threshold = serving.version_threshold({"metrics": metrics})
    metrics.update(held_out_metrics(project, frame, proba, threshold))
    metrics["fit_seconds"] = round(time.time() - start, 2)
    report({"stage": "saving"})
    clf.save(folder)
    version = project.store.add_version(kind, len(rows), str(folder.relative_to(project.folder)), metrics,
                                        frame["id"].tolist(), proba, [None] * len(frame) if ood is None else ood)
    serving.consider(project, version)
    return version
