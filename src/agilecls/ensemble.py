"""EnsembleClassifier: soft voting over agilecls classifiers, e.g. a LoRA-tuned language model and a
sentence-encoder head.

The two see a text differently (next-token scores of a prompted LLM vs. a sentence embedding), so
their errors differ and the mean of their probabilities ranks texts better than either alone
(bench/ethos_learning_curve.py reports each member and the ensemble). Members keep their own
prompts, tokens and scores; only their probabilities meet here. Saved as one folder holding each
member's own saved folder, plus ``agilecls.json`` naming them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn.base import ClassifierMixin, clone
from sklearn.utils.metaestimators import _BaseComposition
from sklearn.utils.validation import check_is_fitted

from .persistence import load_as, load_classifier, register_estimator, save_estimator, validate_manifest
from .validation import TextInputTags, check_multilabel_xy, check_texts, check_xy


def soft_vote(probas: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """The weighted mean of the members' probabilities (rows sum to 1), as scikit-learn's soft voting."""
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in probas])
    w = np.ones(len(stacked)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(stacked),) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {len(stacked)} non-negative numbers with a positive sum, got {weights}")
    return np.tensordot(w / w.sum(), stacked, axes=1)


class EnsembleManifest(BaseModel):
    """The EnsembleClassifier's part of ``agilecls.json``, checked on load."""

    model_config = ConfigDict(extra="allow")
    members: list[str] = Field(min_length=2)
    weights: list[float] | None = None
    classes: list[str] = Field(min_length=2)

    @model_validator(mode="after")
    def _consistent(self):
        if not all(name.isidentifier() for name in self.members) or len(set(self.members)) != len(self.members):
            raise ValueError(f"members must be distinct identifiers, got {self.members}")
        if self.weights is not None and len(self.weights) != len(self.members):
            raise ValueError(f"{len(self.weights)} weights for {len(self.members)} members")
        return self


@register_estimator("EnsembleClassifier")
class EnsembleClassifier(TextInputTags, ClassifierMixin, _BaseComposition):
    """Soft-voting ensemble of agilecls classifiers (any estimator with ``fit`` / ``predict_proba`` /
    ``classes_`` / ``save``, loadable by :func:`agilecls.persistence.load_classifier`).

    Parameters
    ----------
    estimators : list of (str, estimator)
        ``(name, estimator)`` pairs, as in scikit-learn's ``VotingClassifier``; each is cloned and
        fitted on the same (X, y).
    weights : list of float or None, default=None
        One weight per member (None: equal).
    labels : list of str or None, default=None
        The class order (default: sorted labels of ``y``); passed to members that take ``labels``.

    Examples
    --------
    >>> from agilecls import AgileClassifier, EnsembleClassifier
    >>> from agilecls.encoders.members import encoder_member
    >>> clf = EnsembleClassifier([("encoder", encoder_member("minilm")),
    ...                           ("llm", AgileClassifier(tuning="lora"))])  # doctest: +SKIP
    >>> clf.fit(texts, labels).predict_proba(["a new text"])  # doctest: +SKIP
    """

    _parameter_constraints = {"estimators": [list], "weights": ["array-like", None], "labels": ["array-like", None]}

    def __init__(self, estimators: Sequence[tuple[str, object]], weights: Sequence[float] | None = None,
                 labels: Sequence[str] | None = None):
        self.estimators = estimators
        self.weights = weights
        self.labels = labels

    def get_params(self, deep: bool = True) -> dict:
        """Parameters, with each member's as ``<name>__<param>`` when ``deep`` (as VotingClassifier)."""
        return self._get_params("estimators", deep=deep)

    def set_params(self, **params) -> "EnsembleClassifier":
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
        """Fit a clone of every member on (X, y). ``fit_params_by_member`` maps a member's name to
        keyword arguments of its ``fit`` (e.g. ``llm={"callback": fn}``)."""
        self._validate_params()
        pairs = self._check_estimators()
        multilabel = any(getattr(estimator, "multilabel", False) for _, estimator in pairs)
        texts, y_list, labels = (check_multilabel_xy if multilabel else check_xy)(X, y, self.labels, fitting=True)
        unknown = sorted(set(fit_params_by_member) - {name for name, _ in pairs})
        if unknown:
            raise ValueError(f"fit parameters for unknown members {unknown}")
        self.classes_ = np.array(labels, dtype=object)
        self.estimators_ = []
        for name, estimator in pairs:
            member = clone(estimator)
            if "labels" in member.get_params():
                member.set_params(labels=labels)
            member.fit(texts, y_list, **fit_params_by_member.get(name, {}))
            self.estimators_.append((name, member))
        self._check_members()
        return self

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
            columns = [list(map(str, member.classes_)).index(c) for c in order]
            out[name] = np.asarray(member.predict_proba(texts))[:, columns]
        return out

    def predict_proba(self, X) -> np.ndarray:
        return soft_vote(list(self.member_probas(X).values()), self.weights)

    def details(self, X) -> dict[str, np.ndarray]:
        """``proba`` (soft vote), ``ood_score`` (1 - max probability) and ``pred`` from one pass over ``X``."""
        proba = self.predict_proba(X)
        if any(getattr(member, "multilabel", False) for _, member in self.estimators_):  # 0/1 rows per label
            return {"proba": proba, "pred": (proba >= 0.5).astype(int)}
        return {"proba": proba, "ood_score": 1.0 - proba.max(axis=1), "pred": self.classes_[proba.argmax(axis=1)]}

    def predict(self, X) -> np.ndarray:
        """The label with the highest voted probability."""
        return self.details(X)["pred"]

    def ood_score(self, X) -> np.ndarray:
        """1 - max probability of the ensemble (higher = less like any class)."""
        return self.details(X)["ood_score"]

    def describe(self) -> str:
        """One line naming the members, for the CLI and reports."""
        members = self.estimators_ if hasattr(self, "estimators_") else list(self.estimators)
        return " + ".join(member.describe() for _, member in members)

    # ---- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write each member into ``path/<name>/`` with its own ``save`` and ``agilecls.json`` naming
        them, atomically (the whole folder appears at once, or the old one stays)."""
        check_is_fitted(self, "estimators_")
        return save_estimator(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None,
             members: dict[str, dict] | None = None) -> "EnsembleClassifier":
        """An ensemble written by :meth:`save`; each member is read by its own loader, with the
        keyword arguments ``members[name]`` (e.g. ``{"llm": {"model": "/models/smollm2"}}``)."""
        return load_as(cls, path, device=device, members=members)

    def _save_state(self, folder: Path) -> dict:
        for name, member in self.estimators_:
            member.save(folder / name)
        return {"members": [name for name, _ in self.estimators_], "weights": self.weights,
                "classes": [str(c) for c in self.classes_]}

    @classmethod
    def _from_state(cls, folder: Path, manifest: dict, device: str | None = None,
                    members: dict[str, dict] | None = None) -> "EnsembleClassifier":
        validate_manifest(EnsembleManifest, manifest, folder)
        unknown = sorted(set(members or {}) - set(manifest["members"]))
        if unknown:
            raise ValueError(f"{folder} has no members {unknown}; it holds {manifest['members']}")
        base = {} if device is None else {"device": device}
        loaded = [(name, load_classifier(folder / name, **{**base, **(members or {}).get(name, {})}))
                  for name in manifest["members"]]
        obj = cls(estimators=loaded, weights=manifest.get("weights"), labels=manifest["classes"])
        obj.classes_ = np.array(manifest["classes"], dtype=object)
        obj.estimators_ = loaded
        obj._check_members()
        return obj
