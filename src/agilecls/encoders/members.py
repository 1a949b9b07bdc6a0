"""Sentence-encoder classifiers as ensemble members beside tuned language models.

Validated on ETHOS (train on 600 rows, score 200; bench/defaults/ethos_validation.py): a logistic head on
frozen embeddings, or the whole encoder fine-tuned with a softmax head, which scored ROC-AUC 0.944
with mpnet (0.891 frozen) and 0.903 with MiniLM (0.878 frozen). The fine-tuned member takes at
least 200 optimiser steps, because with a few examples per class fewer steps leave it
under-confident. Chosen on validation rows (train rows not used for training; the test split not
read): with 8 tweets per class (56 texts, 4 steps per epoch), 16 / 48 / 100 steps gave macro F1
0.501 / 0.830 / 0.882 (bench/defaults/fewshot_epochs.py); 200 steps instead of 100 gave macro F1 +0.001 to
+0.026 and ECE 0.12-0.19 -> 0.02-0.05 at 8, 16 and 32 tweets per class (two draws each,
``--steps 100 200``), and on ETHOS (600 rows: 152 steps at 4 epochs against 228) ROC-AUC
0.903 -> 0.912 and F1 0.819 -> 0.843, ECE 0.077 -> 0.103 (bench/defaults/ethos_validation.py).
"""

from __future__ import annotations

from .classifier import EncoderClassifier

#: Member kinds: EncoderClassifier parameters and a few words for tables and the CLI.
ENCODER_MEMBERS = {
    "logistic": {"params": {"head": "logistic"}, "describe": "logistic head on frozen embeddings"},
    "finetuned": {"params": {"head": "softmax", "fine_tune": True, "epochs": 4, "batch_size": 16, "min_steps": 200},
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
