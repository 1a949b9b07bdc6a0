"""``agilecls predict``: label a file of any size with a saved classifier, streaming and resumable."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ..batch.io import output_format
from ..persistence import is_saved
from .common import check_output_file, check_output_folder, check_split, fail, parse_labels, refuse

DATA = typer.Argument(..., help="CSV, TSV, JSONL or Parquet file, or a reference dataset name[:split].")
MODEL = typer.Option(..., "--model", "-m", help="Folder of a saved classifier (agilecls train).")
OUT = typer.Option(Path("preds.csv"), "--out", "-o", help="Predictions: .csv, .tsv, .jsonl or .parquet (id, kept "
                                                          "columns, label, p_<label>, ood_score, error: null where "
                                                          "the row was scored; empty in CSV/TSV).")
LIMIT = typer.Option(None, help="Read only the first N rows of the data.")
JSON = typer.Option(False, "--json", help="Print the run's summary as one JSON object.")


def register(app: typer.Typer) -> None:
    @app.command()
    def predict(ctx: typer.Context, data: str = DATA, model: Path = MODEL, out: Path = OUT,
                text_col: str = typer.Option("text", help="Text column of the file."),
                id_col: str | None = typer.Option(None, help="Column copied as id (default: the row number)."),
                keep: str | None = typer.Option(None, help="Comma-separated input columns copied to the output "
                                                           "(default: the text column)."),
                chunk_size: int = typer.Option(1000, help="Rows read, scored and written at a time."),
                resume: bool = typer.Option(False, "--resume", help="Continue an unfinished run of the same job "
                                                                    "from its last whole chunk."),
                split: str = typer.Option("test", help="Split of a reference dataset."),
                limit: int | None = LIMIT,
                engine: str = typer.Option("local", help="local (streaming, resumable) or ray (Ray Data; needs "
                                                         "agilecls[ray]; --out is a folder of Parquet files)."),
                ray_address: str | None = typer.Option(None, help="Ray cluster address (default: the one RAY_ADDRESS "
                                                                     "names, else a new local Ray)."),
                actors: int = typer.Option(2, help="Ray actors, each holding one copy of the classifier."),
                batch_size: int = typer.Option(256, help="Rows per Ray batch."),
                as_json: bool = JSON):
        """Label every row of a file with a saved classifier; rows that cannot be scored get an
        error column value and the job goes on."""
        from ..batch.local import predict_file
        from ..datasets import load_dataset
        from ..runtime import cache_dir

        if not is_saved(model):
            fail(f"--model {model} is not a saved classifier; create one with `agilecls train`")
        if engine not in ("local", "ray"):
            fail(f"--engine must be local or ray, got {engine!r}")
        check_split(ctx, data)
        kept = parse_labels(keep) if keep is not None else [text_col]
        if engine == "ray":
            refuse(ctx, ["resume", "chunk_size", "limit", "split"], "has no effect with --engine ray")
            check_output_folder(out)
            return _predict_on_ray(model, data, out, text_col, id_col, kept, actors, batch_size, ray_address)
        refuse(ctx, ["ray_address", "actors", "batch_size"], "needs --engine ray")

        check_output_file(out)
        output_format(out)

        def run():
            source = Path(data)
            if not source.exists() and data.partition(":")[0] in ("ethos", "tweets", "clinc150"):
                # a reference split: written once to a stable file, so --resume finds the same job
                source = cache_dir("datasets", f"{data.replace(':', '-')}-{split}-{text_col}.parquet")
                if not source.exists():
                    dataset = load_dataset(data, split, text_col, None)
                    source.parent.mkdir(parents=True, exist_ok=True)
                    tmp = source.with_name(f".{source.name}.tmp")
                    dataset.to_frame()[["text"]].rename(columns={"text": text_col}).to_parquet(tmp, index=False)
                    os.replace(tmp, source)
            return predict_file(model, source, out, text_col=text_col, id_col=id_col, keep=kept,
                                chunk_size=chunk_size, limit=limit, resume=resume)

        summary = run()
        typer.echo(f"{summary.rows} rows in {summary.seconds:.1f} s ({summary.texts_per_second:.1f} texts/s): "
                   f"{summary.scored} labelled, {summary.errors} with errors"
                   + (f", {summary.resumed_chunks} chunk(s) resumed" if summary.resumed_chunks else "")
                   + f"; written to {out}")
        for example in summary.error_examples:
            typer.echo(f"  {example}")
        return {"out": str(out), "rows": summary.rows, "scored": summary.scored, "errors": summary.errors,
                "seconds": round(summary.seconds, 3), "texts_per_second": round(summary.texts_per_second, 3),
                "resumed_chunks": summary.resumed_chunks, "error_examples": summary.error_examples}


def _predict_on_ray(model, data, out, text_col, id_col, keep, actors, batch_size, ray_address) -> dict:
    try:
        import ray  # noqa: F401

        from ..batch.ray_engine import predict_dataset  # the optional extra: only for --engine ray
    except ImportError:
        fail('the Ray engine needs Ray: pip install "agilecls[ray]"')
    if not id_col:
        fail("--engine ray needs --id-col: rows are scored out of order across actors")
    folder = predict_dataset(model, data, out, text_col=text_col, id_col=id_col, keep=keep,
                         actors=actors, batch_size=batch_size, ray_address=ray_address)
    typer.echo(f"predictions written to {folder} (Parquet files)")
    return {"out": str(folder), "engine": "ray"}
