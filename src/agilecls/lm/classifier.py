"""AgileClassifier: a scikit-learn estimator whose class scores are a language model's label-token
probabilities. Zero-shot, few-shot and tuned (LoRA) are fitting modes of the same estimator."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from .._compat import Interval, StrOptions
from ..batching import distinct_rows
from ..persistence import load_as, register_estimator, save_estimator
from ..salience.objectives import ClassifierLogProb
from ..uncertainty import label_ood_scores
from ..validation import TextInputTags, check_labels, check_multilabel_xy, check_texts, check_xy, sigmoid, softmax
from . import multilabel as ml
from . import saving
from .config import LOSSES, LR_SCHEDULES, TARGET_MODULES, TuningConfig
from .loading import DEFAULT_MODEL, LanguageModel, load_lm, private_copy
from .prompts import DEFAULT_INSTRUCTIONS, PromptEncoder, PromptTemplate, label_token_ids, select_examples
from .scoring import LabelScorer, scoring_batch_size
from .tuning import LoraTrainer, add_lora

_DEFAULTS = TuningConfig()
_count = Interval(Integral, 1, None, closed="left")
_share = Interval(Real, 0, 1, closed="left")

#: Inputs with no content; their label scores estimate the model's prior bias toward each label.
CONTENT_FREE_TEXTS = ("N/A", "", "[MASK]")

#: Prompt tokens kept per text when tuning (training cost grows with length; ETHOS: 95% of texts fit).
TUNED_MAX_LENGTH = 128


@register_estimator("AgileClassifier")
class AgileClassifier(TextInputTags, ClassifierMixin, BaseEstimator):
    """Classify texts by the probability a language model puts on each label word.

    Zero-shot, few-shot and LoRA tuning are fitting modes of this one estimator; prediction,
    training and salience share one scoring engine (:class:`agilecls.lm.scoring.LabelScorer`).

    Parameters
    ----------
    labels : list of str or None, default=None
        The class names, used as the words the model answers with (default: sorted labels of ``y``).
    model : str or LanguageModel, default="smollm2-135m-instruct"
        Bundled name, Hugging Face id, local folder or ``.gguf`` file.
    template : str, dict or PromptTemplate, default="auto"
        "auto" (chat template when the model has one; the separator format when tuning),
        "separator", "chat", "separator-newlines", a :class:`PromptTemplate` or its dict.
    shots : int, default=0
        In-context examples per class taken from the training data (0 = zero-shot).
    shot_selection : {"random", "similar"}, default="random"
        Seeded random pick, or the most typical examples by sentence embedding.
    instructions : str or None, default=None
        The instruction sentence of the prompt (e.g. a policy's definition).
    calibration : {"auto", "content_free", "none"} or None, default="auto"
        "auto" is "content_free" when prompting and None when tuned (a tuned model has learnt the
        label prior: on ETHOS validation rows the content-free correction lowered a tuned model's
        F1 from 0.83 to 0.74). "content_free" divides out the label bias measured on
        content-free inputs ("N/A", "", "[MASK]").
    length_normalize : bool, default=False
        Average multi-token labels' log-likelihood per token.
    tuning : {"lora", "none"} or None, default=None
        None prompts only; "lora" trains LoRA adapters on (X, y).
    batch_size : int or "auto", default="auto"
        Texts per scoring forward pass; "auto" measures 4, 8 and 16 on this machine's first load of
        the model and keeps the fastest (:func:`agilecls.lm.scoring.scoring_batch_size`).
    max_length : int or None, default=None
        Prompt tokens kept per text (long texts are truncated, the template kept); None is the
        model's context, or 128 when tuning (training cost grows with length).
    device, dtype : str or None, default=None
        None: CUDA when present, else the CPU; the faster of fp32 / bf16 measured on the device. A
        saved classifier reloads in the dtype it was fitted in, so its probabilities come back exactly.
    seed, progress : int, default=0; bool, default=True
        Seed of example selection and tuning; progress bars.
    rank, lora_alpha, lora_dropout, target_modules, top_layers, learning_rate, lr_schedule, \
warmup_fraction, epochs, train_batch_size, gradient_accumulation, loss, validation_fraction, \
patience, gradient_checkpointing
        LoRA tuning settings; defaults and meanings are the fields of
        :class:`agilecls.lm.tuning.TuningConfig` (rank 4 on q/v of the top 4 layers, Adam at 2e-3
        with linear decay, 6 epochs of batches of 4, label-token loss, no early stopping).
    multilabel : bool, default=False
        Each label is an independent yes/no question (:mod:`agilecls.lm.multilabel`): ``y`` is a
        list of label lists (a text may have none) or a 0/1 matrix with ``labels``;
        ``predict_proba`` gives [texts, labels] independent probabilities (softmax over " yes" /
        " no"), ``predict`` a 0/1 matrix (probability >= 0.5). Tuning trains on every (text,
        label) pair with the binary cross-entropy, mean over pairs (batches and
        ``validation_fraction`` count pairs). Content-free calibration divides out each label's
        yes/no bias. Not with ``shots``, ``ood_score`` or ``explain``.

    Attributes
    ----------
    classes_ : ndarray of str
    template_, lm_ : PromptTemplate, LanguageModel
    bias_ : ndarray
        Content-free calibration bias per label (zeros when not calibrated).
    history_ : list of dict
        Per-epoch training loss (and validation loss) when tuned.
    validation_rows_ : ndarray of int
        Rows of the training data held out for early stopping (empty without ``validation_fraction``).

    Examples
    --------
    >>> from agilecls import AgileClassifier
    >>> clf = AgileClassifier(labels=["positive", "negative"]).fit()  # doctest: +SKIP
    >>> clf.predict(["The soup was cold"])  # doctest: +SKIP
    array(['negative'], dtype='<U8')
    """

    _parameter_constraints = {
        "labels": ["array-like", None], "model": [str, LanguageModel], "template": [str, dict, PromptTemplate, None],
        "shots": [Interval(Integral, 0, None, closed="left")], "shot_selection": [StrOptions({"random", "similar"})],
        "instructions": [str, None], "calibration": [StrOptions({"auto", "content_free", "none"}), None],
        "length_normalize": ["boolean"], "tuning": [StrOptions({"lora", "none"}), None],
        "batch_size": [_count, StrOptions({"auto"})],
        "max_length": [_count, None], "device": [str, None], "dtype": [str, None],
        "seed": [Interval(Integral, 0, None, closed="left")], "progress": ["boolean"], "rank": [_count],
        "lora_alpha": [Interval(Real, 0, None, closed="neither")], "lora_dropout": [_share],
        "target_modules": [StrOptions(set(TARGET_MODULES)), list], "top_layers": [_count, None],
        "learning_rate": [Interval(Real, 0, None, closed="neither")], "lr_schedule": [StrOptions(set(LR_SCHEDULES))],
        "warmup_fraction": [_share], "epochs": [_count], "train_batch_size": [_count],
        "gradient_accumulation": [_count], "loss": [StrOptions(set(LOSSES))], "validation_fraction": [_share],
        "patience": [_count], "gradient_checkpointing": ["boolean"], "multilabel": ["boolean"],
    }

    def __init__(self, labels: Sequence[str] | None = None, model: str = DEFAULT_MODEL, template="auto",
                 shots: int = 0, shot_selection: str = "random", instructions: str | None = None,
                 calibration: str | None = "auto", length_normalize: bool = False, tuning: str | None = None,
                 batch_size: int | str = "auto", max_length: int | None = None, device: str | None = None,
                 dtype: str | None = None, seed: int = 0,
                 progress: bool = True, rank: int = _DEFAULTS.rank, lora_alpha: float = _DEFAULTS.lora_alpha,
                 lora_dropout: float = _DEFAULTS.lora_dropout, target_modules=_DEFAULTS.target_modules,
                 top_layers: int | None = _DEFAULTS.top_layers, learning_rate: float = _DEFAULTS.learning_rate,
                 lr_schedule: str = _DEFAULTS.lr_schedule, warmup_fraction: float = _DEFAULTS.warmup_fraction,
                 epochs: int = _DEFAULTS.epochs, train_batch_size: int = _DEFAULTS.train_batch_size,
                 gradient_accumulation: int = _DEFAULTS.gradient_accumulation, loss: str = _DEFAULTS.loss,
                 validation_fraction: float = _DEFAULTS.validation_fraction, patience: int = _DEFAULTS.patience,
                 gradient_checkpointing: bool = _DEFAULTS.gradient_checkpointing, multilabel: bool = False):
        for name, value in list(locals().items()):
            if name != "self":
                setattr(self, name, value)

    # ---- fitting -------------------------------------------------------------------------------
    def fit(self, X=None, y=None, *, callback=None, lower_cache: dict | None = None):
        """Zero-shot: checks the labels. Few-shot: picks in-context examples from (X, y).
        LoRA (``tuning='lora'``): trains adapters on (X, y) on a private copy of the model.
        Then measures the content-free label bias when ``calibration='content_free'``.

        Parameters
        ----------
        X : list of str or None, default=None
            Training texts (needed for few-shot and LoRA; zero-shot takes none).
        y : list of str or None, default=None
            Their labels.
        callback : callable or None, default=None
            ``callback(info, clf)`` after each tuning epoch (:class:`agilecls.lm.tuning.EpochInfo`).
        lower_cache : dict or None, default=None
            Lets repeated fits of the same base model and ``top_layers`` share the frozen lower
            layers' cached outputs; ``CalibratedClassifier`` and ``EnsembleClassifier`` give their
            folds and final fit one (``lower_cache=None`` in their fit parameters keeps the fits apart).

        Returns
        -------
        self
        """
        self._validate_params()
        if self.multilabel and self.shots:
            raise ValueError("shots is not supported with multilabel=True; use zero-shot or tuning='lora'")
        if self.tuning == "lora":
            return self._fit_lora(X, y, callback, lower_cache)
        if y is None:
            if self.labels is None:
                raise ValueError("pass labels=[...] to the constructor or y to fit()")
            if self.shots:
                raise ValueError(f"shots={self.shots} needs training texts X and labels y")
            y_list, labels = [], check_labels([], self.labels)[1]
            texts = []
        else:
            texts, y_list, labels = self._check_xy(X, y)
        self.lm_ = load_lm(self.model, device=self.device, dtype=self.dtype)
        self.set_prompt_state(labels, self._build_template(self.template, texts, y_list, labels))
        self.bias_ = self._content_free_bias() if self.calibration_method() == "content_free" else np.zeros(len(labels))
        return self

    def _check_xy(self, X, y):
        """(texts, targets, labels): targets are label strings, or a 0/1 matrix when ``multilabel``."""
        return (check_multilabel_xy if self.multilabel else check_xy)(X, y, self.labels, fitting=True)

    def _build_template(self, style, texts, y_list, labels) -> PromptTemplate:
        """The template of ``style`` with the instructions and the few-shot examples picked from (X, y)."""
        template = PromptTemplate.coerce(style, self.lm_.has_chat_template)
        if self.instructions:
            template.instructions = self.instructions
        elif self.multilabel and template.instructions == DEFAULT_INSTRUCTIONS:  # that one asks for a class
            template.instructions = ml.DEFAULT_MULTILABEL_INSTRUCTIONS
        if self.shots:
            template = template.with_examples(select_examples(texts, y_list, labels, self.shots, self.seed,
                                                              self.shot_selection))
        return template

    def tuning_config(self) -> TuningConfig:
        """The :class:`agilecls.lm.tuning.TuningConfig` of this estimator's parameters of the same names."""
        return TuningConfig(**{name: getattr(self, name) for name in TuningConfig.__dataclass_fields__})

    def _fit_lora(self, X, y, callback, lower_cache):
        if X is None or y is None:
            raise ValueError("tuning='lora' needs training texts X and labels y")
        texts, y_list, labels = self._check_xy(X, y)
        config = self.tuning_config()
        start = time.perf_counter()
        self.lm_ = private_copy(self.model, self.device, self.dtype)
        self.base_fingerprint_ = saving.model_fingerprint(self.lm_)
        add_lora(self.lm_, config)
        style = "separator" if self.template in (None, "auto") else self.template
        self.set_prompt_state(labels, self._build_template(style, texts, y_list, labels))
        index = {label: i for i, label in enumerate(labels)}
        targets = ml.pair_targets(y_list) if self.multilabel else [index[v] for v in y_list]
        trainer = LoraTrainer(self.lm_, self.scorer_, config, progress=self.progress, store=lower_cache,
                              callback=None if callback is None else (lambda info: callback(info, self)))
        self._split = trainer.split
        self.bias_ = np.zeros(len(labels))  # callbacks during training see uncalibrated scores
        try:
            pair_texts = np.repeat(np.arange(len(texts)), len(labels)) if self.multilabel else None
            history = trainer.fit(self.prompts(texts), targets, groups=pair_texts)
        finally:
            self._split = None
        self.history_ = [vars(h) for h in history]
        self.validation_rows_ = trainer.validation_rows
        self.tuning_seconds_ = time.perf_counter() - start
        self.bias_ = self._content_free_bias() if self.calibration_method() == "content_free" else np.zeros(len(labels))
        return self

    def set_prompt_state(self, labels: list[str], template: PromptTemplate) -> None:
        """Everything prediction needs, derived from the labels, the template and the loaded model."""
        self.classes_ = np.array(labels)
        self.template_ = template
        words = ml.ANSWERS if self.multilabel else labels
        self.label_ids_ = label_token_ids(self.lm_.tokenizer, words, template.label_prefix)
        max_length = self.max_length or (TUNED_MAX_LENGTH if self.tuning == "lora" else None)
        self.encoder_ = PromptEncoder(self.lm_, max_length, reserve=max(len(ids) for ids in self.label_ids_))
        batch = scoring_batch_size(self.lm_, self.label_ids_) if self.batch_size == "auto" else self.batch_size
        self.scorer_ = LabelScorer(self.lm_, self.label_ids_, length_normalize=self.length_normalize,
                                   batch_size=batch, progress=self.progress)

    def calibration_method(self) -> str | None:
        """The calibration in effect: ``'auto'`` resolved by the fitting mode."""
        if self.calibration == "auto":
            return None if self.tuning == "lora" else "content_free"
        return None if self.calibration == "none" else self.calibration

    def _content_free_bias(self) -> np.ndarray:
        """Mean log-probability of each label on content-free inputs (Zhao et al., 2021)."""
        scores = self.raw_scores(list(CONTENT_FREE_TEXTS))
        if self.multilabel:  # per label, the log-odds of the mean yes-probability
            return ml.logit(sigmoid(scores).mean(axis=0))
        return np.log(softmax(scores).mean(axis=0))

    # ---- prediction ----------------------------------------------------------------------------
    def prompts(self, X) -> list:
        """The encoded prompts for X (text → prompt → tokens); with ``multilabel``, one per (text,
        label) pair, text-major."""
        if self.multilabel:
            return ml.encode_pairs(self.encoder_, self.template_, X, list(self.classes_))
        parts = self.template_.render(X, list(self.classes_), self.lm_.tokenizer)
        return self.encoder_.encode(parts)

    def raw_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Label log-scores before calibration, [texts, labels] (during tuning, via the cached lower
        layers); with ``multilabel``, each label's yes/no log-odds."""
        with warnings.catch_warnings():
            if self.tuning == "lora":  # truncation to max_length is expected when tuning
                warnings.filterwarnings("ignore", message=".*were truncated.*")
            scores = self.scorer_.score(self.prompts(texts), split=getattr(self, "_split", None))
        return ml.log_odds(scores, len(texts)) if self.multilabel else scores

    def decision_function(self, X) -> np.ndarray:
        """Calibrated label log-scores, [texts, labels]; their softmax is ``predict_proba``. A text
        that occurs several times in ``X`` is scored once."""
        check_is_fitted(self, "scorer_")
        distinct, rows = distinct_rows(check_texts(X))
        return (self.raw_scores(distinct) - self.bias_)[rows]

    def predict_proba(self, X) -> np.ndarray:
        """Label probabilities [texts, labels]: a softmax over the labels, or with ``multilabel``
        each label's independent yes-probability."""
        return (sigmoid if self.multilabel else softmax)(self.decision_function(X))

    def ood_score(self, X, method: str = "max_prob") -> np.ndarray:
        """Out-of-scope score from the label logits, higher = less like any label: ``max_prob``
        (1 - max probability), ``entropy`` or ``energy`` (-logsumexp of the label logits)."""
        if self.multilabel:
            raise ValueError("ood_score is not defined for multilabel=True (a text may have no label)")
        return label_ood_scores(self.decision_function(X), method)

    def details(self, X) -> dict[str, np.ndarray]:
        """Everything from one pass over ``X``: calibrated ``logits``, ``proba``, ``ood_score``
        (1 - max probability) and ``pred``."""
        logits = self.decision_function(X)
        if self.multilabel:  # (n, L) 0/1 predictions, as OneVsRestClassifier gives
            proba = sigmoid(logits)
            return {"logits": logits, "proba": proba, "pred": (proba >= 0.5).astype(int)}
        proba = softmax(logits)
        return {"logits": logits, "proba": proba, "ood_score": label_ood_scores(logits, "max_prob"),
                "pred": self.classes_[proba.argmax(axis=1)]}

    def predict(self, X) -> np.ndarray:
        """The most probable label of each text; with ``multilabel``, a 0/1 matrix [texts, labels]."""
        return self.details(X)["pred"]

    def describe(self) -> str:
        """One line naming the classifier, for the CLI and reports."""
        spec = getattr(self.model, "spec", self.model)
        if self.multilabel:
            spec = f"{spec} multi-label"
        if self.tuning == "lora":
            return f"{spec} (LoRA rank {self.rank}, {self.epochs} epochs)"
        return f"{spec} ({self.shots}-shot)" if self.shots else f"{spec} (zero-shot)"

    def decision_rule(self) -> None:
        """How ``predict`` decides from ``predict_proba``: None, the most probable label (with
        ``multilabel``, every label of probability >= 0.5)."""
        return None

    def salience_objective(self, text: str, label: int):
        """What :func:`agilecls.explain` differentiates: the calibrated log-probability of label
        ``label`` (an index into ``classes_``) for ``text``, through this classifier's prompt and
        scorer, as a function of the prompt's input embeddings
        (:class:`agilecls.salience.objectives.ClassifierLogProb`)."""
        check_is_fitted(self, "scorer_")
        if self.multilabel:
            raise ValueError("explain does not support multi-label classifiers yet; explain a single-label one")
        (prompt,) = self.prompts([text])
        return ClassifierLogProb(self, prompt, label)

    # ---- persistence ---------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the fitted classifier to folder ``path`` (adapters as safetensors + agilecls.json),
        atomically. Returns the folder's path."""
        check_is_fitted(self, "scorer_")
        return save_estimator(self, path)

    @classmethod
    def load(cls, path, model: str | LanguageModel | None = None, device: str | None = None) -> AgileClassifier:
        """A classifier saved by :meth:`save`; ``model`` overrides the saved base model spec (it must be
        the same base model: a different one is refused)."""
        return load_as(cls, path, model=model, device=device)

    def write_state(self, folder) -> dict:
        return saving.save_state(self, folder)

    @classmethod
    def read_state(cls, folder, manifest: dict, model=None, device: str | None = None) -> AgileClassifier:
        return saving.load_state(cls, folder, manifest, model, device)
