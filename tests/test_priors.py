"""Class shares of unlabelled texts by EM (agilecls.calibration.priors) and
CalibratedClassifier.adapt_priors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from agilecls import CalibratedClassifier, EncoderClassifier, load_classifier
from agilecls.calibration.priors import estimate_priors, shift_priors

from conftest import ML_LABELS, build_tiny_sentence_encoder, multilabel_texts, topic_texts

pytestmark = pytest.mark.usefixtures("one_thread")

TOPICS = {"refund": "refund money back return order paid charge card price",
          "delivery": "parcel delivery late shipping courier arrive tracking box address",
          "account": "password login account email reset username profile"}
MEANS = np.array([-2.0, 0.0, 2.0])


def _exact_posteriors(x: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """p(class | x) for three unit Gaussians at MEANS under ``priors`` (perfectly calibrated)."""
    joint = norm.pdf(x[:, None] - MEANS[None, :]) * priors
    return joint / joint.sum(axis=1, keepdims=True)


def test_em_recovers_the_shares_of_unlabelled_rows_from_calibrated_probabilities():
    rng = np.random.default_rng(0)
    train, true = np.full(3, 1 / 3), np.array([0.6, 0.3, 0.1])
    y = rng.choice(3, size=20000, p=true)
    x = rng.normal(MEANS[y], 1.0)
    balanced = _exact_posteriors(x, train)  # a model fitted on balanced rows
    estimated, steps = estimate_priors(balanced, train)
    empirical = np.bincount(y, minlength=3) / len(y)
    np.testing.assert_allclose(estimated, empirical, atol=0.015)
    assert 1 < steps < 1000 and estimated.sum() == pytest.approx(1.0)
    # Bayes' rule to the true shares gives the posteriors under them
    np.testing.assert_allclose(shift_priors(balanced, train, true), _exact_posteriors(x, true), atol=1e-12)
    np.testing.assert_allclose(shift_priors(balanced, train, train), balanced, atol=1e-12)
    with pytest.raises(ValueError, match="at least one row"):
        estimate_priors(np.zeros((0, 3)), train)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    words = set(" ".join(TOPICS.values()).split())
    return build_tiny_sentence_encoder(tmp_path_factory.mktemp("prior_encoder"), words)


def test_adapt_priors_moves_the_probabilities_to_the_estimated_shares_and_round_trips(encoder_dir, tmp_path):
    texts, y = topic_texts(TOPICS, 0, 12)  # balanced labelled rows
    clf = CalibratedClassifier(EncoderClassifier(encoder_dir, head="logistic", random_state=0), cv=3).fit(texts, y)
    np.testing.assert_allclose(clf.class_shares_, [1 / 3] * 3)
    stream = [t for k, n in (("refund", 40), ("delivery", 8), ("account", 4))
              for t in topic_texts({k: TOPICS[k]}, 1, n)[0]]  # unlabelled, mostly refunds
    before = clf.predict_proba(stream)
    clf.adapt_priors(stream)
    refund = list(clf.classes_).index("refund")
    assert clf.priors_[refund] > 0.6 and clf.priors_.sum() == pytest.approx(1.0)
    assert "under the class shares of unlabelled texts (" in clf.describe()
    after = clf.predict_proba(stream)
    np.testing.assert_allclose(after, shift_priors(before, clf.class_shares_, clf.priors_), atol=1e-9)
    np.testing.assert_allclose(clf.priors_, after.mean(axis=0), atol=1e-6)  # EM's fixed point
    clf.save(tmp_path / "adapted")
    again = load_classifier(tmp_path / "adapted")
    np.testing.assert_allclose(again.priors_, clf.priors_)
    np.testing.assert_allclose(again.predict_proba(stream), after, atol=1e-6)
    np.testing.assert_allclose(clf.adapt_priors(None).predict_proba(stream), before, atol=1e-9)


def test_adapt_priors_refuses_a_multilabel_classifier(tmp_path):
    from conftest import ML_FILLER, ML_TOPICS

    words = set(" ".join(ML_TOPICS.values()).split()) | set(ML_FILLER)
    folder = build_tiny_sentence_encoder(tmp_path / "enc", words)
    texts, y = multilabel_texts(24, seed=2)
    clf = CalibratedClassifier(EncoderClassifier(folder, head="logistic", multilabel=True), cv=2).fit(texts, y)
    assert list(clf.classes_) == ML_LABELS
    with pytest.raises(ValueError, match="single-label"):
        clf.adapt_priors(texts)


def test_train_with_unlabeled_texts_saves_the_adapted_model(encoder_dir, tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from agilecls.cli import app

    texts, y = topic_texts(TOPICS, 3, 10)
    pd.DataFrame({"text": texts, "label": y}).to_csv(tmp_path / "train.csv", index=False)
    stream = topic_texts({"refund": TOPICS["refund"]}, 4, 30)[0] + topic_texts(TOPICS, 5, 3)[0]
    (tmp_path / "stream.txt").write_text("\n".join(stream) + "\n")
    (tmp_path / "empty.txt").write_text("\n")
    runner = CliRunner()
    base = ["train", str(tmp_path / "train.csv"), "--encoder", str(encoder_dir), "--head", "logistic", "--cv", "3"]
    trained = runner.invoke(app, base + ["--calibrate", "--unlabeled", str(tmp_path / "stream.txt"),
                                         "--out", str(tmp_path / "m")])
    assert trained.exit_code == 0, trained.output
    assert "class shares of 39 unlabelled texts" in trained.output
    clf = load_classifier(tmp_path / "m")
    assert clf.priors_[list(clf.classes_).index("refund")] > 0.5
    for bad, message in ((["--unlabeled", str(tmp_path / "stream.txt")], "add --calibrate"),
                         (["--calibrate", "--unlabeled", str(tmp_path / "empty.txt")], "is empty")):
        refused = runner.invoke(app, base + bad + ["--out", str(tmp_path / "x")])
        assert refused.exit_code == 2 and message in refused.output and not (tmp_path / "x").exists()
