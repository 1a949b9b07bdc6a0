"""Where agilecls keeps files and where its models run: one cache folder, one device and dtype picker.

Every workflow asks these functions, so ``$AGILECLS_CACHE`` moves all caches (converted GGUF
models, reassembled encoders, embeddings) at once, and ``device="auto"`` means the same everywhere.
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

import torch

from .atomic import atomic_write_text

#: Environment variable that moves every agilecls cache.
CACHE_ENV = "AGILECLS_CACHE"


def cache_dir(*parts: str) -> Path:
    """The cache folder ``$AGILECLS_CACHE`` (default ``~/.cache/agilecls``), joined with ``parts``.

    Examples
    --------
    >>> cache_dir("embeddings").name
    'embeddings'
    """
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "agilecls")
    return root.joinpath(*parts)


def pick_device(device: str | torch.device | None = "auto") -> str:
    """The device to run on: ``"auto"`` (or None) is CUDA when present, else the CPU; anything else
    is returned as given (``"cpu"``, ``"cuda:1"``, ...).

    Examples
    --------
    >>> pick_device("cpu")
    'cpu'
    """
    if device is None or str(device) == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


@functools.cache
def pick_dtype(device_type: str) -> torch.dtype:
    """fp32 unless bf16 is clearly faster on this device (CPUs without bf16 units are 3-700x slower;
    with AVX512-BF16 about 2x faster). The best of five timings each, and a 1.5x margin, keep a
    busy machine from flipping the choice between runs. CUDA: bf16 where supported."""
    if device_type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32

    def best_seconds(dtype: torch.dtype) -> float:
        a = torch.randn(256, 512, dtype=dtype)
        b = torch.randn(512, 512, dtype=dtype)
        a @ b
        timings = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(4):
                a @ b
            timings.append(time.perf_counter() - start)
        return min(timings)

    fp32, bf16 = best_seconds(torch.float32), best_seconds(torch.bfloat16)
    return torch.bfloat16 if 1.5 * bf16 < fp32 else torch.float32


#: Measured choices (name -> value) of this process; also kept on disk per machine.
_CHOICES: dict[str, object] = {}


def machine_key(device: str = "cpu") -> str:
    """What a measured choice depends on: the CPU model (or GPU name) and the threads in use."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    model = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu:{model}:{torch.get_num_threads()} threads"


def measured_choice(name: str, candidates, rate, margin: float = 1.15, device: str = "cpu"):
    """The candidate whose measured ``rate(candidate)`` (items per second) is best, where a later
    (larger) candidate must beat the choice so far by ``margin`` (noise does not flip it). Measured
    once per machine: kept in this process and in ``$AGILECLS_CACHE/measured.json`` under
    :func:`machine_key` and ``name``. Returns ``(value, rates)``; rates is {} when remembered."""
    key = f"{machine_key(device)}|{name}"
    if key in _CHOICES:
        return _CHOICES[key], {}
    file = cache_dir("measured.json")
    try:
        known = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if key in known and known[key] in list(candidates):
        _CHOICES[key] = known[key]
        return known[key], {}
    rates = {c: float(rate(c)) for c in candidates}
    choice = candidates[0]
    for candidate in candidates[1:]:
        if rates[candidate] >= margin * rates[choice]:
            choice = candidate
    _CHOICES[key] = choice
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(file, json.dumps({**known, key: choice}, indent=1))
    except OSError:  # a read-only cache only costs a measurement per process
        pass
    return choice, rates
