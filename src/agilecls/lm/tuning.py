"""LoRA tuning of a language model so it writes the right label word after a classification prompt.

Why it is fast on a CPU: by default only the top ``top_layers`` decoder layers get adapters, so the
layers below never change; their output for each example is computed once
(:class:`~agilecls.lm.layer_split.LayerSplit`) and every epoch runs only the top layers. Batches group
texts of similar length, and label scores come from the one scoring engine
(:meth:`LabelScorer.score_tensor`), so training and prediction read the same numbers.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from ..batching import length_grouped_batches
from .config import TuningConfig
from .forward import hidden_states, softcap
from .layer_split import LayerSplit, decoder_layers
from .loading import LanguageModel
from .prompts import EncodedPrompt
from .scoring import LabelScorer


def lora_config(config: TuningConfig, n_layers: int):
    from peft import LoraConfig

    return LoraConfig(r=config.rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.module_names(), layers_to_transform=config.layer_indices(n_layers),
                      layers_pattern="layers" if config.top_layers is not None else None, bias="none",
                      task_type="CAUSAL_LM")


def add_lora(lm: LanguageModel, config: TuningConfig) -> LanguageModel:
    """Wrap ``lm.model`` (a private copy) with fresh LoRA adapters; the seed fixes their initial values."""
    from peft import get_peft_model

    n_layers = len(decoder_layers(lm))
    config.check(n_layers)
    torch.manual_seed(config.seed)
    with warnings.catch_warnings():  # peft reads transformers' old attribute name, deprecated in transformers 5.2x
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        lm.model = get_peft_model(lm.model, lora_config(config, n_layers))
    return lm


def adapter_state(lm: LanguageModel) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(lm.model).items()}


def lr_scheduler(optimizer, config: TuningConfig, total_steps: int):
    """The config's learning-rate schedule over ``total_steps`` optimizer steps. Decaying to zero
    steadies the last epochs: with a constant rate the decision threshold swung from epoch to epoch
    (ETHOS validation F1 0.86 then 0.68 one epoch later; 0.84 then 0.83 with the linear decay)."""
    from transformers import get_scheduler

    name = "constant_with_warmup" if config.lr_schedule == "constant" else config.lr_schedule
    return get_scheduler(name, optimizer, num_warmup_steps=int(config.warmup_fraction * total_steps),
                         num_training_steps=max(total_steps, 1))


@dataclass
class EpochInfo:
    """What the callback receives after each epoch."""

    epoch: int
    train_loss: float
    seconds: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    best_epoch: int | None = None
    extra: dict = field(default_factory=dict)


def validation_split(y_idx: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows), stratified when every class has at least two rows."""
    rows = np.arange(len(y_idx))
    if fraction <= 0:
        return rows, rows[:0]
    counts = np.bincount(y_idx)
    stratify = y_idx if counts[counts > 0].min() >= 2 else None
    n_val = max(1, int(round(fraction * len(rows))))
    train, val = train_test_split(rows, test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(val)


def training_units(n: int, groups: Sequence[int] | None) -> list[np.ndarray]:
    """The prompt indices of each unit that batches and the validation split take whole: one
    prompt each, or every prompt of one group, in the order the groups first appear."""
    if groups is None:
        return [np.array([i]) for i in range(n)]
    groups = np.asarray(groups)
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} prompts")
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    return [np.flatnonzero(inverse == k) for k in np.argsort(first)]


class TrainingBatches:
    """Which prompts train and which validate, and every epoch's batches, taking units whole.

    Without ``groups`` a unit is one prompt: batches hold ``batch_size`` prompts of similar length
    and the validation split is stratified by label. With ``groups`` (the text each prompt asks
    about, e.g. of a multi-label (text, label) pair) a unit is a text with all its prompts: a
    batch holds as many texts as fit in ``batch_size`` prompts (at least one) and the validation
    rows are whole texts. The prompts of one text share its prefix, which the top layers then run
    once per step instead of once per prompt. Counting prompts rather than texts keeps the number
    of steps: on ETHOS multi-label (8 labels) 4 texts per step at the same learning rate learnt far
    less in 6 epochs (hold-out macro F1 0.217 vs 0.537 with 1 text per step,
    ``bench/defaults/multilabel_lora_steps.py``).
    """

    def __init__(self, prompts: Sequence[EncodedPrompt], y: np.ndarray, groups: Sequence[int] | None,
                 batch_size: int, validation_fraction: float, seed: int):
        units = training_units(len(prompts), groups)
        unit_y = y if groups is None else np.zeros(len(units), dtype=np.int64)
        train_units, val_units = validation_split(unit_y, validation_fraction, seed)
        self.train_rows, self.val_rows = (np.concatenate([units[u] for u in part] or [part])
                                          for part in (train_units, val_units))
        #: held-out rows as the caller counts them: prompts, or groups (texts)
        self.validation_rows = self.val_rows if groups is None else val_units
        self.per_step = batch_size if groups is None else max(1, batch_size // max(map(len, units)))
        sizes = [len(units[u]) for u in train_units]  # each unit's positions among the training rows:
        self.members = np.split(np.arange(len(self.train_rows)), np.cumsum(sizes)[:-1]) if sizes else []
        first = [prompts[self.train_rows[m[0]]] for m in self.members]  # batches group similar lengths
        self.lengths = [len(p.body) if groups is None else len(p.prefix) for p in first]

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.members) / self.per_step)

    def epoch(self, rng: np.random.Generator) -> list[np.ndarray]:
        """One epoch's batches, as positions among the training rows."""
        return [np.concatenate([self.members[u] for u in batch])
                for batch in length_grouped_batches(self.lengths, self.per_step, rng)]


class LoraTrainer:
    """Trains the LoRA parameters of ``lm`` with Adam on encoded prompts and label indices.

    ``loss='label'``: cross-entropy over the label tokens at the answer position (the classifier's
    own scores). ``loss='lm'``: next-token cross-entropy over text, template tail, label and
    end-of-text (the fixed instruction prefix is the same in every example and is not scored).
    """

    def __init__(self, lm: LanguageModel, scorer: LabelScorer, config: TuningConfig, progress: bool = True,
                 callback: Callable[[EpochInfo], None] | None = None, store: dict | None = None):
        self.lm = lm
        self.scorer = scorer
        self.config = config
        self.progress = progress
        self.callback = callback
        n_layers = len(decoder_layers(lm))
        self.split = LayerSplit(lm, config.top_layers, store=store) if config.top_layers is not None else None
        self.n_layers = n_layers
        self.history: list[EpochInfo] = []
        self.validation_rows = np.zeros(0, dtype=int)  # rows held out for early stopping, set by fit

    # ---- losses ---------------------------------------------------------------------------------
    def label_logits(self, prompts: Sequence[EncodedPrompt]) -> torch.Tensor:
        return self.scorer.score_tensor(prompts, split=self.split)

    def loss(self, prompts: Sequence[EncodedPrompt], y: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "label":
            return torch.nn.functional.cross_entropy(self.label_logits(prompts), y)
        return self._lm_loss(prompts, y)

    def _lm_loss(self, prompts: Sequence[EncodedPrompt], y: torch.Tensor) -> torch.Tensor:
        eos = self.lm.tokenizer.eos_token_id
        losses = []
        by_prefix: dict[tuple, list[tuple[list[int], int]]] = {}
        for p, label in zip(prompts, y.tolist(), strict=True):
            by_prefix.setdefault(p.prefix, []).append((p.body + self.scorer.label_ids[label] + [eos], len(p.body)))
        weight = self.lm.output_embedding()
        cap = self.lm.logit_softcap()
        for prefix, items in by_prefix.items():
            rows = [r for r, _ in items]
            if self.split is not None:
                hidden = self.split.top(prefix, rows)
            else:
                hidden, _ = hidden_states(self.lm, rows, prefix)
            width = hidden.shape[1]
            targets = torch.full((len(rows), width), -100, dtype=torch.long, device=hidden.device)
            for j, r in enumerate(rows):
                targets[j, : len(r) - 1] = torch.tensor(r[1:], device=hidden.device)
            logits = softcap(hidden @ weight.T, cap)
            losses.append(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                            targets.reshape(-1), reduction="sum"))
        total = sum(losses)
        n_tokens = sum(len(r) - 1 for items in by_prefix.values() for r, _ in items)
        return total / max(n_tokens, 1)

    # ---- training -------------------------------------------------------------------------------
    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.lm.model.parameters() if p.requires_grad]

    def _snapshot(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.lm.model.named_parameters() if p.requires_grad}

    def _restore(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.lm.model.named_parameters())
        with torch.no_grad():
            for n, v in state.items():
                params[n].copy_(v)

    @torch.no_grad()
    def evaluate(self, prompts: Sequence[EncodedPrompt], y: torch.Tensor) -> tuple[float, float]:
        """(label cross-entropy, accuracy) on held-out prompts, adapters in eval mode."""
        self.lm.model.eval()
        logits = torch.cat([self.label_logits(prompts[i:i + 16]) for i in range(0, len(prompts), 16)])
        loss = torch.nn.functional.cross_entropy(logits, y).item()
        return loss, (logits.argmax(1) == y).float().mean().item()

    def fit(self, prompts: Sequence[EncodedPrompt], y_idx: Sequence[int],
            groups: Sequence[int] | None = None) -> list[EpochInfo]:
        """Train on ``prompts`` and their label indices; ``groups`` (optional) names the text each
        prompt asks about, so that steps and the validation split take texts whole
        (:class:`TrainingBatches`)."""
        cfg = self.config
        device = self.lm.device
        y_all = np.asarray(y_idx, dtype=np.int64)
        plan = TrainingBatches(prompts, y_all, groups, cfg.train_batch_size, cfg.validation_fraction, cfg.seed)
        train_rows, val_rows = plan.train_rows, plan.val_rows
        self.validation_rows = plan.validation_rows
        train_prompts = [prompts[i] for i in train_rows]
        val_prompts = [prompts[i] for i in val_rows]
        y_train = torch.tensor(y_all[train_rows], device=device)
        y_val = torch.tensor(y_all[val_rows], device=device)
        params = self.trainable()
        if not params:
            raise RuntimeError("no trainable parameters: the model has no LoRA adapters")
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        optimizer = torch.optim.Adam(params, lr=cfg.learning_rate)
        steps_per_epoch = math.ceil(plan.steps_per_epoch() / cfg.gradient_accumulation)
        scheduler = lr_scheduler(optimizer, cfg, steps_per_epoch * cfg.epochs)
        if cfg.gradient_checkpointing:
            with warnings.catch_warnings():  # renamed in transformers 5; the old name still works
                warnings.simplefilter("ignore", FutureWarning)
                self.lm.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if self.split is not None and len(train_prompts):  # the one-off lower-layer pass, shown on its own
            self._warm_split(train_prompts, y_all[train_rows])
            self._warm_split(val_prompts, y_all[val_rows], lm_rows=False)
        best_loss, best_state, best_epoch, bad_epochs = math.inf, None, None, 0
        try:
            for epoch in range(1, cfg.epochs + 1):
                self.lm.model.train()
                start = time.perf_counter()
                batches = plan.epoch(rng)
                running, seen = 0.0, 0
                optimizer.zero_grad(set_to_none=True)
                bar = tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", disable=not self.progress,
                           leave=False)
                for step, batch in enumerate(bar, 1):
                    loss = self.loss([train_prompts[i] for i in batch], y_train[batch])
                    (loss / cfg.gradient_accumulation).backward()
                    if step % cfg.gradient_accumulation == 0 or step == len(batches):
                        optimizer.step()
                        scheduler.step()
                        optimizer.zero_grad(set_to_none=True)
                    running += loss.item() * len(batch)
                    seen += len(batch)
                    bar.set_postfix(loss=f"{running / seen:.4f}")
                bar.close()
                info = EpochInfo(epoch, running / max(seen, 1), time.perf_counter() - start)
                if len(val_prompts):
                    info.val_loss, info.val_accuracy = self.evaluate(val_prompts, y_val)
                    if info.val_loss < best_loss - 1e-6:
                        best_loss, best_state, best_epoch, bad_epochs = info.val_loss, self._snapshot(), epoch, 0
                    else:
                        bad_epochs += 1
                    info.best_epoch = best_epoch
                self.lm.model.eval()
                self.history.append(info)
                if self.callback is not None:
                    self.callback(info)
                if len(val_prompts) and bad_epochs >= cfg.patience:
                    break
        finally:
            if cfg.gradient_checkpointing:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    self.lm.model.gradient_checkpointing_disable()
            self.lm.model.eval()
        if best_state is not None and best_epoch != self.history[-1].epoch:
            self._restore(best_state)
        return self.history

    def _warm_split(self, prompts: Sequence[EncodedPrompt], y: Sequence[int], lm_rows: bool = True) -> None:
        """Run the frozen lower layers once for every training sequence (cached for all epochs)."""
        eos = self.lm.tokenizer.eos_token_id
        groups: dict[tuple, list[list[int]]] = {}
        for p, label in zip(prompts, y, strict=True):
            if self.config.loss == "lm" and lm_rows:
                rows = [p.body + self.scorer.label_ids[label] + [eos]]
            else:
                rows = [r.tokens for r in self.scorer.rows_for([p])[p.prefix]]
            groups.setdefault(p.prefix, []).extend(rows)
        step = 64
        total = sum(len(rows) for rows in groups.values())
        with tqdm(total=total, desc="caching lower layers", unit="row", disable=not self.progress,
                  leave=False) as bar:
            for prefix, rows in groups.items():
                for i in range(0, len(rows), step):
                    self.split.lower(prefix, rows[i:i + step])
                    bar.update(len(rows[i:i + step]))
