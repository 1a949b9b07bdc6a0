"""``agilecls train`` and ``agilecls eval`` with ``--multilabel``: a list column and one 0/1 column
per label, on a tiny sentence encoder built here; bad inputs stop with one line and exit code 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from agilecls.cli import app

from conftest import ML_FILLER, ML_LABELS, ML_TOPICS, build_tiny_sentence_encoder, multilabel_texts

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    words = set(" ".join(ML_TOPICS.values()).split()) | set(ML_FILLER)
    return build_tiny_sentence_encoder(tmp_path_factory.mktemp("cli_encoder"), words)


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_train_and_eval_with_a_list_column_and_with_label_columns(encoder_dir, tmp_path):
    texts, y = multilabel_texts(40, seed=3)
    # a list column: JSON lists and |-joined names mixed, blank for no label
    cells = [json.dumps(labels) if i % 2 else "|".join(labels) for i, labels in enumerate(y)]
    pd.DataFrame({"text": texts, "topics": cells}).to_csv(tmp_path / "lists.csv", index=False)
    pd.DataFrame({"text": texts, **{label: [int(label in row) for row in y] for label in ML_LABELS}}).to_csv(
        tmp_path / "columns.csv", index=False)

    trained = run("train", tmp_path / "lists.csv", "--multilabel", "--label-col", "topics", "--encoder", encoder_dir,
                  "--out", tmp_path / "model")
    assert trained.exit_code == 0, trained.output
    for data, options in [("lists.csv", ["--label-col", "topics"]),
                          ("columns.csv", ["--label-columns", ",".join(ML_LABELS)])]:
        report = tmp_path / f"{data}.html"
        out = run("eval", tmp_path / data, "--multilabel", *options, "--model", tmp_path / "model", "--report", report)
        assert out.exit_code == 0, out.output
        for label in ML_LABELS:
            assert label in out.output
        assert "f1_macro" in out.output and "hamming_loss" in out.output and report.exists()
        assert "Per label" in report.read_text(encoding="utf-8")

    said = run("classify", "--model", tmp_path / "model", "--json", texts[0])
    assert said.exit_code == 0 and set(json.loads(said.stdout)["predictions"][0]["probabilities"]) == set(ML_LABELS)

    trained = run("train", tmp_path / "columns.csv", "--label-columns", ",".join(ML_LABELS), "--encoder", encoder_dir,
                  "--out", tmp_path / "model2")
    assert trained.exit_code == 0, trained.output
    # a multi-label classifier on single-label data is refused
    pd.DataFrame({"text": texts, "label": ["x"] * len(texts)}).to_csv(tmp_path / "single.csv", index=False)
    wrong = run("eval", tmp_path / "single.csv", "--model", tmp_path / "model2", "--report", tmp_path / "w.html")
    assert wrong.exit_code == 2 and "evaluate it with --multilabel" in wrong.output


@pytest.mark.parametrize("frame, options, message", [
    ({"text": ["a b", "c d"], "topics": ['["food", ', "food"]}, ["--label-col", "topics"], "not a valid JSON list"),
    ({"text": ["a b", "c d"], "food": ["1", "2"], "music": ["0", "1"]}, ["--label-columns", "food,music"],
     "entries other than 0 and 1"),
    ({"text": ["a b", "c d"], "food": ["1", "0"]}, ["--label-columns", "food,music"], "no column 'music'"),
])
def test_bad_multilabel_input_exits_2_with_one_line(encoder_dir, tmp_path, frame, options, message):
    pd.DataFrame(frame).to_csv(tmp_path / "bad.csv", index=False)
    out = run("train", tmp_path / "bad.csv", "--multilabel", *options, "--encoder", encoder_dir,
              "--out", tmp_path / "m")
    assert out.exit_code == 2
    assert message in out.output and len(out.output.strip().splitlines()) == 1
