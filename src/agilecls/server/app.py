"""The local prompt-debugging web app: a JSON API (schema at /openapi.json) and a static page.

Model work runs in FastAPI's thread pool behind one lock (one model, one computation at a time).
Bound to 127.0.0.1 by default; request bodies are capped in size; classifiers are the ones named
at start-up, never paths sent by the browser.
"""

from __future__ import annotations

import threading
import time
from importlib import resources
from pathlib import Path
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from ..lm.classifier import AgileClassifier
from ..lm.loading import DEFAULT_MODEL, LanguageModel, load_lm
from ..persistence import load_classifier
from ..readers import parse_prompt_records
from ..salience.explanation import explain, generate
from ..salience.methods import METHODS
from ..salience.spans import GRANULARITIES, aggregate

STATIC = Path(__file__).parent / "static"
MAX_BODY = 1_000_000
MAX_PROMPT = 100_000
VIEW_GRANULARITIES = ["tokens", "words", "sentences", "lines", "paragraphs"]


def sample_examples() -> list[dict]:
    """LIT's 12 sample prompts, shipped as package data."""
    text = resources.files("agilecls").joinpath("data/prompt_examples.jsonl").read_text(encoding="utf-8")
    return parse_prompt_records(text)


class SalienceRequest(BaseModel):
    prompt: str = Field(..., min_length=1, max_length=MAX_PROMPT)
    target: Optional[str] = Field(None, max_length=MAX_PROMPT, description="empty or absent: greedy continuation")
    method: str = "grad_l2"
    steps: int = Field(16, ge=1, le=256)
    target_span: Optional[list[int]] = Field(None, min_length=2, max_length=2,
                                             description="scored target tokens [start, end)")
    max_new_tokens: int = Field(32, ge=1, le=256)
    pattern: Optional[str] = Field(None, max_length=1000, description="regex for the 'regex' granularity")


class GenerateRequest(BaseModel):
    prompt: str = Field(..., min_length=1, max_length=MAX_PROMPT)
    max_new_tokens: int = Field(32, ge=1, le=256)


class AggregateRequest(BaseModel):
    prompt: str = Field(..., max_length=MAX_PROMPT)
    tokens: list[dict] = Field(..., max_length=MAX_PROMPT)
    granularity: str = "words"
    pattern: Optional[str] = Field(None, max_length=1000)


class ClassifyRequest(BaseModel):
    text: str = Field(..., min_length=1, max_length=MAX_PROMPT)
    labels: Optional[list[str]] = Field(None, max_length=200, description="zero-shot class names")
    classifier: Optional[str] = Field(None, description="name of a classifier given at start-up")
    instructions: Optional[str] = Field(None, max_length=2000)
    label: Optional[str] = Field(None, description="explain this label instead of the predicted one")
    method: str = "grad_l2"
    steps: int = Field(16, ge=1, le=256)


class ParseRequest(BaseModel):
    jsonl: str = Field(..., max_length=MAX_BODY)


def _view(exp, pattern: Optional[str]) -> dict:
    data = exp.to_dict(VIEW_GRANULARITIES + (["regex"] if pattern else []), pattern)
    return data


def create_app(model=None, classifiers: Optional[dict[str, str]] = None, max_body: int = MAX_BODY) -> FastAPI:
    """The app for one language model (a spec or a loaded LanguageModel; loaded on first use) and
    optional trained classifiers ``{name: folder}`` (loaded on first use)."""
    app = FastAPI(title="agilecls prompt debugging", version="1",
                  description="Salience of prompt tokens for a target, generation, and classifier decisions.")
    lock = threading.Lock()
    state: dict = {"lm": model if isinstance(model, LanguageModel) else None, "zero_shot": {}, "trained": {}}
    spec = model.spec if isinstance(model, LanguageModel) else (model or DEFAULT_MODEL)
    classifiers = dict(classifiers or {})

    def lm():
        if state["lm"] is None:
            state["lm"] = load_lm(spec)
        return state["lm"]

    def classifier(req: ClassifyRequest):
        if req.classifier:
            if req.classifier not in classifiers:
                raise ValueError(f"unknown classifier {req.classifier!r}; start the server with --classifier")
            if req.classifier not in state["trained"]:
                state["trained"][req.classifier] = load_classifier(classifiers[req.classifier])
            return state["trained"][req.classifier]
        labels = [x.strip() for x in (req.labels or []) if x.strip()]
        if len(labels) < 2:
            raise ValueError("give at least two labels (or pick a trained classifier)")
        key = (tuple(labels), req.instructions or "")
        if key not in state["zero_shot"]:
            clf = AgileClassifier(labels=labels, model=lm(), instructions=req.instructions, progress=False)
            state["zero_shot"][key] = clf.fit()
            while len(state["zero_shot"]) > 16:
                state["zero_shot"].pop(next(iter(state["zero_shot"])))
        return state["zero_shot"][key]

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if request.method in ("POST", "PUT") and length is None and request.headers.get("transfer-encoding"):
            return JSONResponse({"detail": "send a Content-Length header"}, status_code=411)
        if length is not None and int(length) > max_body:
            return JSONResponse({"detail": f"request body over {max_body} bytes"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(ValueError)
    async def value_error(request: Request, err: ValueError):
        return JSONResponse({"detail": str(err)}, status_code=400)

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/info")
    def info() -> dict:
        """The model, the salience methods and granularities, the trained classifiers."""
        return {"model": spec, "loaded": state["lm"] is not None, "methods": list(METHODS),
                "signed": {k: fn.signed for k, fn in METHODS.items()}, "granularities": list(GRANULARITIES),
                "classifiers": sorted(classifiers), "max_body": max_body}

    @app.get("/api/examples")
    def examples() -> list[dict]:
        """The sample prompts (LIT's prompt-debugging set)."""
        return sample_examples()

    @app.post("/api/examples/parse")
    def parse(req: ParseRequest) -> list[dict]:
        """Parse an uploaded JSONL of prompt/target records."""
        return parse_prompt_records(req.jsonl)

    @app.post("/api/generate")
    def generate_route(req: GenerateRequest) -> dict:
        """The model's greedy continuation of the prompt."""
        with lock:
            start = time.perf_counter()
            target = generate(lm(), req.prompt, req.max_new_tokens)
        return {"target": target, "seconds": time.perf_counter() - start}

    @app.post("/api/salience")
    def salience(req: SalienceRequest) -> dict:
        """Salience of each prompt token for the (given or generated) target, with spans at every
        granularity."""
        with lock:
            exp = explain(lm(), req.prompt, req.target or None, req.method, target_span=req.target_span,
                          max_new_tokens=req.max_new_tokens, steps=req.steps)
        return _view(exp, req.pattern)

    @app.post("/api/aggregate")
    def aggregate_route(req: AggregateRequest) -> list[dict]:
        """Re-group token scores (e.g. by a custom regex) without recomputing them."""
        for t in req.tokens:
            if not {"start", "end", "score"} <= set(t):
                raise ValueError("each token needs start, end and score")
        return aggregate(req.prompt, req.tokens, req.granularity, req.pattern)

    @app.post("/api/classify")
    def classify(req: ClassifyRequest) -> dict:
        """Label probabilities and the salience of the decision over the text."""
        with lock:
            clf = classifier(req)
            name = req.classifier or f"zero-shot: {', '.join(map(str, clf.classes_))}"
            if not isinstance(clf, AgileClassifier):  # e.g. a sentence-encoder classifier: no prompt to explain
                proba = clf.predict_proba([req.text])[0]
                probs = {str(c): float(p) for c, p in zip(clf.classes_, proba)}
                return {"text": req.text, "probabilities": probs, "label": max(probs, key=probs.get),
                        "classifier": name, "explanation": None}
            exp = explain(clf, req.text, method=req.method, label=req.label, steps=req.steps)
        data = _view(exp, None)
        data["explanation"] = True
        a, b = exp.info["text_range"]
        text_tokens = [{**t, "start": t["start"] - a, "end": t["end"] - a} for t in exp.tokens if t.get("in_text")]
        data["text"] = req.text
        data["text_tokens"] = text_tokens
        data["text_spans"] = {g: aggregate(req.text, text_tokens, g) for g in VIEW_GRANULARITIES}
        data["probabilities"] = exp.info["probabilities"]
        data["label"] = exp.info["label"]
        data["classifier"] = name
        return data

    return app
