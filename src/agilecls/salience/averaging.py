"""The mean of several models' explanations of one text: the fold models of a
``CalibratedClassifier(ensemble=True)``, whose score is the mean of theirs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .result import Explanation


def mean_explanation(explanations: Sequence[Explanation], model: str, context: dict) -> Explanation:
    """The token-by-token mean of explanations of one text by models sharing a tokenizer (the fold
    models of a ``CalibratedClassifier(ensemble=True)``, whose mean probability is its score);
    ``info["folds"]`` keeps each model's own ``info``, ``info["probabilities"]`` is their mean."""
    first = explanations[0]
    where = [[(t["start"], t["end"]) for t in e.tokens] for e in explanations]
    if any(w != where[0] for w in where):
        raise ValueError("the models tokenize the text differently; explain each of them on its own")
    tokens = [{**t, "score": float(np.mean([e.tokens[i]["score"] for e in explanations]))}
              for i, t in enumerate(first.tokens)]
    scores = [e.score for e in explanations]
    info = {k: first.info[k] for k in ("label", "text_range", "truncated") if k in first.info}
    if all("probabilities" in e.info for e in explanations):
        info["probabilities"] = {c: float(np.mean([e.info["probabilities"][c] for e in explanations]))
                                 for c in first.info["probabilities"]}
    info.update(context, folds=[e.info for e in explanations])
    warnings = list(dict.fromkeys(w for e in explanations for w in e.warnings))
    return replace(first, tokens=tokens, score=float(np.mean(scores)), model=model,
                   seconds=sum(e.seconds for e in explanations), info=info, warnings=warnings)
