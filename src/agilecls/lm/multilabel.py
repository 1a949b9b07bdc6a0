"""Multi-label prompting: each label is an independent yes/no question to the language model.

For a text and a label the prompt asks whether the text belongs to that label, and the model's
answer is read from the probabilities of the answer words " yes" and " no" at the answer position
by the one scoring engine (:class:`agilecls.lm.scoring.LabelScorer`, with the two answer words as
its "labels"): p(label) = softmax over {yes, no}, i.e. the sigmoid of the log-odds
``score(yes) - score(no)``. The text comes before the label's question, so the instructions and
the text form the prefix that the engine computes once per text, and each label adds only its
short tail (:func:`encode_pairs`). The
two-way cross-entropy over {yes, no} that :class:`agilecls.lm.tuning.LoraTrainer` minimises on
(text, label) pairs is exactly the per-label binary cross-entropy, averaged over the pairs.

Separator style (the tuning default)::

    {instructions}:[yes,no]<separator>Text:{text}<separator>Label:{label}<separator>Prediction: yes

Chat style: the same instruction, text and label in the user turn, answered "yes" or "no".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .prompts import EncodedPrompt, PromptEncoder, PromptParts, PromptTemplate

#: The answer words; index 0 means "the text has the label".
ANSWERS = ("yes", "no")

DEFAULT_MULTILABEL_INSTRUCTIONS = "Does the text belong to the label? Answer with one of the following words"

_SLOT = "\x00AGILECLS_TEXT\x00"


def frame(template: PromptTemplate, label: str, tokenizer=None) -> tuple[str, str]:
    """The (prefix, tail) around the text slot of the question about ``label``; the prefix is the
    same for every label."""
    if template.style == "separator":
        sep = template.separator
        return f"{template.instructions}:[{','.join(ANSWERS)}]{sep}Text:", f"{sep}Label:{label}{sep}Prediction:"
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("the chat template style needs a model with a chat template; "
                         "use style='separator' for base models such as gemma-3-270m")
    content = (f"{template.instructions}: {', '.join(ANSWERS)}. Answer with the word only.\n\n"
               f"Text: {_SLOT}\n\nLabel: {label}")
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                             add_generation_prompt=True)
    prefix, _, tail = rendered.partition(_SLOT)
    return prefix, tail


def render_pairs(template: PromptTemplate, texts: Sequence[str], labels: Sequence[str],
                 tokenizer=None) -> list[PromptParts]:
    """One prompt per (text, label) pair, text-major: pair ``i * len(labels) + k`` asks whether
    text ``i`` has label ``k``."""
    frames = [frame(template, str(label), tokenizer) for label in labels]
    return [PromptParts(prefix, text, tail) for text in texts for prefix, tail in frames]


def encode_pairs(encoder: PromptEncoder, template: PromptTemplate, texts: Sequence[str], labels: Sequence[str],
                 ) -> list[EncodedPrompt]:
    """The (text, label) prompts as token ids, text-major, split so that a text is computed once:
    the shared prefix is the instructions and the text, the body only the label's tail.

    Tokens are the same as :class:`PromptEncoder` gives the prompt of :func:`render_pairs`
    (instructions, text and tail tokenized apart); a text too long for the context is cut to fit
    next to the longest tail, so every label sees the same text tokens. The scoring engine then
    runs each text's prefix once and its labels' tails as a batch on the prefix's key/value cache,
    and tuning caches the frozen lower layers of each text once instead of once per label."""
    tokenizer = encoder.lm.tokenizer
    frames = [frame(template, str(label), tokenizer) for label in labels]
    tails = [tokenizer(tail, add_special_tokens=False)["input_ids"] for _, tail in frames]
    longest = max(range(len(frames)), key=lambda k: len(tails[k]))
    prefix = frames[0][0]
    encoded = encoder.encode([PromptParts(prefix, text, frames[longest][1]) for text in texts])
    n_tail = len(tails[longest])
    return [EncodedPrompt(e.prefix + tuple(e.body[:len(e.body) - n_tail]), list(tail), e.truncated)
            for e in encoded for tail in tails]


def pair_targets(Y: np.ndarray) -> list[int]:
    """Answer index of every (text, label) pair, text-major: 0 ("yes") where the text has the label,
    1 ("no") where it has not."""
    return (1 - np.asarray(Y, dtype=int)).ravel().tolist()


def log_odds(answer_scores: np.ndarray, n_texts: int) -> np.ndarray:
    """[texts, labels] log-odds ``score(yes) - score(no)`` from the scores [pairs, 2] of the answer words."""
    scores = np.asarray(answer_scores, dtype=np.float64)
    return (scores[:, 0] - scores[:, 1]).reshape(n_texts, -1)


def logit(p: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)
