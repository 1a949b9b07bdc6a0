"""Salience of a sentence-encoder classifier's decision: gradients against an independent autograd
computation and finite differences, the Integrated Gradients completeness check and its warning,
token scores mapped to the words of the text, ensemble members, and the bundled MiniLM end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from agilecls import EncoderClassifier, EnsembleClassifier, explain
from agilecls.salience.encoder_objective import EncoderLogProb
from agilecls.salience.explanation import Explanation
from agilecls.salience.methods import _gradients, completeness_warnings

from conftest import build_tiny_sentence_encoder, topic_texts

TOPICS = {
    "balance": "bank account balance money checking savings much have left",
    "weather": "weather rain sunny forecast cold hot tomorrow today outside",
    "music": "play song music album artist playlist volume track radio",
}
TEXT = "how much money is left in my bank account, and will it rain tomorrow?"


def _toy_texts(seed: int, n_per_class: int) -> tuple[list[str], list[str]]:
    return topic_texts(TOPICS, seed, n_per_class)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory):
    """A 2-layer random BERT (word-level tokenizer; words outside it are [UNK]) + mean pooling +
    normalisation, saved as a sentence-transformers folder."""
    return build_tiny_sentence_encoder(tmp_path_factory.mktemp("tiny_encoder"),
                                       set(" ".join(TOPICS.values()).split())
                                       | {"how", "is", "in", "my", "and", "will", "it", ",", "?"})


_FITTED: dict = {}


def _fitted(encoder_dir, head: str = "logistic") -> EncoderClassifier:
    if (encoder_dir, head) not in _FITTED:
        texts, y = _toy_texts(0, 12)
        _FITTED[encoder_dir, head] = EncoderClassifier(encoder_dir, head=head, epochs=20, batch_size=12,
                                                       learning_rate=3e-3, num_inducing=64, device="cpu",
                                                       random_state=0).fit(texts, y)
    return _FITTED[encoder_dir, head]


def _independent(clf, text: str, k: int):
    """log p(class k) and its gradient w.r.t. the word embeddings, computed without the library's
    objective: BERT on inputs_embeds, mean pooling, L2 normalisation, the logistic layer, the
    temperature and log-softmax, written out here."""
    st = clf.encoder_.model
    enc = st.tokenizer([text], return_tensors="pt", truncation=True, max_length=st.max_seq_length)
    bert = st[0].auto_model
    words = bert.get_input_embeddings()(enc["input_ids"]).detach().requires_grad_(True)
    hidden = bert(inputs_embeds=words, attention_mask=enc["attention_mask"]).last_hidden_state
    mask = enc["attention_mask"][..., None].to(hidden.dtype)
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    layer = clf.head_.output
    logits = (emb @ layer.weight.T + layer.bias).double() / clf.temperature_
    f = torch.log_softmax(logits, dim=-1)[0, k]
    (grad,) = torch.autograd.grad(f, [words])
    return float(f.detach()), grad[0].double(), words[0].detach().double()


def test_encoder_gradients_match_an_independent_computation(tiny_encoder_dir):
    clf = _fitted(tiny_encoder_dir, "logistic")
    clf.temperature_ = 1.7  # the explanation must use the classifier's calibrated numbers
    try:
        proba = clf.predict_proba([TEXT])[0]
        k = int(np.argmax(proba))
        f, grad, words = _independent(clf, TEXT, k)
        gi = explain(clf, TEXT, method="grad_dot_input")
        l2 = explain(clf, TEXT, method="grad_l2")
    finally:
        clf.temperature_ = 1.0
    assert gi.target == clf.classes_[k] and gi.info["label"] == clf.classes_[k]
    assert gi.score == pytest.approx(math.log(proba[k]), abs=1e-5) and f == pytest.approx(gi.score, abs=1e-5)
    assert gi.info["probabilities"] == pytest.approx(dict(zip(clf.classes_, proba, strict=True)))
    expected = (grad * words).sum(-1).numpy()
    np.testing.assert_allclose([t["score"] for t in gi.tokens], expected, rtol=1e-3, atol=1e-6)
    assert sum(t["score"] for t in gi.tokens) == pytest.approx(float(expected.sum()), rel=1e-3, abs=1e-6)
    np.testing.assert_allclose([t["score"] for t in l2.tokens], grad.norm(dim=-1).numpy(), rtol=1e-3, atol=1e-7)
    assert np.abs(expected).max() > 1e-4  # real, non-vanishing scores


@pytest.mark.parametrize("head", ["logistic", "sngp", "softmax", "mahalanobis"])
def test_encoder_objective_gradient_equals_finite_differences(tiny_encoder_dir, head):
    clf = _fitted(tiny_encoder_dir, head)
    proba = clf.predict_proba([TEXT])[0]
    for k in range(len(clf.classes_)):
        objective = EncoderLogProb(clf, TEXT, k)
        x = objective.embeds
        f, grad = _gradients(objective, x[None])
        assert float(f[0]) == pytest.approx(math.log(proba[k]), abs=1e-5)  # predict_proba's numbers
        v = torch.randn(x.shape, generator=torch.Generator().manual_seed(k)) * x.abs().mean()
        h = 0.05
        with torch.no_grad():
            fd = (objective((x + h * v)[None]) - objective((x - h * v)[None]))[0] / (2 * h)
        assert float((grad[0] * v).sum()) == pytest.approx(float(fd), rel=2e-2, abs=1e-4)


def test_integrated_gradients_completeness_and_warning(tiny_encoder_dir, tiny_lm):
    clf = _fitted(tiny_encoder_dir, "mahalanobis")
    clf.temperature_ = 0.1  # sharp: log p is far from linear along the path (steps=2 misses by ~60%)
    try:
        fine = explain(clf, TEXT, method="integrated_gradients", steps=128, batch_size=32)
        coarse = explain(clf, TEXT, method="integrated_gradients", steps=2)
    finally:
        clf.temperature_ = 1.0
    total = sum(t["score"] for t in fine.tokens)
    delta = fine.info["score_difference"]
    assert delta == pytest.approx(fine.info["score"] - fine.info["baseline_score"], abs=1e-9)
    assert fine.info["completeness_error"] == pytest.approx(total - delta, abs=1e-6)
    assert abs(fine.info["completeness_error"]) < 0.05 * abs(delta) and not fine.warnings
    assert abs(coarse.info["completeness_error"]) > 0.1 * abs(coarse.info["score_difference"])
    assert len(coarse.warnings) == 1 and "raise steps" in coarse.warnings[0]
    assert coarse.warnings == completeness_warnings(coarse.info)
    # The warning travels through JSON and shows in both renderers.
    back = Explanation.from_dict(json.loads(coarse.to_json()))
    assert back.warnings == coarse.warnings and back.info == coarse.info and back.tokens == coarse.tokens
    assert "warning: Integrated Gradients is incomplete" in coarse.to_console(color=False)
    page = coarse.to_html()
    assert 'class="warn"' in page and "raise steps" in page and 'class="warn"' not in fine.to_html()
    # The language-model path reports and checks the same quantities.
    lm_exp = explain(tiny_lm, "I love this movie .", " good", "integrated_gradients", steps=2)
    assert {"completeness_error", "score_difference", "baseline_score"} <= set(lm_exp.info)
    assert lm_exp.warnings == completeness_warnings(lm_exp.info)
    assert completeness_warnings({"completeness_error": 0.3, "score_difference": 1.0, "steps": 2})
    assert not completeness_warnings({"completeness_error": 0.05, "score_difference": 1.0, "steps": 2})
    assert not completeness_warnings({"score": 1.0})


def test_token_scores_map_to_the_words_of_the_text(tiny_encoder_dir):
    clf = _fitted(tiny_encoder_dir, "logistic")
    text = "My bank balance, please.\nPlay a song today!"  # "please" and "a" are unknown words: [UNK]
    exp = explain(clf, text, method="grad_dot_input")
    specials = [t for t in exp.tokens if t["special"]]
    assert [t["text"] for t in specials] == ["[CLS]", "[SEP]"] and not any(t["in_text"] for t in specials)
    words = [t for t in exp.tokens if not t["special"]]
    assert [t["text"] for t in words] == ["My", "bank", "balance", ",", "please", ".", "Play", "a", "song", "today",
                                          "!"]
    assert all(text[t["start"]:t["end"]] == t["text"] for t in words)
    spans = exp.spans("words")
    assert [s["text"] for s in spans if not s["special"]] == text.split()
    by_text = {s["text"]: s for s in spans if not s["special"]}
    assert by_text["balance,"]["score"] == pytest.approx(words[2]["score"] + words[3]["score"], abs=1e-12)
    assert [s["text"] for s in exp.spans("sentences") if not s["special"]] == ["My bank balance, please.",
                                                                                 "Play a song today!"]
    assert [s["text"] for s in exp.spans("lines") if not s["special"]] == text.split("\n")
    assert all(not s["special"] for s in exp.top(20, "words"))  # [CLS]/[SEP] are never ranked
    assert sum(s["score"] for s in spans) == pytest.approx(sum(t["score"] for t in exp.tokens), abs=1e-9)
    assert "balance," in exp.to_console("words", color=False) and "bank" in exp.to_html("words")
    # A text longer than the encoder's 32 tokens: the unread tail has no tokens, and a warning says so.
    long = " ".join(["play song"] * 20)
    cut = explain(clf, long, method="grad_l2")
    assert len(cut.tokens) == 32 and cut.info["truncated"] and "cut to the encoder's 32 tokens" in cut.warnings[0]


def test_explaining_a_chosen_label_and_an_ensemble_member(tiny_encoder_dir):
    clf = _fitted(tiny_encoder_dir, "logistic")
    proba = clf.predict_proba([TEXT])[0]
    exp = explain(clf, TEXT, label="music", method="grad_l2")
    assert exp.target == "music" and exp.score == pytest.approx(math.log(proba[list(clf.classes_).index("music")]),
                                                                 abs=1e-5)
    with pytest.raises(ValueError, match="not one of the classifier's classes"):
        explain(clf, TEXT, label="sports")
    with pytest.raises(ValueError, match="member"):
        explain(clf, TEXT, member="enc")
    with pytest.raises(ValueError, match="fit EncoderClassifier first"):
        explain(EncoderClassifier(tiny_encoder_dir), TEXT)
    texts, y = _toy_texts(0, 12)
    params = dict(epochs=5, batch_size=12, num_inducing=64, device="cpu")
    ens = EnsembleClassifier([("logit", EncoderClassifier(tiny_encoder_dir, head="logistic", **params)),
                              ("gp", EncoderClassifier(tiny_encoder_dir, head="sngp", **params))]).fit(texts, y)
    with pytest.raises(ValueError, match=r"member= one of \['logit', 'gp'\]"):
        explain(ens, TEXT)
    member = explain(ens, TEXT, member="gp", method="grad_dot_input")
    voted = ens.predict([TEXT])[0]
    gp = ens.named_estimators_["gp"]
    assert member.target == voted and member.info["member"] == "gp" and member.info["ensemble_label"] == voted
    assert member.score == pytest.approx(math.log(gp.predict_proba([TEXT])[0][list(gp.classes_).index(voted)]),
                                         abs=1e-5)


def test_a_saved_encoder_classifier_is_explained_alike_and_by_the_command(tiny_encoder_dir, tmp_path):
    from typer.testing import CliRunner

    from agilecls.cli import app
    from agilecls.persistence import load_classifier

    clf = _fitted(tiny_encoder_dir, "sngp")
    folder = clf.save(tmp_path / "enc")
    before = explain(clf, TEXT, method="integrated_gradients", steps=8)
    after = explain(load_classifier(folder), TEXT, method="integrated_gradients", steps=8)
    np.testing.assert_allclose([t["score"] for t in after.tokens], [t["score"] for t in before.tokens], atol=1e-6)
    out = CliRunner().invoke(app, ["explain", TEXT, "--model", str(folder), "--method", "integrated_gradients",
                                   "--steps", "8", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)["explanations"][0]  # one JSON object on stdout; progress bars on stderr
    assert data["target"] == before.target and data["warnings"] == []
    assert [t["text"] for t in data["tokens"]] == [t["text"] for t in before.tokens]


@pytest.mark.slow
def test_bundled_minilm_explained_end_to_end(tmp_path):
    texts = ["where is my parcel", "my package has not arrived", "track my order please", "when will my delivery come",
             "the courier lost my box", "I want my money back", "please refund my purchase",
             "how do I return this item", "refund the damaged product", "can I get a refund for my order"]
    y = ["delivery"] * 5 + ["refund"] * 5
    clf = EncoderClassifier("minilm", head="logistic", device="cpu").fit(texts, y)
    tok = clf.encoder_.model.tokenizer
    text = "My parcel never arrived. I would like a refund, please."
    proba = clf.predict_proba([text])[0]
    for method in ("grad_l2", "grad_dot_input", "integrated_gradients"):
        exp = explain(clf, text, method=method, steps=64, batch_size=16)
        assert exp.score == pytest.approx(math.log(proba[int(np.argmax(proba))]), abs=1e-4)
        assert [s["text"] for s in exp.spans("words") if not s["special"]] == text.split()
        assert all(text[t["start"]:t["end"]].lower() == tok.decode([t["id"]]).replace("##", "")
                   for t in exp.tokens if not t["special"])
        assert [t["text"] for t in exp.tokens if t["special"]] == ["[CLS]", "[SEP]"]
        assert all(math.isfinite(t["score"]) for t in exp.tokens)
    assert abs(exp.info["completeness_error"]) < 0.05 * abs(exp.info["score_difference"]) and not exp.warnings
    assert exp.to_html("sentences", path=tmp_path / "minilm.html").count('class="s"') == 2
    # docs/salience.md: the completeness error by steps on "where is my parcel" (printed with -s).
    errors = {}
    for steps in (2, 4, 16, 64):
        exp = explain(clf, "where is my parcel", method="integrated_gradients", steps=steps, batch_size=16)
        errors[steps] = abs(exp.info["completeness_error"] / exp.info["score_difference"])
        print(f"steps {steps:2d}: |error| / |f(x) - f(baseline)| = {errors[steps]:.1%}, {exp.seconds:.2f} s, "
              f"top words {[(s['text'], round(s['score'], 4)) for s in exp.top(3, 'words')]}, warnings {exp.warnings}")
        assert bool(exp.warnings) == (errors[steps] > 0.1)
    assert errors[2] > 0.1 and errors[64] < 0.01
    top = exp.top(1, "words")[0]
    assert exp.target == "delivery" and top["text"] == "parcel" and top["score"] > 0
