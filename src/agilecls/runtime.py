"""Where agilecls keeps files and where its models run: one cache folder, one device and dtype picker.

Every workflow asks these functions, so ``$AGILECLS_CACHE`` moves all caches (converted GGUF
models, reassembled encoders, embeddings) at once, and ``device="auto"`` means the same everywhere.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import torch

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


@functools.lru_cache(maxsize=None)
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
