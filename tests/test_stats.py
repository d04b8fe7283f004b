"""sftdata/curate/stats.py, sftdata/curate/report.py, sftdata/curate/inspection.py: what the trainer sees, shown and counted."""
from __future__ import annotations

import json
import re
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from sftdata.cli import app
from sftdata.curate.inspection import TokenKind, inspect_samples
from sftdata.curate.pretokenize import pretokenize
from sftdata.curate.report import svg_histogram
from sftdata.curate.stats import stats


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.slow  # 999 rows through Gemma 3's tokenizer twice: ~10 s CPU
def test_lengths_agree_with_pretokenize(toks, records, tmp_path) -> None:
    tok = toks["gemma3"]
    result = stats([records["alpaca"]], tok, template="alpaca", max_seq_length=256)
    s = result.summary()["stats"]
    pretokenize([records["alpaca"]], tmp_path / "tok.jsonl", tokenizer=tok, template="alpaca", max_seq_length=10_000)
    rows = _lines(tmp_path / "tok.jsonl")
    lengths = sorted(len(r["input_ids"]) for r in rows)
    assert s["samples"] == 999 and s["lengths"]["total_tokens"]["max"] == lengths[-1]
    assert s["lengths"]["total_tokens"]["min"] == lengths[0]
    assert s["lengths"]["trained_tokens"]["max"] == max(sum(r["completion_mask"]) for r in rows)
    cut = s["max_seq_length"]
    assert cut["over"] == sum(1 for n in lengths if n > 256) == cut["eos_lost"]  # instruction: EOS is last
    assert cut["completion_lost"] == sum(1 for r in rows if r["completion_mask"].index(1) >= 256)
    total = s["histograms"]["total_tokens"]
    assert sum(total["counts"]) + total["overflow"] == 999 and 0 < total["overflow"] <= 10  # past p99
    assert s["lengths"]["prompt_chars"]["min"] > 0 and s["lengths"]["completion_tokens"]["min"] >= 2  # text + EOS


def test_chat_truncation_counts(toks, records) -> None:
    s = stats([records["chat"]], toks["smollm2"], max_seq_length=300).summary()
    cut = s["stats"]["max_seq_length"]
    assert cut["over"] >= cut["eos_lost"] >= cut["completion_lost"] >= cut["nothing_trained"]
    assert cut["eos_lost"] > 0 and cut["examples"]["eos_lost"]
    assert s["template"][0]["name"] == "chat" and s["read"] == 300


def test_report_is_self_contained_html(toks, records, tmp_path) -> None:
    report = tmp_path / "report.html"
    result = stats([records["alpaca"]], toks["smollm2"], max_seq_length=256, report=report)
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and page.count("<svg") == 3 and "max_seq_length 256" in page
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", page)  # nothing fetched: opens offline
    assert "<script" not in page
    assert "pad token is the EOS token" in page and "exact duplicates" in page  # the audit's findings
    # a finding about samples shows two of them token by token: prompt grey, trained green, the EOS marked
    assert page.count("<pre class='sample'>") >= 2 and "class='t-trained'" in page and "class='t-eos'" in page
    meta = json.loads((tmp_path / "report.meta.json").read_text())
    assert meta["command"] == "stats" and meta["outputs"]["data"] == str(report)
    assert result.summary()["report"] == str(report)


def test_report_shows_filter_reasons_from_the_input_sidecar(toks, records, tmp_path) -> None:
    from sftdata.curate.filters import FilterSpec, filter_records

    kept = tmp_path / "kept.jsonl"
    filter_records([records["alpaca"]], kept, FilterSpec(drop_refusals=True))
    stats([kept], toks["smollm2"], report=tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "filter → kept.jsonl" in page and "refusal" in page


def test_svg_histogram_marks_the_limit() -> None:
    svg = svg_histogram("t", {"edges": [0, 10, 20, 30], "counts": [1, 5, 2]}, limit=20)
    assert svg.count("<rect") == 3 and "max_seq_length 20" in svg


def test_inspect_shows_the_pretokenized_ids_and_masks(toks, records, tmp_path) -> None:
    for name, template, data, column in (("smollm2", "chat", "chat", "assistant_masks"),
                                         ("gemma3", "alpaca", "alpaca", "completion_mask")):
        tok = toks[name]
        found = inspect_samples([records[data]], tok, template=template, n=3, skip=1, pad_to=2048)
        shown, encoder = found.samples, found.encoder
        pretokenize([records[data]], tmp_path / "t.jsonl", tokenizer=tok, template=template, max_seq_length=4096)
        rows = _lines(tmp_path / "t.jsonl")[1:4]
        for sample, row in zip(shown, rows, strict=True):
            real = [t for t in sample.tokens if t.kind is not TokenKind.pad]
            assert [t.id for t in real] == row["input_ids"]
            assert [int(t.kind in (TokenKind.trained, TokenKind.eos)) for t in real] == row[column]
            assert "".join(t.text for t in real) == encoder.decode(row["input_ids"])
            assert sum(t.kind is TokenKind.eos for t in real) == sum(
                1 for i, m in enumerate(row[column]) if m and (i + 1 == len(row[column]) or not row[column][i + 1]))
            assert len(sample.tokens) == 2048 and sample.tokens[-1].kind is TokenKind.pad
        if name == "gemma3":
            assert shown[0].tokens[0].kind is TokenKind.bos


def test_cli_stats_and_inspect(records, tmp_path, smollm2_tokenizer_dir) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["stats", str(records["alpaca"]), "--tokenizer", str(smollm2_tokenizer_dir),
                                 "--max-seq-length", "512", "--json"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["stats"]["max_seq_length"]["over"] > 0
    assert "tokens per sample" in result.stderr and "p99" in result.stderr
    shown = runner.invoke(app, ["inspect", str(records["chat"]), "--tokenizer", str(smollm2_tokenizer_dir), "-n", "1",
                                "--ids", "--pad-to", "600"])
    assert shown.exit_code == 0, shown.output
    assert "legend" in shown.stderr and "[2]" in shown.stderr and "the pad token is the EOS" in shown.stderr
    as_json = runner.invoke(app, ["inspect", str(records["chat"]), "--tokenizer", str(smollm2_tokenizer_dir), "-n", "2",
                                  "--json"])
    assert len(json.loads(as_json.stdout.strip())["samples"]) == 2


def test_report_masks_personal_information_unless_show_pii(toks, tmp_path, smollm2_tokenizer_dir) -> None:
    import html

    rows = [{"instruction": f"메일 minsu.kim{n}@example.com, 번호 010-1234-5678로 연락 주세요",
             "output": "확인했습니다. 담당자가 영업일 기준 하루 안에 연락드리겠습니다."} for n in range(3)]
    source = tmp_path / "cs.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))

    def shown(page: Path) -> str:  # the text a reader sees: token spans joined, entities decoded
        return html.unescape(re.sub(r"<[^>]*>", "", page.read_text(encoding="utf-8")))

    report = tmp_path / "masked.html"
    stats([source], toks["smollm2"], template="alpaca", max_seq_length=16, report=report)
    text = shown(report)
    assert "010-1234-5678" not in text and "1234-5678" not in text and "example.com" not in text
    assert "메일 [이메일], 번호 [전화번호]로 연락 주세요" in text  # the samples token by token, masked
    assert "is masked as sftdata scrub masks it by default" in text and "--show-pii" in text
    assert json.loads((tmp_path / "masked.meta.json").read_text())["show_pii"] is False

    result = CliRunner().invoke(app, ["stats", str(source), "--tokenizer", str(smollm2_tokenizer_dir), "--template",
                                      "alpaca", "--max-seq-length", "16", "--report", str(tmp_path / "raw.html"),
                                      "--show-pii"])
    assert result.exit_code == 0, result.output
    text = shown(tmp_path / "raw.html")
    assert "010-1234-5678" in text and "minsu.kim0@example.com" in text and "do not share this file" in text

    # no sample over the limit, so nothing shown to mask: the note must not read as if the data held none
    stats([source], toks["smollm2"], template="alpaca", max_seq_length=4096, report=tmp_path / "none.html")
    text = shown(tmp_path / "none.html")
    assert "none in what this page shows" in text and "none was found" not in text


def test_report_masks_a_number_split_across_tokens() -> None:
    from sftdata.curate.report import Masker

    masker = Masker()
    tokens = [("번호 ", "prompt"), ("010", "prompt"), ("-12", "trained"), ("34-56", "trained"), ("78이요", "trained")]
    assert masker.tokens(tokens) == [("번호 ", "prompt"), ("[전화번호]", "prompt"), ("", "trained"), ("", "trained"),
                                     ("이요", "trained")]
    assert masker.text("메일 홍길동@한국.kr, 010-1234-5678") == "메일 [이메일], [전화번호]"
    assert masker.masked == {"[전화번호]": 2, "[이메일]": 1}
