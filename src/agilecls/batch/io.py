"""Reading texts in chunks and writing predictions chunk by chunk, for CSV, TSV, JSONL and Parquet.

Memory stays bounded by the chunk size whatever the file size: pandas' chunked CSV / JSONL readers
and pyarrow's Parquet batches. The format comes from the file extension.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd

from ..datasets import DatasetError

#: Extensions read and written, by format.
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def file_format(path: str | os.PathLike) -> str:
    """``csv``, ``tsv``, ``jsonl`` or ``parquet`` from the extension; a clear error otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DatasetError(f"{path}: unsupported file type {suffix or '(none)'!r}; use one of "
                           f"{', '.join(sorted(FORMATS))}")
    return FORMATS[suffix]


def count_rows(path: str | os.PathLike) -> int | None:
    """Rows in the file, when cheap to know (Parquet metadata; line count for JSONL; None for CSV,
    whose quoted fields may span lines)."""
    fmt = file_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq  # pyarrow loads only for Parquet files

        return pq.ParquetFile(path).metadata.num_rows
    if fmt == "jsonl":
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    return None


def iter_chunks(path: str | os.PathLike, chunk_size: int, columns: Sequence[str]) -> Iterator[pd.DataFrame]:
    """DataFrames of at most ``chunk_size`` rows holding ``columns``. The file and its columns are
    checked when this is called, before any chunk is read (a missing column is refused naming the
    columns that exist)."""
    check_columns(path, columns)
    return _chunks(Path(path), chunk_size, list(dict.fromkeys(columns)))


def _chunks(path: Path, chunk_size: int, columns: list[str]) -> Iterator[pd.DataFrame]:
    fmt = file_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq  # pyarrow loads only for Parquet files

        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size, columns=columns):
            yield batch.to_pandas()
        return
    if fmt == "jsonl":
        reader = pd.read_json(path, lines=True, chunksize=chunk_size, dtype=False)
    else:
        reader = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", chunksize=chunk_size, dtype=str,
                             keep_default_na=False)
    with reader:
        for chunk in reader:
            yield chunk[columns]


def check_columns(path: str | os.PathLike, columns: Sequence[str]) -> None:
    """Refuse, before any work, a file that lacks one of ``columns`` (reads only its head)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} is not a file")
    fmt = file_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq  # pyarrow loads only for Parquet files

        found = pq.ParquetFile(path).schema_arrow.names
    elif fmt == "jsonl":
        found = list(pd.read_json(path, lines=True, nrows=1, dtype=False).columns)
    else:
        found = list(pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", nrows=0).columns)
    _check_columns(path, columns, found)


def _check_columns(path: Path, wanted: Sequence[str], found: Sequence[str]) -> None:
    missing = [c for c in wanted if c not in found]
    if missing:
        raise DatasetError(f"{path}: no column {missing[0]!r}; the columns are {list(found)}")


def write_frame(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    """Write one chunk's predictions as a whole file of ``fmt``."""
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")


def concatenate(parts: Sequence[Path], out: Path, fmt: str) -> None:
    """Join chunk files into ``out``, streaming: one part in memory at a time."""
    if fmt == "parquet":
        import pyarrow.parquet as pq  # pyarrow loads only for Parquet files

        writer = None
        try:
            for part in parts:
                table = pq.read_table(part)
                if writer is None:
                    writer = pq.ParquetWriter(out, table.schema)
                writer.write_table(table.cast(writer.schema))
        finally:
            if writer is not None:
                writer.close()
        return
    with open(out, "wb") as dst:
        for i, part in enumerate(parts):
            with open(part, "rb") as src:
                if fmt in ("csv", "tsv") and i > 0:
                    src.readline()  # the header is written once
                while block := src.read(1 << 20):
                    dst.write(block)
