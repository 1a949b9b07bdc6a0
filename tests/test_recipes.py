"""The recipes registry: one definition of each recipe, used by the demo, ``train``, the loop's full
model and the benchmarks, recorded in the saved manifest."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from agilecls import load_classifier
from agilecls.cli import app
from agilecls.cli.demo import demo_estimator
from agilecls.cli.train import recipe_estimator
from agilecls.datasets import load_ethos
from agilecls.recipes import RECIPES, build_recipe, register_recipe


def params(estimator) -> dict:
    """Every parameter, nested estimators (and ensemble members) expanded, comparable with ==."""
    out = {"class": type(estimator).__name__}
    for key, value in estimator.get_params(deep=False).items():
        if hasattr(value, "get_params"):
            value = params(value)
        elif isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
            value = [(name, params(member)) for name, member in value]
        out[key] = value
    return out


def test_the_registry_names_each_recipe_once_and_refuses_what_it_cannot_build():
    assert set(RECIPES) == {"fast", "encoder", "llm", "best", "distilled"}
    assert all(r.description and r.evidence for r in RECIPES.values())
    with pytest.raises(ValueError, match="already registered"):
        register_recipe("best", "another best", "none")(lambda labels, options: None)
    with pytest.raises(ValueError, match="unknown recipe 'bestest'; choose one of best, distilled"):
        build_recipe("bestest", ["a", "b"])
    with pytest.raises(ValueError, match=r"unknown recipe options \['epoch'\]"):
        build_recipe("best", ["a", "b"], epoch=3)
    with pytest.raises(ValueError, match="with --multilabel use one of: encoder, fast, llm"):
        build_recipe("best", ["a", "b"], multilabel=True)


def test_best_is_the_same_estimator_in_the_demo_train_the_loop_and_the_benchmarks(tmp_path):
    from agilecls.loop.project import Project
    from agilecls.loop.versions import build_full
    from bench.quality.peer_configs import agile_estimator

    train = load_ethos("train")
    recipe = build_recipe("best", train.labels, instructions=train.meta["instructions"],
                          positive=train.meta["positive_label"])
    demo = demo_estimator(train, None, "minilm", "stack", 0.25, "expected_f1", 6)
    cli = recipe_estimator(None, train, False, None, None, None, 5, 0, {})
    assert params(demo) == params(cli) == params(recipe)
    assert recipe.threshold == "expected_f1" and recipe.pos_label == train.meta["positive_label"]
    assert demo.provenance["recipe"] == cli.provenance["recipe"] == "best"

    # the loop takes the project's rule afterwards, so its full model has no cut of its own
    project = Project.create(tmp_path / "p", train.labels, train.meta["instructions"])
    no_cut = build_recipe("best", train.labels, instructions=train.meta["instructions"], threshold=None,
                          llm={"progress": False})
    assert params(build_full(project.labels, project.meta)) == params(no_cut)
    # the benchmark's stacked configuration is the recipe with the floor of steps it was measured with
    bench = agile_estimator("stack_llm", train, 0)
    assert params(bench) == params(build_recipe("best", train.labels, instructions=train.meta["instructions"],
                                                positive=train.meta["positive_label"], threshold=None)
                                   .set_params(encoder__min_steps=100))


def test_train_builds_a_recipe_records_it_and_lists_the_recipes(tmp_path):
    """``agilecls train --recipe fast`` with the real bundled MiniLM: the manifest names the recipe
    and its options, and the loaded classifier predicts what the trained one did."""
    from conftest import TEXTS, Y

    data = tmp_path / "toy.csv"
    pd.DataFrame({"text": TEXTS, "label": Y}).to_csv(data, index=False)
    runner = CliRunner()
    help_text = " ".join(runner.invoke(app, ["train", "--help"], terminal_width=200).output.split())
    assert all(f"{name}:" in help_text for name in RECIPES)
    out = tmp_path / "model"
    result = runner.invoke(app, ["train", str(data), "--out", str(out), "--recipe", "fast", "--pos-label", "Positive"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "agilecls.json").read_text())
    assert manifest["provenance"]["recipe"] == "fast"
    assert manifest["provenance"]["options"]["positive"] == "Positive"
    clf = load_classifier(out)
    assert clf.provenance == manifest["provenance"] and clf.threshold_.positive == "Positive"
    assert (clf.predict(TEXTS) == pd.Series(Y)).mean() > 0.9
    bad = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "x"), "--recipe", "fast", "--encoder",
                              "minilm"])
    assert bad.exit_code == 2 and "--recipe builds the whole estimator" in bad.output
    bad = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "x"), "--recipe", "quick"])
    assert bad.exit_code == 2 and "--recipe 'quick': choose one of best, distilled, encoder, fast, llm" in bad.output
    few = tmp_path / "few.csv"
    pd.DataFrame({"text": TEXTS[:3] + TEXTS[-3:], "label": Y[:3] + Y[-3:]}).to_csv(few, index=False)
    bad = runner.invoke(app, ["train", str(few), "--out", str(tmp_path / "x")])  # the default: best
    assert bad.exit_code == 2 and not (tmp_path / "x").exists()
    assert "the best recipe needs at least 8 labelled texts per class" in bad.output
    assert "use --recipe fast, llm" in bad.output
