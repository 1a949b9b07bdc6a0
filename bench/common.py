"""Helpers shared by the benchmark scripts: the command line, the set-up, timing, the machine's
facts and the one results writer.

Every script builds its options with :func:`bench_parser` (the common ones: ``--out``, and as the
script needs them ``--threads``, ``--seed`` / ``--seeds``, ``--resume``; ``--online`` everywhere),
applies them with :func:`setup`, times with :func:`timed` and writes its JSON through
:func:`write_results`, so each result file says how it was made (the command line, when, and on
what: CPU model and flags, threads, the dtype agilecls picks, the GPU, library versions) and a run
that is stopped halfway never leaves a half-written file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
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
    """``python -m bench.GROUP.NAME args`` for the running script (``argv`` defaults to ``sys.argv[1:]``)."""
    if module is None:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        module = spec.name if spec is not None else None
    args = list(map(str, sys.argv[1:] if argv is None else argv))
    return shlex.join(["python", "-m", module, *args] if module else ["python", sys.argv[0], *args])


def _caller_module(depth: int = 2) -> str | None:
    """The module name of the script that called write_results or bench_parser (``bench.GROUP.NAME``, also under -m)."""
    g = sys._getframe(depth).f_globals
    spec = g.get("__spec__")
    name = spec.name if spec is not None else g.get("__name__")
    return name if name and name.startswith("bench.") else None


def bench_parser(description: str, *, out: str | os.PathLike | None = None, out_help: str | None = None,
                 threads: int | None = None, seed: int | None = None, seeds: list[int] | None = None,
                 resume: bool | None = None) -> argparse.ArgumentParser:
    """The argument parser of a benchmark script, with the options every script shares.

    Parameters
    ----------
    description : str
        Shown by ``--help`` as written (the script's docstring, or its first paragraph).
    out : str or os.PathLike, optional
        Default of ``--out``, the results file (default None: the script's own default,
        ``bench/results/<name>.json`` unless ``out_help`` says otherwise).
    out_help : str, optional
        Help of ``--out`` where the generic one would be wrong.
    threads : int, optional
        Adds ``--threads`` (torch threads) with this default; None (default) adds no option.
    seed : int, optional
        Adds ``--seed`` with this default; None (default) adds no option.
    seeds : list of int, optional
        Adds ``--seeds`` (one or more seeds, each run seeds itself) with this default; None
        (default) adds no option.
    resume : bool, optional
        Adds ``--resume`` / ``--no-resume`` (keep the results already in ``--out`` and add to them,
        or start afresh) with this default; None (default) adds no option.

    Returns
    -------
    argparse.ArgumentParser
        With ``--online`` always (the scripts run offline: ``HF_HUB_OFFLINE=1`` unless the
        environment says otherwise); pass its parsed arguments to :func:`setup`.
    """
    module = _caller_module()
    parser = argparse.ArgumentParser(prog=f"python -m {module}" if module else None, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    name = module.rsplit(".", 1)[-1] if module else "<name>"
    parser.add_argument("--out", default=out, help=out_help or f"results file (default: bench/results/{name}.json)")
    if threads is not None:
        parser.add_argument("--threads", type=int, default=threads, help=f"torch threads (default: {threads})")
    if seed is not None:
        parser.add_argument("--seed", type=int, default=seed, help=f"random seed (default: {seed})")
    if seeds is not None:
        parser.add_argument("--seeds", type=int, nargs="+", default=list(seeds),
                            help=f"seeds, one run each (default: {' '.join(map(str, seeds))})")
    if resume is not None:
        parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=resume,
                            help="keep the results already in --out and add to them (--no-resume: start afresh)")
    parser.add_argument("--online", action="store_true",
                        help="let the Hugging Face hub be reached (default: offline, HF_HUB_OFFLINE=1)")
    return parser


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(args: argparse.Namespace) -> argparse.Namespace:
    """Apply the common options of :func:`bench_parser`: offline mode unless ``--online``, the
    torch threads of ``--threads`` and the seed of ``--seed`` (where the script has them).

    ``bench/__init__.py`` sets ``HF_HUB_OFFLINE=1`` (unless the environment sets it) before any
    script imports ``huggingface_hub``, which reads it once; ``--online`` undoes that here.

    Returns
    -------
    argparse.Namespace
        ``args``, unchanged.
    """
    if getattr(args, "online", False):
        os.environ["HF_HUB_OFFLINE"] = "0"
        hub = sys.modules.get("huggingface_hub.constants")
        if hub is not None:  # imported already: it read the variable at import
            hub.HF_HUB_OFFLINE = False
    else:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    if getattr(args, "seed", None) is not None:
        seed_everything(args.seed)
    return args


def load_previous(path: str | os.PathLike, args: argparse.Namespace) -> dict:
    """The results JSON at ``path`` when ``--resume`` is on and the file exists, else ``{}``."""
    path = Path(path)
    return json.loads(path.read_text()) if getattr(args, "resume", False) and path.exists() else {}


@dataclass
class Timing:
    """What :func:`timed` measured: the last call's return value and each call's seconds."""

    result: Any
    seconds: list[float]

    @property
    def best(self) -> float:
        """The fastest call's seconds."""
        return min(self.seconds)

    @property
    def median(self) -> float:
        """The median call's seconds."""
        return statistics.median(self.seconds)


def timed(fn: Callable[[], Any], repeats: int = 1) -> Timing:
    """Call ``fn()`` ``repeats`` times (default 1), timing each call with ``time.perf_counter``.

    Examples
    --------
    >>> t = timed(lambda: sum(range(1000)), repeats=3)
    >>> t.result, len(t.seconds), t.best <= t.median
    (499500, 3, True)
    """
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return Timing(result, seconds)


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
