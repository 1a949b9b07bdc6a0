"""The background training process (:mod:`agilecls.loop.jobs` starts it):

    python -m agilecls.loop.worker PROJECT_FOLDER JOB_ID KIND

It opens the project, trains a ``KIND`` version and writes its progress, its end (``done`` with
the version, or ``failed`` with the error) to the job's row in the project database.
"""

from __future__ import annotations

import os
import signal
import sys

from .project import Project


def run_job(folder: str, job_id: int, kind: str) -> None:
    """Train a ``kind`` version of the project in ``folder`` as job ``job_id``."""
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
