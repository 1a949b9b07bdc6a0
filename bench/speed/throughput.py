"""Scoring throughput of the engine versus the naive way, on the same model and the same few-shot prompts.

    python -m bench.speed.throughput [--model smollm2-135m-instruct] [--texts 48] [--shots 2]

The naive way is how a notebook does it: one call per text, the full prompt (instructions +
examples + text) recomputed every time, the full-vocabulary LM head at every position, the label
probabilities read from the last position's softmax. Both run in this one process, interleaved,
so the ratio is measured under the same load. Prints a table and writes bench/results/throughput.json.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from agilecls import AgileClassifier
from agilecls.datasets import load_ethos
from agilecls.evaluation.metrics import format_table
from bench.common import bench_parser, matmul_gflops, setup, write_results


@torch.inference_mode()
def naive_scores(clf: AgileClassifier, texts: list[str]) -> np.ndarray:
    lm, out = clf.lm_, []
    first_ids = [ids[0] for ids in clf.label_ids_]
    for prompt in clf.prompts(texts):
        ids = torch.tensor([list(prompt.prefix) + prompt.body], device=lm.device)
        logits = lm.model(input_ids=ids).logits[0, -1]
        out.append(torch.log_softmax(logits.double(), -1)[first_ids].cpu().numpy())
    return np.array(out)


def non_embedding_params(model) -> int:
    embedding = model.get_input_embeddings().weight
    return sum(p.numel() for p in model.parameters() if p.data_ptr() != embedding.data_ptr())


def main(argv=None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--texts", type=int, default=48)
    parser.add_argument("--shots", type=int, default=2)
    parser.add_argument("--batch-size", default="auto", help="texts per forward pass, or auto (measured at load)")
    parser.add_argument("--repeats", type=int, default=2)
    args = setup(parser.parse_args(argv))
    train, test = load_ethos("train"), load_ethos("test")
    texts = test.texts[: args.texts]
    clf = AgileClassifier(labels=train.labels, model=args.model, shots=args.shots, calibration=None,
                          template="separator", progress=False,
                          batch_size=args.batch_size if args.batch_size == "auto" else int(args.batch_size),
                          instructions=train.meta["instructions"]).fit(train.texts, train.y)
    prompts = clf.prompts(texts)
    prefix_tokens = len(prompts[0].prefix)
    body_tokens = sum(len(p.body) for p in prompts)
    dtype = clf.lm_.model.dtype
    ceiling = matmul_gflops(device=str(clf.lm_.device).split(":")[0], dtype=dtype)
    timings = {"naive": [], "engine": []}
    naive = engine = None
    for _ in range(args.repeats):  # interleaved so both see the same machine load
        start = time.perf_counter()
        naive = naive_scores(clf, texts)
        timings["naive"].append(time.perf_counter() - start)
        start = time.perf_counter()
        engine = clf.scorer_.score(clf.prompts(texts))
        timings["engine"].append(time.perf_counter() - start)
    # The engine's scores skip the vocabulary normaliser: compare the label softmax.
    def softmax(s):
        return np.exp(s - s.max(1, keepdims=True)) / np.exp(s - s.max(1, keepdims=True)).sum(1, keepdims=True)

    max_diff = float(np.abs(softmax(naive) - softmax(engine)).max())
    flops_per_token = 2 * non_embedding_params(clf.lm_.model)
    rows = []
    for name, tokens in (("naive", len(texts) * prefix_tokens + body_tokens), ("engine", prefix_tokens + body_tokens)):
        best = min(timings[name])
        gflops = flops_per_token * tokens / best / 1e9
        rows.append({"method": name, "texts": len(texts), "tokens_run": tokens, "seconds": best,
                     "texts_per_s": len(texts) / best, "model_gflop_s": gflops, "of_matmul_ceiling": gflops / ceiling})
    ratio = rows[0]["seconds"] / rows[1]["seconds"]
    print(f"model {args.model}, {args.shots} shots/class, prefix {prefix_tokens} tokens, "
          f"mean text+tail {body_tokens / len(texts):.0f} tokens, batch {clf.scorer_.batch_size} ({args.batch_size})")
    print(format_table(rows))
    print(f"engine / naive speed-up: {ratio:.1f}x; {dtype} matmul ceiling {ceiling:.1f} GFLOP/s; "
          f"max |p_naive - p_engine| = {max_diff:.2e}")
    path = write_results("throughput", {"model": args.model, "shots": args.shots, "prefix_tokens": prefix_tokens,
                                        "rows": rows, "speedup": ratio, "matmul_gflops": ceiling,
                                        "batch_size": clf.scorer_.batch_size, "batch_size_option": args.batch_size,
                                        "dtype": str(dtype).replace("torch.", ""),
                                        "max_prob_diff": max_diff, "timings": timings}, args.out, argv=argv)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
