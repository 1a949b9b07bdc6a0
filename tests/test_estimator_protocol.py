"""What the estimators tell explain, the CLI and the server: ``decision_rule()`` (how predict turns
probabilities into labels), ``salience_members`` / ``salience_objective`` (what explain
differentiates), on a tiny random sentence encoder; and ``/api/classify`` built on them."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from agilecls import CalibratedClassifier, EncoderClassifier, EnsembleClassifier, explain
from agilecls.calibration.thresholds import DecisionThreshold
from agilecls.ensemble import MemberNeeded
from agilecls.server import create_app

from conftest import build_tiny_sentence_encoder, topic_texts

TOPICS = {"refund": "refund money back return charge paid order", "delivery": "parcel delivery courier late "
          "shipping arrive tracking"}
TEXT = "my parcel is late and the courier has no tracking"


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return build_tiny_sentence_encoder(tmp_path_factory.mktemp("enc"), " ".join(TOPICS.values()).split())


@pytest.fixture(scope="module")
def data():
    return topic_texts(TOPICS, 0, 16)


def _encoder(encoder_dir, c: float = 1.0) -> EncoderClassifier:
    return EncoderClassifier(encoder_dir, head="logistic", device="cpu", C=c)


def test_decision_rules_say_how_predict_decides(encoder_dir, data):
    texts, y = data
    enc = _encoder(encoder_dir).fit(texts, y)
    assert enc.decision_rule() is None and enc.reject_threshold_ is None
    cal = CalibratedClassifier(_encoder(encoder_dir), cv=3, threshold=0.3, pos_label="refund").fit(texts, y)
    rule = cal.decision_rule()
    assert isinstance(rule, DecisionThreshold) and rule is cal.threshold_
    proba = cal.predict_proba(texts)
    assert (rule.decide(proba, cal.classes_) == cal.predict(texts)).all()
    ens = EnsembleClassifier([("a", _encoder(encoder_dir)), ("b", _encoder(encoder_dir, 0.1))], cv=3,
                             threshold="f1", pos_label="refund").fit(texts, y)
    assert ens.decision_rule() is ens.threshold_ and ens.decision_rule().positive == "refund"
    assert (ens.decision_rule().decide(ens.predict_proba(texts), ens.classes_) == ens.predict(texts)).all()


def test_explain_follows_what_each_classifier_names(encoder_dir, data):
    texts, y = data
    cal = CalibratedClassifier(_encoder(encoder_dir), cv=3, threshold=0.9, pos_label="refund").fit(texts, y)
    plan = cal.salience_members(TEXT)
    decided = str(cal.predict([TEXT])[0])
    assert plan["models"] == cal.base_models_ and plan["label"] == decided
    exp = explain(cal, TEXT, method="grad_dot_input")
    assert exp.target == decided and exp.info["calibrated_label"] == decided
    base = cal.base_models_[0]
    k = list(base.classes_).index(decided)
    assert exp.score == pytest.approx(float(np.log(base.predict_proba([TEXT])[0][k])), abs=1e-5)
    # a calibrated ensemble: the member is named through the calibration
    ens = EnsembleClassifier([("a", _encoder(encoder_dir)), ("b", _encoder(encoder_dir, 0.1))]).fit(texts, y)
    wrapped = CalibratedClassifier(ens, cv=3).fit(texts, y)
    with pytest.raises(MemberNeeded, match=r"member= one of \['a', 'b'\]"):
        explain(wrapped, TEXT)
    both = explain(wrapped, TEXT, member="b")
    assert both.info["member"] == "b" and both.info["calibrated_label"] == str(wrapped.predict([TEXT])[0])
    with pytest.raises(ValueError, match="an agilecls classifier"):
        explain(object(), TEXT)


def test_api_classify_reports_the_classifiers_own_probabilities_and_decision(encoder_dir, data):
    texts, y = data
    cal = CalibratedClassifier(_encoder(encoder_dir), cv=3, threshold=0.95, pos_label="refund").fit(texts, y)
    ens = EnsembleClassifier([("a", _encoder(encoder_dir)), ("b", _encoder(encoder_dir, 0.1))]).fit(texts, y)
    client = TestClient(create_app(classifiers={"cal": cal, "ens": ens}))
    for name, clf in (("cal", cal), ("ens", ens)):
        r = client.post("/api/classify", json={"text": TEXT, "classifier": name})
        assert r.status_code == 200, r.text
        data = r.json()
        proba = clf.predict_proba([TEXT])[0]
        assert data["probabilities"] == pytest.approx(dict(zip(map(str, clf.classes_), proba, strict=True)))
        assert data["prediction"] == str(clf.predict([TEXT])[0])
        if name == "ens":  # the combined probability has no single gradient: no salience
            assert data["explanation"] is None and data["label"] == data["prediction"]
        else:
            assert data["explanation"] is True and data["label"] == data["prediction"] and data["text_tokens"]
