"""Multi-label targets, metrics, the EncoderClassifier's sigmoid heads and the soft-voting ensemble,
on a tiny sentence encoder built here (real computations, no download)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from agilecls import EncoderClassifier, EnsembleClassifier
from agilecls.evaluation.metrics import multilabel_metrics
from agilecls.persistence import load_classifier
from agilecls.validation import check_multilabel_y

from conftest import ML_FILLER, ML_LABELS, ML_TOPICS, build_tiny_sentence_encoder, multilabel_texts

pytestmark = pytest.mark.usefixtures("one_thread")
LABELS = ML_LABELS


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    words = set(" ".join(ML_TOPICS.values()).split()) | set(ML_FILLER)
    return build_tiny_sentence_encoder(tmp_path_factory.mktemp("ml_encoder"), words)


@pytest.fixture(scope="module")
def data():
    return multilabel_texts(60, seed=1)


# ---- targets -----------------------------------------------------------------------------------
def test_label_lists_and_indicator_matrices_are_accepted():
    Y, labels = check_multilabel_y([("b",), [], {"a", "b"}])
    assert labels == ["a", "b"] and Y.tolist() == [[0, 1], [0, 0], [1, 1]]
    Y2, labels2 = check_multilabel_y(np.array([[0, 1], [1, 0]]), ["x", "y"])
    assert labels2 == ["x", "y"] and Y2.dtype.kind == "i"
    assert check_multilabel_y([[0, 1], [1, 1]], ["x", "y"])[0].tolist() == [[0, 1], [1, 1]]


@pytest.mark.parametrize("y, labels, fitting, message", [
    (np.array([[0, 1], [1, 0]]), None, False, "pass labels=\\[...\\] naming its columns"),
    (np.array([[0, 2], [1, 0]]), ["a", "b"], False, "entries other than 0 and 1"),
    (np.array([[0, 1, 0]]), ["a", "b"], False, "labels names 2 columns"),
    (["a", "b"], None, False, "not a list of labels"),
    ([["a"], ["c"]], ["a", "b"], False, "not in labels"),
    ([["a"], ["a"]], ["a", "b"], True, "given to every training text or to none"),
    ([["a"], []], None, False, "at least two labels"),
])
def test_bad_targets_say_what_to_do(y, labels, fitting, message):
    with pytest.raises((ValueError, TypeError), match=message):
        check_multilabel_y(y, labels, fitting)


# ---- metrics -----------------------------------------------------------------------------------
def test_metrics_equal_hand_computation():
    Y = [[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]]
    proba = np.array([[0.9, 0.2, 0.15], [0.6, 0.7, 0.1], [0.8, 0.3, 0.2], [0.1, 0.1, 0.7]])
    m = multilabel_metrics(Y, proba, ["a", "b", "c"])
    # predictions at 0.5: [1,0,0] [1,1,0] [1,0,0] [0,0,1]; per label (TP, FP, FN): a (2,1,0), b (1,0,1), c (1,0,1)
    assert m["n"] == 4 and isinstance(m["n"], int)
    assert m["f1[a]"] == pytest.approx(0.8)
    assert m["f1[b]"] == pytest.approx(2 / 3) and m["f1[c]"] == pytest.approx(2 / 3)
    assert m["f1_macro"] == pytest.approx((0.8 + 2 / 3 + 2 / 3) / 3)
    assert m["precision_micro"] == pytest.approx(4 / 5) and m["recall_micro"] == pytest.approx(4 / 6)
    assert m["f1_micro"] == pytest.approx(8 / 11)
    assert m["hamming_loss"] == pytest.approx(3 / 12) and m["subset_accuracy"] == pytest.approx(1 / 4)
    # c: positives 0.15, 0.7 against negatives 0.1, 0.2 -> 3 of 4 pairs ordered right
    assert m["roc_auc[a]"] == 1.0 and m["roc_auc[c]"] == pytest.approx(0.75)
    assert m["roc_auc_macro"] == pytest.approx((1 + 1 + 0.75) / 3)
    constant = multilabel_metrics([[0, 1], [0, 0]], np.array([[0.2, 0.9], [0.1, 0.4]]), ["a", "b"])
    assert "roc_auc[a]" not in constant and constant["roc_auc_macro"] == 1.0


# ---- EncoderClassifier ---------------------------------------------------------------------------
def test_logistic_head_is_binary_relevance_and_round_trips(encoder_dir, data, tmp_path):
    texts, y = data
    clf = EncoderClassifier(encoder_dir, head="logistic", C=100.0, multilabel=True).fit(texts, y)
    assert list(clf.classes_) == LABELS
    Y = check_multilabel_y(y, LABELS)[0]
    reference = OneVsRestClassifier(LogisticRegression(C=100.0, max_iter=5000, random_state=0)).fit(clf.embed(texts), Y)
    proba = clf.predict_proba(texts)
    np.testing.assert_allclose(proba, reference.predict_proba(clf.embed(texts)), atol=1e-5)
    pred = clf.predict(texts)
    assert pred.shape == (len(texts), len(LABELS)) and pred.dtype.kind == "i"
    assert clf.evaluate(texts, y)["roc_auc_macro"] > 0.9
    clf.save(tmp_path / "ml")
    loaded = load_classifier(tmp_path / "ml")
    assert loaded.multilabel
    np.testing.assert_array_equal(loaded.predict_proba(texts), proba)
    with pytest.raises(ValueError, match="not available with multilabel=True"):
        loaded.ood_score(texts)


def test_fine_tuned_sigmoid_head_learns_and_round_trips(encoder_dir, data, tmp_path):
    texts, y = data
    clf = EncoderClassifier(encoder_dir, head="softmax", fine_tune=True, epochs=6, batch_size=8,
                            learning_rate=1e-2, encoder_learning_rate=1e-3, multilabel=True).fit(texts, y)
    m = clf.evaluate(texts, y)
    assert m["roc_auc_macro"] > 0.9
    clf.save(tmp_path / "ft")
    loaded = load_classifier(tmp_path / "ft")
    np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-6)


def test_heads_without_a_sigmoid_output_are_refused(encoder_dir, data):
    with pytest.raises(ValueError, match="head='sngp' does not support multilabel=True; use head='logistic'"):
        EncoderClassifier(encoder_dir, head="sngp", multilabel=True).fit(*data)


# ---- ensemble ------------------------------------------------------------------------------------
def test_soft_vote_of_multilabel_members_round_trips(encoder_dir, data, tmp_path):
    texts, y = data
    members = [("logistic", EncoderClassifier(encoder_dir, head="logistic", multilabel=True)),
               ("mlp", EncoderClassifier(encoder_dir, head="softmax", epochs=30, multilabel=True))]
    ens = EnsembleClassifier(members).fit(texts, y)
    parts = ens.member_probas(texts)
    proba = ens.predict_proba(texts)
    np.testing.assert_allclose(proba, (parts["logistic"] + parts["mlp"]) / 2)
    np.testing.assert_array_equal(ens.predict(texts), (proba >= 0.5).astype(int))
    ens.save(tmp_path / "ens")
    np.testing.assert_array_equal(load_classifier(tmp_path / "ens").predict_proba(texts), proba)


def test_ethos_multilabel_split_and_binarisation():
    from agilecls.datasets import load_dataset, load_ethos_multilabel

    train, test = load_ethos_multilabel("train"), load_ethos_multilabel("test")
    assert (len(train), len(test)) == (346, 87)
    Y_train = check_multilabel_y(train.y, train.labels)[0]
    assert train.labels[0] == "violence" and Y_train.sum(axis=0).tolist() == [115, 102, 68, 58, 62, 40, 70, 55]
    assert sum(1 for row in train.y if not row) == 4 and train.meta["multilabel"]
    assert load_dataset("ethos_multilabel:test").y == test.y
