"""``agilecls train``: tune a classifier on labelled data and save it.

The command reads its options into :class:`TrainOptions`, refuses combinations in which an option
would be ignored (:func:`check_options`), builds the estimator (:mod:`.train_estimator`), fits it
and saves it (:func:`run_training`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path

import click
import typer

from ..lm.config import TuningConfig
from ..readers import read_texts
from ..recipes import RECIPES, recipe_help
from .common import check_output_folder, check_split, parse_labels, refuse
from .multilabel import LABEL_COLUMNS_HELP, MULTILABEL_HELP
from .train_estimator import custom_estimator, parse_cv, parse_top_layers, recipe_estimator, reject_split

_DEFAULTS = TuningConfig()
#: The language model's tuning options (TuningConfig fields): no effect without a language model.
TUNING = ("epochs", "rank", "learning_rate", "train_batch_size", "top_layers", "target_modules", "loss",
          "validation_fraction", "max_length")
#: Recipes that tune no language model, and those whose ensemble ``--combine`` sets.
ENCODER_RECIPES = ("fast", "encoder")
COMBINING_RECIPES = ("best", "distilled")
MEMBERS = "several --model, --ensemble-encoder or --ensemble-finetuned-encoder (or the best recipe)"


def tuning_option(name: str, help_extra: str = ""):
    """A ``--name`` option whose default and help come from :class:`TuningConfig`'s field."""
    return typer.Option(getattr(_DEFAULTS, name), help=TuningConfig.help(name) + help_extra)


DATA = typer.Argument(..., help="CSV/TSV/JSONL/Parquet file or a reference dataset (ethos, tweets, clinc150).")
OUT = typer.Option(..., "--out", "-o", help="Folder to save the classifier in.")
LIMIT = typer.Option(None, help="Read only the first N rows of the data.")
MODEL = typer.Option(None, "--model", "-m", help="Language model spec (default: the bundled default); repeat it to "
                                                 "tune several models and soft-vote them (an EnsembleClassifier).")
TOP_LAYERS = typer.Option(str(_DEFAULTS.top_layers),
                          help=TuningConfig.help("top_layers").replace("None = all layers", "'all' = every layer"))
RECIPE = typer.Option(None, help="Named recipe (default: best; llm with --multilabel): " + recipe_help()
                      + ". --encoder, --ensemble-*, --calibrate, --threshold, --reject or several --model compose "
                        "a custom estimator instead.")
ENCODER = typer.Option(None, help="Fit an EncoderClassifier on this sentence encoder (minilm, mpnet, folder) instead.")
HEAD = typer.Option(None, help="Head of --encoder: sngp (default), softmax, logistic or mahalanobis; multi-label: "
                               "logistic (default) or softmax.")
FINE_TUNE = typer.Option(False, "--fine-tune", help="With --encoder: train the encoder's layers with the head "
                                                    "(slower, better).")
ENCODER_EPOCHS = typer.Option(None, help="Epochs of --encoder (default 40 on frozen embeddings, 3 when fine-tuning).")
ENSEMBLE_ENCODER = typer.Option(None, help="Also fit a logistic head on this sentence encoder (minilm, mpnet, "
                                           "folder) and soft-vote it with the tuned model(s); repeatable.")
ENSEMBLE_FINETUNED = typer.Option(None, help="Also fine-tune this sentence encoder with a softmax head and "
                                             "soft-vote it with the tuned model(s); repeatable.")
COMBINE = typer.Option(None, help="How an ensemble combines its members: 'vote' (the mean; the default of a custom "
                                  "ensemble) or 'stack' (a logistic regression on out-of-fold predictions; the "
                                  "best recipe's default).")
CALIBRATE = typer.Option(False, "--calibrate", help="Calibrate the probabilities on out-of-fold predictions "
                                                    "(temperature, Platt or isotonic, whichever has the lowest "
                                                    "log loss).")
THRESHOLD = typer.Option(None, help="Two classes (or each label with --multilabel): choose the decision threshold "
                                    "on out-of-fold predictions: f1, expected_f1, precision:<t> or recall:<t>.")
POS_LABEL = typer.Option(None, help="The positive class of the decision threshold (default: the last label).")
CV = typer.Option("5", help="Out-of-fold predictions for --combine stack, --calibrate and --threshold: k folds "
                            "(k + 1 fits) or a hold-out share such as 0.25 (one fit on the other rows; a recipe "
                            "takes only a share).")
AVERAGE_FOLDS = typer.Option(False, "--average-folds", help="With --calibrate or --threshold and k folds: keep "
                                                            "the k fold models and average their calibrated "
                                                            "probabilities instead of refitting on every row (k "
                                                            "fits; k times the prediction time and the saved size).")
UNLABELED = typer.Option(None, help="A file of unlabelled texts (CSV/JSONL with --text-col, or one per line) in "
                                    "the proportions the model will meet: their class shares are estimated and "
                                    "the saved model answers under them (with --calibrate or the fast, encoder or "
                                    "distilled recipe).")
REJECT = typer.Option(None, help="With --encoder: abstain (answer 'oos') on out-of-scope texts, with the threshold "
                                 "chosen by this rule on the rows labelled 'oos' plus 20% of the others (held out "
                                 "of training): recall:<t> (catch that share of out-of-scope texts), precision:<t>, "
                                 "f1 or auto (best overall accuracy).")


@dataclass(frozen=True)
class TrainOptions:
    """Every option of ``agilecls train``, by the command's parameter names."""

    data: str
    out: Path
    text_col: str
    label_col: str
    labels: str | None
    split: str
    limit: int | None
    multilabel: bool
    label_columns: str | None
    unlabeled: Path | None
    model: list[str] | None
    instructions: str | None
    epochs: int
    rank: int
    learning_rate: float
    train_batch_size: int
    top_layers: str
    target_modules: str
    loss: str
    validation_fraction: float
    max_length: int | None
    seed: int
    recipe: str | None
    encoder: str | None
    head: str | None
    fine_tune: bool
    encoder_epochs: int | None
    ensemble_encoder: list[str] | None
    ensemble_finetuned_encoder: list[str] | None
    combine: str | None
    calibrate: bool
    threshold: str | None
    pos_label: str | None
    cv: str
    average_folds: bool
    reject: str | None
    as_json: bool = False

    @classmethod
    def from_params(cls, params: dict) -> TrainOptions:
        return cls(**{f.name: params[f.name] for f in fields(cls) if f.name in params})

    @property
    def folds(self) -> int | float:
        return parse_cv(self.cv)

    @property
    def custom(self) -> bool:
        """Whether the options compose an estimator instead of building a recipe."""
        return bool(self.encoder or self.ensemble_encoder or self.ensemble_finetuned_encoder
                    or len(self.model or []) > 1 or self.calibrate or self.threshold or self.reject
                    or self.average_folds)

    @property
    def members(self) -> int:
        """How many members the custom estimator joins (1: no ensemble)."""
        if self.encoder or not self.custom:
            return 1
        return max(1, len(self.model or [])) + len(self.ensemble_encoder or []) \
            + len(self.ensemble_finetuned_encoder or [])

    def tuning(self) -> dict:
        """The language model's tuning options changed from their defaults (what the manifest's
        recipe options record)."""
        given_ = {name: getattr(self, name) for name in TUNING}
        given_["top_layers"] = parse_top_layers(self.top_layers)
        return {k: v for k, v in given_.items() if v != getattr(_DEFAULTS, k, None)}


def check_options(ctx: click.Context, o: TrainOptions) -> None:
    """Refuse, before any work, options that contradict each other or would be ignored (one line,
    naming the option they need)."""
    folds = o.folds
    if o.recipe is not None and o.recipe not in RECIPES:
        raise ValueError(f"--recipe {o.recipe!r}: choose one of {', '.join(sorted(RECIPES))}")
    if o.recipe is not None and o.custom:
        raise ValueError("--recipe builds the whole estimator; drop --recipe to compose one with --encoder, "
                         "--ensemble-*, --calibrate, --threshold or --reject")
    if o.unlabeled is not None and o.custom and (not o.calibrate or o.multilabel):
        raise ValueError("--unlabeled adapts a calibrated single-label classifier: add --calibrate "
                         "(and drop --multilabel), or use a recipe")
    if o.average_folds and not isinstance(folds, int):
        raise ValueError(f"--average-folds averages k fold models: give --cv k (e.g. 5), not a hold-out share {o.cv}")
    if o.multilabel and (o.combine == "stack" or o.pos_label):
        raise ValueError("--combine stack and --pos-label are for single-label classifiers; drop them with "
                         "--multilabel (--calibrate and --threshold work per label)")
    if not o.encoder:
        refuse(ctx, ["head", "fine_tune", "encoder_epochs", "reject"], "needs --encoder")
    recipe = None if o.custom else (o.recipe or ("llm" if o.multilabel or o.label_columns else "best"))
    if o.encoder or recipe in ENCODER_RECIPES:
        what = "--encoder" if o.encoder else f"the {recipe} recipe"
        refuse(ctx, ["model", "instructions", *TUNING], f"has no effect with {what} (it sets the language model, "
                                                        f"which {what} does not train)")
    if o.combine is not None and o.combine not in ("vote", "stack"):
        raise ValueError(f"--combine {o.combine!r}: use 'vote' or 'stack'")
    if o.members < 2 and recipe not in COMBINING_RECIPES:
        refuse(ctx, ["combine"], f"{o.combine} needs at least two members: {MEMBERS}")
    if o.custom and not o.threshold:
        refuse(ctx, ["pos_label"], "needs --threshold (the decision threshold's positive class), or a recipe")
    if o.custom and not (o.calibrate or o.threshold or o.average_folds or (o.members > 1 and o.combine == "stack")):
        refuse(ctx, ["cv"], "needs --combine stack, --calibrate or --threshold (it makes their out-of-fold "
                            "predictions)")
    if not o.custom and (isinstance(folds, int) or recipe == "fast"):
        refuse(ctx, ["cv"], f"has no effect with the {recipe} recipe" + ("" if recipe == "fast" else
                                                                         "; give a hold-out share such as 0.25"))
    check_split(ctx, o.data)


def load_training_data(o: TrainOptions):
    """(dataset, unlabelled texts or None) of the options."""
    from ..datasets import load_dataset

    dataset = load_dataset(o.data, o.split, o.text_col, o.label_col, parse_labels(o.labels), multilabel=o.multilabel,
                           label_columns=parse_labels(o.label_columns))
    stream = None if o.unlabeled is None else read_texts(o.unlabeled, o.text_col)
    if stream is not None and not any(t.strip() for t in stream):
        raise ValueError(f"--unlabeled {o.unlabeled} has no texts")
    dataset = dataset.head(o.limit) if o.limit else dataset
    if len(dataset) == 0:
        raise ValueError(f"{o.data} has no rows to train on")
    return dataset, stream


def run_training(o: TrainOptions) -> dict:
    """Build, fit and save the classifier of the options; what was done, for ``--json``."""
    dataset, stream = load_training_data(o)
    unlabeled = stream
    many = bool(dataset.meta.get("multilabel"))
    if o.custom:
        clf = custom_estimator(o, dataset, many, o.tuning())
    else:
        clf = recipe_estimator(o.recipe, dataset, many, o.model, o.instructions, o.pos_label, o.folds, o.seed,
                               o.tuning(), combine=o.combine)
    distilled = not o.custom and o.recipe == "distilled"
    if stream is not None and not distilled and not hasattr(clf, "adapt_priors"):
        raise ValueError(f"--unlabeled: the {o.recipe or 'best'} recipe does not adapt to class shares; use "
                         f"--recipe distilled (learns from them) or fast/encoder (adapts to their shares)")
    typer.echo(f"training {type(clf).__name__}({clf.describe()}) on {len(dataset)} texts of {dataset.name}")
    result = {"out": str(o.out), "estimator": type(clf).__name__, "data": dataset.name, "texts": len(dataset)}
    start = time.perf_counter()
    if o.reject:
        fit_x, fit_y, held_x, held_y = reject_split(list(dataset.texts), list(dataset.y), clf.oos_label, 0.2, o.seed)
        clf.fit(fit_x, fit_y).calibrate(held_x, held_y)
        result["reject_threshold"] = cut = clf.reject_threshold_
        typer.echo(f"abstains when the out-of-scope score > {cut:.3f}, chosen by {o.reject} on {len(held_x)} "
                   f"held-out rows ({held_y.count(clf.oos_label)} out of scope)")
    elif distilled:
        clf.fit(dataset.texts, dataset.y, unlabeled=stream)
        stream = None
    else:
        clf.fit(dataset.texts, dataset.y)
    result["seconds"] = round(time.perf_counter() - start, 3)
    if stream is not None:
        clf.adapt_priors(stream)
        result["priors"] = {str(c): float(p) for c, p in zip(clf.classes_, clf.priors_, strict=True)}
        typer.echo(f"class shares of {len(stream)} unlabelled texts (EM, the model now answers under them): "
                   + ", ".join(f"{c} {p:.3f}" for c, p in result["priors"].items()))
    clf.save(o.out)
    typer.echo(f"trained in {result['seconds']:.1f} s; saved to {o.out}")
    result["reference_profile"] = save_reference_profile(clf, o.out, dataset, unlabeled)
    return {**result, "describe": clf.describe(), "classes": [str(c) for c in clf.classes_]}


def save_reference_profile(clf, out, dataset, unlabeled: list[str] | None) -> str:
    """Record the classifier's reference profile for the server's drift checks, on the unlabelled
    texts when given (the texts it is meant for), else on its training texts; returns its source."""
    from ..monitoring.drift import record_profile

    if unlabeled:
        texts, source = unlabeled, f"{len(unlabeled)} unlabelled texts (--unlabeled)"
    else:
        texts, source = list(dataset.texts), f"{len(dataset)} training texts of {dataset.name}"
    profile = record_profile(clf, texts, out, source=source)
    typer.echo(f"reference profile for drift checks: predictions on {min(len(texts), profile.texts)} of the {source}"
               + ("" if unlabeled else " (more confident than on new texts: record one from held-out texts with "
                                       "agilecls profile DATA --model DIR)"))
    return source


def register(app: typer.Typer) -> None:
    @app.command()
    def train(ctx: typer.Context, data: str = DATA, out: Path = OUT,
              text_col: str = typer.Option("text", help="Text column of a file."),
              label_col: str = typer.Option("label", help="Label column of a file."),
              labels: str | None = typer.Option(None, help="Comma-separated class names (default: from the data)."),
              split: str = typer.Option("train", help="Split of a reference dataset."),
              limit: int | None = LIMIT,
              multilabel: bool = typer.Option(False, "--multilabel", help=MULTILABEL_HELP),
              label_columns: str | None = typer.Option(None, help=LABEL_COLUMNS_HELP),
              unlabeled: Path | None = UNLABELED, model: list[str] | None = MODEL,
              instructions: str | None = typer.Option(None, help="Instruction sentence of the prompt."),
              epochs: int = tuning_option("epochs"), rank: int = tuning_option("rank"),
              learning_rate: float = tuning_option("learning_rate"),
              train_batch_size: int = tuning_option("train_batch_size"), top_layers: str = TOP_LAYERS,
              target_modules: str = tuning_option("target_modules"), loss: str = tuning_option("loss"),
              validation_fraction: float = tuning_option("validation_fraction"),
              max_length: int | None = typer.Option(None, help="Prompt tokens kept per text (default 128)."),
              seed: int = typer.Option(0, help="Random seed."), recipe: str | None = RECIPE,
              encoder: str | None = ENCODER, head: str | None = HEAD, fine_tune: bool = FINE_TUNE,
              encoder_epochs: int | None = ENCODER_EPOCHS,
              ensemble_encoder: list[str] | None = ENSEMBLE_ENCODER,
              ensemble_finetuned_encoder: list[str] | None = ENSEMBLE_FINETUNED,
              combine: str | None = COMBINE, calibrate: bool = CALIBRATE, threshold: str | None = THRESHOLD,
              pos_label: str | None = POS_LABEL, cv: str = CV, average_folds: bool = AVERAGE_FOLDS,
              reject: str | None = REJECT,
              as_json: bool = typer.Option(False, "--json", help="Print what was trained as one JSON object.")):
        """Tune a classifier (a recipe, LoRA on a small LM, or a sentence-encoder head) and save it to --out."""
        options = TrainOptions.from_params(ctx.params)
        check_output_folder(out)
        check_options(ctx, options)
        return run_training(options)

