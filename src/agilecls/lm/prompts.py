"""Text → prompt → tokens: templates (plain, JSON-serialisable objects that turn a text into
(prefix, text, tail)), label token ids and the prompt encoder.

Splitting every prompt into a shared ``prefix`` (instructions + few-shot examples), the ``text``
and a ``tail`` (what follows the text up to the answer) is what lets the scoring engine compute
the prefix once and truncate long texts while keeping the template's tail intact.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..encoders.sentence import load_sentence_transformer
from .loading import LanguageModel

DEFAULT_INSTRUCTIONS = "Classify the following text into one of the following classes"
SEPARATOR = "<separator>"
SEPARATOR_NEWLINES = "\n<separator>\n"
_TEXT_SLOT = "\x00AGILECLS_TEXT\x00"


@dataclass(frozen=True)
class PromptParts:
    """One rendered prompt: ``prefix + text + tail`` is the full prompt, the answer comes next."""

    prefix: str
    text: str
    tail: str

    def full(self) -> str:
        return self.prefix + self.text + self.tail


@dataclass
class PromptTemplate:
    """``style='separator'``: ``{instructions}:[{l1},{l2},...]{separator}Text:{text}{separator}Prediction:``;
    ``style='chat'``: the model's chat template with instruction, classes and text in the user turn.
    ``examples`` are (text, label) pairs rendered before the text in the same format.

    Examples
    --------
    >>> full = PromptTemplate().render(["I loved it"], ["Positive", "Negative"])[0].full()
    >>> full.split("<separator>")  # doctest: +NORMALIZE_WHITESPACE
    ['Classify the following text into one of the following classes:[Positive,Negative]',
     'Text:I loved it', 'Prediction:']
    """

    style: str = "separator"
    instructions: str = DEFAULT_INSTRUCTIONS
    separator: str = SEPARATOR
    examples: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self):
        if self.style not in ("separator", "chat"):
            raise ValueError(f"unknown template style {self.style!r}; use 'separator' or 'chat'")
        self.examples = [(str(t), str(lab)) for t, lab in self.examples]

    @property
    def label_prefix(self) -> str:
        """What precedes the label word: after 'Prediction:' the space-led token carries the probability."""
        return " " if self.style == "separator" else ""

    def render(self, texts: Sequence[str], labels: Sequence[str], tokenizer=None) -> list[PromptParts]:
        prefix, tail = self.frame(labels, tokenizer)
        return [PromptParts(prefix, text, tail) for text in texts]

    def frame(self, labels: Sequence[str], tokenizer=None) -> tuple[str, str]:
        """The (prefix, tail) around the text slot, the same for every text."""
        if self.style == "separator":
            sep = self.separator
            head = f"{self.instructions}:[{','.join(labels)}]{sep}"
            shots = "".join(f"Text:{t}{sep}Prediction:{self.label_prefix}{lab}{sep}" for t, lab in self.examples)
            return head + shots + "Text:", f"{sep}Prediction:"
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("the chat template style needs a model with a chat template; "
                             "use style='separator' for base models such as gemma-3-270m")
        rendered = tokenizer.apply_chat_template(self.chat_messages(labels, _TEXT_SLOT), tokenize=False,
                                                 add_generation_prompt=True)
        prefix, _, tail = rendered.partition(_TEXT_SLOT)
        return prefix, tail

    def chat_messages(self, labels: Sequence[str], text: str) -> list[dict]:
        intro = f"{self.instructions}: {', '.join(labels)}. Answer with the class name only.\n\nText: "
        turns: list[dict] = []
        for i, (example, label) in enumerate(self.examples):
            turns.append({"role": "user", "content": (intro if i == 0 else "Text: ") + example})
            turns.append({"role": "assistant", "content": label})
        turns.append({"role": "user", "content": (intro if not self.examples else "Text: ") + text})
        return turns

    def training_text(self, label: str, eos_token: str) -> str:
        """What the model should write after the prompt during tuning: label then end of text."""
        return f"{self.label_prefix}{label}{eos_token}"

    def with_examples(self, examples: Sequence[tuple[str, str]]) -> PromptTemplate:
        return PromptTemplate(self.style, self.instructions, self.separator, list(examples))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["examples"] = [list(e) for e in self.examples]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> PromptTemplate:
        return cls(**{**data, "examples": [tuple(e) for e in data.get("examples", [])]})

    @classmethod
    def coerce(cls, template, has_chat_template: bool) -> PromptTemplate:
        """Accept a PromptTemplate, a dict, a style name, or 'auto' (chat when the model has a template)."""
        if isinstance(template, PromptTemplate):
            return template
        if isinstance(template, dict):
            return cls.from_dict(template)
        if template in (None, "auto"):
            return cls("chat" if has_chat_template else "separator")
        if template == "separator-newlines":
            return cls("separator", separator=SEPARATOR_NEWLINES)
        return cls(str(template))


def select_examples(texts: Sequence[str], y: Sequence[str], labels: Sequence[str], per_class: int,
                    seed: int = 0, strategy: str = "random", embed=None) -> list[tuple[str, str]]:
    """``per_class`` in-context examples of each label from the training data.

    ``random``: a seeded random pick. ``similar``: the examples nearest their class centroid in the
    embedding space of ``embed`` (a function texts -> 2-D array), i.e. the most typical ones.
    The order interleaves classes so no label sits last by construction.
    """
    if per_class <= 0:
        return []
    y = np.asarray([str(v) for v in y])
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[int]] = {}
    vectors = None
    if strategy == "similar":
        if embed is None:
            embed = load_sentence_transformer("minilm").encode
        vectors = np.asarray(embed(list(texts)), dtype=np.float64)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
    elif strategy != "random":
        raise ValueError(f"unknown example selection {strategy!r}; use 'random' or 'similar'")
    for label in labels:
        rows = np.flatnonzero(y == label)
        if len(rows) == 0:
            raise ValueError(f"no training example of label {label!r} to use as an in-context example")
        if vectors is None:
            chosen[label] = rng.choice(rows, size=min(per_class, len(rows)), replace=False).tolist()
        else:
            centroid = vectors[rows].mean(axis=0)
            chosen[label] = rows[np.argsort(-(vectors[rows] @ centroid))[:per_class]].tolist()
    order = [chosen[label][i] for i in range(per_class) for label in labels if i < len(chosen[label])]
    return [(str(texts[i]), str(y[i])) for i in order]


class LabelTokenError(ValueError):
    """Labels that cannot be told apart by their tokens."""


def label_token_ids(tokenizer, labels: Sequence[str], label_prefix: str) -> list[list[int]]:
    """Token ids of each label as the model would write it after the prompt; rejects labels
    that are duplicated or tokenize identically (they would always score the same)."""
    if len(set(labels)) != len(labels):
        dupes = sorted({lab for lab in labels if list(labels).count(lab) > 1})
        raise LabelTokenError(f"duplicate labels {dupes}")
    ids = []
    for label in labels:
        if not str(label).strip():
            raise LabelTokenError("a label is empty or whitespace")
        tokens = tokenizer(label_prefix + str(label), add_special_tokens=False)["input_ids"]
        ids.append(list(tokens))
    seen: dict[tuple, str] = {}
    for label, tokens in zip(labels, ids, strict=True):
        if tuple(tokens) in seen:
            raise LabelTokenError(f"labels {seen[tuple(tokens)]!r} and {label!r} tokenize to the same tokens "
                                  f"{tokens}; rename one of them")
        seen[tuple(tokens)] = label
    return ids


@dataclass
class EncodedPrompt:
    """Token ids of one prompt: the shared prefix and the per-text body (text + tail)."""

    prefix: tuple[int, ...]
    body: list[int]
    truncated: bool = False


class PromptEncoder:
    """Tokenizes PromptParts, caching the prefix ids and truncating texts that would overflow the context."""

    def __init__(self, lm: LanguageModel, max_length: int | None = None, reserve: int = 0):
        self.lm = lm
        self.max_length = min(max_length or lm.max_length, lm.max_length)
        self.reserve = reserve
        self._prefix_cache: dict[str, tuple[int, ...]] = {}

    def _prefix_ids(self, prefix: str) -> tuple[int, ...]:
        if prefix not in self._prefix_cache:
            tok = self.lm.tokenizer
            has_bos_text = bool(tok.bos_token) and prefix.startswith(tok.bos_token)
            self._prefix_cache[prefix] = tuple(tok(prefix, add_special_tokens=not has_bos_text)["input_ids"])
        return self._prefix_cache[prefix]

    def encode(self, parts: Sequence[PromptParts]) -> list[EncodedPrompt]:
        tok = self.lm.tokenizer
        texts = tok([p.text for p in parts], add_special_tokens=False)["input_ids"]
        tails = {tail: tok(tail, add_special_tokens=False)["input_ids"] for tail in {p.tail for p in parts}}
        out, n_truncated = [], 0
        for p, text_ids in zip(parts, texts, strict=True):
            prefix, tail = self._prefix_ids(p.prefix), tails[p.tail]
            room = self.max_length - len(prefix) - len(tail) - self.reserve
            if room < 1:
                raise ValueError(f"the prompt template alone ({len(prefix) + len(tail)} tokens) does not fit "
                                 f"the context of {self.max_length} tokens; use fewer in-context examples")
            truncated = len(text_ids) > room
            n_truncated += truncated
            out.append(EncodedPrompt(prefix, list(text_ids[:room]) + list(tail), truncated))
        if n_truncated:
            warnings.warn(f"{n_truncated} text(s) did not fit the {self.max_length}-token prompt limit and were "
                          f"truncated (the template's tail is kept)", stacklevel=3)
        return out
