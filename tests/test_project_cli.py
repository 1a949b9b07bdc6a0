"""``agilecls project``'s commands beyond the loop's main path: versions, undo, skip, test, cancel
and ``new --model --describe``, each with ``--json``, on a real project (SQLite, the bundled
MiniLM encoder, a tiny language model); options that would be ignored are errors (exit code 2)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from agilecls.cli import app
from agilecls.loop import Project
from test_loop_project import BILLING, TECH, truth

RUNNER = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    if code == 2:
        assert "Traceback" not in result.output
    return result.output


def run_json(*args: str) -> dict:
    result = RUNNER.invoke(app, [str(a) for a in args] + ["--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def folder(tmp_path):
    source = tmp_path / "tickets.csv"
    pd.DataFrame({"ticket": [f"t{i}" for i in range(24)], "body": BILLING + TECH}).to_csv(source, index=False)
    folder = tmp_path / "support"
    run("project", "new", folder, "--labels", "billing,technical", "--audit-rate", "0")
    run("project", "import", folder, source, "--text-col", "body", "--id-col", "ticket", "--no-prelabel")
    return folder


def test_new_keeps_the_model_and_label_descriptions_the_llm_prelabels_use(tmp_path, tiny_lm_folder):
    folder = tmp_path / "described"
    made = run_json("project", "new", folder, "--labels", "Positive,Negative", "--model", tiny_lm_folder,
                    "--describe", "Positive=a happy, glad or grateful message", "--describe", "Negative = an angry one")
    assert made["model"] == str(tiny_lm_folder)
    assert made["descriptions"] == {"Positive": "a happy, glad or grateful message", "Negative": "an angry one"}
    project = Project(folder)
    assert project.meta["model"] == str(tiny_lm_folder)
    texts = tmp_path / "texts.csv"
    pd.DataFrame({"text": ["thank you so much", "this is awful"]}).to_csv(texts, index=False)
    project.import_texts(texts)
    assert project.prelabel("llm", progress=False) == 2  # the tiny model scores them: no other model is loaded
    assert len(project.store.prelabels()[1]) == 2
    for bad, says in ((["--describe", "Positive"], "LABEL=TEXT"),
                      (["--describe", "praise=kind words"], "unknown label"),
                      (["--describe", "Positive=a", "--describe", "Positive=b"], "twice")):
        out = run("project", "new", tmp_path / "bad", "--labels", "Positive,Negative", *bad, code=2)
        assert says in out


def test_undo_skip_and_test_through_the_same_project_methods_as_the_label_page(folder):
    run("project", "label", folder, "t0", "billing")
    run("project", "label", folder, "t0", "technical", "--annotator", "ann")
    undone = run_json("project", "undo", folder)["undone"]
    assert (undone["id"], undone["undone"], undone["label"]) == ("t0", "technical", "billing")
    assert "t0: billing taken back, now unlabelled" in run("project", "undo", folder)
    assert "nothing to undo" in run("project", "undo", folder)
    assert Project(folder).text("t0")["label"] is None

    assert run_json("project", "skip", folder, "t3") == {"id": "t3", "skipped": True}
    offered = [row["id"] for row in run_json("project", "suggest", folder, "--count", "30")["suggestions"]]
    assert len(offered) == 23 and "t3" not in offered
    assert "no text with id" in run("project", "skip", folder, "nope", code=2)

    held = run_json("project", "test", folder, "t5")
    assert held["is_test"] and held["label"] is None
    assert "label it to score versions on it" in run("project", "test", folder, "t5")
    for i in range(0, 24, 2):
        run("project", "label", folder, f"t{i}", truth(f"t{i}"))
    run("project", "label", folder, "t5", truth("t5"))
    run("project", "train", folder)
    project = Project(folder)
    assert project.versions()[-1]["n_labels"] == 12  # the test text is never trained on
    assert project.versions()[-1]["metrics"]["test"]["n"] == 1
    assert not run_json("project", "test", folder, "t5", "--remove")["is_test"]


def test_versions_lists_each_version_with_its_metrics_and_the_serving_one(folder):
    for i in range(0, 24, 2):
        run("project", "label", folder, f"t{i}", truth(f"t{i}"))
    first = run_json("project", "train", folder)
    assert first["version"] == 1 and first["serving"]["version"] == 1
    assert first["metrics"]["cross_validated"]["accuracy"] >= 0.7
    run("project", "train", folder)
    listed = run_json("project", "versions", folder)
    rows = listed["versions"]
    assert [(r["version"], r["kind"], r["labels"], r["serving"]) for r in rows] == [(1, "fast", 12, False),
                                                                                    (2, "fast", 12, True)]
    assert rows[0]["metric"] == "roc_auc" and 0.5 < rows[0]["cross_validated"] <= 1
    assert not rows[0]["audit_estimate"]["enough"] and Project(folder).version(1)["folder"] in rows[0]["folder"]
    assert listed["serving"]["version"] == 2
    text = run("project", "versions", folder)
    assert "* 2\tfast\t12 labels\troc_auc" in text and "out of fold" in text
    review = run_json("project", "review", folder, "--per-list", "2")
    assert len(review["errors"]) <= 2 and review["review"]["min_per_class"] == 8
    run("project", "review", folder, "--limit", "2", code=2)  # --limit reads the first N rows; not here


def test_cancel_stops_the_running_job_and_ignored_options_are_errors(folder):
    assert "no training job is running" in run("project", "cancel", folder, code=2)
    job = Project(folder).store.start_job("full")  # as if a full training were running
    assert run_json("project", "status", folder)["jobs"][-1]["status"] == "queued"
    cancelled = run_json("project", "cancel", folder)
    assert (cancelled["id"], cancelled["status"]) == (job, "cancelled")
    assert run_json("project", "status", folder)["jobs"][-1]["status"] == "cancelled"
    assert "--background needs --full" in run("project", "train", folder, "--background", code=2)
    assert "add --label-col" in run("project", "import", folder, "ethos", "--annotator", "ann", code=2)
    assert Project(folder).status()["texts"] == 24  # refused before anything was imported
