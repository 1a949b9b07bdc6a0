"""Encoder fine-tuning throughput: length-grouped batches (what EncoderClassifier does) versus
random batches (the plain way), on the same CLINC150 training texts, model and head.

    python -m bench.speed.finetune_batching [--encoder minilm] [--texts 1280] [--batch-size 32] [--layers 2]

Both schedules run in this one process, interleaved in rounds, so the ratio is measured under
the same load. Prints a table and writes bench/results/finetune_batching_<encoder>_top<layers>.json.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from agilecls.batching import length_grouped_batches
from agilecls.datasets import load_clinc150
from agilecls.encoders.heads import SNGPHead
from agilecls.encoders.sentence import SentenceEncoder
from agilecls.encoders.training import unfreeze_top_layers
from agilecls.evaluation.metrics import format_table
from bench.common import bench_parser, setup, write_results


def train_steps(enc, head, opt, texts, y, batches) -> float:
    """Seconds for one pass of training steps over ``batches`` (forward, backward, update)."""
    enc.model.train()
    head.train()
    start = time.perf_counter()
    for batch in batches:
        z = enc.forward([texts[i] for i in batch])
        loss = torch.nn.functional.cross_entropy(head(z, update_covariance=True), y[torch.as_tensor(batch)])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def main(argv=None) -> None:
    ap = bench_parser(__doc__,
                      out_help="results file (default: bench/results/finetune_batching_<encoder>_top<layers>.json)")
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--texts", type=int, default=1280)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2, help="top encoder layers trained (0 = all)")
    ap.add_argument("--rounds", type=int, default=2)
    args = setup(ap.parse_args(argv))
    train = load_clinc150("train", include_oos=False)
    rng = np.random.default_rng(0)
    rows_idx = rng.permutation(len(train))[: args.texts]
    texts = [train.texts[i] for i in rows_idx]
    classes = sorted(set(train.y))
    y = torch.tensor([classes.index(train.y[i]) for i in rows_idx])
    enc = SentenceEncoder(args.encoder)
    trainable = unfreeze_top_layers(enc.model, args.layers or None)
    head = SNGPHead(enc.dim, len(classes), seed=0)
    opt = torch.optim.AdamW(trainable + list(head.parameters()), lr=1e-5)
    lengths = enc.token_lengths(texts)
    seconds = {"random batches": 0.0, "length-grouped batches": 0.0}
    pad = {"random batches": 0, "length-grouped batches": 0}
    train_steps(enc, head, opt, texts, y, [list(range(args.batch_size))])  # warm-up
    for _ in range(args.rounds):
        plans = {"random batches": [b.tolist() for b in np.array_split(rng.permutation(len(texts)),
                                                                      len(texts) // args.batch_size)],
                 "length-grouped batches": [b.tolist() for b in length_grouped_batches(lengths, args.batch_size, rng)]}
        for name, batches in plans.items():
            seconds[name] += train_steps(enc, head, opt, texts, y, batches)
            pad[name] += sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)
    n = len(texts) * args.rounds
    table = [{"schedule": k, "texts_per_s": n / v, "padding_share": pad[k] / (pad[k] + sum(lengths) * args.rounds),
              "speedup": seconds["random batches"] / v} for k, v in seconds.items()]
    print(f"{args.encoder}, top {args.layers or 'all'} layers trained, batch {args.batch_size}, "
          f"{len(texts)} CLINC150 texts x {args.rounds} rounds, {torch.get_num_threads()} threads")
    print(format_table(table))
    path = write_results(f"finetune_batching_{args.encoder}_top{args.layers or 'all'}",
                         {"args": vars(args), "rows": table}, args.out, argv=argv)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
