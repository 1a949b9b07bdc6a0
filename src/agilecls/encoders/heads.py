"""Classification heads on sentence embeddings, from the plain baseline to one that knows what it
does not know.

- :class:`SoftmaxHead`: the plain baseline (an MLP with a dense softmax output);
  :class:`LogisticHead`: logistic regression, the strongest plain head on a few hundred examples.
- :class:`SNGPHead`: SNGP — spectrally normalised residual hidden layers (distances in the input
  survive into the hidden space) and a random-Fourier-feature Gaussian-process output layer whose
  Laplace precision matrix is accumulated exactly over an epoch (reset at each epoch's start);
  predictions use mean-field logits ``logits / sqrt(1 + lambda * variance)``.

Every head has ``forward(x, update_covariance)`` (training logits), ``predict_logits(x)``,
``reset_covariance()`` and ``finalize()``, so one training loop (:mod:`.training`) serves them all.
Out-of-scope scorers live in :mod:`.ood`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from torch import nn
from torch.nn.utils import parametrize

#: Mean-field factor of the SNGP predictive approximation (``pi / 8``, the probit approximation).
MEAN_FIELD_FACTOR = math.pi / 8


# --------------------------------------------------------------------------------------------
# Spectral normalisation with a bound
# --------------------------------------------------------------------------------------------
class BoundedSpectralNorm(nn.Module):
    """Parametrisation ``W / max(1, sigma(W) / bound)``: a weight whose spectral norm exceeds
    ``bound`` is scaled down to it (SNGP's form; torch's own ``spectral_norm`` always divides by
    sigma). sigma comes from power iteration whose vectors persist between steps."""

    def __init__(self, weight: torch.Tensor, norm_bound: float = 0.95, n_power_iterations: int = 1,
                 eps: float = 1e-12):
        super().__init__()
        if norm_bound <= 0:
            raise ValueError(f"norm_bound must be positive, got {norm_bound}")
        self.norm_bound = float(norm_bound)
        self.n_power_iterations = int(n_power_iterations)
        self.eps = eps
        out_f, in_f = weight.shape
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("_u", nn.functional.normalize(torch.randn(out_f, generator=gen), dim=0, eps=eps))
        self.register_buffer("_v", nn.functional.normalize(torch.randn(in_f, generator=gen), dim=0, eps=eps))
        self._power_iteration(weight.detach(), 15)

    @torch.no_grad()
    def _power_iteration(self, weight: torch.Tensor, n: int) -> None:
        for _ in range(n):
            self._v.copy_(nn.functional.normalize(weight.t() @ self._u, dim=0, eps=self.eps))
            self._u.copy_(nn.functional.normalize(weight @ self._v, dim=0, eps=self.eps))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.training:
            self._power_iteration(weight.detach(), self.n_power_iterations)
        u, v = self._u.clone(), self._v.clone()  # clones: the in-place updates must not touch the graph
        sigma = torch.dot(u, weight @ v)
        return weight / torch.clamp(sigma / self.norm_bound, min=1.0)


def spectral_normalized_linear(in_features: int, out_features: int, norm_bound: float = 0.95,
                               n_power_iterations: int = 1, bias: bool = True) -> nn.Linear:
    """An ``nn.Linear`` whose weight's spectral norm is kept <= ``norm_bound``."""
    layer = nn.Linear(in_features, out_features, bias=bias)
    parametrize.register_parametrization(layer, "weight", BoundedSpectralNorm(layer.weight, norm_bound,
                                                                             n_power_iterations))
    return layer


@torch.no_grad()
def refine_spectral_norms(module: nn.Module, n_iterations: int = 200) -> None:
    """Run extra power iterations on every bounded layer, so the weights used after training obey
    the bound tightly (one iteration per step lags behind a weight that is still moving)."""
    for layer in module.modules():
        plist = getattr(getattr(layer, "parametrizations", None), "weight", None)
        if plist is None:
            continue
        for p in plist:
            if isinstance(p, BoundedSpectralNorm):
                p._power_iteration(plist.original.detach(), n_iterations)


def spectral_norm(weight: torch.Tensor) -> float:
    """The exact spectral norm (largest singular value) of a weight matrix."""
    return float(torch.linalg.matrix_norm(weight.detach().double(), ord=2))


# --------------------------------------------------------------------------------------------
# Heads
# --------------------------------------------------------------------------------------------
class ResidualMLP(nn.Module):
    """``h <- h + dropout(act(W h + b))`` blocks, spectrally normalised when ``norm_bound`` is set.

    A residual block with Lipschitz constant < 1 keeps distances between inputs (bi-Lipschitz), so
    a text far from the training data stays far in the hidden space. Inputs of another width go
    first through a fixed random projection (no training: it must not collapse distances)."""

    def __init__(self, in_features: int, hidden_dim: int | None = None, n_layers: int = 1,
                 dropout: float = 0.1, norm_bound: float | None = None, n_power_iterations: int = 1,
                 seed: int = 0):
        super().__init__()
        hidden_dim = hidden_dim or in_features
        self.out_features = hidden_dim if n_layers else in_features
        if n_layers and hidden_dim != in_features:
            gen = torch.Generator().manual_seed(seed + 1)
            self.register_buffer("projection", torch.randn(hidden_dim, in_features, generator=gen)
                                 / math.sqrt(in_features))
        else:
            self.projection = None

        def make() -> nn.Module:
            if norm_bound is None:
                return nn.Linear(hidden_dim, hidden_dim)
            return spectral_normalized_linear(hidden_dim, hidden_dim, norm_bound, n_power_iterations)

        self.layers = nn.ModuleList([make() for _ in range(n_layers)])
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.projection is not None:
            x = x @ self.projection.t()
        for layer in self.layers:
            x = x + self.dropout(nn.functional.gelu(layer(x)))
        return x


class SoftmaxHead(nn.Module):
    """The deterministic baseline: residual MLP (no spectral norm) and a dense softmax output."""

    def __init__(self, in_features: int, num_classes: int, hidden_dim: int | None = None, n_layers: int = 1,
                 dropout: float = 0.1, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.body = ResidualMLP(in_features, hidden_dim, n_layers, dropout, None, seed=seed)
        self.output = nn.Linear(self.body.out_features, num_classes)

    def forward(self, x: torch.Tensor, update_covariance: bool = False) -> torch.Tensor:
        return self.output(self.body(x))

    def predict_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def reset_covariance(self) -> None:  # the training loop treats every head alike
        pass

    def finalize(self) -> None:
        pass


class LogisticHead(nn.Module):
    """Multinomial logistic regression on the embeddings: one linear layer.

    On frozen embeddings it is fitted to convergence by scikit-learn (L-BFGS, L2 penalty ``C``),
    which on a few hundred examples beat the MLP heads trained by SGD (ETHOS validation rows:
    ROC-AUC 0.878-0.891 vs 0.850-0.860); when the encoder is fine-tuned it trains like any head."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.output = nn.Linear(in_features, num_classes)

    @torch.no_grad()
    def fit_embeddings(self, emb: np.ndarray, y_idx: np.ndarray, C: float = 1.0, seed: int = 0) -> LogisticHead:
        model = LogisticRegression(C=C, max_iter=5000, random_state=seed).fit(emb, y_idx)
        coef, intercept = model.coef_, model.intercept_
        if coef.shape[0] == 1:  # scikit-learn keeps one row for two classes: logit(1) - logit(0)
            coef, intercept = np.concatenate([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
        self.output.weight.copy_(torch.as_tensor(coef, dtype=self.output.weight.dtype))
        self.output.bias.copy_(torch.as_tensor(intercept, dtype=self.output.bias.dtype))
        return self

    @torch.no_grad()
    def fit_binary_relevance(self, emb: np.ndarray, Y: np.ndarray, C: float = 1.0, seed: int = 0) -> LogisticHead:
        """Multi-label: one logistic regression per label (scikit-learn's ``OneVsRestClassifier``
        on a 0/1 matrix ``Y``); output ``k`` is label ``k``'s log-odds, so its sigmoid is that
        regression's probability."""
        model = OneVsRestClassifier(LogisticRegression(C=C, max_iter=5000, random_state=seed)).fit(emb, Y)
        coef = np.concatenate([e.coef_ for e in model.estimators_])
        intercept = np.concatenate([e.intercept_ for e in model.estimators_])
        self.output.weight.copy_(torch.as_tensor(coef, dtype=self.output.weight.dtype))
        self.output.bias.copy_(torch.as_tensor(intercept, dtype=self.output.bias.dtype))
        return self

    def forward(self, x: torch.Tensor, update_covariance: bool = False) -> torch.Tensor:
        return self.output(x)

    def predict_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def reset_covariance(self) -> None:
        pass

    def finalize(self) -> None:
        pass


class RandomFeatureGP(nn.Module):
    """Gaussian-process output layer with random Fourier features and a Laplace posterior.

    ``phi(h) = scale * cos(W h + b)`` with ``W ~ N(0, 1/kernel_scale^2)`` (an RBF kernel of length
    scale ``kernel_scale``; default sqrt(width) after LayerNorm, else 1) and ``b ~ U(0, 2 pi)``; logits
    ``beta^T phi``. The precision matrix ``ridge * I + sum_i m_i phi_i phi_i^T`` (``m_i = 1`` for the
    Gaussian likelihood, ``p(1-p)`` for the logistic one) is summed exactly over one epoch:
    :meth:`reset_covariance` starts a new sum."""

    def __init__(self, in_features: int, num_classes: int, num_inducing: int = 1024,
                 kernel_scale: float | None = None, normalize_input: bool = True,
                 scale_random_features: bool = False, ridge_penalty: float = 1.0,
                 likelihood: str = "gaussian", seed: int = 0):
        super().__init__()
        if likelihood not in ("gaussian", "logistic"):
            raise ValueError(f"likelihood must be 'gaussian' or 'logistic', got {likelihood!r}")
        self.num_inducing = int(num_inducing)
        self.ridge_penalty = float(ridge_penalty)
        self.likelihood = likelihood
        # LayerNorm-ed inputs have norm ~sqrt(width): a length scale of that size keeps W h ~ N(0, 1)
        self.kernel_scale = (float(kernel_scale) if kernel_scale
                             else (math.sqrt(in_features) if normalize_input else 1.0))
        self.feature_scale = math.sqrt(2.0 / num_inducing) if scale_random_features else 1.0
        self.input_norm = nn.LayerNorm(in_features, elementwise_affine=False) if normalize_input else nn.Identity()
        gen = torch.Generator().manual_seed(seed + 2)
        self.register_buffer("rff_weight", torch.randn(num_inducing, in_features, generator=gen) / self.kernel_scale)
        self.register_buffer("rff_bias", torch.rand(num_inducing, generator=gen) * 2 * math.pi)
        self.output = nn.Linear(num_inducing, num_classes)
        self.register_buffer("precision", self.ridge_penalty * torch.eye(num_inducing))
        self.register_buffer("covariance", torch.eye(num_inducing) / self.ridge_penalty)
        self.register_buffer("n_seen", torch.zeros((), dtype=torch.long))

    def features(self, h: torch.Tensor) -> torch.Tensor:
        return self.feature_scale * torch.cos(self.input_norm(h) @ self.rff_weight.t() + self.rff_bias)

    def reset_covariance(self) -> None:
        """Start a new exact sum (called at the start of each training epoch)."""
        self.precision.copy_(self.ridge_penalty * torch.eye(self.num_inducing, device=self.precision.device))
        self.n_seen.zero_()

    @torch.no_grad()
    def update_covariance(self, phi: torch.Tensor, logits: torch.Tensor) -> None:
        phi = phi.detach()
        if self.likelihood == "logistic":
            p = torch.softmax(logits.detach(), dim=-1).max(dim=-1).values
            phi = phi * torch.sqrt(p * (1 - p)).unsqueeze(-1)
        self.precision.add_(phi.t() @ phi)
        self.n_seen.add_(phi.shape[0])

    @torch.no_grad()
    def finalize(self) -> None:
        """Invert the precision once after training; predictions reuse the covariance."""
        self.covariance.copy_(torch.linalg.inv(self.precision.double()).to(self.precision.dtype))

    def forward(self, h: torch.Tensor, update_covariance: bool = False):
        phi = self.features(h)
        logits = self.output(phi)
        if update_covariance and self.training:
            self.update_covariance(phi, logits)
        return logits, phi

    def variance(self, phi: torch.Tensor) -> torch.Tensor:
        """Predictive variance ``ridge * phi^T Sigma phi`` of each row (same for every class)."""
        return self.ridge_penalty * ((phi @ self.covariance) * phi).sum(dim=-1)


class SNGPHead(nn.Module):
    """Spectral-normalised residual MLP + random-feature GP output layer.

    ``forward`` gives the raw GP logits (what training fits); :meth:`predict_logits` the
    mean-field logits ``logits / sqrt(1 + mean_field_factor * variance)`` used for prediction."""

    def __init__(self, in_features: int, num_classes: int, hidden_dim: int | None = None, n_layers: int = 1,
                 dropout: float = 0.1, norm_bound: float = 0.95, n_power_iterations: int = 1,
                 num_inducing: int = 1024, kernel_scale: float | None = None, ridge_penalty: float = 1.0,
                 mean_field_factor: float = MEAN_FIELD_FACTOR, likelihood: str = "gaussian",
                 scale_random_features: bool = False, normalize_input: bool = True, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.mean_field_factor = float(mean_field_factor)
        self.body = ResidualMLP(in_features, hidden_dim, n_layers, dropout, norm_bound, n_power_iterations, seed)
        self.gp = RandomFeatureGP(self.body.out_features, num_classes, num_inducing, kernel_scale,
                                  normalize_input=normalize_input, ridge_penalty=ridge_penalty, likelihood=likelihood,
                                  scale_random_features=scale_random_features, seed=seed)

    def forward(self, x: torch.Tensor, update_covariance: bool = False) -> torch.Tensor:
        logits, _ = self.gp(self.body(x), update_covariance)
        return logits

    def logits_and_variance(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, phi = self.gp(self.body(x))
        return logits, self.gp.variance(phi)

    def predict_logits(self, x: torch.Tensor, mean_field_factor: float | None = None) -> torch.Tensor:
        """Mean-field logits; ``mean_field_factor`` overrides the head's own (it acts only here, at
        prediction time, so it can be chosen on validation data without training again)."""
        logits, var = self.logits_and_variance(x)
        factor = self.mean_field_factor if mean_field_factor is None else mean_field_factor
        return mean_field_logits(logits, var, factor)

    def reset_covariance(self) -> None:
        self.gp.reset_covariance()

    def finalize(self) -> None:
        refine_spectral_norms(self.body)
        self.gp.finalize()


def mean_field_logits(logits: torch.Tensor, variance: torch.Tensor, mean_field_factor: float = MEAN_FIELD_FACTOR):
    """The mean-field approximation of the predictive softmax: shrink logits where variance is high."""
    if mean_field_factor is None or mean_field_factor < 0:
        return logits
    return logits / torch.sqrt(1.0 + mean_field_factor * variance).unsqueeze(-1)


def build_head(params: dict, dim: int, num_classes: int) -> nn.Module | None:
    """A fresh head for an EncoderClassifier's parameters (``get_params()``) over ``dim``-wide
    embeddings; None for the Mahalanobis head on a frozen encoder (it is all statistics)."""
    kind, seed = params["head"], params["random_state"]
    if kind == "sngp":
        return SNGPHead(dim, num_classes, params["hidden_dim"], params["n_hidden_layers"], params["dropout"],
                        params["norm_bound"], params["n_power_iterations"], params["num_inducing"],
                        params["kernel_scale"], params["ridge_penalty"], params["mean_field_factor"],
                        params["gp_likelihood"], normalize_input=params["gp_normalize_input"], seed=seed)
    if kind == "logistic":
        return LogisticHead(dim, num_classes)
    if kind == "softmax" or params["fine_tune"]:  # a Mahalanobis head fine-tunes through a softmax head
        return SoftmaxHead(dim, num_classes, params["hidden_dim"], params["n_hidden_layers"], params["dropout"],
                           seed=seed)
    return None
