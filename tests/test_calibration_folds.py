"""CalibratedClassifier(ensemble=True): the k fold models kept and their calibrated probabilities
averaged, checked against fold models fitted by hand, saved and loaded, explained, and from the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import KFold, StratifiedKFold
from typer.testing import CliRunner

from agilecls import CalibratedClassifier, EncoderClassifier, explain, load_classifier
from agilecls.calibration import choose_calibrator
from agilecls.cli import app
from agilecls.validation import check_multilabel_y

from conftest import ML_FILLER, ML_LABELS, ML_TOPICS, build_tiny_sentence_encoder, multilabel_texts, topic_texts

pytestmark = pytest.mark.usefixtures("one_thread")

TOPICS = {"refund": "refund money back return order paid charge card price",
          "delivery": "parcel delivery late shipping courier arrive tracking box address"}


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    words = set(" ".join(TOPICS.values()).split()) | set(" ".join(ML_TOPICS.values()).split()) | set(ML_FILLER)
    return build_tiny_sentence_encoder(tmp_path_factory.mktemp("fold_encoder"), words)


def _encoder(folder, **kwargs):
    return EncoderClassifier(folder, head="logistic", epochs=10, batch_size=12, device="cpu", random_state=0,
                             **kwargs)


def _noisy_toy(seed: int, n: int):
    """Topic texts with 20% of the labels flipped (an over-confident base is worth calibrating)."""
    texts, y = topic_texts(TOPICS, seed, n)
    flip = np.random.default_rng(seed).random(len(y)) < 0.2
    names = sorted(TOPICS)
    return texts, [names[1 - names.index(v)] if f else v for v, f in zip(y, flip, strict=True)]


def test_fold_models_are_averaged_after_one_map_fitted_on_every_out_of_fold_row(encoder_dir, tmp_path):
    texts, y = _noisy_toy(20, 24)
    clf = CalibratedClassifier(_encoder(encoder_dir), cv=3, ensemble=True, threshold="f1",
                               pos_label="refund").fit(texts, y)
    assert len(clf.fold_estimators_) == 3 and not hasattr(clf, "estimator_")
    # by hand: the same stratified folds, one map on the pooled out-of-fold rows, the mean of the
    # fold models' calibrated probabilities
    classes = list(clf.classes_)
    folds = StratifiedKFold(3, shuffle=True, random_state=0).split(np.zeros(len(y)), y)
    oof, models = np.zeros((len(y), 2)), []
    for train, test in folds:
        model = _encoder(encoder_dir, labels=classes).fit([texts[i] for i in train], [y[i] for i in train])
        oof[test] = model.predict_proba([texts[i] for i in test])
        models.append(model)
    calibrator, _ = choose_calibrator(oof, np.array([classes.index(v) for v in y]))
    assert calibrator.name == clf.calibrator_.name
    probe, _ = topic_texts(TOPICS, 21, 6)
    expected = np.mean([calibrator.transform(m.predict_proba(probe)) for m in models], axis=0)
    proba = clf.predict_proba(probe)
    np.testing.assert_allclose(proba, expected, atol=1e-6)
    cut = clf.threshold_.threshold
    np.testing.assert_array_equal(clf.predict(probe),
                                  np.where(proba[:, classes.index("refund")] >= cut, "refund", "delivery"))
    assert "the mean of its 3 fold models" in clf.describe()
    clf.save(tmp_path / "folds")
    assert sorted(p.name for p in (tmp_path / "folds" / "folds").iterdir()) == ["0", "1", "2"]
    again = load_classifier(tmp_path / "folds")
    assert len(again.fold_estimators_) == 3 and again.threshold_ == clf.threshold_
    np.testing.assert_allclose(again.predict_proba(probe), proba, atol=1e-6)
    assert (again.predict(probe) == clf.predict(probe)).all()


def test_multilabel_fold_models_average_per_label_calibrated_probabilities(encoder_dir, tmp_path):
    texts, y = multilabel_texts(48, seed=3)
    Y = check_multilabel_y(y, ML_LABELS)[0]
    base = EncoderClassifier(encoder_dir, head="logistic", C=100.0, multilabel=True)
    clf = CalibratedClassifier(base, cv=3, ensemble=True, threshold="f1").fit(texts, y)
    models = [EncoderClassifier(encoder_dir, head="logistic", C=100.0, multilabel=True, labels=ML_LABELS)
              .fit([texts[i] for i in train], Y[train]) for train, _ in KFold(3, shuffle=True, random_state=0)
              .split(texts)]
    expected = np.mean([clf.calibrator_.transform(m.predict_proba(texts)) for m in models], axis=0)
    proba = clf.predict_proba(texts)
    np.testing.assert_allclose(proba, expected, atol=1e-6)
    cuts = np.array([t.threshold for t in clf.threshold_])
    np.testing.assert_array_equal(clf.predict(texts), (proba >= cuts).astype(int))
    clf.save(tmp_path / "ml")
    np.testing.assert_allclose(load_classifier(tmp_path / "ml").predict_proba(texts), proba, atol=1e-9)


def test_explaining_fold_models_averages_their_token_scores(encoder_dir):
    texts, y = _noisy_toy(22, 16)
    clf = CalibratedClassifier(_encoder(encoder_dir), cv=3, ensemble=True).fit(texts, y)
    text = "refund the late parcel money"
    exp = explain(clf, text, method="grad_dot_input")
    decided = str(clf.predict([text])[0])
    assert exp.target == decided and exp.info["calibrated_label"] == decided and len(exp.info["folds"]) == 3
    each = [explain(m, text, label=decided, method="grad_dot_input") for m in clf.fold_estimators_]
    np.testing.assert_allclose([t["score"] for t in exp.tokens],
                               np.mean([[t["score"] for t in e.tokens] for e in each], axis=0), atol=1e-9)
    assert exp.score == pytest.approx(np.mean([e.score for e in each]))


def test_fold_models_need_k_folds(encoder_dir, tmp_path):
    texts, y = _noisy_toy(23, 8)
    with pytest.raises(ValueError, match="give an int cv >= 2"):
        CalibratedClassifier(_encoder(encoder_dir), cv=0.25, ensemble=True).fit(texts, y)
    pd.DataFrame({"text": texts, "label": y}).to_csv(tmp_path / "train.csv", index=False)
    runner = CliRunner()
    base = ["train", str(tmp_path / "train.csv"), "--encoder", str(encoder_dir), "--head", "logistic"]
    trained = runner.invoke(app, base + ["--calibrate", "--cv", "3", "--average-folds", "--out", str(tmp_path / "m")])
    assert trained.exit_code == 0, trained.output
    assert len(load_classifier(tmp_path / "m").fold_estimators_) == 3
    for bad, message in ((["--calibrate", "--cv", "0.25"], "--average-folds averages k fold models"),
                         ([], "add --calibrate")):
        refused = runner.invoke(app, base + bad + ["--average-folds", "--out", str(tmp_path / "x")])
        assert refused.exit_code == 2 and message in refused.output and not (tmp_path / "x").exists()
