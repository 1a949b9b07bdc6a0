"""Background training: one job at a time per project, in its own process, cancellable.

Why a process and not a thread: training holds both cores for minutes, cancelling must stop it
at once (SIGTERM), and a crash or a kill of the server must not take the job down with it, nor a
kill of the job take the server. The job writes its progress (stage, epoch, loss, seconds left)
to the project database, where the page and ``agilecls project status`` read it; the version it
trains becomes visible only when its row commits, so the previous version stays usable meanwhile.

The process runs :mod:`agilecls.loop.worker` (``python -m agilecls.loop.worker PROJECT_FOLDER
JOB_ID KIND``); this module starts, cancels and checks it through the project's database only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .store import ProjectError, ProjectStore

ACTIVE = ("queued", "running")


def start_training(folder: str | os.PathLike, kind: str = "full") -> int:
    """Start training a ``kind`` version in a background process; returns the job id.

    Refused while another job of the project is running.
    """
    store = ProjectStore(folder)
    refresh(store)
    job_id = store.start_job(kind)
    with open(Path(folder) / f"job-{job_id}.log", "ab") as log:  # the process keeps its own copy
        proc = subprocess.Popen([sys.executable, "-m", "agilecls.loop.worker", str(folder), str(job_id), kind],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    store.update_job(job_id, pid=proc.pid)
    return job_id


def running(store: ProjectStore) -> dict | None:
    """The job queued or running (None: none)."""
    return next((j for j in reversed(refresh(store)) if j["status"] in ACTIVE), None)


def cancel(store: ProjectStore, job_id: int | None = None) -> dict:
    """Stop job ``job_id`` (None: the one running) with SIGTERM to its process group; returns the job."""
    if job_id is None:
        job = running(store)
        if job is None:
            raise ProjectError("no training job is running; nothing to cancel")
        job_id = job["id"]
    job = next((j for j in store.jobs() if j["id"] == job_id), None)
    if job is None:
        raise ProjectError(f"no training job {job_id}")
    if job["status"] in ACTIVE:
        store.update_job(job_id, status="cancelled")  # first, so the dying job does not record a failure
        if job["pid"]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job["pid"], signal.SIGTERM)
    return next(j for j in store.jobs() if j["id"] == job_id)


def alive(pid: int | None) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child not yet reaped is a zombie: not alive
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def refresh(store: ProjectStore) -> list[dict]:
    """Jobs, with any whose process has gone without finishing marked ``failed``."""
    jobs = store.jobs()
    for job in jobs:
        stale = time.time() - job["started_at"] > 10  # a job just started may not have its pid yet
        if job["status"] in ACTIVE and stale and not alive(job["pid"]):
            store.update_job(job["id"], status="failed", error="the training process ended without finishing")
            job["status"] = "failed"
    return jobs
