"""CalibratedClassifier: any agilecls classifier with calibrated probabilities and, for two classes,
a decision threshold, both fitted on out-of-fold predictions of the training rows."""

from __future__ import annotations

import os
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..persistence import load_as, load_classifier, register_estimator, save_estimator, validate_manifest
from ..validation import TextInputTags, check_texts, check_xy
from .calibrators import CALIBRATORS, choose_calibrator, make_calibrator
from .crossfit import columns_in, out_of_fold
from .thresholds import DecisionThreshold, check_threshold_setting, fit_threshold


class CalibratedManifest(BaseModel):
    """The CalibratedClassifier's part of ``agilecls.json``, checked on load."""

    model_config = ConfigDict(extra="allow")
    classes: list[str] = Field(min_length=2)
    calibration: str
    calibrator: dict
    threshold: dict | None = None


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
    k-fold) refits ``estimator`` on every row.

    Parameters
    ----------
    estimator : classifier
        Any agilecls classifier (``AgileClassifier``, ``EncoderClassifier``, ``EnsembleClassifier``).
    method : {"auto", "none", "temperature", "sigmoid", "isotonic"}, default="auto"
        "sigmoid" (Platt) and "isotonic" need two classes.
    cv : int or float, default=5
        k >= 2: k-fold cross-fitting, then a refit on all rows (k + 1 fits). A float in (0, 1): one
        stratified hold-out of that share; the model fitted on the rest is kept (1 fit, for costly
        models, at the price of training on fewer rows).
    threshold : {"f1", "precision:<t>", "recall:<t>"}, float or None, default=None
        Binary only: how to choose the decision threshold on the positive class's calibrated
        probability (None: the most probable class).
    pos_label : str or None, default=None
        The positive class of the threshold (default: the second class).
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
        "threshold": [StrOptions({"f1"}), str, Interval(Real, 0, 1, closed="neither"), None],
        "pos_label": [str, None],
        "random_state": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, estimator, method: str = "auto", cv: int | float = 5, threshold=None,
                 pos_label: str | None = None, random_state: int = 0):
        self.estimator = estimator
        self.method = method
        self.cv = cv
        self.threshold = threshold
        self.pos_label = pos_label
        self.random_state = random_state

    def fit(self, X, y, **fit_params):
        """Cross-fit, calibrate, choose the threshold and (k-fold) refit; ``fit_params`` go to every
        fit of ``estimator``."""
        self._validate_params()
        if getattr(self.estimator, "multilabel", False):
            raise ValueError("CalibratedClassifier calibrates single-label classifiers; a multi-label one gives "
                             "each label its own probability already")
        texts, y_list, labels = check_xy(X, y, getattr(self.estimator, "labels", None), fitting=True)
        rule, positive = check_threshold_setting(self.threshold, self.pos_label, labels)
        self.classes_ = np.array(labels, dtype=object)
        fold = out_of_fold(self.estimator, texts, y_list, labels, self.cv, self.random_state, fit_params)
        y_idx = np.array([labels.index(v) for v in np.asarray(y_list, dtype=object)[fold.rows]])
        self.calibrator_, self.calibration_scores_ = choose_calibrator(fold.proba, y_idx, self.method,
                                                                       self.random_state)
        self.oof_proba_ = self.calibrator_.transform(fold.proba)
        self.oof_rows_ = fold.rows
        self.threshold_ = None
        if rule is not None:
            p_pos = self.oof_proba_[:, labels.index(positive)]
            self.threshold_ = fit_threshold(p_pos, y_idx == labels.index(positive), rule, positive)
        if fold.fitted is not None:
            self.estimator_ = fold.fitted
        else:
            self.estimator_ = clone(self.estimator)
            if "labels" in self.estimator_.get_params(deep=False):
                self.estimator_.set_params(labels=labels)
            self.estimator_.fit(texts, y_list, **fit_params)
        return self

    def details(self, X) -> dict[str, np.ndarray]:
        """``proba`` (calibrated), ``ood_score`` (the base's, else 1 - max probability) and ``pred``
        (by the threshold when there is one) from one pass over ``X``."""
        check_is_fitted(self, "estimator_")
        raw, ood = outputs(self.estimator_, check_texts(X), self.classes_)
        proba = self.calibrator_.transform(raw)
        pred = (self.threshold_.decide(proba, self.classes_) if self.threshold_ is not None
                else self.classes_[proba.argmax(axis=1)])
        return {"proba": proba, "ood_score": 1.0 - proba.max(axis=1) if ood is None else np.asarray(ood),
                "pred": pred}

    def predict_proba(self, X) -> np.ndarray:
        return self.details(X)["proba"]

    def predict(self, X) -> np.ndarray:
        return self.details(X)["pred"]

    def ood_score(self, X) -> np.ndarray:
        return self.details(X)["ood_score"]

    def describe(self) -> str:
        base = self.estimator_ if hasattr(self, "estimator_") else self.estimator
        how = getattr(getattr(self, "calibrator_", None), "name", self.method)
        text = f"{base.describe()}, calibrated ({how}, cv={self.cv})"
        if getattr(self, "threshold_", None) is not None:
            text += f", threshold {self.threshold_.threshold:.3f} ({self.threshold_.rule})"
        return text

    # ---- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the base classifier into ``path/base/`` and the calibration map and threshold into
        ``agilecls.json``, atomically."""
        check_is_fitted(self, "estimator_")
        return save_estimator(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None, **base_kwargs) -> "CalibratedClassifier":
        return load_as(cls, path, device=device, **base_kwargs)

    def _save_state(self, folder: Path) -> dict:
        self.estimator_.save(folder / "base")
        params = {k: v for k, v in self.get_params(deep=False).items() if k != "estimator"}
        return {"params": params, "classes": [str(c) for c in self.classes_], "calibration": self.calibrator_.name,
                "calibrator": self.calibrator_.state(), "calibration_scores": self.calibration_scores_,
                "threshold": None if self.threshold_ is None else self.threshold_.to_dict()}

    @classmethod
    def _from_state(cls, folder: Path, manifest: dict, device: str | None = None,
                    **base_kwargs) -> "CalibratedClassifier":
        checked = validate_manifest(CalibratedManifest, manifest, folder)
        base = load_classifier(folder / "base", **({} if device is None else {"device": device}), **base_kwargs)
        obj = cls(base, **{k: v for k, v in manifest.get("params", {}).items() if k != "estimator"})
        obj.estimator_ = base
        obj.classes_ = np.array(checked.classes, dtype=object)
        obj.calibrator_ = make_calibrator(checked.calibration, checked.calibrator)
        obj.calibration_scores_ = manifest.get("calibration_scores", {})
        obj.threshold_ = None if checked.threshold is None else DecisionThreshold.from_dict(checked.threshold)
        return obj
