"""The stacker of an ensemble: a logistic regression over its members' log-probabilities.

As scikit-learn's ``StackingClassifier`` does with ``final_estimator=LogisticRegression()``, it is
fitted on out-of-fold predictions of the members, so it learns how much to trust each member (and
how sharp their combined vote should be) from rows they did not train on. Its coefficients are a
few numbers, saved in the ensemble's ``agilecls.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from ..validation import softmax
from .calibrators import EPS
from .crossfit import out_of_fold

#: The stacker's L2 strength (scikit-learn's default); its features are log-odds on one scale.
STACKER_C = 1.0


def member_features(probas: Sequence[np.ndarray]) -> np.ndarray:
    """The stacker's inputs: each member's log-odds of the second class (two classes) or its
    log-probabilities (more), side by side."""
    logs = [np.log(np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0)) for p in probas]
    if logs[0].shape[1] == 2:
        return np.column_stack([lp[:, 1] - lp[:, 0] for lp in logs])
    return np.hstack(logs)


class Stacker:
    """Logistic regression from member probabilities to class probabilities (columns in ``classes``)."""

    def __init__(self, classes: Sequence[str], coef=None, intercept=None, C: float = STACKER_C):
        self.classes = [str(c) for c in classes]
        self.coef = None if coef is None else np.asarray(coef, dtype=np.float64)
        self.intercept = None if intercept is None else np.asarray(intercept, dtype=np.float64)
        self.C = C

    def _regression(self) -> LogisticRegression:
        return LogisticRegression(C=self.C, max_iter=1000)

    def fit(self, probas: Sequence[np.ndarray], y: Sequence[str]) -> Stacker:
        lr = self._regression().fit(member_features(probas), [str(v) for v in y])
        order = [list(lr.classes_).index(c) for c in self.classes]
        if len(self.classes) == 2:  # one row of coefficients for lr.classes_[1]; express it for classes[1]
            sign = 1.0 if order[1] == 1 else -1.0
            self.coef, self.intercept = sign * lr.coef_[0], sign * lr.intercept_
        else:
            self.coef, self.intercept = lr.coef_[order], lr.intercept_[order]
        return self

    def predict_proba(self, probas: Sequence[np.ndarray]) -> np.ndarray:
        z = member_features(probas) @ self.coef.T + self.intercept
        if len(self.classes) == 2:
            p = 1.0 / (1.0 + np.exp(-z.reshape(-1)))
            return np.column_stack([1.0 - p, p])
        return softmax(z)

    def out_of_fold(self, probas: Sequence[np.ndarray], y: Sequence[str], cv: int = 5,
                    random_state: int = 0) -> np.ndarray:
        """The stacker's own cross-validated probabilities on these rows (to choose a threshold on)."""
        return out_of_fold(self._regression(), member_features(probas), y, self.classes, cv, random_state,
                           progress=False).proba

    def state(self) -> dict:
        return {"classes": self.classes, "coef": self.coef.tolist(), "intercept": self.intercept.tolist(),
                "C": self.C}

    @classmethod
    def from_state(cls, state: dict) -> Stacker:
        return cls(state["classes"], state["coef"], state["intercept"], state.get("C", STACKER_C))
