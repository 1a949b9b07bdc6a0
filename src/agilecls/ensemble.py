"""EnsembleClassifier: soft voting or stacking over agilecls classifiers, e.g. a LoRA-tuned language
model and a sentence-encoder head.

The two see a text differently (next-token scores of a prompted LLM vs. a sentence embedding), so
their errors differ and the mean of their probabilities ranks texts better than either alone
(bench/quality/ethos_learning_curve.py reports each member and the ensemble). The mean is not calibrated,
though (ETHOS test ECE 0.10 for the demo's pair): ``combine="stack"`` learns a logistic regression
over the members' log-odds on out-of-fold predictions instead, which weighs the members and
calibrates their combination in one step. Members keep their own prompts, tokens and scores; only
their probabilities meet here. Saved as one folder holding each member's own saved folder, plus
``agilecls.json`` naming them and holding the stacker's coefficients and the decision threshold.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn.base import ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from ._compat import BaseComposition, Interval, StrOptions
from .calibration.crossfit import clone_with_labels, columns_in, out_of_fold, with_shared_lower_cache
from .calibration.stacking import Stacker
from .calibration.thresholds import DecisionThreshold, check_threshold_setting, fit_threshold
from .persistence import load_as, load_classifier, register_estimator, save_estimator, validate_manifest
from .validation import TextInputTags, check_multilabel_xy, check_texts, check_xy, is_multilabel


def soft_vote(probas: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """The weighted mean of the members' probabilities (rows sum to 1), as scikit-learn's soft voting."""
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in probas])
    w = np.ones(len(stacked)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(stacked),) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {len(stacked)} non-negative numbers with a positive sum, got {weights}")
    return np.tensordot(w / w.sum(), stacked, axes=1)


class MemberNeeded(ValueError):
    """Raised when an ensemble's decision is to be explained without naming a member: the members
    read different inputs, so their combined probability has no single gradient."""


class EnsembleManifest(BaseModel):
    """The EnsembleClassifier's part of ``agilecls.json``, checked on load."""

    model_config = ConfigDict(extra="allow")
    members: list[str] = Field(min_length=2)
    weights: list[float] | None = None
    classes: list[str] = Field(min_length=2)
    stacker: dict | None = None
    threshold: dict | None = None

    @model_validator(mode="after")
    def _consistent(self):
        if not all(name.isidentifier() for name in self.members) or len(set(self.members)) != len(self.members):
            raise ValueError(f"members must be distinct identifiers, got {self.members}")
        if self.weights is not None and len(self.weights) != len(self.members):
            raise ValueError(f"{len(self.weights)} weights for {len(self.members)} members")
        return self


@register_estimator("EnsembleClassifier")
class EnsembleClassifier(TextInputTags, ClassifierMixin, BaseComposition):
    """Soft-voting or stacked ensemble of agilecls classifiers (any estimator with ``fit`` /
    ``predict_proba`` / ``classes_`` / ``save``, loadable by :func:`agilecls.persistence.load_classifier`).

    Parameters
    ----------
    estimators : list of (str, estimator)
        ``(name, estimator)`` pairs, as in scikit-learn's ``VotingClassifier``; each is cloned and
        fitted on the same (X, y).
    weights : list of float or None, default=None
        One weight per member for soft voting (None: equal).
    labels : list of str or None, default=None
        The class order (default: sorted labels of ``y``); passed to members that take ``labels``.
    combine : {"vote", "stack"}, default="vote"
        "vote": the weighted mean of the members' probabilities. "stack": a logistic regression over
        the members' log-odds (log-probabilities for more than two classes), fitted on their
        out-of-fold probabilities (:class:`agilecls.calibration.stacking.Stacker`).
    cv : int or float, default=5
        How the out-of-fold probabilities for "stack" or ``threshold`` are made. k >= 2: k-fold
        cross-fitting of every member, then a refit on all rows (k + 1 fits per member). A float in
        (0, 1): one stratified hold-out of that share; the members fitted on the rest are kept
        (one fit each; for costly members such as a tuned language model).
    threshold : {"f1", "expected_f1", "precision:<t>", "recall:<t>"}, float or None, default=None
        Binary only: choose the decision threshold on the combined out-of-fold probabilities.
        With "stack", "expected_f1" (the cut whose F1 the stacker's calibrated probabilities
        expect) is steadier than "f1" (the best cut on those rows): on ETHOS validation rows it
        gave F1 +0.007 to +0.013 over "f1" (``python -m bench.defaults.threshold_rules``).
    pos_label : str or None, default=None
        The positive class of the threshold (default: the second class).
    random_state : int, default=0
        Seed of the cross-fitting splits.

    Examples
    --------
    >>> from agilecls import AgileClassifier, EnsembleClassifier
    >>> from agilecls.encoders.members import encoder_member
    >>> clf = EnsembleClassifier([("encoder", encoder_member("minilm")),
    ...                           ("llm", AgileClassifier(tuning="lora"))])  # doctest: +SKIP
    >>> clf.fit(texts, labels).predict_proba(["a new text"])  # doctest: +SKIP
    """

    _parameter_constraints = {
        "estimators": [list], "weights": ["array-like", None], "labels": ["array-like", None],
        "combine": [StrOptions({"vote", "stack"})],
        "cv": [Interval(Integral, 2, None, closed="left"), Interval(Real, 0, 1, closed="neither")],
        "threshold": [str, Interval(Real, 0, 1, closed="neither"), None], "pos_label": [str, None],
        "random_state": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, estimators: Sequence[tuple[str, object]], weights: Sequence[float] | None = None,
                 labels: Sequence[str] | None = None, combine: str = "vote", cv: int | float = 5,
                 threshold=None, pos_label: str | None = None, random_state: int = 0):
        self.estimators = estimators
        self.weights = weights
        self.labels = labels
        self.combine = combine
        self.cv = cv
        self.threshold = threshold
        self.pos_label = pos_label
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict:
        """Parameters, with each member's as ``<name>__<param>`` when ``deep`` (as VotingClassifier)."""
        return self._get_params("estimators", deep=deep)

    def set_params(self, **params) -> EnsembleClassifier:
        """Set parameters, a member's as ``<name>__<param>`` (e.g. ``llm__epochs=4``)."""
        self._set_params("estimators", **params)
        return self

    def _check_estimators(self) -> list[tuple[str, object]]:
        pairs = list(self.estimators or [])
        if len(pairs) < 2:
            raise ValueError("an ensemble needs at least two (name, estimator) pairs")
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names) or not all(isinstance(n, str) and n.isidentifier() for n in names):
            raise ValueError(f"member names must be distinct identifiers, got {names}")
        if self.weights is not None and len(self.weights) != len(pairs):
            raise ValueError(f"{len(self.weights)} weights for {len(pairs)} members")
        return pairs

    def fit(self, X, y, **fit_params_by_member):
        """Fit the members on (X, y); for "stack" or a threshold, first cross-fit them (see ``cv``).
        ``fit_params_by_member`` maps a member's name to keyword arguments of its ``fit`` (e.g.
        ``llm={"callback": fn}``)."""
        self._validate_params()
        pairs = self._check_estimators()
        multilabel = any(is_multilabel(estimator) for _, estimator in pairs)
        texts, y_list, labels = (check_multilabel_xy if multilabel else check_xy)(X, y, self.labels, fitting=True)
        unknown = sorted(set(fit_params_by_member) - {name for name, _ in pairs})
        if unknown:
            raise ValueError(f"fit parameters for unknown members {unknown}")
        if multilabel and (self.combine == "stack" or self.threshold is not None):
            raise ValueError("stacking and decision thresholds are for single-label ensembles; use combine='vote' "
                             "and threshold=None with multi-label members")
        rule, positive = check_threshold_setting(self.threshold, self.pos_label, labels)
        # a LoRA member's folds and final fit share one cache of its frozen lower layers
        fit_params_by_member = {name: with_shared_lower_cache(estimator, fit_params_by_member.get(name))
                                for name, estimator in pairs}
        self.classes_ = np.array(labels, dtype=object)
        self.stacker_, self.threshold_, kept = None, None, {}
        if self.combine == "stack" or rule is not None:
            kept = self._fit_on_out_of_fold(texts, y_list, labels, pairs, rule, positive, fit_params_by_member)
        self.estimators_ = []
        for name, estimator in pairs:
            member = kept.get(name)
            if member is None:
                member = clone_with_labels(estimator, labels)
                member.fit(texts, y_list, **fit_params_by_member.get(name, {}))
            self.estimators_.append((name, member))
        self._check_members()
        return self

    def _fit_on_out_of_fold(self, texts, y_list, labels, pairs, rule, positive, fit_params_by_member) -> dict:
        """Cross-fit every member, fit the stacker and the threshold on their out-of-fold
        probabilities; returns the members a hold-out split already fitted (kept as final)."""
        folds = {name: out_of_fold(estimator, texts, y_list, labels, self.cv, self.random_state,
                                   fit_params_by_member.get(name, {}), desc=f"cross-fitting {name}")
                 for name, estimator in pairs}
        rows = next(iter(folds.values())).rows
        probas = [fold.proba for fold in folds.values()]
        y_rows = [y_list[i] for i in rows]
        if self.combine == "stack":
            self.stacker_ = Stacker(labels).fit(probas, y_rows)
            combined = self.stacker_.out_of_fold(probas, y_rows, random_state=self.random_state)
        else:
            combined = soft_vote(probas, self.weights)
        if rule is not None:
            pos = labels.index(positive)
            truth = np.array(y_rows, dtype=object) == positive
            self.threshold_ = fit_threshold(combined[:, pos], truth, rule, positive)
        return {name: fold.fitted for name, fold in folds.items() if fold.fitted is not None}

    def _check_members(self) -> None:
        for name, member in self.estimators_:
            if sorted(map(str, member.classes_)) != sorted(map(str, self.classes_)):
                raise ValueError(f"member {name!r} has classes {list(member.classes_)}, the ensemble "
                                 f"{list(self.classes_)}; every member must know the same classes")

    @property
    def named_estimators_(self) -> dict:
        check_is_fitted(self, "estimators_")
        return dict(self.estimators_)

    def member_probas(self, X) -> dict[str, np.ndarray]:
        """Each member's probabilities, columns in the ensemble's ``classes_`` order."""
        check_is_fitted(self, "estimators_")
        texts = check_texts(X)
        order = [str(c) for c in self.classes_]
        out = {}
        for name, member in self.estimators_:
            out[name] = np.asarray(member.predict_proba(texts))[:, columns_in(member, order)]
        return out

    def combine_probas(self, probas: Sequence[np.ndarray]) -> np.ndarray:
        """The ensemble's probabilities from its members' (in ``estimators_`` order)."""
        if getattr(self, "stacker_", None) is not None:
            return self.stacker_.predict_proba(probas)
        return soft_vote(probas, self.weights)

    def predict_proba(self, X) -> np.ndarray:
        return self.combine_probas(list(self.member_probas(X).values()))

    def details(self, X) -> dict[str, np.ndarray]:
        """``proba`` (voted or stacked), ``ood_score`` (1 - max probability) and ``pred`` (by the
        threshold when there is one) from one pass over ``X``."""
        proba = self.predict_proba(X)
        if any(is_multilabel(member) for _, member in self.estimators_):  # 0/1 rows per label
            return {"proba": proba, "pred": (proba >= 0.5).astype(int)}
        threshold = getattr(self, "threshold_", None)
        pred = threshold.decide(proba, self.classes_) if threshold is not None else self.classes_[proba.argmax(axis=1)]
        return {"proba": proba, "ood_score": 1.0 - proba.max(axis=1), "pred": pred}

    def predict(self, X) -> np.ndarray:
        """The label with the highest combined probability (or over the threshold)."""
        return self.details(X)["pred"]

    def ood_score(self, X) -> np.ndarray:
        """1 - max probability of the ensemble (higher = less like any class)."""
        return self.details(X)["ood_score"]

    def decision_rule(self) -> DecisionThreshold | None:
        """How ``predict`` decides from ``predict_proba``: the fitted ``threshold_`` (two classes: a
        cut on the positive class's combined probability) or None (the most probable class;
        multi-label members: 0.5)."""
        check_is_fitted(self, "estimators_")
        return self.threshold_

    def salience_members(self, text: str, label: str | None = None, member: str | None = None) -> dict:
        """What :func:`agilecls.explain` attributes for ``text``: the member named ``member``'s score
        of ``label`` (None: the ensemble's decision). Raises :class:`MemberNeeded` without a member.

        Returns
        -------
        dict
            ``models`` (the member), ``label``, ``member`` (None: used up here) and ``info``
            (``member``, ``ensemble_label``, ``ensemble_probabilities``).
        """
        names = list(self.named_estimators_)
        if member is None or member not in names:
            raise MemberNeeded(f"explain one member of the ensemble: pass member= one of {names}"
                               + ("" if member is None else f" (not {member!r})"))
        details = self.details([text])
        if details["pred"].ndim > 1:
            raise ValueError("explain does not support multi-label classifiers yet; explain a single-label one")
        proba, decided = details["proba"][0], str(details["pred"][0])  # the decision may follow a threshold
        classes = [str(c) for c in self.classes_]
        label = decided if label is None else str(label)
        if label not in classes:
            raise ValueError(f"label {label!r} is not one of the classifier's classes {classes}")
        return {"models": [self.named_estimators_[member]], "label": label, "member": None,
                "info": {"member": member, "ensemble_label": decided,
                         "ensemble_probabilities": dict(zip(classes, map(float, proba), strict=True))}}

    def describe(self) -> str:
        """One line naming the members and how they are combined, for the CLI and reports."""
        members = self.estimators_ if hasattr(self, "estimators_") else list(self.estimators)
        text = " + ".join(member.describe() for _, member in members)
        text += ", stacked" if self.combine == "stack" else ", soft-voted"
        if getattr(self, "threshold_", None) is not None:
            text += f", threshold {self.threshold_.threshold:.3f} ({self.threshold_.rule})"
        return text

    # ---- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write each member into ``path/<name>/`` with its own ``save`` and ``agilecls.json`` naming
        them, atomically (the whole folder appears at once, or the old one stays)."""
        check_is_fitted(self, "estimators_")
        return save_estimator(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None,
             members: dict[str, dict] | None = None) -> EnsembleClassifier:
        """An ensemble written by :meth:`save`; each member is read by its own loader, with the
        keyword arguments ``members[name]`` (e.g. ``{"llm": {"model": "/models/smollm2"}}``)."""
        return load_as(cls, path, device=device, members=members)

    def write_state(self, folder: Path) -> dict:
        for name, member in self.estimators_:
            member.save(folder / name)
        return {"members": [name for name, _ in self.estimators_], "weights": self.weights,
                "classes": [str(c) for c in self.classes_], "combine": self.combine, "cv": self.cv,
                "stacker": None if self.stacker_ is None else self.stacker_.state(),
                "threshold": None if self.threshold_ is None else self.threshold_.to_dict()}

    @classmethod
    def read_state(cls, folder: Path, manifest: dict, device: str | None = None,
                    members: dict[str, dict] | None = None) -> EnsembleClassifier:
        checked = validate_manifest(EnsembleManifest, manifest, folder)
        unknown = sorted(set(members or {}) - set(manifest["members"]))
        if unknown:
            raise ValueError(f"{folder} has no members {unknown}; it holds {manifest['members']}")
        base = {} if device is None else {"device": device}
        loaded = [(name, load_classifier(folder / name, **{**base, **(members or {}).get(name, {})}))
                  for name in manifest["members"]]
        obj = cls(estimators=loaded, weights=manifest.get("weights"), labels=manifest["classes"],
                  combine=manifest.get("combine", "vote"), cv=manifest.get("cv", 5))
        obj.classes_ = np.array(manifest["classes"], dtype=object)
        obj.estimators_ = loaded
        obj.stacker_ = None if checked.stacker is None else Stacker.from_state(checked.stacker)
        obj.threshold_ = None if checked.threshold is None else DecisionThreshold.from_dict(checked.threshold)
        if obj.threshold_ is not None:
            rule = obj.threshold_.rule
            obj.threshold = obj.threshold_.threshold if rule == "fixed" else rule
            obj.pos_label = obj.threshold_.positive
        obj._check_members()
        return obj
