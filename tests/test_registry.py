"""The one Registry behind estimators, salience methods, strategies, calibrators and recipes."""

from __future__ import annotations

import numpy as np
import pytest

from agilecls.calibration.calibrators import CALIBRATORS, candidates, choose_calibrator
from agilecls.loop.strategies import STRATEGIES, PoolScores, select
from agilecls.persistence import ESTIMATORS, estimator_class, register_estimator
from agilecls.recipes import RECIPES
from agilecls.registry import Registry, UnknownNameError
from agilecls.salience import METHODS, method_titles


def test_a_taken_name_is_refused_and_the_same_object_again_is_a_no_op():
    reg = Registry("widget")

    @reg.register("a", colour="red")
    def first():
        return 1

    assert reg.register("a", colour="red")(first) is first  # a module imported twice
    with pytest.raises(ValueError, match=r"widget 'a' is already registered by .*first; choose another name"):
        reg.register("a")(lambda: 2)
    assert reg["a"]() == 1 and len(reg) == 1
    with pytest.raises(ValueError, match="non-empty string name"):
        reg.add("", first)


def test_metadata_is_kept_read_only_and_filters_names_in_registration_order():
    reg = Registry("strategy")
    for name, needs in [("zeta", False), ("alpha", True), ("mid", True)]:
        reg.add(name, object(), needs_model=needs)
    assert list(reg) == ["zeta", "alpha", "mid"]
    assert reg.names(needs_model=True) == ["alpha", "mid"]
    assert reg.names(needs_model=True, other=1) == []
    assert reg.meta("zeta") == {"needs_model": False}
    with pytest.raises(TypeError):
        reg.meta("zeta")["needs_model"] = True


def test_an_unknown_name_lists_the_known_ones_for_dict_and_input_checks():
    reg = Registry("recipe", sort_names=True)
    reg.add("fast", 1)
    reg.add("best", 2)
    with pytest.raises(ValueError, match="unknown recipe 'bestest'; choose one of best, fast$"):
        reg.check("bestest")
    with pytest.raises(KeyError) as err:
        reg["bestest"]
    assert isinstance(err.value, UnknownNameError) and str(err.value).startswith("unknown recipe 'bestest'")
    assert "bestest" not in reg and 3 not in reg and reg.get("bestest") is None
    with pytest.raises(ValueError, match="unknown recipe"):
        reg.meta("bestest")


def test_every_salience_method_has_a_title_and_a_sign():
    assert list(METHODS) == ["grad_l2", "grad_dot_input", "integrated_gradients"]
    assert method_titles() == {"grad_l2": "Grad L2", "grad_dot_input": "Grad · Input",
                               "integrated_gradients": "Integrated Gradients"}
    assert {name: METHODS.meta(name)["signed"] for name in METHODS} == {
        name: METHODS[name].signed for name in METHODS}


def test_a_model_strategy_without_a_model_picks_the_cold_start_rows():
    assert set(STRATEGIES.names(needs_model=False)) == {"random", "kmeans"}
    emb = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    pool = PoolScores(emb, np.arange(40))
    for name in STRATEGIES.names(needs_model=True):
        np.testing.assert_array_equal(select(name, pool, 4), select("kmeans", pool, 4))
    with pytest.raises(ValueError, match="unknown strategy 'psychic'; choose one of breaking_ties"):
        select("psychic", pool, 4)


def test_binary_only_calibrators_are_never_candidates_for_three_classes():
    assert candidates(2) == list(CALIBRATORS)
    assert candidates(3) == ["none", "temperature"]
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), size=60)
    chosen, losses = choose_calibrator(proba, rng.integers(0, 3, size=60))
    assert set(losses) == {"none", "temperature"} and chosen.name in losses


def test_a_second_estimator_under_a_builtin_name_is_refused():
    builtin = estimator_class("EncoderClassifier")
    with pytest.raises(ValueError, match="estimator 'EncoderClassifier' is already registered"):
        register_estimator("EncoderClassifier")(type("Impostor", (), {}))
    assert ESTIMATORS["EncoderClassifier"] is builtin
    assert RECIPES.names(multilabel=True) and all(RECIPES[n].multilabel for n in RECIPES.names(multilabel=True))
