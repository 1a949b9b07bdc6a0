"""Served texts back into the labelling pool: sampled, deduplicated, written off the request path, and
kept across a SIGKILL of the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from agilecls import EncoderClassifier
from agilecls.loop import Project
from agilecls.loop.feedback import PRODUCTION, ServedSampler, served_id

from conftest import build_tiny_sentence_encoder, free_port, topic_texts, wait_until_up

pytestmark = pytest.mark.usefixtures("one_thread")

TOPICS = {"refund": "refund money back return order paid charge card price",
          "delivery": "parcel delivery late shipping courier arrive tracking box address"}


def new_project(folder, texts) -> Project:
    project = Project.create(folder, labels=sorted(TOPICS))
    data = folder.parent / f"{folder.name}.csv"
    data.write_text("text\n" + "\n".join(texts) + "\n")
    project.import_texts(str(data))
    return project


def production_rows(project: Project):
    frame = project.store.frame()
    return frame[[e.get("source") == PRODUCTION for e in frame["extra"]]]


def test_the_sampler_stores_a_share_once_each_and_skips_what_the_pool_has(tmp_path):
    pool, _ = topic_texts(TOPICS, 0, 5)
    project = new_project(tmp_path / "p", pool)
    served = [f"served text {i}" for i in range(400)]
    sampler = ServedSampler(tmp_path / "p", 0.5, flush_seconds=0.05, seed=0)
    for start in range(0, 400, 8):  # served twice, and with texts the pool already holds
        chunk = served[start:start + 8] + pool[:2]
        sampler.offer("topics", chunk, ["refund"] * len(chunk), [0.5] * len(chunk))
        sampler.offer("topics", chunk, ["refund"] * len(chunk), [0.5] * len(chunk))
    counts = sampler.close()
    rows = production_rows(project)
    assert counts["stored"] == counts["sampled"] == len(rows)
    # each serving is a draw: a text served twice is kept with probability 1 - 0.5² = 0.75 (300 of 400)
    assert 250 < len(rows) < 350
    assert set(rows["text"]) <= set(served) and rows["text"].is_unique
    assert list(rows["id"]) == [served_id(t) for t in rows["text"]]
    extra = rows["extra"].iloc[0]
    assert extra["classifier"] == "topics" and extra["prediction"] == "refund" and extra["ood_score"] == 0.5
    again = ServedSampler(tmp_path / "p", 1.0, flush_seconds=0.05)  # a restart knows what is stored
    again.offer("topics", served, ["refund"] * 400, [None] * 400)
    assert again.close()["stored"] == 400 - len(rows)
    with pytest.raises(ValueError, match="--sample"):
        ServedSampler(tmp_path / "p", 0.0)


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("feedback")
    encoder = build_tiny_sentence_encoder(root, set(" ".join(TOPICS.values()).split()) | {"served", "text"})
    texts, y = topic_texts(TOPICS, 0, 20)
    EncoderClassifier(encoder, head="logistic", epochs=3, device="cpu", random_state=0).fit(texts, y).save(root / "clf")
    return root / "clf"


def serve(folder, project, port) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "agilecls.cli", "serve", "--model", str(folder), "--project",
                             str(project), "--sample", "1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    wait_until_up(proc, f"http://127.0.0.1:{port}/healthz", timeout=60)
    return proc


@pytest.mark.slow
def test_served_texts_survive_a_sigkill_of_the_server(tmp_path, classifier_folder):
    """Rows written before the kill stay, once each; after a restart, sending everything again
    completes the pool with no duplicate."""
    new_project(tmp_path / "p", topic_texts(TOPICS, 1, 3)[0])
    texts = [f"served text {i} refund" for i in range(600)]
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/predict"
    proc = serve(classifier_folder, tmp_path / "p", port)
    answered = 0
    for start in range(0, 300, 6):
        assert httpx.post(url, json={"texts": texts[start:start + 6]}, timeout=30).status_code == 200
        answered += 6
    time.sleep(1.5)  # longer than the writer's flush interval: everything answered so far is written
    for start in range(300, 400, 6):
        httpx.post(url, json={"texts": texts[start:start + 6]}, timeout=30)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = production_rows(Project(tmp_path / "p"))
    assert stored["text"].is_unique and set(texts[:answered]) <= set(stored["text"])
    proc = serve(classifier_folder, tmp_path / "p", port)
    try:
        for start in range(0, 600, 6):
            assert httpx.post(url, json={"texts": texts[start:start + 6]}, timeout=30).status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    stored = production_rows(Project(tmp_path / "p"))
    assert sorted(stored["text"]) == sorted(texts) and stored["id"].is_unique


def test_serve_project_alone_serves_its_label_page_before_any_version(tmp_path):
    new_project(tmp_path / "p", topic_texts(TOPICS, 2, 3)[0])
    from typer.testing import CliRunner

    from agilecls.cli import app

    refused = CliRunner().invoke(app, ["serve", "--project", str(tmp_path / "p"), "--sample", "0.5"])
    assert refused.exit_code == 2 and "no model version to serve yet" in refused.stderr
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agilecls.cli", "serve", "--project", str(tmp_path / "p"),
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        health = wait_until_up(proc, f"http://127.0.0.1:{port}/healthz", timeout=60)
        assert health.json()["classifiers"] == []
        assert httpx.get(f"http://127.0.0.1:{port}/label", timeout=10).status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


@pytest.mark.parametrize(("extra", "message"), [
    (["--sample", "0.5"], "--sample is local-engine only"),
    (["--model", "{model}"], "--engine ray serves --model folders or --project's serving version, not both"),
    ([], "--engine ray: {project} has no model version to serve yet"),
    (["--lm", "x"], "--lm is not served by --engine ray"),
])
def test_serve_project_on_ray_refuses_what_it_cannot_serve(tmp_path, classifier_folder, extra, message):
    pytest.importorskip("ray.serve")
    from typer.testing import CliRunner

    from agilecls.cli import app

    new_project(tmp_path / "p", topic_texts(TOPICS, 2, 3)[0])
    values = {"model": classifier_folder, "project": tmp_path / "p"}
    result = CliRunner().invoke(app, ["serve", "--project", str(tmp_path / "p"), "--engine", "ray",
                                      *[a.format(**values) for a in extra]])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {message.format(**values)}"), lines[0]
