"""Starting or joining the Ray cluster that ``--engine ray`` runs on (batch prediction and serving)."""

from __future__ import annotations

import os


def init_ray(address: str | None = None) -> None:
    """Join the Ray cluster at ``address``; without one, the cluster ``RAY_ADDRESS`` names (as under
    ``ray job submit``), else a new local Ray.

    Why not ``ray.init()``'s own default: it also joins whichever local cluster last wrote
    ``/tmp/ray/ray_current_cluster``, so a second ``agilecls serve --engine ray`` started while an
    earlier one was shutting down joined the dying cluster and lost its proxy with it. Does nothing
    when Ray is already initialised in this process.
    """
    import ray  # the optional extra: pip install "agilecls[ray]"

    if ray.is_initialized():
        return
    ray.init(address=address or os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False,
             log_to_driver=False, configure_logging=False)
