"""Streaming, resumable batch prediction: chunked formats, bad rows flagged, a real SIGKILL mid-run
then --resume gives exactly the uninterrupted output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agilecls import EncoderClassifier
from agilecls.batch.local import parts_folder, predict_file
from agilecls.cli import app

WORDS = {"balance": "bank account balance money savings left", "weather": "weather rain sunny forecast cold",
         "music": "play song music album artist playlist"}


def toy_rows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = rng.choice(sorted(WORDS), size=n)
    texts = [" ".join(rng.choice(WORDS[y].split(), size=4)) for y in labels]
    return pd.DataFrame({"doc": [f"d{i}" for i in range(n)], "text": texts, "topic": labels})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "clf"
    train = toy_rows(60, seed=1)
    EncoderClassifier("minilm", head="logistic", device="cpu").fit(train.text, train.topic).save(folder)
    return folder


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_every_format_in_chunks_equals_one_pass_and_flags_bad_rows(model_dir, tmp_path, fmt):
    rows = toy_rows(23)
    rows.loc[[3, 17], "text"] = ["", "   "]
    source = tmp_path / f"in.{fmt}"
    {"csv": lambda: rows.to_csv(source, index=False), "tsv": lambda: rows.to_csv(source, index=False, sep="\t"),
     "jsonl": lambda: rows.to_json(source, orient="records", lines=True),
     "parquet": lambda: rows.to_parquet(source, index=False)}[fmt]()
    out = tmp_path / f"out.{fmt}"
    summary = predict_file(model_dir, source, out, id_col="doc", keep=["topic"], chunk_size=5, progress=False)
    assert (summary.rows, summary.scored, summary.errors, summary.chunks) == (23, 21, 2, 5)
    got = pd.read_parquet(out) if fmt == "parquet" else (pd.read_json(out, lines=True) if fmt == "jsonl" else
                                                         pd.read_csv(out, sep="\t" if fmt == "tsv" else ",",
                                                                     keep_default_na=False))
    assert got["id"].tolist() == rows["doc"].tolist() and got["topic"].tolist() == rows["topic"].tolist()
    assert got.loc[[3, 17], "error"].tolist() == ["empty text", "empty text"]
    good = [i for i in range(23) if i not in (3, 17)]
    clf = EncoderClassifier.load(model_dir)
    d = clf.details(rows.text[good].tolist())
    np.testing.assert_allclose(got.loc[good, ["p_balance", "p_music", "p_weather"]].astype(float).to_numpy(),
                               d["proba"], atol=1e-6)
    assert got.loc[good, "label"].tolist() == d["pred"].tolist()
    assert (got.loc[good, "label"] == rows.topic[good]).mean() > 0.9
    assert not parts_folder(out).exists()


def test_missing_column_and_unfinished_runs_are_clear_errors(model_dir, tmp_path):
    toy_rows(4).to_csv(tmp_path / "in.csv", index=False)
    runner = CliRunner()
    bad = runner.invoke(app, ["predict", str(tmp_path / "in.csv"), "-m", str(model_dir), "--text-col", "body",
                              "--out", str(tmp_path / "o.csv")])
    assert bad.exit_code == 2 and "no column 'body'" in bad.output and not (tmp_path / "o.csv").exists()
    parts_folder(tmp_path / "o.csv").mkdir()
    (parts_folder(tmp_path / "o.csv") / "part-000000.csv").write_text("x")
    stale = runner.invoke(app, ["predict", str(tmp_path / "in.csv"), "-m", str(model_dir),
                                "-o", str(tmp_path / "o.csv")])
    assert stale.exit_code == 2 and "--resume" in stale.output
    other = runner.invoke(app, ["predict", str(tmp_path / "in.csv"), "-m", str(model_dir), "--resume",
                                "--out", str(tmp_path / "o.csv")])
    assert other.exit_code == 2 and "another job" in other.output


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(model_dir, tmp_path):
    rows = toy_rows(1000, seed=2)
    rows.loc[[10, 900], "text"] = ""
    source = tmp_path / "big.csv"
    rows.to_csv(source, index=False)
    command = [sys.executable, "-m", "agilecls.cli", "predict", str(source), "--model", str(model_dir),
               "--id-col", "doc", "--chunk-size", "20"]
    reference = tmp_path / "ref.parquet"  # the same engine uninterrupted, in this process
    predict_file(model_dir, source, reference, id_col="doc", keep=["text"], chunk_size=20, progress=False)
    out = tmp_path / "out.parquet"
    proc = subprocess.Popen(command + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = parts_folder(out)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("part-*"))) < 5:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(parts.glob("part-*")))
    assert 5 <= done < 50 and not out.exists()  # killed mid-run: some chunks written, no output yet
    resumed = subprocess.run(command + ["--out", str(out), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "chunk(s) resumed" in resumed.stdout
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(reference))
    assert len(pd.read_parquet(out)) == 1000 and not parts.exists()
