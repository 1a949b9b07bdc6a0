"""``--engine ray``: batch prediction on Ray Data and serving on Ray Serve give the local engines'
answers. One local Ray (``ray.init(num_cpus=2)``) for both: starting it costs seconds."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from agilecls import EncoderClassifier
from agilecls.batch.local import predict_file
from agilecls.server import create_app

from conftest import build_tiny_sentence_encoder, free_port, topic_texts

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("one_thread")]

TOPICS = {"refund": "refund money back return order paid charge card price",
          "delivery": "parcel delivery late shipping courier arrive tracking box address"}


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory):
    """A saved encoder classifier on a tiny random sentence encoder."""
    root = tmp_path_factory.mktemp("ray")
    encoder = build_tiny_sentence_encoder(root, set(" ".join(TOPICS.values()).split()))
    texts, y = topic_texts(TOPICS, 0, 30)
    EncoderClassifier(encoder, head="logistic", epochs=3, device="cpu", random_state=0).fit(texts, y).save(root / "clf")
    return root / "clf"


@pytest.fixture(scope="module")
def ray_server(local_ray, classifier_folder):
    pytest.importorskip("ray.serve")
    from ray import serve

    from agilecls.server.ray_serve import serve_on_ray

    port = free_port()
    try:
        serve_on_ray({"topics": str(classifier_folder)}, replicas=2, port=port, blocking=False)
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()


def test_ray_engine_equals_the_local_engine_row_for_row(classifier_folder, tmp_path, local_ray):
    from agilecls.batch import predict_dataset  # the public name, imported on first use

    texts, topics = topic_texts(TOPICS, 3, 150)
    rows = pd.DataFrame({"doc": [f"d{i}" for i in range(len(texts))], "text": texts, "topic": topics})
    rows.loc[7, "text"] = ""
    source = tmp_path / "in.parquet"
    rows.to_parquet(source, index=False)
    local = tmp_path / "local.parquet"
    predict_file(classifier_folder, source, local, id_col="doc", keep=["topic"], chunk_size=64, progress=False)
    folder = predict_dataset(classifier_folder, source, tmp_path / "ray_out", id_col="doc", keep=["topic"],
                             actors=2, batch_size=50)
    got = pd.read_parquet(folder).sort_values("id", key=lambda s: s.str[1:].astype(int)).reset_index(drop=True)
    expected = pd.read_parquet(local)
    assert got["id"].tolist() == expected["id"].tolist() and got.loc[7, "error"] == "empty text"
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_exact=False, atol=1e-6)


def test_ray_serve_answers_equal_the_local_server(ray_server, classifier_folder):
    url = ray_server
    texts, _ = topic_texts(TOPICS, 5, 6)
    with TestClient(create_app(classifiers={"topics": str(classifier_folder)})) as local:
        expected = local.post("/v1/predict", json={"texts": texts}).json()
        refused_locally = local.post("/v1/predict", json={"texts": texts, "classifier": "nope"})
    replicas: dict[str, dict] = {}  # each replica's answer, by the instance header: until both answered
    for _ in range(40):
        answer = httpx.post(f"{url}/v1/predict", json={"texts": texts}, timeout=60)
        replicas[answer.headers["X-Agilecls-Instance"]] = answer.json()
        if len(replicas) == 2:
            break
    assert len(replicas) == 2, "one replica answered 40 requests in a row"
    for got in replicas.values():
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
    assert health["status"] == "ok" and health["classifiers"] == ["topics"] and health["instance"] in replicas
    assert "agilecls_requests_total" in httpx.get(f"{url}/metrics", timeout=60).text
