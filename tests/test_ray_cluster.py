"""``init_ray``: which Ray cluster ``--engine ray`` joins."""

from __future__ import annotations

import pytest

from agilecls.ray_cluster import init_ray


@pytest.mark.parametrize(("given", "environment", "joined"), [
    (None, None, "local"),  # never the cluster /tmp/ray/ray_current_cluster last named
    (None, "ray://head:10001", "ray://head:10001"),  # ray job submit sets RAY_ADDRESS
    ("10.0.0.5:6379", "ray://head:10001", "10.0.0.5:6379"),
])
def test_init_ray_joins_the_given_cluster_else_ray_address_else_a_new_local_one(monkeypatch, given, environment,
                                                                                 joined):
    ray = pytest.importorskip("ray")
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    if environment is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", environment)
    init_ray(given)
    assert [c["address"] for c in calls] == [joined]


def test_init_ray_leaves_an_initialised_ray_alone(monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "init", lambda **kwargs: pytest.fail("ray.init called again"))
    init_ray("ray://elsewhere:10001")
