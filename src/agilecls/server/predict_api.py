"""``POST /v1/predict``, ``GET /healthz`` and ``GET /metrics``: the prediction API for saved
classifiers, ensembles included, with dynamic micro-batching through the server's work queue, its
Prometheus metrics (:mod:`agilecls.monitoring.metrics`) and drift checks against each classifier's
reference profile (:mod:`agilecls.monitoring.drift`)."""

from __future__ import annotations

import math
import os
import socket
import time

from fastapi import FastAPI, HTTPException, Request, Response

from ..monitoring.drift import DriftMonitor, ReferenceProfile
from ..monitoring.metrics import CONTENT_TYPE, ServerMetrics
from ..validation import decision_labels
from .schemas import ERROR_RESPONSES, Health, Prediction, PredictRequest, PredictResponse
from .work import WorkQueue, wait_for

#: Response header naming the process that answered (:func:`instance_name`).
INSTANCE_HEADER = "X-Agilecls-Instance"


def instance_name() -> str:
    """``host:pid`` of this process: which Ray Serve replica answered, since each replica's
    ``/metrics`` and drift state are its own."""
    return f"{socket.gethostname()}:{os.getpid()}"


def score_texts(clf, texts: list[str]) -> list[Prediction]:
    """One :class:`Prediction` per text from one ``details`` pass (labels, probabilities, and the
    out-of-scope score where the classifier has one; a non-finite score is sent as null). A
    multi-label classifier's label is the labels it gives joined by ``|`` (empty for none)."""
    details = clf.details(texts)
    classes = [str(c) for c in clf.classes_]
    ood = details.get("ood_score")
    predictions = []
    for i, (pred, proba) in enumerate(zip(decision_labels(details["pred"], classes), details["proba"], strict=True)):
        score = float(ood[i]) if ood is not None else math.nan
        predictions.append(Prediction(label=pred, probabilities=dict(zip(classes, map(float, proba), strict=True)),
                                      ood_score=score if math.isfinite(score) else None))
    return predictions


def named_classifier(classifiers: dict, name: str | None):
    """(name, classifier) of a classifier given at start-up (default: the first); 404 otherwise."""
    if not classifiers:
        raise HTTPException(404, "the server has no classifier; start it with `agilecls serve --model DIR`")
    name = name or next(iter(classifiers))
    if name not in classifiers:
        raise HTTPException(404, f"unknown classifier {name!r}; the server has {sorted(classifiers)}")
    return name, classifiers[name]


def add_prediction_routes(app: FastAPI, classifiers: dict, queue: WorkQueue, time_limit: float, *,
                          profiles: dict[str, ReferenceProfile] | None = None, sampler=None) -> ServerMetrics:
    """Add the prediction routes for ``classifiers`` (``{name: fitted classifier}``) to ``app``, with a
    drift monitor for each classifier that has a reference profile in ``profiles``, and a
    :class:`~agilecls.loop.feedback.ServedSampler` (or None) offered every answered text; returns the
    server's metrics."""
    metrics = ServerMetrics(queue_depth=lambda: queue.pending)
    instance = instance_name()
    monitors = {name: DriftMonitor(profile) for name, profile in (profiles or {}).items() if name in classifiers}
    app.state.metrics, app.state.drift = metrics, monitors

    @app.middleware("http")
    async def count_requests(request: Request, call_next):
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers[INSTANCE_HEADER] = instance
            return response
        finally:
            route = request.scope.get("route")
            metrics.request(getattr(route, "path", "other"), status, time.perf_counter() - start)

    def score_and_watch(name: str, clf, texts: list[str]) -> list[Prediction]:
        try:
            predictions = score_texts(clf, texts)
        except Exception:
            metrics.failed_texts(name, len(texts))
            raise
        labels, scores = [p.label for p in predictions], [p.ood_score for p in predictions]
        classes = {str(c) for c in clf.classes_}
        metrics.predictions(name, labels, scores, [label not in classes and "|" not in label and label != ""
                                                   for label in labels])
        if name in monitors:
            monitors[name].update(labels, scores)
            metrics.drift(name, monitors[name].status())
        if sampler is not None:
            sampler.offer(name, texts, labels, scores)
        return predictions

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        """Liveness, load and each watched classifier's drift state: answered on the event loop,
        never behind model work."""
        return Health(status="ok", pending=queue.pending, running=queue.running, batches=queue.batches,
                      items_per_batch=round(queue.items_run / max(queue.batches, 1), 2),
                      classifiers=list(classifiers),
                      drift={name: monitor.status() for name, monitor in monitors.items()}, instance=instance)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        """Every metric in the Prometheus text format (names in :mod:`agilecls.monitoring.metrics`)."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.post("/v1/predict", response_model=PredictResponse, responses=ERROR_RESPONSES)
    async def predict(req: PredictRequest) -> PredictResponse:
        """Label each text: the label, the probability of every label, and how likely the text is out
        of scope. Requests that arrive together are scored as one batch."""
        name, clf = named_classifier(classifiers, req.classifier)
        future = queue.submit(lambda texts: score_and_watch(name, clf, texts), req.texts, key=("predict", name))
        return PredictResponse(classifier=name, predictions=await wait_for(future, time_limit))

    return metrics
