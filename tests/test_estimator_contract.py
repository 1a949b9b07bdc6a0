"""The scikit-learn estimator contract, checked the same way for all three estimators: parameters
stored as given, clone, get/set_params, validation at fit with a message naming the parameter,
NotFittedError before fit, consistent predictions, pickling of unfitted estimators (what joblib
needs) and the save/load round trip (agilecls never unpickles a model)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)
from sklearn.utils.validation import check_is_fitted

from agilecls import AgileClassifier, EncoderClassifier, EnsembleClassifier, load_classifier

from conftest import TEXTS, Y

LABELS = ["Negative", "Positive"]


def agile(lm):
    return AgileClassifier(labels=LABELS, model=lm, template="separator", shots=1, progress=False)


def encoder(_lm=None):
    return EncoderClassifier("minilm", head="logistic", device="cpu")


def ensemble(lm):
    return EnsembleClassifier([("llm", agile(lm)), ("enc", encoder())], weights=[1.0, 2.0])


FACTORIES = {"AgileClassifier": agile, "EncoderClassifier": encoder, "EnsembleClassifier": ensemble}
#: A value each estimator's _parameter_constraints refuses.
BAD_PARAMS = {"AgileClassifier": ("tuning", "qlora"), "EncoderClassifier": ("head", "bayes"),
              "EnsembleClassifier": ("weights", "heavy")}
#: What load_classifier needs to find the tiny test model again (it has no loadable spec).
LOAD_KWARGS = {"AgileClassifier": lambda lm: {"model": lm}, "EncoderClassifier": lambda lm: {},
               "EnsembleClassifier": lambda lm: {"members": {"llm": {"model": lm}}}}


@pytest.fixture(params=sorted(FACTORIES))
def name(request):
    return request.param


@pytest.fixture
def estimator(name, tiny_lm):
    return FACTORIES[name](tiny_lm)


def test_scikit_learn_parameter_checks(name, estimator):
    check_no_attributes_set_in_init(name, estimator)
    check_get_params_invariance(name, estimator)
    check_set_params(name, estimator)
    if name != "EnsembleClassifier":  # its member list is a required argument, as in VotingClassifier
        check_parameters_default_constructible(name, type(estimator)())


def test_clone_and_set_params_round_trip(estimator):
    params = estimator.get_params(deep=False)
    copy = clone(estimator)
    assert copy is not estimator and copy.get_params(deep=False).keys() == params.keys()
    assert clone(estimator.set_params(**params)).get_params(deep=False).keys() == params.keys()
    with pytest.raises(NotFittedError):
        check_is_fitted(clone(estimator.fit(TEXTS, Y)))  # a clone of a fitted estimator is not fitted


def test_invalid_parameters_are_refused_at_fit_naming_the_parameter(name, estimator):
    param, value = BAD_PARAMS[name]
    with pytest.raises(ValueError, match=f"'{param}' parameter of {name}"):
        estimator.set_params(**{param: value}).fit(TEXTS, Y)


def test_not_fitted_errors(estimator, tmp_path):
    for method in ("predict", "predict_proba"):
        with pytest.raises(NotFittedError):
            getattr(estimator, method)(TEXTS)
    with pytest.raises(NotFittedError):
        estimator.save(tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_unfitted_estimators_pickle_with_their_parameters(name, estimator):
    if name != "EncoderClassifier":  # the tiny test model's tokenizer is built in memory; check the params only
        estimator = clone(estimator).set_params(**({"model": "smollm2-135m-instruct"} if name == "AgileClassifier"
                                                   else {"llm__model": "smollm2-135m-instruct"}))
    copy = pickle.loads(pickle.dumps(estimator))
    assert repr(copy) == repr(estimator)


def test_fitted_predictions_are_consistent_and_survive_save_and_load(name, estimator, tiny_lm, tmp_path):
    clf = estimator.fit(TEXTS, Y)
    assert [str(c) for c in clf.classes_] == LABELS
    proba = clf.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(clf.predict(TEXTS), clf.classes_[proba.argmax(axis=1)])
    assert isinstance(clf.describe(), str) and "\n" not in clf.describe()
    clf.save(tmp_path / "model")
    loaded = load_classifier(tmp_path / "model", **LOAD_KWARGS[name](tiny_lm))
    assert type(loaded) is type(clf)
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), proba, atol=1e-6)
