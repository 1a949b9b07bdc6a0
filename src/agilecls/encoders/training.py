"""Training loops of the sentence-encoder family, apart from the estimator (as setfit keeps its
trainer beside its model): a head on frozen embeddings, or the encoder and head end to end.

Both loops sum the SNGP precision afresh each epoch (``head.reset_covariance()`` at the start,
``update_covariance=True`` in the forward pass) and call ``head.finalize()`` at the end; plain heads
treat those calls as no-ops, so one loop serves every head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..batching import length_grouped_batches
from .sentence import SentenceEncoder


@dataclass
class Schedule:
    """Optimiser settings shared by both loops (the EncoderClassifier's parameters of the same names)."""

    epochs: int
    batch_size: int = 64
    learning_rate: float = 1e-3
    encoder_learning_rate: float = 5e-5
    weight_decay: float = 1e-4
    seed: int = 0
    progress: bool = False
    multilabel: bool = False  # targets are 0/1 rows [n, labels]: a sigmoid per label, binary cross-entropy
    min_steps: int = 0  # fine-tuning: more epochs when fewer than this many steps would run
    temperature: float = 1.0  # soft targets (distillation): logits / T, loss x T^2 (Hinton et al. 2015)

    def fine_tune_epochs(self, n_texts: int) -> int:
        """Epochs fine-tuning runs on ``n_texts``: ``epochs``, raised to whole epochs until at least
        ``min_steps`` optimiser steps run."""
        per_epoch = math.ceil(n_texts / self.batch_size)
        return max(self.epochs, math.ceil(self.min_steps / max(per_epoch, 1)))


def _step(head, opt, sched, z: torch.Tensor, target: torch.Tensor, multilabel: bool = False,
          temperature: float = 1.0) -> torch.Tensor:
    logits = head(z, update_covariance=True)
    if multilabel:  # mean over (text, label) pairs
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
    elif target.is_floating_point():  # soft targets [batch, classes]: cross-entropy at the temperature
        loss = torch.nn.functional.cross_entropy(logits / temperature, target.to(logits.dtype)) * temperature ** 2
    else:
        loss = torch.nn.functional.cross_entropy(logits, target)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return loss


def train_head(head: torch.nn.Module, emb: np.ndarray, y_idx: np.ndarray, schedule: Schedule,
               device: str = "cpu") -> torch.nn.Module:
    """Train ``head`` on frozen embeddings [n, d] with AdamW and a one-cycle learning rate; returns
    the head in eval mode, finalised. ``y_idx``: class indices [n], 0/1 rows [n, labels] with
    ``schedule.multilabel``, or class probabilities [n, classes] (soft targets)."""
    head = head.to(device)
    emb_t, y = torch.from_numpy(np.asarray(emb)).to(device), torch.from_numpy(np.asarray(y_idx)).to(device)
    n = len(y)
    steps = schedule.epochs * math.ceil(n / schedule.batch_size)
    opt = torch.optim.AdamW(head.parameters(), lr=schedule.learning_rate, weight_decay=schedule.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=schedule.learning_rate, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(schedule.seed)
    threads = torch.get_num_threads()
    if device == "cpu":
        # batches of 64 x a few hundred are too small to gain from threads, and on a busy CPU
        # the threads' spin-waits made training several times slower
        torch.set_num_threads(1)
    try:
        for _ in tqdm(range(schedule.epochs), desc="epochs", disable=not schedule.progress):
            head.train()
            head.reset_covariance()
            for batch in torch.randperm(n, generator=gen).split(schedule.batch_size):
                _step(head, opt, sched, emb_t[batch], y[batch], schedule.multilabel, schedule.temperature)
    finally:
        torch.set_num_threads(threads)
    head.eval()
    head.finalize()
    return head


def unfreeze_top_layers(model, n_layers: int | None) -> list[torch.nn.Parameter]:
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


def fine_tune(encoder: SentenceEncoder, head: torch.nn.Module, texts: list[str], y_idx: np.ndarray,
              schedule: Schedule, layers: int | None = None, device: str = "cpu") -> np.ndarray:
    """Train the encoder's top ``layers`` (None = all) and ``head`` end to end; the SNGP precision is
    summed over the last epoch as the encoder moves (as in BERT-SNGP). Returns the last epoch's
    training embeddings [n, d]; encoder and head end frozen, in eval mode."""
    model = encoder.model
    head = head.to(device)
    trainable = unfreeze_top_layers(model, layers)
    y = torch.from_numpy(np.asarray(y_idx))
    # texts of similar length share a batch, since a batch is padded to its longest text: on CLINC150
    # padding fell from 44% to 3% of the tokens and fine-tuning ran 1.5x faster (bench/speed/finetune_batching.py)
    rng = np.random.default_rng(schedule.seed)
    lengths = encoder.token_lengths(texts)
    epochs = schedule.fine_tune_epochs(len(texts))
    plan = [length_grouped_batches(lengths, schedule.batch_size, rng) for _ in range(epochs)]
    steps = sum(len(batches) for batches in plan)
    opt = torch.optim.AdamW([{"params": trainable, "lr": schedule.encoder_learning_rate},
                             {"params": list(head.parameters()), "lr": schedule.learning_rate}],
                            weight_decay=schedule.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[schedule.encoder_learning_rate, schedule.learning_rate],
                                                total_steps=steps, pct_start=0.1)
    emb = np.zeros((len(texts), encoder.dim), np.float32)
    bar = tqdm(total=steps, desc="fine-tuning", disable=not schedule.progress)
    for batches in plan:
        model.train()
        head.train()
        head.reset_covariance()
        for batch in batches:
            z = encoder.forward([texts[i] for i in batch.tolist()])
            loss = _step(head, opt, sched, z, y[torch.from_numpy(batch)].to(z.device), schedule.multilabel,
                         schedule.temperature)
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
