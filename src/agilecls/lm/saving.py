"""The AgileClassifier's folder: ``agilecls.json`` (labels, template, base-model spec and
fingerprint, dtype, training config and history, metrics, the content-free calibration bias) and,
when tuned, ``adapter_model.safetensors``. The base model itself is never copied: it is reloaded
from its spec (or ``model=``) and must match the saved fingerprint."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from safetensors.torch import load_file, save_file

from ..persistence import ModelFormatError, inside, validate_manifest
from .loading import LanguageModel, load_lm, private_copy
from .prompts import PromptTemplate
from .tuning import adapter_state, add_lora

ADAPTERS = "adapter_model.safetensors"


class _BaseModelInfo(BaseModel):
    spec: str
    fingerprint: dict
    dtype: str | None = None


class _Tuning(BaseModel):
    config: dict
    history: list = []
    seconds: float | None = None
    adapters: str = ADAPTERS


class _Calibration(BaseModel):
    method: str | None = None
    bias: list[float]


class AgileManifest(BaseModel):
    """The AgileClassifier's part of ``agilecls.json``, checked on load."""

    model_config = ConfigDict(extra="allow")
    labels: list[str] = Field(min_length=2)
    params: dict
    template: dict
    base_model: _BaseModelInfo
    tuning: _Tuning | None = None
    metrics: dict = {}
    calibration: _Calibration

    @model_validator(mode="after")
    def _consistent(self):
        if len(set(self.labels)) != len(self.labels) or not all(label.strip() for label in self.labels):
            raise ValueError(f"labels must be distinct and non-empty, got {self.labels}")
        if len(self.calibration.bias) != len(self.labels):
            raise ValueError(f"calibration.bias has {len(self.calibration.bias)} values for {len(self.labels)} labels")
        return self


def model_fingerprint(lm: LanguageModel) -> dict:
    """Identifies a base model: its shape and a hash of some input-embedding rows (rounded, device-free)."""
    model = lm.model.get_base_model() if hasattr(lm.model, "get_base_model") else lm.model
    config = getattr(model.config, "text_config", None) or model.config
    rows = model.get_input_embeddings().weight[:64].detach().float().cpu()
    digest = hashlib.sha256(torch.round(rows * 1e3).to(torch.int64).numpy().tobytes()).hexdigest()[:16]
    return {"model_type": config.model_type, "hidden_size": int(config.hidden_size),
            "num_hidden_layers": int(config.num_hidden_layers), "vocab_size": int(config.vocab_size),
            "embedding_sha256": digest}


def save_state(clf, folder: Path) -> dict:
    """Write the adapters (when tuned) into ``folder``; returns the manifest content."""
    params = clf.get_params()
    if isinstance(params["model"], LanguageModel):
        params["model"] = params["model"].spec
    tuned = clf.tuning == "lora"
    if tuned:
        save_file(adapter_state(clf.lm_), str(Path(folder) / ADAPTERS), metadata={"format": "pt"})
    fingerprint = getattr(clf, "base_fingerprint_", None) or model_fingerprint(clf.lm_)
    return {
        "labels": [str(c) for c in clf.classes_],
        "params": params,
        "template": clf.template_.to_dict(),
        "base_model": {"spec": clf.lm_.spec, "fingerprint": fingerprint,
                       "dtype": str(clf.lm_.dtype).replace("torch.", "")},
        "tuning": {"config": clf.tuning_config().to_dict(), "history": getattr(clf, "history_", []),
                   "seconds": getattr(clf, "tuning_seconds_", None), "adapters": ADAPTERS} if tuned else None,
        "metrics": getattr(clf, "metrics_", {}),
        "calibration": {"method": clf.calibration_method(), "bias": [float(b) for b in clf.bias_]},
    }


def load_state(cls, folder: Path, manifest: dict, model=None, device: str | None = None):
    """Rebuild a fitted classifier from what :func:`save_state` wrote. ``model`` (spec or loaded
    LanguageModel) replaces the saved base-model spec, e.g. when the model lives in another folder
    here; it must be the same base model or loading is refused."""
    checked = validate_manifest(AgileManifest, manifest, folder)
    params = dict(manifest["params"])
    if model is not None:
        params["model"] = model
    if device is not None:
        params["device"] = device
    clf = cls(**params)
    tuned = manifest.get("tuning") is not None
    dtype = clf.dtype or manifest["base_model"].get("dtype")  # the precision it was fitted in
    lm = private_copy(clf.model, clf.device, dtype) if tuned else load_lm(clf.model, device=clf.device, dtype=dtype)
    expected = manifest["base_model"]["fingerprint"]
    found = model_fingerprint(lm)
    if found != expected:
        diff = {k: (expected.get(k), found.get(k)) for k in expected if expected.get(k) != found.get(k)}
        raise ModelFormatError(
            f"{folder} was built on base model {manifest['base_model']['spec']!r}, but {lm.spec!r} is a different "
            f"model (saved vs found: {diff}); load it with model= the base model it was tuned on")
    if tuned:
        _load_adapters(lm, clf.tuning_config(), inside(folder, checked.tuning.adapters))
        clf.history_ = manifest["tuning"].get("history", [])
        clf.tuning_seconds_ = manifest["tuning"].get("seconds")
    clf.lm_ = lm
    clf.base_fingerprint_ = expected
    clf.set_prompt_state(list(checked.labels), PromptTemplate.from_dict(manifest["template"]))
    clf.bias_ = np.asarray(manifest["calibration"]["bias"], dtype=np.float64)
    clf.metrics_ = manifest.get("metrics", {})
    return clf


def _load_adapters(lm: LanguageModel, config, file: Path) -> None:
    from peft import set_peft_model_state_dict

    add_lora(lm, config)
    result = set_peft_model_state_dict(lm.model, load_file(str(file), device=str(lm.device)))
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise ModelFormatError(f"{file}: adapter weights {unexpected[:3]} do not fit the model")
    lm.model.eval()
