"""Drift checks: a classifier's reference profile, and a rolling window of live predictions compared
with it.

A :class:`ReferenceProfile` is what the classifier predicted on texts it was meant for: the share of
each predicted label and the distribution of its out-of-scope score (as the shares of ten quantile
bins). A :class:`DriftMonitor` keeps the last ``window`` predictions of live traffic and compares them
with the profile by two tests:

- the **label shares**, by a two-sample chi-square test of the reference's counts against the
  window's (``scipy.stats.chi2_contingency``; rare labels pooled) together with the total variation
  distance between the two share vectors beyond the distance chance alone gives, so that neither a
  large window nor many labels calls a negligible change drift;
- the **out-of-scope score**, by the population stability index (PSI) over the reference's quantile
  bins: 0.1-0.25 is commonly read as a moderate shift and above 0.25 as a large one.

The state is ``drifting`` when either test says so, ``ok`` otherwise, and ``warming up`` until the
window holds ``min_texts`` predictions. The profile is saved as JSON beside the classifier
(``reference_profile.json``).
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import chi2_contingency

from ..atomic import atomic_write_text
from ..validation import decision_labels

PROFILE_FILE = "reference_profile.json"
#: Quantile bins of the out-of-scope score.
SCORE_BINS = 10
#: Added to every bin share so that an empty bin gives a finite PSI.
PSI_FLOOR = 1e-4


@dataclass
class ReferenceProfile:
    """What a classifier predicts on the texts it was built for.

    Attributes
    ----------
    labels : list of str
        Every predicted label seen (the classes, and the out-of-scope label where the classifier has one).
    shares : list of float
        Share of the texts given each label, in the order of ``labels``.
    score_edges : list of float or None
        Interior edges of the out-of-scope score's quantile bins (None: the classifier has no score).
    score_shares : list of float or None
        Share of the texts in each bin (``len(score_edges) + 1`` values).
    texts : int
        How many texts the profile was measured on.
    source : str
        Which texts those were, in words.
    """

    labels: list[str]
    shares: list[float]
    score_edges: list[float] | None = None
    score_shares: list[float] | None = None
    texts: int = 0
    source: str = ""

    @classmethod
    def from_predictions(cls, labels, scores=None, *, source: str = "") -> ReferenceProfile:
        """The profile of predicted ``labels`` (strings) and out-of-scope ``scores`` (or None)."""
        labels = [str(x) for x in labels]
        if not labels:
            raise ValueError("a reference profile needs at least one prediction")
        names, counts = np.unique(np.array(labels, dtype=object), return_counts=True)
        profile = cls(labels=[str(n) for n in names], shares=(counts / counts.sum()).tolist(), texts=len(labels),
                      source=source)
        finite = None if scores is None else np.asarray(scores, dtype=float)
        if finite is not None:
            finite = finite[np.isfinite(finite)]
        if finite is not None and len(finite) >= SCORE_BINS:
            edges = np.unique(np.quantile(finite, np.linspace(0, 1, SCORE_BINS + 1)[1:-1]))
            profile.score_edges = edges.tolist()
            profile.score_shares = bin_shares(finite, edges).tolist()
        return profile

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ReferenceProfile:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def save(self, folder) -> Path:
        """Write the profile into a classifier's folder (atomically)."""
        path = Path(folder) / PROFILE_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, folder) -> ReferenceProfile | None:
        """The profile saved in ``folder``, or None when it has none."""
        path = Path(folder) / PROFILE_FILE
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


def bin_shares(scores: np.ndarray, edges) -> np.ndarray:
    """Share of ``scores`` in each bin cut by the interior ``edges``."""
    counts = np.bincount(np.searchsorted(np.asarray(edges), scores, side="right"), minlength=len(edges) + 1)
    return counts / max(counts.sum(), 1)


def population_stability(expected, actual) -> float:
    """PSI = sum over bins of (actual - expected) * ln(actual / expected), shares floored at 1e-4."""
    e = np.asarray(expected, dtype=float) + PSI_FLOOR
    a = np.asarray(actual, dtype=float) + PSI_FLOOR
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def label_shift(reference: ReferenceProfile, labels: list[str]) -> tuple[float, float, float]:
    """(p-value, total variation distance, its chance level) of live ``labels`` against the reference.

    The p-value is a two-sample chi-square test (``scipy.stats.chi2_contingency``) of the reference's
    label counts against the window's, so the reference's own sampling noise counts too; labels whose
    expected count is under 5 in either sample are pooled into one bucket. The chance level is the
    total variation distance two samples of these sizes drawn from the reference shares show on
    average (normal approximation): with 150 labels and 500 texts it is about 0.2, so a distance
    is only called a shift by how far it exceeds that."""
    index = {name: i for i, name in enumerate(reference.labels)}
    live = np.zeros(len(reference.labels) + 1)
    for label in labels:
        live[index.get(label, len(reference.labels))] += 1
    ref = np.append(np.asarray(reference.shares, dtype=float) * reference.texts, 0.0)
    n, m = live.sum(), ref.sum()
    tvd = 0.5 * float(np.abs(live / n - ref / m).sum())
    shares = ref / m
    noise = 0.5 * float(np.sum(np.sqrt(2 / np.pi * shares * (1 - shares) * (1 / n + 1 / m))))
    pooled = (live + ref) / (n + m)
    small = (pooled * min(n, m)) < 5
    table = np.vstack([ref, live])
    if small.any():
        table = np.hstack([table[:, ~small], table[:, small].sum(axis=1, keepdims=True)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0, tvd, noise
    return float(chi2_contingency(table, correction=False).pvalue), tvd, noise


@dataclass
class DriftMonitor:
    """A rolling window of live predictions compared with a :class:`ReferenceProfile`.

    Parameters
    ----------
    profile : ReferenceProfile
        The classifier's reference profile.
    window : int, default=500
        Live predictions kept (the most recent).
    min_texts : int, default=200
        Predictions needed before the state is judged.
    alpha : float, default=0.001
        Chi-square p-value under which the label shares differ.
    max_label_shift : float, default=0.1
        Total variation distance of the label shares beyond its chance level (see
        :func:`label_shift`) that counts as drift (with ``alpha``).
    max_psi : float, default=0.25
        PSI of the out-of-scope score that counts as drift.
    """

    profile: ReferenceProfile
    window: int = 500
    min_texts: int = 200
    alpha: float = 0.001
    max_label_shift: float = 0.1
    max_psi: float = 0.25
    seen: int = 0
    _labels: deque = field(init=False, repr=False)
    _scores: deque = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self):
        if self.min_texts > self.window:
            raise ValueError(f"min_texts ({self.min_texts}) must not exceed window ({self.window})")
        self._labels, self._scores = deque(maxlen=self.window), deque(maxlen=self.window)

    def update(self, labels, scores=None) -> None:
        """Add live predictions: their labels and out-of-scope scores (None or NaN where there is none)."""
        labels = [str(x) for x in labels]
        scores = [math.nan] * len(labels) if scores is None else [math.nan if s is None else float(s) for s in scores]
        with self._lock:
            self._labels.extend(labels)
            self._scores.extend(scores)
            self.seen += len(labels)

    def status(self) -> dict:
        """``state`` (ok, drifting or warming up), the numbers behind it and the thresholds."""
        with self._lock:
            labels, scores = list(self._labels), np.array(self._scores, dtype=float)
        out = {"state": "warming up", "window_texts": len(labels), "texts_seen": self.seen,
               "label_p_value": None, "label_shift": None, "score_psi": None,
               "thresholds": {"alpha": self.alpha, "max_label_shift": self.max_label_shift, "max_psi": self.max_psi}}
        if len(labels) < self.min_texts:
            return out
        p_value, tvd, chance = label_shift(self.profile, labels)
        out.update(label_p_value=p_value, label_shift=round(tvd, 4), label_shift_by_chance=round(chance, 4))
        reasons = []
        if p_value < self.alpha and tvd - chance > self.max_label_shift:
            reasons.append(f"label shares moved by {tvd:.2f}, {tvd - chance:.2f} beyond chance (p={p_value:.1e})")
        scores = scores[np.isfinite(scores)]
        if self.profile.score_edges is not None and len(scores) >= self.min_texts:
            psi = population_stability(self.profile.score_shares, bin_shares(scores, self.profile.score_edges))
            out["score_psi"] = round(psi, 4)
            if psi > self.max_psi:
                reasons.append(f"out-of-scope score PSI {psi:.2f}")
        out["state"] = "drifting" if reasons else "ok"
        out["reasons"] = reasons
        return out


#: Texts a recorded profile is measured on at most (a seeded sample of larger inputs).
PROFILE_TEXTS = 1000


def record_profile(classifier, texts, folder, *, source: str, seed: int = 0) -> ReferenceProfile:
    """Measure a fitted classifier's :class:`ReferenceProfile` on ``texts`` (a seeded sample of at most
    1,000) and save it in its ``folder``. Multi-label predictions count as their labels joined by ``|``."""
    texts = list(texts)
    if len(texts) > PROFILE_TEXTS:
        keep = np.random.default_rng(seed).choice(len(texts), PROFILE_TEXTS, replace=False)
        texts = [texts[i] for i in sorted(keep)]
    details = classifier.details(texts)
    labels = decision_labels(details["pred"], [str(c) for c in classifier.classes_])
    profile = ReferenceProfile.from_predictions(labels, details.get("ood_score"), source=source)
    profile.save(folder)
    return profile

