"""sftdata/curate/filters.py and sftdata/curate/textquality.py: every dropped row has a reason; counts balance."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from transformers import AutoTokenizer
from typer.testing import CliRunner

import sftdata
from sftdata.cli import app
from sftdata.curate.filters import FilterSpec, filter_records
from sftdata.curate.textquality import Mojibake, mojibake, refusal, script_share
from sftdata.errors import SftDataError

KO_ROWS = [
    {"question": "한국의 수도는 어디인가요?", "answer": "한국의 수도는 서울입니다."},
    {"question": "김치는 어떻게 만드나요?", "answer": "배추를 소금에 절인 뒤 양념을 버무려 발효시킵니다."},
    {"question": "오늘 날씨 어때?", "answer": "I am sorry, I only answer in English: the weather is fine today."},
    {"question": "비밀번호 알려줘", "answer": "죄송하지만 개인 정보는 알려 드릴 수 없습니다."},
    {"question": "파이썬 리스트 정렬 방법은?", "answer": "sorted(list) 또는 list.sort()를 사용하면 됩니다."},
    {"question": "AI 모델이 뭐야?", "answer": "AI 언어 모델로서 저는 감정이 없습니다."},
]


@pytest.fixture(scope="module")
def smollm2(smollm2_tokenizer_dir: Path):
    return AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_korean_language_share_and_refusals(tmp_path) -> None:
    source = _write(tmp_path / "ko.jsonl", KO_ROWS)
    out = tmp_path / "out.jsonl"
    result = filter_records([source], out, FilterSpec(lang="ko", min_lang_share=0.5, drop_refusals=True))
    s = result.summary()
    assert s["by_reason"] == {"language_mix": 1, "refusal": 2}
    assert (s["read"], s["written"], s["filtered"], s["rejected"]) == (6, 3, 3, 0)
    dropped = _lines(tmp_path / "out.rejects.jsonl")
    assert [(d["line"], d["reason"], d["stage"]) for d in dropped] == [(3, "language_mix", "filter"),
                                                                      (4, "refusal", "filter"), (6, "refusal", "filter")]
    assert all(d["raw"] and d["message"] for d in dropped)
    assert [r["question"] for r in _lines(out)] == [KO_ROWS[i]["question"] for i in (0, 1, 4)]
    assert result.counts.balanced()


def test_lengths_deny_and_tokens_on_real_data(shared_data, tmp_path, smollm2) -> None:
    records = tmp_path / "records.jsonl"
    sftdata.convert([shared_data / "alpaca_en_demo.json"], records, preset="alpaca")
    spec = FilterSpec(min_chars=60, max_chars=3000, max_tokens=400, deny=[r"(?i)\bopenai\b"], drop_refusals=True)
    out = tmp_path / "out.jsonl"
    result = filter_records([records], out, spec, tokenizer=smollm2)
    s = result.summary()
    assert set(s["by_reason"]) <= {"too_short", "too_long", "too_many_tokens", "denied", "refusal"}
    assert s["by_reason"]["too_many_tokens"] > 0 and s["by_reason"]["refusal"] == 23
    dropped = _lines(tmp_path / "out.rejects.jsonl")
    assert len(dropped) == s["filtered"] == sum(s["by_reason"].values())
    assert s["read"] == s["written"] + s["filtered"] == 999
    meta = json.loads(out.with_name("out.meta.json").read_text())
    assert meta["filters"]["max_tokens"] == 400 and meta["template"][0]["name"] == "alpaca"
    # the token count is the one pretokenize makes: nothing kept is longer
    from sftdata.curate.pretokenize import pretokenize

    tok_out = tmp_path / "tok.jsonl"
    kept = pretokenize([out], tok_out, tokenizer=smollm2, template="alpaca", max_seq_length=400)
    assert kept.summary()["overflow"]["over"] == 0 and kept.summary()["written"] == s["written"]


def test_max_tokens_needs_a_tokenizer(tmp_path) -> None:
    source = _write(tmp_path / "in.jsonl", KO_ROWS)
    with pytest.raises(SftDataError, match="max_tokens=10: counts tokens: it needs a tokenizer"):
        filter_records([source], tmp_path / "out.jsonl", FilterSpec(max_tokens=10))
    with pytest.raises(SftDataError, match=r"deny='\(': not a regular expression"):
        filter_records([source], tmp_path / "out.jsonl", FilterSpec(deny=["("]))


def test_invalid_rows_are_rejected_not_filtered(tmp_path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"question": "q", "answer": "   "}\n{"question": "q2", "answer": "a"}\n')
    s = filter_records([source], tmp_path / "out.jsonl", FilterSpec(min_chars=1)).summary()
    assert (s["rejected"], s["filtered"], s["written"]) == (1, 0, 1)


def test_script_share() -> None:
    assert script_share("안녕하세요 hello", "ko") == pytest.approx(5 / 10)
    assert script_share("1234 !!", "ko") is None
    assert script_share("今天天气很好", "zh") == 1.0


def test_mojibake_detection() -> None:
    korean = "안녕하세요, 반갑습니다. 오늘 날씨가 좋네요."
    assert mojibake(korean) is None
    assert mojibake(korean.encode("utf-8").decode("cp1252", errors="replace")) is Mojibake.cp1252
    assert mojibake("café au lait") is None and mojibake("Ã©tÃ© cafÃ©") is Mojibake.cp1252
    assert mojibake(korean.encode("utf-8").decode("cp949", errors="replace")) is Mojibake.cp949
    assert mojibake("broken \ufffd byte") is Mojibake.replacement
    assert mojibake("Hello — “quoted” text, naïve résumé, 大韓民國") is None


def test_refusal_phrases() -> None:
    assert refusal("As an AI language model, I cannot browse.") == "As an AI language model"
    assert refusal("죄송하지만 그 요청은 도와드릴 수 없습니다.")
    assert refusal("作为一个人工智能，我没有感情。")
    assert refusal("The answer is 42.") is None


def test_cli_filter(tmp_path) -> None:
    source = _write(tmp_path / "ko.jsonl", KO_ROWS)
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["filter", str(source), "-o", str(out), "--lang", "ko", "--drop-refusals",
                                      "--deny", "sorted", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[0])
    assert summary["filtered"] == 4 and summary["by_reason"]["denied"] == 1
    assert CliRunner().invoke(app, ["filter", str(source), "-o", str(out), "--lang", "xx"]).exit_code == 2


@pytest.mark.parametrize(("options", "flag"), [
    ({"min_chars": 100, "max_chars": 10}, "--min-chars 100"),
    ({"min_lang_share": 3.0, "lang": "ko"}, "--min-lang-share 3.0"),
    ({"min_lang_share": 0.9}, "--min-lang-share 0.9"),  # no --lang: it measured nothing and kept every row
    ({"max_chars": 0}, "--max-chars 0"),
    ({"min_chars": -1}, "--min-chars -1"),
    ({"max_tokens": 0, "tokenizer": "unused"}, "--max-tokens 0"),
])
def test_options_that_would_drop_every_row_are_refused(tmp_path, options, flag) -> None:
    """`--min-chars 100 --max-chars 10` or `--min-lang-share 3` used to run and drop every row: an OptionError now,
    in the notebook (`name=value: ...`) and the CLI (`--flag value: ...`, exit 2), before anything is written."""
    from sftdata.errors import OptionError

    source = _write(tmp_path / "ko.jsonl", KO_ROWS)
    out = tmp_path / "out.jsonl"
    with pytest.raises(OptionError) as raised:
        sftdata.filter([source], out, **options)
    assert str(raised.value).startswith(flag.lstrip("-").split()[0].replace("-", "_") + "=")
    argv = [a for k, v in options.items() for a in ("--" + k.replace("_", "-"), str(v))]
    result = CliRunner().invoke(app, ["filter", str(source), "-o", str(out), *argv])
    assert result.exit_code == 2 and f"{flag}:" in result.output, result.output
    assert not out.exists()
    with pytest.raises(OptionError):
        FilterSpec(**{k: v for k, v in options.items() if k != "tokenizer"})
