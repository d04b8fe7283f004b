"""sftdata/tokenize/light.py gives exactly what transformers gives, without importing torch."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from transformers import AutoTokenizer

import sftdata
from sftdata.curate.pretokenize import pretokenize
from sftdata.tokenize.light import LightTokenizer, load_light


@pytest.fixture(scope="module")
def pair(smollm2_tokenizer_dir: Path):
    light = load_light(smollm2_tokenizer_dir)
    assert isinstance(light, LightTokenizer)
    return light, AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)


@pytest.fixture(scope="module")
def chats(shared_data: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("chats") / "chat.jsonl"
    sftdata.convert([shared_data / "glaive_toolcall_en_demo.json"], out, preset="sharegpt")
    return out


def test_same_special_tokens_vocab_and_ids(pair, shared_data) -> None:
    light, full = pair
    for name in ("bos_token", "eos_token", "pad_token", "unk_token"):
        assert getattr(light, name) == getattr(full, name)
    assert light.chat_template == full.chat_template and light.get_vocab() == full.get_vocab()
    rows = orjson.loads((shared_data / "alpaca_zh_demo.json").read_bytes())[:200]
    texts = [r["instruction"] + "\n" + r["output"] + "<|im_end|>" for r in rows] + ["", " ", "안녕 😀\r\n"]
    for special in (True, False):
        assert light(texts, add_special_tokens=special)["input_ids"] == full(texts, add_special_tokens=special)["input_ids"]
    for ids in full(texts)["input_ids"]:
        assert light.decode(ids) == full.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def test_same_chat_template_rendering(pair, chats) -> None:
    light, full = pair
    for line in chats.read_bytes().splitlines():
        record = orjson.loads(line)
        messages = record["messages"]
        for generation in (False, True):
            assert light.apply_chat_template(messages, tools=record.get("tools"), add_generation_prompt=generation) == \
                full.apply_chat_template(messages, tools=record.get("tools"), tokenize=False,
                                         add_generation_prompt=generation)


def test_pipeline_output_is_byte_identical(pair, chats, tmp_path) -> None:
    light, full = pair
    pretokenize([chats], tmp_path / "light.jsonl", tokenizer=light, template="chat", max_seq_length=2048)
    pretokenize([chats], tmp_path / "full.jsonl", tokenizer=full, template="chat", max_seq_length=2048)
    assert (tmp_path / "light.jsonl").read_bytes() == (tmp_path / "full.jsonl").read_bytes()


def test_the_same_control_tokens_reject_the_same_rows(pair, tmp_path) -> None:
    from sftdata.tokenize.load import special_tokens

    light, full = pair
    assert set(special_tokens(light)) == set(special_tokens(full)) and "<|im_start|>" in special_tokens(light)
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a <|im_start|>user b"}]},
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "fine"}]}]
    data = tmp_path / "rows.jsonl"
    data.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    for tok in (light, full):
        summary = pretokenize([data], tmp_path / "out.jsonl", tokenizer=tok, template="chat", max_seq_length=256).summary()
        assert (summary["written"], summary["by_reason"]) == (1, {"special_token_in_text": 1})


def test_only_generic_tokenizers_qualify(smollm2_tokenizer_dir, gemma3_tokenizer_dir, tmp_path, monkeypatch) -> None:
    assert load_light(gemma3_tokenizer_dir) is None  # GemmaTokenizer: transformers builds it
    copy = tmp_path / "tok"
    shutil.copytree(smollm2_tokenizer_dir, copy)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    (copy / "tokenizer_config.json").write_text(json.dumps({**config, "add_bos_token": True}))
    assert load_light(copy) is None
    monkeypatch.setenv("SFTDATA_LIGHT_TOKENIZER", "0")
    assert load_light(smollm2_tokenizer_dir) is None


def test_curation_commands_do_not_import_torch(smollm2_tokenizer_dir, chats) -> None:
    code = ("import sys; from sftdata.curate.stats import stats; "
            f"stats([{str(chats)!r}], {str(smollm2_tokenizer_dir)!r}, max_seq_length=512); "
            "print('torch' in sys.modules, 'transformers.modeling_utils' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
