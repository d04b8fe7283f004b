"""sftdata/curate/pretokenize.py: masks TRL accepts as they are; no sample silently exceeds N; truncation keeps EOS."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sftdata.cli import app
from sftdata.curate.pretokenize import Overflow, pretokenize, truncate
from sftdata.items import Locator
from sftdata.tokenize.encode import Tokenized


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("name,template,data,column", [
    ("smollm2", "alpaca", "alpaca", "completion_mask"), ("smollm2", "chat", "chat", "assistant_masks"),
    ("gemma3", "alpaca_ko", "alpaca", "completion_mask"), ("gemma3", "llama3", "chat", "assistant_masks")])
@pytest.mark.parametrize("policy", list(Overflow))
def test_no_sample_exceeds_n_and_counts_balance(toks, records, tmp_path, name, template, data, column, policy) -> None:
    tok, limit = toks[name], 256
    out = tmp_path / "out.jsonl"
    result = pretokenize([records[data]], out, tokenizer=tok, template=template, max_seq_length=limit,
                         on_overflow=policy)
    s = result.summary()
    rows = _lines(out)
    assert s["columns"] == [column] and all(set(r) == {"input_ids", column} for r in rows)
    assert all(len(r["input_ids"]) <= limit and len(r[column]) == len(r["input_ids"]) for r in rows)
    # ends on the stop token: the tokenizer's EOS, or for a chat template the template's own end-of-turn
    # marker (Llama 3's <|eot_id|>, several tokens for Gemma's vocabulary), never an EOS appended after it
    stop = "<|eot_id|>" if template == "llama3" else tok.eos_token
    assert all(tok.decode(r["input_ids"][:max(i for i, m in enumerate(r[column]) if m) + 1]).endswith(stop)
               for r in rows)
    assert all(tok.eos_token_id not in r["input_ids"] for r in rows) if template == "llama3" else True
    o = s["overflow"]
    assert o["over"] > 0 and o["policy"] == policy.value
    # SmolLM2's own template writes no tool calls: turns that are only a call are per-row rejects
    unlocated = s["by_reason"].get("turn_not_located", 0)
    assert unlocated == (153 if template == "chat" else 0) and s["rejected"] == unlocated
    if policy is Overflow.drop:
        assert s["filtered"] == o["dropped"] == o["over"]
        assert {k: v for k, v in s["by_reason"].items() if k != "turn_not_located"} == {"too_long": o["over"]}
        assert len(_lines(tmp_path / "out.rejects.jsonl")) == o["dropped"] + unlocated
    else:
        assert o["truncated"] == o["over"] and s["filtered"] == 0 and len(rows) == s["read"] - unlocated
    assert s["read"] == s["written"] + s["rejected"] + s["filtered"] and result.counts.balanced()
    meta = json.loads(out.with_name("out.meta.json").read_text())
    assert meta["overflow"] == o and meta["special_tokens"]["eos_id"] == tok.eos_token_id
    assert meta["template"][0]["sha256"] and meta["tokenization"] == "piecewise"


def _tok(ids: list[int], mask: list[int], bounds: list[int], trained: list[bool], bos: bool) -> Tokenized:
    return Tokenized(ids, mask, bounds, trained, Locator("x"), bos)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 30), st.integers(1, 30), st.integers(0, 3), st.booleans(), st.integers(2, 70))
def test_truncate_cuts_the_prompt_first_and_keeps_the_eos(prompt, completion, tail, bos, limit) -> None:
    head = [2] if bos else []
    ids = head + list(range(100, 100 + prompt)) + list(range(500, 500 + completion - 1)) + [1] + [9] * tail
    mask = [0] * (len(head) + prompt) + [1] * completion + [0] * tail
    bounds = [len(head) + prompt, len(head) + prompt + completion, len(ids)]
    tok = _tok(ids, mask, bounds, [False, True, False], bos)
    cut = truncate(tok, limit)
    assert cut.length == tok.length if tok.length <= limit else cut.length <= limit
    trained = [i for i, m in enumerate(cut.mask) if m]
    assert trained and cut.input_ids[trained[-1]] == 1  # the completion's end and its EOS stay
    if bos:
        assert cut.input_ids[0] == 2
    if cut is not tok:
        assert 9 not in cut.input_ids  # the untrained tail after the EOS goes first
        kept_prompt = sum(1 for i in cut.input_ids if 100 <= i < 500)
        kept_completion = sum(1 for i in cut.input_ids if 500 <= i < 600)
        if kept_prompt:
            assert kept_completion == completion - 1  # the prompt is cut before any of the completion
        assert cut.length == min(limit, len(head) + prompt + completion)
    assert cut.mask == [1 if (500 <= i < 600 or i == 1) else 0 for i in cut.input_ids]
    assert cut.spans() == [(trained[0], trained[-1] + 1)]


def test_trl_sft_trainer_takes_the_columns_as_they_are(toks, records, tmp_path) -> None:
    """SFTTrainer builds labels from our masks: -100 exactly where the mask is 0, ids unchanged."""
    from datasets import load_dataset
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    tok = toks["smollm2"]
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)
    for template, data, column in (("alpaca", "alpaca", "completion_mask"), ("chat", "chat", "assistant_masks")):
        out = tmp_path / f"{data}.jsonl"
        pretokenize([records[data]], out, tokenizer=tok, template=template, max_seq_length=512)
        dataset = load_dataset("json", data_files=str(out), split="train").select(range(16))
        args = SFTConfig(output_dir=str(tmp_path / "trl"), max_length=512, completion_only_loss=True,
                         report_to="none", use_cpu=True, bf16=False)
        trainer = SFTTrainer(model=LlamaForCausalLM(config), args=args, train_dataset=dataset, processing_class=tok)
        prepared = trainer.train_dataset
        for i in range(16):
            ours = dataset[i]
            assert prepared[i]["input_ids"] == ours["input_ids"]
            assert [label == -100 for label in prepared[i]["labels"]] == [m == 0 for m in ours[column]]
        batch = trainer.data_collator([prepared[i] for i in range(4)])
        for row in range(4):  # pad == eos here, yet TRL's collator keeps the EOS labels: it masks by position
            n = len(prepared[row]["input_ids"])
            assert batch["labels"][row, n - 1 if template == "alpaca" else n - 2].item() == tok.eos_token_id


def test_cli_pretokenize(toks, records, tmp_path, smollm2_tokenizer_dir) -> None:
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["pretokenize", str(records["alpaca"]), "-o", str(out), "--tokenizer",
                                      str(smollm2_tokenizer_dir), "--template", "alpaca", "--max-seq-length", "300",
                                      "--on-overflow", "truncate", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[0])
    assert summary["written"] == 999 and summary["overflow"]["truncated"] > 0
    assert "completion_only_loss=True" in result.stderr
    missing = CliRunner().invoke(app, ["pretokenize", str(records["alpaca"]), "-o", str(out), "--tokenizer",
                                       str(smollm2_tokenizer_dir), "--max-seq-length", "300"])
    assert missing.exit_code == 2  # --template is required
