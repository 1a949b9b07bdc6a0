"""Calibration, decision thresholds and stacking on out-of-fold predictions (agilecls.calibration)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline

from agilecls import CalibratedClassifier, EncoderClassifier, EnsembleClassifier, load_classifier
from agilecls.calibration import choose_calibrator, fit_threshold, make_calibrator, out_of_fold
from agilecls.calibration.stacking import member_features
from agilecls.calibration.thresholds import expected_f1_cut

from conftest import build_tiny_sentence_encoder, topic_texts

pytestmark = pytest.mark.usefixtures("one_thread")

TOPICS = {"refund": "refund money back return order paid charge card price",
          "delivery": "parcel delivery late shipping courier arrive tracking box address"}


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory):
    words = set(" ".join(TOPICS.values()).split())
    return build_tiny_sentence_encoder(tmp_path_factory.mktemp("tiny_encoder"), words)


def _encoder(folder, head="logistic"):
    return EncoderClassifier(folder, head=head, epochs=10, batch_size=12, device="cpu", random_state=0)


def _noisy_toy(seed: int, n: int):
    """Topic texts whose labels are 20% flipped: a flexible model becomes overconfident."""
    texts, y = topic_texts(TOPICS, seed, n)
    rng = np.random.default_rng(seed)
    flip = rng.random(len(y)) < 0.2
    names = sorted(TOPICS)
    return texts, [names[1 - names.index(v)] if f else v for v, f in zip(y, flip, strict=True)]


def test_calibration_lowers_out_of_fold_log_loss_on_a_toy_task():
    """An almost unregularised TF-IDF logistic regression is overconfident on noisy labels; the
    chosen map lowers the log loss of rows it was not fitted on (nested cross-validation)."""
    texts, y = _noisy_toy(0, 60)
    base = make_pipeline(TfidfVectorizer(), LogisticRegression(C=1e4, max_iter=2000))
    clf = CalibratedClassifier(base, cv=5).fit(texts, y)
    scores = clf.calibration_scores_
    assert set(scores) == {"none", "temperature", "sigmoid", "isotonic"}
    chosen = clf.calibrator_.name
    assert chosen != "none" and scores[chosen] == min(scores.values())
    assert scores[chosen] < 0.9 * scores["none"]  # 0.640 vs 0.746 when written
    # the same out-of-fold probabilities, before and after, by an independent computation
    raw = out_of_fold(base, texts, y, clf.classes_.tolist(), cv=5).proba
    y_idx = np.array([clf.classes_.tolist().index(v) for v in y])
    assert log_loss(y_idx, clf.oof_proba_) < log_loss(y_idx, np.clip(raw, 1e-12, 1))


def test_calibrators_reproduce_scikit_learn():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.99, 200)
    y = (rng.uniform(size=200) < p ** 2).astype(int)
    proba = np.column_stack([1 - p, p])
    iso = make_calibrator("isotonic").fit(proba, y)
    reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, y)
    grid = np.linspace(0, 1, 57)
    np.testing.assert_allclose(iso.transform(np.column_stack([1 - grid, grid]))[:, 1], reference.predict(grid))
    platt = make_calibrator("sigmoid").fit(proba, y)
    logit = np.log(p / (1 - p)).reshape(-1, 1)
    lr = LogisticRegression(C=1e4).fit(logit, y)
    np.testing.assert_allclose(platt.transform(proba)[:, 1], lr.predict_proba(logit)[:, 1], atol=1e-6)
    temperature = make_calibrator("temperature").fit(proba, y)
    assert log_loss(y, temperature.transform(proba)) <= log_loss(y, proba) + 1e-9
    for cal in (iso, platt, temperature):  # state survives JSON
        again = make_calibrator(cal.name, cal.state())
        np.testing.assert_allclose(again.transform(proba), cal.transform(proba))


def test_choose_calibrator_keeps_none_for_calibrated_scores():
    rng = np.random.default_rng(2)
    p = rng.uniform(0.05, 0.95, 400)
    y = (rng.uniform(size=400) < p).astype(int)  # already calibrated by construction
    cal, scores = choose_calibrator(np.column_stack([1 - p, p]), y)
    assert scores[cal.name] == min(scores.values()) and scores["none"] - scores[cal.name] < 0.01
    three = rng.dirichlet(np.ones(3), 60)
    cal3, scores3 = choose_calibrator(three, rng.integers(0, 3, 60))
    assert set(scores3) == {"none", "temperature"}
    with pytest.raises(ValueError, match="needs two classes"):
        choose_calibrator(three, rng.integers(0, 3, 60), "isotonic")


@pytest.mark.parametrize("rule", ["f1", "precision:0.8", "recall:0.9"])
def test_threshold_matches_brute_force(rule):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.35 * y + rng.normal(0.35, 0.2, 300), 0, 1)
    got = fit_threshold(p, y, rule, "yes")

    def at(t):  # precision, recall and F1 of predicting "yes" from t on, counted by hand
        tp, fp, fn = ((p >= t) & (y == 1)).sum(), ((p >= t) & (y == 0)).sum(), ((p < t) & (y == 1)).sum()
        return tp / (tp + fp), tp / (tp + fn), 2 * tp / (2 * tp + fp + fn)

    cuts = np.unique(p)
    stats = np.array([at(t) for t in cuts])
    if rule == "f1":
        best = cuts[np.argmax(stats[:, 2])]
    elif rule.startswith("precision"):
        best = cuts[stats[:, 0] >= 0.8].min()
    else:
        best = cuts[stats[:, 1] >= 0.9].max()
    assert got.threshold == pytest.approx(best)
    assert (got.precision, got.recall, got.f1) == pytest.approx(at(best))
    with pytest.raises(ValueError, match="no threshold reaches precision 1"):
        fit_threshold(np.r_[0.9, 0.9, 0.1], np.r_[0, 1, 1], "precision:1.0", "yes")


def test_expected_f1_cut_maximises_the_f1_the_probabilities_expect_and_is_steadier_than_the_best_cut():
    rng = np.random.default_rng(7)
    p = rng.beta(0.8, 1.2, 300)
    # brute force: flag every row with p >= c; calibrated p expect sum(p) true positives among them
    expected = {c: 2 * p[p >= c].sum() / ((p >= c).sum() + p.sum()) for c in np.unique(p)}
    assert expected_f1_cut(p) == max(expected, key=expected.get)
    y = (rng.uniform(size=300) < p).astype(int)
    got = fit_threshold(p, y, "expected_f1", "yes")
    tp, fp = ((p >= got.threshold) & (y == 1)).sum(), ((p >= got.threshold) & (y == 0)).sum()
    assert got.threshold == expected_f1_cut(p) and got.precision == pytest.approx(tp / (tp + fp))
    # on 200 rows of labels drawn from the same calibrated probabilities, the best labelled cut jumps
    # from draw to draw; the expected-F1 cut sits near half the best F1 (Lipton et al. 2014)
    cuts = {"f1": [], "expected_f1": []}
    for _draw in range(40):
        q = rng.beta(0.8, 1.2, 200)
        labels = (rng.uniform(size=200) < q).astype(int)
        for rule in cuts:
            cuts[rule].append(fit_threshold(q, labels, rule, "yes").threshold)
    assert np.std(cuts["expected_f1"]) < np.std(cuts["f1"]) / 2
    big = rng.beta(0.8, 1.2, 20000)
    best_f1 = max(2 * big[big >= c].sum() / ((big >= c).sum() + big.sum())
                  for c in np.quantile(big, np.linspace(0, 1, 400)))
    assert expected_f1_cut(big) == pytest.approx(best_f1 / 2, abs=0.01)


def test_calibrated_encoder_classifier_saves_and_loads_exactly(tiny_encoder_dir, tmp_path):
    texts, y = _noisy_toy(4, 24)
    clf = CalibratedClassifier(_encoder(tiny_encoder_dir), cv=3, threshold="f1", pos_label="refund").fit(texts, y)
    assert clf.threshold_.positive == "refund" and 0 < clf.threshold_.threshold < 1
    probe, _ = topic_texts(TOPICS, 5, 6)
    proba = clf.predict_proba(probe)
    expected = np.where(proba[:, list(clf.classes_).index("refund")] >= clf.threshold_.threshold, "refund", "delivery")
    assert (clf.predict(probe) == expected).all()
    clf.save(tmp_path / "cal")
    again = load_classifier(tmp_path / "cal")
    assert isinstance(again, CalibratedClassifier) and again.calibrator_.name == clf.calibrator_.name
    np.testing.assert_allclose(again.predict_proba(probe), proba, atol=1e-6)
    assert (again.predict(probe) == clf.predict(probe)).all()
    assert again.threshold_ == clf.threshold_ and "calibrated" in again.describe()


def test_holdout_keeps_the_member_fitted_on_the_rest(tiny_encoder_dir):
    texts, y = _noisy_toy(6, 20)
    clf = CalibratedClassifier(_encoder(tiny_encoder_dir), cv=0.25).fit(texts, y)
    held = set(clf.oof_rows_.tolist())
    assert len(held) == 10
    rest = [i for i in range(len(texts)) if i not in held]
    alone = _encoder(tiny_encoder_dir).fit([texts[i] for i in rest], [y[i] for i in rest])
    probe, _ = topic_texts(TOPICS, 7, 4)
    np.testing.assert_allclose(clf.estimator_.predict_proba(probe), alone.predict_proba(probe), atol=1e-6)


def test_stacked_ensemble_fits_the_stacker_on_out_of_fold_probabilities(tiny_encoder_dir, tmp_path):
    texts, y = _noisy_toy(8, 24)
    members = [("logistic", _encoder(tiny_encoder_dir)), ("maha", _encoder(tiny_encoder_dir, "mahalanobis"))]
    ens = EnsembleClassifier(members, combine="stack", cv=3, threshold="expected_f1").fit(texts, y)
    # brute force: the members' out-of-fold probabilities by hand, then scikit-learn's regression
    folds = StratifiedKFold(3, shuffle=True, random_state=0).split(np.zeros(len(y)), y)
    oof = [np.zeros((len(y), 2)), np.zeros((len(y), 2))]
    for train, test in folds:
        for k, (_, est) in enumerate(members):
            fitted = _encoder(tiny_encoder_dir, est.head).fit([texts[i] for i in train], [y[i] for i in train])
            oof[k][test] = fitted.predict_proba([texts[i] for i in test])
    lr = LogisticRegression(max_iter=1000).fit(member_features(oof), y)
    # the threshold: the expected-F1 cut of the stacker's own 5-fold probabilities on those rows
    stacker_oof = cross_val_predict(LogisticRegression(max_iter=1000), member_features(oof), y,
                                    cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba")
    assert ens.threshold_.rule == "expected_f1"
    assert ens.threshold_.threshold == pytest.approx(expected_f1_cut(stacker_oof[:, list(lr.classes_).index(
        ens.threshold_.positive)]))
    probe, _ = topic_texts(TOPICS, 9, 5)
    member = [m.predict_proba(probe) for _, m in ens.estimators_]
    np.testing.assert_allclose(ens.predict_proba(probe)[:, 1], lr.predict_proba(member_features(member))[:, 1],
                               atol=1e-5)
    ens.save(tmp_path / "stack")
    again = load_classifier(tmp_path / "stack")
    np.testing.assert_allclose(again.predict_proba(probe), ens.predict_proba(probe), atol=1e-6)
    assert (again.predict(probe) == ens.predict(probe)).all() and again.threshold_ == ens.threshold_
    assert "stacked" in again.describe()


def test_bad_settings_say_what_to_do(tiny_encoder_dir):
    texts, y = topic_texts({**TOPICS, "other": "hello thanks bye"}, 0, 6)
    with pytest.raises(ValueError, match="threshold needs two classes"):
        CalibratedClassifier(_encoder(tiny_encoder_dir), threshold="f1").fit(texts, y)
    with pytest.raises(ValueError, match="threshold='f2'"):
        CalibratedClassifier(_encoder(tiny_encoder_dir), threshold="f2").fit(*_noisy_toy(0, 6))
    with pytest.raises(ValueError, match="needs probabilities, and out-of-scope scores are not"):
        _encoder(tiny_encoder_dir).set_params(reject_threshold="expected_f1").fit(*_noisy_toy(0, 6))
    with pytest.raises(ValueError, match="at least two examples of every class"):
        CalibratedClassifier(_encoder(tiny_encoder_dir)).fit(["refund money", "parcel late"], ["refund", "delivery"])
    for wrapper in (CalibratedClassifier(_encoder(tiny_encoder_dir), threshold="f1", pos_label="spam"),
                    EnsembleClassifier([("a", _encoder(tiny_encoder_dir)),
                                        ("b", _encoder(tiny_encoder_dir, "softmax"))],
                                       threshold="f1", pos_label="spam")):
        with pytest.raises(ValueError, match="pos_label 'spam' is not one of the classes"):
            wrapper.fit(*_noisy_toy(0, 6))


def test_train_and_eval_commands_calibrate_and_choose_a_threshold(tiny_encoder_dir, tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from agilecls.cli import app

    texts, y = _noisy_toy(10, 20)
    pd.DataFrame({"text": texts, "label": y}).to_csv(tmp_path / "train.csv", index=False)
    test_x, test_y = topic_texts(TOPICS, 11, 8)
    pd.DataFrame({"text": test_x, "label": test_y}).to_csv(tmp_path / "test.csv", index=False)
    runner = CliRunner()
    base = ["train", str(tmp_path / "train.csv"), "--encoder", str(tiny_encoder_dir), "--head", "logistic"]
    trained = runner.invoke(app, base + ["--calibrate", "--threshold", "recall:0.8", "--pos-label", "refund",
                                         "--cv", "3", "--out", str(tmp_path / "model")])
    assert trained.exit_code == 0, trained.output
    clf = load_classifier(tmp_path / "model")
    assert isinstance(clf, CalibratedClassifier) and clf.threshold_.recall >= 0.8
    evaluated = runner.invoke(app, ["eval", str(tmp_path / "test.csv"), "--model", str(tmp_path / "model"),
                                    "--report", str(tmp_path / "r.html")])
    assert evaluated.exit_code == 0, evaluated.output
    assert "decision: 'refund' when p >= " in evaluated.output and "ece" in evaluated.output
    for bad, message in ((["--cv", "1"], "--cv '1'"), (["--threshold", "f2"], "threshold='f2'")):
        refused = runner.invoke(app, base + bad + ["--out", str(tmp_path / "x")])
        assert refused.exit_code == 2 and message in refused.output and not (tmp_path / "x").exists()


def test_explain_a_calibrated_classifier_explains_its_base_for_its_decision(tiny_encoder_dir):
    from agilecls import explain

    texts, y = _noisy_toy(12, 16)
    clf = CalibratedClassifier(_encoder(tiny_encoder_dir), cv=0.25, threshold="recall:0.9").fit(texts, y)
    text = "refund the parcel money"
    exp = explain(clf, text, method="grad_l2")
    decided = str(clf.predict([text])[0])
    assert exp.info["calibrated_label"] == decided
    base = explain(clf.estimator_, text, label=decided, method="grad_l2")
    assert exp.target == base.target == decided
    np.testing.assert_allclose([t["score"] for t in exp.tokens], [t["score"] for t in base.tokens])
