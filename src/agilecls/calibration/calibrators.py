"""Post-hoc calibration maps from a classifier's probabilities to calibrated ones, kept as JSON.

Temperature scaling (one parameter, any number of classes), Platt scaling (a logistic regression on
the positive class's log-odds) and isotonic regression (binary), the three of scikit-learn's
``CalibratedClassifierCV``. That class keeps its fitted maps in private objects that only a pickle
could save, so the maps are rebuilt here from the same scikit-learn parts (``LogisticRegression``,
``IsotonicRegression``) with states that fit in a JSON file. :func:`choose_calibrator` picks the map
with the lowest cross-validated log loss over out-of-fold probabilities, "none" included, so a
classifier that is already calibrated is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from ..registry import Registry
from ..uncertainty import fit_temperature
from ..validation import softmax

#: Probabilities are kept in [EPS, 1 - EPS] before a logarithm.
EPS = 1e-6
#: Calibration method name -> class, filled by :func:`register_calibrator`; metadata ``binary_only``.
CALIBRATORS: Registry[type] = Registry("calibration method", sort_names=True)


def register_calibrator(name: str, *, binary_only: bool) -> Callable[[type], type]:
    """Class decorator that adds a calibration map as method ``name`` (also set as ``cls.name``).

    Parameters
    ----------
    name : str
    binary_only : bool
        The map calibrates two classes only (it is never a candidate for more).
    """

    def wrap(cls: type) -> type:
        CALIBRATORS.add(name, cls, binary_only=binary_only)
        cls.name = name
        return cls

    return wrap


def _log(proba: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(proba, dtype=np.float64), EPS, 1.0))


def _binary(proba: np.ndarray, p_pos: np.ndarray) -> np.ndarray:
    p_pos = np.clip(p_pos, 0.0, 1.0)
    return np.column_stack([1.0 - p_pos, p_pos])


@register_calibrator("none", binary_only=False)
class Identity:
    """No change (chosen when no map lowers the out-of-fold log loss)."""

    def fit(self, proba: np.ndarray, y_idx: np.ndarray) -> Identity:
        return self

    def transform(self, proba: np.ndarray) -> np.ndarray:
        return np.asarray(proba, dtype=np.float64)

    def state(self) -> dict:
        return {}

    @classmethod
    def from_state(cls, state: dict) -> Identity:
        return cls()


@register_calibrator("temperature", binary_only=False)
class Temperature:
    """``softmax(log p / T)``: one temperature, fitted by LBFGS on the log loss; keeps the ranking."""

    def __init__(self, temperature: float = 1.0):
        self.temperature = temperature

    def fit(self, proba: np.ndarray, y_idx: np.ndarray) -> Temperature:
        self.temperature = fit_temperature(_log(proba), y_idx)
        return self

    def transform(self, proba: np.ndarray) -> np.ndarray:
        return softmax(_log(proba) / self.temperature)

    def state(self) -> dict:
        return {"temperature": float(self.temperature)}

    @classmethod
    def from_state(cls, state: dict) -> Temperature:
        return cls(float(state["temperature"]))


@register_calibrator("sigmoid", binary_only=True)
class Platt:
    """Platt scaling: ``sigmoid(a * logit(p) + b)`` on the positive class (binary only)."""

    def __init__(self, a: float = 1.0, b: float = 0.0):
        self.a, self.b = a, b

    @staticmethod
    def _logit(proba: np.ndarray) -> np.ndarray:
        logp = _log(proba)
        return (logp[:, 1] - logp[:, 0]).reshape(-1, 1)

    def fit(self, proba: np.ndarray, y_idx: np.ndarray) -> Platt:
        lr = LogisticRegression(C=1e4).fit(self._logit(proba), np.asarray(y_idx) == 1)
        self.a, self.b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        return self

    def transform(self, proba: np.ndarray) -> np.ndarray:
        return _binary(proba, 1.0 / (1.0 + np.exp(-(self.a * self._logit(proba)[:, 0] + self.b))))

    def state(self) -> dict:
        return {"a": self.a, "b": self.b}

    @classmethod
    def from_state(cls, state: dict) -> Platt:
        return cls(float(state["a"]), float(state["b"]))


@register_calibrator("isotonic", binary_only=True)
class Isotonic:
    """A non-decreasing step map of the positive class's probability (binary only); its knots are
    scikit-learn ``IsotonicRegression``'s, applied with the same linear interpolation."""

    def __init__(self, x: Sequence[float] = (0.0, 1.0), y: Sequence[float] = (0.0, 1.0)):
        self.x, self.y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def fit(self, proba: np.ndarray, y_idx: np.ndarray) -> Isotonic:
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(np.asarray(proba)[:, 1], (np.asarray(y_idx) == 1).astype(float))
        self.x, self.y = iso.X_thresholds_, iso.y_thresholds_
        return self

    def transform(self, proba: np.ndarray) -> np.ndarray:
        return _binary(proba, np.interp(np.asarray(proba, dtype=np.float64)[:, 1], self.x, self.y))

    def state(self) -> dict:
        return {"x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> Isotonic:
        return cls(state["x"], state["y"])


def candidates(n_classes: int) -> list[str]:
    """The methods that apply to ``n_classes`` classes, simplest first."""
    return CALIBRATORS.names() if n_classes == 2 else CALIBRATORS.names(binary_only=False)


def make_calibrator(name: str, state: dict | None = None):
    """A calibrator by name, fresh or restored from its saved ``state``."""
    if name not in CALIBRATORS:
        raise ValueError(f"unknown calibration method {name!r}; use one of {sorted(CALIBRATORS)} or 'auto'")
    cls = CALIBRATORS[name]
    return cls() if state is None else cls.from_state(state)


def cross_validated_log_loss(name: str, proba: np.ndarray, y_idx: np.ndarray, folds: int = 5,
                             random_state: int = 0) -> float:
    """Log loss of method ``name`` fitted on k-1 folds of (``proba``, ``y_idx``), scored on the k-th."""
    n_classes = proba.shape[1]
    k = int(min(folds, np.bincount(y_idx, minlength=n_classes).min()))
    if k < 2:
        return float(log_loss(y_idx, np.clip(make_calibrator(name).fit(proba, y_idx).transform(proba), EPS, 1),
                              labels=range(n_classes)))
    out = np.zeros_like(proba, dtype=np.float64)
    for train, test in StratifiedKFold(k, shuffle=True, random_state=random_state).split(proba, y_idx):
        out[test] = make_calibrator(name).fit(proba[train], y_idx[train]).transform(proba[test])
    out = np.clip(out, 1e-12, 1.0)
    return float(log_loss(y_idx, out / out.sum(axis=1, keepdims=True), labels=range(n_classes)))


def choose_calibrator(proba: np.ndarray, y_idx: np.ndarray, method: str = "auto", random_state: int = 0):
    """(calibrator fitted on all rows, {method: cross-validated log loss}).

    ``method="auto"`` tries every method that applies ("none" and temperature; Platt and isotonic
    too for two classes) and keeps the one with the lowest log loss, the simplest on a tie.
    """
    proba, y_idx = np.asarray(proba, dtype=np.float64), np.asarray(y_idx)
    names = candidates(proba.shape[1])
    if method != "auto":
        make_calibrator(method)
        if method not in names:
            raise ValueError(f"calibration method {method!r} needs two classes; use 'temperature' or 'auto'")
        names = [method]
    scores = {name: cross_validated_log_loss(name, proba, y_idx, random_state=random_state) for name in names}
    best = min(names, key=lambda name: (round(scores[name], 6), names.index(name)))
    return make_calibrator(best).fit(proba, y_idx), scores
