"""Serving engines, drift checks and served texts back into a project, measured on this machine.

1. **Engines.** ``agilecls serve`` on one process (local) against Ray Serve with 1 and 2 replicas
   (``--engine ray --replicas N``), each started as a subprocess on loopback, for the demo's saved
   classifier and a small encoder classifier (MiniLM, logistic head): ``--clients`` concurrent
   clients × ``--requests`` requests of 1–8 ETHOS test texts; texts/s, p50/p95/p99, errors and the
   p99 of ``/healthz`` polled alongside.
2. **Drift.** An intent classifier (MiniLM, logistic head) trained on the CLINC150 in-scope training
   rows, its reference profile recorded on the in-scope validation rows. Streams of test texts in
   requests of 8: in distribution (5,000 in-scope texts, 10 seeds: how often the state flips, the
   false-alarm rate) and shifted (30% out-of-scope texts, 10 seeds: texts until the state flips).
   The monitor is the server's own (:class:`agilecls.monitoring.DriftMonitor`), fed the predictions
   the server would return, checked after every request.
3. **Feedback.** ``agilecls serve --project DIR --sample 1`` answers 2,000 distinct CLINC150 texts
   in requests of 8 and is killed with SIGKILL after 1,000; the pool then holds every text answered
   before the writer's last second, once. Started again and sent all 2,000, the pool holds each
   exactly once: lost and duplicated rows are counted.

    python -m bench.speed.serve_engines --demo-dir models/demo [--clients 16 --requests 50] [--parts drift --resume]
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from agilecls import EncoderClassifier
from agilecls.datasets import load_clinc150, load_ethos
from agilecls.evaluation.metrics import format_table
from agilecls.monitoring import DriftMonitor, record_profile
from agilecls.validation import decision_labels
from bench.common import META_KEYS, RESULTS, bench_parser, load_previous, setup, write_results
from bench.speed.serve_load import run_load, start_server, stop_group


def wait_quiet(port: int) -> None:
    """Wait until ``port`` is free and no Ray process is left, so the next engine starts on a quiet
    machine."""
    deadline = time.time() + 120
    while time.time() < deadline:
        ray_left = subprocess.run(["pgrep", "-f", "raylet|gcs_server|ray::"], capture_output=True).stdout.strip()
        try:
            busy = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1) is not None
        except httpx.TransportError:
            busy = False
        if not ray_left and not busy:
            return
        time.sleep(1)
    raise RuntimeError(f"the server on port {port} or Ray's processes did not stop within 120 s")


def encoder_classifier(folder: Path) -> Path:
    """MiniLM with a logistic head on ETHOS' training rows, saved in ``folder`` (once)."""
    if not (folder / "manifest.json").exists():
        train = load_ethos("train")
        clf = EncoderClassifier("minilm", head="logistic", device="cpu", random_state=0)
        clf.fit(train.texts, train.y).save(folder)
    return folder


def engines(models: dict[str, Path], args) -> list[dict]:
    """Each engine in turn on each model; an engine that fails is recorded with its error."""
    texts, rows = load_ethos("test").texts, []
    for model, folder in models.items():
        for engine, extra in [("local", []), ("ray, 1 replica", ["--engine", "ray", "--replicas", "1"]),
                              ("ray, 2 replicas", ["--engine", "ray", "--replicas", "2"])]:
            wait_quiet(args.port)
            started, proc = time.perf_counter(), None
            try:
                proc = start_server(["--model", str(folder), "--queue", "256", *extra], args.port)
                start_s = time.perf_counter() - started
                row = asyncio.run(run_load(f"http://127.0.0.1:{args.port}", texts, args.clients, args.requests,
                                           args.seed))
                row = {"start s": round(start_s, 1), **row}
            except (RuntimeError, httpx.HTTPError) as err:
                row = {"failed": f"{type(err).__name__}: {err}"}
            finally:
                if proc is not None:
                    stop_group(proc)
            rows.append({"model": model, "engine": engine, **row})
            print(rows[-1], flush=True)
    return rows


def drift(args) -> dict:
    """False alarms on in-distribution streams and texts until the flip on shifted ones."""
    train, val, test = (load_clinc150(split) for split in ("train", "val", "test"))
    in_scope = [i for i, y in enumerate(train.y) if y != "oos"]
    clf = EncoderClassifier("minilm", head="logistic", device="cpu", random_state=0)
    clf.fit([train.texts[i] for i in in_scope], [train.y[i] for i in in_scope])
    with tempfile.TemporaryDirectory() as folder:
        profile = record_profile(clf, [t for t, y in zip(val.texts, val.y, strict=True) if y != "oos"], folder,
                                 source="CLINC150 in-scope validation rows")
    details = clf.details(test.texts)
    labels = decision_labels(details["pred"], [str(c) for c in clf.classes_])
    scores = details["ood_score"]
    inside = np.array([i for i, y in enumerate(test.y) if y != "oos"])
    outside = np.array([i for i, y in enumerate(test.y) if y == "oos"])

    def first_flip(order: np.ndarray) -> int | None:
        monitor = DriftMonitor(profile)
        for start in range(0, len(order), 8):
            chunk = order[start:start + 8]
            monitor.update([labels[i] for i in chunk], scores[chunk])
            if monitor.status()["state"] == "drifting":
                return start + len(chunk)
        return None

    calm, shifted = [], []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        calm.append(first_flip(rng.choice(inside, 5000, replace=True)))
        n = 5000
        mixed = np.where(rng.random(n) < 0.3, rng.choice(outside, n), rng.choice(inside, n))
        shifted.append(first_flip(mixed))
    flips = [f for f in shifted if f is not None]
    return {"reference": {"texts": profile.texts, "source": profile.source},
            "in_distribution": {"runs": 10, "texts": 5000, "false_alarms": sum(f is not None for f in calm),
                                "flipped_at": calm},
            "shifted_30pct_oos": {"runs": 10, "flipped": len(flips), "texts_until_flip": shifted,
                                  "median": float(np.median(flips)) if flips else None,
                                  "max": max(flips) if flips else None}}


def feedback(encoder_dir: Path, port: int) -> dict:
    """Served texts into a project's pool across a SIGKILL: rows lost and duplicated."""
    from agilecls.loop import Project
    from agilecls.loop.feedback import PRODUCTION

    texts = list(dict.fromkeys(load_clinc150("test").texts))[:2000]
    url = f"http://127.0.0.1:{port}/v1/predict"

    def stored() -> list[str]:
        frame = Project(folder).store.frame()
        return [t for t, e in zip(frame["text"], frame["extra"], strict=True) if e.get("source") == PRODUCTION]

    def send(batch: list[str]) -> None:
        for start in range(0, len(batch), 8):
            if httpx.post(url, json={"texts": batch[start:start + 8]}, timeout=60).status_code != 200:
                raise RuntimeError("a request failed")

    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / "project"
        Project.create(folder, labels=["a", "b"])
        command = ["--model", str(encoder_dir), "--project", str(folder), "--sample", "1"]
        proc = start_server(command, port)
        send(texts[:900])
        time.sleep(1.5)  # the writer's flush interval is 1 s: the first 900 are written by now
        send(texts[900:1000])
        stop_group(proc, signal.SIGKILL)
        after_kill = stored()
        proc = start_server(command, port)
        try:
            send(texts)
        finally:
            stop_group(proc)
        final = stored()
    return {"texts": len(texts), "killed_after": 1000, "stored_at_kill": len(after_kill),
            "lost_written_before_kill": len(set(texts[:900]) - set(after_kill)),
            "unflushed_at_kill": 1000 - len(after_kill), "seconds_between_last_flush_and_kill": 1.5,
            "stored_at_end": len(final), "lost_at_end": len(set(texts) - set(final)),
            "duplicated_at_end": len(final) - len(set(final))}


def main(argv=None) -> dict:
    parser = bench_parser(__doc__.split("\n\n")[0], seed=0, resume=False)
    parser.add_argument("--demo-dir", required=True, help="the demo's saved classifier (agilecls demo --out DIR)")
    parser.add_argument("--encoder-dir", default="models/ethos-minilm",
                        help="a small encoder classifier (trained here when the folder is empty)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=50, help="requests per client")
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--parts", nargs="+", default=["engines", "drift", "feedback"],
                        choices=["engines", "drift", "feedback"])
    args = setup(parser.parse_args(argv))
    out = Path(args.out) if args.out else RESULTS / "serve_engines.json"
    payload = {k: v for k, v in load_previous(out, args).items() if k not in META_KEYS}
    payload.update(clients=args.clients, requests_per_client=args.requests, cpu_count=os.cpu_count())
    runs = {"engines": lambda: engines({"demo (stacked LLM + MiniLM)": Path(args.demo_dir),
                                        "MiniLM, logistic head": encoder_classifier(Path(args.encoder_dir))}, args),
            "drift": lambda: drift(args),
            "feedback": lambda: feedback(encoder_classifier(Path(args.encoder_dir)), args.port)}
    for part in args.parts:  # each part is written as soon as it ends: a later failure keeps it
        payload[part] = runs[part]()
        print(format_table(payload[part]) if part == "engines" else payload[part], flush=True)
        write_results("serve_engines", payload, out, argv=argv)
    return payload


if __name__ == "__main__":
    main()
