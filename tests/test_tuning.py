"""LoRA tuning, saving and loading, on a tiny random model (real computations) and once on the bundled one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.base import clone

from agilecls import AgileClassifier
from agilecls.lm.forward import hidden_states
from agilecls.lm.layer_split import LayerSplit
from agilecls.persistence import MANIFEST, ModelFormatError, load_classifier

from conftest import TEXTS, Y


def tuned(lm, **kwargs):
    params = dict(labels=["Positive", "Negative"], model=lm, tuning="lora", progress=False, epochs=6,
                  learning_rate=1e-2, rank=4, top_layers=2, train_batch_size=4, seed=0)
    params.update(kwargs)
    return AgileClassifier(**params)


def accuracy(clf, texts=TEXTS, y=Y):
    return float(np.mean(clf.predict(texts) == np.array(y)))


@pytest.mark.parametrize("arch", ["tiny_lm", "tiny_gemma"])
def test_layer_split_equals_full_forward(arch, request):
    """Cached lower layers + top layers give the same hidden states as one full forward."""
    lm = request.getfixturevalue(arch)
    prefix, rows = list(range(4, 16)), [[5, 6, 7], [8, 9, 10, 11, 12, 13], [14]]
    ref, _ = hidden_states(lm, rows, prefix)
    for n_top in (1, 2):
        split = LayerSplit(lm, n_top)
        for _ in range(2):  # second call reads the cache
            out = split.top(prefix, rows)
            for j, r in enumerate(rows):
                torch.testing.assert_close(out[j, : len(r)], ref[j, : len(r)], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ["tiny_lm", "tiny_gemma"])
def test_layer_split_gradients_equal_one_forward_per_row(arch, request):
    """The top layers run a shared prefix once and the rows on its cache: the adapters' gradients
    equal those of one full forward per row (prefix repeated), as for a text asked about 3 labels."""
    from agilecls.lm.config import TuningConfig
    from agilecls.lm.loading import private_copy
    from agilecls.lm.tuning import add_lora

    lm = add_lora(private_copy(request.getfixturevalue(arch)), TuningConfig(top_layers=2, lora_dropout=0.0))
    with torch.no_grad():  # LoRA's B starts at zero, which would make every gradient but B's vanish
        for name, p in lm.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    prefix, rows = list(range(4, 30)), [[5, 6], [8, 9, 10, 11], [14]]
    weights = torch.randn(len(rows), 4, lm.model.config.hidden_size, generator=torch.Generator().manual_seed(0))

    def gradients(run):
        lm.model.zero_grad()
        hidden = run()
        loss = sum((hidden[j, : len(r)] * weights[j, : len(r)]).sum() for j, r in enumerate(rows))
        loss.backward()
        return {n: p.grad.clone() for n, p in lm.model.named_parameters() if p.requires_grad}

    ref = gradients(lambda: hidden_states(lm, rows, prefix)[0])
    split = LayerSplit(lm, 2)
    got = gradients(lambda: split.top(prefix, rows))
    assert ref.keys() == got.keys() and len(ref) > 0
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], atol=1e-4, rtol=1e-4)


def test_fitting_lowers_the_loss_and_learns_a_separable_task(learnable_lm):
    before = AgileClassifier(labels=["Positive", "Negative"], model=learnable_lm, template="separator",
                             calibration=None, progress=False).fit()
    clf = tuned(learnable_lm, learning_rate=1e-2, epochs=8).fit(TEXTS, Y)
    losses = [h["train_loss"] for h in clf.history_]
    assert losses[-1] < 0.3 * losses[0]
    assert accuracy(clf) == 1.0 > accuracy(before)
    # The shared fixture model is untouched: adapters live on a private copy.
    assert not any("lora" in name for name, _ in learnable_lm.model.named_parameters())


def test_lm_loss_lowers_the_next_token_loss(learnable_lm):
    clf = tuned(learnable_lm, loss="lm", epochs=4).fit(TEXTS, Y)
    losses = [h["train_loss"] for h in clf.history_]
    assert losses[-1] < 0.85 * losses[0]


def test_all_layers_and_all_linear_modules_train_too(learnable_lm):
    clf = tuned(learnable_lm, top_layers=None, target_modules="all", epochs=4,
                gradient_checkpointing=True, gradient_accumulation=2).fit(TEXTS, Y)
    assert clf.history_[-1]["train_loss"] < clf.history_[0]["train_loss"]


def test_same_seed_same_model_and_sklearn_params(tiny_lm):
    a = tuned(tiny_lm, epochs=2).fit(TEXTS, Y).predict_proba(TEXTS)
    b = tuned(tiny_lm, epochs=2).fit(TEXTS, Y).predict_proba(TEXTS)
    np.testing.assert_array_equal(a, b)
    c = tuned(tiny_lm, epochs=2, seed=1).fit(TEXTS, Y).predict_proba(TEXTS)
    assert np.abs(a - c).max() > 1e-4
    clf = tuned(tiny_lm)
    assert clone(clf).get_params()["rank"] == 4
    assert clf.set_params(epochs=3, loss="lm").get_params()["epochs"] == 3


def test_early_stopping_restores_the_best_epoch_and_calls_back(tiny_lm):
    """A learning rate this high overfits the 4 held-out rows after a few epochs: training stops
    `patience` epochs after the best one and the best epoch's adapters come back."""
    seen = []
    clf = tuned(tiny_lm, epochs=12, learning_rate=5e-2, validation_fraction=0.25, patience=2, calibration=None)
    clf.fit(TEXTS, Y, callback=lambda info, c: seen.append((info.epoch, info.val_loss, c.predict_proba(TEXTS))))
    history = clf.history_
    assert [h["epoch"] for h in history] == [e for e, _, _ in seen]
    best = min(history, key=lambda h: h["val_loss"])
    assert history[-1]["best_epoch"] == best["epoch"]
    assert history[-1]["epoch"] == best["epoch"] + 2 < 12  # stopped early, two epochs after the best
    # The split the classifier used: 4 of 16 rows, stratified, and the restored model scores as the best epoch did.
    val = clf.validation_rows_
    assert len(val) == 4 and sorted(np.array(Y)[val].tolist()) == ["Negative", "Negative", "Positive", "Positive"]
    best_proba = dict((e, p) for e, _, p in seen)[best["epoch"]]
    np.testing.assert_allclose(clf.predict_proba(TEXTS), best_proba, atol=1e-5)
    val_loss = -np.mean(np.log(best_proba[val, [list(clf.classes_).index(Y[i]) for i in val]]))
    assert val_loss == pytest.approx(best["val_loss"], abs=1e-4)
    assert not np.allclose(clf.predict_proba(TEXTS), seen[-1][2], atol=1e-4)  # not the last epoch's model


def test_save_load_round_trip(tiny_lm, tmp_path):
    clf = tuned(tiny_lm, epochs=2).fit(TEXTS, Y)
    clf.save(tmp_path / "model")
    manifest = json.loads((tmp_path / "model" / MANIFEST).read_text())
    assert manifest["estimator"] == "AgileClassifier" and manifest["labels"] == ["Positive", "Negative"]
    assert manifest["tuning"]["config"]["rank"] == 4 and "torch" in manifest["versions"]
    assert manifest["base_model"]["dtype"] == "float32"  # reloaded in the precision it was tuned in
    assert (tmp_path / "model" / "adapter_model.safetensors").exists()
    loaded = load_classifier(tmp_path / "model", model=tiny_lm)
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), clf.predict_proba(TEXTS), atol=1e-5)
    np.testing.assert_array_equal(loaded.bias_, clf.bias_)
    # Zero-shot classifiers save and load too (no adapters).
    zero = AgileClassifier(labels=["Positive", "Negative"], model=tiny_lm, template="separator", progress=False).fit()
    zero.save(tmp_path / "zero")
    np.testing.assert_allclose(AgileClassifier.load(tmp_path / "zero", model=tiny_lm).predict_proba(TEXTS),
                               zero.predict_proba(TEXTS), atol=1e-5)


def test_loading_onto_a_different_base_model_is_refused(tiny_lm, tmp_path):
    from conftest import build_tiny_lm

    tuned(tiny_lm, epochs=1).fit(TEXTS, Y).save(tmp_path / "model")
    with pytest.raises(ModelFormatError, match="different model"):
        AgileClassifier.load(tmp_path / "model", model=build_tiny_lm("llama", seed=1))


def test_interrupted_save_leaves_the_old_model_intact(tiny_lm, tmp_path, monkeypatch):
    import agilecls.lm.saving

    old = tuned(tiny_lm, epochs=1).fit(TEXTS, Y)
    old.save(tmp_path / "model")
    before = {p.name: p.read_bytes() for p in (tmp_path / "model").iterdir()}
    new = tuned(tiny_lm, epochs=1, seed=3).fit(TEXTS, Y)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(agilecls.lm.saving, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        new.save(tmp_path / "model")
    assert {p.name: p.read_bytes() for p in (tmp_path / "model").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folder left behind
    with pytest.raises(OSError):
        new.save(tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()


@pytest.mark.slow
def test_tunes_the_bundled_default_model_and_round_trips(tmp_path):
    from agilecls.lm.loading import DEFAULT_MODEL

    texts = ["I love this, thank you", "You people are vermin and should be wiped out",
             "What a lovely day at the beach", "Go back to where you came from, animals"]
    y = ["Positive", "Negative", "Positive", "Negative"]
    clf = AgileClassifier(labels=["Negative", "Positive"], model=DEFAULT_MODEL, tuning="lora", epochs=1,
                          train_batch_size=4, progress=False).fit(texts, y)
    assert np.isfinite(clf.history_[0]["train_loss"])
    clf.save(tmp_path / "m")
    loaded = load_classifier(tmp_path / "m")
    assert loaded.lm_.dtype == clf.lm_.dtype  # bf16 or fp32, whichever the fit ran in
    np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-5)


def test_length_grouped_batches_cover_every_row_once_with_little_padding():
    from agilecls.batching import length_grouped_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=1000).tolist()
    batches = length_grouped_batches(lengths, 8, np.random.default_rng(1))
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1000)) and len(batches) == 125

    def padding(bs):
        return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in bs)

    random_batches = np.array_split(np.random.default_rng(1).permutation(1000), 125)
    assert padding(batches) < 0.2 * padding(random_batches)
    again = length_grouped_batches(lengths, 8, np.random.default_rng(1))
    assert all((a == b).all() for a, b in zip(batches, again, strict=True))  # same seed, same schedule


def test_learning_rate_warms_up_then_decays_to_zero_on_the_linear_schedule(tiny_lm):
    from agilecls.lm.config import TuningConfig
    from agilecls.lm.tuning import lr_scheduler

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = lr_scheduler(opt, TuningConfig(lr_schedule="linear", warmup_fraction=0.25), 8)
    rates = []
    for _ in range(8):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[:3] == [0.0, 0.5, 1.0] and rates[-1] < rates[3] < 1.0 and opt.param_groups[0]["lr"] == 0.0
    with pytest.raises(ValueError, match="lr_schedule"):
        tuned(tiny_lm, lr_schedule="exponential").fit(TEXTS, Y)


def test_calibration_folds_and_refit_share_one_lower_layer_cache(tiny_lm, monkeypatch):
    """k-fold calibration of a LoRA model runs the frozen lower layers once per prompt, not once per
    fit (3 folds + refit: every row is in two fold fits and the refit), with the same result."""
    from agilecls import CalibratedClassifier

    rows_run = []
    real = LayerSplit._lower_batch

    def counting(self, prefix, rows, cache):  # the real computation, counted
        rows_run.append(len(rows))
        return real(self, prefix, rows, cache)

    monkeypatch.setattr(LayerSplit, "_lower_batch", counting)

    def make():
        return CalibratedClassifier(tuned(tiny_lm, epochs=2, top_layers=1), method="sigmoid", cv=3)

    shared = make().fit(TEXTS, Y)
    n_shared, rows_run[:] = sum(rows_run), []
    apart = make().fit(TEXTS, Y, lower_cache=None)  # every fit its own cache, as before
    assert n_shared == len(set(TEXTS)) and sum(rows_run) == 3 * n_shared
    np.testing.assert_allclose(shared.oof_proba_, apart.oof_proba_, atol=1e-4)
    np.testing.assert_allclose(shared.predict_proba(TEXTS), apart.predict_proba(TEXTS), atol=1e-4)
