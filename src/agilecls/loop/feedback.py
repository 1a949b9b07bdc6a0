"""Served texts back into the labelling pool: ``agilecls serve --project DIR --sample RATE``.

A :class:`ServedSampler` takes a seeded random share ``rate`` of the texts the server answers and
appends them to the project's pool with what the server said about them (``extra``: ``source``
``"production"``, the classifier, its label, its out-of-scope score and the time). The request path
only puts rows on an in-memory queue; one background thread writes them to the project's SQLite
database in batches (one transaction per batch, every ``flush_seconds`` or ``batch_size`` rows), so
a crash loses at most the rows not yet written, never a committed row or a label. A text is stored
once: its id is a hash of the text, and texts already in the pool (imported or served before) are
skipped. When the queue is full (the database is slower than the traffic), rows are dropped and
counted rather than slowing the server.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import random
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from .store import ProjectError, ProjectStore

logger = logging.getLogger(__name__)

#: ``extra["source"]`` of a served text.
PRODUCTION = "production"


def served_id(text: str) -> str:
    """The pool id of a served text: a hash of the text, so a text served twice is stored once."""
    return "served-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


class ServedSampler:
    """Appends a random share of served texts to a project's pool, off the request path.

    Parameters
    ----------
    folder : path
        The project folder (it must exist: ``agilecls project new``).
    rate : float
        Share of the served texts kept, in (0, 1].
    batch_size : int, default=64
        Rows written per transaction at most.
    flush_seconds : float, default=1.0
        Longest time a sampled row waits before it is written.
    max_queue : int, default=10_000
        Rows allowed to wait; more are dropped (and counted in ``dropped``).
    seed : int or None, default=None
        Seed of the sampling (None: from the system).
    """

    def __init__(self, folder, rate: float, *, batch_size: int = 64, flush_seconds: float = 1.0,
                 max_queue: int = 10_000, seed: int | None = None):
        if not 0 < rate <= 1:
            raise ValueError(f"--sample must be a share in (0, 1], got {rate}")
        self.store = ProjectStore(Path(folder))
        if not self.store.exists():
            raise ProjectError(f"{folder} is not a labelling project; create it with `agilecls project new`")
        self.rate, self.batch_size, self.flush_seconds = rate, batch_size, flush_seconds
        self.known = {served_id(t) for t in self.store.frame()["text"]}
        self.counts = {"offered": 0, "sampled": 0, "stored": 0, "dropped": 0, "failed_writes": 0}
        self._rows: queue.Queue = queue.Queue(maxsize=max_queue)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._write_loop, name="agilecls-served-sampler", daemon=True)
        self._thread.start()

    def offer(self, classifier: str, texts: Sequence[str], labels: Sequence[str],
              scores: Sequence[float | None]) -> int:
        """Consider answered texts: each is kept with probability ``rate`` unless the pool has it;
        returns how many were queued. Never blocks."""
        queued, now = 0, time.time()
        with self._lock:
            self.counts["offered"] += len(texts)
            for text, label, score in zip(texts, labels, scores, strict=True):
                if self._random.random() >= self.rate:
                    continue
                key = served_id(text)
                if key in self.known:
                    continue
                row = (key, text, {"source": PRODUCTION, "classifier": classifier, "prediction": label,
                                   "ood_score": score, "served_at": now})
                try:
                    self._rows.put_nowait(row)
                except queue.Full:
                    self.counts["dropped"] += 1
                    continue
                self.known.add(key)
                self.counts["sampled"] += 1
                queued += 1
        return queued

    def _write_loop(self) -> None:
        pending: list = []
        while not (self._closed.is_set() and self._rows.empty() and not pending):
            deadline = time.monotonic() + self.flush_seconds
            while len(pending) < self.batch_size and time.monotonic() < deadline:
                try:
                    pending.append(self._rows.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            if pending:
                pending = self._write(pending)

    def _write(self, rows: list) -> list:
        """Write ``rows`` in one transaction; on failure keep them for the next try."""
        try:
            ids, texts, extras = zip(*rows, strict=True)
            new = self.store.add_served(ids, texts, extras)
        except Exception as err:  # a locked or full database: try again with the next batch
            self.counts["failed_writes"] += 1
            logger.warning("could not store %d served texts (%s); trying again", len(rows), err)
            time.sleep(min(self.flush_seconds, 1.0))
            return rows
        with self._lock:
            self.counts["stored"] += new
        return []

    def close(self, timeout: float = 30.0) -> dict:
        """Write what is queued, stop the thread, and return the counts."""
        self._closed.set()
        self._thread.join(timeout)
        return dict(self.counts)
