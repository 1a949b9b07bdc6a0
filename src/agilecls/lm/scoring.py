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

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..runtime import measured_choice
from .forward import expand_cache, hidden_states, output_cache, prefix_cache, right_padded, softcap, with_cache
from .loading import LanguageModel
from .prompts import EncodedPrompt

#: Texts per scoring forward pass tried on a machine's first load of a model (smallest first).
BATCH_CANDIDATES = (4, 8, 16)
#: The measurement's synthetic prompts: a shared prefix (instructions) and texts of 16-48 tokens.
MEASURE_PREFIX, MEASURE_TEXTS = 64, 32


def scoring_batch_size(lm: LanguageModel, label_ids: Sequence[Sequence[int]]) -> int:
    """Texts per scoring forward pass for ``lm`` on this machine, chosen by measurement: the engine
    itself (:class:`LabelScorer`) scores the same synthetic prompts at each of
    :data:`BATCH_CANDIDATES`, and the smallest wins unless a larger one is 15% faster; measured
    once per machine and model (:func:`agilecls.runtime.measured_choice`). On a 2-core
    AVX512-BF16 CPU, batches of 16 scored 1.27x the texts/s of 4 (``python -m
    bench.speed.inference_options``)."""
    gen = torch.Generator().manual_seed(0)
    high = min(lm.model.get_input_embeddings().num_embeddings, 1000)

    def ids(n: int) -> list[int]:
        return torch.randint(0, high, (n,), generator=gen).tolist()

    prefix = tuple(ids(MEASURE_PREFIX))
    prompts = [EncodedPrompt(prefix, ids(16 + (7 * i) % 33)) for i in range(MEASURE_TEXTS)]

    def texts_per_second(size: int) -> float:
        scorer = LabelScorer(lm, label_ids, batch_size=size, progress=False)
        scorer.score(prompts[:size])  # warm-up
        start = time.perf_counter()
        scorer.score(prompts)
        return len(prompts) / (time.perf_counter() - start)

    name = f"llm engine batch:{lm.spec}:{str(lm.dtype).replace('torch.', '')}:{lm.device.type}"
    return measured_choice(name, BATCH_CANDIDATES, texts_per_second, device=lm.device.type)[0]


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

    def first_token_scores(self, h_answer: torch.Tensor) -> torch.Tensor:
        """Scores [rows, labels] of each label's first token from answer-position hidden states,
        against only the label tokens' rows of the output embedding (minus the full-vocabulary
        normaliser when ``vocab_norm``)."""
        weight, cap = self.lm.output_embedding(), self.lm.logit_softcap()
        first = softcap(h_answer @ weight[self.first_ids].T, cap)
        if self.vocab_norm:
            first = first - torch.logsumexp(softcap(h_answer @ weight.T, cap), dim=-1, keepdim=True)
        return first

    def length_normalized(self, scores: torch.Tensor) -> torch.Tensor:
        """Multi-token log-likelihoods averaged per token when ``length_normalize``."""
        if not self.length_normalize:
            return scores
        lengths = torch.tensor([len(ids) for ids in self.label_ids], dtype=scores.dtype, device=scores.device)
        return scores / lengths

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
        first = self.first_token_scores(h_answer)
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
            if current and (len(current) >= self.batch_size
                            or len(row.tokens) * (len(current) + 1) > self.batch_tokens):
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
        return self.length_normalized(torch.stack([torch.stack(r) for r in out]))

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
        return self.length_normalized(torch.stack(out)).double().cpu().numpy()

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
                first = self.first_token_scores(out.last_hidden_state[:, -1])
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


