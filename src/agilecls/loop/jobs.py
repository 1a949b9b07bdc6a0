"""Background training: one job at a time per project, in its own process, cancellable.

Why a process and not a thread: training holds both cores for minutes, cancelling must stop it
at once (SIGTERM), and a crash or a kill of the server must not take the job down with it, nor a
kill of the job take the server. The job writes its progress (stage, epoch, loss, seconds left)
to the project database, where the page and ``agilecls project status`` read it; the version it
trains becomes visible only when its row commits, so the previous version stays usable meanwhile.

    python -m agilecls.loop.jobs PROJECT_FOLDER JOB_ID KIND
"""

from __future__ import annotations

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
    log = open(Path(folder) / f"job-{job_id}.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "agilecls.loop.jobs", str(folder), str(job_id), kind],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    store.update_job(job_id, pid=proc.pid)
    return job_id


def cancel(folder: str | os.PathLike, job_id: int) -> dict:
    """Stop a running job (SIGTERM to its process group); returns the job."""
    store = ProjectStore(folder)
    job = next((j for j in store.jobs() if j["id"] == job_id), None)
    if job is None:
        raise ProjectError(f"no training job {job_id}")
    if job["status"] in ACTIVE:
        store.update_job(job_id, status="cancelled")  # first, so the dying job does not record a failure
        if job["pid"]:
            try:
                os.killpg(job["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
    return next(j for j in store.jobs() if j["id"] == job_id)


def _alive(pid: int | None) -> bool:
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
        if job["status"] in ACTIVE and stale and not _alive(job["pid"]):
            store.update_job(job["id"], status="failed", error="the training process ended without finishing")
            job["status"] = "failed"
    return jobs


def run_job(folder: str, job_id: int, kind: str) -> None:
    """The body of the background process."""
    from .project import Project

    project = Project(folder)
    store = project.store
    store.update_job(job_id, status="running", pid=os.getpid())
    last: dict = {}

    def report(info: dict) -> None:
        last.update(info)
        store.update_job(job_id, progress=dict(last))

    try:
        version = project.train(kind, progress=report)
    except BaseException as err:  # recorded for the page, then re-raised for the log
        if next(j for j in store.jobs() if j["id"] == job_id)["status"] != "cancelled":
            store.update_job(job_id, status="failed", error=f"{type(err).__name__}: {err}")
        raise
    store.update_job(job_id, status="done", version_id=version, progress={**last, "stage": "done"})


def main(argv: list[str] | None = None) -> None:
    folder, job_id, kind = (argv or sys.argv[1:])[:3]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run_job(folder, int(job_id), kind)


if __name__ == "__main__":
    main()
