"""Load on ``POST /v1/predict``: micro-batching on vs off, then the same load under attack.

Starts ``agilecls serve --model DIR`` as a subprocess on loopback (so the load generator does
not share the server's GIL), once per mode, and sends ``--clients`` concurrent clients ×
``--requests`` requests of 1–8 ETHOS test texts each. Reports errors, p50/p95/p99 latency and
texts/s per mode and the on/off ratio; then, with batching on, the same load while one client
sends a nested-quantifier regex to ``/api/aggregate`` and a 100,000-character prompt to
``/api/salience`` and another polls ``/healthz``: its p99 and the prediction errors.

    python -m bench.speed.serve_load --model-dir models/demo-ensemble --clients 16 --requests 100
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time

import httpx
import numpy as np

from agilecls.datasets import load_ethos
from agilecls.evaluation.metrics import format_table
from bench.common import bench_parser, setup, write_results


def start_server(args: list[str], port: int, wait: float = 600) -> subprocess.Popen:
    """``agilecls serve ARGS --port PORT`` as a subprocess in its own process group, once ``/healthz``
    answers."""
    proc = subprocess.Popen([sys.executable, "-m", "agilecls.cli", "serve", *args, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + wait
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"agilecls serve {' '.join(args)} exited with {proc.returncode}")
        time.sleep(0.5)
    stop_group(proc)
    raise RuntimeError(f"the server did not start within {wait:.0f} s")


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to the server's process group (it and everything it started); SIGKILL after 60 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


async def client(http, url, texts, requests, rng, latencies, errors, sizes):
    for _ in range(requests):
        batch = rng.sample(texts, rng.randint(1, 8))
        start = time.perf_counter()
        try:
            r = await http.post(f"{url}/v1/predict", json={"texts": batch})
            ok = r.status_code == 200 and len(r.json()["predictions"]) == len(batch)
        except httpx.HTTPError:
            ok = False
        latencies.append(time.perf_counter() - start)
        sizes.append(len(batch))
        errors.append(0 if ok else 1)


async def attacker(http, url, stop):
    """Hostile-but-fair requests, one after another, until the load ends; their status codes."""
    codes = []
    tokens = [{"start": 0, "end": 31, "score": 1.0}]
    while not stop.is_set():
        r = await http.post(f"{url}/api/aggregate", json={"prompt": "a" * 30 + "b", "tokens": tokens,
                                                          "granularity": "regex", "pattern": "(a+)+$"})
        codes.append(r.status_code)
        r = await http.post(f"{url}/api/salience", json={"prompt": "hello " * 16_666 + "!!!!"})  # 100,000 chars
        codes.append(r.status_code)
    return codes


async def poll_health(http, url, stop, latencies) -> int:
    """``/healthz`` every 50 ms until the load ends; its latencies, and the number of failed polls
    (an answer other than 200, or a dropped connection) as the return value."""
    failed = 0
    while not stop.is_set():
        start = time.perf_counter()
        try:
            failed += (await http.get(f"{url}/healthz")).status_code != 200
        except httpx.HTTPError:
            failed += 1
        latencies.append(time.perf_counter() - start)
        await asyncio.sleep(0.05)
    return failed


async def run_load(url, texts, clients, requests, seed, attack=False) -> dict:
    latencies, errors, sizes, health = [], [], [], []
    stop = asyncio.Event()
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=clients + 4)) as http:
        side = [asyncio.create_task(poll_health(http, url, stop, health))]
        if attack:
            side.append(asyncio.create_task(attacker(http, url, stop)))
        start = time.perf_counter()
        await asyncio.gather(*(client(http, url, texts, requests, random.Random(seed + i), latencies, errors, sizes)
                               for i in range(clients)))
        seconds = time.perf_counter() - start
        stop.set()
        done = await asyncio.gather(*side)
        stats = (await http.get(f"{url}/healthz")).json()
    p50, p95, p99 = (float(x) for x in np.percentile(latencies, [50, 95, 99]))
    row = {"requests": len(latencies), "texts": sum(sizes), "errors": sum(errors), "seconds": round(seconds, 1),
           "texts/s": round(sum(sizes) / seconds, 2), "p50 s": round(p50, 3), "p95 s": round(p95, 3),
           "p99 s": round(p99, 3), "healthz p99 s": round(float(np.percentile(health, 99)), 3) if health else None,
           "healthz errors": done[0],
           "model calls": stats["batches"], "texts per call": stats["items_per_batch"]}
    if attack:
        codes = done[1]
        row["attack requests"] = len(codes)
        row["attack status codes"] = sorted(set(codes))
    return row


def main(argv=None) -> dict:
    parser = bench_parser(__doc__.split("\n\n")[0], seed=0)
    parser.add_argument("--model-dir", default="models/demo-ensemble", help="saved classifier (agilecls demo --out)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=100, help="requests per client")
    parser.add_argument("--port", type=int, default=8790)
    args = setup(parser.parse_args(argv))
    texts = load_ethos("test").texts
    url = f"http://127.0.0.1:{args.port}"
    rows = {}
    for mode, max_batch, attack in [("micro-batching off", 1, False), ("micro-batching on", 64, False),
                                    ("on, under attack", 64, True)]:
        proc = start_server(["--model", args.model_dir, "--max-batch", str(max_batch), "--queue", "256"], args.port)
        try:
            rows[mode] = asyncio.run(run_load(url, texts, args.clients, args.requests, args.seed, attack))
        finally:
            stop_group(proc)
        print(f"{mode}: {rows[mode]}", flush=True)
    ratio = rows["micro-batching on"]["texts/s"] / rows["micro-batching off"]["texts/s"]
    print(format_table([{"mode": mode, **{k: v for k, v in row.items() if not k.startswith("attack")}}
                        for mode, row in rows.items()]))
    print(f"texts/s with micro-batching on / off: {ratio:.2f}x; attack answers: "
          f"{rows['on, under attack']['attack requests']} requests, status codes "
          f"{rows['on, under attack']['attack status codes']}")
    payload = {"model_dir": args.model_dir, "clients": args.clients, "requests_per_client": args.requests,
               "cpu_count": os.cpu_count(), "modes": rows, "batching_speedup": round(ratio, 2)}
    write_results("serve_load", payload, args.out, argv=argv)
    return payload


if __name__ == "__main__":
    main()
