"""CalibratedClassifier: any agilecls classifier with calibrated probabilities and, for two classes
or per label of a multi-label classifier, a decision threshold, both fitted on out-of-fold
predictions of the training rows."""

from __future__ import annotations

import os
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from .._compat import HasMethods, Interval, StrOptions
from ..persistence import load_as, load_classifier, register_estimator, save_estimator, validate_manifest
from ..validation import TextInputTags, check_multilabel_xy, check_texts, check_xy, is_multilabel
from .calibrators import CALIBRATORS, choose_calibrator, make_calibrator
from .crossfit import clone_with_labels, columns_in, out_of_fold, with_shared_lower_cache
from .multilabel import PerLabelCalibrator, decide_labels, fit_label_thresholds, label_cuts
from .priors import estimate_priors, shift_priors
from .thresholds import DecisionThreshold, check_rule, check_threshold_setting, fit_threshold


class CalibratedManifest(BaseModel):
    """The CalibratedClassifier's part of ``agilecls.json``, checked on load."""

    model_config = ConfigDict(extra="allow")
    classes: list[str] = Field(min_length=2)
    calibration: str
    calibrator: dict
    threshold: dict | list[dict] | None = None
    class_shares: list[float] | None = None
    priors: list[float] | None = None
    folds: int | None = Field(default=None, ge=2)


def outputs(base, texts: list[str], classes) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities in ``classes`` order, the base's own out-of-scope score or None) in one pass."""
    if hasattr(base, "details"):
        d = base.details(texts)
        return np.asarray(d["proba"])[:, columns_in(base, classes)], d.get("ood_score")
    return np.asarray(base.predict_proba(texts))[:, columns_in(base, classes)], None


@register_estimator("CalibratedClassifier")
class CalibratedClassifier(TextInputTags, ClassifierMixin, BaseEstimator):
    """A classifier whose probabilities are calibrated on out-of-fold predictions, optionally with
    a binary decision threshold chosen on them (as scikit-learn's ``CalibratedClassifierCV`` and
    ``TunedThresholdClassifierCV``, saved as JSON + safetensors).

    ``fit`` cross-fits ``estimator`` (k clones, or one on a hold-out split), fits the calibration
    map on the out-of-fold probabilities (the method with the lowest cross-validated log loss when
    ``method="auto"``), chooses the threshold on the calibrated out-of-fold probabilities, then (for
    k-fold) refits ``estimator`` on every row, or with ``ensemble=True`` keeps the k fold models and
    averages their calibrated probabilities.

    Why ``ensemble=True``: the map is fitted to the scores of models that each saw (k-1)/k of the
    rows, and the refit on every row is more confident than they were, so its calibrated scores are
    still over-confident; the fold models are the models the map was fitted to, and their average is
    an ensemble. Unlike scikit-learn's ``CalibratedClassifierCV(ensemble=True)``, which fits one map
    per fold on that fold's held-out rows, one map is fitted on all out-of-fold rows and applied to
    every fold model: with a few dozen labelled texts a fold holds too few rows for a map of its
    own. Prediction costs k passes.

    A multi-label ``estimator`` (``multilabel=True``, or an ensemble of such members) gets one
    binary map and one threshold per label (:mod:`agilecls.calibration.multilabel`); its folds are
    shuffled, not stratified, and ``predict`` gives the 0/1 matrix of those thresholds.

    Parameters
    ----------
    estimator : classifier
        Any agilecls classifier (``AgileClassifier``, ``EncoderClassifier``, ``EnsembleClassifier``).
    method : {"auto", "none", "temperature", "sigmoid", "isotonic"}, default="auto"
        "sigmoid" (Platt) and "isotonic" need two classes (or multi-label, where every label is binary).
    cv : int or float, default=5
        k >= 2: k-fold cross-fitting, then a refit on all rows (k + 1 fits). A float in (0, 1): one
        stratified hold-out of that share; the model fitted on the rest is kept (1 fit, for costly
        models, at the price of training on fewer rows).
    threshold : {"f1", "expected_f1", "precision:<t>", "recall:<t>"}, float or None, default=None
        Two classes: how to choose the decision threshold on the positive class's calibrated
        probability (None: the most probable class). "f1" is the best cut on the out-of-fold rows;
        "expected_f1" the cut whose F1 the calibrated probabilities expect, steadier on a few
        hundred rows (:func:`agilecls.calibration.thresholds.expected_f1_cut`). Multi-label: every
        label's own threshold on its probability, by the same rule (None: 0.5).
    pos_label : str or None, default=None
        The positive class of the threshold (default: the second class).
    ensemble : bool, default=False
        With k-fold ``cv``: keep the k fold models (no refit) and predict with the mean of their
        calibrated probabilities (k fits instead of k + 1; k times the prediction cost and the
        saved size).
    random_state : int, default=0
        Seed of the splits.

    Examples
    --------
    >>> from agilecls import CalibratedClassifier, EncoderClassifier
    >>> clf = CalibratedClassifier(EncoderClassifier(head="logistic"), threshold="recall:0.9")  # doctest: +SKIP
    >>> clf.fit(texts, labels).threshold_.describe()  # doctest: +SKIP
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict_proba"])],
        "method": [StrOptions({"auto", *CALIBRATORS})],
        "cv": [Interval(Integral, 2, None, closed="left"), Interval(Real, 0, 1, closed="neither")],
        "threshold": [StrOptions({"f1", "expected_f1"}), str, Interval(Real, 0, 1, closed="neither"), None],
        "pos_label": [str, None],
        "ensemble": ["boolean"],
        "random_state": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, estimator, method: str = "auto", cv: int | float = 5, threshold=None,
                 pos_label: str | None = None, ensemble: bool = False, random_state: int = 0):
        self.estimator = estimator
        self.method = method
        self.cv = cv
        self.threshold = threshold
        self.pos_label = pos_label
        self.ensemble = ensemble
        self.random_state = random_state

    def fit(self, X, y, **fit_params):
        """Cross-fit, calibrate, choose the threshold and (k-fold) refit; ``fit_params`` go to every
        fit of ``estimator``."""
        self._validate_params()
        if self.ensemble and not isinstance(self.cv, Integral):
            raise ValueError(f"ensemble=True averages the k fold models; give an int cv >= 2, not cv={self.cv}")
        fit_params = with_shared_lower_cache(self.estimator, fit_params)  # folds and refit share it
        fit_maps = self._fit_per_label if is_multilabel(self.estimator) else self._fit_per_class
        for earlier in ("fold_estimators_", "estimator_", "class_shares_", "priors_"):
            self.__dict__.pop(earlier, None)
        fold, texts, y_list = fit_maps(X, y, fit_params)
        if self.ensemble:
            self.fold_estimators_ = fold.models
        elif fold.fitted is not None:
            self.estimator_ = fold.fitted
        else:
            self.estimator_ = clone_with_labels(self.estimator, self.classes_)
            self.estimator_.fit(texts, y_list, **fit_params)
        return self

    def _fit_per_class(self, X, y, fit_params):
        """The single-label part of ``fit``: one map over the classes and the binary threshold."""
        texts, y_list, labels = check_xy(X, y, getattr(self.estimator, "labels", None), fitting=True)
        rule, positive = check_threshold_setting(self.threshold, self.pos_label, labels)
        self.classes_ = np.array(labels, dtype=object)
        self.class_shares_ = np.array([list(y_list).count(c) for c in labels], dtype=np.float64) / len(y_list)
        fold = out_of_fold(self.estimator, texts, y_list, labels, self.cv, self.random_state, fit_params,
                           keep_models=self.ensemble)
        y_idx = np.array([labels.index(v) for v in np.asarray(y_list, dtype=object)[fold.rows]])
        self.calibrator_, self.calibration_scores_ = choose_calibrator(fold.proba, y_idx, self.method,
                                                                       self.random_state)
        self.oof_proba_, self.oof_rows_ = self.calibrator_.transform(fold.proba), fold.rows
        self.threshold_ = None
        if rule is not None:
            p_pos = self.oof_proba_[:, labels.index(positive)]
            self.threshold_ = fit_threshold(p_pos, y_idx == labels.index(positive), rule, positive)
        return fold, texts, y_list

    def _fit_per_label(self, X, y, fit_params):
        """The multi-label part of ``fit``: per-label maps and thresholds on the out-of-fold columns."""
        texts, Y, labels = check_multilabel_xy(X, y, getattr(self.estimator, "labels", None), fitting=True)
        if self.pos_label is not None:
            raise ValueError("pos_label is for two classes; a multi-label classifier gets a threshold per label")
        rule = None if self.threshold is None else check_rule(self.threshold)
        self.classes_ = np.array(labels, dtype=object)
        fold = out_of_fold(self.estimator, texts, Y, labels, self.cv, self.random_state, fit_params,
                           keep_models=self.ensemble)
        self.calibrator_ = PerLabelCalibrator()
        scores = self.calibrator_.fit(fold.proba, Y[fold.rows], self.method, self.random_state)
        self.calibration_scores_ = {labels[k]: v for k, v in scores.items()}
        self.oof_proba_, self.oof_rows_ = self.calibrator_.transform(fold.proba), fold.rows
        self.threshold_ = (None if rule is None else
                           fit_label_thresholds(self.oof_proba_, Y[fold.rows], labels, rule))
        return fold, texts, Y

    @classmethod
    def from_parts(cls, estimator, classes, calibrator=None, class_shares=None, priors=None,
                   threshold: DecisionThreshold | None = None) -> CalibratedClassifier:
        """A fitted single-label ``CalibratedClassifier`` assembled from parts fitted elsewhere, e.g.
        by the labelling loop, which fits the map, the pool's class shares and the cut on cached
        embeddings and saves them as an ordinary classifier.

        Parameters
        ----------
        estimator : fitted classifier
            Its ``predict_proba`` columns are reordered to ``classes``.
        classes : sequence of str
        calibrator : fitted calibrator or None, default=None
            From :func:`agilecls.calibration.calibrators.choose_calibrator` (None: the identity).
        class_shares, priors : array-like of shape (n_classes,) or None, default=None
            The class shares the probabilities were fitted under and those to answer under
            (:meth:`adapt_priors`); both or neither.
        threshold : DecisionThreshold or None, default=None
            Two classes: the cut on the (shifted) probability of ``threshold.positive``.

        Returns
        -------
        CalibratedClassifier
        """
        if (class_shares is None) != (priors is None):
            raise ValueError("give both class_shares and priors, or neither")
        obj = cls(estimator, method="none" if calibrator is None else calibrator.name,
                  threshold=None if threshold is None else threshold.rule if threshold.rule != "fixed"
                  else threshold.threshold, pos_label=None if threshold is None else threshold.positive)
        obj.estimator_ = estimator
        obj.classes_ = np.array([str(c) for c in classes], dtype=object)
        obj.calibrator_ = make_calibrator("none") if calibrator is None else calibrator
        obj.calibration_scores_ = {}
        obj.threshold_ = threshold
        if class_shares is not None:
            obj.class_shares_ = np.asarray(class_shares, dtype=np.float64)
            obj.priors_ = np.asarray(priors, dtype=np.float64)
        return obj

    @property
    def base_models_(self) -> list:
        """The fitted models whose calibrated probabilities are averaged: the k fold models
        (``ensemble=True``) or the one refitted (or hold-out) model."""
        check_is_fitted(self, "calibrator_")
        return self.fold_estimators_ if hasattr(self, "fold_estimators_") else [self.estimator_]

    def details(self, X) -> dict[str, np.ndarray]:
        """``proba`` (calibrated; the mean over the fold models with ``ensemble=True``), ``ood_score``
        (the base's, else 1 - max probability) and ``pred`` (by the threshold when there is one) from
        one pass over ``X``."""
        texts = check_texts(X)
        passes = [outputs(model, texts, self.classes_) for model in self.base_models_]
        proba = np.mean([self.calibrator_.transform(raw) for raw, _ in passes], axis=0)
        if getattr(self, "priors_", None) is not None:
            proba = shift_priors(proba, self.class_shares_, self.priors_)
        oods = [ood for _, ood in passes]
        ood = None if any(o is None for o in oods) else np.mean([np.asarray(o) for o in oods], axis=0)
        if isinstance(self.calibrator_, PerLabelCalibrator):  # multi-label: 0/1 per label
            return {"proba": proba, "pred": decide_labels(proba, label_cuts(self, proba.shape[1]))}
        pred = (self.threshold_.decide(proba, self.classes_) if self.threshold_ is not None
                else self.classes_[proba.argmax(axis=1)])
        return {"proba": proba, "ood_score": 1.0 - proba.max(axis=1) if ood is None else np.asarray(ood),
                "pred": pred}

    def adapt_priors(self, X) -> CalibratedClassifier:
        """Estimate the class shares of the unlabelled texts ``X`` (EM over the calibrated
        probabilities, :func:`agilecls.calibration.priors.estimate_priors`) and answer under them
        from now on (``priors_``; saved with the model). For texts labelled in other proportions
        than they arrive in: a few per class, or chosen by active learning. ``X`` should be a fair
        sample of what the model will label (a few hundred texts or more). A decision threshold
        then applies to the adapted probabilities. ``X=None`` goes back to the training shares.

        Returns
        -------
        self
        """
        check_is_fitted(self, "calibrator_")
        if isinstance(self.calibrator_, PerLabelCalibrator):
            raise ValueError("adapt_priors is for single-label classifiers; a multi-label one has no class shares")
        self.priors_ = None
        if X is not None:
            self.priors_, self.priors_iterations_ = estimate_priors(self.predict_proba(X), self.class_shares_)
        return self

    def decision_rule(self) -> DecisionThreshold | list[DecisionThreshold] | None:
        """How ``predict`` decides from ``predict_proba``: the fitted ``threshold_`` (two classes: a
        cut on the positive class's probability; multi-label: one per label) or None (the most
        probable class; multi-label: 0.5)."""
        check_is_fitted(self, "calibrator_")
        return self.threshold_

    def salience_members(self, text: str, label: str | None = None, member: str | None = None) -> dict:
        """What :func:`agilecls.explain` attributes for ``text``: the calibration map is monotone, so
        the base models' scores of the label are explained (their mean with ``ensemble=True``).

        Returns
        -------
        dict
            ``models`` (the base models), ``label`` (``label``, else this classifier's decision),
            ``member`` (passed on: the base may be an ensemble) and ``info`` (recorded in the
            explanation: ``calibrated_label``).
        """
        check_is_fitted(self, "calibrator_")
        if isinstance(self.calibrator_, PerLabelCalibrator):
            raise ValueError("explain does not support multi-label classifiers yet; explain a single-label one")
        decided = str(self.predict([text])[0])
        return {"models": self.base_models_, "label": decided if label is None else label, "member": member,
                "info": {"calibrated_label": decided}}

    def predict_proba(self, X) -> np.ndarray:
        return self.details(X)["proba"]

    def predict(self, X) -> np.ndarray:
        return self.details(X)["pred"]

    def ood_score(self, X) -> np.ndarray:
        if isinstance(getattr(self, "calibrator_", None), PerLabelCalibrator):
            raise ValueError("ood_score is not defined for a multi-label classifier (a text may have no label)")
        return self.details(X)["ood_score"]

    def describe(self) -> str:
        base = self.estimator_ if hasattr(self, "estimator_") else self.estimator
        how = getattr(getattr(self, "calibrator_", None), "name", self.method)
        text = f"{base.describe()}, calibrated ({how}, cv={self.cv})"
        if self.ensemble:
            text += f", the mean of its {len(getattr(self, 'fold_estimators_', [])) or self.cv} fold models"
        if getattr(self, "priors_", None) is not None:
            text += ", under the class shares of unlabelled texts (" + ", ".join(
                f"{c} {p:.2f}" for c, p in zip(self.classes_, self.priors_, strict=True)) + ")"
        thresholds = getattr(self, "threshold_", None)
        if isinstance(thresholds, list):
            text += f", a threshold per label ({thresholds[0].rule})"
        elif thresholds is not None:
            text += f", threshold {thresholds.threshold:.3f} ({thresholds.rule})"
        return text

    # ---- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the base classifier into ``path/base/`` (the fold models into ``path/folds/<i>/``
        with ``ensemble=True``) and the calibration map and threshold into ``agilecls.json``,
        atomically."""
        check_is_fitted(self, "calibrator_")
        return save_estimator(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None, **base_kwargs) -> CalibratedClassifier:
        return load_as(cls, path, device=device, **base_kwargs)

    def write_state(self, folder: Path) -> dict:
        folds = getattr(self, "fold_estimators_", None)
        for part, model in zip(_model_folders(None if folds is None else len(folds)), self.base_models_, strict=True):
            model.save(folder / part)
        params = {k: v for k, v in self.get_params(deep=False).items() if k != "estimator"}
        return {"params": params, "folds": None if folds is None else len(folds),
                "classes": [str(c) for c in self.classes_], "calibration": self.calibrator_.name,
                "calibrator": self.calibrator_.state(), "calibration_scores": self.calibration_scores_,
                "threshold": _thresholds_state(self.threshold_), **_priors_state(self)}

    @classmethod
    def read_state(cls, folder: Path, manifest: dict, device: str | None = None,
                    **base_kwargs) -> CalibratedClassifier:
        checked = validate_manifest(CalibratedManifest, manifest, folder)
        options = {**({} if device is None else {"device": device}), **base_kwargs}
        models = [load_classifier(folder / part, **options) for part in _model_folders(checked.folds)]
        obj = cls(models[0], **{k: v for k, v in manifest.get("params", {}).items() if k != "estimator"})
        if checked.folds is None:
            obj.estimator_ = models[0]
        else:
            obj.fold_estimators_ = models
        obj.classes_ = np.array(checked.classes, dtype=object)
        if checked.calibration == PerLabelCalibrator.name:
            obj.calibrator_ = PerLabelCalibrator.from_state(checked.calibrator)
        else:
            obj.calibrator_ = make_calibrator(checked.calibration, checked.calibrator)
        obj.calibration_scores_ = manifest.get("calibration_scores", {})
        obj.threshold_ = _thresholds_from_state(checked.threshold)
        if checked.class_shares is not None:
            obj.class_shares_ = np.array(checked.class_shares)
            obj.priors_ = None if checked.priors is None else np.array(checked.priors)
        return obj


def _model_folders(folds: int | None) -> list[str]:
    """Where a saved CalibratedClassifier keeps its models: ``base`` (one refitted or hold-out
    model) or ``folds/0 … folds/k-1`` (``ensemble=True``)."""
    return ["base"] if folds is None else [f"folds/{i}" for i in range(folds)]


def _priors_state(clf) -> dict:
    """The training class shares and the adapted priors (single-label only) as JSON lists."""
    shares, priors = getattr(clf, "class_shares_", None), getattr(clf, "priors_", None)
    if shares is None:
        return {}
    return {"class_shares": shares.tolist(), "priors": None if priors is None else priors.tolist()}


def _thresholds_state(thresholds) -> dict | list[dict] | None:
    """The JSON of no threshold, the binary one, or a multi-label classifier's one per label."""
    if thresholds is None:
        return None
    return [t.to_dict() for t in thresholds] if isinstance(thresholds, list) else thresholds.to_dict()


def _thresholds_from_state(state):
    """Inverse of :func:`_thresholds_state`."""
    if state is None:
        return None
    if isinstance(state, list):
        return [DecisionThreshold.from_dict(t) for t in state]
    return DecisionThreshold.from_dict(state)
