"""What batching is worth on this machine: a saved ensemble's members scoring the same texts in
calls of different sizes, and the sentence encoder's texts per forward pass.

    python -m bench.speed.call_sizes --model-dir models/demo-ensemble --texts 64

Each call-size row scores a fresh seeded sample of ETHOS texts; the forward-pass rows embed one
sample, best of 3 runs, without the embedding cache.
"""

from __future__ import annotations

import random

from agilecls import load_classifier
from agilecls.datasets import load_ethos
from agilecls.evaluation.metrics import format_table
from bench.common import bench_parser, setup, timed, write_results


def main(argv=None) -> dict:
    parser = bench_parser(__doc__.split("\n\n")[0], seed=0)
    parser.add_argument("--model-dir", default="models/demo-ensemble")
    parser.add_argument("--texts", type=int, default=64)
    args = setup(parser.parse_args(argv))
    pool = load_ethos("all").texts
    rng = random.Random(args.seed)
    members = dict(load_classifier(args.model_dir).estimators_)
    for member in members.values():
        member.progress = False
        member.details(["warm up"])
    calls = []
    for name, member in members.items():
        for size in (args.texts, 8, 1):
            sample = rng.sample(pool, args.texts)
            seconds = round(timed(lambda member=member, sample=sample, size=size: [
                member.details(sample[i:i + size]) for i in range(0, len(sample), size)]).best, 2)
            calls.append({"member": name, "texts per call": size, "seconds": seconds,
                          "texts/s": round(args.texts / seconds, 2)})
    passes = []
    encoder = next(m for m in members.values() if hasattr(m, "encoder_")).encoder_
    sample = rng.sample(pool, args.texts)  # the same texts for every pass size; best of 3 runs
    for batch in (64, 32, 16, 8, 4):
        encoder.batch_size = batch
        seconds = round(timed(lambda: encoder.embed(sample, show_progress=False, use_cache=False), 3).best, 2)
        passes.append({"texts per forward pass": batch, "seconds": seconds})
    print(format_table(calls))
    print(format_table(passes))
    payload = {"model_dir": args.model_dir, "texts": args.texts, "calls": calls, "encoder_passes": passes}
    write_results("call_sizes", payload, args.out, argv=argv)
    return payload


if __name__ == "__main__":
    main()
