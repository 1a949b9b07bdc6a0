"""The saved-classifier folder format and the estimator registry; imports no estimator.

A saved classifier is a folder holding ``agilecls.json`` (the manifest: format version, estimator
name, parameters, fitted state, package versions) beside whatever tensors the estimator writes as
safetensors. Nothing is ever pickled. Writes are crash-safe (:mod:`agilecls.atomic`): a save killed at any
point leaves the old model or the new one, and the next save or load puts it back in place.

Estimators join the registry with :func:`register_estimator` (as peft's methods do), and
:func:`load_classifier` looks the manifest's estimator name up there. The built-in estimators'
modules are named below as strings and imported only when a folder holding one is loaded, so this
module stays at the bottom of the import graph.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import SafetensorError

from .atomic import atomic_folder, recover_folder
from .jsonsafe import jsonable
from .registry import Registry

#: The manifest's file name inside a saved folder.
MANIFEST = "agilecls.json"
#: Version of the folder format this agilecls writes; it reads this and older versions.
FORMAT_VERSION = 1

#: Estimator name -> class, filled by :func:`register_estimator`.
ESTIMATORS: Registry[type] = Registry("estimator", sort_names=True)
#: Where the built-in estimators live (imported on first load of a folder that holds one).
BUILTIN_MODULES = {"AgileClassifier": "agilecls.lm.classifier",
                   "EncoderClassifier": "agilecls.encoders.classifier",
                   "EnsembleClassifier": "agilecls.ensemble",
                   "CalibratedClassifier": "agilecls.calibration.classifier"}


class ModelFormatError(ValueError):
    """The folder is not a saved classifier this version can read, or does not fit the given base model."""


class ManifestHeader(BaseModel):
    """What every ``agilecls.json`` holds; each estimator validates its own content the same way."""

    model_config = ConfigDict(extra="allow")
    format_version: int = Field(ge=1)
    estimator: str = Field(min_length=1)
    versions: dict[str, str] = {}
    files: dict[str, str] | None = None  # relative path -> SHA-256, recorded at save, checked at load
    manifest_sha256: str | None = None  # of the manifest itself: an edited label order or bias is refused


def validate_manifest(schema: type[BaseModel], manifest: dict, path) -> BaseModel:
    """``manifest`` checked against ``schema``; a :class:`ModelFormatError` naming the first problem."""
    try:
        return schema.model_validate(manifest)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the manifest"
        raise ModelFormatError(f"{Path(path) / MANIFEST}: {where}: {first['msg']} (the folder is damaged or was "
                               f"edited; save the classifier again)") from err


def inside(folder: str | os.PathLike, name: str) -> Path:
    """``folder / name``, refusing a name that would leave the folder (absolute, ``..``, links out)."""
    root = Path(folder).resolve()
    target = (root / name).resolve()
    if not name or Path(name).is_absolute() or root not in target.parents:
        raise ModelFormatError(f"{folder}: the manifest names {name!r}, which is not a file inside the folder")
    return target


def sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(folder: str | os.PathLike) -> dict[str, str]:
    """SHA-256 of every file below ``folder`` except its own manifest, by relative path. A sub-folder
    holding its own manifest (an ensemble member) is covered by that manifest's hash alone: its
    manifest lists and checks its own files, so they are not hashed twice."""
    folder = Path(folder)
    members = [m.parent for m in folder.rglob(MANIFEST) if m.parent != folder]

    def counted(file: Path) -> bool:
        return file.is_file() and file != folder / MANIFEST and not any(
            member in file.parents and file != member / MANIFEST for member in members)

    return {file.relative_to(folder).as_posix(): sha256(file) for file in sorted(folder.rglob("*")) if counted(file)}


def verify_files(folder: str | os.PathLike, expected: dict[str, str]) -> None:
    """Every file the manifest lists is inside the folder, present and unchanged."""
    for name, digest in expected.items():
        file = inside(folder, name)
        if not file.is_file():
            raise ModelFormatError(f"{folder}: {name} is missing; the folder is incomplete")
        if sha256(file) != digest:
            raise ModelFormatError(f"{folder}: {name} has changed since it was saved (SHA-256 mismatch): "
                                   f"the file is damaged or was replaced")


def register_estimator(name: str) -> Callable[[type], type]:
    """Class decorator that makes ``load_classifier`` read folders whose manifest names ``name``.

    The class must provide ``write_state(folder) -> dict`` and ``read_state(folder, manifest,
    **kwargs)`` (a classmethod); see :func:`save_estimator` and :func:`load_classifier`.

    Examples
    --------
    >>> @register_estimator("MyClassifier")
    ... class MyClassifier: ...
    >>> ESTIMATORS["MyClassifier"].__name__
    'MyClassifier'
    """

    def wrap(cls: type) -> type:
        ESTIMATORS.add(name, cls)  # a second class under a taken name is refused
        cls._estimator_name = name
        return cls

    return wrap


def package_versions() -> dict[str, str]:
    """Versions of the packages a saved model's numbers depend on (recorded in every manifest)."""
    out = {}
    for name in ("agilecls", "torch", "transformers", "peft", "safetensors", "scikit-learn",
                 "sentence-transformers", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def is_saved(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding a saved agilecls classifier."""
    return (Path(path) / MANIFEST).is_file()


def write_manifest(folder: str | os.PathLike, estimator: str, content: dict) -> Path:
    """Write ``agilecls.json`` into ``folder``: ``content`` plus format version, estimator name and
    package versions."""
    manifest = jsonable({"format_version": FORMAT_VERSION, "estimator": estimator, **content,
                         "versions": package_versions(), "files": file_hashes(folder)})
    manifest["manifest_sha256"] = _content_sha256(manifest)
    file = Path(folder) / MANIFEST
    file.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return file


def _content_sha256(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of a saved folder; refuses folders that are not saved classifiers or that a
    newer agilecls wrote."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise ModelFormatError(f"{path} holds no {MANIFEST}; it is not a saved agilecls classifier "
                               f"(create one with `agilecls train` or clf.save(folder))")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFormatError(f"{file} is not valid JSON ({err}); the folder is damaged") from err
    if not isinstance(manifest, dict):
        raise ModelFormatError(f"{file} holds a {type(manifest).__name__}, not an object; the folder is damaged")
    header = validate_manifest(ManifestHeader, manifest, path)
    if header.format_version > FORMAT_VERSION:
        raise ModelFormatError(f"{path} was saved by a newer agilecls (format {header.format_version}); "
                               f"upgrade agilecls to load it")
    if header.manifest_sha256 is not None and header.manifest_sha256 != _content_sha256(manifest):
        raise ModelFormatError(f"{file} was edited after it was saved (its SHA-256 does not match); save the "
                               f"classifier again rather than editing its manifest")
    if header.files is not None:
        verify_files(path, header.files)
    return manifest


def save_estimator(estimator, path: str | os.PathLike) -> Path:
    """Save a fitted registered estimator atomically: its ``write_state(tmp)`` writes its tensors
    and returns the manifest content. The estimator's ``provenance`` (where it came from: the recipe
    and its options, the teacher it was distilled from), when set, is kept in the manifest."""
    name = getattr(type(estimator), "_estimator_name", None)
    if name is None:
        raise TypeError(f"{type(estimator).__name__} is not a registered agilecls estimator")
    provenance = getattr(estimator, "provenance", None)

    def write(folder: Path) -> None:
        content = estimator.write_state(folder)
        write_manifest(folder, name, content if provenance is None else {**content, "provenance": provenance})

    return atomic_folder(path, write, may_replace=is_saved)


def estimator_class(name: str) -> type:
    """The registered class called ``name`` (importing a built-in estimator's module on first use)."""
    if name not in ESTIMATORS and name in BUILTIN_MODULES:
        importlib.import_module(BUILTIN_MODULES[name])  # its @register_estimator fills the registry
    if name not in ESTIMATORS:
        raise ModelFormatError(f"unknown estimator {name!r} in {MANIFEST}; known: "
                               f"{sorted(set(ESTIMATORS) | set(BUILTIN_MODULES))}")
    return ESTIMATORS[name]


def load_classifier(path: str | os.PathLike, **kwargs):
    """Any saved agilecls classifier, of the class its manifest names.

    Parameters
    ----------
    path : str or path-like
        A folder written by ``save`` (``agilecls.json`` inside).
    **kwargs
        Passed to the estimator's loader, e.g. ``device="cpu"`` or, for an AgileClassifier,
        ``model=`` the base model's folder when it moved.

    Returns
    -------
    classifier
        A fitted ``AgileClassifier``, ``EncoderClassifier`` or ``EnsembleClassifier``.

    Examples
    --------
    >>> clf = load_classifier("models/ethos")  # doctest: +SKIP
    >>> clf.predict(["some text"])  # doctest: +SKIP
    """
    recover_folder(path)  # a save killed halfway leaves the old or the new model, never neither
    manifest = read_manifest(path)
    cls = estimator_class(manifest["estimator"])
    try:
        obj = cls.read_state(Path(path), manifest, **kwargs)
        if isinstance(manifest.get("provenance"), dict):
            obj.provenance = manifest["provenance"]
        return obj
    except ModelFormatError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, SafetensorError) as err:
        # what a damaged or hand-edited folder raises deep inside torch, safetensors or peft
        raise ModelFormatError(f"{path}: the saved {manifest['estimator']} does not load ({type(err).__name__}: "
                               f"{str(err).splitlines()[0][:200] if str(err) else ''}); save it again") from err


def load_as(cls: type, path: str | os.PathLike, **kwargs):
    """:func:`load_classifier`, refusing a folder that holds another estimator than ``cls``."""
    obj = load_classifier(path, **kwargs)
    if not isinstance(obj, cls):
        raise ModelFormatError(f"{path} holds a {type(obj).__name__}, not an {cls.__name__}; "
                               f"use agilecls.load_classifier")
    return obj
