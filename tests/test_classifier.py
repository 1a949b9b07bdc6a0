"""AgileClassifier as a scikit-learn estimator, on a tiny random model and on the real bundled one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from agilecls import AgileClassifier, ModelNotFoundError, PromptTemplate, load_lm
from agilecls.lm.prompts import LabelTokenError, select_examples

TEXTS = ["this was a really good movie", "awful food", "I hate it", "great", "I love it", "bad movie"]
Y = ["Positive", "Negative", "Negative", "Positive", "Positive", "Negative"]


@pytest.fixture
def tiny_clf(tiny_lm):
    return AgileClassifier(labels=["Positive", "Negative"], model=tiny_lm, template="separator", progress=False)


def test_zero_shot_probabilities_are_softmax_of_decision_function(tiny_clf):
    clf = tiny_clf.fit()
    proba = clf.predict_proba(TEXTS)
    assert proba.shape == (6, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-9)
    scores = clf.decision_function(TEXTS)
    np.testing.assert_allclose(proba, np.exp(scores) / np.exp(scores).sum(1, keepdims=True), atol=1e-9)
    assert list(clf.predict(TEXTS)) == [clf.classes_[i] for i in scores.argmax(1)]


def test_ood_scores_come_from_the_label_logits(tiny_clf):
    clf = tiny_clf.fit()
    proba, scores = clf.predict_proba(TEXTS), clf.decision_function(TEXTS)
    np.testing.assert_allclose(clf.ood_score(TEXTS), 1 - proba.max(1), atol=1e-9)
    np.testing.assert_allclose(clf.ood_score(TEXTS, "entropy"), -(proba * np.log(proba)).sum(1), atol=1e-6)
    np.testing.assert_allclose(clf.ood_score(TEXTS, "energy"), -np.log(np.exp(scores).sum(1)), atol=1e-6)


def test_content_free_calibration_removes_the_prior_bias(tiny_clf):
    raw = clone(tiny_clf).set_params(calibration=None).fit()
    calibrated = tiny_clf.fit()
    # On the content-free inputs themselves, the calibrated mean probability is uniform.
    cf = calibrated.raw_scores(["N/A", "", "[MASK]"])
    p = np.exp(cf) / np.exp(cf).sum(1, keepdims=True)
    shifted = np.log(p.mean(0)) - calibrated.bias_
    assert np.ptp(shifted) == pytest.approx(0.0, abs=1e-9)
    assert np.abs(raw.decision_function(TEXTS) - calibrated.decision_function(TEXTS) - calibrated.bias_).max() < 1e-9


def test_accepts_lists_arrays_and_series_and_works_in_pipelines(tiny_lm):
    clf = AgileClassifier(model=tiny_lm, template="separator", shots=1, progress=False)
    ref = clf.fit(TEXTS, Y).predict_proba(TEXTS)
    for X, y in [(np.array(TEXTS), np.array(Y)), (pd.Series(TEXTS), pd.Series(Y))]:
        np.testing.assert_allclose(clone(clf).fit(X, y).predict_proba(X), ref, atol=1e-9)
    assert list(clf.classes_) == ["Negative", "Positive"]
    assert len(clf.template_.examples) == 2 and {lab for _, lab in clf.template_.examples} == set(Y)
    pipe = Pipeline([("strip", FunctionTransformer(lambda xs: [x.strip() for x in xs])), ("clf", clone(clf))])
    assert pipe.fit(TEXTS, Y).predict(TEXTS).shape == (6,)
    X2, y2 = np.array(TEXTS * 2), np.array(Y * 2)
    scores = cross_val_score(clone(clf), X2, y2, cv=2)
    # the same accuracies by hand: scikit-learn's stratified folds, a fresh clone fitted on each
    from sklearn.model_selection import StratifiedKFold

    by_hand = [np.mean(clone(clf).fit(X2[tr], y2[tr]).predict(X2[te]) == y2[te])
               for tr, te in StratifiedKFold(2).split(X2, y2)]
    np.testing.assert_array_equal(scores, by_hand)
    assert clf.get_params()["shots"] == 1 and clone(clf).set_params(shots=2).shots == 2


def test_few_shot_selection_is_seeded_and_per_class():
    a = select_examples(TEXTS, Y, ["Positive", "Negative"], 2, seed=1)
    assert a == select_examples(TEXTS, Y, ["Positive", "Negative"], 2, seed=1)
    assert [lab for _, lab in a] == ["Positive", "Negative", "Positive", "Negative"]

    def fake_embed(texts):
        return np.array([[len(t), t.count("o")] for t in texts], dtype=float)

    similar = select_examples(TEXTS, Y, ["Positive", "Negative"], 1, strategy="similar", embed=fake_embed)
    assert [lab for _, lab in similar] == ["Positive", "Negative"]


def test_template_round_trips_through_json():
    template = PromptTemplate("separator", separator="\n<separator>\n", examples=[("a b", "Positive")])
    assert PromptTemplate.from_dict(json.loads(json.dumps(template.to_dict()))) == template
    prefix, tail = PromptTemplate("separator").frame(["Positive", "Negative"])
    assert prefix + "hello" + tail == ("Classify the following text into one of the following classes:"
                                       "[Positive,Negative]<separator>Text:hello<separator>Prediction:")


@pytest.mark.parametrize("bad, error, match", [
    (["fine", ""], ValueError, "empty"),
    (["fine", "   "], ValueError, "empty"),
    (["fine", None], TypeError, "not a string"),
    (["fine", 3], TypeError, "not a string"),
    ("a single string", TypeError, "single string"),
])
def test_bad_texts_get_clear_errors(tiny_clf, bad, error, match):
    clf = tiny_clf.fit()
    with pytest.raises(error, match=match):
        clf.predict(bad)


def test_bad_labels_and_models_get_clear_errors(tiny_lm):
    with pytest.raises(ValueError, match="not in labels"):
        AgileClassifier(labels=["Positive", "Negative"], model=tiny_lm, progress=False).fit(TEXTS, ["Maybe"] * 6)
    with pytest.raises(ValueError, match="duplicate"):
        AgileClassifier(labels=["good", "good"], model=tiny_lm, progress=False).fit()
    with pytest.raises(LabelTokenError, match="tokenize to the same"):
        AgileClassifier(labels=["zebra", "yak"], model=tiny_lm, template="separator", progress=False).fit()
    with pytest.raises(ModelNotFoundError, match="bundled"):
        load_lm("/no/such/folder")
    with pytest.raises(ModelNotFoundError, match="offline"):
        load_lm("no-such-org/no-such-model")
    with pytest.raises(ValueError, match="chat template"):
        AgileClassifier(labels=["good", "bad"], model=tiny_lm, template="chat", progress=False).fit()


# ---- the real bundled model ------------------------------------------------------------------------------
POSITIVE = ["I loved this movie, it was wonderful.", "What a fantastic, delightful experience!",
            "The food was delicious and the staff were kind.", "Best purchase I have ever made."]
NEGATIVE = ["I hated this movie, it was terrible.", "What an awful, miserable experience.",
            "The food was disgusting and the staff were rude.", "Worst purchase I have ever made."]


@pytest.mark.slow
def test_bundled_default_model_gets_clear_sentiment_right():
    clf = AgileClassifier(labels=["positive", "negative"], progress=False).fit()
    assert list(clf.predict(POSITIVE + NEGATIVE)) == ["positive"] * 4 + ["negative"] * 4


@pytest.mark.slow
def test_classify_command_runs_as_a_subprocess():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "agilecls.cli", "classify", "--labels", "positive,negative",
                          "--json", POSITIVE[0], NEGATIVE[0]], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["predictions"]  # one JSON object on standard output
    assert [r["label"] for r in rows] == ["positive", "negative"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-3 for r in rows)


def test_repeated_texts_are_scored_once_with_identical_results(tiny_clf, monkeypatch):
    texts = ["good movie", "bad food", "good movie", "good movie"]
    tiny_clf.fit()
    alone = tiny_clf.decision_function(["good movie", "bad food"])
    seen = []
    real = tiny_clf.raw_scores
    monkeypatch.setattr(tiny_clf, "raw_scores", lambda t: seen.append(list(t)) or real(t))
    scores = tiny_clf.decision_function(texts)
    assert seen == [["good movie", "bad food"]]
    np.testing.assert_array_equal(scores, alone[[0, 1, 0, 0]])
