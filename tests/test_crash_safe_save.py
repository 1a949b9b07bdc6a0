"""A save killed with SIGKILL at any step of the folder swap leaves the old or the new model
loadable at --out, never neither, and the next load cleans the leftovers. Real `agilecls train`
subprocesses, paused at each step by the AGILECLS_PAUSE_AT test hook and killed there."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from agilecls import load_classifier
from agilecls.atomic import PAUSE_STEPS

TEXTS = ["bank balance money", "account savings left", "rain forecast cold", "sunny weather today",
         "play a song", "music album artist"] * 4
OLD_Y = ["balance", "balance", "weather", "weather", "music", "music"] * 4
NEW_Y = ["weather", "weather", "music", "music", "balance", "balance"] * 4  # a model that answers differently


def train_args(tmp_path, labels, out) -> list[str]:
    """``agilecls train``'s arguments for a model of ``labels`` saved at ``out``."""
    data = tmp_path / f"train-{labels[0]}.csv"
    pd.DataFrame({"text": TEXTS, "label": labels}).to_csv(data, index=False)
    return ["train", str(data), "--encoder", "minilm", "--head", "logistic", "--out", str(out)]


def train(tmp_path, labels, out, env=None):
    """``agilecls train`` as a subprocess (to be killed)."""
    return subprocess.Popen([sys.executable, "-m", "agilecls.cli", *train_args(tmp_path, labels, out)],
                            env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """The old and the new model, trained by the same command in this process (no start-up to pay)."""
    from typer.testing import CliRunner

    from agilecls.cli import app

    tmp = tmp_path_factory.mktemp("refs")
    for name, labels in (("old", OLD_Y), ("new", NEW_Y)):
        result = CliRunner().invoke(app, train_args(tmp, labels, tmp / name))
        assert result.exit_code == 0, result.output
    probe = ["bank balance", "rain today", "play music"]
    return tmp, probe, {name: load_classifier(tmp / name).predict_proba(probe) for name in ("old", "new")}


def test_sigkill_at_each_step_leaves_a_loadable_model(tmp_path, references):
    """One `agilecls train` per step of the swap, run side by side (each waits at its step)."""
    folder, probe, expected = references
    runs = {}
    for step in PAUSE_STEPS:
        work = tmp_path / step
        work.mkdir()
        shutil.copytree(folder / "old", work / "model")  # the model a user saved earlier
        marker = work / "paused"
        runs[step] = (work, marker, train(work, NEW_Y, work / "model",
                                          {"AGILECLS_PAUSE_AT": step, "AGILECLS_PAUSE_FILE": str(marker)}))
    deadline = time.time() + 180
    while not all(m.exists() or p.poll() is not None for _, m, p in runs.values()) and time.time() < deadline:
        time.sleep(0.05)
    for step, (_work, marker, proc) in runs.items():
        assert marker.exists(), (step, proc.stderr.read() if proc.poll() is not None else "never paused")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    for step, (work, _, _) in runs.items():
        out = work / "model"
        leftovers = [p.name for p in work.iterdir() if p.name.startswith(".model.")]
        assert leftovers, step  # the kill left temporary folders behind ...
        proba = load_classifier(out).predict_proba(probe)  # ... and loading still finds a whole model
        # before the old folder moves away it stays; once it has moved, the complete new one takes its place
        version = "old" if step in ("written", "new-marked") else "new"
        np.testing.assert_allclose(proba, expected[version], atol=1e-6, err_msg=step)
        assert [p.name for p in work.iterdir() if p.name.startswith(".model.")] == [], step
