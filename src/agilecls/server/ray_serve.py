"""The prediction server on Ray Serve: the same app, one copy per replica, behind Ray's HTTP proxy.

Each replica builds the app with :func:`agilecls.server.create_app` (Ray Serve's ingress accepts a
function that returns an ASGI app and runs it on the replica), so ``/v1/predict``, ``/healthz`` and
``/metrics`` have the same schemas, the same errors and the same micro-batching work queue as
``agilecls serve`` on one process: a replica scores the requests that wait together as one batch,
and Ray's proxy spreads requests over the replicas. ``/metrics`` and the drift state of ``/healthz``
are those of the replica that answers, which every response names in its ``X-Agilecls-Instance``
header (``host:pid``); scrape each replica, or read Ray's own metrics, for totals.
"""

from __future__ import annotations

import os

from ..ray_cluster import init_ray

#: Name of the Ray Serve application and deployment.
APP_NAME = "agilecls"


def build_deployment(classifiers: dict[str, str], *, replicas: int = 1, threads: int | None = None,
                     app_options: dict | None = None):
    """A bound Ray Serve application serving saved classifier folders, ``replicas`` copies.

    Parameters
    ----------
    classifiers : dict
        ``{name: saved classifier folder}`` (each replica loads them).
    replicas : int, default=1
        Copies of the app; Ray's proxy spreads requests over them.
    threads : int or None, default=None
        Torch threads per replica (None: the machine's cores divided by ``replicas``).
    app_options : dict or None, default=None
        Further arguments of :func:`~agilecls.server.create_app` (``max_batch``, ``token``, ...).
    """
    from ray import serve

    if replicas < 1:
        raise ValueError(f"--replicas must be at least 1, got {replicas}")
    folders = {name: str(folder) for name, folder in classifiers.items()}
    options = dict(app_options or {})
    per_replica = threads or max(1, (os.cpu_count() or 1) // replicas)

    def build_app():
        import torch

        from .app import create_app

        torch.set_num_threads(per_replica)
        return create_app(classifiers=folders, **options)

    deployment = serve.deployment(serve.ingress(build_app)(), name=APP_NAME, num_replicas=replicas,
                                  ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
    return deployment.bind()


def serve_on_ray(classifiers: dict[str, str], *, replicas: int = 1, address: str | None = None,
                 host: str = "127.0.0.1", port: int = 8765, blocking: bool = True, **app_options):
    """Serve ``classifiers`` on Ray Serve at ``http://host:port``, on the Ray cluster at ``address``
    (None: the one ``RAY_ADDRESS`` names, else a new local Ray); with ``blocking`` wait until
    interrupted, else return the app's handle."""
    from ray import serve

    init_ray(address)
    serve.start(http_options={"host": host, "port": port})
    return serve.run(build_deployment(classifiers, replicas=replicas, app_options=app_options), name=APP_NAME,
                     route_prefix="/", blocking=blocking)
