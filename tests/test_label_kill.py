"""The labelling server killed with SIGKILL while it labels and trains: every label it acknowledged
is in the reopened project, and every version it registered still loads and predicts as before."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from agilecls import load_classifier
from agilecls.loop import Project
from test_label_api import TRUTH, make_project

from conftest import free_port, wait_until_up

P = "/api/project/"


def start_server(folder):
    """``agilecls label FOLDER --no-browser`` on a free port; returns (process, base url)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agilecls.cli", "label", str(folder), "--no-browser",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(proc, url + P + "status", timeout=120)
    return proc, url


def label_until_killed(url: str, client: str, acked: list, stop: threading.Event) -> None:
    """Ask for texts and label them until the server dies; record each label answered 200."""
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            try:
                rows = http.post(P + "next", json={"k": 2, "client": client, "strategy": "random"}).json()
                if not rows:
                    return
                for row in rows:
                    r = http.post(P + "label", json={"id": row["id"], "label": TRUTH[row["id"]], "client": client})
                    if r.status_code == 200:
                        acked.append((row["id"], TRUTH[row["id"]]))
            except (httpx.TransportError, ValueError):
                return


def kill_while_labelling_and_training(folder, texts: list[str], delay: float, client: str):
    """Start the server, train a version, then SIGKILL it ``delay`` s after a second train request
    while a client labels; returns (the first version, its probabilities, the acknowledged labels)."""
    proc, url = start_server(folder)
    try:
        first = httpx.post(url + P + "train", json={"kind": "fast"}, timeout=120).json()["version"]
        before = load_classifier(folder / first["folder"]).predict_proba(texts)

        acked: list[tuple[str, str]] = []
        stop = threading.Event()
        labeller = threading.Thread(target=label_until_killed, args=(url, client, acked, stop))
        labeller.start()
        while len(acked) < 6 and labeller.is_alive():
            time.sleep(0.05)
        def train_until_killed():
            with contextlib.suppress(httpx.TransportError):  # the kill cuts the request off
                httpx.post(url + P + "train", json={"kind": "fast"}, timeout=120)

        trainer = threading.Thread(target=train_until_killed, daemon=True)
        trainer.start()
        time.sleep(delay)  # the kill lands while texts are labelled and a version trains
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        stop.set()
        labeller.join(60)
        trainer.join(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    return first, before, acked


@pytest.mark.slow
def test_sigkill_while_labelling_and_training_loses_no_acknowledged_label(tmp_path):
    """Killed 0.3 s after a train request (before its version commits, as measured) and, after a
    restart, 1.5 s after one (after it commits); then a third server trains on every label."""
    project = make_project(tmp_path / "killed", prelabel=False)
    seed = [i for i in TRUTH if i.startswith("s")][:3] + [i for i in TRUTH if i.startswith("c")][:3]
    for text_id in seed:
        project.label(text_id, TRUTH[text_id], "seed")
    texts = project.store.frame()["text"].tolist()
    all_acked: list[tuple[str, str]] = []
    for delay in (0.3, 1.5):
        first, before, acked = kill_while_labelling_and_training(project.folder, texts, delay, "tab")
        assert len(acked) >= 6
        all_acked += acked
        reopened = Project(project.folder)
        labels = reopened.store.frame().set_index("id")["label"]
        assert all(labels[i] == lab for i, lab in all_acked), "an acknowledged label was lost"
        assert labels.notna().sum() >= len(seed) + len(all_acked)
        with reopened.store.connect() as con:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        versions = reopened.versions()
        assert first["id"] in [v["id"] for v in versions]
        np.testing.assert_allclose(load_classifier(reopened.folder / first["folder"]).predict_proba(texts), before,
                                   atol=1e-6)
        last = versions[-1]  # the first version, or the one trained during the kill if its row committed
        stored = reopened.store.predictions(last["id"])
        proba = load_classifier(reopened.folder / last["folder"]).predict_proba(texts)
        ids = reopened.store.frame()["id"].tolist()
        np.testing.assert_allclose(proba, [stored[i][0] for i in ids], atol=1e-5)
    # the project keeps working: a new server trains a new version on every label
    proc, url = start_server(project.folder)
    try:
        version = httpx.post(url + P + "train", json={"kind": "fast"}, timeout=120).json()["version"]
        frame = Project(project.folder).store.frame()
        trained = int((frame["label"].notna() & ~frame["is_test"]).sum())  # random audit texts are test texts
        assert version["id"] > last["id"] and version["n_labels"] == trained
    finally:
        proc.kill()
        proc.wait(30)
