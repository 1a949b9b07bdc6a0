"""EnsembleClassifier: soft voting over a LoRA-tuned language model and a sentence-encoder head,
with a save / load round trip (tiny random LM built in the test, the bundled MiniLM encoder)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agilecls import AgileClassifier, EncoderClassifier, EnsembleClassifier
from agilecls.ensemble import soft_vote
from agilecls.persistence import MANIFEST, load_classifier

from conftest import TEXTS, Y, build_tiny_sentence_encoder


def members(lm):
    llm = AgileClassifier(model=lm, tuning="lora", progress=False, epochs=6, learning_rate=1e-2, top_layers=2,
                          calibration=None)
    return [("llm", llm), ("encoder", EncoderClassifier("minilm", head="logistic", device="cpu"))]


def test_soft_vote_is_the_weighted_mean():
    a, b = np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([[0.5, 0.5], [0.4, 0.6]])
    np.testing.assert_allclose(soft_vote([a, b]), [[0.7, 0.3], [0.3, 0.7]])
    np.testing.assert_allclose(soft_vote([a, b], [3, 1]), 0.75 * a + 0.25 * b)
    with pytest.raises(ValueError, match="weights"):
        soft_vote([a, b], [1, -1])


def test_ensemble_of_a_tuned_lm_and_an_encoder_head_round_trips(learnable_lm, tmp_path):
    ens = EnsembleClassifier(members(learnable_lm), labels=["Positive", "Negative"]).fit(TEXTS, Y)
    assert list(ens.classes_) == ["Positive", "Negative"]
    llm, enc = ens.named_estimators_["llm"], ens.named_estimators_["encoder"]
    assert list(llm.classes_) == list(enc.classes_) == ["Positive", "Negative"]  # the order reaches each member
    proba = ens.predict_proba(TEXTS)
    np.testing.assert_allclose(proba, (llm.predict_proba(TEXTS) + enc.predict_proba(TEXTS)) / 2, atol=1e-12)
    assert (ens.predict(TEXTS) == np.array(Y)).mean() == 1.0
    np.testing.assert_allclose(ens.ood_score(TEXTS), 1 - proba.max(1))

    out = ens.save(tmp_path / "ens")
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["estimator"] == "EnsembleClassifier" and manifest["members"] == ["llm", "encoder"]
    assert (out / "llm" / "adapter_model.safetensors").exists() and (out / "encoder" / "head.safetensors").exists()
    loaded = load_classifier(out, members={"llm": {"model": learnable_lm}})
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), proba, atol=1e-5)


def test_encoder_columns_are_aligned_to_the_ensemble_classes(learnable_lm):
    """Members with another class order are re-ordered, not mixed up."""
    ens = EnsembleClassifier(members(learnable_lm)).fit(TEXTS, Y)
    enc = ens.named_estimators_["encoder"]
    enc.classes_ = enc.classes_[::-1]  # as if the member had sorted its classes the other way
    flipped = enc.predict_proba(TEXTS)
    np.testing.assert_allclose(ens.member_probas(TEXTS)["encoder"], flipped[:, ::-1])


def test_bad_ensembles_raise_clear_errors(learnable_lm):
    with pytest.raises(ValueError, match="at least two"):
        EnsembleClassifier(members(learnable_lm)[:1]).fit(TEXTS, Y)
    with pytest.raises(ValueError, match="2 members"):
        EnsembleClassifier(members(learnable_lm), weights=[1, 2, 3]).fit(TEXTS, Y)
    with pytest.raises(ValueError, match="unknown members"):
        EnsembleClassifier(members(learnable_lm)).fit(TEXTS, Y, nope={})
    with pytest.raises(ValueError, match="empty"):
        EnsembleClassifier(members(learnable_lm)).fit(TEXTS[:-1] + ["  "], Y)


def test_train_predict_eval_commands_with_an_ensemble(learnable_lm, tmp_path):
    """`agilecls train --ensemble-encoder --ensemble-finetuned-encoder`, then `predict` and `eval` on the
    saved folder; the base model and the fine-tuned encoder are local folders, as a user's own models
    would be (the bundled MiniLM is fine-tuned end to end by the demo and tests/test_distillation.py)."""
    import pandas as pd
    from typer.testing import CliRunner

    from agilecls.cli import app

    model_dir = tmp_path / "tiny-lm"
    encoder_dir = build_tiny_sentence_encoder(tmp_path / "my-encoder", " ".join(TEXTS).lower().split())
    learnable_lm.model.save_pretrained(model_dir)
    learnable_lm.tokenizer.save_pretrained(model_dir)
    pd.DataFrame({"text": TEXTS, "label": Y}).to_csv(tmp_path / "train.csv", index=False)
    runner = CliRunner()
    trained = runner.invoke(app, ["train", str(tmp_path / "train.csv"), "--model", str(model_dir), "--epochs", "6",
                                  "--learning-rate", "1e-2", "--top-layers", "2", "--ensemble-encoder", "minilm",
                                  "--ensemble-finetuned-encoder", encoder_dir, "--out", str(tmp_path / "ens")])
    assert trained.exit_code == 0, trained.output
    described = f"minilm + logistic head + {encoder_dir} fine-tuned + softmax head + "
    assert f"EnsembleClassifier({described}" in trained.output
    assert "(LoRA rank 4, 6 epochs), soft-voted)" in trained.output
    manifest = json.loads((tmp_path / "ens" / MANIFEST).read_text())
    assert manifest["members"] == ["enc_minilm", "encft_st", "llm_tiny_lm"]
    assert any((tmp_path / "ens" / "encft_st" / "encoder").glob("*.safetensors"))  # its own encoder weights
    predicted = runner.invoke(app, ["predict", str(tmp_path / "train.csv"), "--model", str(tmp_path / "ens"),
                                    "--out", str(tmp_path / "preds.csv")])
    assert predicted.exit_code == 0, predicted.output
    preds = pd.read_csv(tmp_path / "preds.csv")
    assert list(preds.columns) == ["id", "text", "label", "p_Negative", "p_Positive", "ood_score", "error"]
    assert (preds["label"] == np.array(Y)).mean() == 1.0
    np.testing.assert_allclose(preds["ood_score"], 1 - preds[["p_Negative", "p_Positive"]].max(axis=1))
    assert np.allclose(preds["p_Negative"] + preds["p_Positive"], 1.0)
    evaluated = runner.invoke(app, ["eval", str(tmp_path / "train.csv"), "--model", str(tmp_path / "ens"),
                                    "--report", str(tmp_path / "r.html")])
    assert evaluated.exit_code == 0, evaluated.output
    assert "accuracy" in evaluated.output
    html = (tmp_path / "r.html").read_text()
    assert described in html and "(LoRA rank 4" in html
    assert html.count("data:image/png") >= 3
