"""``agilecls distill``: a saved classifier taught to a fast sentence encoder."""

from __future__ import annotations

from pathlib import Path

import typer

from ..persistence import load_classifier
from ..readers import read_texts
from .common import check_output_folder, check_split, refuse

DATA = typer.Argument(..., help="Unlabelled texts the teacher labels and the student learns from: "
                                 "CSV/TSV/JSONL/Parquet with --text-col, or one per line.")
MODEL = typer.Option(..., "--model", "-m", help="Folder of the saved classifier to distil (the teacher).")
OUT = typer.Option(..., "--out", "-o", help="Folder to save the student in.")
LIMIT = typer.Option(None, help="Read only the first N unlabelled texts.")


def register(app: typer.Typer) -> None:
    @app.command()
    def distill(ctx: typer.Context, data: Path = DATA, model: Path = MODEL, out: Path = OUT,
                labeled: str | None = typer.Option(None, help="Labelled rows (a file with --text-col and "
                                                              "--label-col, or a reference dataset): a quarter is "
                                                              "held out to calibrate the student, fit the "
                                                              "teacher's decision rule again and measure the "
                                                              "agreement; the rest train with their label."),
                text_col: str = typer.Option("text", help="Text column of the files."),
                label_col: str = typer.Option("label", help="Label column of --labeled."),
                split: str = typer.Option("train", help="Split of a reference dataset given as --labeled."),
                limit: int | None = LIMIT,
                student: str = typer.Option("minilm", help="Sentence encoder to fine-tune (minilm, mpnet, folder)."),
                temperature: float = typer.Option(2.0, help="Softmax temperature of the teacher's targets."),
                holdout: float = typer.Option(0.25, help="Share of the labelled rows held out of the student's "
                                                         "training."),
                epochs: int | None = typer.Option(None, help="Student epochs (default 4, at least 200 steps)."),
                seed: int = typer.Option(0, help="Random seed."),
                as_json: bool = typer.Option(False, "--json", help="Print what was distilled as one JSON object.")):
        """Distil a saved classifier into a fine-tuned sentence encoder that predicts many times faster,
        and save it as an ordinary classifier folder (predict, serve and load_classifier use it)."""
        from ..datasets import load_dataset
        from ..distillation import distill as run_distillation

        check_output_folder(out)
        if labeled is None:
            refuse(ctx, ["label_col", "split", "holdout"], "needs --labeled")
        else:
            check_split(ctx, labeled)
        teacher_clf = load_classifier(model)
        texts = read_texts(data, text_col)[:limit]
        pairs = None
        if labeled is not None:
            data = load_dataset(labeled, split, text_col, label_col, [str(c) for c in teacher_clf.classes_])
            pairs = (list(data.texts), list(data.y))
        typer.echo(f"distilling {teacher_clf.describe()} into {student} on {len(texts)} unlabelled and "
                   f"{0 if pairs is None else len(pairs[0])} labelled texts")
        distilled = run_distillation(teacher_clf, texts, student, labeled=pairs, temperature=temperature,
                                     holdout=holdout, epochs=epochs, random_state=seed)
        facts = distilled.provenance["distilled_from"]
        if facts["held_out"]:
            typer.echo(f"on {facts['held_out']} held-out rows (truth: {facts['held_out_truth']}): agreement with "
                       f"the teacher {facts['agreement']:.3f}, accuracy {facts['accuracy']:.3f} (teacher "
                       f"{facts['teacher_accuracy']:.3f})")
        typer.echo(f"teacher labelling {facts['teacher_seconds']:.0f} s, student training "
                   f"{facts['student_seconds']:.0f} s; the student: {distilled.describe()}")
        distilled.save(out)
        typer.echo(f"saved to {out}")
        return {"out": str(out), "describe": distilled.describe(), "classes": [str(c) for c in distilled.classes_],
                "distilled_from": facts}
