"""The label-scoring engine against independent brute-force computations on tiny random models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agilecls.lm.prompts import LabelTokenError, PromptEncoder, PromptTemplate, label_token_ids
from agilecls.lm.scoring import LabelScorer

TEXTS = ["this was a really good movie", "awful food", "I hate it", "great", "not good . not bad ."]


def full_logprobs(lm, prompt_ids: list[int], continuation: list[int]) -> float:
    """Independent reference: one full forward with the full LM head and a full-vocabulary log-softmax."""
    ids = torch.tensor([prompt_ids + continuation])
    with torch.no_grad():
        logits = lm.model(input_ids=ids).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    start = len(prompt_ids) - 1
    return float(sum(logp[start + k, t] for k, t in enumerate(continuation)))


def encode(lm, template, labels, texts=TEXTS):
    parts = template.render(texts, labels, lm.tokenizer)
    return PromptEncoder(lm).encode(parts)


@pytest.mark.parametrize("arch", ["tiny_lm", "tiny_gemma"])
def test_single_token_fast_path_equals_full_vocabulary_log_softmax(arch, request):
    lm = request.getfixturevalue(arch)
    labels = ["Positive", "Negative"]
    template = PromptTemplate("separator")
    label_ids = label_token_ids(lm.tokenizer, labels, template.label_prefix)
    assert all(len(ids) == 1 for ids in label_ids)
    prompts = encode(lm, template, labels)
    scores = LabelScorer(lm, label_ids, normalize="vocab", progress=False).score(prompts)
    for i, p in enumerate(prompts):
        for k, ids in enumerate(label_ids):
            assert scores[i, k] == pytest.approx(full_logprobs(lm, list(p.prefix) + p.body, ids), abs=1e-4)
    # Default normalisation differs by a per-text constant only: the label softmax is unchanged.
    fast = LabelScorer(lm, label_ids, progress=False).score(prompts)

    def softmax(s):
        return np.exp(s - s.max(1, keepdims=True)) / np.exp(s - s.max(1, keepdims=True)).sum(1, keepdims=True)

    np.testing.assert_allclose(softmax(fast), softmax(scores), atol=1e-5)
    assert np.ptp(fast - scores, axis=1) == pytest.approx(np.zeros(len(TEXTS)), abs=1e-4)


@pytest.mark.parametrize("arch", ["tiny_lm", "tiny_gemma"])
def test_prefix_cache_equals_full_recompute(arch, request):
    lm = request.getfixturevalue(arch)
    labels = ["Positive", "Negative"]
    template = PromptTemplate("separator", examples=[("good movie", "Positive"), ("awful", "Negative")] * 3)
    label_ids = label_token_ids(lm.tokenizer, labels, " ")
    prompts = encode(lm, template, labels)
    assert len(prompts[0].prefix) > 8  # longer than the tiny Gemma's sliding window
    cached = LabelScorer(lm, label_ids, reuse_prefix=True, progress=False).score(prompts)
    recomputed = LabelScorer(lm, label_ids, reuse_prefix=False, progress=False).score(prompts)
    np.testing.assert_allclose(cached, recomputed, atol=1e-4)


def test_multi_token_labels_equal_brute_force_sum(tiny_lm):
    labels = ["supermercados bancos", "good", "bad movie food"]
    template = PromptTemplate("separator")
    label_ids = label_token_ids(tiny_lm.tokenizer, labels, " ")
    assert [len(ids) for ids in label_ids] == [2, 1, 3]
    prompts = encode(tiny_lm, template, labels)
    scores = LabelScorer(tiny_lm, label_ids, normalize="vocab", progress=False).score(prompts)
    for i, p in enumerate(prompts):
        for k, ids in enumerate(label_ids):
            assert scores[i, k] == pytest.approx(full_logprobs(tiny_lm, list(p.prefix) + p.body, ids), abs=1e-4)
    normalised = LabelScorer(tiny_lm, label_ids, length_normalize=True, progress=False).score(prompts)
    np.testing.assert_allclose(normalised, scores / np.array([2, 1, 3]), atol=1e-5)


def test_batching_and_padding_do_not_change_results(tiny_lm):
    labels = ["Positive", "Negative", "supermercados bancos"]
    label_ids = label_token_ids(tiny_lm.tokenizer, labels, " ")
    prompts = encode(tiny_lm, PromptTemplate("separator"), labels, TEXTS * 3)
    one_by_one = LabelScorer(tiny_lm, label_ids, batch_size=1, progress=False).score(prompts)
    batched = LabelScorer(tiny_lm, label_ids, batch_size=7, progress=False).score(prompts)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    # Order of the inputs does not matter either.
    reversed_scores = LabelScorer(tiny_lm, label_ids, batch_size=4, progress=False).score(prompts[::-1])
    np.testing.assert_allclose(reversed_scores[::-1], one_by_one, atol=1e-5)


def test_gradients_flow_through_the_same_scores(tiny_lm):
    labels = ["Positive", "Negative"]
    label_ids = label_token_ids(tiny_lm.tokenizer, labels, " ")
    prompts = encode(tiny_lm, PromptTemplate("separator"), labels)
    scorer = LabelScorer(tiny_lm, label_ids, progress=False)
    with torch.enable_grad():
        scores = scorer.score_tensor(prompts)
        scores.sum().backward()
    grad = tiny_lm.model.get_input_embeddings().weight.grad
    assert grad is not None and grad.abs().sum() > 0
    tiny_lm.model.zero_grad(set_to_none=True)
    np.testing.assert_allclose(scores.detach().double().numpy(), scorer.score(prompts), atol=1e-5)


def test_long_texts_are_truncated_keeping_the_tail(tiny_lm):
    labels = ["Positive", "Negative"]
    parts = PromptTemplate("separator").render(["good " * 500], labels)
    with pytest.warns(UserWarning, match="truncated"):
        (encoded,) = PromptEncoder(tiny_lm).encode(parts)
    tail_ids = tiny_lm.tokenizer(parts[0].tail, add_special_tokens=False)["input_ids"]
    assert encoded.truncated and len(encoded.prefix) + len(encoded.body) == tiny_lm.max_length
    assert encoded.body[-len(tail_ids):] == tail_ids


def test_labels_that_cannot_be_told_apart_are_rejected(tiny_lm):
    with pytest.raises(LabelTokenError, match="duplicate"):
        label_token_ids(tiny_lm.tokenizer, ["good", "good"], " ")
    # Both unknown words map to the same <unk> token.
    with pytest.raises(LabelTokenError, match="tokenize to the same"):
        label_token_ids(tiny_lm.tokenizer, ["zebra", "yak"], " ")
    with pytest.raises(LabelTokenError, match="empty"):
        label_token_ids(tiny_lm.tokenizer, ["good", " "], " ")
