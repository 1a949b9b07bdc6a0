"""The streaming local engine: label a file of any size with a saved classifier, chunk by chunk,
resumable after a crash.

Each chunk's predictions are written to their own part file (temporary name, then an atomic
rename) in a ``.<out>.parts`` folder beside the output, together with ``job.json`` describing the
job. A part exists whole or not at all, so after a crash ``resume=True`` re-reads the input, skips
the chunks whose part is there and scores the rest: no row is lost or written twice. When every
chunk is done the parts are joined into the output (atomically) and the folder is removed.

Rows that cannot be scored (empty, missing or not text) get a message in the ``error`` column and
the job goes on; the column is null for the rows that were scored (an empty cell in CSV/TSV).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..atomic import atomic_write_text
from ..persistence import load_classifier
from ..readers import check_file, count_rows, file_format, iter_table
from ..validation import DatasetError, decision_labels
from .io import concatenate, output_format, write_frame

#: Rows per chunk: large enough to batch well, small enough that a crash loses little.
DEFAULT_CHUNK_SIZE = 1000


@dataclass
class PredictSummary:
    """What a run did: rows read, scored and refused (with the first few reasons), time taken."""

    rows: int = 0
    scored: int = 0
    errors: int = 0
    chunks: int = 0
    resumed_chunks: int = 0
    seconds: float = 0.0
    error_examples: list[str] = field(default_factory=list)

    @property
    def texts_per_second(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else math.nan


def parts_folder(out: Path) -> Path:
    """Where an unfinished run keeps its chunk files."""
    return out.parent / f".{out.name}.parts"


def _job(model: Path, source: Path, out: Path, text_col, id_col, keep, chunk_size, limit) -> dict:
    stat = source.stat()
    return {"model": str(model.resolve()), "model_manifest_mtime_ns": (model / "agilecls.json").stat().st_mtime_ns,
            "source": str(source.resolve()), "source_size": stat.st_size, "source_mtime_ns": stat.st_mtime_ns,
            "out": str(out.resolve()), "text_col": text_col, "id_col": id_col, "keep": list(keep),
            "chunk_size": chunk_size, "limit": limit}


def _prepare(parts: Path, job: dict, resume: bool) -> None:
    """Create the parts folder, or check that the unfinished run in it is this job."""
    if parts.exists():
        saved = json.loads((parts / "job.json").read_text()) if (parts / "job.json").exists() else None
        if not resume:
            done = len(list(parts.glob("part-*")))
            raise FileExistsError(f"{parts} holds {done} chunk(s) of an unfinished run; add --resume to continue "
                                  f"it, or delete that folder to start over")
        if saved != job:
            changed = sorted(k for k in job if saved is None or saved.get(k) != job[k])
            raise ValueError(f"cannot resume: the unfinished run in {parts} was for another job "
                             f"(different {', '.join(changed)}); delete that folder to start over")
        return
    parts.mkdir(parents=True)
    atomic_write_text(parts / "job.json", json.dumps(job, indent=2))


def _text_errors(texts: pd.Series) -> list[str | None]:
    out = []
    for t in texts.tolist():
        if t is None or (isinstance(t, float) and math.isnan(t)):
            out.append("missing text")
        elif not isinstance(t, str):
            out.append(f"not text ({type(t).__name__})")
        elif not t.strip():
            out.append("empty text")
        else:
            out.append(None)
    return out


def score_chunk(clf, chunk: pd.DataFrame, first_row: int, text_col: str, id_col: str | None,
                keep: Sequence[str]) -> pd.DataFrame:
    """One chunk's output rows: id, kept columns, label (a multi-label classifier's labels joined by
    ``|``), per-label probabilities, out-of-scope score (empty for multi-label) and error (null
    where the row was scored)."""
    errors = _text_errors(chunk[text_col])
    ok = np.array([e is None for e in errors], dtype=bool)
    labels = [str(c) for c in clf.classes_]
    proba = np.full((len(chunk), len(labels)), np.nan)
    ood = np.full(len(chunk), np.nan)
    pred = np.full(len(chunk), None, dtype=object)
    if ok.any():
        details = clf.details([t for t, good in zip(chunk[text_col].tolist(), ok, strict=True) if good])
        proba[ok], pred[ok] = details["proba"], decision_labels(details["pred"], labels)
        ood[ok] = details.get("ood_score", np.nan)  # none for a multi-label classifier
    out = pd.DataFrame({"id": chunk[id_col].to_numpy() if id_col else np.arange(first_row, first_row + len(chunk))})
    for col in keep:
        out[col] = chunk[col].to_numpy()
    out["label"] = pred
    for k, label in enumerate(labels):
        out[f"p_{label}"] = proba[:, k]
    out["ood_score"] = ood
    out["error"] = pd.array(errors, dtype="string")  # null where the row was scored (an empty cell in CSV/TSV)
    return out


def predict_file(model: str | os.PathLike, source: str | os.PathLike, out: str | os.PathLike, *,
                 text_col: str = "text", id_col: str | None = None, keep: Sequence[str] = (),
                 chunk_size: int = DEFAULT_CHUNK_SIZE, limit: int | None = None, resume: bool = False,
                 progress: bool = True, on_chunk: Callable[[int, int | None], None] | None = None) -> PredictSummary:
    """Label every row of ``source`` with the saved classifier in ``model``, writing ``out``.

    Parameters
    ----------
    model : path
        A saved classifier folder (any agilecls estimator).
    source : path
        CSV, TSV, JSONL or Parquet file; read ``chunk_size`` rows at a time.
    out : path
        CSV, TSV, JSONL or Parquet (by extension): ``id``, the ``keep`` columns, ``label``,
        ``p_<label>`` per label, ``ood_score`` and ``error``.
    text_col : str, default="text"
    id_col : str or None, default=None
        Column copied as ``id`` (None: the row number, from 0).
    keep : sequence of str, default=()
        Input columns copied to the output.
    chunk_size : int, default=1000
    limit : int or None, default=None
        Label only the first ``limit`` rows.
    resume : bool, default=False
        Continue an unfinished run of the same job from its last whole chunk.
    progress : bool, default=True
    on_chunk : callable or None, default=None
        Called as ``on_chunk(rows_done, rows_total)`` after each chunk (``rows_total`` None when
        the file's row count is not known in advance), e.g. to report progress elsewhere.

    Returns
    -------
    PredictSummary

    Examples
    --------
    >>> predict_file("models/ethos", "comments.parquet", "labels.parquet", id_col="comment_id")  # doctest: +SKIP
    """
    model, source, out = Path(model), Path(source), Path(out)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    file_format(check_file(source))
    out_fmt = output_format(out)
    if out.resolve() == source.resolve():
        raise ValueError("the output would overwrite the input; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(out.parent, os.W_OK):
        raise PermissionError(f"cannot write to {out.parent}")
    keep = [c for c in keep if c]
    chunks = iter_table(source, [text_col] + ([id_col] if id_col else []) + keep, chunk_size)
    clf = load_classifier(model)  # refuses a folder that is not a whole saved classifier
    parts = parts_folder(out)
    _prepare(parts, _job(model, source, out, text_col, id_col, keep, chunk_size, limit), resume)
    try:
        summary = _run(clf, chunks, count_rows(source), out, out_fmt, parts, text_col, id_col, keep, limit,
                       progress, on_chunk or (lambda done, total: None))
    except BaseException as err:
        # a bad input fails the same way on every run, and with nothing done there is nothing to
        # resume; a crash or an interruption keeps the finished chunks for --resume
        if isinstance(err, DatasetError) or not any(parts.glob("part-*")):
            shutil.rmtree(parts, ignore_errors=True)
        raise
    shutil.rmtree(parts, ignore_errors=True)
    return summary


def _run(clf, chunks, total: int | None, out: Path, out_fmt: str, parts: Path, text_col, id_col, keep, limit,
         progress, on_chunk) -> PredictSummary:
    """Score the chunks not yet written, then join the parts into ``out``."""
    total = min(total, limit) if total is not None and limit is not None else (total or limit)
    summary, start = PredictSummary(), time.perf_counter()
    bar = tqdm(total=total, desc="predicting", unit="text", disable=not progress, dynamic_ncols=True)
    written = []
    for i, chunk in enumerate(chunks):
        if limit is not None and summary.rows >= limit:
            break
        if limit is not None:
            chunk = chunk.iloc[: limit - summary.rows]
        part = parts / f"part-{i:06d}.{out_fmt}"
        first_row = summary.rows
        summary.rows += len(chunk)
        summary.chunks += 1
        written.append(part)
        if part.exists():  # done before a crash
            summary.resumed_chunks += 1
            bar.update(len(chunk))
            on_chunk(summary.rows, total)
            continue
        frame = score_chunk(clf, chunk, first_row, text_col, id_col, keep)
        tmp = parts / f".{part.name}.tmp"
        write_frame(frame, tmp, out_fmt)
        os.replace(tmp, part)
        bad = frame["error"].notna().to_numpy()
        summary.errors += int(bad.sum())
        summary.scored += int((~bad).sum())
        summary.error_examples += [f"row {r}: {e}"
                                   for r, e in zip(frame["id"][bad], frame["error"][bad], strict=True)][:3]
        bar.update(len(chunk))
        bar.set_postfix(errors=summary.errors)
        on_chunk(summary.rows, total)
    bar.close()
    if summary.rows == 0:
        raise DatasetError("the input has a header but no rows; there is nothing to predict")
    tmp_out = out.parent / f".{out.name}.tmp"
    concatenate(written, tmp_out, out_fmt) if written else write_frame(pd.DataFrame(), tmp_out, out_fmt)
    os.replace(tmp_out, out)
    summary.seconds = time.perf_counter() - start
    summary.error_examples = summary.error_examples[:5]
    return summary
