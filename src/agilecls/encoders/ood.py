"""Out-of-scope scorers of the encoder family: one object per method, each owning its reference
statistics, so a fitted classifier can re-score, or refit the statistics, without training again.

- :class:`MahalanobisScorer`: class means and one shared covariance of the embeddings; the squared
  distance to the nearest class mean is the score (and ``-d^2 / 2`` the logits of a Mahalanobis head).
- :class:`LabelScoreOOD`: ``max_prob``, ``entropy`` or ``energy`` of the (temperature-scaled) logits.
- :class:`MahalanobisOOD`: the distance above, on the classifier's class statistics.
- :class:`CombinedOOD`: max-prob and Mahalanobis, each standardised on in-scope reference scores.

:func:`make_ood_scorer` builds one by name. Every scorer has ``score(emb, logits)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.covariance import EmpiricalCovariance, LedoitWolf, ShrunkCovariance
from sklearn.exceptions import NotFittedError

from ..uncertainty import OOD_METHODS, label_ood_scores

#: Names accepted by :func:`make_ood_scorer`.
OOD_SCORERS = OOD_METHODS + ("mahalanobis", "max_prob+mahalanobis")


class MahalanobisScorer:
    """Class means and one shared covariance; ``score`` = squared distance to the nearest class mean.

    ``shrinkage`` pulls the covariance toward a multiple of the identity: ``"auto"`` (Ledoit-Wolf),
    a number in [0, 1] (sklearn's ShrunkCovariance; 1 = Euclidean distance) or None (empirical).
    Whitening every direction amplifies low-variance directions that carry noise, so strong
    shrinkage often separates out-of-scope texts better; choose it on held-out data."""

    def __init__(self, shrinkage: float | str | None = "auto"):
        if not (shrinkage is None or shrinkage == "auto"
                or (isinstance(shrinkage, (int, float)) and 0 <= shrinkage <= 1)):
            raise ValueError(f"shrinkage must be 'auto', None or a number in [0, 1], got {shrinkage!r}")
        self.shrinkage = shrinkage
        self.means_: np.ndarray | None = None
        self.precision_: np.ndarray | None = None

    def fit(self, emb: np.ndarray, y_idx: np.ndarray, num_classes: int | None = None) -> MahalanobisScorer:
        emb = np.asarray(emb, dtype=np.float64)
        y_idx = np.asarray(y_idx)
        k = int(num_classes or y_idx.max() + 1)
        self.means_ = np.stack([emb[y_idx == c].mean(axis=0) if (y_idx == c).any() else np.zeros(emb.shape[1])
                                for c in range(k)])
        centered = emb - self.means_[y_idx]
        if self.shrinkage is None:
            est = EmpiricalCovariance(assume_centered=True)
        elif self.shrinkage == "auto":
            est = LedoitWolf(assume_centered=True)
        else:
            est = ShrunkCovariance(shrinkage=float(self.shrinkage), assume_centered=True)
        self.precision_ = est.fit(centered).precision_
        return self

    def distances(self, emb: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each row to each class mean, [n, classes]."""
        if self.means_ is None:
            raise NotFittedError("MahalanobisScorer is not fitted; call fit(emb, y_idx) first")
        emb = np.asarray(emb, dtype=np.float64)
        xp = emb @ self.precision_
        mp = self.means_ @ self.precision_
        d = (xp * emb).sum(1)[:, None] - 2 * xp @ self.means_.T + (mp * self.means_).sum(1)[None, :]
        return np.maximum(d, 0.0)

    def score(self, emb: np.ndarray) -> np.ndarray:
        return self.distances(emb).min(axis=1)

    def logits(self, emb: np.ndarray) -> np.ndarray:
        """Gaussian-discriminant logits ``-d^2 / 2`` (equal priors)."""
        return -0.5 * self.distances(emb)

    def state(self) -> dict[str, np.ndarray]:
        return {"means": self.means_, "precision": self.precision_}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], shrinkage: float | str | None = "auto") -> MahalanobisScorer:
        obj = cls(shrinkage)
        obj.means_ = np.asarray(state["means"], dtype=np.float64)
        obj.precision_ = np.asarray(state["precision"], dtype=np.float64)
        return obj


@dataclass
class LabelScoreOOD:
    """Scores from the logits alone (see :func:`agilecls.uncertainty.label_ood_scores`)."""

    method: str = "max_prob"

    def score(self, emb: np.ndarray, logits: np.ndarray) -> np.ndarray:
        return label_ood_scores(logits, self.method)


@dataclass
class MahalanobisOOD:
    """Squared Mahalanobis distance to the nearest class mean of ``statistics``."""

    statistics: MahalanobisScorer

    def score(self, emb: np.ndarray, logits: np.ndarray) -> np.ndarray:
        return self.statistics.score(emb)


@dataclass
class CombinedOOD:
    """Mean of the max-prob and Mahalanobis scores' robust z-scores (log scale, median / IQR of
    in-scope reference scores set by :meth:`fit_reference`): neither score's units dominate, and
    the order within each is kept. Without a reference the logs are averaged as they are."""

    statistics: MahalanobisScorer
    reference: dict | None = None

    def _parts(self, emb, logits) -> dict[str, np.ndarray]:
        raw = {"max_prob": label_ood_scores(logits, "max_prob"), "mahalanobis": self.statistics.score(emb)}
        return {name: np.log(np.maximum(s, 1e-12)) for name, s in raw.items()}

    def fit_reference(self, emb: np.ndarray, logits: np.ndarray) -> CombinedOOD:
        """Median and IQR of each score's log on in-scope rows (training, then validation rows)."""
        self.reference = {}
        for name, z in self._parts(emb, logits).items():
            q1, med, q3 = np.quantile(z, [0.25, 0.5, 0.75])
            self.reference[name] = (float(med), float(max(q3 - q1, 1e-6)))
        return self

    def score(self, emb: np.ndarray, logits: np.ndarray) -> np.ndarray:
        parts = self._parts(emb, logits)
        if self.reference is not None:
            parts = {name: (z - self.reference[name][0]) / self.reference[name][1] for name, z in parts.items()}
        return (parts["max_prob"] + parts["mahalanobis"]) / 2


def make_ood_scorer(method: str, statistics: MahalanobisScorer | None = None):
    """The scorer called ``method`` (one of :data:`OOD_SCORERS`); the Mahalanobis ones need the
    class ``statistics``."""
    if method in OOD_METHODS:
        return LabelScoreOOD(method)
    if method not in OOD_SCORERS:
        raise ValueError(f"unknown out-of-scope method {method!r}; use one of {OOD_SCORERS}")
    if statistics is None:
        raise ValueError(f"ood_method={method!r} needs Mahalanobis statistics fitted on training embeddings")
    return MahalanobisOOD(statistics) if method == "mahalanobis" else CombinedOOD(statistics)
