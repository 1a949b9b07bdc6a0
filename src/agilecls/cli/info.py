"""``agilecls info``: what this machine runs models with, and what a saved classifier is."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .. import __version__
from ..persistence import load_classifier, read_manifest


def machine_facts(measure: bool) -> dict:
    """The device, dtype and batch sizes agilecls chooses here (``measure``: load the default
    language model and measure its scoring batch now, if this machine has not yet)."""
    import torch

    from ..runtime import cache_dir, machine_key, pick_device, pick_dtype

    device = pick_device("auto")
    facts = {"agilecls": __version__, "torch": torch.__version__, "machine": machine_key(device), "device": device,
             "torch_threads": torch.get_num_threads(),
             "dtype": str(pick_dtype(torch.device(device).type)).replace("torch.", "")}
    # SentenceEncoder embeds in fp32 unless told dtype="auto" (bf16 autocast where it measured faster)
    facts["encoder_embedding"] = "fp32" + (" (bf16 autocast measured faster here: SentenceEncoder(dtype='auto'))"
                                           if facts["dtype"] == "bfloat16" else "")
    if measure:
        from ..lm.classifier import AgileClassifier

        AgileClassifier(labels=["yes", "no"], progress=False).fit()  # loading it measures its scoring batch
    try:
        known = json.loads(cache_dir("measured.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    facts["measured"] = {key.split("|", 1)[1]: value for key, value in known.items()
                         if key.split("|", 1)[0] == facts["machine"]}
    return facts


def model_facts(folder: Path) -> dict:
    """A saved classifier's estimator, classes, recipe or teacher, and description."""
    manifest = read_manifest(folder)
    clf = load_classifier(folder)
    return {"folder": str(folder), "estimator": manifest["estimator"], "describe": clf.describe(),
            "classes": [str(c) for c in clf.classes_], "provenance": manifest.get("provenance"),
            "versions": manifest.get("versions", {})}


MODEL = typer.Option(None, "--model", "-m", help="A saved classifier's folder to describe.")


def register(app: typer.Typer) -> None:
    @app.command()
    def info(model: Path | None = MODEL,
             measure: bool = typer.Option(False, "--measure", help="Load the default language model and measure "
                                                                  "its scoring batch size now (seconds, once per "
                                                                  "machine)."),
             as_json: bool = typer.Option(False, "--json", help="Print the facts as one JSON object.")):
        """What this machine runs models with (device, dtype, measured batch sizes) and, given a
        folder, what the saved classifier is (estimator, classes, recipe or teacher)."""
        facts = {"machine": machine_facts(measure)}
        if model is not None:
            facts["model"] = model_facts(model)
        if as_json:
            return facts
        m = facts["machine"]
        typer.echo(f"agilecls {m['agilecls']}, torch {m['torch']}; {m['machine']}")
        typer.echo(f"device {m['device']}, {m['dtype']} (measured), sentence encoders embed in "
                   f"{m['encoder_embedding']}")
        for name, value in m["measured"].items():
            typer.echo(f"  {name}: {value}")
        if not m["measured"]:
            typer.echo("  no batch size measured yet on this machine (the first model load measures it; "
                       "or run agilecls info --measure)")
        if "model" in facts:
            saved = facts["model"]
            typer.echo(f"{saved['folder']}: {saved['estimator']} - {saved['describe']}")
            typer.echo(f"  classes: {', '.join(saved['classes'])}")
            source = saved["provenance"] or {}
            if "recipe" in source:
                typer.echo(f"  recipe: {source['recipe']}")
            if "distilled_from" in source:
                teacher = source["distilled_from"]
                typer.echo(f"  distilled from: {teacher['teacher']} (agreement {teacher.get('agreement')} on "
                           f"{teacher.get('held_out')} held-out rows)")
