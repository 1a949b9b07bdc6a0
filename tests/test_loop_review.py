"""The loop's honest numbers on a real project (the bundled MiniLM, real tweets, real SQLite): the
random audit sample is never trained on, flipped labels rise to the top of the label-error review,
and a version worse on the audit estimate never becomes the serving version."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agilecls.datasets import load_tweets
from agilecls.loop import Project, ProjectError, audit
from agilecls.loop.review import REVIEW_MIN_PER_CLASS

LABELS = ["supermercados", "deportes"]


@pytest.fixture(scope="module")
def tweets(tmp_path_factory):
    """100 tweets of two classes (50 each) in a CSV file, with their true labels."""
    data = load_tweets("train")
    rows = [(t, y) for t, y in zip(data.texts, data.y, strict=False) if y in LABELS]
    frame = pd.DataFrame(rows, columns=["text", "label"]).groupby("label").head(50).reset_index(drop=True)
    frame.insert(0, "id", [f"w{i}" for i in range(len(frame))])
    path = tmp_path_factory.mktemp("tweets") / "tweets.csv"
    frame[["id", "text"]].to_csv(path, index=False)
    return path, dict(zip(frame["id"], frame["label"], strict=False))


def labelled_through_the_queue(folder, tweets, n: int, **settings) -> Project:
    path, truth = tweets
    project = Project.create(folder, LABELS, "¿De qué sector habla el tuit?", audit_seed="tests", **settings)
    project.import_texts(path, id_col="id")
    project.prelabel(progress=False)
    while project.status()["labelled"] < n:
        for row in project.suggest(8):
            project.label(row["id"], truth[row["id"]])
    return project


def test_audit_texts_are_drawn_at_random_and_never_trained_on(tmp_path, tweets):
    project = labelled_through_the_queue(tmp_path / "p", tweets, 40, audit_rate=0.25)
    frame = project.store.frame()
    audited = frame[frame["audit"]]
    labelled = frame[frame["label"].notna()]
    assert len(audited) == 10 and audited["is_test"].all()  # one in four shown, test from the moment shown
    reserve = audit.in_reserve(frame["id"], project.meta["salt"], 0.25)
    assert reserve[frame["audit"].to_numpy()].all()  # drawn from the random reserve ...
    assert not reserve[(frame["label"].notna() & ~frame["audit"]).to_numpy()].any()  # ... which the queue never picks
    rows, _ = project.training_rows(frame)
    assert not set(frame["id"].iloc[rows]) & set(audited["id"]) and len(rows) == len(labelled) - len(audited)
    version = project.version(project.train())
    assert version["n_labels"] == len(rows)
    with pytest.raises(ProjectError, match="audit sample"):
        project.mark_test(audited["id"].iloc[0], False)
    project.settings(audit_rate=0.0)  # turned off: the audit texts labelled so far stay out of training
    assert project.training_rows(project.store.frame())[0].tolist() == rows.tolist()
    assert not any(row["audit"] for row in project.suggest(8))


def test_flipped_labels_rise_to_the_top_of_the_review(tmp_path, tweets):
    """64 labelled tweets, 5 of them flipped: at least 3 of the 5 are among the 10 texts the review
    lists first (cleanlab's label quality score on out-of-fold probabilities)."""
    path, truth = tweets
    project = Project.create(tmp_path / "p", LABELS, audit_rate=0.0)
    project.import_texts(path, id_col="id")
    ids = [i for lab in LABELS for i in [k for k, v in truth.items() if v == lab][:32]]
    flipped = set(np.random.default_rng(0).choice(ids, 5, replace=False))
    for i in ids:
        project.label(i, LABELS[1 - LABELS.index(truth[i])] if i in flipped else truth[i])
    listed = project.label_issues(10)
    top = [row["id"] for row in listed]
    assert len(top) == 10 and len(flipped & set(top)) >= 3
    assert [r["quality"] for r in listed] == sorted(r["quality"] for r in listed)  # the lowest quality first
    # below the minimum per class, no list: out-of-fold scores of a handful of texts mean little
    small = Project.create(tmp_path / "small", LABELS, audit_rate=0.0)
    small.import_texts(path, id_col="id")
    for i in ids[:REVIEW_MIN_PER_CLASS - 1] + ids[32:32 + REVIEW_MIN_PER_CLASS - 1]:
        small.label(i, truth[i])
    assert small.label_issues() == [] and not small.evaluate()["review"]["enough"]


def test_a_version_worse_on_the_audit_never_serves(tmp_path, tweets):
    project = labelled_through_the_queue(tmp_path / "p", tweets, 60, audit_rate=0.5)
    first = project.train()
    assert project.serving_state() == {"version": first, "reason": "the first version"}
    estimate = project.audit_estimate(first)
    assert estimate["enough"] and estimate["n"] >= 25 and estimate["low"] <= estimate["value"] <= estimate["high"]
    frame = project.store.frame()
    truth = np.array([LABELS.index(v) if v else 0 for v in frame["label"]])
    positive = project.version(first)["metrics"]["rule"]["threshold"]["positive"]

    def add(kind: str, wrong: float) -> int:
        """A version whose stored predictions are wrong on every text whose row number is below
        ``wrong`` of the way (on the labelled audit texts among them too)."""
        flip = np.arange(len(frame)) < wrong * len(frame)
        proba = np.full((len(frame), 2), 0.1)
        proba[np.arange(len(frame)), np.where(flip, 1 - truth, truth)] = 0.9
        rule = {"threshold": {"rule": "fixed", "positive": positive, "threshold": 0.5}}
        return project.store.add_version(kind, 0, project.version(first)["folder"], {"rule": rule},
                                         frame["id"].tolist(), proba, [None] * len(frame))

    medium = add("fast", 0.3)
    project.serve(medium)
    project.consider(add("full", 1.0))  # wrong everywhere: never serves
    state = project.evaluate()["serving"]
    assert state["version"] == medium and "not serving" in state["passed_over"]["reason"]
    better = add("full", 0.0)
    project.consider(better)
    assert project.serving_state()["version"] == better and "audit F1 1.000 vs 0." in project.serving_state()["reason"]
    project.serve(first)  # the user's choice wins
    assert project.serving_state() == {"version": first, "reason": "chosen by you"}
    preds = pd.read_csv(project.export(tmp_path / "pred.csv", "predictions"))
    assert (preds["version"] == first).all()
