"""Uncertainty: spectral norm bound, exact per-epoch covariance, distance awareness, Mahalanobis,
OOD scores, EncoderClassifier round trips and input errors.

Fast tests run on tiny random data and a tiny randomly initialised BERT built here (real
tokenizer, real sentence-transformers pipeline, no download); the slow test uses the bundled MiniLM.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from agilecls import EncoderClassifier, ModelFormatError
from agilecls.calibration.thresholds import choose_reject_threshold
from agilecls.encoders.heads import (
    SNGPHead,
    SoftmaxHead,
    refine_spectral_norms,
    spectral_norm,
    spectral_normalized_linear,
)
from agilecls.encoders.ood import MahalanobisScorer
from agilecls.encoders.sentence import EmbeddingCache, EncoderError, SentenceEncoder, load_sentence_transformer
from agilecls.evaluation.metrics import abstention_metrics, ood_metrics
from agilecls.uncertainty import fit_temperature, label_ood_scores

from conftest import build_tiny_sentence_encoder, topic_texts

# ------------------------------------------------------------------------------------------------
# a tiny sentence encoder over a word-level vocabulary, and toy intent data
# ------------------------------------------------------------------------------------------------
TOPICS = {
    "balance": "bank account balance money checking savings much have left",
    "weather": "weather rain sunny forecast cold hot tomorrow today outside",
    "music": "play song music album artist playlist volume track radio",
}
FAR_WORDS = "volcano penguin algebra castle violin glacier pyramid saxophone meteor tulip"


def _toy_texts(seed: int, n_per_class: int):
    return topic_texts(TOPICS, seed, n_per_class)


def _far_texts(seed: int, n: int):
    rng = np.random.default_rng(seed)
    vocab = FAR_WORDS.split()
    return [" ".join(rng.choice(vocab, size=rng.integers(3, 7))) for _ in range(n)]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory):
    """A 2-layer random BERT + mean pooling + normalisation saved as a sentence-transformers folder."""
    return build_tiny_sentence_encoder(tmp_path_factory.mktemp("tiny_encoder"),
                                       set(" ".join(TOPICS.values()).split()) | set(FAR_WORDS.split()))


@pytest.fixture(scope="session")
def toy_data():
    return _toy_texts(0, 30), _toy_texts(1, 10), _far_texts(2, 20)


def _clf(encoder, **kw):
    params = dict(epochs=30, batch_size=16, learning_rate=3e-3, num_inducing=256, device="cpu")
    params.update(kw)
    return EncoderClassifier(encoder, **params)


# ------------------------------------------------------------------------------------------------
# spectral normalisation and the Laplace covariance
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bound", [0.5, 0.95, 3.0])
def test_spectral_norm_is_within_bound(bound):
    torch.manual_seed(0)
    layer = spectral_normalized_linear(24, 24, norm_bound=bound)
    with torch.no_grad():
        layer.parametrizations.weight.original.mul_(10.0)  # a weight far above the bound
    opt = torch.optim.Adam(layer.parameters(), lr=0.02)
    for _ in range(100):  # training steps run one power iteration alongside each update
        loss = -layer(torch.randn(32, 24)).pow(2).mean()  # pushes the weight to grow
        opt.zero_grad()
        loss.backward()
        opt.step()
    refine_spectral_norms(layer)
    layer.eval()
    assert spectral_norm(layer.weight) <= bound * 1.002
    assert spectral_norm(layer.weight) >= bound * 0.99  # pushed to grow, it sits at the bound
    assert spectral_norm(layer.parametrizations.weight.original) > 2 * bound  # the bound did the work


def test_small_weights_are_left_alone():
    """SNGP's form rescales only above the bound: a weight already inside it is unchanged."""
    layer = spectral_normalized_linear(8, 8, norm_bound=100.0)
    assert torch.allclose(layer.weight, layer.parametrizations.weight.original)


def test_covariance_resets_each_epoch_and_sums_exactly():
    torch.manual_seed(0)
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    head = SNGPHead(6, 3, num_inducing=32, dropout=0.0, ridge_penalty=1.0)
    opt = torch.optim.SGD(head.parameters(), lr=0.0)  # frozen weights: each epoch sees the same features
    sums = []
    for _ in range(3):
        head.train()
        head.reset_covariance()
        for batch in torch.arange(40).split(16):
            loss = torch.nn.functional.cross_entropy(head(x[batch], update_covariance=True), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sums.append(head.gp.precision.clone())
        assert int(head.gp.n_seen) == 40
    head.eval()
    with torch.no_grad():
        phi = head.gp.features(head.body(x))
    exact = torch.eye(32) + phi.t() @ phi
    for s in sums:  # not 1x, 2x, 3x the data: the sum restarts every epoch
        assert torch.allclose(s, exact, atol=1e-4)
    head.finalize()
    assert torch.allclose(head.gp.covariance @ exact, torch.eye(32), atol=1e-3)


# ------------------------------------------------------------------------------------------------
# distance awareness on a toy 2-D problem
# ------------------------------------------------------------------------------------------------
def _train(head, x, y, epochs=150):
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(epochs):
        head.train()
        head.reset_covariance()
        for batch in torch.randperm(len(y), generator=torch.Generator().manual_seed(0)).split(64):
            loss = torch.nn.functional.cross_entropy(head(x[batch], update_covariance=True), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    head.eval()
    head.finalize()
    return head


def test_sngp_uncertainty_grows_away_from_data_and_softmax_does_not():
    torch.manual_seed(0)
    centers = torch.tensor([[-1.5, 0.0], [1.5, 0.0]])
    y = torch.arange(2).repeat_interleave(100)
    x = centers[y] + 0.4 * torch.randn(200, 2)
    sngp = _train(SNGPHead(2, 2, hidden_dim=64, n_layers=2, dropout=0.0, norm_bound=0.95, num_inducing=512,
                           kernel_scale=1.0, normalize_input=False), x, y)
    softmax = _train(SoftmaxHead(2, 2, hidden_dim=64, n_layers=2, dropout=0.0), x, y)
    far = torch.tensor([[6.0, 8.0], [-6.0, -8.0], [10.0, 6.0], [-10.0, 6.0]])  # far, off the boundary
    with torch.no_grad():
        s_train = label_ood_scores(sngp.predict_logits(x))
        s_far = label_ood_scores(sngp.predict_logits(far))
        b_train = label_ood_scores(softmax.predict_logits(x))
        b_far = label_ood_scores(softmax.predict_logits(far))
        _, var_train = sngp.logits_and_variance(x)
        _, var_far = sngp.logits_and_variance(far)
    # both classify the training data
    assert (sngp.predict_logits(x).argmax(1) == y).float().mean() > 0.95
    assert (softmax.predict_logits(x).argmax(1) == y).float().mean() > 0.95
    # SNGP: far points are near-uniform (1 - max prob close to 0.5), training points are confident
    assert var_far.min() > 10 * var_train.mean()
    assert s_far.min() > 0.3 and s_far.min() > s_train.mean() + 0.25, (s_far, s_train.mean())
    # softmax: far points are at least as confident as the training data
    assert b_far.max() < 0.05 and b_far.mean() <= b_train.mean() + 0.02


def test_mahalanobis_far_points_score_higher():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(4, 5)) * 4
    y = np.repeat(np.arange(4), 50)
    x = means[y] + rng.normal(size=(200, 5))
    far = rng.normal(size=(20, 5)) + 30
    for shrinkage in ("auto", None, 0.5, 1.0):
        m = MahalanobisScorer(shrinkage).fit(x, y)
        assert m.score(far).min() > np.quantile(m.score(x), 0.99)
        assert (m.distances(x).argmin(1) == y).mean() > 0.95
    with pytest.raises(ValueError, match="shrinkage"):
        MahalanobisScorer(2.0)


# ------------------------------------------------------------------------------------------------
# scores, temperature, metrics
# ------------------------------------------------------------------------------------------------
def test_label_ood_scores_order_and_values():
    logits = np.array([[10.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
    for method in ("max_prob", "entropy"):
        s = label_ood_scores(logits, method)
        assert s[0] < s[1] < s[2]
    assert np.isclose(label_ood_scores(logits, "max_prob")[2], 2 / 3)
    assert np.isclose(label_ood_scores(logits, "entropy")[2], math.log(3))
    energy = label_ood_scores(logits, "energy")
    assert np.allclose(energy, -np.log(np.exp(logits).sum(1)))
    assert energy[0] < energy[2]
    assert np.allclose(label_ood_scores(torch.tensor(logits), "max_prob"), label_ood_scores(logits))
    with pytest.raises(ValueError, match="unknown OOD method"):
        label_ood_scores(logits, "bogus")


def test_temperature_recovers_known_scale():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(4000, 5)) * 2
    y = np.array([rng.choice(5, p=np.exp(r) / np.exp(r).sum()) for r in true])
    t = fit_temperature(true * 3.0, y)  # logits 3x too sharp -> T close to 3
    assert 2.6 < t < 3.4


def test_ood_metrics_threshold_and_abstention():
    is_ood = np.array([0, 0, 0, 1, 1])
    assert ood_metrics(is_ood, [0.1, 0.2, 0.3, 0.8, 0.9]) == {"ood_auroc": 1.0, "ood_auprc": 1.0}
    score = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    thr = choose_reject_threshold(score, np.array([1, 1, 1, 0, 0], bool), is_ood.astype(bool))
    assert 0.3 <= thr < 0.8
    # a target out-of-scope recall: the highest cut that still rejects that share, checked by brute force
    rng = np.random.default_rng(1)
    is_ood = rng.random(300) < 0.2
    score = rng.normal(size=300) + 1.5 * is_ood
    for target in (0.5, 0.8, 0.95):
        thr = choose_reject_threshold(score, ~is_ood, is_ood, f"recall:{target}")

        def recall(t):
            return (score[is_ood] > t).mean()

        assert recall(thr) >= target
        assert max(t for t in score if recall(t - 1e-12) >= target) == pytest.approx(thr, abs=1e-9)
    with pytest.raises(ValueError, match="use 'f1'"):
        choose_reject_threshold(score, ~is_ood, is_ood, "recall 90%")
    m = abstention_metrics(["a", "b", "oos", "oos"], ["a", "oos", "oos", "b"])
    assert m["combined_accuracy"] == 0.5 and m["oos_recall"] == 0.5 and m["in_scope_accuracy"] == 0.5


# ------------------------------------------------------------------------------------------------
# encoders and EncoderClassifier on the tiny random encoder
# ------------------------------------------------------------------------------------------------
def test_embedding_cache_round_trip(tiny_encoder_dir, tmp_path):
    enc = SentenceEncoder(tiny_encoder_dir, device="cpu", cache_dir=tmp_path)
    texts = ["bank balance", "play song", "weather today"]
    first = enc.embed(texts, show_progress=False)
    assert first.shape == (3, enc.dim) and np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)
    shards = list(tmp_path.rglob("*.safetensors"))
    assert len(shards) == 1
    again = SentenceEncoder(tiny_encoder_dir, device="cpu", cache_dir=tmp_path).embed(texts[::-1] + ["rain"], False)
    assert np.array_equal(again[:3], first[::-1])
    assert len(list(tmp_path.rglob("*.safetensors"))) == 2  # only "rain" was new
    cached, missing = EmbeddingCache(tmp_path, enc.model_key).get(texts + ["never seen"])
    assert missing == [3]


def test_unreachable_hub_id_names_bundled_encoders(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderError, match="minilm"):
        load_sentence_transformer("no-such-org/no-such-encoder-xyz", device="cpu")


@pytest.mark.parametrize("head", ["sngp", "softmax", "logistic", "mahalanobis"])
def test_fit_predict_save_load_round_trip(tiny_encoder_dir, toy_data, tmp_path, head):
    (train_x, train_y), (test_x, test_y), far = toy_data
    clf = _clf(tiny_encoder_dir, head=head, reject_threshold=None).fit(train_x, train_y)
    assert list(clf.classes_) == sorted(TOPICS)
    assert (clf.predict(test_x) == np.array(test_y)).mean() >= 0.9
    proba = clf.predict_proba(test_x + far)
    assert proba.shape == (len(test_x) + len(far), 3) and np.allclose(proba.sum(1), 1)
    scores = clf.ood_score(test_x + far)
    assert scores[len(test_x):].mean() > scores[:len(test_x)].mean()

    clf.calibrate(test_x + far[:5], test_y + ["oos"] * 5)
    out = clf.save(tmp_path / "model")
    assert sorted(p.name for p in out.iterdir()) == ["agilecls.json", "head.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the temp folder is gone
    loaded = EncoderClassifier.load(out)
    assert np.abs(loaded.predict_proba(test_x + far) - clf.predict_proba(test_x + far)).max() < 1e-6
    assert np.allclose(loaded.ood_score(far), clf.ood_score(far), atol=1e-6)
    assert loaded.get_params() == clf.get_params() and loaded.temperature_ == clf.temperature_
    clf.save(out)  # overwriting an existing save works
    assert json.loads((out / "agilecls.json").read_text())["params"]["head"] == head
    from agilecls.persistence import load_classifier

    assert np.allclose(load_classifier(out).predict_proba(test_x), clf.predict_proba(test_x), atol=1e-6)


@pytest.mark.parametrize("method", ["mahalanobis", "max_prob+mahalanobis"])
def test_mahalanobis_ood_method_on_sngp_and_abstention(tiny_encoder_dir, toy_data, tmp_path, method):
    (train_x, train_y), (test_x, test_y), far = toy_data
    clf = _clf(tiny_encoder_dir, head="sngp", ood_method=method, reject_threshold="auto")
    clf.fit(train_x, train_y).calibrate(test_x + far[:10], test_y + ["oos"] * 10)
    assert clf.reject_threshold_ is not None
    pred = clf.predict(test_x + far[10:])
    m = abstention_metrics(test_y + ["oos"] * 10, pred)
    assert m["oos_recall"] >= 0.8 and m["in_scope_accuracy"] >= 0.8
    report = clf.evaluate(test_x + far[10:], test_y + ["oos"] * 10)
    assert report["ood_auroc"] > 0.9 and 0 <= report["ece"] <= 1
    loaded = EncoderClassifier.load(clf.save(tmp_path / "m"))
    assert np.allclose(loaded.ood_score(far), clf.ood_score(far), atol=1e-6)
    assert list(loaded.predict(test_x + far[10:])) == list(pred)


def test_fine_tuned_encoder_round_trip(tiny_encoder_dir, toy_data, tmp_path):
    (train_x, train_y), (test_x, _), far = toy_data
    base = SentenceEncoder(tiny_encoder_dir, device="cpu").embed(test_x, False)
    clf = _clf(tiny_encoder_dir, head="sngp", fine_tune=True, epochs=2,
               encoder_learning_rate=1e-3).fit(train_x, train_y)
    assert not np.allclose(clf.embed(test_x), base, atol=1e-4)  # the encoder itself changed
    out = clf.save(tmp_path / "ft")
    assert (out / "encoder" / "model.safetensors").exists()
    loaded = EncoderClassifier.load(out)
    assert np.abs(loaded.predict_proba(test_x + far) - clf.predict_proba(test_x + far)).max() < 1e-6


def test_bad_inputs_raise_clear_errors(tiny_encoder_dir, toy_data):
    (train_x, train_y), _, _ = toy_data
    clf = _clf(tiny_encoder_dir, head="softmax", epochs=2)
    with pytest.raises(ValueError, match="empty or whitespace"):
        clf.fit(train_x[:5] + ["   "], train_y[:6])
    with pytest.raises(TypeError, match="not a string"):
        clf.fit(train_x[:5] + [42], train_y[:6])
    with pytest.raises(TypeError, match="single string"):
        clf.fit("bank balance", ["balance"])
    with pytest.raises(ValueError, match="not in labels"):
        _clf(tiny_encoder_dir, labels=["balance", "music"]).fit(train_x, train_y)
    with pytest.raises(ValueError, match="'head' parameter"):
        _clf(tiny_encoder_dir, head="bayes").fit(train_x, train_y)
    with pytest.raises(NotFittedError, match="not fitted"):
        clf.predict(["bank balance"])
    clf.fit(train_x, train_y)
    with pytest.raises(ValueError, match="empty or whitespace"):
        clf.predict(["bank balance", ""])
    with pytest.raises(ValueError, match="not trained on"):
        clf.calibrate(["bank balance", "play song"], ["balance", "cooking"])
    with pytest.warns(UserWarning, match="left out of training"):
        _clf(tiny_encoder_dir, head="softmax", epochs=2).fit(train_x + ["volcano penguin"], train_y + ["oos"])
    with pytest.raises(ModelFormatError, match="agilecls.json"):
        EncoderClassifier.load("/nonexistent/folder")


# ------------------------------------------------------------------------------------------------
# the real bundled MiniLM on CLINC150 rows
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_minilm_end_to_end_on_clinc():
    from agilecls.datasets import load_clinc150

    intents = ["balance", "book_flight", "weather", "play_music", "recipe"]
    train = load_clinc150("train", include_oos=False)
    test = load_clinc150("test", include_oos=True)
    tx, ty = zip(*[(t, y) for t, y in zip(train.texts, train.y, strict=True) if y in intents][:: 2],
                 strict=True)  # 50 per intent
    keep = [i for i, y in enumerate(test.y) if y in intents]
    oos = [i for i, y in enumerate(test.y) if y == "oos"][:60]
    clf = EncoderClassifier("minilm", head="sngp", epochs=40, device="cpu").fit(list(tx), list(ty))
    d = clf.details([test.texts[i] for i in keep + oos])
    n = len(keep)
    assert (d["pred"][:n] == np.array([test.y[i] for i in keep])).mean() >= 0.95
    assert d["ood_score"][n:].mean() > d["ood_score"][:n].mean()
    assert ood_metrics([0] * n + [1] * len(oos), d["ood_score"])["ood_auroc"] > 0.8


def test_plots_return_figures(tmp_path):
    from agilecls.evaluation.plots import ood_histogram, reliability_diagram

    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(4) * 0.3, size=300)
    y = np.array([rng.choice(4, p=p) for p in proba])
    fig = reliability_diagram(y, proba)
    assert "ECE" in " ".join(t.get_text() for t in fig.axes[0].get_legend().get_texts())
    fig.savefig(tmp_path / "rel.png")
    fig = ood_histogram(rng.random(200) * 0.5, 0.5 + rng.random(50) * 0.5, threshold=0.5)
    assert "AUROC 1.000" in fig.axes[0].get_title()
    fig.savefig(tmp_path / "hist.png")
    assert (tmp_path / "rel.png").stat().st_size > 1000 and (tmp_path / "hist.png").stat().st_size > 1000


def test_calibrate_chooses_a_reject_threshold_that_abstains_on_far_texts(tiny_encoder_dir, toy_data):
    (train_x, train_y), (test_x, test_y), far = toy_data
    clf = _clf(tiny_encoder_dir, head="sngp", epochs=30, num_inducing=256, batch_size=16, learning_rate=3e-3,
               reject_threshold="auto").fit(train_x, train_y)
    assert clf.reject_threshold_ is None
    clf.calibrate(test_x + far[:10], test_y + ["oos"] * 10)
    report = clf.evaluate(test_x + far, test_y + ["oos"] * len(far))
    assert clf.reject_threshold_ is not None and clf.temperature_ != 1.0
    assert report["accuracy"] >= 0.9 and report["ood_auroc"] > 0.9 and report["oos_recall"] > 0.5
    assert (clf.predict(far) == "oos").mean() == pytest.approx(report["oos_recall"])
    # a recall rule rejects every held-out out-of-scope row it was chosen on; a bad rule fails before training
    clf.set_params(reject_threshold="recall:1.0").calibrate(test_x + far[:10], test_y + ["oos"] * 10)
    assert (clf.predict(far[:10]) == "oos").all()
    with pytest.raises(ValueError, match="use 'f1'"):
        clf.set_params(reject_threshold="most").fit(train_x, train_y)


def test_train_and_eval_commands_with_an_encoder_head(tiny_encoder_dir, toy_data, tmp_path):
    """`agilecls train --encoder ... --head ...` saves a model that `agilecls eval` reads, printing
    the uncertainty metrics when the data holds out-of-scope rows."""
    import pandas as pd
    from typer.testing import CliRunner

    from agilecls.cli import app
    from agilecls.persistence import load_classifier

    (train_x, train_y), (test_x, test_y), far = toy_data
    pd.DataFrame({"text": train_x, "intent": train_y}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"text": test_x + far[:10], "intent": test_y + ["oos"] * 10}).to_csv(tmp_path / "test.csv",
                                                                                       index=False)
    runner = CliRunner()
    trained = runner.invoke(app, ["train", str(tmp_path / "train.csv"), "--label-col", "intent", "--encoder",
                                  str(tiny_encoder_dir), "--head", "softmax", "--out", str(tmp_path / "model")])
    assert trained.exit_code == 0, trained.output
    evaluated = runner.invoke(app, ["eval", str(tmp_path / "test.csv"), "--label-col", "intent", "--model",
                                    str(tmp_path / "model"), "--report", str(tmp_path / "r.html")])
    assert evaluated.exit_code == 0, evaluated.output
    assert "ood_auroc" in evaluated.output and (tmp_path / "r.html").read_text().count("data:image/png") == 5
    # --fine-tune trains the encoder too: the saved model carries its own encoder weights
    tuned = runner.invoke(app, ["train", str(tmp_path / "train.csv"), "--label-col", "intent", "--encoder",
                                str(tiny_encoder_dir), "--fine-tune", "--encoder-epochs", "1",
                                "--out", str(tmp_path / "tuned")])
    assert tuned.exit_code == 0 and "fine-tuned" in tuned.output, tuned.output
    assert any((tmp_path / "tuned" / "encoder").glob("*.safetensors"))
    misuse = runner.invoke(app, ["train", str(tmp_path / "train.csv"), "--label-col", "intent", "--fine-tune",
                                 "--out", str(tmp_path / "x")])
    assert misuse.exit_code != 0 and "--encoder" in misuse.output and not (tmp_path / "x").exists()
    # --reject: the rows labelled oos (and 20% of the others) choose the threshold; the model then abstains
    pd.DataFrame({"text": train_x + far[10:20], "intent": train_y + ["oos"] * 10}).to_csv(tmp_path / "oos.csv",
                                                                                          index=False)
    command = ["train", str(tmp_path / "oos.csv"), "--label-col", "intent", "--encoder", str(tiny_encoder_dir),
               "--head", "sngp", "--encoder-epochs", "30", "--reject", "recall:0.9", "--out"]
    rejecting = runner.invoke(app, command + [str(tmp_path / "rejecting")])
    assert rejecting.exit_code == 0 and "chosen by recall:0.9" in rejecting.output, rejecting.output
    clf = load_classifier(tmp_path / "rejecting")
    assert clf.reject_threshold_ is not None and (clf.predict(far[10:20]) == "oos").mean() >= 0.9
    for data, rule, message in (("oos.csv", "recall 90", "use 'f1'"), ("train.csv", "recall:0.9", "label some rows")):
        args = [str(tmp_path / data) if a.endswith("oos.csv") else a for a in command[:-2]]
        bad = runner.invoke(app, args + [rule, "--out", str(tmp_path / "bad")])
        assert bad.exit_code == 2 and message in bad.output and not (tmp_path / "bad").exists(), bad.output


def test_sentence_encoder_embeds_a_repeated_text_once(tiny_encoder_dir):
    from agilecls import SentenceEncoder

    enc = SentenceEncoder(tiny_encoder_dir, device="cpu")
    assert enc.batch_size == 8  # the CPU default
    seen = []
    real = enc.model.encode
    enc.model.encode = lambda texts, **kw: seen.append(list(texts)) or real(texts, **kw)
    emb = enc.embed(["rain today", "bank balance", "rain today"], show_progress=False)
    assert seen == [["rain today", "bank balance"]]
    np.testing.assert_array_equal(emb[0], emb[2])
    np.testing.assert_allclose(emb[:2], enc.embed(["rain today", "bank balance"], show_progress=False), atol=1e-6)


def test_min_steps_adds_epochs_when_few_texts_make_few_batches(tiny_encoder_dir, toy_data):
    """8 texts in batches of 4 are 2 steps per epoch: min_steps=6 trains 3 epochs, exactly as epochs=3."""
    (train_x, train_y), (test_x, _), _ = toy_data
    rows = [i for i in range(len(train_y)) if i % (len(train_y) // 8) == 0][:8]  # every topic
    texts, y = [train_x[i] for i in rows], [train_y[i] for i in rows]
    common = {"head": "softmax", "fine_tune": True, "batch_size": 4, "device": "cpu", "random_state": 0}
    floored = EncoderClassifier(tiny_encoder_dir, epochs=1, min_steps=6, **common).fit(texts, y)
    three = EncoderClassifier(tiny_encoder_dir, epochs=3, **common).fit(texts, y)
    one = EncoderClassifier(tiny_encoder_dir, epochs=1, **common).fit(texts, y)
    np.testing.assert_allclose(floored.predict_proba(test_x), three.predict_proba(test_x), atol=1e-6)
    assert np.abs(one.predict_proba(test_x) - three.predict_proba(test_x)).max() > 1e-4
