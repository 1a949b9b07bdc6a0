"""Distillation: an accurate, slow teacher labels texts with probabilities and a sentence encoder
learns them, so the model that serves is fast.

The student is a sentence encoder fine-tuned with a softmax head on the teacher's probabilities
softened by a temperature (Hinton et al. 2015), over the unlabelled texts and the labelled ones
(whose targets mix the teacher's probabilities with the label). A share of the labelled rows is
held out of the student's training: the student's calibration map and the teacher's decision
rule are fitted again on them, and the student's agreement with the teacher is measured there.
The result is an ordinary :class:`~agilecls.calibration.classifier.CalibratedClassifier` folder,
with the teacher and its recipe in the manifest's ``provenance``.
"""

from __future__ import annotations

import os
import time
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ._compat import Interval
from .calibration.calibrators import choose_calibrator
from .calibration.classifier import CalibratedClassifier
from .calibration.thresholds import DecisionThreshold, fit_threshold
from .encoders.classifier import EncoderClassifier
from .encoders.members import ENCODER_MEMBERS
from .persistence import load_classifier
from .validation import TextInputTags, check_texts, check_xy

#: Softmax temperature of the teacher's targets (Hinton et al. use 2-20; higher shows more of the
#: teacher's view of the wrong classes, which matters less with few classes).
TEMPERATURE = 2.0
#: Weight of the true label in a labelled row's target (the teacher's probabilities take the rest).
LABEL_WEIGHT = 0.5
#: Share of the labelled rows held out for the student's calibration, decision rule and agreement.
HOLDOUT = 0.25
#: Texts the teacher scores per call (a progress step).
TEACHER_CHUNK = 128


def soften(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``proba`` at softmax temperature ``temperature``: ``p ** (1 / T)``, renormalised.

    Examples
    --------
    >>> soften(np.array([[0.8, 0.2]]), 2.0).round(3)
    array([[0.667, 0.333]])
    """
    logp = np.log(np.clip(np.asarray(proba, dtype=np.float64), 1e-12, 1.0)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    out = np.exp(logp)
    return out / out.sum(axis=1, keepdims=True)


def student_targets(proba: np.ndarray, truth: np.ndarray, labelled_rows: np.ndarray, classes: list[str],
                    temperature: float, label_weight: float) -> np.ndarray:
    """The teacher's probabilities softened by ``temperature``; on ``labelled_rows`` mixed with the
    one-hot label (``label_weight`` of it)."""
    targets = soften(proba, temperature)
    onehot = np.eye(len(classes))[[classes.index(v) for v in truth[labelled_rows]]]
    targets[labelled_rows] = (1 - label_weight) * targets[labelled_rows] + label_weight * onehot
    return targets


def teacher_probabilities(teacher, texts: list[str], progress: bool = True) -> np.ndarray:
    """The teacher's probabilities [texts, classes], in chunks with a progress bar."""
    parts = []
    with tqdm(total=len(texts), desc="teacher labelling", unit="text", disable=not progress) as bar:
        for start in range(0, len(texts), TEACHER_CHUNK):
            parts.append(np.asarray(teacher.predict_proba(texts[start:start + TEACHER_CHUNK]), dtype=np.float64))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else np.zeros((0, len(teacher.classes_)))


def decision_rule_of(classifier):
    """``classifier.decision_rule()``; None for a classifier without that method (it predicts the
    most probable class)."""
    rule = getattr(classifier, "decision_rule", None)
    return rule() if callable(rule) else None


def teacher_rule(teacher) -> DecisionThreshold | None:
    """The teacher's two-class decision threshold, or None (it predicts the most probable class)."""
    threshold = decision_rule_of(teacher)
    return threshold if isinstance(threshold, DecisionThreshold) else None


def decide(proba: np.ndarray, classes: list[str], threshold: DecisionThreshold | None) -> np.ndarray:
    return threshold.decide(proba, classes) if threshold is not None else np.asarray(classes, dtype=object)[
        proba.argmax(axis=1)]


def split_labelled(texts: list[str], y: list[str], share: float, seed: int):
    """(fit rows, held-out rows) of the labelled texts, stratified where every class allows it."""
    rows = np.arange(len(texts))
    if len(rows) < 4 or share <= 0:
        return rows, rows[:0]
    counts = {c: y.count(c) for c in set(y)}
    stratify = y if min(counts.values()) >= 2 else None
    fit, held = train_test_split(rows, test_size=share, random_state=seed, stratify=stratify)
    return np.sort(fit), np.sort(held)


def student_encoder(student: str, classes: list[str], seed: int, epochs: int | None = None):
    """The student: ``student`` fine-tuned with a softmax head, as the ensembles' fine-tuned member
    (at least 200 optimiser steps), every label a class."""
    exact = {} if epochs is None else {"epochs": epochs, "min_steps": 0}
    params = {**ENCODER_MEMBERS["finetuned"]["params"], **exact}
    return EncoderClassifier(student, labels=classes, oos_label=None, random_state=seed, **params)


def distill(teacher, texts, student: str = "minilm", *, labeled=None, temperature: float = TEMPERATURE,
            label_weight: float = LABEL_WEIGHT, holdout: float = HOLDOUT, epochs: int | None = None,
            random_state: int = 0, progress: bool = True) -> CalibratedClassifier:
    """Distil ``teacher`` into a fine-tuned sentence encoder.

    Parameters
    ----------
    teacher : fitted classifier or str
        Any single-label agilecls classifier, or the folder it was saved to.
    texts : list of str
        Unlabelled texts in the proportions the student will meet (the more, the closer it follows).
    student : str, default="minilm"
        The sentence encoder to fine-tune (``"minilm"``, ``"mpnet"``, a folder).
    labeled : (texts, labels) or None, default=None
        Labelled rows: ``holdout`` of them are kept out of training to fit the student's calibration
        and decision rule on and to measure the agreement; the rest train with the label mixed in.
        Without them, ``holdout`` of ``texts`` is held out with the teacher's answers as truth.
    temperature : float, default=2.0
    label_weight : float in [0, 1], default=0.5
    holdout : float in [0, 1), default=0.25
    epochs : int or None, default=None
        Student epochs (None: 4, raised until at least 200 optimiser steps run; a number: exactly).
    random_state : int, default=0
    progress : bool, default=True

    Returns
    -------
    CalibratedClassifier
        Fitted; its ``provenance["distilled_from"]`` holds the teacher, its recipe, the counts and
        the agreement on the held-out rows, and ``save`` writes them into the manifest.

    Examples
    --------
    >>> student = distill("models/ethos", unlabelled_texts, labeled=(texts, labels))  # doctest: +SKIP
    >>> student.save("models/ethos-student")  # doctest: +SKIP
    """
    teacher = load_classifier(teacher) if isinstance(teacher, (str, os.PathLike)) else teacher
    if not hasattr(teacher, "classes_") or not hasattr(teacher, "predict_proba"):
        raise ValueError("the teacher must be a fitted classifier with predict_proba (fit it first, or give the "
                         "folder it was saved to)")
    classes = [str(c) for c in teacher.classes_]
    if getattr(teacher, "multilabel", False) or isinstance(decision_rule_of(teacher), list):
        raise ValueError("distillation is for single-label classifiers; the teacher is multi-label")
    if not temperature > 0 or not 0 <= label_weight <= 1 or not 0 <= holdout < 1:
        raise ValueError(f"need temperature > 0, label_weight in [0, 1] and holdout in [0, 1); got "
                         f"{temperature}, {label_weight}, {holdout}")
    unlabelled = list(dict.fromkeys(check_texts(texts))) if len(texts) else []
    if labeled is not None:
        lab_x, lab_y, _ = check_xy(*labeled)
        unknown = sorted(set(lab_y) - set(classes))
        if unknown:
            raise ValueError(f"labeled rows use labels {unknown[:5]} the teacher does not know ({classes})")
    else:
        lab_x, lab_y = [], []
    seen = set(lab_x)
    unlabelled = [t for t in unlabelled if t not in seen]
    if len(unlabelled) + len(lab_x) < 8:
        raise ValueError(f"distillation needs texts to learn from: got {len(unlabelled)} unlabelled and "
                         f"{len(lab_x)} labelled (give a few hundred or more)")

    start = time.perf_counter()
    all_texts = unlabelled + lab_x
    proba = teacher_probabilities(teacher, all_texts, progress)
    teacher_seconds = time.perf_counter() - start
    rule = teacher_rule(teacher)
    teacher_pred = decide(proba, classes, rule)
    truth = np.array(list(teacher_pred[:len(unlabelled)]) + lab_y, dtype=object)
    if lab_x:
        fit_lab, held_lab = split_labelled(lab_x, lab_y, holdout, random_state)
        held = len(unlabelled) + held_lab
        train = np.concatenate([np.arange(len(unlabelled)), len(unlabelled) + fit_lab])
    else:
        train, held = split_labelled(unlabelled, list(teacher_pred), holdout, random_state)
    targets = student_targets(proba, truth, train[train >= len(unlabelled)], classes, temperature, label_weight)

    start = time.perf_counter()
    student_clf = student_encoder(student, classes, random_state, epochs).set_params(verbose=progress)
    hard = np.asarray(classes, dtype=object)[targets[train].argmax(axis=1)]
    student_clf.fit([all_texts[i] for i in train], list(hard), targets=targets[train], temperature=temperature)
    model, held_facts = finish_student(student_clf, classes, [all_texts[i] for i in held], truth[held],
                                       teacher_pred[held], rule, random_state)
    model.provenance = {"distilled_from": {
        "teacher": teacher.describe() if hasattr(teacher, "describe") else type(teacher).__name__,
        "teacher_provenance": getattr(teacher, "provenance", None), "student": student,
        "unlabelled_texts": len(unlabelled), "labelled_texts": len(lab_x), "trained_on": int(len(train)),
        "temperature": temperature, "label_weight": label_weight,
        "held_out_truth": "labels" if lab_x else "the teacher's answers", **held_facts,
        "teacher_seconds": round(teacher_seconds, 1), "student_seconds": round(time.perf_counter() - start, 1)}}
    return model


def finish_student(student_clf, classes: list[str], held_texts: list[str], held_truth: np.ndarray,
                   held_teacher: np.ndarray, rule: DecisionThreshold | None, seed: int):
    """The student calibrated on the held-out rows and given the teacher's rule fitted again there
    (a fixed cut is kept), and what it scored there: (classifier, facts for the manifest)."""
    calibrator = threshold = None
    facts: dict = {"held_out": len(held_texts)}
    if len(held_texts):
        raw = student_clf.predict_proba(held_texts)
        y_idx = np.array([classes.index(v) for v in held_truth])
        if len(set(y_idx.tolist())) > 1:
            calibrator, _ = choose_calibrator(raw, y_idx, "auto", seed)
            proba = calibrator.transform(raw)
        else:
            proba = raw
        if rule is not None:
            threshold = (rule if rule.rule == "fixed" else
                         fit_threshold(proba[:, classes.index(rule.positive)], held_truth == rule.positive,
                                       rule.rule, rule.positive))
        pred = decide(proba, classes, threshold)
        facts.update(agreement=round(float(np.mean(pred == held_teacher)), 4),
                     accuracy=round(float(np.mean(pred == held_truth)), 4),
                     teacher_accuracy=round(float(np.mean(held_teacher == held_truth)), 4))
    return CalibratedClassifier.from_parts(student_clf, classes, calibrator, threshold=threshold), facts


_share = Interval(Real, 0, 1, closed="left")


class DistilledClassifier(TextInputTags, ClassifierMixin, BaseEstimator):
    """Train ``teacher`` on the labels, then distil it into a fast student (:func:`distill`).

    After ``fit`` it predicts with the student; ``save`` writes the student as an ordinary
    classifier folder (``load_classifier`` gives a ``CalibratedClassifier``).

    Parameters
    ----------
    teacher : estimator
        Unfitted; cloned and fitted on (X, y).
    student : str, default="minilm"
    temperature, label_weight, holdout, epochs, random_state : as :func:`distill`.

    Examples
    --------
    >>> from agilecls.recipes import build_recipe
    >>> build_recipe("distilled", ["no", "yes"]).student
    'minilm'
    """

    _parameter_constraints = {
        "teacher": [object], "student": [str, os.PathLike], "temperature": [Interval(Real, 0, None, closed="neither")],
        "label_weight": [Interval(Real, 0, 1, closed="both")], "holdout": [_share],
        "epochs": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, teacher, student: str = "minilm", temperature: float = TEMPERATURE,
                 label_weight: float = LABEL_WEIGHT, holdout: float = HOLDOUT, epochs: int | None = None,
                 random_state: int = 0):
        self.teacher = teacher
        self.student = student
        self.temperature = temperature
        self.label_weight = label_weight
        self.holdout = holdout
        self.epochs = epochs
        self.random_state = random_state

    def fit(self, X, y, unlabeled=None, **teacher_fit_params):
        """Fit the teacher on (X, y), then the student on ``unlabeled`` and (X, y)."""
        self._validate_params()
        texts, labels, _ = check_xy(X, y)
        self.teacher_ = clone(self.teacher).fit(texts, labels, **teacher_fit_params)
        self.model_ = distill(self.teacher_, list(unlabeled or []), self.student, labeled=(texts, labels),
                              temperature=self.temperature, label_weight=self.label_weight, holdout=self.holdout,
                              epochs=self.epochs, random_state=self.random_state)
        if getattr(self, "provenance", None):
            self.model_.provenance = {**self.provenance, **self.model_.provenance}
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict(X)

    def ood_score(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.ood_score(X)

    def details(self, X) -> dict:
        check_is_fitted(self, "model_")
        return self.model_.details(X)

    @property
    def threshold_(self):
        check_is_fitted(self, "model_")
        return self.model_.threshold_

    def decision_rule(self) -> DecisionThreshold | None:
        """The student's decision rule (the teacher's, fitted again on the held-out rows)."""
        check_is_fitted(self, "model_")
        return self.model_.decision_rule()

    def salience_members(self, text: str, label: str | None = None, member: str | None = None) -> dict:
        """What :func:`agilecls.explain` attributes: the student (see
        :meth:`CalibratedClassifier.salience_members`)."""
        check_is_fitted(self, "model_")
        return {"models": [self.model_], "label": label, "member": member, "info": {}}

    def describe(self) -> str:
        return f"{self.student} distilled from {self.teacher.describe()}"

    def save(self, path):
        """Save the student (an ordinary ``CalibratedClassifier`` folder). Returns the folder."""
        check_is_fitted(self, "model_")
        return self.model_.save(path)
