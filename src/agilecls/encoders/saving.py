"""The EncoderClassifier's folder: ``agilecls.json`` (parameters, classes, temperature, reject
threshold, out-of-scope references), ``head.safetensors`` (head weights and Mahalanobis
statistics) and, when fine-tuned, the encoder in ``encoder/`` as a sentence-transformers folder (safetensors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from safetensors.torch import load_file, save_file

from ..persistence import validate_manifest
from ..runtime import pick_device
from .heads import build_head
from .ood import CombinedOOD, MahalanobisScorer, make_ood_scorer

HEAD_FILE = "head.safetensors"
ENCODER_FOLDER = "encoder"


class EncoderManifest(BaseModel):
    """The EncoderClassifier's part of ``agilecls.json``, checked on load."""

    model_config = ConfigDict(extra="allow")
    params: dict
    classes: list[str] = Field(min_length=2)
    embedding_dim: int = Field(gt=0)
    temperature: float = Field(gt=0)
    reject_threshold: float | None = None
    threshold: float | None = None  # an alias of reject_threshold, read when that key is absent
    has_head: bool
    has_mahalanobis: bool
    ensemble_reference: dict[str, tuple[float, float]] | None = None

    @model_validator(mode="after")
    def _distinct(self):
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be distinct, got {self.classes}")
        return self


def save_state(clf, folder: Path) -> dict:
    """Write the tensors into ``folder``; returns the manifest content."""
    tensors: dict[str, torch.Tensor] = {}
    if clf.head_ is not None:
        tensors.update({f"head.{k}": v.detach().cpu().contiguous() for k, v in clf.head_.state_dict().items()})
    if clf.mahalanobis_ is not None:
        tensors.update({f"mahalanobis.{k}": torch.from_numpy(np.ascontiguousarray(v))
                        for k, v in clf.mahalanobis_.state().items()})
    save_file(tensors, str(Path(folder) / HEAD_FILE))
    if clf.fine_tune:
        clf.encoder_.model.save(str(Path(folder) / ENCODER_FOLDER), safe_serialization=True)
    params = clf.get_params()
    params["labels"] = None if params["labels"] is None else [str(v) for v in params["labels"]]
    reference = clf.ood_scorer_.reference if isinstance(clf.ood_scorer_, CombinedOOD) else None
    return {"params": params, "classes": clf.classes_.tolist(), "embedding_dim": clf.embedding_dim_,
            "temperature": clf.temperature_, "reject_threshold": clf.reject_threshold_,
            "has_head": clf.head_ is not None, "has_mahalanobis": clf.mahalanobis_ is not None,
            "ensemble_reference": reference}


def load_state(cls, folder: Path, manifest: dict, device: str | None = None):
    """Rebuild a fitted classifier from what :func:`save_state` wrote."""
    validate_manifest(EncoderManifest, manifest, folder)
    params = dict(manifest["params"])
    if device is not None:
        params["device"] = device
    clf = cls(**params)
    clf.classes_ = np.array(manifest["classes"], dtype=object)
    clf.device_ = pick_device(clf.device)
    clf.embedding_dim_ = int(manifest["embedding_dim"])
    clf.temperature_ = float(manifest["temperature"])
    cut = manifest.get("reject_threshold", manifest.get("threshold"))  # "threshold": the alias
    clf.reject_threshold_ = None if cut is None else float(cut)
    tensors = load_file(str(Path(folder) / HEAD_FILE))
    clf.encoder_ = clf.make_encoder(str(Path(folder) / ENCODER_FOLDER) if clf.fine_tune else None)
    clf.head_ = None
    if manifest["has_head"]:
        clf.head_ = build_head(clf.get_params(), clf.embedding_dim_, len(clf.classes_))
        clf.head_.load_state_dict({k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")})
        clf.head_.to(clf.device_).eval()
    clf.mahalanobis_ = None
    if manifest["has_mahalanobis"]:
        clf.mahalanobis_ = MahalanobisScorer.from_state(
            {k[len("mahalanobis."):]: v.numpy() for k, v in tensors.items() if k.startswith("mahalanobis.")},
            clf.mahalanobis_shrinkage)
    clf.ood_scorer_ = None if clf.multilabel else make_ood_scorer(clf.ood_score_method(), clf.mahalanobis_)
    reference = manifest.get("ensemble_reference")
    if isinstance(clf.ood_scorer_, CombinedOOD) and reference:
        clf.ood_scorer_.reference = {k: tuple(v) for k, v in reference.items()}
    return clf
