"""The server's Prometheus metrics: one registry per app, served at ``/metrics`` in the text format.

===========================================  =========  ====================  ==========================================
name                                         type       labels                what
===========================================  =========  ====================  ==========================================
``agilecls_requests_total``                  counter    route, status         HTTP requests answered
``agilecls_request_seconds``                 histogram  route                 time to answer a request
``agilecls_texts_total``                     counter    classifier, status    texts sent to ``/v1/predict`` (ok/error)
``agilecls_batch_texts``                     histogram  classifier            texts scored together in one batch
``agilecls_queue_depth``                     gauge                            requests waiting for the model worker
``agilecls_predicted_total``                 counter    classifier, label     texts given each label
``agilecls_ood_score``                       histogram  classifier            out-of-scope score of each text
``agilecls_out_of_scope_total``              counter    classifier            texts above the out-of-scope cut
``agilecls_drift_drifting``                  gauge      classifier            1 when the drift state is drifting
``agilecls_drift_label_shift``               gauge      classifier            total variation distance of label shares
``agilecls_drift_score_psi``                 gauge      classifier            PSI of the out-of-scope score
===========================================  =========  ====================  ==========================================

``route`` is the route's path template (``/v1/predict``), never the raw URL, so that the number of
series stays bounded; requests to unknown paths count under ``other``.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 10)) + (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServerMetrics:
    """The metrics of one server, in their own :class:`prometheus_client.CollectorRegistry`.

    Parameters
    ----------
    queue_depth : callable or None, default=None
        Returns the number of waiting requests when ``/metrics`` is read.
    """

    def __init__(self, queue_depth: Callable[[], float] | None = None):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("agilecls_requests", "HTTP requests answered.", ["route", "status"], registry=r)
        self.latency = Histogram("agilecls_request_seconds", "Time to answer a request.", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.texts = Counter("agilecls_texts", "Texts sent to /v1/predict.", ["classifier", "status"], registry=r)
        self.batch = Histogram("agilecls_batch_texts", "Texts scored together in one batch.", ["classifier"],
                               buckets=BATCH_BUCKETS, registry=r)
        self.queue = Gauge("agilecls_queue_depth", "Requests waiting for the model worker.", registry=r)
        if queue_depth is not None:
            self.queue.set_function(queue_depth)
        self.predicted = Counter("agilecls_predicted", "Texts given each label.", ["classifier", "label"], registry=r)
        self.ood = Histogram("agilecls_ood_score", "Out-of-scope score of each text.", ["classifier"],
                             buckets=SCORE_BUCKETS, registry=r)
        self.out_of_scope = Counter("agilecls_out_of_scope", "Texts above the classifier's out-of-scope cut.",
                                    ["classifier"], registry=r)
        self.drifting = Gauge("agilecls_drift_drifting", "1 when the drift state is drifting, else 0.",
                              ["classifier"], registry=r)
        self.label_shift = Gauge("agilecls_drift_label_shift", "Total variation distance of the label shares "
                                 "from the reference profile.", ["classifier"], registry=r)
        self.score_psi = Gauge("agilecls_drift_score_psi", "PSI of the out-of-scope score against the reference "
                               "profile.", ["classifier"], registry=r)

    def request(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def predictions(self, classifier: str, labels, scores, out_of_scope: list[bool] | None = None) -> None:
        """Count one scored batch: its size, each text's label and out-of-scope score."""
        self.batch.labels(classifier).observe(len(labels))
        self.texts.labels(classifier, "ok").inc(len(labels))
        for label, count in collections.Counter(labels).items():
            self.predicted.labels(classifier, label).inc(count)
        for score in scores:
            if score is not None:
                self.ood.labels(classifier).observe(score)
        if out_of_scope:
            self.out_of_scope.labels(classifier).inc(sum(out_of_scope))

    def failed_texts(self, classifier: str, count: int) -> None:
        self.texts.labels(classifier, "error").inc(count)

    def drift(self, classifier: str, status: dict) -> None:
        """Publish a :meth:`DriftMonitor.status` on the drift gauges."""
        self.drifting.labels(classifier).set(1.0 if status["state"] == "drifting" else 0.0)
        if status.get("label_shift") is not None:
            self.label_shift.labels(classifier).set(status["label_shift"])
        if status.get("score_psi") is not None:
            self.score_psi.labels(classifier).set(status["score_psi"])

    def render(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)
