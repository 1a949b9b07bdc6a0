"""Train big, serve small: the ``best`` recipe distilled into MiniLM, against the same MiniLM trained
on the labels alone and SetFit on the same body.

Per dataset and seed, in one run (one process, nothing else running):

- ETHOS: the teacher is the ``best`` recipe on the 800 training rows; the unlabelled texts are the
  ETHOS texts not in the test split that are not training rows (the multi-label ETHOS comments not
  in the binary test split; most of them are training rows already, so few are new); test: the 198
  test rows. The student learns from the training rows (a quarter held out for its calibration and
  rule) and the unlabelled texts.
- Tweets: the teacher is ``best`` on 32 tweets per class drawn (seeded) from the train split; the
  unlabelled texts are the rest of the train split; test: the test split.

Rows: ``teacher`` (``best``), ``student`` (:func:`agilecls.distillation.distill` of the teacher),
``labels_only`` (the ``encoder`` recipe: the same MiniLM fine-tuned on the labelled rows alone,
calibrated on a quarter of them), ``setfit`` (SetFit 1.2 on the bundled MiniLM, logistic head,
``num_iterations`` so that it trains on about 3,200 pairs, ~200 body steps of 16: 2 on ETHOS's 800
rows, 8 on 224 tweets; SetFit's paper setting of 20 took hours on ETHOS here, bench/quality/peers.py).

Columns: ROC-AUC and F1 of the hateful class at each model's rule (ETHOS) or macro F1 (tweets),
ECE, fit seconds (the student's include the teacher's labelling, not its training) and predict
texts/s on 2,000 distinct texts (best of two calls; the median over seeds in the summary; the
teacher's from its labelling pass over the pool, which is its predict_proba on as many texts).

Usage::

    python -m bench.quality.distill [--datasets ethos tweets] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time

import numpy as np

from agilecls.datasets import load_ethos, load_ethos_multilabel, load_tweets
from agilecls.distillation import decide, distill, teacher_rule
from agilecls.encoders.sentence import SentenceEncoder
from agilecls.evaluation.metrics import classification_metrics, format_table
from agilecls.recipes import build_recipe
from agilecls.runtime import pick_dtype
from bench.common import RESULTS, bench_parser, load_previous, seed_everything, setup, write_results

#: How agilecls's sentence encoders embed in this run (``SentenceEncoder``'s default dtype; SetFit's
#: body runs in fp32 either way).
EMBEDDING = "bf16 autocast" if SentenceEncoder.dtype == "bf16" or (
    SentenceEncoder.dtype == "auto" and str(pick_dtype("cpu")) == "torch.bfloat16") else "fp32"
PER_CLASS_TWEETS = 32
THROUGHPUT_TEXTS = 2000
SETFIT_PAIRS = 3200


def ethos(seed: int):
    train, test = load_ethos("train"), load_ethos("test")
    known = set(test.texts) | set(train.texts)
    extra = [t for t in dict.fromkeys(load_ethos_multilabel("all").texts) if t not in known]
    return train, list(train.texts), list(train.y), extra, test


def tweets(seed: int):
    train, test = load_tweets("train"), load_tweets("test")
    rng = np.random.default_rng(seed)
    rows = []
    for label in train.labels:
        members = [i for i, v in enumerate(train.y) if v == label]
        rows += rng.choice(members, size=min(PER_CLASS_TWEETS, len(members)), replace=False).tolist()
    rows = sorted(rows)
    chosen = set(rows)
    rest = [t for i, t in enumerate(train.texts) if i not in chosen]
    return train, [train.texts[i] for i in rows], [train.y[i] for i in rows], rest, test


DATASETS = {"ethos": ethos, "tweets": tweets}


def throughput_texts(test, pool: list[str]) -> list[str]:
    """2,000 distinct texts like the test texts (a copy number makes repeats distinct)."""
    base = list(dict.fromkeys(list(test.texts) + pool))
    return [f"{t} ({k})" if k else t for k in range(math.ceil(THROUGHPUT_TEXTS / len(base))) for t in base][
        :THROUGHPUT_TEXTS]


def texts_per_second(predict, texts: list[str], repeats: int = 2) -> float:
    """The best of ``repeats`` timed calls, each on texts the model has not seen (a trailing " ." per
    repeat), so no call reuses an encoder's in-memory memo of the last texts."""
    best = float("inf")
    for r in range(repeats):
        batch = [t + " ." * r for t in texts]
        start = time.perf_counter()
        predict(batch)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def fit_setfit(texts, y, labels, seed):
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from agilecls.encoders.sentence import minilm_path

    iterations = max(1, round(SETFIT_PAIRS / (2 * len(texts))))
    folder = tempfile.mkdtemp(prefix="agilecls-distill-setfit-")
    try:
        model = SetFitModel.from_pretrained(str(minilm_path()))
        args = TrainingArguments(seed=seed, output_dir=folder, save_strategy="no", report_to="none",
                                 num_iterations=iterations)
        data = Dataset.from_dict({"text": list(texts), "label": [labels.index(v) for v in y]})
        Trainer(model=model, args=args, train_dataset=data).train()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    order = [list(model.model_head.classes_).index(i) for i in range(len(labels))]

    def proba(batch):
        return np.asarray(model.predict_proba(list(batch), as_numpy=True))[:, order]

    return proba, {"num_iterations": iterations}


def score(name, test, proba, pred, labels, positive):
    m = classification_metrics(list(test.y), proba, labels, positive, None if pred is None else list(pred))
    return {"model": name, "roc_auc": m.get("roc_auc"), "f1": m.get("f1"), "f1_macro": m.get("f1_macro"),
            "ece": m.get("ece"), "accuracy": m.get("accuracy")}


def run_one(dataset: str, seed: int, measure_speed: bool) -> list[dict]:
    train, texts, y, pool, test = DATASETS[dataset](seed)
    labels, positive = list(train.labels), train.meta.get("positive_label")
    speed_texts = throughput_texts(test, pool)
    options = {"instructions": train.meta.get("instructions"), "positive": positive, "seed": seed}
    rows = []

    def record(name, model, fit_seconds, proba_fn, extra=None, speed=None):
        """Score the test rows once (decisions by the model's rule) and, on the first seed, time
        ``proba_fn`` on the 2,000 texts unless ``speed`` gives its texts/s already."""
        seed_everything(seed)
        proba = proba_fn(list(test.texts))
        row = score(name, test, proba, decide(proba, labels, teacher_rule(model)), labels, positive)
        row.update(dataset=dataset, seed=seed, fit_seconds=round(fit_seconds, 1), encoder_embedding=EMBEDDING,
                   **(extra or {}))
        if measure_speed:
            row["texts_per_second"] = speed or round(texts_per_second(proba_fn, speed_texts), 1)
        rows.append(row)
        print(format_table([row]), flush=True)

    seed_everything(seed)
    start = time.perf_counter()
    teacher = build_recipe("best", labels, **options).fit(texts, y)
    teacher_fit = time.perf_counter() - start

    seed_everything(seed)
    start = time.perf_counter()
    student = distill(teacher, pool, "minilm", labeled=(texts, y), random_state=seed)
    facts = student.provenance["distilled_from"]
    labelled_by_teacher = facts["unlabelled_texts"] + facts["labelled_texts"]
    # the teacher's speed is that of its labelling pass over the pool (distinct texts of the same kind)
    record("teacher (best)", teacher, teacher_fit, teacher.predict_proba,
           {"speed_from": f"its labelling pass over {labelled_by_teacher} texts"},
           speed=round(labelled_by_teacher / facts["teacher_seconds"], 1))
    record("student (distilled)", student, time.perf_counter() - start, student.predict_proba,
           {"agreement_held_out": facts.get("agreement"), "teacher_seconds": facts["teacher_seconds"],
            "student_seconds": facts["student_seconds"], "trained_on": facts["trained_on"],
            "unlabelled": facts["unlabelled_texts"]})

    seed_everything(seed)
    start = time.perf_counter()
    alone = build_recipe("encoder", labels, **options).fit(texts, y)
    record("labels only (encoder recipe)", alone, time.perf_counter() - start, alone.predict_proba)

    seed_everything(seed)
    start = time.perf_counter()
    setfit_proba, setfit_facts = fit_setfit(texts, y, labels, seed)
    record("SetFit (MiniLM)", None, time.perf_counter() - start, setfit_proba, setfit_facts)
    return rows


def main(argv=None) -> None:
    parser = bench_parser(__doc__.split("\n\n")[0], seeds=[0, 1, 2], resume=False)
    parser.add_argument("--append", dest="resume", action="store_true", help=argparse.SUPPRESS)  # --resume's old name
    parser.add_argument("--datasets", nargs="+", default=["ethos", "tweets"], choices=sorted(DATASETS))
    parser.add_argument("--speed-seeds", nargs="*", type=int, default=None,
                        help="The seeds whose runs time predictions (default: every seed).")
    args = setup(parser.parse_args(argv))
    rows: list[dict] = load_previous(args.out or RESULTS / "distill.json", args).get("rows", [])
    for seed in args.seeds:
        for dataset in args.datasets:
            rows = [r for r in rows if (r["dataset"], r["seed"]) != (dataset, seed)]
            rows += run_one(dataset, seed, measure_speed=args.speed_seeds is None or seed in args.speed_seeds)
            write_results("distill", {"rows": rows, "summary": summarise(rows), "estimate_20k": estimate(rows)},
                          args.out, argv=argv)
    print(format_table(summarise(rows)))
    print(format_table(estimate(rows)))


def estimate(rows: list[dict], texts: int = 20_000) -> list[dict]:
    """Minutes to distil ``texts`` unlabelled texts on this machine, from the measured rates: the
    teacher's labelling texts/s (its row's) and the student's seconds per optimiser step (4 epochs of
    batches of 16, the fine-tuned member's schedule). An estimate: no run on 20,000 texts was made."""
    out = []
    for r in rows:
        teacher = next((t for t in rows if t["model"].startswith("teacher") and (t["dataset"], t["seed"]) ==
                        (r["dataset"], r["seed"]) and t.get("texts_per_second")), None)
        if r["model"] != "student (distilled)" or teacher is None:
            continue
        steps = max(200, 4 * math.ceil(r["trained_on"] / 16))
        per_step = r["student_seconds"] / steps
        minutes = (texts / teacher["texts_per_second"] + 4 * math.ceil(texts / 16) * per_step) / 60
        out.append({"dataset": r["dataset"], "seed": r["seed"], "teacher_texts_per_s": teacher["texts_per_second"],
                    "student_s_per_step": round(per_step, 3), "minutes_for_20k": round(minutes, 1)})
    return out


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and std over seeds per (dataset, model, how agilecls's encoders embedded)."""
    out = []
    groups = dict.fromkeys((r["dataset"], r["model"], r.get("encoder_embedding", "fp32")) for r in rows)
    for dataset, model, embedding in groups:
        part = [r for r in rows if (r["dataset"], r["model"], r.get("encoder_embedding", "fp32")) ==
                (dataset, model, embedding)]
        entry = {"dataset": dataset, "model": model, "encoder_embedding": embedding, "seeds": len(part)}
        for key in ("roc_auc", "f1", "f1_macro", "ece", "fit_seconds"):
            values = [r[key] for r in part if r.get(key) is not None]
            if values:
                entry[key] = round(float(np.mean(values)), 4)
                entry[f"{key}_std"] = round(float(np.std(values)), 4)
        speeds = [r["texts_per_second"] for r in part if r.get("texts_per_second")]
        entry["texts_per_second"] = round(float(np.median(speeds)), 1) if speeds else None
        out.append(entry)
    return out


if __name__ == "__main__":
    main()
