"""Salience methods against finite differences and the completeness axiom, span sums, classifier
explanations through the classifier's own scorer, and the real bundled model on LIT's prompt."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from agilecls import AgileClassifier, explain
from agilecls.salience.explanation import Explanation
from agilecls.salience.methods import METHODS, _gradients
from agilecls.salience.objectives import ClassifierLogProb, TargetLogProb
from agilecls.salience.spans import aggregate, segment

from conftest import build_tiny_lm

PROMPT = "I love this movie . the food was awful !\nthis was a really good movie ."
TARGET = " great movie . not bad"


def build_gpt2_float64(seed: int = 0):
    """A tiny random GPT-2 in float64 over the tiny tokenizer. GPT-2's LayerNorm keeps float64
    (Llama's and Gemma's RMSNorm compute in float32), so finite differences are accurate to ~1e-9."""
    from transformers import AutoModelForCausalLM, GPT2Config

    from agilecls.lm.loading import LanguageModel

    tok = build_tiny_lm("llama").tokenizer
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=128,
                        pad_token_id=tok.pad_token_id)
    model = AutoModelForCausalLM.from_config(config).eval().double()
    return LanguageModel(model, tok, "tiny-gpt2-float64", "test")


@pytest.fixture(scope="module")
def lm64():
    return build_gpt2_float64(3)


def _embeds(lm, text):
    ids = lm.tokenizer(text)["input_ids"]
    with torch.no_grad():
        return lm.model.get_input_embeddings()(torch.tensor([ids]))[0]


def _finite_difference_grad(objective, x, token, eps=1e-5):
    grad = torch.zeros(x.shape[-1], dtype=x.dtype)
    for j in range(x.shape[-1]):
        plus, minus = x.clone(), x.clone()
        plus[token, j] += eps
        minus[token, j] -= eps
        with torch.no_grad():
            grad[j] = (objective(plus[None])[0] - objective(minus[None])[0]) / (2 * eps)
    return grad


def test_gradient_equals_finite_differences(lm64):
    target_ids = lm64.tokenizer(TARGET, add_special_tokens=False)["input_ids"]
    objective = TargetLogProb(lm64, target_ids, (1, 3))
    x = _embeds(lm64, PROMPT)
    f, grad = _gradients(objective, x[None])
    for token in (0, 4, len(x) - 1):
        fd = _finite_difference_grad(objective, x, token)
        torch.testing.assert_close(grad[0, token], fd, rtol=1e-5, atol=1e-7)
    # The score is the summed log-probability of the span's tokens under the full LM head.
    with torch.no_grad():
        ids = lm64.tokenizer(PROMPT)["input_ids"] + target_ids
        logp = torch.log_softmax(lm64.model(input_ids=torch.tensor([ids])).logits[0], -1)
    n = len(x)
    expected = sum(float(logp[n - 1 + k, target_ids[k]]) for k in (1, 2))
    assert float(f[0]) == pytest.approx(expected, abs=1e-9)
    # The registry's methods are these gradients.
    exp_l2 = explain(lm64, PROMPT, TARGET, "grad_l2", target_span=(1, 3))
    exp_gi = explain(lm64, PROMPT, TARGET, "grad_dot_input", target_span=(1, 3))
    np.testing.assert_allclose([t["score"] for t in exp_l2.tokens], grad[0].norm(dim=-1).numpy(), rtol=1e-9)
    np.testing.assert_allclose([t["score"] for t in exp_gi.tokens], (grad[0] * x).sum(-1).numpy(), rtol=1e-9)
    assert exp_l2.score == pytest.approx(expected, abs=1e-9)


def test_integrated_gradients_completeness_improves_with_steps(lm64):
    errors = {}
    for steps in (1, 4, 16, 64):
        exp = explain(lm64, PROMPT, TARGET, "integrated_gradients", steps=steps, batch_size=5)
        total = sum(t["score"] for t in exp.tokens)
        delta = exp.info["score"] - exp.info["baseline_score"]
        assert exp.info["completeness_error"] == pytest.approx(total - delta, abs=1e-9)
        errors[steps] = abs(total - delta)
    assert errors[64] < errors[16] < errors[4]
    assert errors[64] < 1e-3 * max(1.0, abs(delta))
    # Batching the interpolation steps does not change the result.
    one = explain(lm64, PROMPT, TARGET, "integrated_gradients", steps=8, batch_size=1)
    eight = explain(lm64, PROMPT, TARGET, "integrated_gradients", steps=8, batch_size=8)
    np.testing.assert_allclose([t["score"] for t in one.tokens], [t["score"] for t in eight.tokens], rtol=1e-9)


def test_default_target_is_the_greedy_continuation(tiny_lm):
    exp = explain(tiny_lm, PROMPT, None, "grad_l2", max_new_tokens=5)
    assert exp.info["generated"] and exp.target
    ids = tiny_lm.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    out = tiny_lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, do_sample=False,
                                 pad_token_id=tiny_lm.tokenizer.pad_token_id)
    assert exp.target == tiny_lm.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    for t in exp.tokens:
        assert t["special"] or t["text"] == PROMPT[t["start"]:t["end"]]
    assert all(math.isfinite(t["score"]) for t in exp.tokens)


def test_target_span_by_substring(tiny_lm):
    exp = explain(tiny_lm, PROMPT, TARGET, "grad_l2", target_span="movie")
    assert exp.target_span == (1, 2)
    assert exp.target_tokens[1]["text"] == "movie"
    with pytest.raises(ValueError, match="not in the target"):
        explain(tiny_lm, PROMPT, TARGET, target_span="pizza")
    with pytest.raises(ValueError, match="unknown salience method"):
        explain(tiny_lm, PROMPT, TARGET, method="lime")


TEXT = ("Analyze a menu item.\n\n## For example:\n\nTaste-likes: I've a sweet-tooth\nSuggestion: Onion soup\n"
        "Analysis: it has onions. You don't like them!\nRecommendation: Avoid.\n\n## Now:\nAnalysis:")


def test_segmentation_of_a_prompt():
    def texts(g, pattern=None):
        return [TEXT[a:b] for a, b in segment(TEXT, g, pattern)]

    assert texts("paragraphs")[:2] == ["Analyze a menu item.", "## For example:"]
    assert texts("paragraphs")[2].endswith("Recommendation: Avoid.")
    assert texts("lines")[3] == "Suggestion: Onion soup"
    assert texts("sentences")[4:7] == ["Analysis: it has onions.", "You don't like them!", "Recommendation: Avoid."]
    assert texts("words")[:3] == ["Analyze", "a", "menu"]
    assert texts("regex", r"Recommendation:[^\n]*")[1] == "Recommendation: Avoid."
    assert len(texts("regex", r"Recommendation:[^\n]*")) == 3  # before, the match, after


@pytest.mark.parametrize("granularity", ["tokens", "words", "sentences", "lines", "paragraphs", "regex"])
def test_span_sums_are_exact_and_every_token_is_counted_once(tiny_lm, granularity):
    exp = explain(tiny_lm, PROMPT, TARGET, "grad_dot_input")
    spans = exp.spans(granularity, r"movie|food" if granularity == "regex" else None)
    assigned = sorted(i for s in spans for i in s["tokens"])
    assert assigned == list(range(len(exp.tokens)))
    for s in spans:
        assert s["score"] == pytest.approx(sum(exp.tokens[i]["score"] for i in s["tokens"]), abs=1e-12)
        if not s["special"]:
            assert s["text"] == PROMPT[s["start"]:s["end"]]
            for i in s["tokens"]:
                tok = exp.tokens[i]
                assert tok["text"].strip() == "" or s["start"] <= tok["start"] and tok["end"] <= s["end"]
    assert sum(s["score"] for s in spans) == pytest.approx(sum(t["score"] for t in exp.tokens), abs=1e-9)


def test_aggregate_handles_specials_and_gaps():
    tokens = [{"start": 0, "end": 0, "score": 1.0, "special": True, "text": "<bos>"},
              {"start": 0, "end": 2, "score": 2.0}, {"start": 2, "end": 5, "score": 3.0},
              {"start": 5, "end": 7, "score": 4.0}, {"start": 7, "end": 9, "score": 5.0}]
    spans = aggregate("ab cd\n\nef", tokens, "paragraphs")
    assert [(s["text"], s["score"]) for s in spans] == [("<bos>", 1.0), ("ab cd", 5.0), ("ef", 9.0)]


def test_renderers_and_json_round_trip(tiny_lm, tmp_path):
    exp = explain(tiny_lm, PROMPT, TARGET, "integrated_gradients", steps=4)
    data = json.loads(exp.to_json())
    assert set(data["spans"]) == {"words", "sentences", "lines", "paragraphs"}
    assert Explanation.from_dict(data).tokens == exp.tokens
    page = exp.to_html("sentences", path=tmp_path / "s.html")
    assert (tmp_path / "s.html").read_text() == page and page.count('class="s"') == 3
    assert "<script" not in page and "http" not in page
    plain = exp.to_console("words", color=False)
    assert "love[" in plain and "top words:" in plain
    assert "\x1b[48;2;" in exp.to_console("words")


def _clf(lm, labels):
    return AgileClassifier(labels=labels, model=lm, template="separator", progress=False).fit()


@pytest.mark.parametrize("labels", [["Positive", "Negative"], ["good movie", "bad", "food"]])
def test_classifier_explanation_uses_the_classifiers_scores(labels):
    lm = build_gpt2_float64(5)
    clf = _clf(lm, labels)
    text = "this was a really good movie"
    proba = clf.predict_proba([text])[0]
    for method in METHODS:
        exp = explain(clf, text, method=method, steps=32)
        k = int(np.argmax(proba))
        assert exp.target == labels[k] and exp.info["label"] == labels[k]
        assert exp.score == pytest.approx(math.log(proba[k]), abs=1e-6)
        in_text = [t for t in exp.tokens if t["in_text"]]
        assert " ".join(t["text"] for t in in_text) == text
        assert all(exp.prompt[t["start"]:t["end"]] == t["text"] for t in exp.tokens if not t["special"])
    other = explain(clf, text, label=labels[1 - k if k < 2 else 0], method="integrated_gradients", steps=64)
    assert other.score == pytest.approx(math.log(proba[labels.index(other.target)]), abs=1e-6)
    total = sum(t["score"] for t in other.tokens)
    assert total == pytest.approx(other.info["score"] - other.info["baseline_score"], abs=2e-3)
    # The classifier objective's gradient matches finite differences too.
    (prompt,) = clf.prompts([text])
    objective = ClassifierLogProb(clf, prompt, 0)
    x = lm.model.get_input_embeddings()(torch.tensor([list(prompt.prefix) + prompt.body]))[0].detach()
    _, grad = _gradients(objective, x[None])
    torch.testing.assert_close(grad[0, -3], _finite_difference_grad(objective, x, len(x) - 3), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="not one of the classifier's classes"):
        explain(clf, text, label="Neutral")


@pytest.mark.slow
def test_real_model_fewshot_mistake_sentence_ranking():
    from agilecls.datasets import load_lit_prompts

    prompts = {r["source"]: r["prompt"] for r in load_lit_prompts()}
    prompt = prompts["fewshot-mistake"] + " Contains eggs.\nRecommendation:"
    exp = explain("smollm2-135m-instruct", prompt, " Avoid.", "grad_l2")
    assert all(math.isfinite(t["score"]) and t["score"] >= 0 for t in exp.tokens)
    ranking = exp.top(30, "sentences")
    # docs/salience.md: these three sentences matter most for " Avoid." (Grad L2 13.4, 11.3, 10.9)
    assert {s["text"] for s in ranking[:3]} == {"Recommendation: Likely good.", "Analysis: Contains eggs.",
                                                 "Analyze a menu item in a restaurant."}
    # The answer depends on the query part of the prompt: some sentence of the final example ranks in the top 5.
    query = prompt[prompt.index("## Now analyze"):]
    assert any(s["text"] in query for s in ranking[:5])
