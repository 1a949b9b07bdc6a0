"""Training a project's model versions: the fast model (seconds) and the full model (minutes).

A version is a saved classifier folder under ``versions/`` plus a row in the database with its own
metrics, its decision rule and its predictions for every text. The folder is written atomically
first and the row committed after, so a training killed at any point leaves every earlier version
usable and no half-written one visible. Each version is then considered for serving
(:mod:`agilecls.loop.serving`).

The functions take the project's data as arguments (the frame of texts, the training rows and
their class indices, the labels, the project's settings) and :class:`agilecls.loop.Project` calls
them; nothing here reaches back into the project.

Both kinds are saved as a :class:`~agilecls.calibration.classifier.CalibratedClassifier` that
answers under the pool's class shares and decides by the version's rule, so ``agilecls predict``,
``serve`` and ``load_classifier`` give what the page shows:

- fast: a logistic head on the project's frozen sentence embeddings, calibrated, moved to the
  pool's class shares, with the project's decision rule (:func:`agilecls.loop.decisions.fit_pool`);
- full: the ``best`` recipe (:mod:`agilecls.recipes`), a LoRA-tuned language model stacked with a
  fine-tuned sentence encoder by a logistic regression on a quarter of the labels held out, its
  probabilities moved to the pool's class shares and cut the same way. Scoring every text then
  goes through the streaming batch engine (:func:`agilecls.batch.local.predict_file`), with
  progress, in the job's process;
- distilled (:meth:`Project.publish`): the serving version distilled into the project's sentence
  encoder on the pool's texts, fast to serve (:mod:`agilecls.distillation`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..batch.local import predict_file
from ..calibration.classifier import CalibratedClassifier
from ..calibration.priors import shift_priors
from ..distillation import distill
from ..evaluation.metrics import classification_metrics
from ..monitoring.drift import ReferenceProfile
from ..recipes import RECIPES, build_recipe
from ..recipes.builtin import fast_encoder
from . import decisions, serving
from .store import ProjectError, ProjectStore

#: The full model's stacker's hold-out share (the ``best`` recipe's).
FULL_HOLDOUT = 0.25
MIN_PER_CLASS = decisions.MIN_PER_CLASS
#: Labels per class the full model needs: its stacker holds out a quarter of them.
FULL_MIN_PER_CLASS = RECIPES["best"].min_per_class
#: Version kinds: the fast model, the full model, the serving version distilled into a fast student.
KINDS = ("fast", "full", "distilled")


def check_training(y_idx: np.ndarray, labels: Sequence[str], kind: str = "fast") -> None:
    """Refuse, with one line, training a ``kind`` version unless two classes have
    :data:`MIN_PER_CLASS` labels (the fast and distilled models; a class with one label joins
    them) or every labelled class has :data:`FULL_MIN_PER_CLASS` (the full model)."""
    if kind not in KINDS:
        raise ProjectError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    per_class = FULL_MIN_PER_CLASS if kind == "full" else None
    counts = np.bincount(y_idx, minlength=len(labels))
    short = not decisions.can_fit(y_idx) if per_class is None else (
        (counts[counts > 0] < per_class).any() or (counts > 0).sum() < 2)
    if short:
        per_class = per_class or MIN_PER_CLASS
        raise ProjectError(f"need at least {per_class} labels in each of two classes to train "
                           f"(have {dict(zip(labels, counts.tolist(), strict=False))})")


def retrain_due(y_idx: np.ndarray, versions: list[dict], every: int) -> bool:
    """Whether ``every`` training labels (class indices ``y_idx``) arrived since the newest fast
    version among ``versions``, and the fast model can be fitted on them."""
    fast_versions = [v for v in versions if v["kind"] == "fast"]
    return len(y_idx) - (fast_versions[-1]["n_labels"] if fast_versions else 0) >= every and decisions.can_fit(y_idx)


def build_full(labels: Sequence[str], meta: dict) -> object:
    """The full model, unfitted: the ``best`` recipe on the project's LLM and encoder (from its
    ``meta``), without a cut (the version takes the project's rule on the pool's class shares)."""
    return build_recipe("best", list(labels), model=meta.get("model"), encoder=meta["encoder"],
                        instructions=meta.get("instructions"), threshold=None, holdout=FULL_HOLDOUT,
                        llm={"progress": False, **meta.get("llm_params", {})})


def held_out_metrics(frame: pd.DataFrame, proba: np.ndarray, labels: Sequence[str], threshold) -> dict:
    """Metrics on the texts the user held out as test (not the audit sample), at the rule."""
    test = (frame["label"].notna() & frame["is_test"] & ~frame["audit"]).to_numpy()
    if not test.any():
        return {}
    labels = list(labels)
    pred = decisions.decide(proba[test], labels, threshold)
    return {"test": classification_metrics(frame["label"][test].tolist(), proba[test], labels,
                                           None if threshold is None else threshold.positive,
                                           [labels[i] for i in pred])}


def pool_profile(frame: pd.DataFrame, proba: np.ndarray, ood, labels: Sequence[str], threshold) -> ReferenceProfile:
    """The version's reference profile for the server's drift checks: its decisions and out-of-scope
    scores on the pool's unlabelled texts (the texts it is meant for; every text while none is left)."""
    rows = frame["label"].isna().to_numpy()
    rows = rows if rows.any() else np.ones(len(frame), dtype=bool)
    labels = list(labels)
    decided = [labels[i] for i in decisions.decide(proba[rows], labels, threshold)]
    scores = None if ood is None else np.asarray(ood, dtype=float)[rows]
    return ReferenceProfile.from_predictions(decided, scores, source=f"{int(rows.sum())} texts of the project's pool")


def fit_fast(fit: decisions.PoolFit, frame: pd.DataFrame, rows: np.ndarray, y_idx: np.ndarray,
             labels: Sequence[str], encoder: str, cache_dir: str | Path):
    """The fast version from the loop's pool ``fit`` (:func:`agilecls.loop.decisions.fit_pool`):
    (classifier, probabilities of every row, out-of-scope scores, metrics)."""
    labels = list(labels)
    present = np.flatnonzero(fit.train_shares > 0)
    names = [labels[i] for i in present]
    base = fast_encoder(encoder, names, cache_dir=str(cache_dir))
    base.fit(frame["text"].iloc[rows].tolist(), [labels[i] for i in y_idx])
    clf = CalibratedClassifier.from_parts(base, names, fit.calibrator, fit.train_shares[present],
                                          fit.priors[present], fit.threshold)
    y = [labels[i] for i in y_idx]
    positive = None if fit.threshold is None else fit.threshold.positive
    metrics = {"cross_validated": classification_metrics(y, fit.oof, labels, positive,
                                                         [labels[i] for i in fit.decide(fit.oof)]),
               "rule": fit.rule()}
    return clf, fit.proba, fit.ood, metrics


def fit_full(frame: pd.DataFrame, rows: np.ndarray, y_idx: np.ndarray, labels: Sequence[str], meta: dict,
             settings: dict, folder: Path, report: Callable[[dict], None]):
    """The full version (see the module docstring): (classifier, probabilities, ood, metrics).
    ``meta`` gives the models (:func:`build_full`), ``settings`` the rule and its positive class."""
    labels = list(labels)
    texts, y = frame["text"].iloc[rows].tolist(), [labels[i] for i in y_idx]
    clf = build_full(labels, meta)
    started, epochs = time.time(), clf.estimators[1][1].epochs

    def on_epoch(info, _clf):
        per_epoch = (time.time() - started) / info.epoch
        report({"stage": "tuning the language model", "epoch": info.epoch, "epochs": epochs,
                "loss": round(float(info.train_loss), 4), "seconds_left": round(per_epoch * (epochs - info.epoch))})

    report({"stage": "fine-tuning the encoder, then tuning the language model"})
    clf.fit(texts, y, llm={"callback": on_epoch})
    raw, ood = score_through_batch_engine(clf, frame, labels, folder, report)
    shares = np.bincount(y_idx, minlength=len(labels)) / len(y_idx)
    audit_counts = np.bincount(serving.audit_classes(frame, labels), minlength=len(shares))
    priors = decisions.pool_priors(raw, shares, np.bincount(y_idx, minlength=len(shares)), len(frame),
                                   audit_counts=audit_counts)
    proba = shift_priors(raw, shares, priors)
    positive = decisions.positive_class(labels, priors, settings["positive"])
    # no out-of-fold rows to meet a precision or recall target on: the full model takes the
    # expected-F1 cut on the pool unless the project fixed a number
    rule = settings["rule"] if isinstance(settings["rule"], float) else "expected_f1"
    threshold = decisions.fit_rule(proba, proba[rows], y_idx, labels, rule, positive)
    wrapped = CalibratedClassifier.from_parts(clf, labels, None, shares, priors, threshold)
    return wrapped, proba, ood, {"rule": decisions.rule_state(labels, priors, threshold, "stacker")}


def fit_distilled(teacher, teacher_id: int, frame: pd.DataFrame, rows: np.ndarray, y_idx: np.ndarray,
                  labels: Sequence[str], encoder: str, folder: Path, report: Callable[[dict], None]):
    """The serving version (``teacher``, version ``teacher_id``) distilled into the project's
    sentence ``encoder``, fine-tuned on its probabilities over the pool
    (:func:`agilecls.distillation.distill`): (classifier, probabilities, ood, metrics). The student
    keeps the teacher's rule, fitted again on a quarter of the training labels held out of its
    training."""
    labels = list(labels)
    labelled = frame["label"].notna().to_numpy()
    pool = frame["text"][~labelled].tolist()
    report({"stage": f"version {teacher_id} labels {len(pool) + len(rows)} texts, then the student "
                     f"learns them", "teacher": teacher_id})
    student = distill(teacher, pool, encoder, progress=False, labeled=(
        frame["text"].iloc[rows].tolist(), [labels[i] for i in y_idx]))
    proba, ood = score_through_batch_engine(student, frame, labels, folder, report)
    facts = student.provenance["distilled_from"]
    priors = getattr(teacher, "priors_", None)
    shares = (priors if priors is not None and len(priors) == len(labels)
              else np.bincount(y_idx, minlength=len(labels)) / len(y_idx))
    return student, proba, ood, {"rule": decisions.rule_state(labels, shares, student.threshold_, "distilled"),
                                 "distilled_from": {"version": teacher_id, **{
                                     k: facts.get(k) for k in ("agreement", "held_out", "unlabelled_texts",
                                                               "teacher_seconds", "student_seconds")}}}


def score_through_batch_engine(clf, frame: pd.DataFrame, labels: Sequence[str], folder: Path,
                               report: Callable[[dict], None]) -> tuple[np.ndarray, np.ndarray]:
    """Every text of ``frame`` scored by ``clf`` with the streaming batch engine, chunk by chunk
    with progress (``report``), from a scratch copy of the model beside the version ``folder``."""
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
    proba = scores[[f"p_{label}" for label in labels]].to_numpy(dtype=np.float64)
    return proba / proba.sum(axis=1, keepdims=True), scores["ood_score"].to_numpy(dtype=np.float64)


def train_version(store: ProjectStore, kind: str, frame: pd.DataFrame, rows: np.ndarray, y_idx: np.ndarray, *,
                  labels: Sequence[str], meta: dict, settings: dict, pool_fit: decisions.PoolFit | None = None,
                  teacher: tuple[int, object] | None = None,
                  progress: Callable[[dict], None] | None = None) -> int:
    """Fit, save and register a version of ``kind``; returns its id (not yet considered for
    serving: :func:`agilecls.loop.serving.consider`).

    Parameters
    ----------
    store : ProjectStore
        The project's database; the version folder goes under its folder's ``versions/``.
    kind : {"fast", "full", "distilled"}
        The fast model, the full model, or the serving version distilled into a fast student.
    frame : DataFrame
        Every text of the project (``store.frame()``).
    rows, y_idx : ndarray of int
        The training rows and their class indices (checked by :func:`check_training`).
    labels : list of str
    meta : dict
        The project's meta data (``encoder``, ``model``, ``instructions``, ``llm_params``).
    settings : dict
        The project's settings (``rule``, ``positive``).
    pool_fit : PoolFit or None, default=None
        ``kind="fast"``: the loop's fit of the pool the version saves.
    teacher : (int, classifier) or None, default=None
        ``kind="distilled"``: the serving version's id and classifier.
    progress : callable or None, default=None
        Called with a dict: ``stage`` and, while the language model tunes, ``epoch``, ``epochs``,
        ``loss`` and ``seconds_left``; while every text is scored, ``scored`` and ``total``.
    """
    report = progress or (lambda info: None)
    start = time.time()
    folder = (store.folder / "versions" /
              f"{time.strftime('%Y%m%d-%H%M%S')}-{int(time.time() * 1e3) % 1000:03d}-{kind}")
    if kind == "fast":
        report({"stage": "fitting the fast model"})
        clf, proba, ood, metrics = fit_fast(pool_fit, frame, rows, y_idx, labels, meta["encoder"],
                                            store.folder / "embeddings")
    elif kind == "full":
        clf, proba, ood, metrics = fit_full(frame, rows, y_idx, labels, meta, settings, folder, report)
    else:
        clf, proba, ood, metrics = fit_distilled(teacher[1], teacher[0], frame, rows, y_idx, labels,
                                                 meta["encoder"], folder, report)
    threshold = serving.version_threshold({"metrics": metrics})
    metrics.update(held_out_metrics(frame, proba, labels, threshold))
    metrics["fit_seconds"] = round(time.time() - start, 2)
    report({"stage": "saving"})
    clf.save(folder)
    pool_profile(frame, proba, ood, labels, threshold).save(folder)
    return store.add_version(kind, len(rows), str(folder.relative_to(store.folder)), metrics,
                             frame["id"].tolist(), proba, [None] * len(frame) if ood is None else ood)
