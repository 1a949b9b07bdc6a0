"""Reference dataset splits, generic file loading and the metric suite."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from agilecls.datasets import (
    DatasetError,
    load_clinc150,
    load_dataset,
    load_ethos,
    load_file,
    load_lit_prompts,
    load_tweets,
)
from agilecls.evaluation.metrics import classification_metrics, expected_calibration_error
from agilecls.evaluation.report import build_report


def test_ethos_seed_split_has_the_reference_label_counts():
    train, test = load_ethos("train"), load_ethos("test")
    assert (len(train), len(test)) == (800, 198)
    assert (train.y.count("Negative"), train.y.count("Positive")) == (402, 398)  # Negative = hateful
    assert (test.y.count("Negative"), test.y.count("Positive")) == (113, 85)
    assert not set(train.texts) & set(test.texts)


def test_clinc_tweets_and_lit_prompts():
    test = load_clinc150("test")
    assert len(test) == 5500 and test.y.count("oos") == 1000 and len(test.labels) == 150
    assert len(load_clinc150("train", include_oos=False)) == 15000
    tweets_train, tweets_test = load_tweets("train"), load_tweets("test")
    assert len(tweets_train) + len(tweets_test) == 3763
    assert abs(len(tweets_test) / 3763 - 0.33) < 0.01
    assert set(tweets_test.y) == {"alimentos", "automobiles", "bancos", "bebidas", "deportes", "supermercados",
                                  "telefonía"}
    # Stratified: each class keeps its share within one row.
    for label in tweets_test.labels:
        share = tweets_test.y.count(label) / len(tweets_test)
        assert abs(share - (tweets_train.y.count(label) + tweets_test.y.count(label)) / 3763) < 2 / len(tweets_test)
    prompts = load_lit_prompts()
    assert len(prompts) == 12 and prompts[0]["source"] == "fewshot-mistake"


def test_any_csv_or_jsonl_with_named_columns(tmp_path):
    df = pd.DataFrame({"body": ["a", "b", "c"], "tag": ["x", "y", "x"]})
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    for name in ("d.csv", "d.jsonl"):
        data = load_file(tmp_path / name, text_col="body", label_col="tag")
        assert data.texts == ["a", "b", "c"] and data.y == ["x", "y", "x"] and data.labels == ["x", "y"]
    with pytest.raises(DatasetError, match="no column 'label'; the columns are"):
        load_file(tmp_path / "d.csv", text_col="body")
    with pytest.raises(DatasetError, match="not among"):
        load_file(tmp_path / "d.csv", text_col="body", label_col="tag", labels=["x"])
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(str(tmp_path / "missing.csv"))
    assert len(load_dataset("ethos:train")) == 800


def test_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p1 = np.clip(y * 0.6 + rng.normal(0.2, 0.25, 200), 0.01, 0.99)
    proba = np.stack([1 - p1, p1], 1)
    labels = ["no", "yes"]
    m = classification_metrics([labels[i] for i in y], proba, labels)
    assert m["f1"] == pytest.approx(f1_score(y, proba.argmax(1)))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p1))
    # A perfectly calibrated predictor has ECE near zero; an overconfident one does not.
    conf = rng.uniform(0.5, 1.0, 20000)
    correct = rng.uniform(size=20000) < conf
    pred = np.stack([conf, 1 - conf], 1)
    truth = np.where(correct, 0, 1)
    assert expected_calibration_error(truth, pred) < 0.02
    assert expected_calibration_error(np.ones_like(truth), pred) > 0.5


def test_report_is_self_contained_html():
    y = ["a", "b", "c", "a", "b", "c"]
    proba = np.eye(3)[[0, 1, 2, 0, 2, 1]] * 0.7 + 0.1
    page, metrics = build_report(y, proba, ["a", "b", "c"], title="t")
    assert page.count("data:image/png;base64,") == 4 and "<script" not in page
    assert metrics["accuracy"] == pytest.approx(4 / 6)


def test_report_prints_counts_as_integers_and_names_what_classes_mean():
    from agilecls.evaluation.report import build_report

    page, metrics = build_report(["a", "b", "b"], np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), ["a", "b"],
                                 info={"classes": "a (spam), b (ham)"})
    assert metrics["n"] == 3 and isinstance(metrics["n"], int)
    assert "<th>n</th><td>3</td>" in page and "a (spam), b (ham)" in page
    assert load_ethos("test").meta["label_meanings"] == {"Negative": "hateful", "Positive": "not hateful"}
