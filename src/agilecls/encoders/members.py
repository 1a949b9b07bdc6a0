"""Sentence-encoder classifiers as ensemble members beside tuned language models.

Validated on ETHOS (train on 600 rows, score 200; bench/ethos_validation.py): a logistic head on
frozen embeddings, or the whole encoder fine-tuned with a softmax head, which scored ROC-AUC 0.944
with mpnet (0.891 frozen) and 0.903 with MiniLM (0.878 frozen). The fine-tuned member takes at
least 100 optimiser steps: with 8 tweets per class (56 texts, 4 steps per epoch), 4 epochs gave
validation macro F1 0.501, 12 epochs 0.830 and 25 epochs (100 steps) 0.882 (bench/fewshot_epochs.py,
on train rows not used for training); with 600 ETHOS rows 4 epochs are already 152 steps.
"""

from __future__ import annotations

from .classifier import EncoderClassifier

#: Member kinds: EncoderClassifier parameters and a few words for tables and the CLI.
ENCODER_MEMBERS = {
    "logistic": {"params": {"head": "logistic"}, "describe": "logistic head on frozen embeddings"},
    "finetuned": {"params": {"head": "softmax", "fine_tune": True, "epochs": 4, "batch_size": 16, "min_steps": 100},
                  "describe": "fine-tuned with a softmax head"},
}


def encoder_member(encoder: str, kind: str = "logistic", random_state: int = 0) -> EncoderClassifier:
    """An EncoderClassifier to join tuned language models in an ensemble.

    Parameters
    ----------
    encoder : str
        ``"minilm"``, ``"mpnet"``, a sentence-transformers folder or hub id.
    kind : {"logistic", "finetuned"}, default="logistic"
    random_state : int, default=0

    Examples
    --------
    >>> encoder_member("minilm", "finetuned").fine_tune
    True
    """
    if kind not in ENCODER_MEMBERS:
        raise ValueError(f"kind must be one of {sorted(ENCODER_MEMBERS)}, got {kind!r}")
    return EncoderClassifier(encoder, random_state=random_state, **ENCODER_MEMBERS[kind]["params"])
