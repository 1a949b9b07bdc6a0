"""The prediction API and the server's defences: micro-batching, a bounded queue (503), time limits
(504), a bearer token, safe regexes, early length checks, and an API fuzz run (schemathesis)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from agilecls import AgileClassifier
from agilecls.server import create_app
from agilecls.server.work import QueueFull, WorkQueue

TEXTS = ["good movie", "bad food", "I love it", "awful awful", "really great", "I hate the movie"]


@pytest.fixture(scope="module")
def zero_shot(tiny_lm_folder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("served") / "sentiment"
    AgileClassifier(labels=["good", "bad"], model=str(tiny_lm_folder), progress=False).fit().save(folder)
    return folder


def slow(seconds):
    def run(items):
        time.sleep(seconds)
        return items
    return run


def test_work_queue_merges_waiting_jobs_and_keeps_order():
    queue = WorkQueue(max_batch=8, max_wait=0.05)
    calls = []

    def record(items):
        calls.append(list(items))
        return [x * 10 for x in items]

    blocker = queue.submit(slow(0.2), [0])  # keeps the worker busy while the others queue up
    futures = [queue.submit(record, [i, i + 100], key="k") for i in range(1, 4)]
    other = queue.submit(record, [7], key="other")
    assert blocker.result() == [0]
    assert [f.result() for f in futures] == [[10, 1010], [20, 1020], [30, 1030]]
    assert other.result() == [70]
    assert calls[0] == [1, 101, 2, 102, 3, 103] and calls[1] == [7]  # one call for the three jobs
    off = WorkQueue(max_batch=1)
    off.submit(slow(0.1), [0])
    singles = [off.submit(record, [i], key="k") for i in range(3)]
    assert [f.result() for f in singles] == [[0], [10], [20]] and calls[-3:] == [[0], [1], [2]]
    queue.close(), off.close()


def test_work_queue_is_bounded_and_errors_reach_every_waiter():
    queue = WorkQueue(max_pending=2, max_batch=4)
    queue.submit(slow(0.3), [0])
    time.sleep(0.05)  # the first job is running; two may wait
    waiting = [queue.submit(slow(0), [1], key="k"), queue.submit(slow(0), [2], key="k")]
    with pytest.raises(QueueFull) as full:
        queue.submit(slow(0), [3], key="k")
    assert full.value.retry_after >= 1
    assert [f.result() for f in waiting] == [[1], [2]]

    def boom(items):
        raise ValueError("bad batch")

    doomed = [queue.submit(boom, [i], key="b") for i in range(2)]
    for f in doomed:
        with pytest.raises(ValueError, match="bad batch"):
            f.result()
    queue.close()


def test_predict_api_matches_the_classifier_and_batches_concurrent_requests(zero_shot):
    app = create_app(classifiers={"sentiment": str(zero_shot)}, max_wait=0.05)
    clf = app.state.classifiers["sentiment"]
    expected = clf.predict_proba(TEXTS)
    with TestClient(app) as client:
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["classifiers"] == ["sentiment"]
        results = [None] * len(TEXTS)

        def call(i):
            results[i] = client.post("/v1/predict", json={"texts": [TEXTS[i]]})

        batches_before = app.state.queue.batches
        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(TEXTS))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(r.status_code == 200 for r in results), [r.text for r in results]
        assert app.state.queue.batches - batches_before < len(TEXTS)  # some requests shared a batch
        for i, r in enumerate(results):
            p = r.json()["predictions"][0]
            np.testing.assert_allclose([p["probabilities"]["good"], p["probabilities"]["bad"]], expected[i],
                                       atol=1e-5)
            assert p["label"] == ["good", "bad"][int(np.argmax(expected[i]))]
            assert 0 <= p["ood_score"] <= 1
        many = client.post("/v1/predict", json={"texts": TEXTS, "classifier": "sentiment"}).json()
        assert [p["label"] for p in many["predictions"]] == [r.json()["predictions"][0]["label"] for r in results]
        for body, status in [({"texts": []}, 422), ({"texts": ["  "]}, 422), ({"texts": "one text"}, 422),
                             ({"texts": ["a"] * 257}, 422), ({"texts": ["a"], "classifier": "nope"}, 404),
                             ({"texts": [1, 2]}, 422)]:
            assert client.post("/v1/predict", json=body).status_code == status, body


def test_healthz_answers_while_the_model_is_busy_and_time_limits_hold(zero_shot):
    app = create_app(classifiers={"sentiment": str(zero_shot)}, max_pending=1, time_limit=0.5)
    queue = app.state.queue
    with TestClient(app) as client:
        busy = queue.submit(slow(1.5), [0])  # the model worker is busy for 1.5 s
        taken = time.perf_counter() + 1.0
        while not queue.running and time.perf_counter() < taken:  # once the worker has taken it
            time.sleep(0.005)
        start = time.perf_counter()
        assert client.get("/healthz").json()["running"] is True
        assert time.perf_counter() - start < 0.5
        r = client.post("/v1/predict", json={"texts": ["good movie"]})
        assert r.status_code == 504 and "time limit" in r.json()["detail"]
        queue.submit(slow(0), [0])  # fills the one waiting place
        r = client.post("/v1/predict", json={"texts": ["good movie"]})
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
        busy.result()


def test_token_regexes_and_early_length_checks(tiny_lm):
    app = create_app(tiny_lm, token="s3cret", max_body=300_000)
    with TestClient(app) as client:
        assert client.get("/api/info").status_code == 401
        assert client.get("/healthz").status_code == 200
        auth = {"Authorization": "Bearer s3cret"}
        assert client.get("/api/info", headers=auth).status_code == 200
        assert client.get("/api/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
        prompt = "a" * 30 + "b"
        tokens = [{"start": 0, "end": 31, "score": 1.0}]
        start = time.perf_counter()
        r = client.post("/api/aggregate", headers=auth, json={"prompt": prompt, "tokens": tokens,
                                                               "granularity": "regex", "pattern": "(a+)+$"})
        assert r.status_code == 400 and "nests quantifiers" in r.json()["detail"]
        assert time.perf_counter() - start < 1
        bad_tokens = [{"start": 0, "end": "x", "score": 1}], [{"start": 5, "end": 2, "score": 1}], \
            [{"start": 0, "end": 99, "score": 1}], [{"start": 0, "end": 1}], ["not a token"]
        for toks in bad_tokens:
            r = client.post("/api/aggregate", headers=auth, json={"prompt": prompt, "tokens": toks})
            assert r.status_code == 422, (toks, r.text)
        start = time.perf_counter()
        r = client.post("/api/salience", headers=auth, json={"prompt": "good " * 20_000})
        assert r.status_code == 400 and "exceeds the model's context" in r.json()["detail"]
        assert time.perf_counter() - start < 5  # refused before generating anything
        r = client.post("/api/salience", headers=auth, json={"prompt": "good movie", "target": " good",
                                                              "pattern": "(\\w+\\s?)*"})
        assert r.status_code == 400 and "nests quantifiers" in r.json()["detail"]
        r = client.post("/api/info", headers={**auth, "content-length": "abc"})
        assert r.status_code in (400, 405)
    schema = app.openapi()
    documented = schema["paths"]["/v1/predict"]["post"]["responses"]
    assert {"400", "411", "413", "422", "503"} <= set(documented)


def test_api_fuzz(tiny_lm, zero_shot):
    """schemathesis over /openapi.json: every generated request, valid or not, to every route gets a
    documented answer that matches its schema; never a 500. (Schema-valid requests may still get a
    documented 400, e.g. a prompt longer than the model's context, so that one check is left out.)"""
    app = create_app(tiny_lm, {"sentiment": str(zero_shot)}, max_body=20_000, time_limit=30)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/predict", "/healthz", "/api/salience", "/api/aggregate"}
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case):
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        call()


def test_serve_command_answers_predictions(zero_shot, tmp_path):
    port = 18000 + os.getpid() % 1000
    env = {**os.environ, "AGILECLS_TOKEN": "tok"}
    proc = subprocess.Popen([sys.executable, "-m", "agilecls.cli", "serve", "--model", str(zero_shot),
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        r = httpx.post(f"{url}/v1/predict", json={"texts": ["good movie", "bad food"]},
                       headers={"Authorization": "Bearer tok"})
        assert r.status_code == 200 and r.json()["classifier"] == "sentiment"
        assert len(r.json()["predictions"]) == 2
        assert httpx.post(f"{url}/v1/predict", json={"texts": ["x"]}).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_predict_api_serves_a_saved_ensemble_of_the_bundled_encoder(tmp_path):
    from agilecls import EncoderClassifier, EnsembleClassifier

    topics = {"money": ["bank balance", "savings account", "transfer money", "my card"],
              "weather": ["rain today", "sunny forecast", "cold weather", "snow tomorrow"]}
    X = [t for texts in topics.values() for t in texts]
    y = [label for label, texts in topics.items() for _ in texts]
    folder = tmp_path / "ens"
    members = [("logistic", EncoderClassifier("minilm", head="logistic", device="cpu")),
               ("sngp", EncoderClassifier("minilm", head="sngp", device="cpu", epochs=5))]
    EnsembleClassifier(members).fit(X, y).save(folder)
    app = create_app(classifiers={"topics": str(folder)})
    expected = app.state.classifiers["topics"].details(["is it going to rain", "check my balance"])
    with TestClient(app) as client:
        r = client.post("/v1/predict", json={"texts": ["is it going to rain", "check my balance"]})
    assert r.status_code == 200, r.text
    got = r.json()["predictions"]
    assert [p["label"] for p in got] == list(expected["pred"])
    np.testing.assert_allclose([[p["probabilities"][c] for c in ("money", "weather")] for p in got],
                               expected["proba"], atol=1e-6)
    np.testing.assert_allclose([p["ood_score"] for p in got], expected["ood_score"], atol=1e-6)


def test_generate_refuses_a_prompt_without_tokens_and_stops_at_the_context(tiny_lm):
    """Found by test_api_fuzz: a prompt of only '\\r' has no tokens for the tiny model, and
    generation then failed inside the model (a 500); it is a one-line ValueError (a 4xx) now."""
    from agilecls.salience.explanation import generate

    with pytest.raises(ValueError, match="no tokens"):
        generate(tiny_lm, "\r", 8)
    limit = tiny_lm.model.config.max_position_embeddings
    with pytest.raises(ValueError, match=f"reads at most {limit}"):
        generate(tiny_lm, "hello " * (limit + 5), 8)
    prompt_tokens = len(tiny_lm.tokenizer("hello world")["input_ids"])
    out = tiny_lm.tokenizer(generate(tiny_lm, "hello world", 4 * limit), add_special_tokens=False)["input_ids"]
    assert len(out) <= limit - prompt_tokens + 2  # re-tokenising the decoded text may merge or split a little
