"""``Project``: a labelling project in one folder, the agile loop's Python API.

    project = Project.create("runs/support", labels=["billing", "technical", "praise"],
                             instructions="Classify the support message")
    project.import_texts("tickets.csv", text_col="body", id_col="ticket_id")
    for row in project.suggest(16):           # the texts that teach the model most
        project.label(row["id"], "billing")   # committed before it returns
    project.train()                            # the fast model: a new version in seconds
    project.evaluate()["cross_validated"]["f1_macro"]
    project.export("labels.csv")

``Project`` is the loop's façade: it holds the state (database, embeddings, the fast model's fit)
and hands plain data (frames, rows, arrays) down to the modules that compute, which never call back
into it; the command line and the Label page use its public methods only.

The folder holds ``project.sqlite`` (every text, label, version and prediction), ``embeddings/``
(the sentence-embedding cache) and ``versions/`` (each version a saved classifier folder, loaded
with :func:`agilecls.load_classifier`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..persistence import load_classifier
from . import jobs, review, scoring, serving, strategies, versions
from .scoring import SETTINGS, Scores, check_settings
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
        self._embeddings = scoring.EmbeddingCache(self.meta["encoder"], self.folder / "embeddings")
        self._scores: tuple[tuple, Scores] | None = None
        self._classifier: tuple[int, object] | None = None

    # -- creating and filling ---------------------------------------------------------------------
    @classmethod
    def create(cls, folder: str | os.PathLike, labels: Sequence[str], instructions: str = "",
               descriptions: dict[str, str] | None = None, encoder: str = "minilm",
               model: str | None = None, llm_params: dict | None = None, audit_seed: str | None = None,
               **settings) -> Project:
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
        store.create(scoring.new_meta(labels, descriptions, settings, instructions=instructions, encoder=encoder,
                                      model=model, llm_params=llm_params, name=Path(folder).name,
                                      salt=audit_seed or secrets.token_hex(8)))
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
        """Remove a text's label (logged, so :meth:`undo` can give it back)."""
        return self.store.set_label(str(text_id), None, annotator)

    def undo(self, annotator: str | None = None) -> dict | None:
        """Take back ``annotator``'s newest label change (None: anyone's); None when there is
        nothing to undo. Labels that came with an import are not undone."""
        return self.store.undo(annotator)

    def mark_test(self, text_id: str, is_test: bool = True) -> None:
        """Hold a text out for testing (never trained on, scored in :meth:`evaluate` once labelled),
        or with ``is_test=False`` put it back; a random audit text stays a test text."""
        self.store.set_test(str(text_id), is_test)

    def skip(self, text_id: str) -> None:
        """Leave a text out of :meth:`suggest`'s queue (until it is labelled)."""
        self.store.skip(str(text_id))

    def text(self, text_id: str) -> dict:
        """One text: ``id``, ``text``, ``label``, ``is_test``, ``audit`` (a :class:`ProjectError` if unknown)."""
        return self.store.text(str(text_id))

    def label_counts(self) -> dict[str, int]:
        """Labels given per class (classes without labels left out)."""
        return self.store.label_counts()

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
        """The project's sentence encoder (loaded once)."""
        return self._embeddings.encoder()

    def embeddings(self, frame: pd.DataFrame, progress: bool = False) -> np.ndarray:
        """Embeddings of ``frame``'s texts in its order, from the on-disk cache after the first time."""
        return self._embeddings.embed(frame["text"], progress)

    def prelabel(self, scorer: str = DEFAULT_PRELABELLER, progress: bool = True) -> int:
        """Zero-shot probabilities for every text, cached in the database; returns the count."""
        frame = self.store.frame()
        if frame.empty:
            raise ProjectError("the project has no texts yet; import some first")
        label_emb = self.encoder().embed(label_prompts(self.labels, self.meta.get("descriptions")),
                                         show_progress=False, use_cache=False)
        proba = zero_shot_proba(scorer, frame["text"].tolist(), self.embeddings(frame, progress), label_emb,
                                self.labels, self.meta.get("instructions", ""), progress, model=self.meta.get("model"))
        self.store.put_prelabels(scorer, frame["id"].tolist(), proba)
        return len(frame)

    def zero_shot(self, frame: pd.DataFrame) -> np.ndarray | None:
        """The cached zero-shot probabilities in ``frame``'s order (uniform where a text has none;
        None before :meth:`prelabel`)."""
        return scoring.stored_zero_shot(self.store.prelabels()[1], frame["id"], len(self.labels))

    def training_rows(self, frame: pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Row positions of ``frame`` (default: every text) labelled and not held out (test or
        audit), and their class indices."""
        return scoring.training_rows(self.store.frame() if frame is None else frame, self.labels)

    def scores(self, frame: pd.DataFrame | None = None) -> Scores:
        """The fast model refitted on every training label and the cold-start blend, scoring every
        row (see :mod:`agilecls.loop.decisions`). Kept until a label, a setting or the texts change,
        so a retrain, the suggestions after it and the evaluation fit the model once."""
        frame = self.store.frame() if frame is None else frame
        rows, y_idx = self.training_rows(frame)
        audit_idx = serving.audit_classes(frame, self.labels)
        settings = self.settings()
        _, cached_prelabels = self.store.prelabels()
        key = (tuple(frame["id"]), tuple(frame["id"].iloc[rows]), tuple(y_idx.tolist()), tuple(audit_idx.tolist()),
               tuple(sorted(settings.items(), key=str)), len(cached_prelabels))
        if self._scores is None or self._scores[0] != key:
            self._scores = (key, scoring.score_pool(frame, self.embeddings(frame), rows, y_idx, self.labels,
                                            self.zero_shot(frame), settings["rule"], settings["positive"],
                                            audit_idx=audit_idx))
        return self._scores[1]

    def suggest(self, k: int = 16, strategy: str | None = None, client: str | None = None,
                seed: int = 0) -> list[dict]:
        """The next ``k`` texts to label, each with the suggested label (by the shown scores' rule)
        and probabilities, by ``strategy`` (None: :data:`DEFAULT_STRATEGY`). One in every
        ``1 / audit_rate`` is a random audit text (``audit``: true). With ``client``, they are held
        for that client for a while so that two annotators are not shown the same texts."""
        strategy = strategy or DEFAULT_STRATEGY
        if strategy not in strategies.STRATEGIES:
            raise ProjectError(f"unknown strategy {strategy!r}; choose one of "
                               f"{', '.join(sorted(strategies.STRATEGIES))}")
        scored = self.scores()
        frame = scored.frame
        if frame.empty:
            return []
        shown = int(self.meta.get("shown", 0))
        blocked = frame["id"].isin(self.store.unavailable(client)).to_numpy()
        picks, audit_rows = scoring.queue_rows(scored, blocked, k, strategy=strategy, salt=self.meta.get("salt", ""),
                                               shown=shown, audit_rate=self.settings()["audit_rate"], seed=seed)
        if len(audit_rows):
            self.store.mark_audit(frame["id"].iloc[audit_rows].tolist())
        self.store.set_meta(shown=shown + len(picks))
        self.meta["shown"] = shown + len(picks)
        if client:
            self.store.lease(frame["id"].iloc[picks].tolist(), client)
        is_audit = set(int(r) for r in audit_rows)
        source = scored.source()["name"]
        return [{**scoring.suggestion(scored, row, self.labels, row in is_audit), "source": source} for row in picks]

    # -- versions ---------------------------------------------------------------------------------
    def train(self, kind: str = "fast", progress: Callable[[dict], None] | None = None) -> int:
        """Train a new version on every training label, consider it for serving and return its id.

        ``kind="fast"``: the loop's model as a saved ``EncoderClassifier`` (seconds).
        ``kind="full"``: the tuned language model + fine-tuned encoder ensemble (minutes; run it
        with :meth:`start_training` to keep working meanwhile).
        ``kind="distilled"``: see :meth:`publish`. ``progress(dict)`` is told the stage
        (:func:`agilecls.loop.versions.train_version`).
        """
        frame = self.store.frame()
        rows, y_idx = self.training_rows(frame)
        versions.check_training(y_idx, self.labels, kind)
        teacher = self.serving() if kind == "distilled" else None  # refuses a project without versions
        version = versions.train_version(
            self.store, kind, frame, rows, y_idx, labels=self.labels, meta=self.meta, settings=self.settings(),
            pool_fit=self.scores(frame).fit if kind == "fast" else None, progress=progress,
            teacher=None if teacher is None else (teacher["id"], self.classifier(teacher["id"])))
        self.consider(version)
        return version

    def publish(self, progress: Callable[[dict], None] | None = None) -> int:
        """Distil the serving version into the project's sentence encoder on its probabilities over
        the pool; returns the new version's id: the model to deploy when the serving one is the slow
        full model (minutes; :meth:`start_training` with ``kind="distilled"`` runs it in the background)."""
        return self.train("distilled", progress)

    def start_training(self, kind: str = "full") -> int:
        """Start training a ``kind`` version in a background process (:mod:`agilecls.loop.jobs`);
        returns the job's id (follow it with :meth:`jobs`, stop it with :meth:`cancel`)."""
        if kind not in versions.KINDS:
            raise ProjectError(f"kind must be one of {', '.join(versions.KINDS)}, got {kind!r}")
        if kind == "distilled" and not self.versions():
            raise ProjectError("train a version first: Publish distils the serving version")
        return jobs.start_training(self.folder, kind)

    def jobs(self) -> list[dict]:
        """Every training job, oldest first (one whose process has gone unfinished marked ``failed``)."""
        return jobs.refresh(self.store)

    def running_job(self) -> dict | None:
        """The training job queued or running (None: none)."""
        return jobs.running(self.store)

    def cancel(self, job_id: int | None = None) -> dict:
        """Stop training job ``job_id`` (None: the one running) and return it."""
        return jobs.cancel(self.store, job_id)

    def labels_waiting(self) -> bool:
        """Whether ``retrain_every`` training labels (a setting; 0: never) arrived since the newest
        fast version, and the fast model can be fitted."""
        every = self.settings()["retrain_every"]
        return bool(every) and versions.retrain_due(self.training_rows()[1], self.versions(), every)

    def versions(self) -> list[dict]:
        """Every version's record (``id``, ``kind``, ``created_at``, ``n_labels``, ``folder``, ``metrics``)."""
        return self.store.versions()

    def version(self, version: int | None = None) -> dict:
        """One version's record (default: the newest)."""
        return serving.select_version(self.store.versions(), version)

    def version_table(self) -> list[dict]:
        """Every version with its scores, audit estimate, whether it serves and its folder
        (:func:`agilecls.loop.review.version_rows`)."""
        return review.version_rows(self.store, self.labels, folder=self.folder)

    def classifier(self, version: int | None = None):
        """A version's saved classifier (default: the newest). The last one loaded is kept, so
        explaining rows one after another loads it once, and a long-running server holds one
        model in memory, not every version it ever explained."""
        chosen = self.version(version)
        if self._classifier is None or self._classifier[0] != chosen["id"]:
            self._classifier = (chosen["id"], load_classifier(self.folder / chosen["folder"]))
        return self._classifier[1]

    def loaded_version(self) -> int | None:
        """The id of the version whose classifier :meth:`classifier` keeps loaded (None: none)."""
        return None if self._classifier is None else self._classifier[0]

    # -- evaluation and serving ---------------------------------------------------------------------
    def out_of_fold(self) -> dict:
        """The training rows' out-of-fold scores from the current fit (:func:`agilecls.loop.review.out_of_fold`)."""
        frame = self.store.frame()
        rows, y_idx = self.training_rows(frame)
        versions.check_training(y_idx, self.labels)
        return review.out_of_fold(frame, rows, y_idx, self.scores(frame).fit)

    def evaluate(self) -> dict:
        """The audit estimate (with its interval) of the newest and the serving version, metrics on
        the texts you labelled (out of fold) and on held-out test texts, the confusion matrix at the
        decision rule, the learning curve, the review and stopping state (see
        :func:`agilecls.loop.review.evaluate`)."""
        return review.evaluate(self.store, self.labels, self.out_of_fold())

    def errors(self, limit: int = 50) -> list[dict]:
        """Training rows whose out-of-fold decision disagrees with their label, most confident first."""
        return review.errors(self.out_of_fold(), self.labels, limit)

    def review_state(self) -> dict:
        """Whether possible label errors are listed (``enough``), and if not, why (``message``)."""
        return review.review_state(self.labels, np.bincount(self.training_rows()[1], minlength=len(self.labels)))

    def label_issues(self, limit: int = 50) -> list[dict]:
        """Rows whose label may be wrong, the likeliest first (cleanlab's label quality), once every
        labelled class has :data:`agilecls.loop.review.REVIEW_MIN_PER_CLASS` labels (else none)."""
        return review.label_issues(self.out_of_fold(), self.labels, limit)

    def explain(self, text_id: str, method: str = "grad_dot_input", *, version: int | None = None,
                label: str | None = None, member: str | None = None, granularities=("words", "sentences")) -> dict:
        """Salience of a version's (default: the newest) decision on one text, for ``label`` (None:
        its prediction); ``member`` of a full version: ``"encoder"`` (default) or ``"llm"``
        (:func:`agilecls.loop.review.explain_row`)."""
        clf = self.classifier(version)
        return review.explain_row(clf, self.text(text_id)["text"], method, label, member, granularities)

    def audit_estimate(self, version: int | None = None) -> dict:
        """A version's (default: the newest) quality on the labelled random audit texts, with its 95% interval."""
        return serving.audit_estimate(self.store, self.labels, self.version(version))

    def serve(self, version: int) -> dict:
        """Make ``version`` the serving version (whatever the audit says); returns the serving state."""
        return serving.choose(self.store, version)

    def consider(self, version: int) -> dict:
        """Let ``version`` serve if the audit sample says it is better (:func:`agilecls.loop.serving.consider`)."""
        return serving.consider(self.store, self.labels, version)

    def serving(self) -> dict:
        """The serving version's record (the one exports use and ``agilecls project versions`` marks)."""
        return serving.serving_version(self.store)

    def serving_state(self) -> dict | None:
        """``{"version", "reason"}`` of the serving version (None before the first)."""
        return serving.current(self.store)

    def status(self) -> dict:
        """Texts, labels per class, versions, the serving one, the settings, the newest job, the strategies."""
        counts = scoring.count_texts(self.store.frame(), self.labels)
        return {"folder": str(self.folder), "labels": self.labels, **counts,
                "versions": len(self.store.versions()), "serving": self.store.meta().get("serving"),
                "settings": self.settings(), "jobs": self.jobs()[-1:], "strategies": sorted(strategies.STRATEGIES),
                "default_strategy": DEFAULT_STRATEGY}

    def export(self, path: str | os.PathLike, what: str = "labels", version: int | None = None) -> Path:
        """Write ``labels`` (id, text, label, is_test, audit, extra columns) or ``predictions`` of a
        version (default: the serving one), decided by that version's rule, to CSV / TSV / JSONL /
        Parquet."""
        frame = self.store.frame()
        extra = pd.DataFrame(frame.pop("extra").tolist(), index=frame.index)
        out = pd.concat([frame, extra.drop(columns=[c for c in extra if c in frame], errors="ignore")], axis=1)
        if what == "labels":
            return export_rows(out[out["label"].notna()], path)
        if what != "predictions":
            raise ProjectError(f"export what={what!r}: choose 'labels' or 'predictions'")
        chosen = self.serving() if version is None else self.version(version)
        return export_rows(serving.with_predictions(self.store, self.labels, chosen, out), path)
