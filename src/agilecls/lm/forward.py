"""Running the decoder: right padding, key/value-cache reuse for a shared prefix, final hidden
states. The scoring engine, tuning and salience all run the model through these helpers."""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Sequence

import torch

from .loading import LanguageModel


def softcap(logits: torch.Tensor, cap: float | None) -> torch.Tensor:
    return torch.tanh(logits / cap) * cap if cap else logits


def expand_cache(cache, batch: int):
    """A batch-1 key/value cache seen ``batch`` times without copying it: each layer holds a
    broadcast view, which the next forward's concatenation turns into the batch's own tensor
    (the shared prefix cache itself is never written to)."""
    expanded = copy.copy(cache)
    expanded.layers = []
    for layer in cache.layers:
        view = copy.copy(layer)
        if layer.keys is not None:  # layers the prefix never reached stay empty
            view.keys = layer.keys.expand(batch, *layer.keys.shape[1:])
            view.values = layer.values.expand(batch, *layer.values.shape[1:])
        expanded.layers.append(view)
    return expanded


@functools.cache
def _cache_keyword(model_type: type) -> str:
    return "cache" if "cache" in inspect.signature(model_type.forward).parameters else "past_key_values"


def with_cache(model, cache) -> dict:
    """The keyword argument that hands a key/value cache to ``model``: ``cache`` in recent transformers
    (where ``past_key_values`` is deprecated, to be removed in 5.40), ``past_key_values`` before."""
    return {_cache_keyword(type(model)): cache}


def output_cache(out):
    """The key/value cache a forward pass returned (``out.cache``, or ``out.past_key_values`` before)."""
    # not out.get("cache", out.past_key_values): the default would be read even when "cache" is there,
    # and the deprecated attribute may warn or be gone
    return out["cache"] if "cache" in out else out.past_key_values  # noqa: SIM401


def prefix_cache(lm: LanguageModel, prefix: Sequence[int]):
    """Run the shared prefix once and keep its key/value cache."""
    ids = torch.tensor([list(prefix)], device=lm.device)
    return output_cache(lm.base_model()(input_ids=ids, use_cache=True))


def right_padded(rows: Sequence[Sequence[int]], pad_id: int | None, device, n_prefix: int = 0):
    """Token ids [rows, T] right-padded to the longest row, and the attention mask
    [rows, n_prefix + T] that also covers ``n_prefix`` shared prefix positions before them."""
    width = max(len(r) for r in rows)
    pad = pad_id or 0
    ids = torch.tensor([list(r) + [pad] * (width - len(r)) for r in rows], device=device)
    mask = torch.tensor([[1] * (n_prefix + len(r)) + [0] * (width - len(r)) for r in rows], device=device)
    return ids, mask


def hidden_states(lm: LanguageModel, rows: list[list[int]], prefix: Sequence[int], cache=None, split=None):
    """Final hidden states of right-padded ``rows`` that continue ``prefix`` (via its cache when given).

    Returns (hidden [rows, T, d], lengths). Right padding keeps positions of real tokens exact
    and causal attention keeps them blind to the padding after them. With a :class:`LayerSplit`
    the frozen lower layers' outputs come from its per-sequence cache and only the top layers run."""
    lengths = [len(r) for r in rows]
    if split is not None:
        return split.top(prefix, rows), lengths
    ids, mask = right_padded(rows, lm.tokenizer.pad_token_id, lm.device, len(prefix))
    base = lm.base_model()
    if cache is not None:
        out = base(input_ids=ids, attention_mask=mask, use_cache=True,
                   **with_cache(base, expand_cache(cache, len(rows))))
        return out.last_hidden_state, lengths
    if prefix:
        ids = torch.cat([torch.tensor([list(prefix)] * len(rows), device=lm.device), ids], dim=1)
    out = base(input_ids=ids, attention_mask=mask, use_cache=False)
    return out.last_hidden_state[:, len(prefix):], lengths
