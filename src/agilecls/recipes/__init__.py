"""Named recipes: one definition of each way agilecls builds a classifier.

A recipe is a function from the class names and :class:`RecipeOptions` to an unfitted estimator,
registered with :func:`register_recipe` (as peft registers its methods) together with a one-line
description and the evidence for its defaults. ``agilecls demo``, ``agilecls train --recipe``,
the labelling loop's full model and the benchmarks all build from here, so the model a benchmark
measured is the model a user gets. :func:`build_recipe` records the recipe's name and options on
the estimator (``provenance``), and a saved classifier keeps them in its manifest.

Examples
--------
>>> from agilecls.recipes import RECIPES, build_recipe
>>> sorted(RECIPES)
['best', 'distilled', 'encoder', 'fast', 'llm']
>>> build_recipe("fast", ["no", "yes"]).provenance["recipe"]
'fast'
"""

from __future__ import annotations

from . import builtin  # noqa: F401  (fills RECIPES with the built-in recipes)
from .registry import (
    RECIPES,
    Recipe,
    RecipeOptions,
    build_recipe,
    check_options,
    check_recipe_data,
    recipe_help,
    register_recipe,
)

__all__ = ["RECIPES", "Recipe", "RecipeOptions", "build_recipe", "check_options", "check_recipe_data", "recipe_help",
           "register_recipe"]
