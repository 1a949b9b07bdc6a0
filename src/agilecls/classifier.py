"""AgileClassifier: a scikit-learn estimator whose class scores are a language model's label-token
probabilities. Zero-shot, few-shot and tuned (LoRA) are fitting modes of the same estimator."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from .lm import DEFAULT_MODEL, LanguageModel, load_lm
from .prompts import PromptTemplate, select_examples
from .scoring import LabelScorer, PromptEncoder, label_token_ids
from .validation import check_labels, check_texts, softmax

#: Inputs with no content; their label scores estimate the model's prior bias toward each label.
CONTENT_FREE_TEXTS = ("N/A", "", "[MASK]")


class AgileClassifier(ClassifierMixin, BaseEstimator):
    """Classify texts by the probability a language model puts on each label word.

    Parameters
    ----------
    labels : the class names, used as the words the model answers with (default: sorted labels of ``y``).
    model : bundled name, Hugging Face id, local folder or ``.gguf`` file.
    template : ``'auto'`` (chat template when the model has one), ``'separator'``, ``'chat'``,
        ``'separator-newlines'``, a :class:`PromptTemplate` or its dict.
    shots : in-context examples per class taken from the training data (0 = zero-shot).
    shot_selection : ``'random'`` (seeded) or ``'similar'`` (most typical by embedding).
    calibration : ``'content_free'`` divides out the label bias measured on content-free inputs
        ("N/A", "", "[MASK]"); ``None`` uses raw label probabilities.
    tuning : ``None`` (prompting only) or ``'lora'``.
    """

    def __init__(self, labels: Sequence[str] | None = None, model: str = DEFAULT_MODEL, template="auto",
                 shots: int = 0, shot_selection: str = "random", instructions: str | None = None,
                 calibration: str | None = "content_free", length_normalize: bool = False, tuning: str | None = None,
                 batch_size: int = 8, max_length: int | None = None, device: str | None = None, seed: int = 0,
                 progress: bool = True):
        self.labels = labels
        self.model = model
        self.template = template
        self.shots = shots
        self.shot_selection = shot_selection
        self.instructions = instructions
        self.calibration = calibration
        self.length_normalize = length_normalize
        self.tuning = tuning
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self.seed = seed
        self.progress = progress

    # ---- fitting -------------------------------------------------------------------------------
    def fit(self, X=None, y=None):
        """Zero-shot: checks the labels. Few-shot: picks in-context examples from (X, y).
        Then measures the content-free label bias when ``calibration='content_free'``."""
        if self.tuning not in (None, "none"):
            raise ValueError(f"unknown tuning mode {self.tuning!r}; use None for prompting")
        if self.calibration not in (None, "none", "content_free"):
            raise ValueError(f"unknown calibration {self.calibration!r}; use 'content_free' or None")
        if y is None:
            if self.labels is None:
                raise ValueError("pass labels=[...] to the constructor or y to fit()")
            if self.shots:
                raise ValueError(f"shots={self.shots} needs training texts X and labels y")
            y_list, labels = [], check_labels([], self.labels)[1]
            texts = []
        else:
            texts = check_texts(X)
            y_list, labels = check_labels(y, self.labels)
            if len(texts) != len(y_list):
                raise ValueError(f"X has {len(texts)} texts but y has {len(y_list)} labels")
        self.lm_ = load_lm(self.model, device=self.device)
        template = PromptTemplate.coerce(self.template, self.lm_.has_chat_template)
        if self.instructions:
            template.instructions = self.instructions
        if self.shots:
            template = template.with_examples(select_examples(texts, y_list, labels, self.shots, self.seed,
                                                              self.shot_selection))
        self._set_state(labels, template)
        self.bias_ = self._content_free_bias() if self.calibration == "content_free" else np.zeros(len(labels))
        return self

    def _set_state(self, labels: list[str], template: PromptTemplate) -> None:
        """Everything prediction needs, derived from the labels, the template and the loaded model."""
        self.classes_ = np.array(labels)
        self.template_ = template
        self.label_ids_ = label_token_ids(self.lm_.tokenizer, labels, template.label_prefix)
        self.encoder_ = PromptEncoder(self.lm_, self.max_length, reserve=max(len(ids) for ids in self.label_ids_))
        self.scorer_ = LabelScorer(self.lm_, self.label_ids_, length_normalize=self.length_normalize,
                                   batch_size=self.batch_size, progress=self.progress)

    def _content_free_bias(self) -> np.ndarray:
        """Mean log-probability of each label on content-free inputs (Zhao et al., 2021)."""
        probs = softmax(self.raw_scores(list(CONTENT_FREE_TEXTS)))
        return np.log(probs.mean(axis=0))

    # ---- prediction ----------------------------------------------------------------------------
    def prompts(self, X) -> list:
        """The encoded prompts for X (text → prompt → tokens)."""
        parts = self.template_.render(X, list(self.classes_), self.lm_.tokenizer)
        return self.encoder_.encode(parts)

    def raw_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Label log-scores before calibration, [texts, labels]."""
        return self.scorer_.score(self.prompts(texts))

    def decision_function(self, X) -> np.ndarray:
        """Calibrated label log-scores, [texts, labels]; their softmax is ``predict_proba``."""
        check_is_fitted(self, "scorer_")
        return self.raw_scores(check_texts(X)) - self.bias_

    def predict_proba(self, X) -> np.ndarray:
        return softmax(self.decision_function(X))

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]

    @property
    def language_model(self) -> LanguageModel:
        check_is_fitted(self, "lm_")
        return self.lm_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags
