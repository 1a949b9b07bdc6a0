"""Shared fixtures: a tiny randomly initialised causal LM with a real tokenizer built in the test."""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def build_tiny_lm(arch: str = "llama", seed: int = 0, layers: int = 2, extra_words: str = ""):
    """A 2-layer random model over a word-level tokenizer trained here: no download, real computation.
    ``extra_words`` adds words to the vocabulary (e.g. the multi-label answers)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from agilecls.lm.loading import LanguageModel

    corpus = ["Classify the following text into one of the following classes : [ Positive , Negative ] "
              "<separator> Text : Prediction : supermercados bancos good bad great awful movie food "
              "this was a the really very not is I love hate it . ! ? <eos> <pad> <bos> " + extra_words]
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer.train_from_iterator(corpus,
                                  trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>", "<eos>", "<bos>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>",
                                  eos_token="<eos>", bos_token="<bos>")
    torch.manual_seed(seed)
    if arch == "llama":
        from transformers import LlamaConfig

        config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                             tie_word_embeddings=True, pad_token_id=tok.pad_token_id)
    else:
        from transformers import Gemma3TextConfig

        config = Gemma3TextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                  num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                  max_position_embeddings=128, sliding_window=8, pad_token_id=tok.pad_token_id,
                                  final_logit_softcapping=30.0)
    model = AutoModelForCausalLM.from_config(config).eval()
    return LanguageModel(model, tok, f"tiny-{arch}", "test")


@pytest.fixture
def one_thread():
    """Tiny tensors run fastest on one thread (and leave the other core to whatever else runs)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_lm():
    return build_tiny_lm("llama")


@pytest.fixture(scope="session")
def tiny_gemma():
    return build_tiny_lm("gemma3")


#: A separable toy sentiment task in the tiny tokenizer's words.
POS = ["good movie", "great food", "I love it", "really great", "good food", "I love the movie", "great great",
       "very good"]
NEG = ["bad movie", "awful food", "I hate it", "really awful", "bad food", "I hate the movie", "awful awful",
       "very bad"]
TEXTS = POS + NEG
Y = ["Positive"] * len(POS) + ["Negative"] * len(NEG)


@pytest.fixture(scope="session")
def learnable_lm():
    """The tiny Gemma with its (tied) embeddings scaled up: random init at std 0.02 caps label logits
    near zero, which no adapter can fix; scaled, the tiny model can fit a toy task in seconds."""
    lm = build_tiny_lm("gemma3")
    with torch.no_grad():
        lm.model.get_input_embeddings().weight.mul_(25)
    return lm


@pytest.fixture(scope="session")
def tiny_lm_folder(tiny_lm, tmp_path_factory):
    """The tiny model saved as a local Hugging Face folder: a model spec any command accepts."""
    folder = tmp_path_factory.mktemp("tiny-llama") / "model"
    tiny_lm.model.save_pretrained(folder)
    tiny_lm.tokenizer.save_pretrained(folder)
    return folder


def topic_texts(topics: dict[str, str], seed: int, n_per_class: int) -> tuple[list[str], list[str]]:
    """``n_per_class`` texts of 3-6 words drawn (seeded) from each topic's words, and their labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    texts, y = [], []
    for label, words in topics.items():
        vocab = words.split()
        for _ in range(n_per_class):
            texts.append(" ".join(rng.choice(vocab, size=rng.integers(3, 7))))
            y.append(label)
    return texts, y


#: A toy multi-label task: texts made of the words of 0-2 topics.
ML_TOPICS = {"sports": "goal match team score player ball coach league",
             "food": "pizza pasta bread cheese soup salad recipe dinner",
             "music": "song guitar album concert band drum melody singer"}
ML_FILLER = ["the", "a", "today", "really", "very", "some"]
ML_LABELS = sorted(ML_TOPICS)


def multilabel_texts(n: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """``n`` texts of three words from each of 0-2 topics of ``ML_TOPICS`` plus two filler words
    (seeded), and their topic lists."""
    import numpy as np

    rng = np.random.default_rng(seed)
    texts, y = [], []
    for _ in range(n):
        chosen = sorted(rng.choice(ML_LABELS, size=rng.integers(0, 3), replace=False).tolist())
        words = [w for t in chosen for w in rng.choice(ML_TOPICS[t].split(), size=3).tolist()]
        words += rng.choice(ML_FILLER, size=2).tolist()
        rng.shuffle(words)
        texts.append(" ".join(words))
        y.append(chosen)
    return texts, y


def build_tiny_sentence_encoder(folder: Path, words) -> str:
    """A 2-layer random BERT over a word-level tokenizer of ``words`` (others are [UNK]) + mean
    pooling + normalisation, saved as a sentence-transformers folder in ``folder``."""
    from sentence_transformers import SentenceTransformer
    try:  # sentence-transformers >= 6 moved the modules
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    except ImportError:
        from sentence_transformers.models import Normalize, Pooling, Transformer
    from tokenizers import Tokenizer, pre_tokenizers, processors
    from tokenizers import models as tok_models
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + sorted(set(words)))}
    tok = Tokenizer(tok_models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64)
    hf_dir, out = folder / "hf", folder / "st"
    BertModel(config).save_pretrained(hf_dir)
    fast.save_pretrained(hf_dir)
    st = SentenceTransformer(modules=[Transformer(str(hf_dir), max_seq_length=32), Pooling(32, "mean"), Normalize()],
                             device="cpu")
    st.save(str(out))
    return str(out)


# -- the browser tests ---------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
NEEDS_CHROMIUM = [pytest.mark.browser,
                  pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                     reason=f"{CHROMIUM} not found: install Debian's chromium "
                                            "(apt-get install -y chromium)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(proc, url: str, timeout: float) -> httpx.Response:
    """GET ``url`` until it answers 200 while the server subprocess ``proc`` runs; that answer.
    Kills ``proc`` and fails, with the end of its stderr when piped, if it exits or ``timeout`` passes."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            answer = httpx.get(url, timeout=5)
            if answer.status_code == 200:
                return answer
        except httpx.TransportError:
            time.sleep(0.25)
    proc.kill()
    stderr = proc.stderr.read() if proc.stderr else ""
    stderr = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    raise AssertionError(f"{url} did not answer: {stderr[-2000:]}")


@contextmanager
def serve_in_thread(app):
    """``app`` served by uvicorn in a thread on a free port; yields its base URL."""
    import uvicorn

    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{srv.config.port}"
    finally:
        srv.should_exit = True
        thread.join(10)


@contextmanager
def chromium_page():
    """A page in Debian's Chromium (1440x1000) whose ``errors`` collects page errors and failed requests."""
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
        page.errors = errors
        try:
            yield page
        finally:
            browser.close()
