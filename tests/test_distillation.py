"""Distillation: a known teacher reproduced by a tiny sentence encoder trained on its soft
probabilities, the student saved as an ordinary classifier, ``agilecls distill`` with the real
bundled MiniLM, and a project's serving version published as a distilled version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agilecls import EncoderClassifier, load_classifier
from agilecls.calibration.classifier import CalibratedClassifier
from agilecls.cli import app
from agilecls.distillation import distill, soften

SPORTS = ["goal", "match", "team", "score", "player", "ball", "coach", "league"]
FOOD = ["pizza", "pasta", "bread", "cheese", "soup", "salad", "recipe", "dinner"]


class WordCountTeacher:
    """A known teacher: P(sports) is a logistic function of (sports words - food words)."""

    classes_ = np.array(["food", "sports"], dtype=object)

    def predict_proba(self, texts):
        margin = np.array([sum(w in SPORTS for w in t.split()) - sum(w in FOOD for w in t.split()) for t in texts])
        p = 1 / (1 + np.exp(-1.5 * margin))
        return np.c_[1 - p, p]

    def describe(self):
        return "word counts"


def draw(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(SPORTS + FOOD, size=rng.integers(3, 8))) for _ in range(n)]


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    from conftest import build_tiny_sentence_encoder

    return build_tiny_sentence_encoder(tmp_path_factory.mktemp("encoder"), SPORTS + FOOD)


def test_soft_targets_at_temperature_one_train_as_the_labels_do(tiny_encoder):
    """One-hot probabilities as targets are the labels: the same head, to float precision."""
    texts = draw(40, 1)
    y = ["sports" if p[1] >= 0.5 else "food" for p in WordCountTeacher().predict_proba(texts)]
    onehot = np.eye(2)[[["food", "sports"].index(v) for v in y]]
    params = {"head": "softmax", "fine_tune": True, "epochs": 2, "oos_label": None, "labels": ["food", "sports"]}
    hard = EncoderClassifier(tiny_encoder, **params).fit(texts, y)
    soft = EncoderClassifier(tiny_encoder, **params).fit(texts, y, targets=onehot)
    np.testing.assert_allclose(soft.predict_proba(texts), hard.predict_proba(texts), atol=1e-5)
    with pytest.raises(ValueError, match="targets must be non-negative class probabilities of shape"):
        EncoderClassifier(tiny_encoder, **params).fit(texts, y, targets=onehot[:5])
    with pytest.raises(ValueError, match="use head='softmax' or fine_tune=True"):
        EncoderClassifier(tiny_encoder, head="logistic").fit(texts, y, targets=onehot)


def test_a_tiny_student_reproduces_a_known_teacher_and_saves_as_an_ordinary_classifier(tiny_encoder, tmp_path):
    teacher = WordCountTeacher()
    np.testing.assert_allclose(soften(np.array([[0.8, 0.2]]), 1.0), [[0.8, 0.2]])
    student = distill(teacher, draw(400, 2), tiny_encoder, epochs=40, progress=False)
    facts = student.provenance["distilled_from"]
    assert facts["teacher"] == "word counts" and facts["held_out_truth"] == "the teacher's answers"
    assert facts["unlabelled_texts"] == len(set(draw(400, 2))) and facts["agreement"] >= 0.85
    new = draw(300, 3)
    p_teacher, p_student = teacher.predict_proba(new), student.predict_proba(new)
    decided = p_teacher[:, 1] != 0.5  # a tie has no answer to reproduce
    agreement = np.mean(p_student[decided].argmax(1) == p_teacher[decided].argmax(1))
    assert agreement >= 0.95, agreement
    assert np.corrcoef(p_student[:, 1], p_teacher[:, 1])[0, 1] > 0.9  # the probabilities, not only the answers
    folder = student.save(tmp_path / "student")
    loaded = load_classifier(folder)
    assert isinstance(loaded, CalibratedClassifier) and loaded.provenance == student.provenance
    np.testing.assert_allclose(loaded.predict_proba(new), student.predict_proba(new), atol=1e-6)
    assert loaded.ood_score(new).shape == (300,)
    with pytest.raises(ValueError, match="labeled rows use labels"):
        distill(teacher, new, tiny_encoder, labeled=(new[:10], ["cars"] * 10), progress=False)


def test_distill_command_with_the_real_minilm(tmp_path):
    """``agilecls train --recipe fast`` then ``agilecls distill`` with labelled rows: the student
    takes the teacher's rule, fitted again on held-out labels, and ``predict`` uses it unchanged."""
    from conftest import TEXTS, Y

    labelled = tmp_path / "labelled.csv"
    pd.DataFrame({"text": TEXTS, "label": Y}).to_csv(labelled, index=False)
    unlabelled = tmp_path / "pool.txt"
    unlabelled.write_text("\n".join(f"{t} indeed" for t in TEXTS) + "\n")
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == code, result.output
        return result.output

    run("train", labelled, "--out", tmp_path / "teacher", "--recipe", "fast", "--pos-label", "Positive")
    out = run("distill", unlabelled, "--model", tmp_path / "teacher", "--labeled", labelled, "--out",
              tmp_path / "student", "--epochs", "2")
    assert "agreement with the teacher" in out and "saved to" in out
    manifest = json.loads((tmp_path / "student" / "agilecls.json").read_text())
    source = manifest["provenance"]["distilled_from"]
    assert source["teacher_provenance"]["recipe"] == "fast" and source["held_out_truth"] == "labels"
    assert manifest["threshold"]["positive"] == "Positive"  # the teacher's rule, fitted again
    run("predict", labelled, "--model", tmp_path / "student", "--out", tmp_path / "preds.csv")
    assert set(pd.read_csv(tmp_path / "preds.csv")["label"]) <= {"Positive", "Negative"}
    assert "holds no agilecls.json" in run("distill", unlabelled, "--model", tmp_path, "--out",
                                           tmp_path / "s2", code=2)


def test_a_project_publishes_its_serving_version_as_a_distilled_version(tmp_path, tiny_encoder):
    from fastapi.testclient import TestClient

    from agilecls.loop import Project
    from agilecls.server import create_app

    texts = draw(60, 4)
    teacher = WordCountTeacher()
    project = Project.create(tmp_path / "p", ["food", "sports"], encoder=tiny_encoder, audit_seed="tests")
    path = tmp_path / "texts.csv"
    pd.DataFrame({"id": [f"t{i}" for i in range(60)], "text": texts}).to_csv(path, index=False)
    project.import_texts(path, id_col="id")
    truth = dict(zip([f"t{i}" for i in range(60)], teacher.predict_proba(texts).argmax(1), strict=True))
    for i in range(0, 60, 2):
        project.label(f"t{i}", ["food", "sports"][truth[f"t{i}"]])
    with TestClient(create_app(project=project.folder)) as client:  # the Publish button's request
        refused = client.post("/api/project/train", json={"kind": "distilled"})
        assert refused.status_code == 409 and "train a version first" in refused.json()["detail"]
    fast = project.train("fast")
    version = project.publish()
    record = project.version(version)
    assert record["kind"] == "distilled" and record["metrics"]["distilled_from"]["version"] == fast
    clf = load_classifier(Path(project.folder) / record["folder"])
    pool = set(texts[1::2]) - set(texts[0::2])  # the unlabelled texts, each once, none a labelled one
    assert clf.provenance["distilled_from"]["unlabelled_texts"] == len(pool)
    stored = project.store.predictions(version)
    np.testing.assert_allclose(clf.predict_proba(texts), [stored[f"t{i}"][0] for i in range(60)], atol=1e-5)


def test_the_distilled_recipe_trains_its_teacher_then_saves_only_the_student(tiny_encoder, tmp_path):
    """``DistilledClassifier`` (the ``distilled`` recipe) with the known teacher as an estimator: it
    fits a clone of the teacher on the labels, distils it over the unlabelled texts, and saves the
    student with both provenances."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    from agilecls.distillation import DistilledClassifier

    class Fittable(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.array(sorted(set(y)), dtype=object)
            return self

        def predict_proba(self, X):
            return WordCountTeacher().predict_proba(X)

        def predict(self, X):
            return self.classes_[self.predict_proba(X).argmax(1)]

    texts = draw(80, 5)
    y = ["sports" if p[1] > 0.5 else "food" for p in WordCountTeacher().predict_proba(texts)]
    clf = DistilledClassifier(Fittable(), student=tiny_encoder, epochs=40)
    clf.provenance = {"recipe": "distilled", "options": {"student": "tiny"}}
    clf.fit(texts, y, unlabeled=draw(400, 6))
    assert list(clf.classes_) == ["food", "sports"] and clf.teacher_.classes_.tolist() == ["food", "sports"]
    new = draw(200, 7)
    decided = WordCountTeacher().predict_proba(new)[:, 1] != 0.5
    agreement = np.mean(clf.predict(new)[decided] == clf.teacher_.predict(new)[decided])
    assert agreement >= 0.9, agreement
    loaded = load_classifier(clf.save(tmp_path / "small"))
    assert isinstance(loaded, CalibratedClassifier)
    assert loaded.provenance["recipe"] == "distilled" and loaded.provenance["distilled_from"]["labelled_texts"] == 80
    np.testing.assert_allclose(loaded.predict_proba(new), clf.predict_proba(new), atol=1e-6)
