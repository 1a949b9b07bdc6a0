"""The server: a prediction API for saved classifiers (``/v1/predict``, ``/healthz``) and the local
prompt-debugging web app (a JSON API under ``/api`` and a static page). Schema at /openapi.json.

Model work never runs on the event loop: it goes through one :class:`~agilecls.server.work.WorkQueue`
(one computation at a time, a bounded queue answered with 503 when full, a time limit per request
answered with 504), and prediction requests that wait together are scored as one batch. Bound to
127.0.0.1 by default; request bodies are capped; an optional bearer token guards ``/api`` and
``/v1``; classifiers are the ones named at start-up, never paths sent by a client. With a project
folder, the labelling page is served at ``/label`` and its API under ``/api/project``
(:mod:`agilecls.server.label_api`).
"""

from __future__ import annotations

import hmac
import os
import time
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ..ensemble import MemberNeeded
from ..lm.classifier import AgileClassifier
from ..lm.loading import DEFAULT_MODEL, LanguageModel, load_lm
from ..loop.feedback import ServedSampler
from ..monitoring.drift import ReferenceProfile
from ..persistence import load_classifier
from ..readers import parse_prompt_records
from ..salience.explanation import explain, generate
from ..salience.methods import METHODS, method_titles
from ..salience.spans import GRANULARITIES, aggregate
from ..validation import decision_labels
from .label_api import add_label_routes, text_view
from .predict_api import add_prediction_routes, named_classifier
from .schemas import (
    ERROR_RESPONSES,
    MAX_BODY,
    AggregateRequest,
    ClassifyRequest,
    GenerateRequest,
    ParseRequest,
    SalienceRequest,
)
from .work import QueueFull, WorkQueue, WorkTimeout, wait_for

STATIC = Path(__file__).parent / "static"
VIEW_GRANULARITIES = ["tokens", "words", "sentences", "lines", "paragraphs"]
#: Paths that need the bearer token when the server has one.
GUARDED_PREFIXES = ("/api/", "/v1/", "/metrics")


def sample_examples() -> list[dict]:
    """LIT's 12 sample prompts, shipped as package data."""
    text = resources.files("agilecls").joinpath("data/prompt_examples.jsonl").read_text(encoding="utf-8")
    return parse_prompt_records(text)


def _view(exp, pattern: str | None) -> dict:
    return exp.to_dict(VIEW_GRANULARITIES + (["regex"] if pattern else []), pattern)


def create_app(model=None, classifiers: dict | None = None, *, max_body: int = MAX_BODY, token: str | None = None,
               max_pending: int = 64, max_batch: int = 64, max_wait: float = 0.02,
               time_limit: float = 120.0, project: str | os.PathLike | None = None, sample: float = 0.0) -> FastAPI:
    """The app.

    Parameters
    ----------
    model : str, LanguageModel or None, default=None
        The language model of the prompt-debugging pages (loaded on first use; None: the default).
    classifiers : dict or None, default=None
        ``{name: saved folder or fitted classifier}``, loaded now: a damaged folder fails here.
    max_body : int, default=1_000_000
        Largest request body in bytes (413 above).
    token : str or None, default=None
        When set, ``/api`` and ``/v1`` need ``Authorization: Bearer <token>`` (401 otherwise).
    max_pending, max_batch, max_wait : int, int, float
        Model work queue: waiting requests before 503, texts scored per batch (1 = no
        micro-batching), seconds waited to fill a batch.
    time_limit : float, default=120.0
        Seconds a request may wait and run before 504.
    project : path or None, default=None
        A labelling project folder (:class:`agilecls.loop.Project`): adds the labelling page at
        ``/label`` and its API under ``/api/project`` (guarded by the token like all of ``/api``).
    sample : float, default=0.0
        With ``project``: the share of the texts answered at ``/v1/predict`` appended to the
        project's pool (:class:`agilecls.loop.feedback.ServedSampler`; 0 = none).
    """
    app = FastAPI(title="agilecls", version="1",
                  description="Predictions from saved classifiers; salience of prompt tokens, generation and "
                              "classifier decisions for prompt debugging.")
    queue = WorkQueue(max_pending=max_pending, max_batch=max_batch, max_wait=max_wait)
    state: dict = {"lm": model if isinstance(model, LanguageModel) else None, "zero_shot": {}}
    spec = model.spec if isinstance(model, LanguageModel) else (model or DEFAULT_MODEL)
    trained = {name: load_classifier(clf) if isinstance(clf, (str, os.PathLike)) else clf
               for name, clf in (classifiers or {}).items()}
    app.state.queue, app.state.classifiers = queue, trained
    app.router.on_shutdown.append(queue.close)

    async def run(fn):
        """``fn()`` on the model worker, alone (salience is not batched)."""
        return (await wait_for(queue.submit(lambda _: [fn()], [None]), time_limit))[0]

    def lm():
        if state["lm"] is None:
            state["lm"] = load_lm(spec)
        return state["lm"]

    def classifier(req: ClassifyRequest):
        if req.classifier:
            return named_classifier(trained, req.classifier)[1]
        labels = [x.strip() for x in (req.labels or []) if x.strip()]
        if len(labels) < 2:
            raise ValueError("give at least two labels (or pick a trained classifier)")
        key = (tuple(labels), req.instructions or "")
        if key not in state["zero_shot"]:
            clf = AgileClassifier(labels=labels, model=lm(), instructions=req.instructions, progress=False)
            state["zero_shot"][key] = clf.fit()
            while len(state["zero_shot"]) > 16:
                state["zero_shot"].pop(next(iter(state["zero_shot"])))
        return state["zero_shot"][key]

    @app.middleware("http")
    async def guard(request: Request, call_next):
        length = request.headers.get("content-length")
        if request.method in ("POST", "PUT") and length is None and request.headers.get("transfer-encoding"):
            return JSONResponse({"detail": "send a Content-Length header"}, status_code=411)
        if length is not None and not length.strip().isdigit():
            return JSONResponse({"detail": "Content-Length must be a number of bytes"}, status_code=400)
        if length is not None and int(length) > max_body:
            return JSONResponse({"detail": f"request body over {max_body} bytes"}, status_code=413)
        if token and request.url.path.startswith(GUARDED_PREFIXES):
            sent = request.headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                return JSONResponse({"detail": "send the server's token as 'Authorization: Bearer <token>'"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.exception_handler(ValueError)
    async def value_error(request: Request, err: ValueError):
        return JSONResponse({"detail": str(err)}, status_code=400)

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, err: QueueFull):
        return JSONResponse({"detail": str(err)}, status_code=503, headers={"Retry-After": str(err.retry_after)})

    @app.exception_handler(WorkTimeout)
    async def work_timeout(request: Request, err: WorkTimeout):
        return JSONResponse({"detail": str(err)}, status_code=504)

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    folders = {name: c for name, c in (classifiers or {}).items() if isinstance(c, (str, os.PathLike))}
    profiles = {name: p for name, p in ((n, ReferenceProfile.load(f)) for n, f in folders.items()) if p is not None}
    sampler = None
    if sample:
        if project is None:
            raise ValueError("sampling served texts needs a project to put them in (--project DIR)")
        sampler = ServedSampler(project, sample)
        app.router.on_shutdown.append(sampler.close)
    app.state.sampler = sampler
    add_prediction_routes(app, trained, queue, time_limit, profiles=profiles, sampler=sampler)
    app.state.project = None if project is None else add_label_routes(app, project, queue, time_limit)
    project_name = None if app.state.project is None else app.state.project.meta.get("name") or str(project)

    if app.state.project is not None:
        @app.get("/label", include_in_schema=False)
        def label_page():
            return FileResponse(STATIC / "label.html")

    @app.get("/api/info", responses=ERROR_RESPONSES)
    async def info() -> dict:
        """The model, the salience methods (with their display titles) and granularities, the trained
        classifiers."""
        return {"model": spec, "loaded": state["lm"] is not None, "methods": list(METHODS),
                "method_titles": method_titles(),
                "signed": {k: fn.signed for k, fn in METHODS.items()}, "granularities": list(GRANULARITIES),
                "classifiers": sorted(trained), "max_body": max_body, "project": project_name}

    @app.get("/api/examples", responses=ERROR_RESPONSES)
    def examples() -> list[dict]:
        """The sample prompts (LIT's prompt-debugging set)."""
        return sample_examples()

    @app.post("/api/examples/parse", responses=ERROR_RESPONSES)
    def parse(req: ParseRequest) -> list[dict]:
        """Parse an uploaded JSONL of prompt/target records."""
        return parse_prompt_records(req.jsonl)

    @app.post("/api/generate", responses=ERROR_RESPONSES)
    async def generate_route(req: GenerateRequest) -> dict:
        """The model's greedy continuation of the prompt."""
        start = time.perf_counter()
        target = await run(lambda: generate(lm(), req.prompt, req.max_new_tokens))
        return {"target": target, "seconds": time.perf_counter() - start}

    @app.post("/api/salience", responses=ERROR_RESPONSES)
    async def salience(req: SalienceRequest) -> dict:
        """Salience of each prompt token for the (given or generated) target, with spans at every
        granularity."""
        exp = await run(lambda: explain(lm(), req.prompt, req.target or None, req.method,
                                        target_span=req.target_span, max_new_tokens=req.max_new_tokens,
                                        steps=req.steps))
        return _view(exp, req.pattern)

    @app.post("/api/aggregate", responses=ERROR_RESPONSES)
    def aggregate_route(req: AggregateRequest) -> list[dict]:
        """Re-group token scores (e.g. by a custom regex, searched under a time limit) without
        recomputing them."""
        return aggregate(req.prompt, [t.model_dump() for t in req.tokens], req.granularity, req.pattern)

    @app.post("/api/classify", responses=ERROR_RESPONSES)
    async def classify(req: ClassifyRequest) -> dict:
        """Label probabilities and the salience of the decision over the text."""
        return await run(lambda: _classify(classifier(req), req))

    return app


def _classify(clf, req: ClassifyRequest) -> dict:
    """The classifier's probabilities and ``prediction`` (its own decision: a threshold or an
    abstention may overrule the most probable class) and, where one gradient explains it, the
    salience over the text of ``label`` (``req.label``, else what the classifier's explanation
    picks: its decision, or the most probable class)."""
    name = req.classifier or f"zero-shot: {', '.join(map(str, clf.classes_))}"
    classes = [str(c) for c in clf.classes_]
    details = clf.details([req.text])
    probs = {c: float(p) for c, p in zip(classes, details["proba"][0], strict=True)}
    prediction = decision_labels(details["pred"], classes)[0]
    try:
        exp = explain(clf, req.text, method=req.method, label=req.label, steps=req.steps)
    except MemberNeeded:  # an ensemble: its combined probability has no single gradient to show
        return {"text": req.text, "probabilities": probs, "prediction": prediction,
                "label": req.label or prediction, "classifier": name, "explanation": None}
    data = text_view(_view(exp, None), req.text, VIEW_GRANULARITIES)
    data.update(explanation=True, probabilities=probs, prediction=prediction, label=exp.info["label"],
                classifier=name)
    return data
