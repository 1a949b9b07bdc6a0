"""Latency of each salience method on a 300-token prompt with the bundled default model.

    python -m bench.speed.salience [--threads N] [--repeats 3] [--model smollm2-135m-instruct]

The prompt is LIT's sample prompts joined and cut to exactly 300 tokens; the target " Avoid.".
Also measured, for reference: one forward pass (no gradients), the naive gradient (full LM head at
every position and weight gradients via loss.backward(), as a training step computes them) and
integrated gradients at several interpolation batch sizes. Prints a table and writes
bench/results/salience.json. Targets: Grad L2 <= 2 s, Integrated Gradients (16 steps) <= 20 s.
"""

from __future__ import annotations

import os
import time

import torch

from agilecls.datasets import load_lit_prompts
from agilecls.evaluation.metrics import format_table
from agilecls.lm.loading import DEFAULT_MODEL, load_lm
from agilecls.salience.explanation import explain
from bench.common import bench_parser, matmul_gflops, setup, timed, write_results

TARGET = " Avoid."


def prompt_of(lm, n_tokens: int) -> str:
    tok = lm.tokenizer
    ids = tok("\n\n".join(r["prompt"] for r in load_lit_prompts()))["input_ids"][:n_tokens]
    text = tok.decode(ids)
    assert len(tok(text)["input_ids"]) == n_tokens
    return text


def naive_grad(lm, prompt: str) -> None:
    """What a plain implementation does: full logits everywhere, loss.backward() with weight grads."""
    tok = lm.tokenizer
    p_ids, t_ids = tok(prompt)["input_ids"], tok(TARGET, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p_ids + t_ids])
    embeds = lm.model.get_input_embeddings()(ids).detach().requires_grad_(True)
    logits = lm.model(inputs_embeds=embeds).logits[0]
    logp = torch.log_softmax(logits[len(p_ids) - 1:-1], -1)
    logp[torch.arange(len(t_ids)), torch.tensor(t_ids)].sum().backward()
    embeds.grad[0, :len(p_ids)].norm(dim=-1)
    lm.model.zero_grad(set_to_none=True)


def main(argv=None) -> None:
    parser = bench_parser(__doc__, threads=min(2, os.cpu_count() or 1))
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-naive", action="store_true")
    args = setup(parser.parse_args(argv))
    lm = load_lm(args.model)
    prompt = prompt_of(lm, args.tokens)
    load_before = os.getloadavg()[0]
    gflops = matmul_gflops()
    explain(lm, prompt, TARGET, "grad_l2")  # warm-up

    rows = []

    def add(name, fn, repeats, note=""):
        t = timed(fn, repeats)
        median, best = t.median, t.best
        rows.append({"method": name, "median_s": round(median, 2), "best_s": round(best, 2), "runs": repeats,
                     "note": note})
        print(f"{name}: median {median:.2f} s, best {best:.2f} s", flush=True)

    with torch.inference_mode():
        ids = torch.tensor([lm.tokenizer(prompt)["input_ids"]])
        add("forward only (reference)", lambda: lm.base_model()(input_ids=ids), args.repeats, "no gradients")
    add("grad_l2", lambda: explain(lm, prompt, TARGET, "grad_l2"), args.repeats, "target <= 2 s")
    add("grad_dot_input", lambda: explain(lm, prompt, TARGET, "grad_dot_input"), args.repeats)
    if not args.skip_naive:
        add("naive gradient (full LM head, weight grads)", lambda: naive_grad(lm, prompt), args.repeats,
            "reference")
    for batch in (16, 8, 4):
        add(f"integrated_gradients 16 steps, batch {batch}",
            lambda b=batch: explain(lm, prompt, TARGET, "integrated_gradients", steps=16, batch_size=b), 1,
            "target <= 20 s" + (" (default batch)" if batch == 8 else ""))
    start = time.perf_counter()
    generated = explain(lm, prompt, None, "grad_l2", max_new_tokens=16)
    rows.append({"method": "grad_l2 + generating a 16-token target", "median_s": round(time.perf_counter() - start, 2),
                 "best_s": None, "runs": 1, "note": repr(generated.target[:40])})
    load_after = os.getloadavg()[0]
    print(format_table(rows))
    path = write_results("salience", {
        "model": args.model, "prompt_tokens": args.tokens, "target": TARGET, "threads": args.threads,
        "matmul_gflops": round(gflops, 1), "load_average_1min": [round(load_before, 2), round(load_after, 2)],
        "rows": rows}, args.out, argv=argv)
    print(f"matmul {gflops:.0f} GFLOP/s, {args.threads} thread(s), load average {load_before:.1f} -> "
          f"{load_after:.1f}; written to {path}")


if __name__ == "__main__":
    main()
