"""The CLI convention (docs/reference/cli-conventions.md) on real commands and tiny real models:
``--version``, ``--json`` printing one JSON object on stdout, options that would be ignored refused
with one line and exit code 2, and the ``error`` column null for scored rows in Parquet and JSONL."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from agilecls import AgileClassifier, __version__
from agilecls.cli import app

from conftest import TEXTS, Y, build_tiny_sentence_encoder

WORDS = set(" ".join(TEXTS).lower().replace(".", " ").replace(",", " ").split())


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_object(result) -> dict:
    """The command's stdout: exactly one JSON object (notes and progress bars went to stderr)."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_lm_folder):
    """A labelled CSV, a tiny sentence encoder and a saved zero-shot classifier on the tiny LM."""
    folder = tmp_path_factory.mktemp("convention")
    pd.DataFrame({"text": TEXTS, "label": Y}).to_csv(folder / "data.csv", index=False)
    encoder = build_tiny_sentence_encoder(folder / "encoder", WORDS)
    AgileClassifier(labels=["Negative", "Positive"], model=str(tiny_lm_folder), progress=False).fit().save(
        folder / "zero-shot")
    return {"dir": folder, "data": folder / "data.csv", "encoder": encoder, "saved": folder / "zero-shot",
            "lm": tiny_lm_folder}


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"agilecls {__version__}"


def test_json_of_classify_eval_predict_info_explain(work, tmp_path):
    saved = work["saved"]
    got = one_object(invoke("classify", "good movie", "bad movie", "--model", saved, "--json"))
    assert [p["text"] for p in got["predictions"]] == ["good movie", "bad movie"]
    assert set(got["predictions"][0]["probabilities"]) == {"Negative", "Positive"}
    got = one_object(invoke("eval", work["data"], "-m", saved, "--limit", 6, "--report", tmp_path / "r.html", "--json"))
    assert got["texts"] == 6 and 0 <= got["metrics"]["accuracy"] <= 1 and (tmp_path / "r.html").exists()
    got = one_object(invoke("predict", work["data"], "-m", saved, "-o", tmp_path / "p.csv", "--limit", 5, "--json"))
    assert got["rows"] == 5 and got["scored"] == 5 and got["errors"] == 0 and got["out"] == str(tmp_path / "p.csv")
    got = one_object(invoke("info", "--model", saved, "--json"))
    assert got["model"]["classes"] == ["Negative", "Positive"] and got["machine"]["agilecls"] == __version__
    got = one_object(invoke("explain", "a good movie", "-m", work["lm"], "--target", " good", "--json"))
    assert len(got["explanations"]) == 1 and got["explanations"][0]["target"] == " good"


def test_json_of_train_and_distill(work, tmp_path):
    got = one_object(invoke("train", work["data"], "--encoder", work["encoder"], "--head", "logistic",
                            "-o", tmp_path / "enc", "--json"))
    assert got["estimator"] == "EncoderClassifier" and got["texts"] == len(TEXTS)
    assert got["out"] == str(tmp_path / "enc")
    (tmp_path / "pool.txt").write_text("\n".join(TEXTS) + "\n")
    got = one_object(invoke("distill", tmp_path / "pool.txt", "--model", tmp_path / "enc", "--student",
                            work["encoder"], "--epochs", 1, "-o", tmp_path / "student", "--json"))
    assert got["classes"] == ["Negative", "Positive"] and (tmp_path / "student" / "agilecls.json").exists()


IGNORED = [  # (arguments after the data or text, the one-line error)
    (["train", "{data}", "-o", "{out}", "--head", "softmax"], "--head needs --encoder"),
    (["train", "{data}", "-o", "{out}", "--fine-tune"], "--fine-tune needs --encoder"),
    (["train", "{data}", "-o", "{out}", "--encoder", "{encoder}", "--combine", "stack"],
     "--combine stack needs at least two members"),
    (["train", "{data}", "-o", "{out}", "--encoder", "{encoder}", "--calibrate", "--combine", "stack"],
     "--combine stack needs at least two members"),
    (["train", "{data}", "-o", "{out}", "--recipe", "llm", "--combine", "vote"],
     "--combine vote needs at least two members"),
    (["train", "{data}", "-o", "{out}", "--encoder", "{encoder}", "--model", "{lm}"], "--model has no effect with"),
    (["train", "{data}", "-o", "{out}", "--recipe", "fast", "--epochs", "2"], "--epochs has no effect with the fast"),
    (["train", "{data}", "-o", "{out}", "--encoder", "{encoder}", "--pos-label", "Positive"],
     "--pos-label needs --threshold"),
    (["train", "{data}", "-o", "{out}", "--encoder", "{encoder}", "--cv", "3"], "--cv needs --combine stack"),
    (["train", "{data}", "-o", "{out}", "--cv", "3"], "--cv has no effect with the best recipe"),
    (["train", "{data}", "-o", "{out}", "--split", "test"], "--split picks a split of a reference dataset"),
    (["demo", "--combine", "vote", "--threshold", "f1"], "--threshold has no effect with --combine vote"),
    (["demo", "--combine", "vote", "--holdout", "0.3"], "--holdout has no effect with --combine vote"),
    (["demo", "--no-tune", "--epochs", "2"], "--epochs has no effect with --no-tune"),
    (["demo", "--shots", "2"], "--shots needs --no-tune"),
    (["predict", "{data}", "-m", "{saved}", "-o", "{out}.csv", "--actors", "3"], "--actors needs --engine ray"),
    (["predict", "{data}", "-m", "{saved}", "-o", "{out}", "--engine", "ray", "--resume"],
     "--resume has no effect with --engine ray"),
    (["classify", "hello", "-m", "{saved}", "--labels", "a,b"], "--labels has no effect with a saved classifier"),
    (["classify", "hello", "-m", "{saved}", "--text-col", "body"], "--text-col needs --file"),
    (["eval", "{data}", "-m", "{saved}", "--shots", "2"], "--shots has no effect with a saved classifier"),
    (["explain", "hello", "-m", "{lm}", "--steps", "4"], "--steps needs --method integrated_gradients"),
    (["explain", "hello", "-m", "{lm}", "--pattern", "x"], "--pattern needs --granularity regex"),
    (["explain", "hello", "-m", "{lm}", "--target", " x", "--max-new-tokens", "4"],
     "--max-new-tokens has no effect with --target"),
    (["distill", "{data}", "-m", "{saved}", "-o", "{out}", "--label-col", "y"], "--label-col needs --labeled"),
]


@pytest.mark.parametrize("args, message", IGNORED, ids=[" ".join(a[:1] + a[3:5]) for a, _ in IGNORED])
def test_an_option_that_would_be_ignored_is_an_error(work, tmp_path, args, message):
    values = {"data": work["data"], "out": tmp_path / "out", "encoder": work["encoder"], "saved": work["saved"],
              "lm": work["lm"]}
    result = invoke(*[a.format(**values) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("ext", [".parquet", ".jsonl", ".csv"])
def test_error_column_is_null_for_scored_rows(work, tmp_path, ext):
    source = tmp_path / "in.csv"
    pd.DataFrame({"text": ["good movie", "", "bad movie"]}).to_csv(source, index=False)
    out = tmp_path / f"preds{ext}"
    result = invoke("predict", source, "-m", work["saved"], "-o", out)
    assert result.exit_code == 0, result.output
    if ext == ".csv":  # CSV has no null: an empty cell
        assert out.read_text().splitlines()[1].endswith(",")
        return
    got = pd.read_parquet(out) if ext == ".parquet" else pd.read_json(out, lines=True)
    assert got["error"].notna().tolist() == [False, True, False]
    assert got.loc[1, "error"] == "empty text" and got.loc[[0, 2], "label"].notna().all()
    if ext == ".jsonl":
        assert json.loads(out.read_text().splitlines()[0])["error"] is None
