"""Choosing tuning defaults on ETHOS validation rows only: train on rows 0-600 of the seed's training
split, score rows 600-800 after every epoch; the test split is never read.

Settings (``--only`` picks some): learning rates and schedules, the two losses, LoRA on every
linear layer, content-free calibration after tuning (both are reported for every run: ``f1`` is
calibrated, ``raw_f1`` not), Gemma, logistic heads on MiniLM / mpnet embeddings, fine-tuned
MiniLM / mpnet with a softmax head, and every soft-voting ensemble of the last epochs of those.

    python -m bench.defaults.ethos_validation [--only lr2e-3_linear gemma ...]

Prints tables and writes bench/results/ethos_validation.json or --out (probabilities included, so
ensembles can be recomputed without refitting). Settings already in the file are kept (``--no-resume``:
start afresh); its ``command`` and ``machine`` are those of the latest run.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np

from agilecls import AgileClassifier
from agilecls.datasets import load_ethos
from agilecls.encoders.members import ENCODER_MEMBERS, encoder_member
from agilecls.ensemble import soft_vote
from agilecls.evaluation.metrics import classification_metrics, format_table
from agilecls.lm.classifier import CONTENT_FREE_TEXTS
from agilecls.validation import softmax
from bench.common import META_KEYS, RESULTS, bench_parser, load_previous, setup, write_results

OUT = RESULTS / "ethos_validation.json"
LLM_SETTINGS = {
    "lr2e-3_linear": {},
    "lr2e-3_constant": {"lr_schedule": "constant"},
    "lr1e-3_linear": {"learning_rate": 1e-3},
    "lr5e-4_linear": {"learning_rate": 5e-4},
    "lm_loss": {"loss": "lm"},
    "all_linear_modules": {"target_modules": "all"},
    "gemma": {"model": "gemma-3-270m"},
    # up to 12 epochs, stopping when the loss on 15% of the 600 training rows has not improved for 2
    # epochs, best epoch restored (the final model is scored, not the last epoch)
    "early_stopping": {"epochs": 12, "validation_fraction": 0.15, "patience": 2},
}
ENCODERS = {f"{e}{'' if kind == 'logistic' else '_' + kind}": (e, kind, {})  # minilm, mpnet_finetuned, ...
            for kind in ENCODER_MEMBERS for e in ("minilm", "mpnet")}
# the fine-tuned member with a 200-step floor instead of 100 (better on the tweets' validation rows)
ENCODERS["minilm_finetuned_s200"] = ("minilm", "finetuned", {"min_steps": 200})
ENSEMBLE_MEMBERS = {"smollm2": "lr2e-3_linear", "gemma": "gemma", "minilm": "minilm", "mpnet": "mpnet",
                    "minilm_ft": "minilm_finetuned", "mpnet_ft": "mpnet_finetuned"}


def metrics(y, p_hateful: np.ndarray, labels) -> dict:
    proba = np.stack([p_hateful, 1 - p_hateful], 1)  # ETHOS labels: ["Negative" (hateful), "Positive"]
    m = classification_metrics(y, proba, labels, positive_label="Negative")
    return {"f1": m["f1"], "roc_auc": m["roc_auc"], "accuracy": m["accuracy"], "ece": m["ece"]}


def run_llm(name, overrides, tr_x, tr_y, va_x, va_y, labels, instructions) -> dict:
    params = dict(labels=labels, tuning="lora", instructions=instructions, epochs=6, learning_rate=2e-3,
                  progress=False)
    params.update(overrides)
    epochs = []

    def callback(info, clf):
        raw = clf.raw_scores(va_x)
        bias = np.log(softmax(clf.raw_scores(list(CONTENT_FREE_TEXTS))).mean(0))
        raw_p, cal_p = softmax(raw)[:, 0], softmax(raw - bias)[:, 0]
        row = {"epoch": info.epoch, "train_loss": info.train_loss, "epoch_seconds": info.seconds,
               **{f"raw_{k}": v for k, v in metrics(va_y, raw_p, labels).items()},
               **metrics(va_y, cal_p, labels), "raw_p_hateful": raw_p.tolist()}
        epochs.append(row)
        print(f"{name} epoch {info.epoch}: loss {info.train_loss:.3f}  ROC-AUC {row['raw_roc_auc']:.3f}  "
              f"F1 {row['raw_f1']:.3f} (content-free calibrated {row['f1']:.3f})  {info.seconds:.0f} s", flush=True)

    clf = AgileClassifier(**params)
    clf.fit(tr_x, tr_y, callback=callback)
    p_final = softmax(clf.raw_scores(va_x))[:, 0]  # the fitted model (the best epoch when stopping early)
    final = {"epoch": clf.history_[-1].get("best_epoch") or clf.history_[-1]["epoch"],
             **{f"raw_{k}": v for k, v in metrics(va_y, p_final, labels).items()}, "raw_p_hateful": p_final.tolist()}
    return {"params": {k: v for k, v in params.items() if k != "labels"}, "dtype": str(clf.lm_.dtype),
            "epochs": epochs + [final]}


def main(argv=None) -> None:
    ap = bench_parser(__doc__, out=str(OUT), threads=2, resume=True)
    ap.add_argument("--only", nargs="*", default=None, help=f"settings among {list(LLM_SETTINGS) + list(ENCODERS)}")
    args = setup(ap.parse_args(argv))
    train = load_ethos("train")
    tr_x, tr_y, va_x, va_y = train.texts[:600], train.y[:600], train.texts[600:800], train.y[600:800]
    out = Path(args.out)
    results = load_previous(out, args)
    for key in META_KEYS:  # the last run's command and machine: written afresh below
        results.pop(key, None)
    for name in list(LLM_SETTINGS) + list(ENCODERS):
        if args.only is not None and name not in args.only:
            continue
        start = time.perf_counter()
        if name in ENCODERS:
            encoder, kind, overrides = ENCODERS[name]
            clf = encoder_member(encoder, kind).set_params(**overrides).fit(tr_x, tr_y)
            p = clf.predict_proba(va_x)[:, list(clf.classes_).index("Negative")]
            scores = {f"raw_{k}": v for k, v in metrics(va_y, p, train.labels).items()}
            results[name] = {"epochs": [{"epoch": 0, **scores, "raw_p_hateful": p.tolist()}]}
        else:
            results[name] = run_llm(name, LLM_SETTINGS[name], tr_x, tr_y, va_x, va_y, train.labels,
                                    train.meta["instructions"])
        results[name]["seconds"] = time.perf_counter() - start
        write_results(out.stem, results, out, argv=argv, indent=None)  # compact: every run's probabilities are in it
    rows = [{"setting": n, "epoch": r["epochs"][-1]["epoch"], "roc_auc": r["epochs"][-1]["raw_roc_auc"],
             "f1": r["epochs"][-1]["raw_f1"], "ece": r["epochs"][-1].get("raw_ece"),
             "f1_content_free": r["epochs"][-1].get("f1"),
             "s_per_epoch": r["epochs"][-1].get("epoch_seconds")} for n, r in results.items() if not n.startswith("_")]
    print(format_table(rows))
    have = {k: v for k, v in ENSEMBLE_MEMBERS.items() if v in results}
    ens_rows = []
    for k in range(2, len(have) + 1):
        for combo in itertools.combinations(have, k):
            p = soft_vote([np.array(results[have[c]]["epochs"][-1]["raw_p_hateful"])[:, None] for c in combo])[:, 0]
            ens_rows.append({"ensemble": " + ".join(combo), **metrics(va_y, p, train.labels)})
    if ens_rows:
        print(format_table(ens_rows))


if __name__ == "__main__":
    main()
