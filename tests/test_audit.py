"""sftdata/curate/audit.py: each known pitfall is found, with severity, count, locators, what breaks and the fix."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from sftdata.cli import app
from sftdata.curate.audit import audit
from sftdata.curate.findings import CHECKS, Trainer

KO_ROWS = [
    {"question": "한국의 수도는 어디인가요?", "answer": "한국의 수도는 서울입니다."},
    {"question": "한국의 수도는 어디인가요?", "answer": "서울특별시입니다."},  # exact duplicate prompt
    {"question": "서울은 대한민국의 수도이며 가장 큰 도시입니다. 맞나요?", "answer": "네, 맞습니다."},
    {"question": "서울은 대한민국의 수도이며 가장 오래된 도시입니다. 맞나요?", "answer": "아니요."},  # near
    {"question": "날씨를 알려줘", "answer": "The weather is sunny and warm today in Seoul."},  # language mix
    {"question": "깨진 글자", "answer": "안녕하세요 반갑습니다".encode().decode("cp1252", errors="replace")},
    {"question": "빈 답변", "answer": "   "},  # blank: rejected, reported as an empty answer
    {"question": "끝 토큰", "answer": "여기서 끝<|im_end|> 그리고 계속"},  # the EOS string inside the data
    {"question": "김치는 어떻게 만드나요?", "answer": "배추를 절이고 양념을 버무립니다."},
]


@pytest.fixture(scope="module")
def records(records: dict[str, Path], tmp_path_factory) -> dict[str, Path]:
    """The shared demo records plus a Korean Q&A set built to trip every text check."""
    ko = tmp_path_factory.mktemp("ko") / "ko.jsonl"
    ko.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in KO_ROWS))
    return {**records, "ko": ko}


def _findings(result) -> dict[str, dict]:
    return {f["code"]: f for f in result.summary()["findings"]}


def test_every_finding_says_what_breaks_and_the_fix() -> None:
    assert all(c.title and c.breaks and c.fix for c in CHECKS.values())


def test_korean_rows(toks, records) -> None:
    result = audit([records["ko"]], toks["smollm2"], template="qa_ko", lang="ko")
    found = _findings(result)
    assert found["exact_duplicates"]["count"] == 1 and found["exact_duplicates"]["examples"][0].startswith(
        f"{records['ko']}:2 ~ {records['ko']}:1")
    assert found["near_duplicates"]["count"] == 1 and ":4 ~ " in found["near_duplicates"]["examples"][0]
    assert found["language_mix"]["examples"] == [f"{records['ko']}:5", f"{records['ko']}:6"]  # mojibake too
    assert found["mojibake"]["examples"] == [f"{records['ko']}:6"]
    assert found["empty_answer"]["examples"] == [f"{records['ko']}:7"]
    assert found["eos_in_data"]["severity"] == "error" and found["eos_in_data"]["examples"] == [f"{records['ko']}:8"]
    s = result.summary()
    assert s["errors"] >= 2 and s["read"] == 9 and s["rejected"] == 2 and result.counts.balanced()
    severities = [f["severity"] for f in s["findings"]]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)


@pytest.mark.slow  # four audits, one with Gemma 3's tokenizer: ~10 s CPU
def test_pad_equal_to_eos_depends_on_the_trainer(toks, records) -> None:
    generic = _findings(audit([records["alpaca"]], toks["smollm2"]))
    assert generic["pad_is_eos"]["severity"] == "error"
    trl = _findings(audit([records["alpaca"]], toks["smollm2"], trainer=Trainer.trl))
    assert trl["pad_is_eos"]["severity"] == "warning"
    assert "pad_is_eos" not in _findings(audit([records["alpaca"]], toks["gemma3"]))  # Gemma's pad is its own
    assert generic["prompt_format_differs"]["severity"] == "info"  # alpaca on an instruct model


def test_why_pad_equal_to_eos_is_an_error_for_a_pad_masking_collator(toks) -> None:
    from transformers import DataCollatorForLanguageModeling

    tok = toks["smollm2"]
    ids = tok("Hi<|im_end|>", add_special_tokens=False)["input_ids"]
    assert ids[-1] == tok.eos_token_id == tok.pad_token_id
    batch = DataCollatorForLanguageModeling(tok, mlm=False)([{"input_ids": ids}])
    assert batch["labels"][0, -1].item() == -100  # the EOS is never learned


def test_truncation_findings(toks, records) -> None:
    found = _findings(audit([records["chat"]], toks["smollm2"], max_seq_length=300))
    assert found["fully_truncated"]["severity"] == "error" and found["fully_truncated"]["count"] > 0
    assert found["eos_truncated"]["severity"] == "warning" and found["eos_truncated"]["count"] > 0
    assert "pretokenize --on-overflow truncate" in found["fully_truncated"]["fix"]


@pytest.mark.slow  # two audits with Gemma 3's tokenizer: ~14 s CPU
def test_gemma_without_chat_template_and_a_foreign_chat_format(toks, records) -> None:
    found = _findings(audit([records["chat"]], toks["gemma3"]))
    assert found["chat_template_missing"]["severity"] == "error"
    assert found["template_mismatch"]["severity"] == "warning"  # it went on with chatml
    plain = _findings(audit([records["alpaca"]], toks["gemma3"]))
    assert "chat_template_missing" not in plain and "template_mismatch" not in plain


def test_bos_from_template_plus_tokenizer(toks, records, tmp_path) -> None:
    template = tmp_path / "bos_alpaca.jinja"
    template.write_text("{% block prompt %}{{ bos_token }}### Q:\n{{ instruction }}\n### A:\n{% endblock %}"
                        "{% block completion %}{{ output }}{% endblock %}", encoding="utf-8")
    found = _findings(audit([records["alpaca"]], toks["gemma3"], template=str(template)))
    assert found["bos_in_text"]["count"] == 999 and "bos_doubled" not in found  # ids hold one BOS, never two


def test_eval_overlap(records, tmp_path, toks) -> None:
    rows = records["alpaca"].read_bytes().splitlines()
    evals = tmp_path / "eval.jsonl"
    evals.write_bytes(b"\n".join(rows[:10] + [rows[20].replace(b'"instruction":"', b'"instruction":"Please, ')]) + b"\n")
    found = _findings(audit([records["alpaca"]], toks["smollm2"], eval_files=[evals], trainer=Trainer.sftdata))
    assert found["eval_overlap"]["severity"] == "error" and found["eval_overlap"]["count"] >= 11


def test_cli_audit_gates_ci(records, smollm2_tokenizer_dir, tmp_path) -> None:
    runner = CliRunner()
    failing = runner.invoke(app, ["audit", str(records["alpaca"]), "--tokenizer", str(smollm2_tokenizer_dir), "--json"])
    assert failing.exit_code == 1
    summary = json.loads(failing.stdout.strip().splitlines()[0])
    pad = next(f for f in summary["findings"] if f["code"] == "pad_is_eos")
    assert set(pad) == {"code", "severity", "title", "count", "examples", "breaks", "fix"}
    assert "ERROR" in failing.stderr and "fix:" in failing.stderr
    passing = runner.invoke(app, ["audit", str(records["alpaca"]), "--tokenizer", str(smollm2_tokenizer_dir),
                                  "--trainer", "trl", "--max-seq-length", "4096"])
    assert passing.exit_code == 0, passing.output
