"""Rows into a project (a file or a reference dataset) and labels and predictions out of it.

An import is checked whole before anything is written, and written in one transaction: a
missing column, an empty or binary file, a duplicate id or an unknown label is one clear error
and leaves the project as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..batch.io import output_format, write_frame
from ..datasets import REFERENCE_LOADERS
from ..readers import read_table
from ..validation import is_missing
from .store import ProjectError, ProjectStore


def rows_from_source(source: str | os.PathLike, text_col: str = "text", id_col: str | None = None,
                     label_col: str | None = None, split: str = "train") -> pd.DataFrame:
    """A frame with ``id`` (or None), ``text``, ``label`` (or None) and the other columns as ``extra``.

    ``source`` is a CSV / TSV / JSONL / Parquet file, or a reference dataset name (``ethos``,
    ``tweets``, ``clinc150``, optionally ``name:split``), whose labels are kept when
    ``label_col`` is given (any value, e.g. ``"label"``).
    """
    name, _, named_split = str(source).partition(":")
    if name in REFERENCE_LOADERS and not Path(source).exists():
        data = REFERENCE_LOADERS[name](split=named_split or split)
        return pd.DataFrame({"id": [f"{name}-{named_split or split}-{i}" for i in range(len(data))],
                             "text": data.texts, "label": data.y if label_col else None, "extra": [{}] * len(data)})
    wanted = [c for c in (text_col, id_col, label_col) if c]
    frame = read_table(source, wanted, all_columns=True)
    others = [c for c in frame.columns if c not in wanted]
    return pd.DataFrame({"id": frame[id_col].astype(str).str.strip() if id_col else None,
                         "text": frame[text_col], "label": frame[label_col] if label_col else None,
                         "extra": frame[others].to_dict("records") if others else [{}] * len(frame)})


def check_rows(rows: pd.DataFrame, labels: list[str], source) -> tuple[list[str | None], list[str | None]]:
    """Texts checked, labels checked against the project's; returns (ids, labels) as lists."""
    texts = rows["text"].tolist()
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ProjectError(f"{source}: row {bad[0] + 1} has an empty or missing text ({len(bad)} such rows); "
                           "remove them and import again")
    ids = rows["id"].tolist()
    if ids[0] is not None:
        blank = [i for i, v in enumerate(ids) if not v or v == "nan"]
        if blank:
            raise ProjectError(f"{source}: row {blank[0] + 1} has no id; give every row an id")
        seen: dict[str, int] = {}
        for i, v in enumerate(ids):
            if v in seen:
                raise ProjectError(f"{source}: id {v!r} appears twice (rows {seen[v] + 1} and {i + 1}); ids must "
                                   "be unique")
            seen[v] = i
    given = [None if is_missing(v) else str(v).strip() for v in rows["label"].tolist()]
    unknown = sorted({v for v in given if v is not None and v not in labels})
    if unknown:
        raise ProjectError(f"{source}: label(s) {', '.join(map(repr, unknown[:5]))} are not among the project's "
                           f"labels ({', '.join(labels)}); fix the file or create the project with those labels")
    return ids, given


def import_rows(store: ProjectStore, source, text_col: str = "text", id_col: str | None = None,
                label_col: str | None = None, annotator: str | None = None, split: str = "train") -> dict:
    """Read, check and insert; returns ``{"imported": n, "labelled": m}``."""
    rows = rows_from_source(source, text_col, id_col, label_col, split)
    if rows.empty:
        raise ProjectError(f"{source} has no rows")
    ids, given = check_rows(rows, store.meta()["labels"], source)
    if ids[0] is None:
        start = len(store.frame())
        ids = [str(start + i) for i in range(len(rows))]
    store.add_texts(ids, rows["text"].tolist(), rows["extra"].tolist(), given, annotator)
    return {"imported": len(ids), "labelled": sum(v is not None for v in given)}


def export_rows(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` to ``path`` (CSV, TSV, JSONL or Parquet by extension), via a temporary file."""
    path = Path(path)
    fmt = output_format(path)
    tmp = path.with_name(f".{path.name}.tmp")
    write_frame(frame, tmp, fmt)
    tmp.replace(path)
    return path
