"""TuningConfig: the LoRA tuning settings, their defaults and help texts, in one light module
(no torch), so the CLI can build its options from it without loading a model library."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: Names accepted for ``target_modules`` (Llama, Gemma, Qwen and Mistral projection names).
TARGET_MODULES = {
    "attention": ["q_proj", "v_proj"],
    "attention-all": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "all": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
LOSSES = ("label", "lm")
#: Learning-rate schedules (transformers' names): "linear" warms up, then decays to zero by the last step.
LR_SCHEDULES = ("linear", "cosine", "constant")


def _field(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class TuningConfig:
    """Everything that decides a tuning run (saved with the model): the single source of the LoRA
    defaults, their names and their help texts (``AgileClassifier``'s and ``agilecls train``'s options
    are built from these fields). Defaults were chosen on ETHOS validation rows (docs/tuning.md).

    Examples
    --------
    >>> TuningConfig(epochs=3).train_batch_size
    4
    >>> TuningConfig.help("top_layers").split(";")[0]
    'Adapt only the top N decoder layers'
    """

    rank: int = _field(4, "LoRA rank.")
    lora_alpha: float = _field(8.0, "LoRA scaling numerator (scale = alpha / rank).")
    lora_dropout: float = _field(0.05, "Dropout on the LoRA input.")
    target_modules: str | list = _field("attention", "attention (q/v), attention-all (q/k/v/o), all (every "
                                                     "linear layer of the block) or a list of module names.")
    top_layers: int | None = _field(4, "Adapt only the top N decoder layers; the frozen layers below run once "
                                       "per example and are cached. None = all layers.")
    learning_rate: float = _field(2e-3, "Adam learning rate (2e-3 beat 5e-4 on ETHOS validation: ROC-AUC "
                                        "0.893 vs 0.810).")
    lr_schedule: str = _field("linear", "linear, cosine or constant (after warm-up).")
    warmup_fraction: float = _field(0.1, "Share of the steps spent warming up.")
    epochs: int = _field(6, "Passes over the training texts.")
    train_batch_size: int = _field(4, "Texts per training step (multi-label: (text, label) questions, "
                                           "taken as whole texts, at least one).")
    gradient_accumulation: int = _field(1, "Steps whose gradients are summed before an update.")
    gradient_checkpointing: bool = _field(False, "Trade compute for memory.")
    loss: str = _field("label", "label (cross-entropy over the label tokens) or lm (next-token loss).")
    validation_fraction: float = _field(0.0, "Hold out this share for early stopping (0 = none).")
    patience: int = _field(2, "Epochs without validation improvement before stopping.")
    seed: int = _field(0, "Seed of the adapters' initial values, the batches and the split.")

    def check(self, n_layers: int) -> None:
        """What can only be checked against the model: ``top_layers`` fits its decoder layers.
        (Value ranges are checked by the estimator's ``_parameter_constraints``.)"""
        if self.top_layers is not None and not 1 <= self.top_layers <= n_layers:
            raise ValueError(f"top_layers must be between 1 and {n_layers} (the model's layers) or None for all")

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of field ``name``."""
        return cls.__dataclass_fields__[name].metadata["help"]

    def module_names(self) -> list[str]:
        return list(TARGET_MODULES[self.target_modules]) if isinstance(self.target_modules, str) \
            else list(self.target_modules)

    def layer_indices(self, n_layers: int) -> list[int] | None:
        return None if self.top_layers is None else list(range(n_layers - self.top_layers, n_layers))

    def to_dict(self) -> dict:
        return asdict(self)
