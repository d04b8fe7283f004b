"""The real-model fixtures work: cached files, tokenizers that load offline, the properties tests rely on."""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub.constants
import pytest
from transformers import AutoTokenizer

from support import realmodels


@pytest.fixture(scope="module")
def smollm2_tok(smollm2_tokenizer_dir: Path):
    return AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)


@pytest.fixture(scope="module")
def gemma3_tok(gemma3_tokenizer_dir: Path):
    return AutoTokenizer.from_pretrained(gemma3_tokenizer_dir)


def test_hub_is_offline_and_home_caches_are_sandboxed() -> None:
    assert huggingface_hub.constants.HF_HUB_OFFLINE
    assert os.environ["HF_DATASETS_OFFLINE"] == "1"
    real_home = Path.home().resolve()
    for name in ("HF_HOME", "XDG_CACHE_HOME"):
        assert not Path(os.environ[name]).resolve().is_relative_to(real_home), name


def test_models_are_cached_outside_the_repo(smollm2_gguf: Path, smollm2_tokenizer_dir: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    for path in (smollm2_gguf, smollm2_tokenizer_dir):
        assert path.parent == realmodels.CACHE_DIR
        assert not path.resolve().is_relative_to(repo)
    with open(smollm2_gguf, "rb") as fh:
        assert fh.read(4) == b"GGUF"
    assert realmodels.smollm2_gguf() == smollm2_gguf  # cached: returns at once


def test_smollm2_tokenizer(smollm2_tok) -> None:
    assert smollm2_tok.eos_token == "<|im_end|>"
    assert smollm2_tok.chat_template
    ids = smollm2_tok("Hello world")["input_ids"]
    assert smollm2_tok.bos_token_id not in ids  # adds no special tokens
    text = smollm2_tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>user\nhi<|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_gemma3_tokenizer(gemma3_tok) -> None:
    ids = gemma3_tok("Hello world")["input_ids"]
    assert ids[0] == gemma3_tok.bos_token_id
    assert ids.count(gemma3_tok.bos_token_id) == 1
    assert gemma3_tok.pad_token_id is not None
    assert gemma3_tok.pad_token_id != gemma3_tok.eos_token_id
    assert not gemma3_tok.chat_template  # base model: callers must bring their own template


def test_shared_data(shared_data: Path) -> None:
    assert shared_data.is_dir() and any(shared_data.iterdir())
