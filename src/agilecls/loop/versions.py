"""Training a project's model versions: the fast model (seconds) and the full model (minutes).

A version is a saved classifier folder under ``versions/`` plus a row in the database with its
metrics and its predictions for every text. The folder is written atomically first and the row
committed after, so a training killed at any point leaves every earlier version usable and no
half-written one visible.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..evaluation.metrics import classification_metrics
from . import fast
from .store import ProjectError

#: The full model: the demo's recipe (LoRA-tuned default LLM + fine-tuned MiniLM, soft-voted).
FULL_EPOCHS = 6
MIN_PER_CLASS = 2


def headline(metrics: dict, labels) -> tuple[str, float | None]:
    """The score a learning curve plots: ROC-AUC for two classes, macro F1 otherwise."""
    key = "roc_auc" if len(labels) == 2 else "f1_macro"
    value = metrics.get(key)
    return key, None if value is None or np.isnan(value) else float(value)


def training_data(project, frame):
    rows, y_idx = project._training_rows(frame)
    counts = np.bincount(y_idx, minlength=len(project.labels))
    if (counts[counts > 0] < MIN_PER_CLASS).any() or (counts > 0).sum() < 2:
        raise ProjectError(f"need at least {MIN_PER_CLASS} labels in each of two classes to train "
                           f"(have {dict(zip(project.labels, counts.tolist()))})")
    return rows, y_idx


def build_full(project) -> object:
    from ..encoders.members import encoder_member
    from ..ensemble import EnsembleClassifier
    from ..lm.classifier import AgileClassifier

    params = {"labels": project.labels, "tuning": "lora", "epochs": FULL_EPOCHS, "progress": False,
              **{key: project.meta[key] for key in ("instructions", "model") if project.meta.get(key)},
              **project.meta.get("llm_params", {})}
    return EnsembleClassifier([("encoder", encoder_member(project.meta["encoder"], "finetuned")),
                               ("llm", AgileClassifier(**params))], labels=project.labels)


def train_version(project, kind: str = "fast", progress: Callable[[dict], None] | None = None) -> int:
    """Fit, save and register a version of ``kind`` ("fast" or "full"); returns its id.

    ``progress(dict)`` is called with ``stage`` and, while the language model tunes, ``epoch``,
    ``epochs``, ``loss`` and ``seconds_left``.
    """
    if kind not in ("fast", "full"):
        raise ProjectError(f"kind must be 'fast' or 'full', got {kind!r}")
    report = progress or (lambda info: None)
    frame = project.store.frame()
    rows, y_idx = training_data(project, frame)
    texts, y = frame["text"].iloc[rows].tolist(), [project.labels[i] for i in y_idx]
    start = time.time()
    report({"stage": "cross-validating the fast model"})
    emb = project.embeddings(frame)
    oof = fast.out_of_fold(emb[rows], y_idx, len(project.labels))
    metrics = {"cross_validated": classification_metrics(y, oof, project.labels)}
    if kind == "fast":
        from ..encoders.classifier import EncoderClassifier

        clf = EncoderClassifier(project.meta["encoder"], cache_dir=str(project.folder / "embeddings"),
                                **fast.FAST_PARAMS).fit(texts, y)
    else:
        clf = build_full(project)
        started, epochs = time.time(), clf.estimators[1][1].epochs

        def on_epoch(info, _clf):
            per_epoch = (time.time() - started) / info.epoch
            report({"stage": "tuning the language model", "epoch": info.epoch, "epochs": epochs,
                    "loss": round(float(info.train_loss), 4), "seconds_left": round(per_epoch * (epochs - info.epoch))})

        report({"stage": "fine-tuning the encoder, then tuning the language model"})
        clf.fit(texts, y, llm={"callback": on_epoch})
    report({"stage": "scoring every text"})
    details = clf.details(frame["text"].tolist())
    proba = np.asarray(details["proba"], dtype=np.float64)
    proba /= proba.sum(axis=1, keepdims=True)
    ood = details.get("ood_score")
    test = (frame["label"].notna() & frame["is_test"]).to_numpy()
    if test.any():
        metrics["test"] = classification_metrics(frame["label"][test].tolist(), proba[test], project.labels)
    metrics["fit_seconds"] = round(time.time() - start, 2)
    folder = project.folder / "versions" / f"{time.strftime('%Y%m%d-%H%M%S')}-{int(time.time() * 1e3) % 1000:03d}-{kind}"
    report({"stage": "saving"})
    clf.save(folder)
    return project.store.add_version(kind, len(rows), str(folder.relative_to(project.folder)), metrics,
                                     frame["id"].tolist(), proba, [None] * len(frame) if ood is None else ood)
