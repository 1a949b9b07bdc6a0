"""``/api/project/...``: the labelling page's JSON API for one project (``agilecls label DIR`` or
``agilecls serve --project DIR``).

Labels, undo, test flags and skips are SQLite writes: they run on the server's thread pool, never
behind model work, and a label is answered 200 only once :meth:`Project.label` has committed it.
Every ``retrain_every`` training labels (a project setting, default 8) a label also starts a fast
retrain on the model worker in the background, so suggestions follow the labels without a button;
the answer says so (``retraining``) and the page picks up the new version from ``status``.
Everything that runs the sentence encoder or fits a model (the queue, fast training, evaluation,
error review, salience) goes through the server's one model worker (:class:`WorkQueue`), so it
neither blocks the event loop nor competes with another model computation for the cores. The full
model trains in a background process (:mod:`agilecls.loop.jobs`); its progress is read from the
project database by ``GET /api/project/status``.
"""

from __future__ import annotations

import asyncio
import os
from functools import partial

from fastapi import FastAPI, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from ..jsonsafe import jsonable
from ..loop import Project, ProjectError
from ..salience.methods import METHODS
from ..salience.spans import aggregate
from .schemas import (
    LABEL_RESPONSES,
    CancelRequest,
    ExplainRequest,
    HoldOutRequest,
    LabelRequest,
    NextRequest,
    ServeRequest,
    SettingsRequest,
    SkipRequest,
    TrainRequest,
    UndoRequest,
)
from .work import WorkQueue, wait_for

PREFIX = "/api/project"
#: Granularities of the text-only spans sent with an explanation.
TEXT_GRANULARITIES = ("words", "sentences")


#: JSON-safe copy of a route's result (NaN and infinities as null).
plain = partial(jsonable, finite=True)


def text_view(data: dict, text: str, granularities=TEXT_GRANULARITIES) -> dict:
    """An explanation dict with the text's own tokens and spans added.

    Parameters
    ----------
    data : dict
        ``Explanation.to_dict()`` of a classifier's decision (its ``info["text_range"]`` locates the
        text in the prompt; tokens outside the text are marked ``in_text=False`` or ``special``).
    text : str
        The text that was classified.
    granularities : sequence of str, default=("words", "sentences")
        The spans to add.

    Returns
    -------
    dict
        ``data`` plus ``text``, ``text_tokens`` and ``text_spans`` (one list per granularity),
        with offsets in the text, whatever prompt the model wrapped it in.
    """
    start = (data.get("info") or {}).get("text_range", [0, len(text)])[0]
    tokens = [{**t, "start": t["start"] - start, "end": t["end"] - start} for t in data["tokens"]
              if t.get("in_text", not t.get("special"))]
    return {**data, "text": text, "text_tokens": tokens,
            "text_spans": {g: aggregate(text, tokens, g) for g in granularities}}


def explain_text(project: Project, text_id: str, method: str, label: str | None = None) -> dict:
    """Salience of the newest version's decision on one text, for ``label`` (None: its prediction).

    :meth:`agilecls.loop.Project.explain` on the newest version (a full version through its
    encoder member), made JSON-safe for the page.

    Parameters
    ----------
    project : Project
    text_id : str
        A text of the project.
    method : str
        A salience method of :data:`agilecls.salience.methods.METHODS`.
    label : str or None, default=None
        The label whose salience to explain (None: the version's prediction).

    Returns
    -------
    dict
        JSON-safe :func:`text_view` of the explanation, with ``version``: the version explained.
    """
    newest = project.version()
    text = project.text(text_id)["text"]
    data = project.explain(text_id, method, version=newest["id"], label=label, granularities=TEXT_GRANULARITIES)
    data = text_view(data, text)
    data["version"] = newest["id"]
    return plain(data)


def add_label_routes(app: FastAPI, folder: str | os.PathLike, queue: WorkQueue, time_limit: float) -> Project:
    """Add the labelling routes for the project in ``folder`` to ``app``; returns the opened project.

    Parameters
    ----------
    app : FastAPI
    folder : path
        A project folder (:class:`agilecls.loop.ProjectError` if it holds none).
    queue : WorkQueue
        The server's model worker: model work runs there, one computation at a time.
    time_limit : float
        Seconds a model request may wait and run before 504.

    Returns
    -------
    Project
    """
    project = Project(folder)

    async def run(fn):
        """``fn()`` on the model worker, alone."""
        return (await wait_for(queue.submit(lambda _: [fn()], [None]), time_limit))[0]

    def known(text_id: str) -> dict:
        try:
            return project.text(text_id)
        except ProjectError as err:
            raise HTTPException(404, str(err)) from None

    @app.get(PREFIX + "/status", responses=LABEL_RESPONSES)
    def status() -> dict:
        """Texts, labels per class, versions, the strategies and the newest training job."""
        info = project.status()
        jobs = info.pop("jobs")
        task = retrain["task"]
        return plain({**info, "retraining": bool(task is not None and not task.done()),
                      "retrain_error": retrain["error"], "name": project.meta.get("name") or project.folder.name,
                      "instructions": project.meta.get("instructions", ""), "methods": list(METHODS),
                      "job": jobs[-1] if jobs else None, "training": project.running_job() is not None})

    @app.post(PREFIX + "/next", responses=LABEL_RESPONSES)
    async def next_texts(req: NextRequest) -> list[dict]:
        """The next texts to label, with the suggested label and its probability; they are kept
        from other clients' queues for a while."""
        return plain(await run(lambda: project.suggest(req.k, req.strategy, client=req.client)))

    retrain: dict = {"task": None, "error": None}

    def retrain_due() -> bool:
        return (retrain["task"] is None or retrain["task"].done()) and project.labels_waiting()

    async def retrain_in_background() -> None:
        """Retrain until no ``retrain_every`` labels wait (labels keep coming while it trains)."""
        try:
            while True:
                await run(lambda: project.train("fast"))
                retrain["error"] = None
                if not await run_in_threadpool(project.labels_waiting):
                    return
        except Exception as err:  # shown on the page; the next label tries again
            retrain["error"] = f"{type(err).__name__}: {err}"

    @app.post(PREFIX + "/label", responses=LABEL_RESPONSES)
    async def label(req: LabelRequest) -> dict:
        """Label one text; answered once the label is committed (``retraining``: a background
        retrain of the fast model started with it)."""
        await run_in_threadpool(known, req.id)
        entry = await run_in_threadpool(project.label, req.id, req.label, req.client)
        due = await run_in_threadpool(retrain_due)
        if due:
            retrain["task"] = asyncio.ensure_future(retrain_in_background())
        return {**entry, "counts": await run_in_threadpool(project.label_counts), "retraining": due}

    @app.post(PREFIX + "/undo", responses=LABEL_RESPONSES)
    def undo(req: UndoRequest) -> dict:
        """Take back this client's newest label; ``text`` is that text again (null: nothing to undo)."""
        entry = project.undo(annotator=req.client)
        return {"undone": entry, "text": None if entry is None else project.text(entry["id"]),
                "counts": project.label_counts()}

    @app.post(PREFIX + "/test", responses=LABEL_RESPONSES)
    def hold_out(req: HoldOutRequest) -> dict:
        """Hold a text out for testing (never trained on), or put it back."""
        known(req.id)
        project.mark_test(req.id, req.is_test)
        return project.text(req.id)

    @app.post(PREFIX + "/skip", responses=LABEL_RESPONSES)
    def skip(req: SkipRequest) -> dict:
        """Leave a text out of the queue."""
        known(req.id)  # the store would answer an unknown id with an IntegrityError
        project.skip(req.id)
        return {"id": req.id, "skipped": True}

    @app.post(PREFIX + "/train", responses=LABEL_RESPONSES)
    async def train(req: TrainRequest) -> dict:
        """``fast``: train a version now and answer with it; ``full`` and ``distilled`` (Publish):
        start the background job."""
        if req.kind == "fast":
            version = await run(lambda: project.train("fast"))
            newest = next(v for v in project.versions() if v["id"] == version)
            return plain({"kind": "fast", "version": newest})
        job = await run_in_threadpool(project.running_job)
        if job is not None:
            raise HTTPException(409, f"training job {job['id']} is still running; wait for it or cancel it")
        try:
            if not project.versions():
                raise ProjectError("train a version first: Publish distils the serving version")
            job_id = await run_in_threadpool(project.start_training, req.kind)
        except ProjectError as err:  # another request started one meanwhile, or nothing to distil
            raise HTTPException(409, str(err)) from None
        return {"kind": req.kind, "job": job_id}

    @app.post(PREFIX + "/serve", responses=LABEL_RESPONSES)
    def serve_version(req: ServeRequest) -> dict:
        """Make a version the serving one, whatever the audit estimate says."""
        if not any(v["id"] == req.version for v in project.versions()):
            raise HTTPException(404, f"no version {req.version}")
        return plain(project.serve(req.version))

    @app.post(PREFIX + "/settings", responses=LABEL_RESPONSES)
    def settings(req: SettingsRequest) -> dict:
        """Change the decision rule, its positive class, the audit share or the retrain interval."""
        return plain(project.settings(**req.model_dump(exclude_none=True)))

    @app.post(PREFIX + "/cancel", responses=LABEL_RESPONSES)
    def cancel(req: CancelRequest) -> dict:
        """Stop a running training job."""
        if not any(j["id"] == req.job for j in project.jobs()):
            raise HTTPException(404, f"no training job {req.job}")
        return plain(project.cancel(req.job))

    @app.get(PREFIX + "/versions", responses=LABEL_RESPONSES)
    def versions() -> list[dict]:
        """Every trained version with its metrics (cross-validated, and on the test rows)."""
        return plain(project.versions())

    @app.get(PREFIX + "/evaluate", responses=LABEL_RESPONSES)
    async def evaluate() -> dict:
        """Cross-validated metrics, confusion matrix, reliability, test metrics, learning curve."""
        return plain(await run(project.evaluate))

    @app.get(PREFIX + "/errors", responses=LABEL_RESPONSES)
    async def errors(limit: int = Query(50, ge=1, le=1000)) -> list[dict]:
        """Training rows whose out-of-fold prediction disagrees with their label."""
        return plain(await run(lambda: project.errors(limit)))

    @app.get(PREFIX + "/issues", responses=LABEL_RESPONSES)
    async def issues(limit: int = Query(50, ge=1, le=1000)) -> list[dict]:
        """Rows whose label may be wrong (cleanlab), the likeliest first."""
        return plain(await run(lambda: project.label_issues(limit)))

    @app.post(PREFIX + "/explain", responses=LABEL_RESPONSES)
    async def explain_route(req: ExplainRequest) -> dict:
        """Salience of the newest version's decision (or of ``label``) over one text's words."""
        known(req.id)
        return await run(lambda: explain_text(project, req.id, req.method, req.label))

    return project
