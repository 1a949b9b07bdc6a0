"""Writing predictions chunk by chunk as CSV, TSV, JSONL or Parquet, and joining the chunks.

Files are read by :mod:`agilecls.readers` (the one reading path of every command); this module
only writes. The output format comes from the file extension.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..readers import file_format

#: Extensions written, by format.
OUTPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def output_format(path: str | os.PathLike) -> str:
    """``csv``, ``tsv``, ``jsonl`` or ``parquet`` from the extension of an output file."""
    return file_format(path, OUTPUT_FORMATS)


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
        import pyarrow.parquet as pq

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
