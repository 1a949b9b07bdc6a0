"""``agilecls serve --engine ray``: the same app on Ray Serve replicas answers as the local server does."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from agilecls import EncoderClassifier
from agilecls.server import create_app

from conftest import build_tiny_sentence_encoder, free_port, topic_texts

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("one_thread")]

TOPICS = {"refund": "refund money back return order paid charge card price",
          "delivery": "parcel delivery late shipping courier arrive tracking box address"}


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory):
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.serve")
    from ray import serve

    from agilecls.server.ray_serve import serve_on_ray

    root = tmp_path_factory.mktemp("ray_serve")
    encoder = build_tiny_sentence_encoder(root, set(" ".join(TOPICS.values()).split()))
    texts, y = topic_texts(TOPICS, 0, 30)
    EncoderClassifier(encoder, head="logistic", epochs=3, device="cpu", random_state=0).fit(texts, y).save(root / "clf")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()
    try:
        serve_on_ray({"topics": str(root / "clf")}, replicas=2, port=port, blocking=False)
        yield f"http://127.0.0.1:{port}", root / "clf"
    finally:
        serve.shutdown()
        ray.shutdown()


def test_ray_serve_answers_equal_the_local_server(ray_server):
    url, folder = ray_server
    texts, _ = topic_texts(TOPICS, 5, 6)
    with TestClient(create_app(classifiers={"topics": str(folder)})) as local:
        expected = local.post("/v1/predict", json={"texts": texts}).json()
        refused_locally = local.post("/v1/predict", json={"texts": texts, "classifier": "nope"})
    answers = [httpx.post(f"{url}/v1/predict", json={"texts": texts}, timeout=60).json() for _ in range(4)]
    for got in answers:  # several requests: both replicas answer
        assert [p["label"] for p in got["predictions"]] == [p["label"] for p in expected["predictions"]]
        np.testing.assert_allclose([[p["probabilities"][c] for c in TOPICS] for p in got["predictions"]],
                                   [[p["probabilities"][c] for c in TOPICS] for p in expected["predictions"]],
                                   atol=1e-6)
        np.testing.assert_allclose([p["ood_score"] for p in got["predictions"]],
                                   [p["ood_score"] for p in expected["predictions"]], atol=1e-6)
    refused = httpx.post(f"{url}/v1/predict", json={"texts": texts, "classifier": "nope"}, timeout=60)
    assert (refused.status_code, refused.json()) == (refused_locally.status_code, refused_locally.json()) and \
        refused.status_code == 404
    health = httpx.get(f"{url}/healthz", timeout=60).json()
    assert health["status"] == "ok" and health["classifiers"] == ["topics"]
    assert "agilecls_requests_total" in httpx.get(f"{url}/metrics", timeout=60).text
