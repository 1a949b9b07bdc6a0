"""Query strategies: which unlabelled texts to label next.

A strategy is a small function in a registry (``@register_strategy(name, needs_model=...)``), given the pool's
:class:`PoolScores` and returning the chosen indices. Breaking ties is small-text's
(``small_text.query_strategies.BreakingTies``), entropy scipy's; the rest are written here once:

- ``random``: the baseline every other strategy must beat.
- ``breaking_ties`` (margin): the smallest gap between the two most probable classes.
- ``entropy``: the largest prediction entropy.
- ``ood_uncertainty``: ambiguity between classes (1 − margin) and distance from everything
  labelled so far (the fast model's Mahalanobis score), rank-averaged: a text unlike any labelled
  one is uncertain even when the head is confidently wrong about it.
- ``diverse_margin``: the 5·k most ambiguous texts, clustered into k groups with k-means, the
  text nearest each centre taken: uncertain, but not k near-copies of one confusing text.
- ``kmeans``: k-means over the embeddings of the whole pool, the text nearest each centre: the
  cold-start batch, which covers the data before any model exists.
- ``production``: the texts a server appended to the pool first (``agilecls serve --project DIR
  --sample RATE``), in ``ood_uncertainty``'s order, then the rest in that order: what the deployed
  model now sees and is least sure of.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import entropy as row_entropy
from scipy.stats import rankdata
from sklearn.cluster import KMeans

from ..registry import Registry

#: Strategy name -> ``fn(pool, candidates, k, seed) -> indices``; metadata ``needs_model``: the
#: strategy reads a fitted model's probabilities (else the cold-start ``kmeans`` is used).
STRATEGIES: Registry[Callable] = Registry("strategy", sort_names=True)


@dataclass
class PoolScores:
    """What a strategy may look at, all rows of the pool in one order.

    Attributes
    ----------
    embeddings : ndarray of shape (n, d)
    candidates : ndarray of int
        Rows that may be chosen (unlabelled, not skipped, not held by another annotator).
    proba : ndarray of shape (n, classes) or None
        The fast model's probabilities (None before it can be fitted).
    ood : ndarray of shape (n,) or None
        Its out-of-scope score (higher = further from the labelled data).
    served : ndarray of bool, shape (n,), or None
        Rows a server appended to the pool (the ``production`` strategy puts them first).
    """

    embeddings: np.ndarray
    candidates: np.ndarray
    proba: np.ndarray | None = None
    ood: np.ndarray | None = None
    served: np.ndarray | None = None


def register_strategy(name: str, *, needs_model: bool):
    """Decorator that adds ``fn(pool, candidates, k, seed) -> indices`` as strategy ``name``.

    Parameters
    ----------
    name : str
    needs_model : bool
        The strategy reads ``pool.proba``; while no model exists, :func:`select` uses ``kmeans``.
    """
    return STRATEGIES.register(name, needs_model=needs_model)


def select(strategy: str, pool: PoolScores, k: int, seed: int = 0) -> np.ndarray:
    """Up to ``k`` row indices chosen by ``strategy`` (the most useful first where it ranks).

    A model-based strategy falls back to ``kmeans`` while ``pool.proba`` is None.

    Examples
    --------
    >>> emb = np.eye(4, dtype=np.float32)
    >>> select("kmeans", PoolScores(emb, np.arange(4)), 2).shape
    (2,)
    """
    STRATEGIES.check(strategy)
    candidates = np.asarray(pool.candidates, dtype=int)
    if k <= 0 or not len(candidates):
        return np.zeros(0, dtype=int)
    if len(candidates) <= k:
        return candidates
    if STRATEGIES.meta(strategy)["needs_model"] and pool.proba is None:
        strategy = "kmeans"
    return np.asarray(STRATEGIES[strategy](pool, candidates, k, seed), dtype=int)


class _Precomputed:
    """small-text asks a classifier for ``predict_proba(dataset)``; the pool's are already known."""

    def __init__(self, proba: np.ndarray):
        self.proba = proba

    def predict_proba(self, _dataset) -> np.ndarray:
        return self.proba


def _small_text(strategy_class, pool: PoolScores, candidates: np.ndarray, k: int) -> np.ndarray:
    strategy = strategy_class()
    confidence = strategy.score(_Precomputed(pool.proba), None, candidates, np.zeros(0, int), np.zeros(0, int))
    return candidates[np.argsort(confidence[candidates], kind="stable")[:k]]


@register_strategy("random", needs_model=False)
def random_sampling(pool, candidates, k, seed):
    return np.random.default_rng(seed).choice(candidates, size=k, replace=False)


@register_strategy("breaking_ties", needs_model=True)
def breaking_ties(pool, candidates, k, seed):
    from small_text.query_strategies import BreakingTies

    return _small_text(BreakingTies, pool, candidates, k)


@register_strategy("entropy", needs_model=True)
def entropy(pool, candidates, k, seed):
    # small-text's PredictionEntropy computes it row by row: 4.3 s on a 10,000-text pool, against
    # 0.4 s for every other strategy (bench/quality/active_learning.py); scipy does all rows at once.
    return candidates[np.argsort(-row_entropy(pool.proba[candidates], axis=1), kind="stable")[:k]]


def margin(proba: np.ndarray) -> np.ndarray:
    top = np.sort(proba, axis=1)
    return top[:, -1] - top[:, -2]


@register_strategy("ood_uncertainty", needs_model=True)
def ood_uncertainty(pool, candidates, k, seed):
    ambiguity = rankdata(-margin(pool.proba[candidates]))
    score = ambiguity if pool.ood is None else (ambiguity + rankdata(pool.ood[candidates])) / 2
    return candidates[np.argsort(-score, kind="stable")[:k]]


def nearest_to_centres(embeddings: np.ndarray, rows: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means of ``embeddings[rows]`` into k groups; the row nearest each centre."""
    points = embeddings[rows]
    km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(points)
    distances = km.transform(points)  # [rows, k]
    chosen: list[int] = []
    for centre in np.argsort(np.bincount(km.labels_, minlength=k))[::-1]:  # biggest groups first
        for row in np.argsort(distances[:, centre]):
            if rows[row] not in chosen:
                chosen.append(int(rows[row]))
                break
    return np.array(chosen[:k])


@register_strategy("kmeans", needs_model=False)
def kmeans(pool, candidates, k, seed):
    rows = candidates
    if len(rows) > 20_000:  # k-means on a seeded sample keeps a step within seconds on 2 cores
        rows = np.random.default_rng(seed).choice(rows, size=20_000, replace=False)
    return nearest_to_centres(pool.embeddings, rows, k, seed)


@register_strategy("diverse_margin", needs_model=True)
def diverse_margin(pool, candidates, k, seed):
    ambiguous = candidates[np.argsort(margin(pool.proba[candidates]), kind="stable")[: 5 * k]]
    return nearest_to_centres(pool.embeddings, ambiguous, k, seed)


@register_strategy("production", needs_model=True)
def production(pool, candidates, k, seed):
    order = ood_uncertainty(pool, candidates, len(candidates), seed)
    if pool.served is None:
        return order[:k]
    first = pool.served[order]
    return np.concatenate([order[first], order[~first]])[:k]
