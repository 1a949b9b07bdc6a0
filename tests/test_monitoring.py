"""Metrics and drift checks of the server: Prometheus text that parses, a reference profile saved
with the classifier, and a drift state that flips on a shifted stream and not on the reference's own."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from agilecls import EncoderClassifier
from agilecls.monitoring import DriftMonitor, ReferenceProfile, record_profile
from agilecls.monitoring.drift import label_shift, population_stability
from agilecls.server import create_app

from conftest import build_tiny_sentence_encoder, topic_texts

pytestmark = pytest.mark.usefixtures("one_thread")

TOPICS = {"refund": "refund money back return order paid charge card price",
          "delivery": "parcel delivery late shipping courier arrive tracking box address"}


@pytest.fixture(scope="module")
def served_folder(tmp_path_factory):
    """A tiny encoder classifier trained on two topics, saved with a profile of held-out texts."""
    root = tmp_path_factory.mktemp("monitoring")
    encoder = build_tiny_sentence_encoder(root, set(" ".join(TOPICS.values()).split()))
    texts, y = topic_texts(TOPICS, 0, 40)
    clf = EncoderClassifier(encoder, head="logistic", epochs=10, batch_size=12, device="cpu", random_state=0)
    clf.fit(texts, y)
    folder = root / "clf"
    clf.save(folder)
    held_out, _ = topic_texts(TOPICS, 1, 150)
    record_profile(clf, held_out, folder, source="300 held-out topic texts")
    return folder


def metric_values(text: str) -> dict:
    """{(name, sorted labels): value} of every sample in Prometheus text."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_profile_is_saved_with_the_classifier_and_loads_back(served_folder):
    profile = ReferenceProfile.load(served_folder)
    assert profile.texts == 300 and profile.source == "300 held-out topic texts"
    assert sorted(profile.labels) == sorted(TOPICS) and abs(sum(profile.shares) - 1) < 1e-9
    assert len(profile.score_shares) == len(profile.score_edges) + 1 and abs(sum(profile.score_shares) - 1) < 1e-9
    assert ReferenceProfile.load(served_folder.parent) is None


def test_metrics_parse_and_count_requests_texts_and_labels(served_folder):
    app = create_app(classifiers={"topics": str(served_folder)}, max_wait=0.0)
    texts, _ = topic_texts(TOPICS, 2, 5)
    with TestClient(app) as client:
        answers = [client.post("/v1/predict", json={"texts": texts[i:i + 2]}).json() for i in range(0, 10, 2)]
        client.post("/v1/predict", json={"texts": []})  # refused: 422
        text = client.get("/metrics").text
    values = metric_values(text)
    assert values[("agilecls_requests_total", (("route", "/v1/predict"), ("status", "200")))] == 5
    assert values[("agilecls_requests_total", (("route", "/v1/predict"), ("status", "422")))] == 1
    assert values[("agilecls_texts_total", (("classifier", "topics"), ("status", "ok")))] == 10
    labels = [p["label"] for a in answers for p in a["predictions"]]
    for label in set(labels):
        assert values[("agilecls_predicted_total", (("classifier", "topics"), ("label", label)))] == labels.count(label)
    assert values[("agilecls_ood_score_count", (("classifier", "topics"),))] == 10
    assert values[("agilecls_request_seconds_count", (("route", "/v1/predict"),))] == 6
    assert ("agilecls_queue_depth", ()) in values


def test_metrics_need_the_token_when_the_server_has_one(served_folder):
    app = create_app(classifiers={"topics": str(served_folder)}, token="s3cret")
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_drift_state_stays_ok_in_distribution_and_flips_on_a_one_topic_stream(served_folder):
    app = create_app(classifiers={"topics": str(served_folder)}, max_wait=0.0)
    same, _ = topic_texts(TOPICS, 3, 150)
    rng = np.random.default_rng(0)
    same = [same[i] for i in rng.permutation(len(same))]
    shifted, _ = topic_texts({"refund": TOPICS["refund"]}, 4, 300)
    with TestClient(app) as client:
        assert client.get("/healthz").json()["drift"]["topics"]["state"] == "warming up"
        for i in range(0, 300, 20):
            client.post("/v1/predict", json={"texts": same[i:i + 20]})
        calm = client.get("/healthz").json()["drift"]["topics"]
        flipped_at = None
        for i in range(0, 300, 20):
            client.post("/v1/predict", json={"texts": shifted[i:i + 20]})
            if client.get("/healthz").json()["drift"]["topics"]["state"] == "drifting":
                flipped_at = i + 20
                break
        values = metric_values(client.get("/metrics").text)
    assert calm["state"] == "ok", calm
    assert flipped_at is not None and flipped_at <= 300
    assert values[("agilecls_drift_drifting", (("classifier", "topics"),))] == 1.0


def test_label_shift_and_psi_by_hand():
    profile = ReferenceProfile.from_predictions(["a"] * 50 + ["b"] * 50, np.linspace(0, 1, 100))
    p_same, tvd_same, chance = label_shift(profile, ["a"] * 100 + ["b"] * 100)
    p_moved, tvd_moved, _ = label_shift(profile, ["a"] * 180 + ["b"] * 20)
    assert p_same > 0.5 and tvd_same < 0.01
    assert p_moved < 1e-6 and abs(tvd_moved - 0.4) < 0.01
    # two samples of 100 and 200 from shares (0.5, 0.5): E|difference| = sqrt(2/pi * 0.25 * (1/100 + 1/200))
    assert chance == pytest.approx(np.sqrt(2 / np.pi * 0.25 * 0.015), rel=1e-6)
    assert population_stability([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    # (0.9 - 0.5) ln(0.9/0.5) + (0.1 - 0.5) ln(0.1/0.5), with the 1e-4 floor
    assert population_stability([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * np.log(1.8) + 0.4 * np.log(5), rel=1e-3)
    monitor = DriftMonitor(profile, window=200, min_texts=100)
    monitor.update(["a"] * 100, np.linspace(0, 1, 100))
    status = monitor.status()
    assert status["state"] == "drifting" and status["score_psi"] < 0.05 and status["label_shift"] > 0.4
    monitor.update(["b"] * 100, np.full(100, 5.0))
    status = monitor.status()
    assert status["label_shift"] < 0.01 and status["score_psi"] > 1 and status["state"] == "drifting"
    with pytest.raises(ValueError, match="min_texts"):
        DriftMonitor(profile, window=10, min_texts=20)


def test_monitor_prints_the_served_state_and_profile_records_one(served_folder, tmp_path):
    import json

    from typer.testing import CliRunner

    from agilecls.cli import app as cli

    from conftest import serve_in_thread

    texts, _ = topic_texts(TOPICS, 6, 10)
    file = tmp_path / "held_out.txt"
    file.write_text("\n".join(texts) + "\n")
    folder = tmp_path / "copy"
    import shutil

    shutil.copytree(served_folder, folder)
    done = CliRunner().invoke(cli, ["profile", str(file), "--model", str(folder), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["texts"] == 20 == ReferenceProfile.load(folder).texts
    with serve_in_thread(create_app(classifiers={"topics": str(folder)}, max_wait=0.0)) as url:
        import httpx

        answers = httpx.post(f"{url}/v1/predict", json={"texts": texts}).json()["predictions"]
        done = CliRunner().invoke(cli, ["monitor", url, "--count", "2", "--interval", "0.1", "--json"])
        printed = CliRunner().invoke(cli, ["monitor", url, "--count", "1"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["texts"] == 20 and summary["errors"] == 0 and summary["texts_per_s"] == 0.0
    labels = [p["label"] for p in answers]
    assert summary["label_shares"] == {k: round(labels.count(k) / 20, 4) for k in set(labels)}
    assert summary["drift"] == {"topics": "warming up"}
    assert "20 texts" in printed.stdout and "drift: topics warming up" in printed.stdout
    refused = CliRunner().invoke(cli, ["monitor", "http://127.0.0.1:9", "--count", "1"])
    assert refused.exit_code == 2 and "cannot reach" in refused.output


def test_histogram_quantile_interpolates_inside_buckets():
    from agilecls.monitoring.metrics import ServerMetrics
    from agilecls.monitoring.summary import histogram_quantile, read_metrics

    metrics = ServerMetrics()
    for seconds in [0.02] * 50 + [0.2] * 50:  # buckets (0.01, 0.025] and (0.1, 0.25]
        metrics.request("/v1/predict", 200, seconds)
    samples = read_metrics(metrics.render().decode())
    assert histogram_quantile(samples, "agilecls_request_seconds", 0.5) == pytest.approx(0.025)
    assert histogram_quantile(samples, "agilecls_request_seconds", 0.9) == pytest.approx(0.1 + 0.15 * 0.8)
    assert histogram_quantile(samples, "agilecls_request_seconds", 0.5, route="/other") is None
