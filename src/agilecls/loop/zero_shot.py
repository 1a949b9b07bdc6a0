"""Zero-shot pre-labels for a project with no labels yet.

Three scorers, compared by ``bench/defaults/zero_shot_scorers.py`` on the tweets and on CLINC150 intents:

- ``similarity``: cosine similarity between a text's sentence embedding and each label's
  (its name, or its description when the project has one), softmaxed at a temperature.
  Costs one cached encoder pass per text: a 10,000-text pool is pre-labelled in about a minute.
- ``llm``: the language model asked to pick a label (``AgileClassifier(labels=...)``, label-token
  scoring with content-free calibration).
- ``combined``: the mean of the two probability vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..lm.classifier import AgileClassifier

SCORERS = ("similarity", "llm", "combined")
#: Softmax temperature over cosine similarities (they differ by a few hundredths between labels).
TEMPERATURE = 0.05


def label_prompts(labels: Sequence[str], descriptions: dict[str, str] | None = None) -> list[str]:
    """What each label is embedded as: its description if given, else its name."""
    descriptions = descriptions or {}
    return [descriptions.get(label) or label for label in labels]


def similarity_proba(text_emb: np.ndarray, label_emb: np.ndarray, temperature: float = TEMPERATURE) -> np.ndarray:
    """Softmax over cosine similarities, [texts, labels].

    Examples
    --------
    >>> p = similarity_proba(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> bool(p[0, 0] > 0.99)
    True
    """
    t = text_emb / np.clip(np.linalg.norm(text_emb, axis=1, keepdims=True), 1e-12, None)
    lab = label_emb / np.clip(np.linalg.norm(label_emb, axis=1, keepdims=True), 1e-12, None)
    z = (t @ lab.T) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def llm_proba(texts: Sequence[str], labels: Sequence[str], instructions: str = "", model: str | None = None,
              progress: bool = True) -> np.ndarray:
    """The language model's zero-shot probabilities over ``labels`` (bundled default model)."""
    params = {"labels": list(labels), "progress": progress}
    if instructions:
        params["instructions"] = instructions
    if model:
        params["model"] = model
    return AgileClassifier(**params).fit().predict_proba(list(texts))


def zero_shot_proba(scorer: str, texts: Sequence[str], text_emb: np.ndarray, label_emb: np.ndarray,
                    labels: Sequence[str], instructions: str = "", progress: bool = True, *,
                    model: str | None = None) -> np.ndarray:
    """Pre-label probabilities [texts, labels] by ``scorer`` (one of :data:`SCORERS`); ``model``:
    the language model of the ``llm`` and ``combined`` scorers (None: the bundled default)."""
    if scorer not in SCORERS:
        raise ValueError(f"unknown zero-shot scorer {scorer!r}; choose one of {', '.join(SCORERS)}")
    if scorer == "similarity":
        return similarity_proba(text_emb, label_emb)
    llm = llm_proba(texts, labels, instructions, model, progress)
    if scorer == "llm":
        return llm
    return (llm + similarity_proba(text_emb, label_emb)) / 2
