"""Inference options chosen by measurement at run time: the measured-choice rule and its memory,
the language model's scoring batch, bf16 embedding passes, and ``agilecls info``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from agilecls import AgileClassifier, SentenceEncoder
from agilecls.cli import app
from agilecls.lm.scoring import BATCH_CANDIDATES, scoring_batch_size
from agilecls.runtime import CACHE_ENV, measured_choice


def test_a_larger_candidate_must_be_clearly_faster_and_the_choice_is_remembered(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert measured_choice("test:noise", (4, 8, 16), {4: 10.0, 8: 11.0, 16: 11.4}.get)[0] == 4
    choice, rates = measured_choice("test:wide", (4, 8, 16), {4: 10.0, 8: 12.0, 16: 20.0}.get)
    assert choice == 16 and rates == {4: 10.0, 8: 12.0, 16: 20.0}
    saved = json.loads((tmp_path / "measured.json").read_text())
    assert [v for k, v in saved.items() if k.endswith("|test:wide")] == [16]

    def never(_):
        raise AssertionError("measured twice")

    assert measured_choice("test:wide", (4, 8, 16), never) == (16, {})


def test_the_auto_scoring_batch_gives_the_fixed_batches_answers(tiny_lm, tmp_path, monkeypatch):
    """Whatever batch this machine measures fastest, the probabilities are the same to 1e-5."""
    from conftest import TEXTS, Y

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert scoring_batch_size(tiny_lm, [[5], [6]]) in BATCH_CANDIDATES
    params = {"labels": ["Positive", "Negative"], "model": tiny_lm, "template": "separator", "progress": False}
    auto = AgileClassifier(**params).fit(TEXTS, Y)
    assert auto.scorer_.batch_size in BATCH_CANDIDATES
    fixed = AgileClassifier(batch_size=1, **params).fit(TEXTS, Y)
    np.testing.assert_allclose(auto.predict_proba(TEXTS), fixed.predict_proba(TEXTS), atol=1e-5)


def test_bf16_embedding_passes_stay_close_to_fp32():
    """The bf16 autocast path (chosen where bf16 units make it faster) against fp32, on the real
    MiniLM: every embedding's cosine similarity to its fp32 twin is at least 0.99."""
    texts = ["I was charged twice this month", "the app crashes when I open settings", "what a lovely day"]
    fp32 = SentenceEncoder("minilm", dtype="fp32").embed(texts, show_progress=False)
    bf16 = SentenceEncoder("minilm", dtype="bf16").embed(texts, show_progress=False)
    assert bf16.dtype == np.float32
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cosine.min() >= 0.99, cosine
    with pytest.raises(ValueError, match="dtype='fp16'"):
        SentenceEncoder("minilm", dtype="fp16")


def test_info_reports_the_machine_and_a_saved_classifier(tmp_path):
    from agilecls.recipes import build_recipe

    from conftest import TEXTS, Y

    build_recipe("fast", ["Negative", "Positive"]).fit(TEXTS, Y).save(tmp_path / "model")
    result = CliRunner().invoke(app, ["info", "--model", str(tmp_path / "model"), "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)  # progress bars go to stderr
    assert facts["machine"]["dtype"] in ("float32", "bfloat16") and facts["machine"]["machine"]
    assert facts["model"]["provenance"]["recipe"] == "fast" and facts["model"]["classes"] == ["Negative", "Positive"]
    text = CliRunner().invoke(app, ["info", "-m", str(tmp_path / "model")]).output
    assert "recipe: fast" in text and "CalibratedClassifier" in text
