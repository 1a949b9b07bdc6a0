"""Uncertainty over label scores, shared by both model families: out-of-scope scores from label
logits and temperature scaling (the reject threshold is chosen in ``calibration.thresholds``).

These work on any [texts, labels] logits, a prompted language model's label log-probabilities as
much as an encoder head's outputs, so both ``AgileClassifier`` and ``EncoderClassifier`` use them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: Out-of-scope scores computed from label logits alone (see :func:`label_ood_scores`).
OOD_METHODS = ("max_prob", "entropy", "energy")


def _as_tensor(logits) -> torch.Tensor:
    if isinstance(logits, torch.Tensor):
        return logits.detach().double()
    return torch.as_tensor(np.asarray(logits), dtype=torch.float64)


def label_ood_scores(logits, method: str = "max_prob") -> np.ndarray:
    """Out-of-scope scores from class logits (or label log-probabilities); higher = more likely out
    of scope. ``max_prob``: 1 - max softmax probability; ``entropy``: softmax entropy (nats);
    ``energy``: the free energy ``-logsumexp(logits)`` (the negated energy score of Liu et al.)."""
    z = _as_tensor(logits)
    if z.ndim != 2 or z.shape[1] < 1:
        raise ValueError(f"logits must be [n, classes], got shape {tuple(z.shape)}")
    if method == "max_prob":
        out = 1.0 - torch.softmax(z, dim=-1).max(dim=-1).values
    elif method == "entropy":
        logp = torch.log_softmax(z, dim=-1)
        out = -(logp.exp() * logp).sum(dim=-1)
    elif method == "energy":
        out = -torch.logsumexp(z, dim=-1)
    else:
        raise ValueError(f"unknown OOD method {method!r}; use one of {OOD_METHODS}")
    return out.numpy()


def fit_temperature(logits, y_idx, max_iter: int = 200) -> float:
    """The temperature T minimising the NLL of ``softmax(logits / T)`` on held-out data (LBFGS on log T)."""
    z = _as_tensor(logits)
    y = torch.as_tensor(np.asarray(y_idx), dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


