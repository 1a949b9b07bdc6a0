"""``Project``: a labelling project in one folder, the agile loop's Python API.

    project = Project.create("runs/support", labels=["billing", "technical", "praise"],
                             instructions="Classify the support message")
    project.import_texts("tickets.csv", text_col="body", id_col="ticket_id")
    for row in project.suggest(16):           # the texts that teach the model most
        project.label(row["id"], "billing")   # committed before it returns
    project.train()                            # the fast model: a new version in seconds
    project.evaluate()["cross_validated"]["f1_macro"]
    project.export("labels.csv")

The folder holds ``project.sqlite`` (every text, label, version and prediction), ``embeddings/``
(the sentence-embedding cache) and ``versions/`` (each version a saved classifier folder, loaded
with :func:`agilecls.load_classifier`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..validation import check_labels
from . import audit, strategies
from .scoring import SETTINGS, Scores, check_settings, score_pool
from .serving import audit_classes
from .store import ProjectError, ProjectStore
from .transfer import export_rows, import_rows
from .zero_shot import label_prompts, zero_shot_proba

#: The strategy the queue uses unless told otherwise (bench/quality/active_learning.py).
DEFAULT_STRATEGY = "diverse_margin"
#: The default pre-labeller (bench/defaults/zero_shot_scorers.py).
DEFAULT_PRELABELLER = "similarity"


class Project:
    """A labelling project stored in ``folder`` (see the module docstring).

    Parameters
    ----------
    folder : path
        An existing project folder (use :meth:`create` for a new one).
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.store = ProjectStore(self.folder)
        if not self.store.exists():
            raise ProjectError(f"{self.folder} is not an agilecls project (no {self.store.path.name}); "
                               "create one with `agilecls project new`")
        self.store.migrate()
        self.meta = self.store.meta()
        self._encoder = None
        self._embeddings: tuple[tuple[str, ...], np.ndarray] | None = None
        self._scores: tuple[tuple, Scores] | None = None

    # -- creating and filling ---------------------------------------------------------------------
    @classmethod
    def create(cls, folder: str | os.PathLike, labels: Sequence[str], instructions: str = "",
               descriptions: dict[str, str] | None = None, encoder: str = "minilm",
               model: str | None = None, llm_params: dict | None = None, audit_seed: str | None = None,
               **settings) -> "Project":
        """A new, empty project.

        Parameters
        ----------
        folder : path
            Created if missing; refused if it already holds a project.
        labels : list of str
            At least two label names, in the order the page shows them (keys 1-9).
        instructions : str, default=""
            The policy text, used as the language model's instructions.
        descriptions : dict of str to str or None, default=None
            A sentence per label, used by the similarity pre-labeller instead of the bare name.
        encoder : str, default="minilm"
            The sentence encoder of the fast model and the pre-labels.
        model : str or None, default=None
            The language model the full model tunes (None: the bundled default).
        llm_params : dict or None, default=None
            Other ``AgileClassifier`` parameters of the full model (e.g. ``{"epochs": 3}``).
        audit_seed : str or None, default=None
            Fixes which texts the random audit sample holds (None: a fresh random draw).
        **settings
            ``positive``, ``rule``, ``audit_rate``, ``retrain_every`` (:meth:`settings`).
        """
        store = ProjectStore(folder)
        if store.exists():
            raise ProjectError(f"{folder} already holds a project; open it with Project({str(folder)!r})")
        labels = check_labels([], [str(v).strip() for v in labels])[1]
        unknown = sorted(set(descriptions or {}) - set(labels))
        if unknown:
            raise ProjectError(f"descriptions given for unknown label(s) {', '.join(unknown)}")
        checked = {**SETTINGS, **check_settings(settings, labels)}
        store.create({"labels": labels, "instructions": instructions, "descriptions": descriptions or {},
                      "encoder": encoder, "model": model, "llm_params": llm_params or {},
                      "name": Path(folder).name, "salt": audit_seed or secrets.token_hex(8), **checked})
        return cls(folder)

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    def import_texts(self, source, text_col: str = "text", id_col: str | None = None,
                     label_col: str | None = None, annotator: str | None = None, split: str = "train") -> dict:
        """Add rows from a CSV / TSV / JSONL / Parquet file or a reference dataset name; all or
        nothing. Returns ``{"imported": n, "labelled": m}``."""
        return import_rows(self.store, source, text_col, id_col, label_col, annotator, split)

    # -- labelling --------------------------------------------------------------------------------
    def label(self, text_id: str, label: str, annotator: str | None = None) -> dict:
        """Label one text; returns once the label is committed to the database."""
        if label not in self.labels:
            raise ProjectError(f"unknown label {label!r}; the project's labels are {', '.join(self.labels)}")
        return self.store.set_label(str(text_id), label, annotator)

    def unlabel(self, text_id: str, annotator: str | None = None) -> dict:
        return self.store.set_label(str(text_id), None, annotator)

    def undo(self, annotator: str | None = None) -> dict | None:
        """Take back ``annotator``'s newest label change (None: nothing to undo)."""
        return self.store.undo(annotator)

    def mark_test(self, text_id: str, is_test: bool = True) -> None:
        """Hold a text out for testing: never trained on, scored in :meth:`evaluate`."""
        self.store.set_test(str(text_id), is_test)

    def skip(self, text_id: str) -> None:
        self.store.skip(str(text_id))

    # -- settings -------------------------------------------------------------------------------
    def settings(self, **values) -> dict:
        """Read (no arguments) or change the loop's settings; returns them all.

        Parameters
        ----------
        positive : str or None
            Two classes: the class the decision rule cuts on (None: the rarer in the pool estimate).
        rule : str or float
            Two classes: "f1" (default), "pool_share", "expected_f1", "precision:<t>", "recall:<t>"
            or a fixed cut (:mod:`agilecls.loop.decisions`).
        audit_rate : float in [0, 0.5]
            Share of the texts shown that are random audit texts (0: off).
        retrain_every : int >= 0
            Labels between background retrains of the fast model on the Label page (0: off).
        """
        checked = check_settings(values, self.labels)
        if checked:
            self.store.set_meta(**checked)
            self.meta = self.store.meta()
        return {key: self.meta.get(key, default) for key, default in SETTINGS.items()}

    # -- embeddings and scores --------------------------------------------------------------------
    def encoder(self):
        if self._encoder is None:
            from ..encoders.sentence import SentenceEncoder

            self._encoder = SentenceEncoder(self.meta["encoder"], cache_dir=self.folder / "embeddings")
        return self._encoder

    def embeddings(self, frame: pd.DataFrame, progress: bool = False) -> np.ndarray:
        """Embeddings of ``frame``'s texts in its order, from the on-disk cache after the first time."""
        texts = tuple(frame["text"])
        if self._embeddings is None or self._embeddings[0] != texts:
            self._embeddings = (texts, self.encoder().embed(list(texts), show_progress=progress))
        return self._embeddings[1]

    def prelabel(self, scorer: str = DEFAULT_PRELABELLER, progress: bool = True) -> int:
        """Zero-shot probabilities for every text, cached in the database; returns the count."""
        frame = self.store.frame()
        if frame.empty:
            raise ProjectError("the project has no texts yet; import some first")
        label_emb = self.encoder().embed(label_prompts(self.labels, self.meta.get("descriptions")),
                                         show_progress=False, use_cache=False)
        proba = zero_shot_proba(scorer, frame["text"].tolist(), self.embeddings(frame, progress), label_emb,
                                self.labels, self.meta.get("instructions", ""), progress)
        self.store.put_prelabels(scorer, frame["id"].tolist(), proba)
        return len(frame)

    def zero_shot(self, frame: pd.DataFrame) -> np.ndarray | None:
        """The cached zero-shot probabilities in ``frame``'s order (uniform where a text has none;
        None before :meth:`prelabel`)."""
        _, cached = self.store.prelabels()
        if not cached:
            return None
        uniform = [1.0 / len(self.labels)] * len(self.labels)
        return np.array([cached.get(i, uniform) for i in frame["id"]], dtype=np.float64)

    def training_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Row positions labelled and not held out (test or audit), and their class indices."""
        rows = np.flatnonzero(frame["label"].notna().to_numpy() & ~frame["is_test"].to_numpy())
        return rows, np.array([self.labels.index(v) for v in frame["label"].iloc[rows]], dtype=int)

    def scores(self, frame: pd.DataFrame | None = None) -> Scores:
        """The fast model refitted on every training label and the cold-start blend, scoring every
        row (see :mod:`agilecls.loop.decisions`). Kept until a label, a setting or the texts change,
        so a retrain, the suggestions after it and the evaluation fit the model once."""
        frame = self.store.frame() if frame is None else frame
        rows, y_idx = self.training_rows(frame)
        audit_idx = audit_classes(frame, self.labels)
        settings = self.settings()
        _, cached_prelabels = self.store.prelabels()
        key = (tuple(frame["id"]), tuple(frame["id"].iloc[rows]), tuple(y_idx.tolist()), tuple(audit_idx.tolist()),
               tuple(sorted(settings.items(), key=str)), len(cached_prelabels))
        if self._scores is None or self._scores[0] != key:
            self._scores = (key, score_pool(frame, self.embeddings(frame), rows, y_idx, self.labels,
                                            self.zero_shot(frame), settings["rule"], settings["positive"],
                                            audit_idx=audit_idx))
        return self._scores[1]

    def suggest(self, k: int = 16, strategy: str = DEFAULT_STRATEGY, client: str | None = None,
                seed: int = 0) -> list[dict]:
        """The next ``k`` texts to label, each with the suggested label (by the shown scores' rule)
        and probabilities. One in every ``1 / audit_rate`` is a random audit text (``audit``: true).
        With ``client``, they are held for that client for a while so that two annotators are not
        shown the same texts."""
        if strategy not in strategies.STRATEGIES:
            raise ProjectError(f"unknown strategy {strategy!r}; choose one of {', '.join(sorted(strategies.STRATEGIES))}")
        scored = self.scores()
        frame = scored.frame
        if frame.empty:
            return []
        blocked = frame["id"].isin(self.store.unavailable(client)).to_numpy()
        unlabelled = frame["label"].isna().to_numpy() & ~blocked
        shown = int(self.meta.get("shown", 0))
        audit_rows, reserve = audit.next_audit_rows(frame, unlabelled, self.meta.get("salt", ""),
                                                    self.settings()["audit_rate"], k, shown)
        free = unlabelled & ~frame["is_test"].to_numpy() & ~reserve
        fit = scored.fit
        pool = strategies.PoolScores(scored.embeddings, np.flatnonzero(free), None if fit is None else fit.raw,
                                     None if fit is None else fit.ood)
        chosen = strategies.select(strategy, pool, k - len(audit_rows), seed)
        if len(audit_rows):
            self.store.mark_audit(frame["id"].iloc[audit_rows].tolist())
        picks = spread(list(chosen), list(audit_rows))
        self.store.set_meta(shown=shown + len(picks))
        self.meta["shown"] = shown + len(picks)
        if client:
            self.store.lease(frame["id"].iloc[picks].tolist(), client)
        is_audit = set(int(r) for r in audit_rows)
        source = scored.source()["name"]
        return [{**self._suggestion(scored, row, row in is_audit), "source": source} for row in picks]

    def _suggestion(self, scored: Scores, row: int, is_audit: bool) -> dict:
        frame, proba = scored.frame, scored.proba
        p = None if proba is None else proba[row]
        best = None if p is None else int(scored.pred[row])
        return {"id": frame["id"].iloc[row], "text": frame["text"].iloc[row], "audit": is_audit,
                "suggested": None if best is None else self.labels[best],
                "probability": None if best is None else float(p[best]),
                "proba": None if p is None else dict(zip(self.labels, map(float, p)))}

    # -- versions ---------------------------------------------------------------------------------
    def train(self, kind: str = "fast", progress=None) -> int:
        """Train a new version on every training label and return its id.

        ``kind="fast"``: the loop's model as a saved ``EncoderClassifier`` (seconds).
        ``kind="full"``: the tuned language model + fine-tuned encoder ensemble (minutes; run it
        with :func:`agilecls.loop.jobs.start_training` to keep working meanwhile).
        ``kind="distilled"``: see :meth:`publish`.
        """
        from .versions import train_version

        return train_version(self, kind, progress)

    def publish(self, progress=None) -> int:
        """Distil the serving version into the project's sentence encoder, fine-tuned on its
        probabilities over every text of the pool, and return the new version's id: the model to
        deploy when the serving one is the slow full model (minutes; run it with
        :func:`agilecls.loop.jobs.start_training` and ``kind="distilled"`` to keep working)."""
        return self.train("distilled", progress)

    def versions(self) -> list[dict]:
        return self.store.versions()

    def version(self, version: int | None = None) -> dict:
        """One version's record (default: the newest)."""
        versions = self.store.versions()
        if not versions:
            raise ProjectError("no model version yet; train one first")
        chosen = versions[-1] if version is None else next((v for v in versions if v["id"] == version), None)
        if chosen is None:
            raise ProjectError(f"no version {version}; versions are {', '.join(str(v['id']) for v in versions)}")
        return chosen

    def classifier(self, version: int | None = None):
        """A version's saved classifier (default: the newest). The last one loaded is kept, so
        explaining rows one after another loads it once, and a long-running server holds one
        model in memory, not every version it ever explained."""
        from ..persistence import load_classifier

        chosen = self.version(version)
        cached = self.__dict__.get("_classifier")
        if cached is None or cached[0] != chosen["id"]:
            cached = (chosen["id"], load_classifier(self.folder / chosen["folder"]))
            self._classifier = cached
        return cached[1]

    def evaluate(self) -> dict:
        """The audit estimate (with its interval) of the newest and the serving version, metrics on
        the texts you labelled (out of fold) and on held-out test texts, the confusion matrix at the
        decision rule, the learning curve, the review and stopping state (see
        :func:`agilecls.loop.review.evaluate`)."""
        from .review import evaluate

        return evaluate(self)

    def serve(self, version: int) -> dict:
        """Make ``version`` the serving version (whatever the audit says); returns the serving state."""
        from .serving import choose

        return choose(self, version)

    def serving(self) -> dict:
        """The serving version's record (the one exports use and ``agilecls project versions`` marks)."""
        from .serving import serving_version

        return serving_version(self)

    def status(self) -> dict:
        frame = self.store.frame()
        labelled = frame["label"].notna()
        return {"folder": str(self.folder), "labels": self.labels, "texts": len(frame),
                "labelled": int(labelled.sum()), "test": int((labelled & frame["is_test"] & ~frame["audit"]).sum()),
                "audit": int((labelled & frame["audit"]).sum()),
                "counts": {lab: int((frame["label"] == lab).sum()) for lab in self.labels},
                "versions": len(self.store.versions()), "serving": self.store.meta().get("serving"),
                "settings": self.settings(), "jobs": self.store.jobs()[-1:]}

    def export(self, path: str | os.PathLike, what: str = "labels", version: int | None = None) -> Path:
        """Write ``labels`` (id, text, label, is_test, audit, extra columns) or ``predictions`` of a
        version (default: the serving one), decided by that version's rule, to CSV / TSV / JSONL /
        Parquet."""
        from .decisions import decide
        from .serving import serving_version, version_proba, version_threshold

        frame = self.store.frame()
        extra = pd.DataFrame(frame.pop("extra").tolist(), index=frame.index)
        out = pd.concat([frame, extra.drop(columns=[c for c in extra if c in frame], errors="ignore")], axis=1)
        if what == "labels":
            return export_rows(out[out["label"].notna()], path)
        if what != "predictions":
            raise ProjectError(f"export what={what!r}: choose 'labels' or 'predictions'")
        chosen = serving_version(self) if version is None else self.version(version)
        ids = out["id"].tolist()
        proba = version_proba(self, chosen, ids)
        out["predicted"] = [self.labels[j] for j in decide(proba, self.labels, version_threshold(chosen))]
        for j, lab in enumerate(self.labels):
            out[f"p_{lab}"] = proba[:, j]
        stored = self.store.predictions(chosen["id"])
        out["ood_score"] = [stored[i][1] for i in ids]
        out["version"] = chosen["id"]
        return export_rows(out, path)


def spread(chosen: list, extra: list) -> list:
    """``chosen`` with ``extra`` placed at even intervals through it (not all at its end)."""
    total = len(chosen) + len(extra)
    slots = {int((i + 0.5) * total / len(extra)) for i in range(len(extra))} if extra else set()
    rest, more = iter(chosen), iter(extra)
    return [next(more) if j in slots else next(rest) for j in range(total)]
