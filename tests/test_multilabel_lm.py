"""Multi-label AgileClassifier on tiny random models: every label's yes/no score checked against a
brute-force run of the full prompt, LoRA tuning with the per-label loss, and a save/load round trip."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss

from agilecls import AgileClassifier
from agilecls.evaluation.metrics import multilabel_metrics
from agilecls.lm.multilabel import ANSWERS, logit, pair_targets
from agilecls.lm.tuning import LoraTrainer
from agilecls.persistence import load_classifier
from agilecls.validation import sigmoid

from conftest import TEXTS, build_tiny_lm

LABELS = ["movie", "food", "good"]
ANSWER_WORDS = "yes no Label"


@pytest.fixture(scope="module")
def yes_no_lms():
    return {arch: build_tiny_lm(arch, extra_words=ANSWER_WORDS) for arch in ("llama", "gemma3")}


def topics(texts):
    """Toy multi-label targets: which of LABELS' words each text contains (some texts have none)."""
    return [[label for label in LABELS if label in text.split()] for text in texts]


@torch.no_grad()
def brute_force_yes_probability(lm, prompt: str) -> float:
    """Plain transformers on the full prompt string: softmax over the yes/no token logits at its end."""
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"]
    logits = lm.model(input_ids=ids).logits[0, -1].double()
    yes, no = (lm.tokenizer(" " + word, add_special_tokens=False)["input_ids"] for word in ANSWERS)
    assert len(yes) == len(no) == 1
    return float(torch.softmax(logits[[yes[0], no[0]]], dim=0)[0])


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_scores_equal_brute_force_per_label_prompts(yes_no_lms, arch, one_thread):
    lm = yes_no_lms[arch]
    clf = AgileClassifier(labels=LABELS, model=lm, template="separator", calibration="none", multilabel=True,
                          batch_size=3, progress=False).fit()
    texts = TEXTS[:5] + ["I love it"]
    proba = clf.predict_proba(texts)
    assert proba.shape == (len(texts), len(LABELS))
    sep = "<separator>"
    for i, text in enumerate(texts):
        for k, label in enumerate(LABELS):
            prompt = (f"Does the text belong to the label? Answer with one of the following words:[yes,no]{sep}"
                      f"Text:{text}{sep}Label:{label}{sep}Prediction:")
            assert abs(proba[i, k] - brute_force_yes_probability(lm, prompt)) < 1e-5, (text, label)
    pred = clf.predict(texts)
    assert pred.dtype.kind == "i" and pred.shape == proba.shape
    np.testing.assert_array_equal(pred, (proba >= 0.5).astype(int))
    assert list(clf.classes_) == LABELS


def test_content_free_calibration_divides_out_each_labels_yes_bias(yes_no_lms, one_thread):
    lm = yes_no_lms["llama"]
    clf = AgileClassifier(labels=LABELS, model=lm, template="separator", multilabel=True, progress=False).fit()
    raw = clf.raw_scores(["N/A", "", "[MASK]"])
    np.testing.assert_allclose(clf.bias_, logit(sigmoid(raw).mean(axis=0)), atol=1e-12)
    texts = TEXTS[:4]
    np.testing.assert_allclose(clf.decision_function(texts), clf.raw_scores(texts) - clf.bias_, atol=1e-12)
    with pytest.raises(ValueError, match="ood_score is not defined"):
        clf.ood_score(texts)
    with pytest.raises(ValueError, match="shots is not supported"):
        AgileClassifier(labels=LABELS, model=lm, multilabel=True, shots=1).fit(TEXTS, topics(TEXTS))


def test_lora_minimises_the_mean_per_label_binary_cross_entropy_and_round_trips(tmp_path, one_thread):
    lm = build_tiny_lm("gemma3", extra_words=ANSWER_WORDS)
    with torch.no_grad():  # as the learnable_lm fixture: random init at std 0.02 caps the logits near zero
        lm.model.get_input_embeddings().weight.mul_(25)
    Y = topics(TEXTS)
    indicator = np.array([[int(label in row) for label in LABELS] for row in Y])
    clf = AgileClassifier(labels=LABELS, model=lm, tuning="lora", multilabel=True, progress=False, epochs=12,
                          learning_rate=2e-2, top_layers=2, train_batch_size=9, seed=0)  # 3 texts per step
    clf.fit(TEXTS, Y)
    losses = [h["train_loss"] for h in clf.history_]
    assert losses[-1] < 0.85 * losses[0]
    proba = clf.predict_proba(TEXTS)
    assert multilabel_metrics(indicator, proba, LABELS)["roc_auc_macro"] > 0.75
    # the trainer's loss on (text, label) pairs is the mean binary cross-entropy of predict_proba
    trainer = LoraTrainer(clf.lm_, clf.scorer_, replace(clf.tuning_config(), top_layers=None), progress=False)
    with torch.no_grad():
        loss = trainer.loss(clf.prompts(TEXTS), torch.tensor(pair_targets(indicator))).item()
    assert abs(loss - log_loss(indicator.ravel(), proba.ravel())) < 1e-5
    clf.save(tmp_path / "ml")
    loaded = load_classifier(tmp_path / "ml", model=lm)
    assert loaded.multilabel and list(loaded.classes_) == LABELS
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), proba, atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(TEXTS), clf.predict(TEXTS))
    # a 0/1 matrix with labels= trains the same estimator
    again = AgileClassifier(labels=LABELS, model=lm, tuning="lora", multilabel=True, progress=False, epochs=1,
                            top_layers=2, seed=0).fit(TEXTS, indicator)
    assert again.predict_proba(TEXTS[:2]).shape == (2, len(LABELS))


def test_lora_steps_take_whole_texts_and_hold_out_whole_texts(monkeypatch, one_thread):
    """A training step takes whole texts with every label's question (so the top layers run each
    text once per step), as many as fit in ``train_batch_size`` questions, and early stopping holds
    out texts, not (text, label) pairs."""
    lm = build_tiny_lm("gemma3", extra_words=ANSWER_WORDS)
    batches = []
    real = LoraTrainer.loss

    def recording(self, prompts, y):  # the real loss, with the texts of each step written down
        batches.append([p.prefix for p in prompts])
        return real(self, prompts, y)

    monkeypatch.setattr(LoraTrainer, "loss", recording)
    clf = AgileClassifier(labels=LABELS, model=lm, tuning="lora", multilabel=True, progress=False, epochs=2,
                          top_layers=1, train_batch_size=7, validation_fraction=0.25, seed=0).fit(TEXTS, topics(TEXTS))
    n_val = round(0.25 * len(TEXTS))
    assert len(clf.validation_rows_) == n_val and clf.validation_rows_.max() < len(TEXTS)
    per_epoch = len(batches) // 2
    assert per_epoch == -(-(len(TEXTS) - n_val) // 2)
    for prefixes in batches:
        texts = set(prefixes)
        assert len(texts) <= 2 and len(prefixes) == len(texts) * len(LABELS)
    held_out = {clf.prompts([TEXTS[i]])[0].prefix for i in clf.validation_rows_}
    assert not held_out & {p for prefixes in batches for p in prefixes}
