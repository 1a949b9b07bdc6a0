"""Loaders for the reference datasets and for any CSV / JSONL / DataFrame with text and label columns.

Every loader returns a :class:`TextDataset` (texts + labels + the label set), so the rest of the
package never needs to know where data came from.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from .readers import read_table
from .validation import MULTILABEL_SEPARATOR, DatasetError, check_labels, check_multilabel_y

DATA_DIR_ENV = "AGILECLS_DATA_DIR"

#: Where each reference dataset lives relative to the data folder, and where it can be fetched
#: by users who are online and have no local copy.
REFERENCE_FILES = {
    "ethos": ("ethos/Ethos_Dataset_Binary.csv",
              "https://raw.githubusercontent.com/intelligence-csd-auth-gr/Ethos-Hate-Speech-Dataset/"
              "master/ethos/ethos_data/Ethos_Dataset_Binary.csv"),
    "ethos_multilabel": ("ethos/Ethos_Dataset_Multi_Label.csv",
                         "https://raw.githubusercontent.com/intelligence-csd-auth-gr/Ethos-Hate-Speech-Dataset/"
                         "master/ethos/ethos_data/Ethos_Dataset_Multi_Label.csv"),
    "clinc150": ("clinc150/data_full.json",
                 "https://raw.githubusercontent.com/clinc/oos-eval/master/data/data_full.json"),
    "tweets": ("mascorpus_tweets_marketing/tweets_marketing.csv",
               "https://raw.githubusercontent.com/santiagxf/M72109/master/NLP/Datasets/mascorpus/"
               "tweets_marketing.csv"),
    "lit_prompts": ("lit_prompt_examples/prompt_examples.jsonl",
                    "https://raw.githubusercontent.com/PAIR-code/lit/main/lit_nlp/examples/"
                    "prompt_debugging/prompt_examples.jsonl"),
}

#: ETHOS labels as in the seed notebook: "Negative" marks hateful comments.
ETHOS_LABELS = ["Negative", "Positive"]

ETHOS_INSTRUCTIONS = ("Classify the following comment as Negative if it is hate speech and Positive if it is not, "
                      "into one of the following classes")

#: ETHOS multi-label: the file's eight label columns (annotator-agreement fractions), binarised at
#: this threshold, and the seed of its 80/20 split.
ETHOS_MULTILABEL_LABELS = ["violence", "directed_vs_generalized", "gender", "race", "national_origin",
                           "disability", "religion", "sexual_orientation"]
ETHOS_MULTILABEL_THRESHOLD = 0.5
ETHOS_MULTILABEL_SEED = 42

#: Short on purpose: with multi-label prompts every label's prompt repeats it (the tuned layers run
#: over it once per text and label).
ETHOS_MULTILABEL_INSTRUCTIONS = "Does this hateful comment fit the label? Answer with one of the following words"


#: The tutorial's names for the seven SECTOR classes of the marketing tweets.
TWEET_SECTOR_NAMES = {
    "ALIMENTACION": "alimentos",
    "AUTOMOCION": "automobiles",
    "BANCA": "bancos",
    "BEBIDAS": "bebidas",
    "DEPORTES": "deportes",
    "RETAIL": "supermercados",
    "TELCO": "telefonía",
}


@dataclass
class TextDataset:
    """Texts with their labels; ``labels`` fixes the class order used everywhere downstream.

    Attributes
    ----------
    texts, y : list of str
    labels : list of str
    name : str, default="data"
    meta : dict
        What the source says about the task, e.g. ``instructions`` and ``positive_label``.

    Examples
    --------
    >>> TextDataset(["good", "bad"], ["pos", "neg"], ["neg", "pos"]).head(1).texts
    ['good']
    """

    texts: list[str]
    y: list[str]
    labels: list[str]
    name: str = "data"
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int) -> TextDataset:
        return TextDataset(self.texts[:n], self.y[:n], self.labels, f"{self.name}[:{n}]", dict(self.meta))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"text": self.texts, "label": self.y})


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The reference-data folder: the argument, else ``$AGILECLS_DATA_DIR``, else ``../shared/data``."""
    if path is not None:
        return Path(path)
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    for candidate in (Path.cwd() / "../shared/data", Path(__file__).resolve().parents[2] / "../shared/data"):
        if candidate.is_dir():
            return candidate.resolve()
    return Path.home() / ".cache" / "agilecls" / "data"


def reference_path(name: str, root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Local path of a reference file; downloads it into the data folder when missing and allowed."""
    relative, url = REFERENCE_FILES[name]
    path = data_dir(root) / relative
    if path.exists():
        return path
    if not download:
        raise DatasetError(f"{path} not found; set {DATA_DIR_ENV} to the folder holding {relative}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    try:
        urllib.request.urlretrieve(url, tmp)
    except OSError as err:
        raise DatasetError(
            f"{path} not found and {url} could not be downloaded ({err}). "
            f"Set {DATA_DIR_ENV} to a folder holding {relative}."
        ) from err
    tmp.replace(path)
    return path


def load_ethos(split: str = "test", root=None) -> TextDataset:
    """ETHOS binary with the seed's split: hateful = isHate >= median, shuffle(random_state=32), 800/198."""
    df = pd.read_csv(reference_path("ethos", root), delimiter=";")
    df["hateful"] = (df["isHate"] >= df["isHate"].median()).astype(int)
    df = df.sample(frac=1, random_state=32)
    parts = {"train": df[:800], "test": df[800:], "all": df}
    if split not in parts:
        raise DatasetError(f"unknown ETHOS split {split!r}; use one of {sorted(parts)}")
    part = parts[split]
    y = ["Negative" if h else "Positive" for h in part["hateful"]]
    return TextDataset(part["comment"].astype(str).tolist(), y, list(ETHOS_LABELS), f"ethos-{split}",
                       {"positive_label": "Negative", "instructions": ETHOS_INSTRUCTIONS,
                        "label_meanings": {"Negative": "hateful", "Positive": "not hateful"}})


def load_clinc150(split: str = "test", root=None, include_oos: bool = True) -> TextDataset:
    """CLINC150: ``split`` in train/val/test; with ``include_oos`` the split's out-of-scope rows
    (intent ``oos``) are appended. ``labels`` lists the 150 in-scope intents only."""
    with open(reference_path("clinc150", root), encoding="utf-8") as f:
        full = json.load(f)
    if split not in ("train", "val", "test"):
        raise DatasetError(f"unknown CLINC150 split {split!r}; use train, val or test")
    rows = list(full[split]) + (list(full[f"oos_{split}"]) if include_oos else [])
    labels = sorted({intent for _, intent in full["train"]})
    return TextDataset([t for t, _ in rows], [i for _, i in rows], labels, f"clinc150-{split}",
                       {"oos_label": "oos"})


def load_tweets(split: str = "test", root=None, test_size: float = 0.33, seed: int = 42) -> TextDataset:
    """Spanish marketing tweets, SECTOR mapped to the tutorial's class names, stratified 67/33 split."""
    df = pd.read_csv(reference_path("tweets", root))
    df = df.dropna(subset=["TEXTO", "SECTOR"])
    df["label"] = df["SECTOR"].map(TWEET_SECTOR_NAMES)
    train, test = train_test_split(df, test_size=test_size, stratify=df["label"], random_state=seed)
    parts = {"train": train, "test": test, "all": df}
    if split not in parts:
        raise DatasetError(f"unknown tweets split {split!r}; use one of {sorted(parts)}")
    part = parts[split]
    return TextDataset(part["TEXTO"].astype(str).tolist(), part["label"].tolist(),
                       sorted(TWEET_SECTOR_NAMES.values()), f"tweets-{split}",
                       {"instructions": "Clasifica el siguiente tweet según el sector de la marca que menciona, "
                                        "en una de las siguientes clases"})


def load_lit_prompts(root=None) -> list[dict]:
    """LIT's sample prompts: dicts with ``source``, ``prompt`` and ``target``."""
    with open(reference_path("lit_prompts", root), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_ethos_multilabel(split: str = "test", root=None) -> TextDataset:
    """ETHOS multi-label: 433 hateful comments, 8 labels, as a multi-label :class:`TextDataset`.

    Each label column of ``Ethos_Dataset_Multi_Label.csv`` holds the fraction of annotators who gave
    the label; a comment has the label when the fraction is at least 0.5
    (``ETHOS_MULTILABEL_THRESHOLD``). ``directed_vs_generalized`` = 1 means the comment targets one
    person, 0 that it attacks a group. Split: ``sklearn.model_selection.train_test_split(rows,
    test_size=0.2, random_state=42)`` (``ETHOS_MULTILABEL_SEED``; shuffled, not stratified) gives 346
    training and 87 test comments. ``y`` holds each comment's tuple of label names (some have none);
    ``meta["multilabel"]`` is True.
    """
    df = pd.read_csv(reference_path("ethos_multilabel", root), delimiter=";")
    Y = (df[ETHOS_MULTILABEL_LABELS].to_numpy(dtype=np.float64) >= ETHOS_MULTILABEL_THRESHOLD).astype(int)
    train, test = train_test_split(np.arange(len(df)), test_size=0.2, random_state=ETHOS_MULTILABEL_SEED)
    parts = {"train": train, "test": test, "all": np.arange(len(df))}
    if split not in parts:
        raise DatasetError(f"unknown ETHOS multi-label split {split!r}; use one of {sorted(parts)}")
    rows = parts[split]
    return TextDataset(df["comment"].astype(str).iloc[rows].tolist(),
                       indicator_to_lists(Y[rows], ETHOS_MULTILABEL_LABELS),
                       list(ETHOS_MULTILABEL_LABELS), f"ethos_multilabel-{split}",
                       {"multilabel": True, "instructions": ETHOS_MULTILABEL_INSTRUCTIONS,
                        "label_meanings": {"directed_vs_generalized": "targets one person"}})


def indicator_to_lists(Y, labels: Sequence[str]) -> list[tuple[str, ...]]:
    """Each row of a 0/1 matrix as the tuple of its label names."""
    return [tuple(label for label, v in zip(labels, row, strict=True) if v) for row in np.asarray(Y)]


def parse_label_cell(value, row: int) -> list[str]:
    """One cell of a multi-label column: a JSON list, names joined by ``|``, a list (JSONL, Parquet),
    or blank for no label."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).strip() for v in value if str(v).strip()]
    if value is None or (isinstance(value, float) and value != value) or not str(value).strip():
        return []
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as err:
            raise DatasetError(f"row {row}: {text[:60]!r} is not a valid JSON list ({err.msg}); write it as "
                               f"[\"a\", \"b\"] or as a|b") from None
        if not isinstance(parsed, list) or not all(isinstance(v, str) for v in parsed):
            raise DatasetError(f"row {row}: {text[:60]!r} must be a JSON list of label names")
        return [v.strip() for v in parsed if v.strip()]
    return [part.strip() for part in text.split(MULTILABEL_SEPARATOR) if part.strip()]


def multilabel_from_frame(df: pd.DataFrame, text_col: str = "text", label_col: str | None = "labels",
                          label_columns: Sequence[str] | None = None, labels: Sequence[str] | None = None,
                          name: str = "data") -> TextDataset:
    """A multi-label dataset from a DataFrame: one label column of label lists (a JSON list such
    as ``["a", "b"]``, or ``a|b``; blank for none), or ``label_columns``, one 0/1 column per label."""
    columns = [text_col] + (list(label_columns) if label_columns else [label_col])
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DatasetError(f"column(s) {missing} not found; the columns are {list(df.columns)}")
    try:
        if label_columns:
            values = df[list(label_columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
            Y, labels = check_multilabel_y(values, list(label_columns))
        else:
            Y, labels = check_multilabel_y([parse_label_cell(v, i) for i, v in enumerate(df[label_col].tolist())],
                                           labels)
    except ValueError as err:
        raise DatasetError(f"{name}: {err}") from None
    return TextDataset(df[text_col].tolist(), indicator_to_lists(Y, labels), labels, name, {"multilabel": True})


REFERENCE_LOADERS = {"ethos": load_ethos, "ethos_multilabel": load_ethos_multilabel, "clinc150": load_clinc150,
                     "tweets": load_tweets}


def from_frame(df: pd.DataFrame, text_col: str = "text", label_col: str | None = "label",
               labels: Sequence[str] | None = None, name: str = "data") -> TextDataset:
    """Any DataFrame with named text and label columns (``label_col=None`` for unlabelled text).

    Blank or missing labels, and labels outside ``labels``, are refused naming the row."""
    for col in (text_col, label_col):
        if col is not None and col not in df.columns:
            raise DatasetError(f"column {col!r} not found; the columns are {list(df.columns)}")
    texts = df[text_col].tolist()
    y: list[str] = []
    if label_col is not None:
        try:
            y, _ = check_labels(df[label_col].tolist(), None, row_name="row {}")
        except ValueError as err:
            raise DatasetError(f"{name}: column {label_col!r}: {err}") from err
    labels = sorted(set(y)) if labels is None else [str(label) for label in labels]
    unknown = sorted(set(y) - set(labels))
    if unknown:
        raise DatasetError(f"{name}: labels {unknown[:10]} in column {label_col!r} are not among {labels}")
    return TextDataset(texts, y, labels, name)


def load_file(path: str | os.PathLike, text_col: str = "text", label_col: str | None = "label",
              labels: Sequence[str] | None = None) -> TextDataset:
    """A CSV, TSV, JSON, JSONL or Parquet file with named columns, read by
    :func:`agilecls.readers.read_table` (encoding, delimiter and field sizes checked)."""
    path = Path(path)
    columns = [text_col] + ([label_col] if label_col is not None else [])
    return from_frame(read_table(path, columns), text_col, label_col, labels, name=path.stem)


def load_dataset(source: str, split: str = "test", text_col: str = "text", label_col: str | None = "label",
                 labels: Sequence[str] | None = None, root=None, multilabel: bool = False,
                 label_columns: Sequence[str] | None = None) -> TextDataset:
    """A reference dataset by name, or a labelled file.

    Parameters
    ----------
    source : str
        ``"ethos"``, ``"clinc150"`` or ``"tweets"`` (``"name:split"`` also works; read from
        ``../shared/data`` or ``$AGILECLS_DATA_DIR``), or a CSV / TSV / JSONL / Parquet file.
    split : str, default="test"
        Split of a reference dataset (``"train"``, ``"test"``; CLINC150 also ``"val"``).
    text_col, label_col : str, default="text", "label"
        Columns of a file; ``label_col=None`` reads unlabelled texts.
    labels : list of str or None, default=None
        The class order (default: sorted labels found).
    root : str or None, default=None
        Folder of the reference datasets.
    multilabel : bool, default=False
        Read a file's ``label_col`` as label lists (see :func:`multilabel_from_frame`);
        ``"ethos_multilabel"`` is always multi-label.
    label_columns : list of str or None, default=None
        Multi-label file with one 0/1 column per label (implies ``multilabel``).

    Returns
    -------
    TextDataset
        ``texts``, ``y``, ``labels``, ``name`` and ``meta`` (e.g. the task's instructions).

    Examples
    --------
    >>> from agilecls import load_dataset
    >>> test = load_dataset("ethos", "test")  # doctest: +SKIP
    >>> len(test), test.labels  # doctest: +SKIP
    (198, ['Negative', 'Positive'])
    """
    name, _, named_split = source.partition(":")
    if name in REFERENCE_LOADERS and not Path(source).exists():
        return REFERENCE_LOADERS[name](split=named_split or split, root=root)
    if multilabel or label_columns:
        path = Path(source)
        frame = read_table(path, [text_col] + (list(label_columns) if label_columns else [label_col]))
        return multilabel_from_frame(frame, text_col, label_col, label_columns, labels, name=path.stem)
    return load_file(source, text_col, label_col, labels)


def stratified_sample(y: Sequence[str], per_class: int, seed: int = 0) -> list[int]:
    """Indices of ``per_class`` seeded random rows of each class (fewer when a class is small)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    picked: list[int] = []
    for label in dict.fromkeys(y.tolist()):
        rows = np.flatnonzero(y == label)
        picked.extend(rng.choice(rows, size=min(per_class, len(rows)), replace=False).tolist())
    return picked
