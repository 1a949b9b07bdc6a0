"""Damaged or edited model folders are refused on load with a ModelFormatError naming the problem,
never a raw exception and never a silently different model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from agilecls import AgileClassifier, EncoderClassifier, ModelFormatError, load_classifier
from agilecls.persistence import MANIFEST

from conftest import TEXTS, Y


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_lm):
    root = tmp_path_factory.mktemp("saved")
    AgileClassifier(labels=["Negative", "Positive"], model=tiny_lm, template="separator", progress=False,
                    tuning="lora", epochs=1, top_layers=1).fit(TEXTS, Y).save(root / "llm")
    EncoderClassifier("minilm", head="logistic", device="cpu").fit(TEXTS, Y).save(root / "enc")
    return root


def damaged(saved, tmp_path, which):
    folder = tmp_path / which
    shutil.copytree(saved / which, folder)
    return folder


def edit_manifest(folder, change, keep_hash=False):
    file = folder / MANIFEST
    manifest = json.loads(file.read_text())
    change(manifest)
    if not keep_hash:
        manifest.pop("manifest_sha256", None)  # an edit that also dropped the manifest's own hash
    file.write_text(json.dumps(manifest))


def test_intact_folders_load(saved, tiny_lm):
    assert load_classifier(saved / "llm", model=tiny_lm).predict(TEXTS).shape == (len(TEXTS),)
    assert list(load_classifier(saved / "enc").classes_) == ["Negative", "Positive"]


@pytest.mark.parametrize("case, match", [
    ("not_an_object", "not an object"),
    ("version_is_a_string", "format_version"),
    ("labels_reordered", "edited after it was saved"),
    ("no_labels", "labels"),
    ("bias_wrong_length", "calibration"),
    ("adapters_outside", "not a file inside the folder"),
    ("adapters_truncated", "changed since it was saved"),
    ("adapters_missing", "is missing"),
])
def test_damaged_language_model_folders(saved, tmp_path, tiny_lm, case, match):
    folder = damaged(saved, tmp_path, "llm")
    adapters = folder / "adapter_model.safetensors"
    if case == "not_an_object":
        (folder / MANIFEST).write_text("[1, 2]")
    elif case == "version_is_a_string":
        edit_manifest(folder, lambda m: m.update(format_version="one"))
    elif case == "labels_reordered":
        edit_manifest(folder, lambda m: m.update(labels=m["labels"][::-1]), keep_hash=True)
    elif case == "no_labels":
        edit_manifest(folder, lambda m: m.update(labels=[]))
    elif case == "bias_wrong_length":
        edit_manifest(folder, lambda m: m["calibration"].update(bias=[0.0, 0.0, 0.0]))
    elif case == "adapters_outside":
        edit_manifest(folder, lambda m: m["tuning"].update(adapters="../../etc/passwd"))
    elif case == "adapters_truncated":
        adapters.write_bytes(adapters.read_bytes()[:100])
    elif case == "adapters_missing":
        adapters.unlink()
    with pytest.raises(ModelFormatError, match=match):
        load_classifier(folder, model=tiny_lm)


def test_damaged_encoder_folders(saved, tmp_path):
    folder = damaged(saved, tmp_path, "enc")
    edit_manifest(folder, lambda m: m.update(embedding_dim=-3))
    with pytest.raises(ModelFormatError, match="embedding_dim"):
        load_classifier(folder)
    folder = damaged(saved, tmp_path / "b", "enc")
    edit_manifest(folder, lambda m: m.update(embedding_dim=17, files=None))  # head shapes no longer fit
    with pytest.raises(ModelFormatError, match="does not load"):
        load_classifier(folder)


def test_folders_saved_before_hashes_still_load(saved, tmp_path):
    folder = damaged(saved, tmp_path, "enc")
    edit_manifest(folder, lambda m: (m.pop("files"), m.pop("manifest_sha256")))
    np.testing.assert_allclose(load_classifier(folder).predict_proba(TEXTS),
                               load_classifier(saved / "enc").predict_proba(TEXTS))


def test_a_damaged_ensemble_member_is_refused_through_the_members_own_hashes(tmp_path):
    from agilecls import EnsembleClassifier

    members = [(name, EncoderClassifier("minilm", head="logistic", C=c, device="cpu"))
               for name, c in (("a", 1), ("b", 0.5))]
    EnsembleClassifier(members).fit(TEXTS, Y).save(tmp_path / "ens")
    manifest = json.loads((tmp_path / "ens" / MANIFEST).read_text())
    assert sorted(manifest["files"]) == ["a/agilecls.json", "b/agilecls.json"]  # member files are hashed once
    head = tmp_path / "ens" / "a" / "head.safetensors"
    head.write_bytes(head.read_bytes()[:50])
    with pytest.raises(ModelFormatError, match="head.safetensors has changed"):
        load_classifier(tmp_path / "ens")
