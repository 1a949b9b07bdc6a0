"""Per-label calibration and decision thresholds of multi-label classifiers (CalibratedClassifier
around a multi-label EncoderClassifier) on a tiny sentence encoder built here, and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score
from typer.testing import CliRunner

from agilecls import CalibratedClassifier, EncoderClassifier, load_classifier
from agilecls.calibration import choose_calibrator, fit_threshold, out_of_fold
from agilecls.cli import app
from agilecls.validation import check_multilabel_y

from conftest import ML_FILLER, ML_LABELS, ML_TOPICS, build_tiny_sentence_encoder, multilabel_texts

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    words = set(" ".join(ML_TOPICS.values()).split()) | set(ML_FILLER)
    return build_tiny_sentence_encoder(tmp_path_factory.mktemp("ml_cal_encoder"), words)


def _pair(p):
    return np.column_stack([1 - p, p])


def test_each_label_gets_its_own_map_and_threshold_and_they_round_trip(encoder_dir, tmp_path):
    texts, y = multilabel_texts(60, seed=1)
    Y = check_multilabel_y(y, ML_LABELS)[0]
    base = EncoderClassifier(encoder_dir, head="logistic", C=100.0, multilabel=True)
    clf = CalibratedClassifier(base, cv=3, threshold="f1").fit(texts, y)
    # by an independent computation: the same folds, then one binary map and one F1 cut per label
    raw = out_of_fold(base, texts, Y, ML_LABELS, cv=3).proba
    for k, label in enumerate(ML_LABELS):
        reference, _ = choose_calibrator(_pair(raw[:, k]), Y[:, k])
        assert clf.calibrator_.maps[k].name == reference.name
        np.testing.assert_allclose(clf.oof_proba_[:, k], reference.transform(_pair(raw[:, k]))[:, 1], atol=1e-9)
        cut = clf.threshold_[k].threshold
        assert cut == fit_threshold(clf.oof_proba_[:, k], Y[:, k] == 1, "f1", label).threshold
        best = max(f1_score(Y[:, k], clf.oof_proba_[:, k] >= c) for c in np.unique(clf.oof_proba_[:, k]))
        assert f1_score(Y[:, k], clf.oof_proba_[:, k] >= cut) == pytest.approx(best)
    proba, pred = clf.predict_proba(texts), clf.predict(texts)
    cuts = np.array([t.threshold for t in clf.threshold_])
    np.testing.assert_array_equal(pred, (proba >= cuts).astype(int))
    clf.save(tmp_path / "cal")
    loaded = load_classifier(tmp_path / "cal")
    np.testing.assert_array_equal(loaded.predict_proba(texts), proba)
    np.testing.assert_array_equal(loaded.predict(texts), pred)
    assert [t.to_dict() for t in loaded.threshold_] == [t.to_dict() for t in clf.threshold_]
    with pytest.raises(ValueError, match="not defined for a multi-label classifier"):
        loaded.ood_score(texts)


def test_per_label_thresholds_give_labels_back_to_an_underconfident_model(encoder_dir):
    """Strong regularisation keeps the probabilities near each label's base rate, mostly under 0.5,
    so the 0.5 cut gives almost no label (macro F1 0.08 on new texts when written) although the
    ranking is good; cuts chosen out of fold give the labels back (0.70)."""
    texts, y = multilabel_texts(90, seed=4)
    test_texts, test_y = multilabel_texts(60, seed=5)
    Y_test = check_multilabel_y(test_y, ML_LABELS)[0]

    def make():
        return EncoderClassifier(encoder_dir, head="logistic", C=0.3, multilabel=True)

    base = make().fit(texts, y)
    assert roc_auc_score(Y_test, base.predict_proba(test_texts), average="macro") > 0.9
    assert f1_score(Y_test, base.predict(test_texts), average="macro") < 0.1
    clf = CalibratedClassifier(make(), cv=5, threshold="f1").fit(texts, y)
    assert f1_score(Y_test, clf.predict(test_texts), average="macro") > 0.6


@pytest.mark.parametrize("settings, message", [
    ({"pos_label": "food"}, "pos_label is for two classes"),
    ({"cv": 1}, "cv. parameter"),
    ({"threshold": "recall:2"}, "use 'f1'"),
])
def test_bad_multilabel_settings_say_what_to_do(encoder_dir, settings, message):
    texts, y = multilabel_texts(30, seed=1)
    with pytest.raises(ValueError, match=message):
        CalibratedClassifier(EncoderClassifier(encoder_dir, head="logistic", multilabel=True),
                             **{"cv": 3, **settings}).fit(texts, y)


def test_cli_trains_with_per_label_thresholds_and_eval_reports_them(encoder_dir, tmp_path):
    texts, y = multilabel_texts(45, seed=6)
    pd.DataFrame({"text": texts, "topics": ["|".join(v) for v in y]}).to_csv(tmp_path / "d.csv", index=False)
    runner = CliRunner()
    trained = runner.invoke(app, ["train", str(tmp_path / "d.csv"), "--multilabel", "--label-col", "topics",
                                  "--encoder", encoder_dir, "--calibrate", "--threshold", "f1", "--cv", "3",
                                  "--out", str(tmp_path / "m")])
    assert trained.exit_code == 0, trained.output
    clf = load_classifier(tmp_path / "m")
    assert [t.positive for t in clf.threshold_] == ML_LABELS
    out = runner.invoke(app, ["eval", str(tmp_path / "d.csv"), "--multilabel", "--label-col", "topics",
                              "--model", str(tmp_path / "m"), "--report", str(tmp_path / "r.html")])
    assert out.exit_code == 0, out.output
    assert f"{clf.threshold_[0].threshold:.4f}"[:5] in out.output  # the per-label table shows each cut
    stacked = runner.invoke(app, ["train", str(tmp_path / "d.csv"), "--multilabel", "--label-col", "topics",
                                  "--encoder", encoder_dir, "--pos-label", "food", "--out", str(tmp_path / "x")])
    assert stacked.exit_code == 2 and "--pos-label are for single-label" in stacked.output


def test_batch_prediction_and_the_server_answer_with_the_labels_at_their_thresholds(encoder_dir, tmp_path):
    from fastapi.testclient import TestClient

    from agilecls.batch.local import predict_file
    from agilecls.server import create_app

    texts, y = multilabel_texts(45, seed=7)
    clf = CalibratedClassifier(EncoderClassifier(encoder_dir, head="logistic", C=100.0, multilabel=True), cv=3,
                               threshold="recall:0.9").fit(texts, y)
    clf.save(tmp_path / "m")
    new = multilabel_texts(12, seed=8)[0]
    pred = clf.predict(new)
    expected = ["|".join(label for label, v in zip(ML_LABELS, row, strict=True) if v) for row in pred]
    assert any("|" in e for e in expected) and len(set(expected)) > 2  # several labels, several answers
    pd.DataFrame({"text": new}).to_csv(tmp_path / "in.csv", index=False)
    predict_file(tmp_path / "m", tmp_path / "in.csv", tmp_path / "out.csv", chunk_size=5, progress=False)
    got = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert got["label"].tolist() == expected and (got["ood_score"] == "").all()
    np.testing.assert_allclose(got[[f"p_{label}" for label in ML_LABELS]].to_numpy(float), clf.predict_proba(new),
                               atol=1e-6)
    with TestClient(create_app(classifiers={"topics": str(tmp_path / "m")}, max_wait=0.01)) as client:
        answer = client.post("/v1/predict", json={"texts": new}).json()
    assert [p["label"] for p in answer["predictions"]] == expected
    assert all(p["ood_score"] is None for p in answer["predictions"])


def test_an_ensemble_of_calibrated_multilabel_members_votes_and_round_trips(encoder_dir, tmp_path):
    """Members wrapped in CalibratedClassifier are recognised as multi-label: the ensemble checks y
    as label lists, gives the wrapped classifiers its labels, and predicts a 0/1 row per text."""
    from agilecls import EnsembleClassifier

    texts, y = multilabel_texts(60, seed=1)
    members = [(f"c{int(C)}", CalibratedClassifier(EncoderClassifier(encoder_dir, head="logistic", C=C,
                                                                     multilabel=True), cv=3)) for C in (1.0, 100.0)]
    ens = EnsembleClassifier(members).fit(texts, y)
    assert list(ens.classes_) == ML_LABELS
    assert all(list(m.estimator_.classes_) == ML_LABELS for _, m in ens.estimators_)
    mean = np.mean([m.predict_proba(texts) for _, m in ens.estimators_], axis=0)
    np.testing.assert_allclose(ens.predict_proba(texts), mean, atol=1e-12)
    np.testing.assert_array_equal(ens.predict(texts), (mean >= 0.5).astype(int))
    ens.save(tmp_path / "ens")
    loaded = load_classifier(tmp_path / "ens")
    np.testing.assert_allclose(loaded.predict_proba(texts), ens.predict_proba(texts), atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(texts), ens.predict(texts))
