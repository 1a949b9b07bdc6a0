"""The web app's JSON API and the explain/serve commands, on a tiny real model (no browser)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agilecls.server import create_app, sample_examples

PROMPT = "I love this movie . the food was awful !\nthis was a really good movie ."


@pytest.fixture(scope="module")
def client(tiny_lm):
    return TestClient(create_app(tiny_lm, max_body=20_000))


def test_samples_ship_with_the_package():
    rows = sample_examples()
    assert len(rows) == 12
    assert [r["source"] for r in rows[:3]] == ["fewshot-mistake", "fewshot-fixed", "fewshot-constitution"]


def test_info_examples_and_openapi(client):
    info = client.get("/api/info").json()
    assert info["model"] == "tiny-llama" and set(info["methods"]) == {"grad_l2", "grad_dot_input",
                                                                      "integrated_gradients"}
    assert list(info["method_titles"]) == info["methods"] and info["method_titles"]["grad_dot_input"] == "Grad · Input"
    assert len(client.get("/api/examples").json()) == 12
    schema = client.get("/openapi.json").json()
    assert {"/api/salience", "/api/generate", "/api/classify", "/api/aggregate"} <= set(schema["paths"])
    page = client.get("/").text
    assert page.index("/static/common.js") < page.index("/static/app.js")  # the shared part first
    assert "http" not in page.replace("http-equiv", "")
    assert client.get("/static/app.css").status_code == 200


def test_salience_generate_and_aggregate(client):
    r = client.post("/api/salience", json={"prompt": PROMPT, "target": " great movie", "method": "grad_dot_input"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert set(data["spans"]) == {"tokens", "words", "sentences", "lines", "paragraphs"}
    total = sum(t["score"] for t in data["tokens"])
    for spans in data["spans"].values():
        assert sum(s["score"] for s in spans) == pytest.approx(total, abs=1e-9)
    regex = client.post("/api/aggregate", json={"prompt": PROMPT, "tokens": data["tokens"], "granularity": "regex",
                                                "pattern": "movie"}).json()
    assert [s["text"] for s in regex if s["text"] == "movie"] == ["movie", "movie"]
    gen = client.post("/api/generate", json={"prompt": PROMPT, "max_new_tokens": 3}).json()
    auto = client.post("/api/salience", json={"prompt": PROMPT, "max_new_tokens": 3}).json()
    assert auto["target"] == gen["target"] and auto["info"]["generated"]
    ig = client.post("/api/salience", json={"prompt": PROMPT, "target": " great", "method": "integrated_gradients",
                                            "steps": 4, "target_span": [0, 1]}).json()
    assert ig["info"]["steps"] == 4 and ig["target_span"] == [0, 1]


def test_errors_and_limits(client):
    assert client.post("/api/salience", json={"prompt": PROMPT, "target": "x", "method": "lime"}).status_code == 422
    assert client.post("/api/salience", json={"prompt": ""}).status_code == 422
    assert client.post("/api/salience", content=b"{" + b" " * 30_000 + b"}",
                       headers={"content-type": "application/json"}).status_code == 413
    bad = client.post("/api/examples/parse", json={"jsonl": '{"prompt": "a"}\nnot json'})
    assert bad.status_code == 400 and "line 2" in bad.json()["detail"]
    assert client.post("/api/classify", json={"text": "good", "labels": ["only"]}).status_code == 400
    assert client.post("/api/classify", json={"text": "good", "classifier": "nope"}).status_code == 404


def test_classify_zero_shot_with_salience(client):
    r = client.post("/api/classify", json={"text": "this was a really good movie", "labels": ["Positive", "Negative"],
                                           "method": "grad_l2"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert sum(data["probabilities"].values()) == pytest.approx(1.0)
    assert data["label"] == max(data["probabilities"], key=data["probabilities"].get)
    assert [t["text"] for t in data["text_tokens"]] == ["this", "was", "a", "really", "good", "movie"]
    assert [s["text"] for s in data["text_spans"]["words"]] == ["this", "was", "a", "really", "good", "movie"]


def test_explain_command(tiny_lm, tmp_path):
    from agilecls.cli import app

    folder = tmp_path / "tiny"
    tiny_lm.model.save_pretrained(folder)
    tiny_lm.tokenizer.save_pretrained(folder)
    records = tmp_path / "prompts.jsonl"
    records.write_text(json.dumps({"source": "a", "prompt": PROMPT, "target": " great"}) + "\n"
                       + json.dumps({"source": "b", "prompt": "I hate it .", "target": ""}) + "\n")
    runner = CliRunner()
    out = runner.invoke(app, ["explain", str(records), "--model", str(folder), "--granularity", "words",
                              "--max-new-tokens", "3", "--report", str(tmp_path / "x.html")])
    assert out.exit_code == 0, out.output
    assert "== a" in out.output and "== b" in out.output and "top words:" in out.output
    assert (tmp_path / "x.html").read_text().count("<h2>") == 2
    out = runner.invoke(app, ["explain", PROMPT, "--target", " great movie", "--model", str(folder), "--json",
                              "--method", "integrated_gradients", "--steps", "4", "--span", "movie"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)["explanations"][0]  # one JSON object on stdout
    assert data["method"] == "integrated_gradients" and data["target_span"] == [1, 2]
    out = runner.invoke(app, ["explain", "this was good", "--model", str(folder), "--labels", "Positive,Negative",
                              "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["explanations"][0]["target"] in ("Positive", "Negative")
    out = runner.invoke(app, ["explain", PROMPT, "--target", "x", "--model", str(folder), "--method", "lime"])
    assert out.exit_code == 2 and "unknown salience method" in out.output
