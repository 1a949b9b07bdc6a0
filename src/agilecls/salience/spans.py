"""Token scores summed into words, sentences, lines, paragraphs or regex spans, with character offsets.

Every token lands in exactly one span, so the span scores always add up to the token total: a view
at any granularity shows the same attribution mass, only grouped differently.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

import regex  # a dependency of transformers; time limits that the standard re lacks

GRANULARITIES = ("tokens", "words", "sentences", "lines", "paragraphs", "regex")

_PATTERNS = {
    "words": re.compile(r"\S+"),
    # A sentence ends at . ! ? (with closing quotes/brackets) before whitespace, or at a line break:
    # prompts are often line-structured ("Taste-likes: ...") without final punctuation.
    "sentences": re.compile(r"[^\s](?:[^\n]*?(?:[.!?]+['\")\]]*(?=\s|$))|[^\n]*)"),
    "lines": re.compile(r"[^\n]*\S[^\n]*"),
    "paragraphs": re.compile(r"\S(?:[^\n]|\n(?![ \t\r]*\n))*"),
}


#: Longest a user's pattern may search one text, in seconds.
REGEX_TIMEOUT = 1.0

#: A group holding a quantifier, itself quantified: ``(a+)+``, ``(\w*\s?)*``, ``(x{2,})+``.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*(?:[+*]|\{\d*,?\d*\})(?:[^()\\]|\\.)*\)(?:[+*]|\{\d*,\d*\})")


def user_regex_matches(pattern: str | None, text: str, timeout: float = REGEX_TIMEOUT) -> list:
    r"""The matches of a user's ``pattern`` in ``text``, safely: a pattern with a quantified group
    that itself holds a quantifier (the shape behind catastrophic backtracking) is refused, and
    the search runs in the ``regex`` package with a time limit and without holding the GIL, so
    one pattern cannot stall a server.

    Examples
    --------
    >>> [m.group() for m in user_regex_matches(r"\d+", "a1 b22")]
    ['1', '22']
    >>> user_regex_matches(r"(a+)+$", "aaaab")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    ValueError: regex '(a+)+$' nests quantifiers (a repeated group that repeats inside), which can take
    exponential time; rewrite it without the outer repeat, e.g. (a+) instead of (a+)+
    """
    if not pattern:
        raise ValueError("granularity 'regex' needs a pattern")
    if _NESTED_QUANTIFIER.search(pattern):
        raise ValueError(f"regex {pattern!r} nests quantifiers (a repeated group that repeats inside), which can "
                         f"take exponential time; rewrite it without the outer repeat, e.g. (a+) instead of (a+)+")
    try:
        compiled = regex.compile(pattern)
    except (regex.error, OverflowError, RecursionError) as err:
        raise ValueError(f"invalid regex {pattern!r}: {err}") from err
    try:
        return list(compiled.finditer(text, concurrent=True, timeout=timeout))
    except TimeoutError as err:
        raise ValueError(f"regex {pattern!r} took over {timeout:g} s on this text; simplify it") from err


def segment(text: str, granularity: str, pattern: str | None = None) -> list[tuple[int, int]]:
    """Character ranges of the spans of ``text``: ordered, non-overlapping, never empty.

    ``regex``: the matches of ``pattern`` are spans and the text between them becomes spans too,
    so that no token is left without a span."""
    if granularity in ("word", "sentence", "line", "paragraph", "token"):
        granularity += "s"
    if granularity == "regex":
        ranges, last = [], 0
        for m in user_regex_matches(pattern, text):
            if m.end() == m.start():
                continue
            if m.start() > last:
                ranges.append((last, m.start()))
            ranges.append((m.start(), m.end()))
            last = m.end()
        if last < len(text):
            ranges.append((last, len(text)))
        return [(a, b) for a, b in ranges if text[a:b].strip()] or ([(0, len(text))] if text else [])
    if granularity not in _PATTERNS:
        raise ValueError(f"unknown granularity {granularity!r}; use one of {', '.join(GRANULARITIES)}")
    ranges = []
    for m in _PATTERNS[granularity].finditer(text):
        start, end = m.start(), m.end()
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            ranges.append((start, end))
    return ranges


def _anchor(text: str, start: int, end: int) -> int:
    """The character that places a token: its first non-space one (' Avoid' belongs to 'Avoid')."""
    for i in range(start, end):
        if not text[i].isspace():
            return i
    return start


def aggregate(text: str, tokens: Sequence[dict], granularity: str = "words", pattern: str | None = None) -> list[dict]:
    """Sum token scores into spans. ``tokens``: dicts with ``start``, ``end``, ``score`` (and
    ``special`` for tokens that are not in the text, e.g. BOS). A token belongs to the span holding
    its anchor character; whitespace-only tokens between spans go to the next span (the last one at
    the end of the text); special tokens form their own spans. Returns dicts with ``text``,
    ``start``, ``end``, ``score``, ``tokens`` (indices) and ``special``."""
    if granularity in ("tokens", "token"):
        return [{"text": text[t["start"]:t["end"]] if not t.get("special") else t.get("text", ""),
                 "start": t["start"], "end": t["end"], "score": float(t["score"]), "tokens": [i],
                 "special": bool(t.get("special"))} for i, t in enumerate(tokens)]
    ranges = segment(text, granularity, pattern)
    spans = [{"text": text[a:b], "start": a, "end": b, "score": 0.0, "tokens": [], "special": False}
             for a, b in ranges]
    specials: list[dict] = []
    starts = [a for a, _ in ranges]
    for i, tok in enumerate(tokens):
        if tok.get("special") or not spans:
            specials.append({"text": tok.get("text", ""), "start": tok["start"], "end": tok["end"],
                             "score": float(tok["score"]), "tokens": [i], "special": True})
            continue
        pos = _anchor(text, tok["start"], tok["end"])
        k = bisect.bisect_right(starts, pos) - 1
        if k < 0:
            k = 0
        elif pos >= ranges[k][1]:  # in the gap after span k: it leads into the next span
            k = min(k + 1, len(spans) - 1)
        spans[k]["score"] += float(tok["score"])
        spans[k]["tokens"].append(i)
    return specials + [s for s in spans if s["tokens"]]
