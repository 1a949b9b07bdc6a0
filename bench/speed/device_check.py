"""Every workflow once on one device (CUDA when present, else CPU): prompting, LoRA tuning with a
save/load round trip, salience of a tuned classifier's decision, and a fine-tuned SNGP encoder
head with out-of-scope scores. Small on purpose (a minute or two): it checks that the code runs
and agrees with itself on that device, not how accurate it is.

    python -m bench.speed.device_check [--lm SPEC_OR_FOLDER] [--encoder minilm|FOLDER] [--device cuda]

Prints a table and writes bench/results/device_check_<device>.json (or --out).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from agilecls import AgileClassifier, EncoderClassifier, explain, load_classifier, load_lm
from agilecls.datasets import load_clinc150, load_ethos
from agilecls.evaluation.metrics import format_table
from agilecls.lm.loading import DEFAULT_MODEL
from bench.common import RESULTS, bench_parser, setup, timed, write_results


def round_trip(clf, texts, tmp: Path, name: str) -> float:
    """Largest probability change after save -> load on the same device."""
    clf.save(tmp / name)
    loaded = load_classifier(tmp / name, device=str(clf_device(clf)))
    return float(np.abs(loaded.predict_proba(texts) - clf.predict_proba(texts)).max())


def clf_device(clf) -> torch.device:
    return clf.lm_.device if hasattr(clf, "lm_") else torch.device(clf.device_)


def main(argv=None) -> int:
    ap = bench_parser(__doc__.split("\n\n")[0],
                      out_help="results file (default: bench/results/device_check_<device>.json)")
    ap.add_argument("--lm", default=DEFAULT_MODEL, help="language model spec or folder")
    ap.add_argument("--encoder", default="minilm", help="sentence encoder name or folder")
    ap.add_argument("--device", default=None, help="default: CUDA when present, else CPU")
    args = setup(ap.parse_args(argv))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    ethos_train, ethos_test = load_ethos("train"), load_ethos("test")
    texts, y = ethos_train.texts[:64], ethos_train.y[:64]
    test_texts = ethos_test.texts[:32]
    rows, checks = [], {}
    tmp = Path(tempfile.mkdtemp(prefix="device-check-"))

    t = timed(lambda: load_lm(args.lm, device=device))
    lm, seconds = t.result, t.best
    rows.append({"step": "load language model", "device": str(lm.device), "dtype": str(lm.dtype), "s": seconds})

    prompted = AgileClassifier(labels=ethos_train.labels, model=args.lm, shots=4, device=device, progress=False,
                               instructions=ethos_train.meta["instructions"])
    t = timed(lambda: prompted.fit(texts, y).predict_proba(test_texts))
    proba, seconds = t.result, t.best
    checks["prompting_rows_sum_to_1"] = bool(np.allclose(proba.sum(1), 1, atol=1e-6))
    rows.append({"step": "4-shot prompting, 32 texts", "device": str(clf_device(prompted)), "s": seconds})
    if device != "cpu":  # the same computation in fp32 on this device and on the CPU
        fp32 = {d: prompted.set_params(device=d, dtype="float32").fit(texts, y).predict_proba(test_texts)
                for d in (device, "cpu")}
        diff = float(np.abs(fp32[device] - fp32["cpu"]).max())
        checks["prompting_fp32_vs_cpu_max_diff"] = diff
        rows.append({"step": "4-shot prompting in fp32, vs the CPU", "device": device, "vs cpu max |dp|": diff})

    tuned = AgileClassifier(labels=ethos_train.labels, model=args.lm, tuning="lora", epochs=2, device=device,
                            progress=False, instructions=ethos_train.meta["instructions"])
    seconds = timed(lambda: tuned.fit(texts, y)).best
    losses = [h["train_loss"] for h in tuned.history_]
    checks["lora_loss_finite"] = bool(np.isfinite(losses).all())
    checks["lora_adapters_on_device"] = all(p.device.type == torch.device(device).type
                                            for n, p in tuned.lm_.model.named_parameters() if "lora_" in n)
    diff = round_trip(tuned, test_texts, tmp, "tuned")
    checks["lora_round_trip_max_diff"] = diff
    rows.append({"step": f"LoRA, 64 texts x 2 epochs (loss {losses[0]:.3f} -> {losses[-1]:.3f})",
                 "device": str(clf_device(tuned)), "s": seconds, "round-trip max |dp|": diff})

    for method in ("grad_l2", "grad_dot_input", "integrated_gradients"):
        t = timed(lambda method=method: explain(tuned, test_texts[0], method=method))
        exp, seconds = t.result, t.best
        finite = all(np.isfinite(t["score"]) for t in exp.tokens)
        checks[f"{method}_finite"] = finite
        extra = ({"IG completeness error": exp.info.get("completeness_error")}
                 if method == "integrated_gradients" else {})
        rows.append({"step": f"salience {method}, {len(exp.tokens)} tokens", "device": str(clf_device(tuned)),
                     "s": seconds, **extra})

    clinc_train, clinc_test = load_clinc150("train", include_oos=False), load_clinc150("test")
    intents = sorted(set(clinc_train.y))[:20]
    train_rows = [i for i, v in enumerate(clinc_train.y) if v in intents]
    test_rows = [i for i, v in enumerate(clinc_test.y) if v in intents]
    test_rows += [i for i, v in enumerate(clinc_test.y) if v == "oos"][:len(test_rows)]
    enc_texts = [clinc_test.texts[i] for i in test_rows]
    is_oos = np.array([clinc_test.y[i] == "oos" for i in test_rows])
    enc = EncoderClassifier(args.encoder, head="sngp", fine_tune=True, fine_tune_layers=1, epochs=2, batch_size=32,
                            device=device, random_state=0)
    seconds = timed(lambda: enc.fit([clinc_train.texts[i] for i in train_rows],
                                    [clinc_train.y[i] for i in train_rows])).best
    auroc = float(roc_auc_score(is_oos, enc.ood_score(enc_texts)))
    checks["sngp_ood_auroc"] = auroc
    diff = round_trip(enc, enc_texts, tmp, "encoder")
    checks["sngp_round_trip_max_diff"] = diff
    rows.append({"step": f"SNGP, fine-tuned encoder, {len(train_rows)} texts / {len(intents)} intents "
                         f"(OOD AUROC {auroc:.3f})", "device": str(clf_device(enc)), "s": seconds,
                 "round-trip max |dp|": diff})

    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    print(f"device {device} ({name}), torch {torch.__version__}")
    print(format_table(rows))
    print(json.dumps(checks, indent=2))
    out = Path(args.out or RESULTS / f"device_check_{device.split(':')[0]}.json")
    out = write_results(out.stem, {"device": name, "torch": torch.__version__, "rows": rows, "checks": checks}, out,
                        argv=argv, device=device)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
