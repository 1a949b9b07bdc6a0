"""CLINC150 out-of-scope benchmark: softmax vs SNGP vs Mahalanobis heads, frozen vs fine-tuned encoder.

Trains on the 15,000 in-scope training rows (oos_train unused), chooses every setting
(temperature, reject threshold, Mahalanobis shrinkage, SNGP mean-field factor) on validation
(val + oos_val) only, and evaluates once on test (4,500 in-scope + 1,000 out-of-scope rows).
OOD AUROC/AUPRC treat out-of-scope as the positive class; accuracy, ECE and NLL are on the
in-scope test rows, as in the Uncertainty Baselines CLINC table.

    python -m bench.quality.clinc_oos --encoder minilm --finetune
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from agilecls.datasets import load_clinc150
from agilecls.encoders.classifier import EncoderClassifier
from agilecls.encoders.ood import MahalanobisScorer
from agilecls.encoders.sentence import SentenceEncoder
from agilecls.evaluation.metrics import abstention_metrics, format_table, ood_metrics
from bench.common import RESULTS, bench_parser, setup, write_results

#: The seed's reference rows (BERT-base on CLINC150; Uncertainty Baselines / SNGP paper).
REFERENCE_ROWS = [
    {"method": "BERT (seed reference)", "acc": None, "ece": None, "nll": None, "ood_auroc": None, "ood_auprc": 0.853},
    {"method": "BERT-SNGP (seed reference)", "acc": 0.969, "ece": 0.010, "nll": None, "ood_auroc": 0.969,
     "ood_auprc": 0.908},
]
SHRINKAGE_GRID = ["auto", 0.5, 0.9, 0.99, 1.0]
#: Reject-threshold rules compared on each fitted model (chosen on val + oos_val, scored on test):
#: "auto" maximises combined accuracy, which with 100 out-of-scope rows among 3,100 rejects cautiously.
REJECT_RULES = ["auto", "f1", "recall:0.8", "recall:0.9", "recall:0.95"]
MEAN_FIELD_GRID = [math.pi / 8, 1.0, 3.0, 10.0, 30.0, 100.0]


def run_config(name, params, train, val, test, extra_seconds=0.0, tune=None, clf=None):
    """Fit (unless a fitted ``clf`` is given, e.g. to score a fine-tuned model another way), choose
    settings on val, calibrate on val, evaluate on test once."""
    start = time.time()
    if clf is None:
        clf = EncoderClassifier(**params).fit(train.texts, train.y)
    else:  # score the trained encoder and head another way: refit only the out-of-scope statistics
        clf.set_params(**{k: v for k, v in params.items() if k in ("head", "ood_method", "mahalanobis_shrinkage")})
        clf.refit_ood(train.texts, train.y)
    chosen = {}
    val_ood = np.array([v == "oos" for v in val.y])
    tune = tune or ()
    if "shrinkage" in tune:  # Mahalanobis statistics are cheap to refit on the training embeddings
        index = {c: i for i, c in enumerate(clf.classes_.tolist())}
        y_idx = np.array([index[v] for v in train.y])
        train_emb, val_emb = clf.embed(train.texts), clf.embed(val.texts)
        best = None
        for s in SHRINKAGE_GRID:
            scorer = MahalanobisScorer(s).fit(train_emb, y_idx, len(index))
            score = ood_metrics(val_ood, scorer.score(val_emb))["ood_auroc"]
            chosen.setdefault("val_auroc_by_shrinkage", {})[str(s)] = round(score, 4)
            if best is None or score > best[0]:
                best = (score, s)
        clf.set_params(mahalanobis_shrinkage=best[1]).refit_ood(train.texts, train.y)
        chosen["mahalanobis_shrinkage"] = best[1]
    if "mean_field" in tune:  # the mean-field factor only rescales logits at prediction time
        best = None
        for lam in MEAN_FIELD_GRID:  # the validation embeddings are memoised: each setting is one head pass
            score = ood_metrics(val_ood, clf.set_params(mean_field_factor=lam).ood_score(val.texts))["ood_auroc"]
            chosen.setdefault("val_auroc_by_mean_field", {})[f"{lam:.3f}"] = round(score, 4)
            if best is None or score > best[0]:
                best = (score, lam)
        clf.set_params(mean_field_factor=best[1])
        chosen["mean_field_factor"] = best[1]
    clf.calibrate(val.texts, val.y)
    val_metrics = clf.evaluate(val.texts, val.y)
    result = clf.evaluate(test.texts, test.y)
    seconds = time.time() - start + extra_seconds
    abstention = abstention_by_rule(clf, val, test)
    row = {"method": name, "acc": result["accuracy"], "ece": result["ece"], "nll": result["nll"],
           "ood_auroc": result["ood_auroc"], "ood_auprc": result["ood_auprc"],
           "combined_acc": result["combined_accuracy"], "oos_recall": result["oos_recall"], "time_s": seconds}
    detail = {"params": {k: v for k, v in clf.get_params().items() if v is not None}, "chosen_on_val": chosen,
              "temperature": clf.temperature_, "reject_threshold": clf.reject_threshold_, "val": val_metrics,
              "test": result, "seconds": seconds, "fit_seconds": clf.fit_seconds_,
              "abstention": abstention}
    print(f"  {name}: {json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})}",
          flush=True)
    return row, detail, clf


def abstention_by_rule(clf, val, test) -> list[dict]:
    """The same fitted model with each reject rule of ``REJECT_RULES`` chosen on val: what it
    reached on val, and on test (scored once per rule). Leaves the model on "auto"."""
    rows = []
    for rule in REJECT_RULES:
        clf.set_params(reject_threshold=rule).calibrate(val.texts, val.y, temperature=False)
        v, t = (abstention_metrics(ds.y, clf.predict(ds.texts), "oos") for ds in (val, test))
        rows.append({"rule": rule, "threshold": clf.reject_threshold_, "val_oos_recall": v["oos_recall"],
                     "val_oos_precision": v["oos_precision"], "oos_recall": t["oos_recall"],
                     "oos_precision": t["oos_precision"], "in_scope_kept_right": t["in_scope_accuracy"],
                     "rejected": t["rejected"], "combined_acc": t["combined_accuracy"]})
    clf.set_params(reject_threshold="auto").calibrate(val.texts, val.y, temperature=False)
    return rows


def main(argv=None) -> int:
    ap = bench_parser(__doc__.split("\n\n")[0], out=str(RESULTS / "clinc_oos.json"))
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--cache-dir", default=None,
                    help="embedding cache (default: a fresh temporary folder, so embedding time is measured)")
    ap.add_argument("--finetune", action="store_true", help="also run the fine-tuned encoder configurations")
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--finetune-layers", type=int, default=None, help="fine-tune only the top N layers")
    ap.add_argument("--frozen-epochs", type=int, default=40)
    ap.add_argument("--only", nargs="*", default=None, help="run only these configuration names")
    ap.add_argument("--plots", action="store_true", help="write reliability and OOD-histogram PNGs next to --out")
    args = setup(ap.parse_args(argv))
    warnings.filterwarnings("ignore", message=".*left out of training.*")

    train = load_clinc150("train", include_oos=False)
    val, test = load_clinc150("val"), load_clinc150("test")
    tmp = None
    cache_dir = args.cache_dir
    if cache_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="clinc-emb-")
        cache_dir = tmp.name
    common = {"encoder": args.encoder, "cache_dir": cache_dir, "reject_threshold": "auto", "random_state": 0}

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; encoder {args.encoder}", flush=True)
    frozen_names = ["softmax (frozen)", "SNGP (frozen)", "Mahalanobis (frozen)", "SNGP + Mahalanobis (frozen)"]
    embed_seconds, n_texts = 0.0, len(train) + len(val) + len(test)
    if not args.only or set(args.only) & set(frozen_names):  # frozen rows: embed every text once
        t = time.time()
        enc = SentenceEncoder(args.encoder, cache_dir=cache_dir)
        for ds in (train, val, test):
            enc.embed(ds.texts, show_progress=True)
        embed_seconds = time.time() - t
        print(f"embedded {n_texts} texts (train + val + test) in {embed_seconds:.0f} s", flush=True)
        del enc

    configs = [
        ("softmax (frozen)", dict(head="softmax", epochs=args.frozen_epochs), None),
        ("SNGP (frozen)", dict(head="sngp", epochs=args.frozen_epochs), ("mean_field",)),
        ("Mahalanobis (frozen)", dict(head="mahalanobis"), ("shrinkage",)),
        ("SNGP + Mahalanobis (frozen)", dict(head="sngp", epochs=args.frozen_epochs,
                                             ood_method="max_prob+mahalanobis"), ("shrinkage", "mean_field")),
    ]
    ft = dict(fine_tune=True, epochs=args.finetune_epochs, fine_tune_layers=args.finetune_layers, batch_size=32)
    # rows that score an already fine-tuned model another way, and the row whose model they reuse
    # (its fit time is added to theirs): a Mahalanobis head fine-tunes through a softmax head with
    # the same seed, so its encoder is exactly the softmax row's
    reuses = {"Mahalanobis (fine-tuned)": "softmax (fine-tuned)",
              "SNGP + Mahalanobis (fine-tuned)": "SNGP (fine-tuned)"}
    if args.finetune:
        configs += [
            ("softmax (fine-tuned)", dict(head="softmax", **ft), None),
            ("Mahalanobis (fine-tuned)", dict(head="mahalanobis", ood_method="auto"), ("shrinkage",)),
            ("SNGP (fine-tuned)", dict(head="sngp", **ft), ("mean_field",)),
            ("SNGP + Mahalanobis (fine-tuned)", dict(ood_method="max_prob+mahalanobis"), ("shrinkage",)),
        ]
    rows, details, fitted = [], {}, {}
    for name, params, tune in configs:
        if args.only and name not in args.only:
            continue
        reuse = fitted.get(reuses.get(name))
        if name in reuses and reuse is None:
            continue
        frozen = not params.get("fine_tune") and reuse is None
        params = {**common, **params}
        params.setdefault("fine_tune", False)
        extra = embed_seconds if frozen else details[reuses[name]]["seconds"] if reuse else 0.0
        row, detail, clf = run_config(name, params, train, val, test, extra, tune, clf=reuse)
        if name in reuses.values():
            fitted[name] = clf
        rows.append(row)
        details[name] = detail
        if args.plots:
            _plots(name, clf, val, test, Path(args.out).parent)
        _write(args, argv, rows, details, embed_seconds, n_texts, final=False)  # partial runs keep their rows
    table = _write(args, argv, rows, details, embed_seconds, n_texts, final=True)
    print()
    print(table)
    print(f"\nwrote {args.out}")
    if tmp is not None:
        tmp.cleanup()
    return 0


def _write(args, argv, rows, details, embed_seconds, n_texts, final) -> str:
    table_rows = [{**r, "time": f"{r['time_s'] / 60:.1f} min"} for r in rows] + \
                 [{**r, "time": "TPU/GPU"} for r in REFERENCE_ROWS]
    cols = ["method", "acc", "ece", "nll", "ood_auroc", "ood_auprc", "combined_acc", "oos_recall", "time"]
    table = format_table([{c: ("—" if r.get(c) is None else r.get(c)) for c in cols} for r in table_rows], cols)
    # the machine facts (load average at the time of writing included) come from write_results
    cols = ["method", "rule", "threshold", "val_oos_recall", "oos_recall", "oos_precision", "in_scope_kept_right",
            "rejected", "combined_acc"]
    table += "\n\nreject threshold chosen on val + oos_val by each rule, scored on test\n" + format_table(
        [{"method": r["method"], **a} for r in rows for a in details[r["method"]]["abstention"]], cols)
    payload = {"complete": final, "encoder": args.encoder, "embedding_seconds": embed_seconds, "n_embedded": n_texts,
               "rows": rows, "reference_rows": REFERENCE_ROWS, "details": details, "table": table}
    write_results(Path(args.out).stem, payload, args.out, argv=argv)
    return table


def _plots(name, clf, val, test, folder):
    from agilecls.evaluation.plots import ood_histogram, reliability_diagram

    d = clf.details(test.texts)
    ood = np.array([v == "oos" for v in test.y])
    index = {c: i for i, c in enumerate(clf.classes_.tolist())}
    y_idx = np.array([index[v] for v in np.array(test.y)[~ood]])
    slug = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
    reliability_diagram(y_idx, d["proba"][~ood], title=f"{name}: in-scope test").savefig(
        folder / f"clinc_{slug}_reliability.png", dpi=110)
    ood_histogram(d["ood_score"][~ood], d["ood_score"][ood], clf.reject_threshold_, title=name).savefig(
        folder / f"clinc_{slug}_ood_hist.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
