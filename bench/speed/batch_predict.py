"""Batch prediction at scale: the streaming engine's texts/s and peak memory at two input sizes,
the Ray engine's overhead on one machine, the engine against ``predict_proba`` on the ensemble,
and rows lost or duplicated when a run is killed and resumed.

    python -m bench.speed.batch_predict --model-dir models/demo-ensemble --member encoder \\
        --small 2000 --large 20000 --ensemble-texts 300

The corpus is :func:`bench.corpus.mixed_texts` written as Parquet with an ``id`` column. The
scale runs use one member's saved folder (``--member``); every engine run is an ``agilecls
predict`` subprocess whose peak RSS (with its children) is sampled every 0.1 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from agilecls import load_classifier
from agilecls.batch.local import parts_folder, predict_file
from agilecls.evaluation.metrics import format_table
from bench.common import bench_parser, setup, write_results
from bench.corpus import mixed_texts

CLI = [sys.executable, "-m", "agilecls.cli", "predict"]


def run_measured(args: list[str], kill_when=None) -> dict:
    """Run a command, sampling its peak RSS (children included); ``kill_when()`` true → SIGKILL."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak, killed = 0, False
    watched = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [watched] + watched.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        if kill_when is not None and kill_when():
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
        time.sleep(0.1)
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": peak / 2**20, "rc": proc.returncode,
            "killed": killed}


def setfit_seconds(texts: list[str]) -> float | None:
    """Seconds for SetFit's ``predict_proba`` on ``texts`` with the bundled MiniLM body and a logistic
    head fitted on 64 ETHOS training rows (speed does not depend on the training); None without setfit."""
    try:
        from setfit import SetFitModel
    except ImportError:
        return None
    from agilecls.datasets import load_ethos
    from agilecls.encoders.sentence import minilm_path

    model = SetFitModel.from_pretrained(str(minilm_path()))
    train = load_ethos("train").head(64)
    model.model_head.fit(model.model_body.encode(train.texts), train.y)
    model.predict_proba(texts[:4])
    start = time.perf_counter()
    model.predict_proba(texts)
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = bench_parser(__doc__.split("\n\n")[0], seed=0)
    parser.add_argument("--model-dir", default="models/demo-ensemble")
    parser.add_argument("--member", default="encoder",
                        help="member folder used for the scale runs (\"\": the ensemble)")
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=20000)
    parser.add_argument("--ensemble-texts", type=int, default=300)
    args = setup(parser.parse_args(argv))
    member_dir = str(Path(args.model_dir) / args.member)
    what = args.member or "whole ensemble"
    work = Path(tempfile.mkdtemp(prefix="agilecls-batch-bench-"))
    texts = mixed_texts(args.large, args.seed)
    inputs = {}
    for n in (args.small, args.large):
        inputs[n] = work / f"corpus-{n}.parquet"
        pd.DataFrame({"id": range(n), "text": texts[:n]}).to_parquet(inputs[n], index=False)
    rows = []
    for n in (args.small, args.large):
        out = work / f"local-{n}.parquet"
        r = run_measured(CLI + [str(inputs[n]), "--model", member_dir, "--out", str(out), "--id-col", "id"])
        rows.append({"run": f"local engine, {what}", "texts": n, "seconds": round(r["seconds"], 1),
                     "texts/s": round(n / r["seconds"], 1), "peak RSS MB": round(r["peak_rss_mb"])})
    ray_out = work / "ray-out"
    r = run_measured(CLI + [str(inputs[args.small]), "--model", member_dir, "--out", str(ray_out), "--id-col", "id",
                            "--engine", "ray", "--actors", "2"])
    rows.append({"run": f"Ray engine, 2 actors, {what}", "texts": args.small, "seconds": round(r["seconds"], 1),
                 "texts/s": round(args.small / r["seconds"], 1), "peak RSS MB": round(r["peak_rss_mb"])})
    local = pd.read_parquet(work / f"local-{args.small}.parquet").sort_values("id")
    ray = pd.read_parquet(ray_out).sort_values("id")
    p_cols = [c for c in local.columns if c.startswith("p_")]
    ray_diff = float(np.abs(local[p_cols].to_numpy(float) - ray[p_cols].to_numpy(float)).max())
    ray_overhead = rows[-1]["seconds"] / rows[0]["seconds"]

    # the ensemble: the streaming engine against predict_proba on the same texts, in this process
    sample = texts[: args.ensemble_texts]
    clf = load_classifier(args.model_dir)
    start = time.perf_counter()
    proba = clf.predict_proba(sample)
    direct_s = time.perf_counter() - start
    src = work / "ensemble.parquet"
    pd.DataFrame({"id": range(len(sample)), "text": sample}).to_parquet(src, index=False)
    start = time.perf_counter()
    predict_file(args.model_dir, src, work / "ensemble-out.parquet", id_col="id", progress=False)
    engine_s = time.perf_counter() - start  # includes loading the model from disk
    engine = pd.read_parquet(work / "ensemble-out.parquet")
    ens_diff = float(np.abs(engine[[f"p_{c}" for c in clf.classes_]].to_numpy(float) - proba).max())
    rows.append({"run": "ensemble, predict_proba in memory", "texts": len(sample), "seconds": round(direct_s, 1),
                 "texts/s": round(len(sample) / direct_s, 1), "peak RSS MB": None})
    rows.append({"run": "ensemble, streaming engine (incl. load)", "texts": len(sample),
                 "seconds": round(engine_s, 1), "texts/s": round(len(sample) / engine_s, 1), "peak RSS MB": None})
    setfit_s = setfit_seconds(sample)
    if setfit_s is not None:
        rows.append({"run": "SetFit predict_proba, MiniLM body", "texts": len(sample), "seconds": round(setfit_s, 1),
                     "texts/s": round(len(sample) / setfit_s, 1), "peak RSS MB": None})

    # resume after SIGKILL, on the small corpus with small chunks
    out = work / "resumed.parquet"
    parts = parts_folder(out)
    base = CLI + [str(inputs[args.small]), "--model", member_dir, "--out", str(out), "--id-col", "id",
                  "--chunk-size", "200"]
    killed = run_measured(base, kill_when=lambda: len(list(parts.glob("part-*"))) >= 3)
    run_measured(base + ["--resume"])
    resumed = pd.read_parquet(out)
    ids = resumed["id"].tolist()
    lost = len(set(range(args.small)) - set(ids))
    duplicated = len(ids) - len(set(ids))
    same = float(np.abs(resumed.sort_values("id")[p_cols].to_numpy(float) - local[p_cols].to_numpy(float)).max())

    rss = {r["texts"]: r["peak RSS MB"] for r in rows[:2]}
    summary = {"rss_ratio_large_vs_small": round(rss[args.large] / rss[args.small], 2),
               "ray_overhead_vs_local": round(ray_overhead, 2), "ray_vs_local_max_abs_diff": ray_diff,
               "engine_vs_predict_proba_speedup": round(direct_s / engine_s, 2),
               "engine_vs_predict_proba_max_abs_diff": ens_diff,
               "setfit_vs_engine_seconds_ratio": None if setfit_s is None else round(setfit_s / engine_s, 3),
               "killed_mid_run": killed["killed"],
               "rows_lost": lost, "rows_duplicated": duplicated, "resumed_vs_uninterrupted_max_abs_diff": same,
               "distinct_texts_large": len(set(texts))}
    print(format_table(rows))
    for key, value in summary.items():
        print(f"{key}: {value}")
    payload = {"model_dir": args.model_dir, "member": args.member, "cpu_count": os.cpu_count(), "rows": rows,
               **summary}
    write_results("batch_predict", payload, args.out, argv=argv)
    return payload


if __name__ == "__main__":
    main()
