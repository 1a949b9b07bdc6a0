"""The mixed corpus the scale benchmarks label: texts sampled with replacement, seeded, from
ETHOS, the marketing tweets and CLINC150 (English comments, Spanish tweets, short intents), so
lengths, languages and repeats look like a real corpus."""

from __future__ import annotations

import numpy as np

from agilecls.datasets import load_clinc150, load_ethos, load_tweets


def mixed_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` texts, a third from each source on average, drawn with replacement.

    Examples
    --------
    >>> len(mixed_texts(10))  # doctest: +SKIP
    10
    """
    pools = [load_ethos("all").texts, load_tweets("all").texts, load_clinc150("test", include_oos=True).texts]
    rng = np.random.default_rng(seed)
    source = rng.integers(0, len(pools), size=n)
    return [pools[s][int(rng.integers(len(pools[s])))] for s in source]
