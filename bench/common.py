"""Helpers shared by the benchmark scripts: the machine's facts and the one results writer.

Every script writes its JSON through :func:`write_results`, so each result file says how it was
made (the command line, when, and on what: CPU model and flags, threads, the dtype agilecls picks,
the GPU, library versions) and a run that is stopped halfway never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch

from agilecls.atomic import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"
#: Top-level keys write_results adds to every file; payloads may not use them.
META_KEYS = ("command", "written_at", "machine")
#: /proc/cpuinfo flags that decide how fast fp32 / bf16 run on a CPU (every ``amx*`` flag too).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni")
#: Distributions whose versions are recorded.
PACKAGES = ("torch", "transformers", "peft", "sentence-transformers", "scikit-learn", "numpy", "agilecls")


def _cpuinfo() -> tuple[str | None, list[str] | None]:
    """CPU model name and the relevant flags present, from /proc/cpuinfo (None where unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None, None
    model, flags = None, None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and flags is None:  # x86 / ARM
            flags = value.split()
        if model is not None and flags is not None:
            break
    if flags is not None:
        flags = sorted(f for f in set(flags) if f in CPU_FLAGS or f.startswith("amx"))
    return model, flags


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _picked_dtype(device: str | None) -> tuple[str, str | None]:
    """The device a benchmark runs on (default: agilecls's ``"auto"``) and the dtype
    ``agilecls.runtime.pick_dtype`` chooses there (cached per process, so usually already known)."""
    try:
        from agilecls.runtime import pick_device, pick_dtype

        device = pick_device(device or "auto")
        return device, str(pick_dtype(torch.device(device).type))
    except Exception as exc:  # never lose a result over a fact about the machine
        return str(device), f"unknown ({type(exc).__name__}: {exc})"


def machine(device: str | None = None) -> dict:
    """Facts about this machine and process that decide a benchmark's numbers."""
    model, flags = _cpuinfo()
    device, dtype = _picked_dtype(device)
    facts = {
        "cpu_model": model or platform.processor() or platform.machine(),
        "cpu_flags": flags,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "dtype": dtype,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in PACKAGES},
    }
    return facts


def command_line(argv: list[str] | None = None, module: str | None = None) -> str:
    """``python -m bench.NAME args`` for the running script (``argv`` defaults to ``sys.argv[1:]``)."""
    if module is None:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        module = spec.name if spec is not None else None
    args = list(map(str, sys.argv[1:] if argv is None else argv))
    return shlex.join(["python", "-m", module, *args] if module else ["python", sys.argv[0], *args])


def _caller_module(depth: int = 2) -> str | None:
    """The module name of the script that called write_results (``bench.NAME``, also under -m)."""
    g = sys._getframe(depth).f_globals
    spec = g.get("__spec__")
    name = spec.name if spec is not None else g.get("__name__")
    return name if name and name.startswith("bench.") else None


def matmul_gflops(n: int = 1024, repeats: int = 10, device: str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """The machine's matmul throughput in ``dtype`` (the model's: a bf16 model is measured against
    a bf16 ceiling, not fp32's): the ceiling a forward pass can approach."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def write_json(path: str | os.PathLike, data, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON atomically (agilecls's own atomic writer)."""
    return atomic_write_text(path, json.dumps(data, indent=indent, ensure_ascii=False, default=str))


def write_results(name: str, payload: dict, out: str | os.PathLike | None = None, *,
                  argv: list[str] | None = None, device: str | None = None, indent: int | None = 2) -> Path:
    """Write ``payload`` with the command line, a UTC timestamp and the machine's facts to
    ``out`` (default ``bench/results/<name>.json``), atomically; returns the path.

    ``argv``: the script's arguments when ``main(argv)`` was given some (default ``sys.argv[1:]``);
    ``device``: the device the benchmark ran on, for the dtype recorded (default: agilecls's auto
    choice); ``indent``: None writes compact JSON (large files)."""
    clash = [k for k in META_KEYS if k in payload]
    if clash:
        raise ValueError(f"write_results records {clash} itself; leave them out of the payload")
    data = {"command": command_line(argv, _caller_module()),
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(device), **payload}
    return write_json(Path(out) if out is not None else RESULTS / f"{name}.json", data, indent)
