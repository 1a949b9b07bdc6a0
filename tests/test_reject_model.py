"""A sentence-encoder model that abstains (``train --encoder minilm --reject recall:0.9``) works in
every place a saved model goes: ``eval``, ``predict``, the server's ``/v1/predict`` and
``/api/classify``; its reject cut is ``reject_threshold_``, and a folder that names the cut
``threshold`` loads alike."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agilecls.cli import app
from agilecls.persistence import load_classifier
from agilecls.server import create_app

pytestmark = pytest.mark.slow

TOPICS = {"balance": "bank account balance money savings transfer card",
          "weather": "weather rain sunny forecast cold snow wind",
          "music": "play song music album artist playlist radio"}
FAR = ["what is the capital of peru", "how tall is mount everest", "who wrote the iliad",
       "translate good morning into french", "recommend a recipe for lasagna", "what year did the war end",
       "book a table for two tonight", "how many legs does a spider have", "explain photosynthesis to me",
       "what is the boiling point of water", "tell me a joke about cats", "find flights to tokyo"]


def topic_rows(n_per_class: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, words in TOPICS.items():
        for _ in range(n_per_class):
            texts.append(" ".join(rng.choice(words.split(), size=4)))
            labels.append(label)
    return texts, labels


def commands(train_csv, test_csv, model, preds, report) -> dict[str, list[str]]:
    """The command lines of this test, in one place."""
    return {"train": ["train", str(train_csv), "--label-col", "intent", "--encoder", "minilm", "--head", "logistic",
                      "--reject", "recall:0.9", "--out", str(model)],
            "eval": ["eval", str(test_csv), "--label-col", "intent", "--model", str(model), "--report", str(report)],
            "predict": ["predict", str(test_csv), "--model", str(model), "--out", str(preds)]}


@pytest.fixture(scope="module")
def rejecting(tmp_path_factory):
    """(folder of the trained model, test csv, the test texts, their labels, the train command's output)."""
    root = tmp_path_factory.mktemp("reject")
    texts, labels = topic_rows(10, seed=0)
    pd.DataFrame({"text": texts + FAR[:8], "intent": labels + ["oos"] * 8}).to_csv(root / "train.csv", index=False)
    test_texts, test_labels = topic_rows(4, seed=1)
    test_texts, test_labels = test_texts + FAR[8:], test_labels + ["oos"] * len(FAR[8:])
    pd.DataFrame({"text": test_texts, "intent": test_labels}).to_csv(root / "test.csv", index=False)
    run = commands(root / "train.csv", root / "test.csv", root / "model", root / "preds.csv", root / "eval.html")
    trained = CliRunner().invoke(app, run["train"])
    assert trained.exit_code == 0, trained.output
    return root, run, test_texts, test_labels, trained.output


def test_the_reject_cut_is_reject_threshold_and_an_aliased_folder_loads_alike(rejecting, tmp_path):
    root, _, test_texts, _, output = rejecting
    clf = load_classifier(root / "model")
    cut = clf.reject_threshold_
    assert isinstance(cut, float) and f"out-of-scope score > {cut:.3f}, chosen by recall:0.9" in output
    assert not hasattr(clf, "threshold_") and clf.decision_rule() is None
    assert f"'oos' when the out-of-scope score > {cut:.3f}" in clf.describe()
    d = clf.details(test_texts)
    np.testing.assert_array_equal(d["pred"] == "oos", d["ood_score"] > cut)
    assert (d["pred"] == "oos").any() and (d["pred"] != "oos").any()
    # a folder whose manifest names the cut "threshold" (with its own hash) loads with the same cut
    folder = tmp_path / "aliased"
    clf.save(folder)
    manifest = json.loads((folder / "agilecls.json").read_text())
    manifest["threshold"] = manifest.pop("reject_threshold")
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    manifest["manifest_sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    (folder / "agilecls.json").write_text(json.dumps(manifest))
    again = load_classifier(folder)
    assert again.reject_threshold_ == cut and (again.predict(test_texts) == d["pred"]).all()


def test_eval_and_predict_work_on_a_rejecting_model(rejecting):
    root, run, test_texts, _, _ = rejecting
    runner = CliRunner()
    evaluated = runner.invoke(app, run["eval"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "oos_recall" in evaluated.output and "abstains: 'oos' when the out-of-scope score >" in evaluated.output
    assert (root / "eval.html").read_text().count("data:image/png") >= 1
    predicted = runner.invoke(app, run["predict"])
    assert predicted.exit_code == 0, predicted.output
    preds = pd.read_csv(root / "preds.csv", keep_default_na=False)
    expected = load_classifier(root / "model").predict(test_texts)
    assert preds["label"].tolist() == list(expected) and "oos" in preds["label"].tolist()


def test_the_server_predicts_and_explains_with_a_rejecting_model(rejecting):
    root, _, test_texts, _, _ = rejecting
    clf = load_classifier(root / "model")
    expected = clf.predict(test_texts)
    client = TestClient(create_app(classifiers={"intents": root / "model"}))
    r = client.post("/v1/predict", json={"texts": test_texts, "classifier": "intents"})
    assert r.status_code == 200, r.text
    got = r.json()["predictions"]
    assert [p["label"] for p in got] == list(expected)
    far = test_texts[int(np.flatnonzero(expected == "oos")[0])]
    r = client.post("/api/classify", json={"text": far, "classifier": "intents", "method": "grad_l2"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["prediction"] == "oos" and data["explanation"] is True
    probs = clf.predict_proba([far])[0]
    assert data["label"] == str(clf.classes_[probs.argmax()])  # the class the abstention overruled is explained
    assert data["probabilities"] == pytest.approx(dict(zip(map(str, clf.classes_), probs, strict=True)))
