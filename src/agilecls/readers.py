"""The one way files of texts come in, for every command and the Python API.

A file is read, whole or in chunks, only after three checks that turn every bad file into a
:class:`~agilecls.validation.DatasetError` naming the file and what to do:

- **format** from the extension (``.csv``, ``.tsv``, ``.jsonl``/``.ndjson``, ``.json``,
  ``.parquet``, ``.txt`` one text per line). A ``.csv`` is comma-separated; only when its header
  lacks the wanted columns is the delimiter sniffed among ``; | TAB``, and the sniffed one is kept
  only if its header has every wanted column (so a one-column file is never split on a letter).
- **encoding**: UTF-8 (a byte-order mark is allowed) or UTF-16 with a byte-order mark. Anything
  else, binary bytes included, is refused with "re-save it as UTF-8" rather than guessed: a wrong
  guess (latin-1 for cp1252, say) would silently change the texts a model learns from.
- **size**: a field of a wanted column over ``max_chars`` characters is refused (models read at
  most a few thousand tokens; a 5 MB field is a broken file, not a text).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd
import pyarrow

from .validation import DatasetError

#: Formats by extension.
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
           ".parquet": "parquet", ".txt": "lines", ".text": "lines"}

#: Longest field accepted in a wanted column, in characters.
MAX_FIELD_CHARS = 100_000

#: Delimiters tried, in order, when a ``.csv`` header lacks the wanted columns.
FALLBACK_DELIMITERS = ";|\t"

_HEAD_BYTES = 1 << 16


def file_format(path: str | os.PathLike, formats: dict[str, str] = FORMATS) -> str:
    """The format of ``path`` from its extension (a clear error for any other extension).

    Examples
    --------
    >>> file_format("comments.TSV")
    'tsv'
    """
    suffix = Path(path).suffix.lower()
    if suffix not in formats:
        raise DatasetError(f"{path}: unsupported file type {suffix or '(no extension)'!r}; use one of "
                           f"{', '.join(sorted(formats))}")
    return formats[suffix]


def check_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    if not path.is_file():
        raise DatasetError(f"{path} is not a file")
    return path


def text_encoding(path: str | os.PathLike) -> str:
    """``utf-8``, ``utf-8-sig`` or ``utf-16`` from the byte-order mark; refuses a file that is empty,
    a folder, missing, or binary (a NUL byte without a UTF-16 mark)."""
    path = check_file(path)
    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
    if not head.strip():
        raise DatasetError(f"{path} is empty")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        raise DatasetError(f"{path} holds binary data (NUL bytes), not text; export it as UTF-8 CSV, JSONL or "
                           f"Parquet")
    return "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"


def decode_error(path: str | os.PathLike, err: UnicodeError) -> DatasetError:
    where = f" at byte {err.start}" if isinstance(err, UnicodeDecodeError) else ""
    return DatasetError(f"{path} is not UTF-8 text (undecodable bytes{where}); re-save it as UTF-8 "
                        f"(e.g. 'Save as CSV UTF-8' in a spreadsheet)")


def non_blank_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def read_lines(path: str | os.PathLike, max_chars: int = MAX_FIELD_CHARS) -> list[str]:
    """The non-blank lines of a text file, one text per line."""
    lines = non_blank_lines(read_text_file(path))
    check_sizes(path, pd.DataFrame({"text": lines}), ["text"], max_chars)
    return lines


def csv_dialect(path: str | os.PathLike, columns: Sequence[str] = ()) -> tuple[str, str, list[str]]:
    """(delimiter, encoding, column names) of a CSV/TSV file, from one read of its header line. The
    delimiter comes from the extension, or for a ``.csv`` whose header lacks ``columns``, is the
    first of ``; | TAB`` whose header has them all (else still ``,``)."""
    encoding = text_encoding(path)
    try:
        with open(path, encoding=encoding, newline="") as f:
            header_line = f.readline()
    except UnicodeError as err:
        raise decode_error(path, err) from err
    delimiter = "\t" if file_format(path) == "tsv" else _csv_delimiter(header_line, columns)
    return delimiter, encoding, _split_header(header_line, delimiter)


def _csv_delimiter(header_line: str, columns: Sequence[str]) -> str:
    wanted = set(columns)
    if not wanted or wanted <= set(_split_header(header_line, ",")):
        return ","
    for delimiter in FALLBACK_DELIMITERS:
        if delimiter in header_line and wanted <= set(_split_header(header_line, delimiter)):
            return delimiter
    return ","


def _split_header(line: str, delimiter: str) -> list[str]:
    rows = list(csv.reader([line.rstrip("\r\n")], delimiter=delimiter))
    return [name.strip() for name in rows[0]] if rows else []


def header(path: str | os.PathLike, columns: Sequence[str] = ()) -> list[str]:
    """The column names of a file, reading only its head (``text`` for a text-per-line file)."""
    try:
        return _header(path, columns)
    except UnicodeError as err:
        raise decode_error(path, err) from err


def _header(path: str | os.PathLike, columns: Sequence[str]) -> list[str]:
    fmt = file_format(check_file(path))
    if fmt == "lines":
        text_encoding(path)
        return ["text"]
    if fmt == "parquet":
        return _parquet(path).schema_arrow.names
    if fmt == "json":
        return list(_json_frame(path).columns)
    if fmt == "jsonl":
        for chunk in _jsonl_chunks(path, 1):
            return list(chunk.columns)
        raise DatasetError(f"{path} has no records")
    return csv_dialect(path, columns)[2]


def check_columns(path: str | os.PathLike, columns: Sequence[str]) -> None:
    """Refuse, before any work, a file that lacks one of ``columns`` (names the columns it has)."""
    found = header(path, columns)
    missing = [c for c in columns if c not in found]
    if missing:
        raise DatasetError(f"{path}: no column {missing[0]!r}; the columns are {found}")


def check_sizes(path, frame: pd.DataFrame, columns: Sequence[str], max_chars: int, first_row: int = 0) -> None:
    for col in columns:
        lengths = frame[col].map(lambda v: len(v) if isinstance(v, str) else 0)
        if len(lengths) and lengths.max() > max_chars:
            row = int(lengths.to_numpy().argmax()) + first_row
            raise DatasetError(f"{path}: row {row} has a {int(lengths.max()):,}-character {col!r} field, over the "
                               f"limit of {max_chars:,}; split or shorten it")


def read_table(path: str | os.PathLike, columns: Sequence[str] = (), max_chars: int = MAX_FIELD_CHARS,
               all_columns: bool = False) -> pd.DataFrame:
    """The whole file as a DataFrame (CSV/TSV cells as strings, blank cells as ``""``), after
    checking that it has ``columns`` and that none of their fields is over ``max_chars``; only
    those columns unless ``all_columns``."""
    chunks = list(iter_table(path, columns, chunk_size=None, max_chars=max_chars, all_columns=all_columns))
    frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    if not len(frame):
        raise DatasetError(f"{path} has a header but no rows")
    return frame


def iter_table(path: str | os.PathLike, columns: Sequence[str], chunk_size: int | None,
               max_chars: int = MAX_FIELD_CHARS, all_columns: bool = False) -> Iterator[pd.DataFrame]:
    """DataFrames of at most ``chunk_size`` rows (None: the whole file in one). The file, its
    encoding and its columns are checked when this is called, before any chunk is read; an error
    found later (a broken line, a long field) names the row."""
    path = Path(path)
    columns = list(dict.fromkeys(columns))
    if columns:
        check_columns(path, columns)
    else:
        header(path)  # format, encoding and emptiness checked now
    return _checked(path, _chunks(path, columns, chunk_size, all_columns), columns, max_chars)


def _checked(path: Path, chunks: Iterator[pd.DataFrame], columns, max_chars) -> Iterator[pd.DataFrame]:
    first_row = 0
    try:
        for chunk in chunks:
            for col in columns:  # JSON records may leave a field out: a missing value, flagged per row later
                if col not in chunk.columns:
                    chunk[col] = None
            check_sizes(path, chunk, columns, max_chars, first_row)
            first_row += len(chunk)
            yield chunk
    except UnicodeError as err:
        raise decode_error(path, err) from err
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as err:
        raise DatasetError(f"{path} is not a valid {file_format(path).upper()} file near row {first_row}: "
                           f"{str(err).strip().splitlines()[-1]}") from err


def _chunks(path: Path, columns: list[str], chunk_size: int | None, all_columns: bool = False
            ) -> Iterator[pd.DataFrame]:
    fmt = file_format(path)
    usecols = None if all_columns else (columns or None)
    if fmt == "parquet":
        parquet = _parquet(path)
        for batch in parquet.iter_batches(batch_size=chunk_size or 65_536, columns=usecols):
            yield batch.to_pandas()
        return
    if fmt == "lines":
        yield pd.DataFrame({"text": read_lines(path, max_chars=1 << 62)})
        return
    if fmt == "jsonl":
        yield from _jsonl_chunks(path, chunk_size)
        return
    if fmt == "json":
        yield _json_frame(path)
        return
    delimiter, encoding, _ = csv_dialect(path, columns)
    reader = pd.read_csv(path, sep=delimiter, encoding=encoding, dtype=str, keep_default_na=False,
                         chunksize=chunk_size, usecols=usecols, engine="c")
    if chunk_size is None:
        yield reader
        return
    with reader:
        yield from reader


def _parquet(path):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pyarrow.ArrowException, OSError) as err:
        raise DatasetError(f"{path} is not a readable Parquet file ({err})") from err


def _jsonl_chunks(path: Path, chunk_size: int | None) -> Iterator[pd.DataFrame]:
    """JSON Lines read line by line, so an error names its line; blank lines are skipped."""
    rows: list[dict] = []
    with open(path, encoding=text_encoding(path)) as f:
        for n, row in json_lines(f, f"{path}: "):
            if not isinstance(row, dict):
                raise DatasetError(f"{path}: line {n} is a JSON {type(row).__name__}, not an object with named "
                                   f"fields")
            rows.append(row)
            if chunk_size and len(rows) == chunk_size:
                yield pd.DataFrame.from_records(rows)
                rows = []
    if rows or not chunk_size:
        yield pd.DataFrame.from_records(rows)


def json_lines(lines: Iterable[str], where: str = "") -> Iterator[tuple[int, object]]:
    """(line number, value) of each non-blank line of JSON Lines; a broken line is refused naming it
    (``where`` prefixes the message, e.g. the file)."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetError(f"{where}line {n} is not valid JSON ({err.msg}); fix or remove it") from err
        yield n, value


def _json_frame(path: Path) -> pd.DataFrame:
    try:
        data = json.loads(read_text_file(path))
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path} is not valid JSON (line {err.lineno}: {err.msg})") from err
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        return pd.DataFrame.from_records(data)
    if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
        try:
            return pd.DataFrame(data)
        except ValueError as err:
            raise DatasetError(f"{path}: the columns have different lengths ({err})") from err
    raise DatasetError(f"{path} must hold a list of records or an object of equal-length column lists; "
                       f"for one record per line use .jsonl")


def count_rows(path: str | os.PathLike) -> int | None:
    """Rows in the file, when cheap to know (Parquet metadata; non-blank lines of JSONL and text
    files; None for CSV, whose quoted fields may span lines)."""
    fmt = file_format(path)
    if fmt == "parquet":
        return _parquet(path).metadata.num_rows
    if fmt in ("jsonl", "lines"):
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    return None


def read_texts(path: str | os.PathLike, text_col: str = "text", max_chars: int = MAX_FIELD_CHARS) -> list[str]:
    """The texts of a file: its lines (``.txt`` or no known extension) or its ``text_col``."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS or FORMATS[suffix] == "lines":
        return read_lines(path, max_chars)
    frame = read_table(path, [text_col], max_chars)
    return [v if isinstance(v, str) else ("" if v is None or v != v else str(v)) for v in frame[text_col]]


def read_text_stream(stream: io.TextIOBase) -> list[str]:
    """Non-blank lines of a text stream (standard input)."""
    return non_blank_lines(stream.read())


def parse_prompt_records(text: str) -> list[dict]:
    """``prompt``/``target`` records from JSON Lines; ``source`` names a record (default: its line).

    Examples
    --------
    >>> parse_prompt_records('{"prompt": "Hi", "target": " there"}')
    [{'source': 'line 1', 'prompt': 'Hi', 'target': ' there'}]
    """
    records = []
    for n, row in json_lines(text.splitlines()):
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise DatasetError(f"line {n} needs a string field 'prompt'")
        records.append({"source": str(row.get("source") or f"line {n}"), "prompt": row["prompt"],
                        "target": str(row.get("target") or "")})
    return records


def read_text_file(path: str | os.PathLike) -> str:
    """The whole of a UTF-8 (or UTF-16 with a byte-order mark) text file."""
    try:
        return Path(path).read_text(encoding=text_encoding(path))
    except UnicodeError as err:
        raise decode_error(path, err) from err
