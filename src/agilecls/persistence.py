"""Saving and loading classifiers: adapters as safetensors, everything else as JSON, never pickle.

A saved AgileClassifier is a folder with ``agilecls.json`` (estimator name, labels, template,
base-model spec and fingerprint, training config and history, metrics, the content-free
calibration bias, package versions) and, when tuned, ``adapter_model.safetensors``. Writes go to a
temporary folder that is renamed into place only when complete, so a crash never leaves half a
model and an existing model stays intact until its replacement is whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

MANIFEST = "agilecls.json"
ADAPTERS = "adapter_model.safetensors"
FORMAT_VERSION = 1


class ModelFormatError(ValueError):
    """The folder is not a saved classifier this version can read, or does not fit the given base model."""


def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("agilecls", "torch", "transformers", "peft", "safetensors", "scikit-learn", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def atomic_folder(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_folder)``, then move the folder into ``path``; the old one is removed only after."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / MANIFEST).exists())):
        raise FileExistsError(f"{path} exists and is not a saved classifier; choose another folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    old = None
    try:
        write(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            old.rmdir()
            path.rename(old)
        tmp.rename(path)
    except BaseException:
        if old is not None and old.exists() and not path.exists():
            old.rename(path)  # put the previous model back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def save_agile(clf, path) -> Path:
    """Write a fitted AgileClassifier (see the module docstring for the layout)."""
    from sklearn.utils.validation import check_is_fitted

    from .classifier import model_fingerprint
    from .lm import LanguageModel

    check_is_fitted(clf, "scorer_")
    params = clf.get_params()
    if isinstance(params["model"], LanguageModel):
        params["model"] = params["model"].spec
    tuned = clf.tuning == "lora"
    fingerprint = getattr(clf, "base_fingerprint_", None) or model_fingerprint(clf.lm_)
    manifest = {
        "format_version": FORMAT_VERSION,
        "estimator": "AgileClassifier",
        "labels": [str(c) for c in clf.classes_],
        "params": params,
        "template": clf.template_.to_dict(),
        "base_model": {"spec": clf.lm_.spec, "fingerprint": fingerprint,
                       "dtype": str(clf.lm_.dtype).replace("torch.", "")},
        "tuning": {"config": clf.tuning_config().to_dict(), "history": getattr(clf, "history_", []),
                   "seconds": getattr(clf, "tuning_seconds_", None), "adapters": ADAPTERS} if tuned else None,
        "metrics": getattr(clf, "metrics_", {}),
        "calibration": {"method": clf._calibration(), "bias": [float(b) for b in clf.bias_]},
        "versions": package_versions(),
    }

    def write(folder: Path) -> None:
        if tuned:
            from safetensors.torch import save_file

            from .tuning import adapter_state

            save_file(adapter_state(clf.lm_), str(folder / ADAPTERS), metadata={"format": "pt"})
        (folder / MANIFEST).write_text(json.dumps(_jsonable(manifest), indent=2, ensure_ascii=False),
                                       encoding="utf-8")

    return atomic_folder(path, write)


def read_manifest(path) -> dict:
    file = Path(path) / MANIFEST
    if not file.exists():
        raise ModelFormatError(f"{path} holds no {MANIFEST}; it is not a saved agilecls classifier")
    manifest = json.loads(file.read_text(encoding="utf-8"))
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFormatError(f"{path} was saved by a newer agilecls (format {manifest['format_version']}); "
                               f"upgrade agilecls to load it")
    return manifest


def load_agile(path, model=None, device: str | None = None):
    """An AgileClassifier from a folder written by :func:`save_agile`.

    ``model`` (spec or loaded LanguageModel) replaces the saved base-model spec, e.g. when the
    model lives in another folder here; it must be the same base model or loading is refused."""
    from .classifier import AgileClassifier, model_fingerprint, private_copy
    from .lm import load_lm
    from .prompts import PromptTemplate

    path = Path(path)
    manifest = read_manifest(path)
    if manifest.get("estimator") != "AgileClassifier":
        raise ModelFormatError(f"{path} holds a {manifest.get('estimator')}, not an AgileClassifier; "
                               f"use agilecls.persistence.load_classifier")
    params = dict(manifest["params"])
    if model is not None:
        params["model"] = model
    if device is not None:
        params["device"] = device
    clf = AgileClassifier(**params)
    tuned = manifest.get("tuning") is not None
    dtype = clf.dtype or manifest["base_model"].get("dtype")  # the precision it was fitted in
    lm = private_copy(clf.model, clf.device, dtype) if tuned else load_lm(clf.model, device=clf.device, dtype=dtype)
    expected = manifest["base_model"]["fingerprint"]
    found = model_fingerprint(lm)
    if found != expected:
        diff = {k: (expected.get(k), found.get(k)) for k in expected if expected.get(k) != found.get(k)}
        raise ModelFormatError(
            f"{path} was built on base model {manifest['base_model']['spec']!r}, but {lm.spec!r} is a different "
            f"model (saved vs found: {diff}); load it with model= the base model it was tuned on")
    if tuned:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        from .tuning import add_lora

        add_lora(lm, clf.tuning_config())
        state = load_file(str(path / manifest["tuning"].get("adapters", ADAPTERS)), device=str(lm.device))
        result = set_peft_model_state_dict(lm.model, state)
        missing = [k for k in getattr(result, "unexpected_keys", []) or []]
        if missing:
            raise ModelFormatError(f"{path}: adapter weights {missing[:3]} do not fit the model")
        lm.model.eval()
        clf.history_ = manifest["tuning"].get("history", [])
        clf.tuning_seconds_ = manifest["tuning"].get("seconds")
    clf.lm_ = lm
    clf.base_fingerprint_ = expected
    clf._set_state(list(manifest["labels"]), PromptTemplate.from_dict(manifest["template"]))
    clf.bias_ = np.asarray(manifest["calibration"]["bias"], dtype=np.float64)
    clf.metrics_ = manifest.get("metrics", {})
    return clf


def load_classifier(path, **kwargs):
    """Any saved agilecls classifier: dispatches on the ``estimator`` named in agilecls.json."""
    manifest = read_manifest(path)
    estimator = manifest.get("estimator")
    if estimator == "AgileClassifier":
        return load_agile(path, **kwargs)
    if estimator == "EncoderClassifier":
        from .encoder_classifier import EncoderClassifier

        return EncoderClassifier.load(path, **kwargs)
    if estimator == "EnsembleClassifier":
        from .ensemble import EnsembleClassifier

        return EnsembleClassifier.load(path, **kwargs)
    raise ModelFormatError(f"{path}: unknown estimator {estimator!r} in {MANIFEST}")
