"""Training batches of similar length: padding is wasted compute, and on a CPU it is most of it.

Shared by LoRA tuning and encoder fine-tuning. Random order is kept where it matters (which
examples meet in a batch varies with the seed, and the batches come in shuffled order); only
neighbours in length share a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator,
                           chunk_batches: int = 50) -> list[np.ndarray]:
    """Shuffle the rows, sort them by length within chunks of ``chunk_batches`` batches, cut the
    chunks into batches and shuffle the batches. Every row appears exactly once."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * chunk_batches
    batches: list[np.ndarray] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: lengths[i])
        batches += [np.array(part[i:i + batch_size]) for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def distinct_rows(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The distinct texts, in first-seen order, and each text's row among them: score the distinct
    texts once, then take ``scores[rows]``. Corpora repeat texts (retweets, templates, spam); a
    repeated text costs nothing and gets exactly the same scores.

    Examples
    --------
    >>> distinct, rows = distinct_rows(["a", "b", "a"])
    >>> distinct, rows.tolist()
    (['a', 'b'], [0, 1, 0])
    """
    index: dict[str, int] = {}
    rows = np.fromiter((index.setdefault(t, len(index)) for t in texts), dtype=np.int64, count=len(texts))
    return list(index), rows
