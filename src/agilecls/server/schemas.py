"""Request and response schemas of the server's JSON API: every field bounded and typed, so a bad
request is a 422 naming the field before any model work, never a 500."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from ..salience.methods import METHODS
from ..salience.spans import GRANULARITIES

MAX_BODY = 1_000_000
MAX_PROMPT = 100_000
#: Texts per /v1/predict request, and characters per text.
MAX_TEXTS = 256
MAX_TEXT_CHARS = 20_000


class ErrorBody(BaseModel):
    detail: str | list = Field(..., description="what was wrong and what to do (a list of field errors for 422)")


def _error(description: str) -> dict:
    return {"model": ErrorBody, "description": description}


#: The error answers every model-running route documents in /openapi.json.
ERROR_RESPONSES = {
    400: _error("the request is well-formed but cannot be done (e.g. a prompt longer than the model's context, "
                "a regex that nests quantifiers)"),
    404: _error("no classifier of that name was given at start-up"),
    401: _error("a bearer token is required (the server was started with --token)"),
    411: _error("a body sent without Content-Length"),
    413: _error("the body is larger than the server's limit"),
    422: _error("a field is missing, of the wrong type or out of bounds"),
    503: _error("the queue is full; retry after the seconds in Retry-After"),
    504: _error("the work took longer than the server's time limit"),
}

Method = Literal[tuple(METHODS)]  # the registered salience methods
Granularity = Literal[tuple(GRANULARITIES)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]


class SalienceRequest(BaseModel):
    prompt: str = Field(..., min_length=1, max_length=MAX_PROMPT)
    target: str | None = Field(None, max_length=MAX_PROMPT, description="empty or absent: greedy continuation")
    method: Method = "grad_l2"
    steps: int = Field(16, ge=1, le=256)
    target_span: list[Annotated[int, Field(ge=0, le=MAX_PROMPT)]] | None = Field(
        None, min_length=2, max_length=2, description="scored target tokens [start, end)")
    max_new_tokens: int = Field(32, ge=1, le=256)
    pattern: str | None = Field(None, max_length=1000, description="regex for the 'regex' granularity")


class GenerateRequest(BaseModel):
    prompt: str = Field(..., min_length=1, max_length=MAX_PROMPT)
    max_new_tokens: int = Field(32, ge=1, le=256)


class TokenScore(BaseModel):
    """One prompt token's score and character range, as /api/salience returns it."""

    model_config = ConfigDict(extra="allow")
    start: int = Field(..., ge=0, le=MAX_PROMPT)
    end: int = Field(..., ge=0, le=MAX_PROMPT)
    score: float
    special: bool = False
    text: str = Field("", max_length=MAX_PROMPT)

    @field_validator("score")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _ordered(self):
        if self.end < self.start:
            raise ValueError("end must not be before start")
        return self


class AggregateRequest(BaseModel):
    prompt: str = Field(..., max_length=MAX_PROMPT)
    tokens: list[TokenScore] = Field(..., max_length=MAX_PROMPT)
    granularity: Granularity = "words"
    pattern: str | None = Field(None, max_length=1000)

    @model_validator(mode="after")
    def _inside_prompt(self):
        outside = [i for i, t in enumerate(self.tokens) if not t.special and t.end > len(self.prompt)]
        if outside:
            raise ValueError(f"token {outside[0]} ends after the prompt's {len(self.prompt)} characters")
        return self


class ClassifyRequest(BaseModel):
    text: str = Field(..., min_length=1, max_length=MAX_PROMPT)
    labels: list[Annotated[str, StringConstraints(max_length=200)]] | None = Field(
        None, max_length=200, description="zero-shot class names")
    classifier: str | None = Field(None, max_length=200, description="name of a classifier given at start-up")
    instructions: str | None = Field(None, max_length=2000)
    label: str | None = Field(None, max_length=200, description="explain this label instead of the predicted one")
    method: Method = "grad_l2"
    steps: int = Field(16, ge=1, le=256)


class ParseRequest(BaseModel):
    jsonl: str = Field(..., max_length=MAX_BODY)


class PredictRequest(BaseModel):
    """Texts to label with a classifier the server was started with."""

    texts: list[Text] = Field(..., min_length=1, max_length=MAX_TEXTS,
                              json_schema_extra={"example": ["I love this", "what a waste of time"]})
    classifier: str | None = Field(None, max_length=200, description="its name (default: the first one given)")

    @field_validator("texts")
    @classmethod
    def _no_blank_texts(cls, texts: list[str]) -> list[str]:
        for i, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"text {i} is blank")
        return texts


class Prediction(BaseModel):
    label: str = Field(description="the decision; a multi-label classifier's labels joined by | (empty for none)")
    probabilities: dict[str, float]
    ood_score: float | None = Field(None, description="how likely the text is out of scope (higher = more)")


class PredictResponse(BaseModel):
    classifier: str
    predictions: list[Prediction]


class Health(BaseModel):
    status: str
    pending: int = Field(..., description="requests waiting for the model")
    running: bool = Field(..., description="whether the model is computing now")
    batches: int = Field(..., description="model calls so far")
    items_per_batch: float = Field(..., description="mean texts (or jobs) per model call")
    classifiers: list[str]
    drift: dict[str, dict] = Field(default_factory=dict, description="each watched classifier's drift state "
                                   "(ok, drifting or warming up) and the numbers behind it")
    instance: str = Field("", description="the process that answered, host:pid (one per Ray Serve replica); "
                                          "every response names it in its X-Agilecls-Instance header")


# ---- the labelling page (/api/project) ---------------------------------------------------------
#: A browser tab's random id: the annotator of its labels and the holder of its queue's texts.
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
TextId = Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class NextRequest(BaseModel):
    k: int = Field(8, ge=1, le=100, description="how many texts")
    strategy: str | None = Field(None, max_length=64, description="a query strategy (default: the project's)")
    client: ClientId | None = Field(None, description="the tab asking: its texts are kept from other tabs")


class LabelRequest(BaseModel):
    id: TextId
    label: str = Field(..., min_length=1, max_length=200)
    client: ClientId | None = Field(None, description="recorded as the annotator")


class UndoRequest(BaseModel):
    client: ClientId = Field(..., description="undo this tab's newest label")


class HoldOutRequest(BaseModel):
    id: TextId
    is_test: bool = True


class SkipRequest(BaseModel):
    id: TextId


class TrainRequest(BaseModel):
    kind: Literal["fast", "full", "distilled"] = Field(
        "fast", description="fast: seconds, answered when done; full: a background job, followed with GET status; "
                            "distilled (Publish): the serving version distilled into a fast student, a background job")


class ServeRequest(BaseModel):
    version: int = Field(..., ge=1, le=2**62, description="the version that serves from now on")


class SettingsRequest(BaseModel):
    positive: str | None = Field(None, min_length=1, max_length=200,
                                    description="two classes: the class the decision rule cuts on")
    rule: str | None = Field(None, min_length=1, max_length=40,
                                description="two classes: f1, expected_f1, precision:<t> or recall:<t>")
    audit_rate: float | None = Field(None, ge=0, le=0.5, description="share of random audit texts (0: off)")
    retrain_every: int | None = Field(None, ge=0, le=10_000,
                                         description="labels between background retrains (0: off)")


class CancelRequest(BaseModel):
    job: int = Field(..., ge=1, le=2**62)


class ExplainRequest(BaseModel):
    id: TextId
    method: Method = "grad_dot_input"
    label: str | None = Field(None, min_length=1, max_length=200,
                                 description="explain this label (default: the newest version's prediction)")


#: The error answers of the labelling routes.
LABEL_RESPONSES = {**ERROR_RESPONSES, 404: _error("no text (or training job) with that id in the project"),
                   409: _error("a training job is already running: wait for it or cancel it")}
