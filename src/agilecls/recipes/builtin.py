"""The built-in recipes. Estimator modules are imported inside each builder, so listing the
recipes (``agilecls train --help``) loads no torch."""

from __future__ import annotations

from .registry import RecipeOptions, register_recipe

#: The frozen-encoder head of ``fast`` (and of the labelling loop's fast versions).
FAST_PARAMS = {"head": "logistic", "ood_method": "mahalanobis", "C": 1.0}


def two_class_rule(labels: list[str], options: RecipeOptions, default: str) -> tuple[str | float | None, str | None]:
    """The decision rule and positive class: ``options.threshold`` ("auto" = the recipe's
    ``default``; "none" or None = the most probable class), for two classes only."""
    rule = options.threshold
    if len(labels) != 2 or options.multilabel or rule is None or str(rule).lower() == "none":
        return None, None
    return (default if rule == "auto" else rule), options.positive


def fast_encoder(encoder: str, labels: list[str] | None = None, seed: int = 0, **params):
    """The ``fast`` recipe's base: a logistic head on frozen sentence embeddings, with Mahalanobis
    out-of-scope scores; every label is a class (``oos_label=None``)."""
    from ..encoders.classifier import EncoderClassifier

    return EncoderClassifier(encoder, labels=labels, oos_label=None, random_state=seed, **{**FAST_PARAMS, **params})


@register_recipe("fast", "logistic head on frozen sentence embeddings, temperature-calibrated (seconds)",
                 "the labelling loop's fast version: rank-keeping calibration (Platt inverted ETHOS's ranking at 32 "
                 "labels, ROC-AUC 0.38) and the best out-of-fold F1 cut (python -m bench.defaults.loop_rules)",
                 multilabel=True, min_per_class=2)
def fast(labels: list[str], options: RecipeOptions):
    from ..calibration.classifier import CalibratedClassifier

    rule, positive = two_class_rule(labels, options, "f1")
    base = fast_encoder(options.encoder, labels, options.seed, multilabel=options.multilabel)
    return CalibratedClassifier(base, method="temperature", cv=5, threshold=rule, pos_label=positive,
                                random_state=options.seed)


@register_recipe("encoder", "sentence encoder fine-tuned with a softmax head, calibrated on a hold-out (minutes)",
                 "MiniLM fine-tuned for at least 200 steps: macro F1 +0.001 to +0.026 and ECE 0.12-0.19 -> 0.02-0.05 "
                 "over 100 steps on the tweets' validation rows "
                 "(python -m bench.defaults.fewshot_epochs --steps 100 200)",
                 multilabel=True, min_per_class=4)
def encoder(labels: list[str], options: RecipeOptions):
    from ..calibration.classifier import CalibratedClassifier
    from ..encoders.members import encoder_member

    rule, positive = two_class_rule(labels, options, "f1")
    member = encoder_member(options.encoder, "finetuned", options.seed).set_params(labels=labels,
                                                                                   multilabel=options.multilabel)
    return CalibratedClassifier(member, cv=options.holdout, threshold=rule, pos_label=positive,
                                random_state=options.seed)


def tuned_llm(labels: list[str], options: RecipeOptions):
    from ..lm.classifier import AgileClassifier
    from ..lm.loading import DEFAULT_MODEL

    params = {"instructions": options.instructions, "seed": options.seed, "multilabel": options.multilabel,
              **options.llm}
    return AgileClassifier(labels=labels, model=options.model or DEFAULT_MODEL, tuning="lora", **params)


@register_recipe("llm", "the language model LoRA-tuned so a label word's probability is the class score",
                 "6 epochs of the top layers: ETHOS ROC-AUC and the demo's minutes on a 2-core CPU "
                 "(python -m bench.quality.ethos_learning_curve)", multilabel=True)
def llm(labels: list[str], options: RecipeOptions):
    return tuned_llm(labels, options)


@register_recipe("best", "the LoRA-tuned language model stacked with a fine-tuned sentence encoder by a logistic "
                         "regression on a held-out quarter, with the expected-F1 cut (the demo's model)",
                 "stacking beat either member and their mean on ETHOS validation rows, and the expected-F1 cut "
                 "beat the best held-out cut by F1 +0.007 to +0.013 (python -m bench.defaults.threshold_rules)",
                 min_per_class=8)
def best(labels: list[str], options: RecipeOptions):
    from ..encoders.members import encoder_member
    from ..ensemble import EnsembleClassifier

    members = [("encoder", encoder_member(options.encoder, "finetuned", options.seed)),
               ("llm", tuned_llm(labels, options))]
    if options.combine == "vote":
        return EnsembleClassifier(members, labels=labels, combine="vote", random_state=options.seed)
    if options.combine != "stack":
        raise ValueError(f"combine={options.combine!r}: use 'stack' or 'vote'")
    rule, positive = two_class_rule(labels, options, "expected_f1")
    return EnsembleClassifier(members, labels=labels, combine="stack", cv=options.holdout, threshold=rule,
                              pos_label=positive, random_state=options.seed)


@register_recipe("distilled", "'best' trained on the labels, then distilled into a fine-tuned sentence encoder on "
                              "the labelled and unlabelled texts (fast to predict)",
                 "the student's quality and speed against the teacher's: python -m bench.quality.distill",
                 min_per_class=8)
def distilled(labels: list[str], options: RecipeOptions):
    from ..distillation import DistilledClassifier

    return DistilledClassifier(best(labels, options), student=options.student, temperature=options.temperature,
                               holdout=options.holdout, random_state=options.seed)
