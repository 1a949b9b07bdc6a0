"""Objectives: a differentiable score of the prompt's input embeddings, the thing salience explains.

:class:`TargetLogProb` scores a language model's target continuation; :class:`ClassifierLogProb`
scores one label of a fitted AgileClassifier through the classifier's own scorer.
"""

from __future__ import annotations

import numpy as np
import torch

from ..lm.forward import softcap
from ..lm.loading import LanguageModel


class Objective:
    """f(x): x [B, prompt_len, d] prompt embeddings → [B] scores; everything else held fixed."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class TargetLogProb(Objective):
    """Summed log-probability of target tokens ``span`` after the prompt, full-vocabulary softmax
    at those positions only (the LM head is never run over the prompt)."""

    def __init__(self, lm: LanguageModel, target_ids: list[int], span: tuple[int, int]):
        self.lm = lm
        self.target_ids = target_ids
        self.span = span
        ids = torch.tensor([target_ids], device=lm.device)
        with torch.no_grad():
            self.target_embeds = lm.model.get_input_embeddings()(ids)[0] if target_ids else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        batch, n_prompt = x.shape[0], x.shape[1]
        a, b = self.span
        # Tokens after the last scored one cannot influence the score: leave them out.
        inputs = x if b <= 1 else torch.cat([x, self.target_embeds[:b - 1].expand(batch, -1, -1)], dim=1)
        hidden = self.lm.base_model()(inputs_embeds=inputs, use_cache=False).last_hidden_state
        positions = torch.arange(n_prompt - 1 + a, n_prompt - 1 + b, device=x.device)
        logits = softcap(hidden[:, positions] @ self.lm.output_embedding().T, self.lm.logit_softcap())
        logp = torch.log_softmax(logits, dim=-1)
        wanted = torch.tensor(self.target_ids[a:b], device=x.device)
        return logp[:, torch.arange(b - a, device=x.device), wanted].sum(dim=1)


class ClassifierLogProb(Objective):
    """Calibrated log-probability of one label of an AgileClassifier, computed by the classifier's
    own LabelScorer (``rows_for`` / ``row_scores`` / ``combine``) on embeddings instead of ids."""

    def __init__(self, clf, prompt, label: int):
        self.clf = clf
        self.scorer = clf.scorer_
        self.lm = self.scorer.lm
        self.label = label
        ((prefix, rows),) = self.scorer.rows_for([prompt]).items()
        self.prefix = prefix
        self.rows = rows
        self.n_prompt = len(prefix) + len(prompt.body)
        embed = self.lm.model.get_input_embeddings()
        with torch.no_grad():  # row tokens beyond the prompt: a multi-token label's continuation
            self.extra = [embed(torch.tensor([r.tokens[len(prompt.body):]], dtype=torch.long, device=self.lm.device))[0]
                          for r in rows]
        self.bias = torch.tensor(np.asarray(getattr(clf, "bias_", 0.0)), dtype=torch.float32)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        pieces = [torch.cat([x[b], extra], dim=0) for b in range(batch) for extra in self.extra]
        width = max(len(p) for p in pieces)
        inputs = torch.stack([torch.nn.functional.pad(p, (0, 0, 0, width - len(p))) for p in pieces])
        mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in pieces], device=x.device)
        hidden = self.lm.base_model()(inputs_embeds=inputs, attention_mask=mask, use_cache=False).last_hidden_state
        hidden = hidden[:, len(self.prefix):]
        rows = list(self.rows) * batch
        first, cont = self.scorer.row_scores(hidden, rows)
        out = []
        n = len(self.rows)
        for b in range(batch):
            scored = [(rows[j], first[j], cont.get(j)) for j in range(b * n, (b + 1) * n)]
            scores = self.scorer.combine(1, scored)[0] - self.bias.to(x)
            out.append(torch.log_softmax(scores, dim=-1)[self.label])
        return torch.stack(out)


