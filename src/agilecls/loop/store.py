"""The labelling project's database: one SQLite file (stdlib ``sqlite3``, WAL journal) in the
project folder.

Why SQLite: an embedded real database, nothing to start, and a transaction that has committed
survives a SIGKILL of the process (WAL + ``synchronous=FULL``). Every write here is one
``BEGIN IMMEDIATE`` transaction; a caller acknowledges a label only after :meth:`ProjectStore.set_label`
has returned, i.e. after the commit. Each call opens its own connection, so the store is safe to
use from the server's threads and from a training subprocess at once (SQLite serialises writers;
``busy_timeout`` makes a second writer wait instead of failing).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ..validation import DatasetError

DB_NAME = "project.sqlite"
SCHEMA_VERSION = 1
#: Seconds a text handed to one client (browser tab) is kept from the others' queues.
LEASE_SECONDS = 600

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS texts (
    id TEXT PRIMARY KEY, position INTEGER NOT NULL UNIQUE, text TEXT NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}', is_test INTEGER NOT NULL DEFAULT 0, audit INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS labels (
    text_id TEXT PRIMARY KEY REFERENCES texts(id), label TEXT NOT NULL,
    annotator TEXT, labelled_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS label_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, text_id TEXT NOT NULL REFERENCES texts(id),
    label TEXT, previous TEXT, annotator TEXT, at REAL NOT NULL, kind TEXT NOT NULL DEFAULT 'label',
    undone INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS skipped (text_id TEXT PRIMARY KEY REFERENCES texts(id), at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS leases (text_id TEXT PRIMARY KEY REFERENCES texts(id), client TEXT NOT NULL,
    until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS prelabels (
    text_id TEXT PRIMARY KEY REFERENCES texts(id), scorer TEXT NOT NULL, proba TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, created_at REAL NOT NULL,
    n_labels INTEGER NOT NULL, folder TEXT NOT NULL, metrics TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS predictions (
    version_id INTEGER NOT NULL REFERENCES versions(id), text_id TEXT NOT NULL REFERENCES texts(id),
    proba TEXT NOT NULL, ood REAL, PRIMARY KEY (version_id, text_id));
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, status TEXT NOT NULL, pid INTEGER,
    started_at REAL NOT NULL, updated_at REAL NOT NULL, progress TEXT NOT NULL DEFAULT '{}',
    error TEXT, version_id INTEGER);
"""


class ProjectError(DatasetError):
    """A request the project cannot carry out as given; the message says what to change."""


class ProjectStore:
    """The project's tables, one transaction per call.

    Parameters
    ----------
    folder : path
        The project folder; the database is ``folder/project.sqlite``.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME

    # -- connections ------------------------------------------------------------------------------
    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA foreign_keys=ON")
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with self.connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def create(self, meta: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.connect() as con:
            con.executescript(SCHEMA)
        self.set_meta(schema_version=SCHEMA_VERSION, created_at=time.time(), **meta)

    def exists(self) -> bool:
        return self.path.is_file()

    def migrate(self) -> None:
        """Bring a project made by an earlier release up to this schema (adds columns, loses nothing)."""
        with self.transaction() as con:
            columns = {row[1] for row in con.execute("PRAGMA table_info(texts)")}
            if "audit" not in columns:
                con.execute("ALTER TABLE texts ADD COLUMN audit INTEGER NOT NULL DEFAULT 0")

    # -- meta ---------------------------------------------------------------------------------------
    def meta(self) -> dict:
        with self.connect() as con:
            return {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}

    def set_meta(self, **values) -> None:
        with self.transaction() as con:
            for key, value in values.items():
                con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # -- texts --------------------------------------------------------------------------------------
    def add_texts(self, ids: Sequence[str], texts: Sequence[str], extras: Sequence[dict],
                  labels: Sequence[str | None], annotator: str | None) -> int:
        """Insert rows (and their labels) in one transaction; an id already present refuses all."""
        now = time.time()
        with self.transaction() as con:
            taken = _existing(con, ids)
            if taken:
                raise ProjectError(f"{len(taken)} id(s) are already in the project (e.g. {taken[0]!r}); "
                                   "give new ids or import only the new rows")
            con.executemany("INSERT INTO texts (id, position, text, extra) VALUES (?, ?, ?, ?)",
                            _appended_rows(con, ids, texts, extras))
            given = [(i, lab) for i, lab in zip(ids, labels, strict=True) if lab is not None]
            con.executemany("INSERT INTO labels VALUES (?, ?, ?, ?)", [(i, lab, annotator, now) for i, lab in given])
            con.executemany("INSERT INTO label_log (text_id, label, annotator, at, kind) VALUES (?, ?, ?, ?, 'import')",
                            [(i, lab, annotator, now) for i, lab in given])
        return len(ids)

    def add_served(self, ids: Sequence[str], texts: Sequence[str], extras: Sequence[dict]) -> int:
        """Append texts a server answered, in one transaction, skipping ids already present (a served
        text's id is its hash, so a text served twice is stored once); returns how many were new."""
        with self.transaction() as con:
            rows = _appended_rows(con, ids, texts, extras)
            before = con.total_changes
            con.executemany("INSERT OR IGNORE INTO texts (id, position, text, extra) VALUES (?, ?, ?, ?)", rows)
            return con.total_changes - before

    def frame(self) -> pd.DataFrame:
        """Every text in import order: id, text, is_test, audit, label (None if unlabelled), extra (dict)."""
        with self.connect() as con:
            rows = con.execute("SELECT t.id, t.text, t.is_test, t.audit, l.label, t.extra FROM texts t "
                               "LEFT JOIN labels l ON l.text_id = t.id ORDER BY t.position").fetchall()
        frame = pd.DataFrame(rows, columns=["id", "text", "is_test", "audit", "label", "extra"])
        frame["is_test"] = frame["is_test"].astype(bool)
        frame["audit"] = frame["audit"].astype(bool)
        frame["label"] = frame["label"].astype(object).where(frame["label"].notna(), None)
        frame["extra"] = [json.loads(e) for e in frame["extra"]]
        return frame

    def text(self, text_id: str) -> dict:
        with self.connect() as con:
            row = con.execute("SELECT t.id, t.text, t.is_test, l.label, t.audit FROM texts t LEFT JOIN labels l "
                              "ON l.text_id = t.id WHERE t.id = ?", (text_id,)).fetchone()
        if row is None:
            raise ProjectError(f"no text with id {text_id!r} in this project")
        return {"id": row[0], "text": row[1], "is_test": bool(row[2]), "label": row[3], "audit": bool(row[4])}

    # -- labels -------------------------------------------------------------------------------------
    def set_label(self, text_id: str, label: str | None, annotator: str | None = None) -> dict:
        """Set (or, with None, remove) one label; returns the log entry once it is committed."""
        now = time.time()
        with self.transaction() as con:
            if con.execute("SELECT 1 FROM texts WHERE id = ?", (text_id,)).fetchone() is None:
                raise ProjectError(f"no text with id {text_id!r} in this project")
            previous = _label_of(con, text_id)
            _write_label(con, text_id, label, annotator, now)
            con.execute("DELETE FROM skipped WHERE text_id = ?", (text_id,))
            seq = con.execute("INSERT INTO label_log (text_id, label, previous, annotator, at) VALUES (?, ?, ?, ?, ?)",
                              (text_id, label, previous, annotator, now)).lastrowid
        return {"seq": seq, "id": text_id, "label": label, "previous": previous}

    def undo(self, annotator: str | None = None) -> dict | None:
        """Take back the newest label change by ``annotator`` (None: by anyone) not yet undone. If
        another annotator has changed that text's label since, theirs stays (``superseded``)."""
        now = time.time()
        with self.transaction() as con:
            row = con.execute("SELECT seq, text_id, label, previous FROM label_log WHERE undone = 0 AND "
                              "kind = 'label' AND (? IS NULL OR annotator = ?) ORDER BY seq DESC LIMIT 1",
                              (annotator, annotator)).fetchone()
            if row is None:
                return None
            seq, text_id, label, previous = row
            superseded = _label_of(con, text_id) != label  # changed by someone else since: leave theirs
            if not superseded:
                _write_label(con, text_id, previous, annotator, now)
            con.execute("UPDATE label_log SET undone = 1 WHERE seq = ?", (seq,))
        return {"seq": seq, "id": text_id, "label": label if superseded else previous, "undone": label,
                "superseded": superseded}

    def set_test(self, text_id: str, is_test: bool) -> None:
        with self.transaction() as con:
            row = con.execute("SELECT audit FROM texts WHERE id = ?", (text_id,)).fetchone()
            if row is not None and row[0] and not is_test:
                raise ProjectError(f"text {text_id!r} is in the random audit sample: it stays a test text, "
                                   "or the audit estimate would no longer be fair")
            if con.execute("UPDATE texts SET is_test = ? WHERE id = ?", (int(is_test), text_id)).rowcount == 0:
                raise ProjectError(f"no text with id {text_id!r} in this project")

    def mark_audit(self, ids: Sequence[str]) -> None:
        """Hand texts out as audit texts: test texts from now on, never trained on."""
        with self.transaction() as con:
            con.executemany("UPDATE texts SET audit = 1, is_test = 1 WHERE id = ?", [(i,) for i in ids])

    def skip(self, text_id: str) -> None:
        with self.transaction() as con:
            if con.execute("SELECT 1 FROM texts WHERE id = ?", (text_id,)).fetchone() is None:
                raise ProjectError(f"no text with id {text_id!r} in this project")
            con.execute("INSERT OR REPLACE INTO skipped VALUES (?, ?)", (text_id, time.time()))

    def unavailable(self, client: str | None) -> set[str]:
        """Ids not to offer ``client``: skipped, or leased to another client and not expired."""
        with self.connect() as con:
            skipped = {r[0] for r in con.execute("SELECT text_id FROM skipped")}
            leased = {r[0] for r in con.execute("SELECT text_id FROM leases WHERE until > ? AND client IS NOT ?",
                                                (time.time(), client))}
        return skipped | leased

    def lease(self, ids: Sequence[str], client: str) -> None:
        with self.transaction() as con:
            con.executemany("INSERT OR REPLACE INTO leases VALUES (?, ?, ?)",
                            [(i, client, time.time() + LEASE_SECONDS) for i in ids])

    def label_counts(self) -> dict[str, int]:
        with self.connect() as con:
            return dict(con.execute("SELECT label, COUNT(*) FROM labels GROUP BY label"))

    # -- cached scores ------------------------------------------------------------------------------
    def put_prelabels(self, scorer: str, ids: Sequence[str], proba) -> None:
        with self.transaction() as con:
            con.executemany("INSERT OR REPLACE INTO prelabels VALUES (?, ?, ?)",
                            [(i, scorer, json.dumps([round(float(p), 6) for p in row]))
                             for i, row in zip(ids, proba, strict=True)])

    def prelabels(self) -> tuple[str | None, dict[str, list[float]]]:
        with self.connect() as con:
            rows = con.execute("SELECT text_id, scorer, proba FROM prelabels").fetchall()
        return (rows[0][1] if rows else None), {i: json.loads(p) for i, _, p in rows}

    # -- versions and jobs --------------------------------------------------------------------------
    def add_version(self, kind: str, n_labels: int, folder: str, metrics: dict, ids, proba, ood) -> int:
        with self.transaction() as con:
            vid = con.execute("INSERT INTO versions (kind, created_at, n_labels, folder, metrics) "
                              "VALUES (?, ?, ?, ?, ?)",
                              (kind, time.time(), n_labels, folder, json.dumps(metrics))).lastrowid
            con.executemany("INSERT INTO predictions VALUES (?, ?, ?, ?)",
                            [(vid, i, json.dumps([round(float(p), 6) for p in row]), None if o is None else float(o))
                             for i, row, o in zip(ids, proba, ood, strict=True)])
        return vid

    def versions(self) -> list[dict]:
        with self.connect() as con:
            rows = con.execute("SELECT id, kind, created_at, n_labels, folder, metrics FROM versions ORDER BY id")
            return [{"id": r[0], "kind": r[1], "created_at": r[2], "n_labels": r[3], "folder": r[4],
                     "metrics": json.loads(r[5])} for r in rows]

    def predictions(self, version_id: int,
                    ids: Sequence[str] | None = None) -> dict[str, tuple[list[float], float | None]]:
        """A version's stored ``(probabilities, out-of-scope score)`` by text id (of ``ids`` only, if given)."""
        with self.connect() as con:
            if ids is None:
                rows = con.execute("SELECT text_id, proba, ood FROM predictions WHERE version_id = ?", (version_id,))
                return {i: (json.loads(p), o) for i, p, o in rows}
            out = {}
            for start in range(0, len(ids), 500):
                part = list(ids[start:start + 500])
                marks = ",".join("?" * len(part))
                out.update({i: (json.loads(p), o) for i, p, o in con.execute(
                    f"SELECT text_id, proba, ood FROM predictions WHERE version_id = ? AND text_id IN ({marks})",
                    [version_id, *part])})
            return out

    def start_job(self, kind: str) -> int:
        """A new running job; refused while another one runs (one training at a time)."""
        now = time.time()
        with self.transaction() as con:
            running = con.execute("SELECT id FROM jobs WHERE status IN ('queued', 'running')").fetchone()
            if running is not None:
                raise ProjectError(f"training job {running[0]} is still running; wait for it or cancel it")
            return con.execute("INSERT INTO jobs (kind, status, started_at, updated_at) VALUES (?, 'queued', ?, ?)",
                               (kind, now, now)).lastrowid

    def update_job(self, job_id: int, **fields) -> None:
        fields = {k: json.dumps(v) if k == "progress" else v for k, v in fields.items()}
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction() as con:
            con.execute(f"UPDATE jobs SET {sets}, updated_at = ? WHERE id = ?", (*fields.values(), time.time(), job_id))

    def jobs(self) -> list[dict]:
        with self.connect() as con:
            rows = con.execute("SELECT id, kind, status, pid, started_at, updated_at, progress, error, version_id "
                               "FROM jobs ORDER BY id").fetchall()
        keys = ["id", "kind", "status", "pid", "started_at", "updated_at", "progress", "error", "version_id"]
        return [dict(zip(keys, r[:6] + (json.loads(r[6]),) + r[7:], strict=True)) for r in rows]


def _appended_rows(con: sqlite3.Connection, ids: Sequence[str], texts: Sequence[str],
                   extras: Sequence[dict]) -> list[tuple]:
    """``texts`` rows (id, position, text, extra as JSON), positioned after the pool's last text."""
    start = con.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM texts").fetchone()[0]
    return [(i, start + n, t, json.dumps(e, default=str))
            for n, (i, t, e) in enumerate(zip(ids, texts, extras, strict=True))]


def _existing(con: sqlite3.Connection, ids: Sequence[str]) -> list[str]:
    taken = []
    for start in range(0, len(ids), 500):
        part = list(ids[start:start + 500])
        marks = ",".join("?" * len(part))
        taken += [r[0] for r in con.execute(f"SELECT id FROM texts WHERE id IN ({marks})", part)]
    return taken


def _label_of(con: sqlite3.Connection, text_id: str) -> str | None:
    row = con.execute("SELECT label FROM labels WHERE text_id = ?", (text_id,)).fetchone()
    return None if row is None else row[0]


def _write_label(con: sqlite3.Connection, text_id: str, label: str | None, annotator: str | None, now: float) -> None:
    if label is None:
        con.execute("DELETE FROM labels WHERE text_id = ?", (text_id,))
    else:
        con.execute("INSERT OR REPLACE INTO labels VALUES (?, ?, ?, ?)", (text_id, label, annotator, now))
