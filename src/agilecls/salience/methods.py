"""Salience methods in one registry: each a small function from an objective f(x) and the prompt's
input embeddings x to a score per token.

- ``grad_l2``: L2 norm of the gradient at each token's embedding (how sensitive, unsigned);
- ``grad_dot_input``: gradient · embedding (first-order contribution, signed);
- ``integrated_gradients``: (embedding − baseline) · the gradient averaged along the straight
  path from a zero-embedding baseline (signed; sums to f(input) − f(baseline)).

Add a method with ``@register_method("name", signed=..., title=...)``; the CLI and the web app list
the registry, and :func:`method_titles` gives the names people read.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..registry import Registry

#: Method name -> ``fn(objective, embeds, **options) -> (scores, info)``, with ``signed`` and ``title``
#: as metadata (:func:`register_method`).
METHODS: Registry[Callable] = Registry("salience method")

#: Integrated Gradients is flagged when its completeness error exceeds this share of
#: |f(input) - f(baseline)| (and :data:`COMPLETENESS_FLOOR` in absolute terms).
COMPLETENESS_TOLERANCE = 0.1
#: Errors below this many nats are never flagged (float rounding when f(input) ~ f(baseline)).
COMPLETENESS_FLOOR = 1e-4


def register_method(name: str, signed: bool, title: str):
    """Decorator that adds a salience method: ``fn(objective, embeds, **options) -> (scores, info)``.

    Parameters
    ----------
    name : str
        The name the CLI, the API and :func:`~agilecls.explain` take.
    signed : bool
        Whether a score's sign means something (for or against the target); kept as ``fn.signed`` too.
    title : str
        The name shown to people (the web app's method menu).
    """

    def wrap(fn):
        fn.signed = signed
        return METHODS.register(name, signed=signed, title=title)(fn)

    return wrap


def method_titles() -> dict[str, str]:
    """Display title of every salience method, by name, in registration order.

    Examples
    --------
    >>> method_titles()["grad_dot_input"]
    'Grad · Input'
    """
    return {name: METHODS.meta(name)["title"] for name in METHODS}


def run_method(method: str, objective, embeds, options) -> tuple[torch.Tensor, dict]:
    """Run the registered ``method``; an unknown name is a clear error listing the known ones."""
    return METHODS[method](objective, embeds, **options)


def check_method(method: str) -> str:
    """``method`` when it is a registered salience method, else a ``ValueError`` listing them."""
    return METHODS.check(method)


def _gradients(objective: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(x) [B], ∂f/∂x [B, L, d]); only the input gradient is computed, never weight gradients."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        f = objective(x)
        (grad,) = torch.autograd.grad(f.sum(), [x])
    return f.detach(), grad


@register_method("grad_l2", signed=False, title="Grad L2")
def grad_l2(objective, embeds, **_):
    f, grad = _gradients(objective, embeds[None])
    return grad[0].norm(dim=-1), {"score": float(f[0])}


@register_method("grad_dot_input", signed=True, title="Grad · Input")
def grad_dot_input(objective, embeds, **_):
    f, grad = _gradients(objective, embeds[None])
    return (grad[0] * embeds).sum(-1), {"score": float(f[0])}


@register_method("integrated_gradients", signed=True, title="Integrated Gradients")
def integrated_gradients(objective, embeds, steps: int = 16, batch_size: int = 8, **_):
    """Midpoint Riemann sum of the path integral from a zero-embedding baseline; the ``steps``
    interpolation points run ``batch_size`` at a time. Also reports f(baseline) and how far the
    attributions' sum is from f(x) − f(baseline) (completeness; shrinks as steps grow)."""
    if steps < 1:
        raise ValueError("integrated_gradients needs steps >= 1")
    baseline = torch.zeros_like(embeds)
    alphas = (torch.arange(steps, dtype=embeds.dtype, device=embeds.device) + 0.5) / steps
    total = torch.zeros_like(embeds)
    for chunk in alphas.split(max(1, batch_size)):
        x = baseline + chunk[:, None, None] * (embeds - baseline)[None]
        _, grad = _gradients(objective, x)
        total += grad.sum(0)
    scores = ((embeds - baseline) * total / steps).sum(-1)
    with torch.no_grad():
        ends = objective(torch.stack([embeds, baseline]))
    delta = float(ends[0] - ends[1])
    return scores, {"score": float(ends[0]), "baseline_score": float(ends[1]), "steps": steps,
                    "score_difference": delta, "completeness_error": float(scores.sum(dtype=torch.float64)) - delta}


def completeness_warnings(info: dict) -> list[str]:
    """Warnings about a method's result from its ``info``: Integrated Gradients whose attributions
    miss f(input) − f(baseline) by more than :data:`COMPLETENESS_TOLERANCE` of it.

    Parameters
    ----------
    info : dict
        What a method returned beside the scores (``completeness_error``, ``score_difference`` and
        ``steps`` when Integrated Gradients ran).

    Returns
    -------
    list of str
        Empty when nothing is wrong (or the method reports no completeness error).

    Examples
    --------
    >>> completeness_warnings({"completeness_error": 0.5, "score_difference": 2.0, "steps": 4})[0][:45]
    'Integrated Gradients is incomplete: the token'
    >>> completeness_warnings({"completeness_error": 0.01, "score_difference": 2.0, "steps": 64})
    []
    """
    if "completeness_error" not in info or "score_difference" not in info:
        return []
    error, delta = float(info["completeness_error"]), float(info["score_difference"])
    if abs(error) <= max(COMPLETENESS_TOLERANCE * abs(delta), COMPLETENESS_FLOOR):
        return []
    share = f"{abs(error) / abs(delta):.0%} of it" if delta else "with f(input) = f(baseline)"
    steps = info.get("steps")
    return [f"Integrated Gradients is incomplete: the token scores sum to {error + delta:.4g}, but f(input) − "
            f"f(baseline) is {delta:.4g} (error {error:+.3g}, {share}); raise steps"
            + (f" (now {steps}, try {4 * int(steps)})" if steps else "") + " for faithful attributions."]


