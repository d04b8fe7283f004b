"""sftdata/pipeline.py: convert/render/validate end to end on real data, meta sidecars, atomic outputs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import sftdata
from sftdata.schemas import RecordKind

REPO = Path(__file__).resolve().parents[1]


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_readme_main_job_output_loads_with_datasets(tmp_path):
    out = tmp_path / "ko_qa_sft.jsonl"
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), "convert", "examples/ko_qa/labels", "--map",
                             "examples/ko_qa/mapping.yaml", "-o", str(out), "--template", "qa_ko", "--eos", "</s>",
                             "--json"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["read"], summary["written"], summary["rejected"]) == (12, 11, 1)
    assert summary["by_reason"] == {"blank": 1}
    (reject,) = _lines(out.with_name("ko_qa_sft.rejects.jsonl"))
    assert reject["file"].endswith("LIFE_0003.json") and reject["element"] == 1 and reject["field"] == "answer"
    from datasets import load_dataset

    data = load_dataset("json", data_files=str(out), split="train")
    assert data.num_rows == 11
    assert all(t.startswith("### 문맥: ") and t.endswith("</s>") and t.count("</s>") == 1 for t in data["text"])


def test_convert_alpaca_real_data_to_prompt_completion(shared_data, tmp_path):
    out = tmp_path / "sft.jsonl"
    result = sftdata.convert([shared_data / "alpaca_en_demo.json"], out, preset="alpaca", template="alpaca",
                             eos="</s>", style=sftdata.Style.prompt_completion)
    assert result.counts.balanced() and result.summary()["written"] == 999
    rows = _lines(out)
    assert all(r["completion"].endswith("</s>") and r["completion"].count("</s>") == 1 for r in rows)
    assert all(r["prompt"].endswith("### Response:\n") for r in rows)
    meta = orjson.loads(out.with_name("sft.meta.json").read_bytes())
    assert meta["template"][0]["name"] == "alpaca" and len(meta["template"][0]["sha256"]) == 64
    assert meta["eos"] == ["</s>"] and meta["counts"]["written"] == 999
    assert meta["sources"][0]["sha256"] and meta["sources"][0]["bytes"] == (shared_data / "alpaca_en_demo.json").stat().st_size


def test_records_then_render_with_a_gguf_tokenizer(shared_data, tmp_path, smollm2_gguf):
    records = tmp_path / "records.jsonl"
    sftdata.convert([shared_data / "glaive_toolcall_en_demo.json"], records, preset="sharegpt")
    assert sftdata.validate([records]).summary()["rejected"] == 0
    out = tmp_path / "chat.jsonl"
    result = sftdata.render([records], out, template="chat", tokenizer=str(smollm2_gguf))
    # SmolLM2's own template writes no tool calls: a turn that is only a call cannot be trained, a per-row reject
    s = result.summary()
    assert (s["written"], s["rejected"], s["by_reason"]) == (147, 153, {"turn_not_located": 153})
    texts = [r["text"] for r in _lines(out)]
    assert all(t.startswith("<|im_start|>") for t in texts)
    # one <|im_end|> per turn: the chat template's own, never a second one appended
    rows = [r for r in _lines(records) if not any(m.get("tool_calls") for m in r["messages"])]
    assert all(t.count("<|im_end|>") == len(r["messages"]) + (r["messages"][0]["role"] != "system")
               for t, r in zip(texts, rows))


def test_convert_to_chat_messages_style(shared_data, tmp_path):
    out = tmp_path / "messages.jsonl"
    sftdata.convert([shared_data / "alpaca_zh_demo.json"], out, preset="alpaca", style=sftdata.Style.messages)
    rows = _lines(out)
    assert len(rows) == 1000 and rows[0]["messages"][-1]["role"] == "assistant"


def test_to_qa_conversion_and_validate_as(shared_data, tmp_path):
    out = tmp_path / "qa.jsonl"
    sftdata.convert([shared_data / "alpaca_en_demo.json"], out, preset="alpaca", to=RecordKind.qa)
    assert set(_lines(out)[0]) >= {"question", "answer"}
    assert sftdata.validate([out], kind=RecordKind.qa).summary()["rejected"] == 0
    assert sftdata.validate([out], kind=RecordKind.instruction).summary()["rejected"] == 999


def test_validate_writes_rejects_when_asked(tmp_path):
    data = tmp_path / "r.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a"}\n', encoding="utf-8")
    result = sftdata.validate([data], rejects=tmp_path / "bad.jsonl")
    assert result.summary()["rejected"] == 1
    assert _lines(tmp_path / "bad.jsonl")[0]["line"] == 2


def test_a_failed_run_leaves_no_output_and_no_temp_files(tmp_path):
    data = tmp_path / "r.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n' * 3, encoding="utf-8")

    def interrupted(rows: int) -> None:  # the run dies after its rows were written, before the files are closed
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sftdata.convert([data], tmp_path / "out" / "o.jsonl", template="alpaca", eos="</s>", progress=interrupted)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_template_that_raises_on_every_row_writes_nothing_and_says_why(tmp_path):
    data = tmp_path / "r.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n' * 3, encoding="utf-8")
    template = tmp_path / "t.jsonl.jinja"
    template.write_text("{% block prompt %}{{ raise_exception('no instructions here') }}{% endblock %}"
                        "{% block completion %}x{% endblock %}", encoding="utf-8")
    result = sftdata.convert([data], tmp_path / "o.jsonl", template=str(template), eos="</s>")
    summary = result.summary()
    assert (summary["written"], summary["rejected"], summary["by_reason"]) == (0, 3, {"template_error": 3})
    assert "template refused every row" in summary["nothing_written"]
    assert "no instructions here" in summary["nothing_written"]


def test_rerun_is_byte_identical(shared_data, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (a, b):
        sftdata.convert([shared_data / "seed_tasks.jsonl"], out, preset="alpaca", template="alpaca", eos="</s>")
    assert a.read_bytes() == b.read_bytes()
    assert a.with_name("a.rejects.jsonl").read_bytes() == b.with_name("b.rejects.jsonl").read_bytes()
