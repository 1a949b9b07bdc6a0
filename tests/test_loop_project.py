"""The agile loop end to end with the real bundled MiniLM encoder: a project from a file, cold
start, labels, the fast model's versions, evaluation, error review, export, and background
training that can be killed or cancelled without losing the last version."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pandas as pd
import pytest

from agilecls import load_classifier
from agilecls.loop import Project, ProjectError

BILLING = ["I was charged twice this month", "refund my last payment please", "my invoice shows the wrong amount",
           "why did my bill go up", "cancel my subscription and refund me", "the card payment failed again",
           "I need a copy of my receipt", "you billed me after I cancelled", "update my credit card details",
           "what is the price of the premium plan", "charge on my statement I do not recognise",
           "can I pay by bank transfer"]
TECH = ["the app crashes when I open settings", "I cannot log in since the update", "the page will not load",
        "error 500 when I upload a file", "my password reset email never arrives", "sync stopped working on android",
        "the screen freezes after a minute", "notifications are not showing up", "the export button does nothing",
        "video calls keep dropping", "the search returns nothing", "installation fails on windows"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "tickets.csv"
    rows = [(f"t{i}", text, "web" if i % 2 else "mail") for i, text in enumerate(BILLING + TECH)]
    pd.DataFrame(rows, columns=["ticket", "body", "channel"]).to_csv(path, index=False)
    return path


def truth(text_id: str) -> str:
    return "billing" if int(text_id[1:]) < len(BILLING) else "technical"


def new_project(tmp_path, source, **kwargs) -> Project:
    project = Project.create(tmp_path / "support", ["billing", "technical"], "Classify the support message",
                             audit_seed="tests", **kwargs)
    assert project.import_texts(source, text_col="body", id_col="ticket") == {"imported": 24, "labelled": 0}
    return project


def test_the_loop_from_a_file_to_a_reviewed_model(tmp_path, source):
    project = new_project(tmp_path, source)
    assert project.prelabel() == 24  # zero-shot similarity to the label names
    first = project.suggest(4)
    assert len({row["id"] for row in first}) == 4 and all(row["suggested"] for row in first)
    assert {truth(row["id"]) for row in first} == {"billing", "technical"}  # k-means covers both topics
    for row in first:
        project.label(row["id"], truth(row["id"]), "ann")
    while project.status()["labelled"] < 16:
        for row in project.suggest(4, "breaking_ties"):
            project.label(row["id"], truth(row["id"]), "ann")
    audited = set(project.store.frame().query("audit")["id"])  # random audit texts are test texts already
    held_out = [next(f"t{i}" for i in order if f"t{i}" not in audited) for order in (range(12), range(23, 11, -1))]
    for text_id in held_out:
        project.mark_test(text_id)
        project.label(text_id, truth(text_id))
    labelled = set(project.store.frame().dropna(subset=["label"])["id"])
    assert not labelled & {row["id"] for row in project.suggest(8)}
    v1 = project.train()
    version = project.versions()[-1]
    assert version["id"] == v1 and version["kind"] == "fast"
    stored = project.store.frame()
    held = int((stored["label"].notna() & stored["is_test"]).sum())  # test and random audit texts: never trained on
    assert project.status()["audit"] >= 1 and held >= 3
    assert version["n_labels"] == len(labelled) - held
    clf = load_classifier(project.folder / version["folder"])
    stored = project.store.predictions(v1)
    frame = project.store.frame()
    np.testing.assert_allclose(clf.predict_proba(frame["text"].tolist()),
                               np.array([stored[i][0] for i in frame["id"]]), atol=1e-5)
    report = project.evaluate()
    assert report["cross_validated"]["accuracy"] >= 0.8 and report["test"]["n"] == 2
    assert np.array(report["confusion"]["matrix"]).sum() == len(labelled) - held
    assert sum(b["count"] for b in report["reliability"]) == len(labelled) - held
    # a wrong label shows up among the model's disagreements and cleanlab's possible label errors
    trained = set(frame["id"].iloc[project.training_rows(frame)[0]])
    wrong = next(i for i in frame["id"] if i in trained and truth(i) == "billing")
    project.label(wrong, "technical", "bob")
    assert wrong in {row["id"] for row in project.errors()}
    assert project.label_issues() == []  # too few labels per class for out-of-fold scores to mean anything
    assert "listed once every label has" in project.evaluate()["review"]["message"]
    project.label(wrong, "billing", "bob")  # fixed in place
    project.train()
    curve = project.evaluate()["learning_curve"]
    assert [p["version"] for p in curve] == [v1, v1 + 1] and curve[-1]["metric"] == "roc_auc"
    labels_out = pd.read_csv(project.export(tmp_path / "labels.csv"))
    assert len(labels_out) == len(labelled) and set(labels_out.columns) >= {"id", "text", "label", "channel"}
    preds = pd.read_json(project.export(tmp_path / "pred.jsonl", "predictions"), lines=True)
    assert len(preds) == 24 and (preds["predicted"] == [truth(i) for i in preds["id"]]).mean() >= 0.9


def test_project_errors_are_one_line(tmp_path, source):
    project = new_project(tmp_path, source)
    for call in (lambda: project.label("t1", "eggs"), lambda: project.label("nope", "billing"),
                 lambda: project.suggest(4, "psychic"), lambda: project.train(),
                 lambda: Project.create(project.folder, ["a", "b"]), lambda: Project(tmp_path),
                 lambda: Project.create(tmp_path / "x", ["only"]),
                 lambda: project.export(tmp_path / "p.csv", "predictions")):
        with pytest.raises(ValueError) as err:
            call()
        assert "\n" not in str(err.value)
    assert isinstance(ProjectError("x"), ValueError)


def wait_for(project, job_id, statuses, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = next(j for j in project.jobs() if j["id"] == job_id)
        if job["status"] in statuses:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


def labelled_project(tmp_path, source, **kwargs) -> Project:
    project = new_project(tmp_path, source, **kwargs)
    for i in range(0, 24, 2):
        project.label(f"t{i}", truth(f"t{i}"))
    return project


def test_background_training_killed_or_cancelled_keeps_the_last_version(tmp_path, source):
    project = labelled_project(tmp_path, source)
    job = project.start_training("fast")
    with pytest.raises(ProjectError, match="still running"):
        project.start_training("fast")
    done = wait_for(project, job, {"done", "failed"})
    assert done["status"] == "done", done["error"]
    before = project.versions()
    clf_before = load_classifier(project.folder / before[-1]["folder"])
    # killed with SIGKILL while it works: marked failed, the last version untouched
    job = project.start_training("fast")
    wait_for(project, job, {"running"})
    os.kill(next(j for j in project.store.jobs() if j["id"] == job)["pid"], signal.SIGKILL)
    assert wait_for(project, job, {"failed", "done"})["status"] in {"failed", "done"}
    versions = project.versions()
    assert versions[: len(before)] == before
    np.testing.assert_allclose(load_classifier(project.folder / before[-1]["folder"]).predict_proba(BILLING[:3]),
                               clf_before.predict_proba(BILLING[:3]))
    job = project.start_training("fast")
    assert project.cancel(job)["status"] == "cancelled"
    time.sleep(1)
    assert next(j for j in project.jobs() if j["id"] == job)["status"] == "cancelled"


def test_full_model_trains_in_the_background_with_progress(tmp_path, tiny_lm_folder):
    """The full recipe (tuned LLM + fine-tuned encoder) with a tiny LLM and a tiny sentence encoder,
    so it runs in seconds."""
    from conftest import TEXTS, Y, build_tiny_sentence_encoder

    encoder = build_tiny_sentence_encoder(tmp_path / "encoder", set(" ".join(TEXTS).lower().split()))
    project = Project.create(tmp_path / "tiny", ["Positive", "Negative"], model=str(tiny_lm_folder),
                             encoder=encoder, llm_params={"top_layers": None, "epochs": 2})
    path = tmp_path / "toy.jsonl"
    pd.DataFrame({"text": TEXTS, "label": Y}).to_json(path, orient="records", lines=True)
    project.import_texts(path, label_col="label")
    job = project.start_training("full")
    state = wait_for(project, job, {"done", "failed"}, timeout=300)
    assert state["status"] == "done", (state["error"], (project.folder / f"job-{job}.log").read_text()[-2000:])
    assert state["progress"]["epoch"] == state["progress"]["epochs"] and "loss" in state["progress"]
    version = project.versions()[-1]
    assert version["kind"] == "full" and state["version_id"] == version["id"]
    clf = load_classifier(project.folder / version["folder"])
    assert [name for name, _ in clf.estimator_.estimators_] == ["encoder", "llm"]
    assert state["progress"]["scored"] == state["progress"]["total"] == len(TEXTS)  # through the batch engine


def test_the_loop_from_the_command_line(tmp_path, source):
    """Settings at creation and later, training, the versions with their audit estimate, serving a
    version by hand, the serving version's predictions; bad settings are one line and exit code 2."""
    from typer.testing import CliRunner

    from agilecls.cli import app

    runner = CliRunner()
    folder = str(tmp_path / "support")

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    run("project", "new", folder, "--labels", "billing,technical", "--rule", "recall:0.9", "--positive", "billing",
        "--audit-rate", "0.25")
    run("project", "import", folder, str(source), "--text-col", "body", "--id-col", "ticket", "--no-prelabel")
    assert "rule: recall:0.9" in run("project", "settings", folder)
    for i in range(0, 24, 2):
        run("project", "label", folder, f"t{i}", truth(f"t{i}"))
    out = run("project", "train", folder)
    assert "version 1" in out and "decision rule: 'billing' when p >= " in out and "serving: version 1" in out
    run("project", "settings", folder, "--rule", "f1")
    run("project", "train", folder)
    listed = run("project", "versions", folder)
    assert "* 1" not in listed and "* 2" in listed and "no audit estimate" in listed
    assert "version 1 now serves" in run("project", "promote", folder, "1")
    assert run("project", "versions", folder).splitlines()[-1].startswith("* serving: version 1 (chosen by you)")
    run("project", "export", folder, "--out", str(tmp_path / "pred.csv"), "--predictions")
    assert (pd.read_csv(tmp_path / "pred.csv")["version"] == 1).all()
    for bad, says in ((["--rule", "magic"], "use 'f1'"), (["--positive", "praise"], "not a label"),
                      (["--audit-rate", "0.9"], "between 0 (off) and 0.5")):
        out = run("project", "settings", folder, *bad, code=2)
        assert says in out and "Traceback" not in out
