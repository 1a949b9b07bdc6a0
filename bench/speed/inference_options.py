"""Each CPU inference option on its own, against today's path: its speed-up and the largest change
in any probability, per member of a saved ensemble, in one run.

    python -m bench.speed.inference_options --model-dir models/demo-ensemble --texts 128

Options: larger inference batches, bf16 autocast, dynamic int8 quantisation of the linear
layers (``torch.ao.quantization.quantize_dynamic``; the tied LM head stays fp32, it is read
only at label tokens), and, for a sentence-encoder member, ONNX Runtime (the transformer
exported with ``torch.onnx.export``, mean pooling and normalisation as sentence-transformers
does them, the same length-sorted batches; needs ``pip install onnxruntime onnx onnxscript``).
Each option is timed on the same texts as the baseline, best of ``--repeats``. On a CPU where
agilecls loads the model in bf16 (AVX512-BF16 / AMX), bf16 autocast and int8 do not apply and the
table says so; int8 runs last because it changes the model in place. (Scoring identical texts
once was measured here too, 1.04-1.06x on a 512-text sample with 4% repeats, and is now what
every estimator does, so it is part of today's path.)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from agilecls import load_classifier
from agilecls.evaluation.metrics import format_table
from bench.common import bench_parser, setup, timed, write_results
from bench.corpus import mixed_texts


def quantize_linear(model: torch.nn.Module) -> None:
    """Dynamic int8 for every linear layer but the LM head and the LoRA adapters, in place."""
    spec = {name: torch.ao.quantization.default_dynamic_qconfig for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and "lm_head" not in name and "lora_" not in name}
    torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)


def set_batch(member, size: int | None) -> int:
    """Set the member's texts per forward pass (None: leave it); returns the previous value (a
    language model's is its scorer's, which ``batch_size="auto"`` chose by measurement)."""
    owner = member.scorer_ if hasattr(member, "lm_") else member.encoder_
    previous = owner.batch_size
    if size is not None:
        owner.batch_size = size
    return previous


def skipped(member: str, option: str, why: str) -> dict:
    """A table row for an option that does not apply on this machine, saying why."""
    print(member, option, "skipped:", why, flush=True)
    return {"member": member, "option": f"{option} (skipped: {why})", "seconds": None, "texts/s": None,
            "speed-up": None, "max |Δp|": None}


def torch_model(member) -> torch.nn.Module:
    return member.lm_.model if hasattr(member, "lm_") else member.encoder_.model


class OnnxEncoder:
    """A sentence-transformers encoder's transformer run by ONNX Runtime; pooling as the original."""

    def __init__(self, encoder, folder: Path):
        import onnxruntime

        st = encoder.model
        self.tokenizer, self.max_len, self.batch_size = st.tokenizer, st.max_seq_length, encoder.batch_size
        self.normalize = any(type(m).__name__ == "Normalize" for m in st)
        sample = self.tokenizer(["a short text", "another one"], padding=True, return_tensors="pt")
        path = folder / "encoder.onnx"
        names = ["input_ids", "attention_mask"]
        axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"hidden": {0: "batch", 1: "tokens"}}
        torch.onnx.export(_Hidden(st[0].auto_model), (sample["input_ids"], sample["attention_mask"]), str(path),
                          input_names=names, output_names=["hidden"], dynamic_axes=axes, dynamo=False)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def embed(self, texts: list[str]) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")
        parts = []
        for start in range(0, len(texts), self.batch_size):
            batch = [texts[i] for i in order[start:start + self.batch_size]]
            enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_len, return_tensors="np")
            mask = enc["attention_mask"].astype(np.int64)
            hidden = self.session.run(None, {"input_ids": enc["input_ids"].astype(np.int64),
                                             "attention_mask": mask})[0]
            pooled = (hidden * mask[..., None]).sum(1) / np.clip(mask.sum(1, keepdims=True), 1, None)
            if self.normalize:
                pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            parts.append(pooled.astype(np.float32))
        out = np.zeros((len(texts), parts[0].shape[1]), np.float32)
        out[order] = np.concatenate(parts)
        return out


class _Hidden(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def onnx_proba(member, texts: list[str], repeats: int) -> tuple[float, np.ndarray] | None:
    """(seconds, probabilities) with the member's encoder run by ONNX Runtime; None if not installed."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as folder:
        onnx = OnnxEncoder(member.encoder_, Path(folder))
        onnx.embed(texts[:4])

        def score():
            logits = member._logits(onnx.embed(texts))
            return torch.softmax(torch.from_numpy(logits), dim=-1).numpy()

        t = timed(score, repeats)
        return t.best, t.result


def main(argv=None) -> dict:
    parser = bench_parser(__doc__.split("\n\n")[0], seed=0)
    parser.add_argument("--model-dir", default="models/demo-ensemble")
    parser.add_argument("--texts", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    args = setup(parser.parse_args(argv))
    texts = mixed_texts(args.texts, args.seed)
    members = dict(load_classifier(args.model_dir).estimators_)
    rows = []
    for name, member in members.items():
        member.progress = False
        if not hasattr(member, "lm_"):  # a sentence encoder: no embedding cache, every option computes
            member.encoder_._cache = None
        member.details(texts[:4])
        def score(texts=texts, member=member):
            member.__dict__.pop("_embedding_memo", None)  # an encoder's in-memory memo of the last texts
            return member.details(texts)["proba"]

        t = timed(score, args.repeats)
        base_s, base = t.best, t.result
        rows.append(_row(name, "today's path", base_s, base_s, base, base, len(texts)))
        default = set_batch(member, None)
        set_batch(member, 4 * default)
        t = timed(score, args.repeats)
        seconds, proba = t.best, t.result
        set_batch(member, default)
        rows.append(_row(name, f"inference batches of {4 * default} (not {default})", base_s, seconds, base, proba,
                         len(texts)))
        dtype = next(torch_model(member).parameters()).dtype
        autocast = not hasattr(member, "lm_") and member.encoder_.bf16  # SentenceEncoder(dtype="auto"|"bf16")
        if not hasattr(member, "lm_"):  # a sentence encoder switches its own autocast (SentenceEncoder.bf16)
            member.encoder_.bf16 = not autocast
            t = timed(score, args.repeats)
            seconds, proba = t.best, t.result
            member.encoder_.bf16 = False  # the int8 pass below runs with fp32 activations
            rows.append(_row(name, "fp32 instead of bf16 autocast" if autocast else "bf16 autocast", base_s, seconds,
                             base, proba, len(texts)))
        elif dtype == torch.float32:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                t = timed(score, args.repeats)
                seconds, proba = t.best, t.result
            rows.append(_row(name, "bf16 autocast", base_s, seconds, base, proba, len(texts)))
        else:  # agilecls loaded it in bf16 already (pick_dtype measured bf16 faster here)
            rows.append(skipped(name, "bf16 autocast", f"the model already runs in {dtype}"))
        if not hasattr(member, "lm_") and (result := onnx_proba(member, texts, args.repeats)) is not None:
            rows.append(_row(name, "ONNX Runtime encoder", base_s, *result, base, len(texts)))
        if dtype == torch.float32:  # an encoder's int8 pass runs without autocast (left off above)
            quantize_linear(torch_model(member))
            t = timed(score, args.repeats)
            seconds, proba = t.best, t.result
            rows.append(_row(name, "dynamic int8 linear layers" + (" (fp32 activations)" if autocast else ""),
                             base_s, seconds, base, proba, len(texts)))
        else:  # dynamic int8 quantises fp32 linear layers only ("expected scalar type Float but found BFloat16")
            rows.append(skipped(name, "dynamic int8 linear layers", f"it needs fp32 layers, the model runs in {dtype}"))
    distinct = len(set(texts))
    print(f"{len(texts)} texts ({distinct} distinct), best of {args.repeats}")
    print(format_table(rows))
    payload = {"model_dir": args.model_dir, "texts": len(texts), "distinct_texts": distinct, "rows": rows}
    write_results("inference_options", payload, args.out, argv=argv)
    return payload


def _row(member, option, base_s, seconds, base, proba, n) -> dict:
    print(member, option, round(seconds, 2), flush=True)
    return {"member": member, "option": option, "seconds": round(seconds, 2), "texts/s": round(n / seconds, 2),
            "speed-up": round(base_s / seconds, 2), "max |Δp|": float(np.abs(np.asarray(proba) - base).max())}


if __name__ == "__main__":
    main()
