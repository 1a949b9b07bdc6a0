"""LayerSplit: the frozen lower layers' output computed once per token sequence, so that tuning the
top layers costs only those layers per epoch."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from .forward import expand_cache, right_padded, with_cache
from .loading import LanguageModel


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once the wanted layer has run."""


class _SkipLayer(torch.nn.Module):
    """Stands in for a frozen lower layer whose output is already cached: passes hidden states through."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


def decoder_layers(lm: LanguageModel) -> torch.nn.ModuleList:
    return lm.base_model().layers


class LayerSplit:
    """The frozen lower layers' output computed once per token sequence; only the top layers run per call.

    Tuning that adapts only the top ``n_top`` decoder layers leaves everything below unchanged, so
    the lower layers' output for an example is the same every epoch: caching it makes an epoch cost
    only the top layers. The shared prompt prefix is run through the lower layers once and its
    key/value cache reused for every text. ``store`` (a dict) may be shared between splits of the
    same frozen base model and layer count, e.g. across the fits of a benchmark.
    """

    def __init__(self, lm: LanguageModel, n_top: int, batch_size: int = 8, batch_tokens: int = 4096,
                 store: dict | None = None):
        n_layers = len(decoder_layers(lm))
        if not 1 <= n_top <= n_layers:
            raise ValueError(f"n_top must be between 1 and the model's {n_layers} layers, got {n_top}")
        self.lm = lm
        self.n_lower = n_layers - n_top
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.store = {} if store is None else store

    def _run_lower(self, ids, mask, past=None) -> torch.Tensor:
        """Output of layer ``n_lower - 1`` (the embeddings when there are no lower layers)."""
        base = self.lm.base_model()
        if self.n_lower == 0:
            return base.embed_tokens(ids)
        captured = {}

        def hook(module, args, output):
            captured["h"] = output[0] if isinstance(output, tuple) else output
            raise _StopForward

        handle = base.layers[self.n_lower - 1].register_forward_hook(hook)
        try:
            base(input_ids=ids, attention_mask=mask, use_cache=past is not None, **with_cache(base, past))
        except _StopForward:
            pass
        finally:
            handle.remove()
        return captured["h"]

    def _prefix(self, prefix: Sequence[int]):
        """(lower hidden [P, d], lower-layer key/value cache) of the prefix, computed once."""
        key = ("prefix", tuple(prefix))
        if key not in self.store:
            ids = torch.tensor([list(prefix)], device=self.lm.device)
            cache = None
            if self.n_lower:
                from transformers import DynamicCache

                cache = DynamicCache(config=self.lm.base_model().config)
            hidden = self._run_lower(ids, torch.ones_like(ids), cache)
            self.store[key] = (hidden[0].detach(), cache)
        return self.store[key]

    def lower(self, prefix: Sequence[int], rows: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """Lower-layer outputs [len(row), d] of each row continuing ``prefix``, cached by token ids."""
        prefix = tuple(prefix)
        missing = sorted({tuple(r) for r in rows if (prefix, tuple(r)) not in self.store}, key=len)
        if missing:
            with torch.inference_mode(False), torch.no_grad():
                _, cache = self._prefix(prefix) if prefix else (None, None)
                batch: list[tuple[int, ...]] = []
                for i, row in enumerate(missing):
                    batch.append(row)
                    nxt = missing[i + 1] if i + 1 < len(missing) else None
                    if nxt is None or len(batch) >= self.batch_size or len(nxt) * (len(batch) + 1) > self.batch_tokens:
                        self._lower_batch(prefix, batch, cache)
                        batch = []
        return [self.store[(prefix, tuple(r))] for r in rows]

    def _lower_batch(self, prefix: tuple, rows: list[tuple], cache) -> None:
        past = expand_cache(cache, len(rows)) if prefix and cache is not None else None
        n_prefix = len(prefix) if past is not None else 0
        ids, mask = right_padded(rows, self.lm.tokenizer.pad_token_id, self.lm.device, n_prefix)
        hidden = self._run_lower(ids, mask, past)
        for j, row in enumerate(rows):
            self.store[(prefix, row)] = hidden[j, : len(row)].detach().clone()

    def top(self, prefix: Sequence[int], rows: Sequence[Sequence[int]]) -> torch.Tensor:
        """Final hidden states [rows, T, d] of the row positions (after the prefix), running only the top layers.

        The prefix runs through the top layers once and the rows continue its key/value cache, so a
        batch of rows that share a long prefix (the text of a multi-label example, asked about each
        label) pays for it once instead of once per row; gradients reach the adapters through both
        passes. Causal attention makes this the same computation as one forward per row."""
        prefix = tuple(prefix)
        lowers = self.lower(prefix, rows)
        device = self.lm.device
        width = max(len(r) for r in rows)
        body = torch.zeros(len(rows), width, lowers[0].shape[-1], dtype=lowers[0].dtype, device=device)
        for j, h in enumerate(lowers):
            body[j, : len(h)] = h
        _, mask = right_padded(rows, 0, device, len(prefix))
        past = self._top_prefix_cache(prefix, len(rows)) if prefix else None
        with self._top_layers_only() as base:
            out = base(inputs_embeds=body, attention_mask=mask, use_cache=past is not None, **with_cache(base, past))
        return out.last_hidden_state

    def _top_prefix_cache(self, prefix: tuple, batch: int):
        """The key/value cache of the prefix for ``batch`` rows: the top layers' part computed now
        (it depends on the adapters being trained), the lower layers' part from the store. The skip
        layers never read the lower part, but the model reads the cache's length from its first layer."""
        from transformers import DynamicCache

        prefix_h, lower_cache = self._prefix(prefix)
        cache = DynamicCache(config=self.lm.base_model().config)
        with self._top_layers_only() as base:
            base(inputs_embeds=prefix_h.unsqueeze(0), use_cache=True, **with_cache(base, cache))
        for i in range(self.n_lower):
            cache.layers[i] = lower_cache.layers[i]
        return expand_cache(cache, batch)

    @contextlib.contextmanager
    def _top_layers_only(self):
        """The base model with its lower layers replaced by pass-throughs (their output is cached)."""
        base = self.lm.base_model()
        layers = base.layers
        base.layers = torch.nn.ModuleList([_SkipLayer() for _ in range(self.n_lower)] + list(layers[self.n_lower:]))
        try:
            yield base
        finally:
            base.layers = layers
