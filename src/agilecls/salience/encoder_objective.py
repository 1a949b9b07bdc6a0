"""The objective of a sentence-encoder classifier: one class's log-probability as a function of the
encoder's input word embeddings.

:class:`EncoderLogProb` runs the classifier's own sentence-transformers model (transformer,
pooling, normalisation, ...) with the transformer's word-embedding output replaced by the
embeddings being explained (a forward hook, so position and token-type embeddings are still added
inside the model), then the classifier's own head (or its Mahalanobis statistics) and temperature:
the numbers ``predict_proba`` gives. The classifier is used through its attributes (``encoder_``,
``head_``, ``mahalanobis_``, ``temperature_``), never imported.
"""

from __future__ import annotations

import inspect

import torch

from .objectives import Objective


def word_embedding_module(model) -> torch.nn.Module:
    """The input word-embedding layer of a sentence-transformers model's transformer.

    Parameters
    ----------
    model : sentence_transformers.SentenceTransformer

    Returns
    -------
    torch.nn.Module
        The module whose output is the word embeddings (``get_input_embeddings()`` of the first
        Hugging Face model inside ``model``).
    """
    inner = getattr(model[0], "auto_model", None) if len(model) else None
    candidates = [inner] if inner is not None else []
    candidates += [m for m in model.modules() if m is not model and callable(getattr(m, "get_input_embeddings", None))]
    for module in candidates:
        layer = module.get_input_embeddings()
        if isinstance(layer, torch.nn.Module):
            return layer
    raise ValueError("the sentence encoder has no input word-embedding layer to explain")


class EncoderLogProb(Objective):
    """Temperature-scaled log-probability of class ``label`` of a fitted EncoderClassifier for one
    tokenised text, as a function of its word embeddings ``x`` [B, tokens, d] → [B] (float64).

    Parameters
    ----------
    clf : EncoderClassifier
        A fitted sentence-encoder classifier (duck-typed: ``encoder_``, ``head``, ``head_``,
        ``mahalanobis_``, ``temperature_``, ``device_``).
    text : str
        The text; it is tokenised by the encoder (``encoder_.features``), truncated to its
        ``max_seq_length``.
    label : int
        Index of the class in ``clf.classes_``.

    Attributes
    ----------
    ids : list of int
        The token ids of the text, special tokens included.
    embeds : torch.Tensor
        Their word embeddings [tokens, d]: the input to explain.
    """

    def __init__(self, clf, text: str, label: int):
        self.clf = clf
        self.label = int(label)
        self.model = clf.encoder_.model.eval()  # as predictions run it: no dropout
        self.features = clf.encoder_.features([text])
        self.ids = [int(i) for i in self.features["input_ids"][0].tolist()]
        self.layer = word_embedding_module(self.model)
        with torch.no_grad():
            self.embeds = self.layer(self.features["input_ids"])[0].detach()

    def sentence_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's sentence embeddings [B, dim] with word embeddings ``x`` [B, tokens, d]."""
        batch = x.shape[0]
        feats = {k: v.expand(batch, *v.shape[1:]) if isinstance(v, torch.Tensor) and v.shape[:1] == (1,) else v
                 for k, v in self.features.items()}

        def replace(module, args, out):
            if out.shape != x.shape:
                raise RuntimeError(f"word embeddings of shape {tuple(out.shape)} cannot be replaced by "
                                   f"{tuple(x.shape)}")
            return x.to(out.dtype)

        handle = self.layer.register_forward_hook(replace)
        try:
            return self.model(feats)["sentence_embedding"]
        finally:
            handle.remove()

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        """Temperature-scaled class logits [B, classes] (float64) of sentence embeddings, as the
        classifier's ``_logits`` computes them, differentiably."""
        clf = self.clf
        if clf.head == "mahalanobis":  # -d^2 / 2 to the class means (MahalanobisScorer.logits, in torch)
            stats = clf.mahalanobis_
            e = emb.double()
            precision = torch.as_tensor(stats.precision_, dtype=torch.float64, device=e.device)
            means = torch.as_tensor(stats.means_, dtype=torch.float64, device=e.device)
            xp, mp = e @ precision, means @ precision
            d = (xp * e).sum(1)[:, None] - 2 * xp @ means.T + (mp * means).sum(1)[None, :]
            out = -0.5 * d.clamp(min=0.0)
        else:
            head = clf.head_.eval()
            params = inspect.signature(head.predict_logits).parameters
            extra = {"mean_field_factor": clf.mean_field_factor} if "mean_field_factor" in params else {}
            out = head.predict_logits(emb.to(getattr(clf, "device_", emb.device)), **extra).double()
        return out / float(clf.temperature_)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.logits(self.sentence_embeddings(x)), dim=-1)[:, self.label]
