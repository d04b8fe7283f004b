"""Training data goes through sftdata's own tokenization: records and pretokenize output give the
same ids and masks, the template travels with them, and over-long samples keep their EOS."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sftdata import templates as registry
from sftdata.curate.pretokenize import pretokenize
from sftdata.errors import TrainError
from sftdata.trainers.data import Preparer, is_pretokenized


@pytest.fixture(scope="module")
def tokenizer(smollm2_tokenizer_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)


@pytest.fixture(scope="module")
def records(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = json.loads((shared_data / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:40]
    path = tmp_path_factory.mktemp("data") / "records.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_records_and_pretokenized_agree(tokenizer, records: Path, smollm2_tokenizer_dir: Path) -> None:
    from_records = Preparer(tokenizer, "alpaca", 4096).load([records])
    tokens = records.with_name("records.tok.jsonl")
    pretokenize([records], tokens, tokenizer=str(smollm2_tokenizer_dir), template="alpaca", max_seq_length=4096)
    assert is_pretokenized(tokens) and not is_pretokenized(records)
    from_tokens = Preparer(tokenizer, None, 4096).load([tokens])
    assert from_tokens.format == "pretokenized" and from_records.format == "records"
    assert from_tokens.input_ids == from_records.input_ids and from_tokens.masks == from_records.masks
    ref = from_tokens.templates[0]  # recovered from the .meta.json sidecar
    builtin = registry.BUILTIN["alpaca"].path.read_text(encoding="utf-8")
    assert (ref.name, ref.eos, ref.source) == ("alpaca", "<|im_end|>", builtin)
    assert ref.sha256 == from_records.templates[0].sha256
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for ids, mask in zip(from_records.input_ids, from_records.masks):
        last = max(i for i, m in enumerate(mask) if m)
        assert ids[last] == eos and mask[0] == 0  # the EOS is trained, the prompt is not
    with pytest.raises(TrainError, match="differs from the template"):
        Preparer(tokenizer, "chatml", 4096).load([tokens])


def test_overlong_samples_are_dropped_or_keep_their_eos(tokenizer, records: Path) -> None:
    full = Preparer(tokenizer, "alpaca", 4096).load([records])
    limit = sorted(len(i) for i in full.input_ids)[len(full.input_ids) // 2]
    dropped = Preparer(tokenizer, "alpaca", limit, "drop").load([records])
    assert dropped.counts["too_long"] == sum(len(i) > limit for i in full.input_ids)
    assert max(len(i) for i in dropped.input_ids) <= limit
    cut = Preparer(tokenizer, "alpaca", limit, "truncate").load([records])
    assert cut.counts["truncated"] == dropped.counts["too_long"] and len(cut.input_ids) == len(full.input_ids)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for ids, mask in zip(cut.input_ids, cut.masks):
        assert len(ids) <= limit and ids[-1] == eos and mask[-1] == 1


def test_chat_records_train_every_assistant_turn(tokenizer, tmp_path: Path) -> None:
    chat = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                         {"role": "user", "content": "Name?"}, {"role": "assistant", "content": "Hanbit."}]}
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps(chat) + "\n", encoding="utf-8")
    data = Preparer(tokenizer, "chatml", 512).load([path])
    ids, mask = data.input_ids[0], data.masks[0]
    trained = tokenizer.decode([t for t, m in zip(ids, mask) if m])
    assert trained == "Hello!<|im_end|>Hanbit.<|im_end|>"
    assert data.templates[0].name == "chatml" and data.eos == "<|im_end|>"


def test_pretokenized_rows_without_a_mask_are_refused(tokenizer, tmp_path: Path) -> None:
    path = tmp_path / "ids.jsonl"
    path.write_text(json.dumps({"input_ids": [1, 2, 3]}) + "\n", encoding="utf-8")
    with pytest.raises(TrainError, match="would include the prompts"):
        Preparer(tokenizer, None, 512).load([path])
