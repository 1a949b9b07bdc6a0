"""Load time of each bundled model: first load (GGUF parse + dequantise + cache as safetensors)
versus a later load (from the safetensors cache), each in a fresh process.

    python -m bench.speed.load_times

Uses an empty temporary cache so the first load really converts. Prints a table and writes
bench/results/load_times.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from agilecls.evaluation.metrics import format_table
from agilecls.lm.loading import BUNDLED
from bench.common import bench_parser, setup, write_results

PROBE = ("import json, time; t = time.perf_counter(); from agilecls.lm.loading import load_lm; "
         "lm = load_lm({spec!r}); print(json.dumps({{'seconds': time.perf_counter() - t, 'dtype': str(lm.dtype)}}))")


def timed_load(spec: str, cache: str) -> dict:
    env = {**os.environ, "AGILECLS_CACHE": cache, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", PROBE.format(spec=spec)], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    args = setup(bench_parser(__doc__).parse_args(argv))
    rows = []
    for spec in BUNDLED:
        with tempfile.TemporaryDirectory() as cache:
            first = timed_load(spec, cache)
            second = timed_load(spec, cache)
        rows.append({"model": spec, "first_load_s": first["seconds"], "cached_load_s": second["seconds"],
                     "speed_up": first["seconds"] / second["seconds"], "dtype": second["dtype"]})
    print(format_table(rows))
    print(f"wrote {write_results('load_times', {'rows': rows}, args.out, argv=argv)}")


if __name__ == "__main__":
    main()
