"""Property-based tests (hypothesis) of every way input comes in: the readers, the CLI (Typer's
runner) and the Python API. The property everywhere: a correct result, or a one-line error that
says what to change (exit code 2 on the CLI); never a traceback, never a partial output file."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from agilecls import AgileClassifier
from agilecls.cli import app
from agilecls.readers import read_table, read_texts
from agilecls.validation import DatasetError, check_labels

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                          HealthCheck.too_slow])
EXTENSIONS = [".csv", ".tsv", ".jsonl", ".json", ".txt", ".parquet"]
#: Text a user may type: any character but surrogates and NUL (a NUL byte marks a binary file).
TEXT_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
CELL = st.text(TEXT_CHARS, max_size=30)


def file_bytes():
    """Random bytes, or valid-looking content of every format, sometimes damaged."""
    rows = st.lists(st.fixed_dictionaries({"text": CELL, "label": st.sampled_from(["a", "b", "", "nan"])}),
                    max_size=6)
    valid = st.one_of(
        rows.map(lambda r: pd.DataFrame(r, columns=["text", "label"]).to_csv(index=False).encode()),
        rows.map(lambda r: "".join(json.dumps(x) + "\n" for x in r).encode()),
        st.text(TEXT_CHARS, max_size=200).map(str.encode))
    damaged = st.tuples(valid, st.integers(0, 200), st.binary(max_size=4)).map(
        lambda t: t[0][:t[1]] + t[2] + t[0][t[1]:])
    return st.one_of(st.binary(max_size=300), valid, damaged,
                     st.text(TEXT_CHARS, max_size=100).map(lambda s: s.encode("utf-16")),
                     st.text(TEXT_CHARS, max_size=100).map(lambda s: s.encode("latin-1", errors="replace")))


@SETTINGS
@given(content=file_bytes(), ext=st.sampled_from(EXTENSIONS))
def test_any_bytes_read_as_texts_or_refused_clearly(tmp_path, content, ext):
    path = tmp_path / f"input{ext}"
    path.write_bytes(content)
    try:
        texts = read_texts(path, "text")
    except DatasetError as err:
        assert str(err) and "\n" not in str(err)
        return
    assert isinstance(texts, list) and all(isinstance(t, str) for t in texts)


ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]


@SETTINGS
@given(text=st.text(TEXT_CHARS, min_size=1, max_size=200), encoding=st.sampled_from(ENCODINGS))
def test_text_in_any_encoding_reads_back_exactly_or_asks_for_utf8(tmp_path, text, encoding):
    try:
        content = text.encode(encoding)
    except UnicodeEncodeError:
        return  # not representable in this encoding: no such file can exist
    path = tmp_path / "lines.txt"
    path.write_bytes(content)
    try:  # a latin-1 or cp1252 file may also be valid UTF-8 (b"\xc2\x80"): then it reads as UTF-8
        decoded = text if encoding.startswith("utf") else content.decode("utf-8")
    except UnicodeDecodeError:
        decoded = None
    try:
        got = read_texts(path)
    except DatasetError as err:
        assert decoded is None or not decoded.strip(), str(err)
        assert "UTF-8" in str(err) or "is empty" in str(err), str(err)
        return
    assert got == [line for line in decoded.splitlines() if line.strip()]


NAMES = st.lists(st.text("abcdefghij_", min_size=1, max_size=6), min_size=1, max_size=4, unique=True)


@SETTINGS
@given(data=st.data(), names=NAMES, ext=st.sampled_from([".csv", ".tsv"]))
def test_random_csv_shapes_round_trip(tmp_path, data, names, ext):
    rows = data.draw(st.lists(st.lists(CELL, min_size=len(names), max_size=len(names)), min_size=1, max_size=8))
    path = tmp_path / f"table{ext}"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t" if ext == ".tsv" else ",", quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow(names)
        writer.writerows(rows)
    wanted = data.draw(st.sampled_from(names))
    frame = read_table(path, [wanted])
    assert frame[wanted].tolist() == [row[names.index(wanted)] for row in rows]


LABEL = st.one_of(st.sampled_from(["spam", "ham", "eggs", "", "  ", "nan"]), st.none(), st.just(float("nan")),
                  st.text(TEXT_CHARS, max_size=5))


@SETTINGS
@given(y=st.lists(LABEL, max_size=8), labels=st.one_of(st.none(), st.lists(LABEL, max_size=4)),
       fitting=st.booleans())
def test_random_label_lists_are_checked(y, labels, fitting):
    try:
        y_out, labels_out = check_labels(y, labels, fitting)
    except (ValueError, TypeError) as err:
        assert str(err)
        return
    assert all(isinstance(v, str) and v.strip() for v in y_out + labels_out)
    assert len(set(labels_out)) == len(labels_out) and set(y_out) <= set(labels_out)
    if fitting or labels is not None:
        assert len(labels_out) >= 2
    if fitting:
        assert set(y_out) == set(labels_out)
    assert not any(v is None or (isinstance(v, float) and math.isnan(v)) for v in y)


@SETTINGS
@given(labels=st.lists(LABEL, max_size=4))
def test_python_api_zero_shot_with_random_labels(tiny_lm, labels):
    try:
        clf = AgileClassifier(labels=labels, model=tiny_lm, progress=False).fit()
    except (ValueError, TypeError) as err:
        assert str(err)
        return
    proba = clf.predict_proba(["good movie", "bad food"])
    assert proba.shape == (2, len(labels)) and np.allclose(proba.sum(axis=1), 1)


def check_cli(result) -> None:
    """Exit 0, or exit 2 with one error line; never a traceback or an unexpected error."""
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    if result.exit_code == 2:
        assert result.stderr.count("error: ") == 1, result.output  # (progress bars share the line)


@pytest.fixture(scope="module")
def saved_zero_shot(tiny_lm_folder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("zero-shot") / "clf"
    AgileClassifier(labels=["good", "bad"], model=str(tiny_lm_folder), progress=False).fit().save(folder)
    return folder


@settings(SETTINGS, max_examples=40)
@given(content=file_bytes(), ext=st.sampled_from(EXTENSIONS))
@example(content=b"text,label\ngood movie,a\nbad food,b\n", ext=".csv")
@example(content="text\nab\x85cd\u2028ef\n".encode(), ext=".csv")  # separators str.splitlines() also splits on
def test_cli_classify_any_file(tmp_path, saved_zero_shot, content, ext):
    path = tmp_path / f"input{ext}"
    path.write_bytes(content)
    result = CliRunner().invoke(app, ["classify", "--file", str(path), "--model", str(saved_zero_shot), "--json"])
    check_cli(result)
    if result.exit_code == 0:
        lines = json.loads(result.stdout)["predictions"]  # one JSON object on stdout
        assert lines and all(set(x["probabilities"]) == {"good", "bad"} for x in lines)
    if content.startswith(b"text,label\ngood movie"):
        assert [x["text"] for x in lines] == ["good movie", "bad food"]


@settings(SETTINGS, max_examples=40)
@given(content=file_bytes(), ext=st.sampled_from([".csv", ".tsv", ".jsonl", ".parquet"]),
       out_ext=st.sampled_from([".csv", ".jsonl", ".parquet", ".xlsx"]))
@example(content=b"text\ngood movie\n\"bad, bad food\"\n", ext=".csv", out_ext=".csv")
def test_cli_predict_any_file_leaves_whole_output_or_none(tmp_path, saved_zero_shot, content, ext, out_ext):
    work = tmp_path / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    source, out = work / f"input{ext}", work / f"preds{out_ext}"
    source.write_bytes(content)
    result = CliRunner().invoke(app, ["predict", str(source), "--model", str(saved_zero_shot), "--out", str(out)])
    check_cli(result)
    leftovers = sorted(p.name for p in work.iterdir() if p.name not in (source.name, out.name))
    assert leftovers == [], leftovers
    if result.exit_code == 2:
        assert not out.exists()
    else:
        assert out.exists() and "rows in" in result.output
    if content.startswith(b"text\ngood movie"):
        assert pd.read_csv(out)["text"].tolist() == ["good movie", "bad, bad food"]


@settings(SETTINGS, max_examples=30)
@given(labels=st.lists(LABEL, max_size=4))
@example(labels=["good", "bad"])
def test_cli_train_random_labels(tmp_path, tiny_lm_folder, labels):
    data = tmp_path / "train.csv"
    texts = ["good movie", "bad food", "great food", "awful movie"]
    pd.DataFrame({"text": texts, "label": [labels[i % len(labels)] if labels else "" for i in range(4)]}).to_csv(
        data, index=False)
    out = tmp_path / "model"
    shutil.rmtree(out, ignore_errors=True)
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(out), "--model", str(tiny_lm_folder),
                                      "--recipe", "llm", "--epochs", "1", "--top-layers", "1"])
    check_cli(result)
    assert out.exists() == (result.exit_code == 0)
    if labels == ["good", "bad"]:
        assert result.exit_code == 0, result.output


BAD_FILES = {  # name: (file name, content, what the one-line error says)
    "empty": ("e.csv", b"", "is empty"),
    "binary": ("b.csv", bytes(range(256)) * 4, "binary data"),
    "latin-1": ("l.csv", "text,label\ncaf\xe9 cr\xe8me,a\n".encode("latin-1"), "re-save it as UTF-8"),
    "missing column": ("m.csv", b"body,label\nx,a\n", "no column 'text'; the columns are ['body', 'label']"),
    "broken JSONL line": ("j.jsonl", b'{"text": "a", "label": "x"}\n{"text": \n', "line 2 is not valid JSON"),
    "header only": ("h.csv", b"text,label\n", "has a header but no rows"),
    "5 MB field": ("f.csv", b"text,label\n" + b"x" * 5_000_000 + b",a\n", "5,000,000-character 'text' field"),
    "one-column CSV, wrong name": ("o.csv", b"comment\nhello there\n", "no column 'text'; the columns are ['comment']"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_each_reported_bad_file_is_one_clear_line(tmp_path, saved_zero_shot, case):
    name, content, message = BAD_FILES[case]
    path = tmp_path / name
    path.write_bytes(content)
    assert_every_reading_command_refuses(path, saved_zero_shot, tmp_path, message)
    assert not any(p.name in ("r.html", "m", "p.csv") for p in tmp_path.iterdir())


def assert_every_reading_command_refuses(path, model, tmp_path, message):
    """classify, eval, train and predict each stop on ``path`` with ``message`` in one line."""
    for args in (["classify", "--file", str(path), "--model", str(model)],
                 ["eval", str(path), "--model", str(model), "--report", str(tmp_path / "r.html")],
                 ["train", str(path), "--out", str(tmp_path / "m")],
                 ["predict", str(path), "--model", str(model), "--out", str(tmp_path / "p.csv")]):
        result = CliRunner().invoke(app, args)
        check_cli(result)
        assert result.exit_code == 2 and message in result.output, (args, result.output)


def test_readable_encodings_and_shapes(tmp_path):
    (tmp_path / "u16.txt").write_bytes("héllo\nwörld\n".encode("utf-16"))
    assert read_texts(tmp_path / "u16.txt") == ["héllo", "wörld"]
    (tmp_path / "bom.csv").write_bytes("\ufefftext\nsí\n".encode("utf-8"))
    assert read_texts(tmp_path / "bom.csv") == ["sí"]
    (tmp_path / "semi.csv").write_text("text;label\nhello, world;a\n", encoding="utf-8")
    assert read_table(tmp_path / "semi.csv", ["text", "label"]).to_dict("list") == {"text": ["hello, world"],
                                                                                      "label": ["a"]}
    (tmp_path / "one.csv").write_text("text\nhere is a text with letters\n", encoding="utf-8")
    assert read_texts(tmp_path / "one.csv") == ["here is a text with letters"]


@pytest.mark.parametrize("labels, message", [
    (["a", "", "b", "a"], "row 1 is a blank or missing label"),
    (["a", "nan", "b", None], "row 3 is a blank or missing label"),
    (["a", "a", "a", "a"], "need at least two classes"),
])
def test_bad_labels_are_refused_before_training(tmp_path, tiny_lm_folder, labels, message):
    data = tmp_path / "d.csv"
    pd.DataFrame({"text": ["good", "bad", "great", "awful"], "label": labels}).to_csv(data, index=False)
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), "--model",
                                      str(tiny_lm_folder), "--recipe", "llm"])
    check_cli(result)
    assert result.exit_code == 2 and message in result.output and not (tmp_path / "m").exists()


def test_cli_refuses_one_label_and_unwritable_outputs(tmp_path, saved_zero_shot, tiny_lm_folder):
    result = CliRunner().invoke(app, ["classify", "hello", "--labels", "onlyone", "--model", str(tiny_lm_folder)])
    assert result.exit_code == 2 and "need at least two classes" in result.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    data = tmp_path / "d.csv"
    pd.DataFrame({"text": ["good", "bad"], "label": ["a", "b"]}).to_csv(data, index=False)
    for args, message in [
        (["predict", str(data), "-m", str(saved_zero_shot), "--out", str(blocker / "p.csv")], "is a file"),
        (["predict", str(data), "-m", str(saved_zero_shot), "--out", str(tmp_path)], "is a folder"),
        (["eval", str(data), "--model", str(saved_zero_shot), "--report", str(blocker / "r.html")], "is a file"),
        (["train", str(data), "--out", str(blocker)], "give a folder"),
        (["train", str(data), "--out", str(tmp_path)], "holds something other than a saved classifier"),
    ]:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    for path, message in [(tmp_path, "is not a file"), (tmp_path / "missing.csv", "does not exist")]:
        assert_every_reading_command_refuses(path, saved_zero_shot, tmp_path, message)
    result = CliRunner().invoke(app, ["--debug", "train", str(data), "--out", str(blocker)])
    assert isinstance(result.exception, ValueError)  # --debug: the exception itself, with its traceback
