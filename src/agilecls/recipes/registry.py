"""The recipe registry: :func:`register_recipe` fills it, :func:`build_recipe` reads it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace

from ..registry import Registry


@dataclass(frozen=True)
class RecipeOptions:
    """What a recipe may be told; each recipe reads the options it needs and ignores the rest.

    Attributes
    ----------
    model : str or None, default=None
        Language-model spec (None: the bundled default).
    encoder : str, default="minilm"
        Sentence encoder (``"minilm"``, ``"mpnet"``, a folder).
    instructions : str or None, default=None
        The prompt's instruction sentence.
    positive : str or None, default=None
        The positive class of a two-class decision rule (None: the last class).
    threshold : str, float or None, default="auto"
        Two classes: the decision rule chosen on held-out rows ("auto": the recipe's own; "none" or
        None: the most probable class).
    holdout : float, default=0.25
        Share of the labelled rows held out to fit a stacker, calibration and the rule on.
    combine : {"stack", "vote"}, default="stack"
        How ``best`` joins its members.
    seed : int, default=0
    multilabel : bool, default=False
    llm : dict, default={}
        Extra :class:`~agilecls.AgileClassifier` parameters (epochs, rank, progress, ...).
    student : str, default="minilm"
        ``distilled``: the sentence encoder the teacher is distilled into.
    temperature : float, default=2.0
        ``distilled``: softmax temperature of the teacher's targets.
    """

    model: str | None = None
    encoder: str = "minilm"
    instructions: str | None = None
    positive: str | None = None
    threshold: str | float | None = "auto"
    holdout: float = 0.25
    combine: str = "stack"
    seed: int = 0
    multilabel: bool = False
    llm: dict = field(default_factory=dict)
    student: str = "minilm"
    temperature: float = 2.0


@dataclass(frozen=True)
class Recipe:
    """A registered recipe: its name, what it builds, why its defaults are what they are."""

    name: str
    description: str
    evidence: str
    build: Callable[[list[str], RecipeOptions], object]
    multilabel: bool = False
    min_per_class: int = 1


#: Recipe name -> :class:`Recipe`, filled by :func:`register_recipe`.
RECIPES: Registry[Recipe] = Registry("recipe", sort_names=True)


def register_recipe(name: str, description: str, evidence: str, *, multilabel: bool = False, min_per_class: int = 1):
    """Decorator that registers ``build(labels, options) -> unfitted estimator`` as recipe ``name``.

    ``min_per_class``: labelled texts each class needs (a recipe that holds rows out needs more).
    A second recipe of the same name is refused: two definitions of one recipe would drift apart.
    """

    def wrap(build: Callable) -> Callable:
        RECIPES.add(name, Recipe(name, description, evidence, build, multilabel, min_per_class),
                    multilabel=multilabel, min_per_class=min_per_class)
        return build

    return wrap


def check_recipe_data(name: str, y) -> None:
    """Refuse, before any training, labels too few for recipe ``name``, naming the recipes that fit."""
    recipe = RECIPES[name]
    counts: dict[str, int] = {}
    for label in y:
        for one in (label if isinstance(label, (list, tuple)) else [label]):
            counts[str(one)] = counts.get(str(one), 0) + 1
    short = {label: n for label, n in counts.items() if n < recipe.min_per_class}
    if short:
        fits = ", ".join(sorted(n for n, r in RECIPES.items() if r.min_per_class <= min(counts.values())))
        raise ValueError(f"the {name} recipe needs at least {recipe.min_per_class} labelled texts per class (it "
                         f"holds some out to fit on); {short} have fewer: label more, or use --recipe {fits}")


def check_options(options: dict) -> RecipeOptions:
    """``options`` as :class:`RecipeOptions`, refusing unknown names with the known ones."""
    known = {f.name for f in fields(RecipeOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown recipe options {unknown}; known: {sorted(known)}")
    return replace(RecipeOptions(), **options)


def build_recipe(name: str, labels, **options):
    """The unfitted estimator of recipe ``name`` for ``labels``.

    Parameters
    ----------
    name : str
        One of :data:`RECIPES` (``agilecls train --help`` lists them).
    labels : sequence of str
        The class names, in order.
    **options
        Fields of :class:`RecipeOptions`.

    Returns
    -------
    estimator
        Unfitted; its ``provenance`` holds the recipe's name and options, which ``save`` writes
        into the manifest.
    """
    recipe, checked = RECIPES[name], check_options(options)
    if checked.multilabel and not recipe.multilabel:
        usable = ", ".join(sorted(RECIPES.names(multilabel=True)))
        raise ValueError(f"recipe {name!r} is for one label per text; with --multilabel use one of: {usable}")
    estimator = recipe.build([str(label) for label in labels], checked)
    estimator.provenance = {"recipe": name, "options": asdict(checked)}
    return estimator


def recipe_help() -> str:
    """One line per recipe, for ``--help`` texts."""
    return "; ".join(f"{name}: {recipe.description}" for name, recipe in sorted(RECIPES.items()))

