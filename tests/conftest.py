"""Shared fixtures: a tiny randomly initialised causal LM with a real tokenizer built in the test."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def build_tiny_lm(arch: str = "llama", seed: int = 0, layers: int = 2):
    """A 2-layer random model over a word-level tokenizer trained here: no download, real computation."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from agilecls.lm.loading import LanguageModel

    corpus = ["Classify the following text into one of the following classes : [ Positive , Negative ] "
              "<separator> Text : Prediction : supermercados bancos good bad great awful movie food "
              "this was a the really very not is I love hate it . ! ? <eos> <pad> <bos>"]
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>", "<eos>", "<bos>"]))
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
