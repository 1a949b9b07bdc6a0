"""The label-scoring engine: the one place that turns prompts into a log-probability per label.

How it stays fast:
- single-token labels are read from the hidden state at the answer position multiplied by only
  the label tokens' rows of the output embedding (no full-vocabulary LM head);
- a prefix shared by many prompts (instructions, few-shot examples) is run once and its key/value
  cache reused for every text;
- rows are grouped by length so a batch is padded only to its own longest row.
Multi-token labels are scored by their full log-likelihood (continuation tokens need the full
softmax at their own positions only).
"""

from __future__ import annotations

import copy
import functools
import inspect
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .lm import LanguageModel
from .prompts import PromptParts


class LabelTokenError(ValueError):
    """Labels that cannot be told apart by their tokens."""


def label_token_ids(tokenizer, labels: Sequence[str], label_prefix: str) -> list[list[int]]:
    """Token ids of each label as the model would write it after the prompt; rejects labels
    that are duplicated or tokenize identically (they would always score the same)."""
    if len(set(labels)) != len(labels):
        dupes = sorted({lab for lab in labels if list(labels).count(lab) > 1})
        raise LabelTokenError(f"duplicate labels {dupes}")
    ids = []
    for label in labels:
        if not str(label).strip():
            raise LabelTokenError("a label is empty or whitespace")
        tokens = tokenizer(label_prefix + str(label), add_special_tokens=False)["input_ids"]
        ids.append(list(tokens))
    seen: dict[tuple, str] = {}
    for label, tokens in zip(labels, ids):
        if tuple(tokens) in seen:
            raise LabelTokenError(f"labels {seen[tuple(tokens)]!r} and {label!r} tokenize to the same tokens "
                                  f"{tokens}; rename one of them")
        seen[tuple(tokens)] = label
    return ids


@dataclass
class EncodedPrompt:
    """Token ids of one prompt: the shared prefix and the per-text body (text + tail)."""

    prefix: tuple[int, ...]
    body: list[int]
    truncated: bool = False


class PromptEncoder:
    """Tokenizes PromptParts, caching the prefix ids and truncating texts that would overflow the context."""

    def __init__(self, lm: LanguageModel, max_length: int | None = None, reserve: int = 0):
        self.lm = lm
        self.max_length = min(max_length or lm.max_length, lm.max_length)
        self.reserve = reserve
        self._prefix_cache: dict[str, tuple[int, ...]] = {}

    def _prefix_ids(self, prefix: str) -> tuple[int, ...]:
        if prefix not in self._prefix_cache:
            tok = self.lm.tokenizer
            has_bos_text = bool(tok.bos_token) and prefix.startswith(tok.bos_token)
            self._prefix_cache[prefix] = tuple(tok(prefix, add_special_tokens=not has_bos_text)["input_ids"])
        return self._prefix_cache[prefix]

    def encode(self, parts: Sequence[PromptParts]) -> list[EncodedPrompt]:
        tok = self.lm.tokenizer
        texts = tok([p.text for p in parts], add_special_tokens=False)["input_ids"]
        tails = {tail: tok(tail, add_special_tokens=False)["input_ids"] for tail in {p.tail for p in parts}}
        out, n_truncated = [], 0
        for p, text_ids in zip(parts, texts):
            prefix, tail = self._prefix_ids(p.prefix), tails[p.tail]
            room = self.max_length - len(prefix) - len(tail) - self.reserve
            if room < 1:
                raise ValueError(f"the prompt template alone ({len(prefix) + len(tail)} tokens) does not fit "
                                 f"the context of {self.max_length} tokens; use fewer in-context examples")
            truncated = len(text_ids) > room
            n_truncated += truncated
            out.append(EncodedPrompt(prefix, list(text_ids[:room]) + list(tail), truncated))
        if n_truncated:
            warnings.warn(f"{n_truncated} text(s) did not fit the {self.max_length}-token prompt limit and were "
                          f"truncated (the template's tail is kept)", stacklevel=3)
        return out


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


@functools.lru_cache(maxsize=None)
def _cache_keyword(model_type: type) -> str:
    return "cache" if "cache" in inspect.signature(model_type.forward).parameters else "past_key_values"


def with_cache(model, cache) -> dict:
    """The keyword argument that hands a key/value cache to ``model``: ``cache`` in recent transformers
    (where ``past_key_values`` is deprecated, to be removed in 5.40), ``past_key_values`` before."""
    return {_cache_keyword(type(model)): cache}


def output_cache(out):
    """The key/value cache a forward pass returned (``out.cache``, or ``out.past_key_values`` before)."""
    return out["cache"] if "cache" in out else out.past_key_values


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
        out = base(input_ids=ids, attention_mask=mask, use_cache=True, **with_cache(base, expand_cache(cache, len(rows))))
        return out.last_hidden_state, lengths
    if prefix:
        ids = torch.cat([torch.tensor([list(prefix)] * len(rows), device=lm.device), ids], dim=1)
    out = base(input_ids=ids, attention_mask=mask, use_cache=False)
    return out.last_hidden_state[:, len(prefix):], lengths


@dataclass
class _Row:
    example: int
    tokens: list[int]
    answer_pos: int
    label: int | None  # multi-token label continued in this row; None = first tokens only


class LabelScorer:
    """Log-probability of each label after each prompt.

    ``normalize='labels'`` (default) returns scores whose softmax over the labels equals the
    renormalised label probabilities (the answer position's full-vocabulary normaliser is a
    constant per text and is skipped); ``'vocab'`` returns true log-probabilities, computing that
    normaliser for one position per text. ``length_normalize`` averages multi-token
    log-likelihoods per token (implies ``'vocab'``)."""

    def __init__(self, lm: LanguageModel, label_ids: list[list[int]], normalize: str = "labels",
                 length_normalize: bool = False, batch_size: int = 8, batch_tokens: int = 4096,
                 reuse_prefix: bool = True, progress: bool = True):
        if normalize not in ("labels", "vocab"):
            raise ValueError("normalize must be 'labels' or 'vocab'")
        self.lm = lm
        self.label_ids = label_ids
        self.vocab_norm = normalize == "vocab" or length_normalize
        self.length_normalize = length_normalize
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.reuse_prefix = reuse_prefix
        self.progress = progress
        self.first_ids = [ids[0] for ids in label_ids]
        self.multi = [i for i, ids in enumerate(label_ids) if len(ids) > 1]

    def rows_for(self, prompts: Sequence[EncodedPrompt]) -> dict[tuple[int, ...], list[_Row]]:
        """One row per text, or one per (text, multi-token label) carrying the label's tokens."""
        groups: dict[tuple[int, ...], list[_Row]] = {}
        for i, p in enumerate(prompts):
            answer = len(p.body) - 1
            rows = [_Row(i, p.body + self.label_ids[m][:-1], answer, m) for m in self.multi] or [
                _Row(i, list(p.body), answer, None)]
            groups.setdefault(p.prefix, []).extend(rows)
        return groups

    def row_scores(self, hidden: torch.Tensor, rows: list[_Row]) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Differentiable scores from hidden states: first-token scores [rows, labels] and, for
        multi-token rows, the summed log-probability of the label's continuation tokens."""
        weight = self.lm.output_embedding()
        cap = self.lm.logit_softcap()
        index = torch.arange(len(rows), device=hidden.device)
        h_answer = hidden[index, torch.tensor([r.answer_pos for r in rows], device=hidden.device)]
        first = softcap(h_answer @ weight[self.first_ids].T, cap)
        if self.vocab_norm:
            first = first - torch.logsumexp(softcap(h_answer @ weight.T, cap), dim=-1, keepdim=True)
        continuation: dict[int, torch.Tensor] = {}
        for j, r in enumerate(rows):
            if r.label is None:
                continue
            targets = self.label_ids[r.label][1:]
            positions = torch.arange(r.answer_pos + 1, r.answer_pos + 1 + len(targets), device=hidden.device)
            logp = torch.log_softmax(softcap(hidden[j, positions] @ weight.T, cap), dim=-1)
            continuation[j] = logp[torch.arange(len(targets)), torch.tensor(targets, device=hidden.device)].sum()
        return first, continuation

    def batches(self, rows: list[_Row]) -> list[list[_Row]]:
        """Rows sorted by length and cut into batches bounded in count and padded tokens."""
        order = sorted(rows, key=lambda r: len(r.tokens))
        batches, current = [], []
        for row in order:
            if current and (len(current) >= self.batch_size or len(row.tokens) * (len(current) + 1) > self.batch_tokens):
                batches.append(current)
                current = []
            current.append(row)
        if current:
            batches.append(current)
        return batches

    def combine(self, n: int, scored: list[tuple[_Row, torch.Tensor, torch.Tensor | None]]) -> torch.Tensor:
        """Assemble per-row results into [texts, labels] scores."""
        n_labels = len(self.label_ids)
        out = [[None] * n_labels for _ in range(n)]
        for row, first, cont in scored:
            for k in range(n_labels):
                if k not in self.multi and out[row.example][k] is None:
                    out[row.example][k] = first[k]
            if row.label is not None:
                out[row.example][row.label] = first[row.label] + cont
        scores = torch.stack([torch.stack(r) for r in out])
        if self.length_normalize:
            lengths = torch.tensor([len(ids) for ids in self.label_ids], dtype=scores.dtype, device=scores.device)
            scores = scores / lengths
        return scores

    def score_tensor(self, prompts: Sequence[EncodedPrompt], split=None) -> torch.Tensor:
        """Scores [texts, labels] as a tensor that carries gradients when enabled (used by tuning);
        ``split`` (a :class:`LayerSplit`) reuses cached lower-layer outputs and runs only the top layers."""
        scored = []
        for prefix, rows in self.rows_for(prompts).items():
            hidden, _ = hidden_states(self.lm, [r.tokens for r in rows], prefix, split=split)
            first, cont = self.row_scores(hidden, rows)
            scored += [(r, first[j], cont.get(j)) for j, r in enumerate(rows)]
        return self.combine(len(prompts), scored)

    @torch.inference_mode()
    def score(self, prompts: Sequence[EncodedPrompt], desc: str = "scoring", split=None) -> np.ndarray:
        """Scores [texts, labels] as float64 numpy, batched, with the prefix cache reused (or, with
        ``split``, the cached lower-layer outputs of a :class:`LayerSplit`)."""
        if self.multi and split is None:
            return self._score_multi_token(prompts, desc)
        groups = self.rows_for(prompts)
        total = sum(len(rows) for rows in groups.values())
        scored = []
        with tqdm(total=total, desc=desc, unit="row", disable=not self.progress or total < 16, leave=False) as bar:
            for prefix, rows in groups.items():
                cache = prefix_cache(self.lm, prefix) if self.reuse_prefix and prefix and split is None else None
                for batch in self.batches(rows):
                    hidden, _ = hidden_states(self.lm, [r.tokens for r in batch], prefix, cache, split)
                    first, cont = self.row_scores(hidden, batch)
                    scored += [(r, first[j], cont.get(j)) for j, r in enumerate(batch)]
                    bar.update(len(batch))
        return self.combine(len(prompts), scored).double().cpu().numpy()

    def _score_multi_token(self, prompts: Sequence[EncodedPrompt], desc: str) -> np.ndarray:
        """Inference path for label sets with multi-token labels (see :meth:`_score_multi`)."""
        groups: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
        for i, p in enumerate(prompts):
            groups.setdefault(p.prefix, []).append((i, p.body))
        out = [None] * len(prompts)
        with tqdm(total=len(prompts), desc=desc, unit="text", disable=not self.progress or len(prompts) < 16,
                  leave=False) as bar:
            for prefix, examples in groups.items():
                cache = prefix_cache(self.lm, prefix) if self.reuse_prefix and prefix else None
                for example, scores in self._score_multi(prefix, examples, cache, bar):
                    out[example] = scores
        scores = torch.stack(out)
        if self.length_normalize:
            scores = scores / torch.tensor([len(ids) for ids in self.label_ids], dtype=scores.dtype,
                                           device=scores.device)
        return scores.double().cpu().numpy()

    def _score_multi(self, prefix: tuple[int, ...], examples: list[tuple[int, list[int]]], cache, bar) -> list:
        """Multi-token labels without re-running the text once per label: each text's body runs once
        (texts of equal length batched, so no padding), then every label's continuation tokens run
        as a short batch on that body's key/value cache."""
        weight, cap = self.lm.output_embedding(), self.lm.logit_softcap()
        device = self.lm.device
        base = self.lm.base_model()
        conts = [self.label_ids[m][:-1] for m in self.multi]
        by_length: dict[int, list[tuple[int, list[int]]]] = {}
        for example, body in examples:
            by_length.setdefault(len(body), []).append((example, body))
        results = []
        for length, group in sorted(by_length.items()):
            for start in range(0, len(group), self.batch_size):
                batch = group[start:start + self.batch_size]
                ids = torch.tensor([body for _, body in batch], device=device)
                mask = torch.ones(len(batch), len(prefix) + length, dtype=torch.long, device=device)
                past = expand_cache(cache, len(batch)) if cache is not None else None
                out = base(input_ids=ids if past is not None or not prefix else
                           torch.cat([torch.tensor([list(prefix)] * len(batch), device=device), ids], 1),
                           attention_mask=mask, use_cache=True, **with_cache(base, past))
                h_answer = out.last_hidden_state[:, -1]
                first = softcap(h_answer @ weight[self.first_ids].T, cap)
                if self.vocab_norm:
                    first = first - torch.logsumexp(softcap(h_answer @ weight.T, cap), dim=-1, keepdim=True)
                body_cache = output_cache(out)
                body_cache.batch_repeat_interleave(len(conts))
                cont_ids, cont_mask = right_padded([c for _ in batch for c in conts],
                                                   self.lm.tokenizer.pad_token_id, device)
                full_mask = torch.cat([mask.repeat_interleave(len(conts), 0), cont_mask], 1)
                hidden = base(input_ids=cont_ids, attention_mask=full_mask, use_cache=True,
                              **with_cache(base, body_cache)).last_hidden_state
                logp = torch.log_softmax(softcap(hidden @ weight.T, cap), dim=-1)
                for b, (example, _) in enumerate(batch):
                    scores = first[b].clone()
                    for j, m in enumerate(self.multi):
                        targets = self.label_ids[m][1:]
                        row = logp[b * len(conts) + j, torch.arange(len(targets)), torch.tensor(targets, device=device)]
                        scores[m] = scores[m] + row.sum()
                    results.append((example, scores))
                bar.update(len(batch))
        return results


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
        """Final hidden states [rows, T, d] of the row positions (after the prefix), running only the top layers."""
        prefix = tuple(prefix)
        lowers = self.lower(prefix, rows)
        device = self.lm.device
        width = max(len(r) for r in rows)
        d = lowers[0].shape[-1]
        body = torch.zeros(len(rows), width, d, dtype=lowers[0].dtype, device=device)
        for j, h in enumerate(lowers):
            body[j, : len(h)] = h
        _, mask = right_padded(rows, 0, device, len(prefix))
        if prefix:
            prefix_h = self._prefix(prefix)[0]
            body = torch.cat([prefix_h.unsqueeze(0).expand(len(rows), -1, -1), body], dim=1)
        base = self.lm.base_model()
        layers = base.layers
        base.layers = torch.nn.ModuleList([_SkipLayer() for _ in range(self.n_lower)] + list(layers[self.n_lower:]))
        try:
            out = base(inputs_embeds=body, attention_mask=mask, use_cache=False)
        finally:
            base.layers = layers
        return out.last_hidden_state[:, len(prefix):]
