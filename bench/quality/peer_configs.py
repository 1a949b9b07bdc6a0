"""The agilecls configurations that bench/quality/peers.py fits beside SetFit and TF-IDF, one registry.

Each configuration is a name, the code that builds it (public API only) and the one-line recipe
written to the results JSON, so the recipe recorded and the model fitted cannot drift apart.

- ``encoder``: ``encoder_member("minilm", "finetuned")``, MiniLM fine-tuned with a softmax head, with
  the 100-step floor it was measured with (``min_steps=100``, as every configuration below but
  ``encoder_s200`` and ``mpnet_s200``; the member's default floor is 200 since the tweets' and
  ETHOS's validation rows chose it);
- ``encoder_s200``: the same member with a floor of 200 optimiser steps (``min_steps=200``, the
  default now), the floor that ``python -m bench.defaults.fewshot_epochs --steps`` chose on the tweets'
  validation rows (train rows not drawn for training);
- ``encoder_cal``: ``CalibratedClassifier(encoder_member("minilm", "finetuned"), cv=0.25)``, the
  same calibrated on a 25% stratified hold-out of the training rows (it trains on the other 75%);
- ``encoder_cal5``: the same with 5-fold cross-fitting (``cv=5``): the calibration map is fitted on
  out-of-fold probabilities of every training row and the member is refitted on all of them (six
  fine-tunings per fit);
- ``encoder_cal5e``: the same 5-fold cross-fitting with ``ensemble=True``: no refit, the five fold
  models are kept and their calibrated probabilities averaged (five fine-tunings per fit, five
  passes over the test rows);
- ``stack_llm`` (ETHOS only, with ``--with-llm``; ~6 min per fit at 800 rows on 2 cores): the
  demo's ensemble, the fine-tuned MiniLM and the default language model LoRA-tuned for 6 epochs,
  stacked by a logistic regression on a 25% hold-out (``combine="stack", cv=0.25``; no decision
  threshold, so F1 is of the most probable class, as for every other row here);
- ``mpnet`` (needs the optional mpnet parts): the stronger encoder, ``encoder_member("mpnet",
  "finetuned")`` with the 100-step floor, the best single member on ETHOS's validation rows
  (ROC-AUC 0.944 against MiniLM's 0.903, docs/tuning.md);
- ``mpnet_s200``: the same with the default 200-step floor; on the tweets it was chosen over
  MiniLM on validation rows (``python -m bench.defaults.fewshot_epochs --encoder mpnet``);
- ``stack_mpnet``: ``stack_llm`` with mpnet in MiniLM's place and, as in the demo, the F1
  threshold of the hateful class chosen on the 25% hold-out (``threshold="f1"``): the
  configuration aimed at ETHOS's F1 target, built from members and rules chosen on validation and
  out-of-fold rows only.
"""

from __future__ import annotations

from collections.abc import Callable

from agilecls.encoders.members import encoder_member
from agilecls.recipes import build_recipe

#: name -> (recipe written to the JSON, builder(train, seed) -> unfitted estimator)
CONFIGS: dict[str, tuple[str, Callable]] = {}
#: Configurations on the optional mpnet encoder. SetFit runs on MiniLM, so the margins are reported
#: for MiniLM-only configurations (the same body) and, where it differs, for the best of all.
MPNET_CONFIGS: list[str] = []
#: Configurations that need ETHOS's positive label and instructions (binary, with a language model).
ETHOS_ONLY: list[str] = []


def config(name: str, recipe: str, mpnet: bool = False, ethos_only: bool = False):
    def register(build: Callable) -> Callable:
        CONFIGS[name] = (recipe, build)
        for flag, names in ((mpnet, MPNET_CONFIGS), (ethos_only, ETHOS_ONLY)):
            if flag:
                names.append(name)
        return build
    return register


def member(encoder: str, seed: int, min_steps: int = 100):
    """The fine-tuned member with the step floor a configuration was measured with."""
    return encoder_member(encoder, "finetuned", seed).set_params(min_steps=min_steps)


MEMBER = "encoder_member('{}', 'finetuned', seed).set_params(min_steps={})"


@config("encoder", MEMBER.format("minilm", 100))
def _encoder(train, seed):
    return member("minilm", seed)


@config("encoder_s200", MEMBER.format("minilm", 200))
def _encoder_s200(train, seed):
    return member("minilm", seed, min_steps=200)


@config("mpnet", MEMBER.format("mpnet", 100), mpnet=True)
def _mpnet(train, seed):
    return member("mpnet", seed)


@config("mpnet_s200", MEMBER.format("mpnet", 200), mpnet=True)
def _mpnet_s200(train, seed):
    return member("mpnet", seed, min_steps=200)


def calibrated(cv: float | int, ensemble: bool = False):
    """The ``encoder`` recipe without its cut, with the 100-step floor and ``cv`` / ``ensemble``."""
    def build(train, seed):
        return build_recipe("encoder", train.labels, seed=seed, threshold=None).set_params(
            cv=cv, ensemble=ensemble, estimator__min_steps=100)
    return build


CALIBRATED = "CalibratedClassifier(" + MEMBER.format("minilm", 100) + ", cv={}, random_state=seed{})"
config("encoder_cal", CALIBRATED.format(0.25, ""))(calibrated(0.25))
config("encoder_cal5", CALIBRATED.format(5, ""))(calibrated(5))
config("encoder_cal5e", CALIBRATED.format(5, ", ensemble=True"))(calibrated(5, ensemble=True))


def stacked(encoder: str, threshold: str | None):
    """The ``best`` recipe on ``encoder`` with the 100-step floor and ``threshold``."""
    def build(train, seed):
        return build_recipe("best", train.labels, encoder=encoder, seed=seed, instructions=train.meta["instructions"],
                            positive=train.meta["positive_label"], threshold=threshold or "none").set_params(
            encoder__min_steps=100)
    return build


STACKED = ("EnsembleClassifier([" + MEMBER + ", AgileClassifier(tuning='lora', epochs=6, seed=seed)], "
           "combine='stack', cv=0.25, threshold={}, random_state=seed)")
config("stack_llm", STACKED.format("minilm", 100, None), ethos_only=True)(stacked("minilm", None))
config("stack_mpnet", STACKED.format("mpnet", 100, "'f1'"), mpnet=True, ethos_only=True)(stacked("mpnet", "f1"))


def agile_estimator(name: str, train, seed: int):
    """The unfitted estimator of configuration ``name`` for ``train``'s labels, seeded."""
    if name not in CONFIGS:
        raise ValueError(f"unknown configuration {name!r}; choose one of {', '.join(CONFIGS)}")
    return CONFIGS[name][1](train, seed)


def recipes() -> dict[str, str]:
    return {name: recipe for name, (recipe, _) in CONFIGS.items()}


def fitted_facts(name: str, clf) -> dict:
    """What the fit chose (calibration map, stacker weights), for the JSON."""
    if name.startswith("encoder_cal"):
        return {"calibration": clf.calibrator_.name, "calibration_state": clf.calibrator_.state(),
                "calibration_log_loss": clf.calibration_scores_}
    if name.startswith("stack_"):
        return {"stacker": clf.stacker_.state(), "members": [n for n, _ in clf.estimators_],
                "threshold": clf.threshold_.to_dict() if clf.threshold_ is not None else None}
    return {}
