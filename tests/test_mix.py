"""`sftdata mix`: three sources of very different lengths mixed by trained tokens, the shares checked on
what `pretokenize` writes for the mix (the masks the trainer sees), not on mix's own figures."""
from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

import sftdata
from sftdata.cli import app
from sftdata.errors import SftDataError

WORDS = ("배송", "환불", "교환", "주문", "결제", "취소", "쿠폰", "포인트", "회원", "문의", "확인", "처리", "안내", "기간", "상품")


def _sources(tmp_path: Path) -> dict[str, Path]:
    rng = random.Random(11)

    def sentence(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n)) + "."

    short = [{"instruction": f"짧은 질문 {i}: {sentence(3)}", "output": sentence(2)} for i in range(400)]
    medium = [{"messages": [{"role": "user", "content": f"상담 {i}: {sentence(8)}"},
                            {"role": "assistant", "content": sentence(30)}]} for i in range(150)]
    long = [{"messages": [{"role": "user", "content": f"긴 문의 {i}: {sentence(10)}"},
                          {"role": "assistant", "content": sentence(120), "reasoning_content": sentence(40)}]}
            for i in range(60)]
    out = {}
    for name, rows in (("short", short), ("medium", medium), ("long", long)):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
        out[name] = path
    return out


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def _key(line: bytes) -> str:
    row = orjson.loads(line)
    return row.get("instruction") or row["messages"][0]["content"]  # each row's prompt is unique


def _trained_tokens_by_source(tmp_path: Path, mixed: Path, sources: dict[str, Path], tokenizer: Path,
                              template: str) -> dict[str, int]:
    """Pretokenize the mix and credit each row's trained tokens (sum of its mask) to the source it came from."""
    owner = {_key(line): name for name, path in sources.items() for line in _lines(path)}
    tok = tmp_path / "mix.tok.jsonl"
    sftdata.pretokenize([mixed], tok, tokenizer=str(tokenizer), template=template, max_seq_length=4096)
    totals = dict.fromkeys(sources, 0)
    for line, row in zip(_lines(mixed), _lines(tok)):
        data = orjson.loads(row)
        totals[owner[_key(line)]] += sum(data.get("completion_mask") or data["assistant_masks"])
    return totals


def test_trained_token_shares_match_the_weights_in_pretokenize_output(tmp_path, smollm2_tokenizer_dir):
    sources = _sources(tmp_path)
    out = tmp_path / "mix.jsonl"
    spec = [f"{sources['short']}:0.5", f"{sources['medium']}:0.3", f"{sources['long']}:0.2"]
    result = sftdata.mix(spec, out, tokenizer=str(smollm2_tokenizer_dir), template="chatml", max_repeat=3)
    s = result.summary()
    assert s["read"] == 610 and s["read"] == s["written"] + s["rejected"] + s["filtered"] and s["rejected"] == 0
    assert s["lines"] == len(_lines(out)) == s["written"] + s["repeated"]
    totals = _trained_tokens_by_source(tmp_path, out, sources, smollm2_tokenizer_dir, "chatml")
    whole = sum(totals.values())
    for name, weight in (("short", 0.5), ("medium", 0.3), ("long", 0.2)):
        assert abs(totals[name] / whole - weight) < 0.01, (name, totals)
    table = {Path(r["source"]).stem: r for r in s["sources"]}
    assert {k: r["trained_tokens_out"] for k, r in table.items()} == totals  # mix's figures are pretokenize's
    # by rows the short source would be 66%; by trained tokens it is a small share before mixing
    assert table["short"]["row_share"] > 0.6 and table["short"]["token_share"] < 0.2
    assert table["short"]["max_copies"] > 1  # the short rows were repeated to reach half the tokens
    not_drawn = [orjson.loads(line) for line in _lines(tmp_path / "mix.rejects.jsonl")]
    assert len(not_drawn) == s["filtered"] and all(r["reason"] == "not_sampled" and r["raw"] is None for r in not_drawn)
    meta = orjson.loads((tmp_path / "mix.meta.json").read_bytes())
    assert meta["mix"]["sources"] == s["sources"] and meta["template"][0]["name"] == "chatml"


def test_same_seed_same_mix_and_rows_mode(tmp_path):
    sources = _sources(tmp_path)
    spec = [f"{sources['short']}:1", f"{sources['long']}:1"]
    a = sftdata.mix(spec, tmp_path / "a.jsonl", by="rows", total=100, seed=3)
    sftdata.mix(spec, tmp_path / "b.jsonl", by="rows", total=100, seed=3)
    sftdata.mix(spec, tmp_path / "c.jsonl", by="rows", total=100, seed=4)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()
    assert [r["rows_out"] for r in a.summary()["sources"]] == [50, 50]
    lines = _lines(tmp_path / "a.jsonl")
    assert len(set(lines)) == 100  # no repeats needed: every drawn row once


def test_a_short_source_is_an_error_that_says_by_how_much(tmp_path, smollm2_tokenizer_dir):
    sources = _sources(tmp_path)
    spec = [f"{sources['short']}:0.9", f"{sources['long']}:0.1"]
    with pytest.raises(SftDataError, match=r"short\.jsonl is short: the mix needs [\d,]+ trained tokens of it "
                                           r"\(weight 90%\) and it has [\d,]+, [\d,]+ with max_repeat=2 \(short by"):
        sftdata.mix(spec, tmp_path / "m.jsonl", tokens=200_000, max_repeat=2, tokenizer=str(smollm2_tokenizer_dir),
                    template="chatml")
    assert not (tmp_path / "m.jsonl").exists()
    with pytest.raises(SftDataError, match="trained-tokens needs a tokenizer"):
        sftdata.mix(spec, tmp_path / "m.jsonl")


def test_cli(tmp_path):
    sources = _sources(tmp_path)
    done = CliRunner().invoke(app, ["mix", f"{sources['short']}:2", f"{sources['medium']}:1", "-o",
                                    str(tmp_path / "m.jsonl"), "--by", "rows", "--json"])
    assert done.exit_code == 0, done.output
    summary = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert [r["rows_out"] for r in summary["sources"]] == [300, 150]  # the largest mix without repeats


def test_whole_rows_that_cannot_meet_a_weight_are_refused(tmp_path, smollm2_tokenizer_dir):
    """A source whose every row holds more trained tokens than its target would get none: refused, not
    written with a share of 0% for a weight of 50%."""
    sources = _sources(tmp_path)
    short = tmp_path / "few.jsonl"
    short.write_bytes(b"\n".join(_lines(sources["short"])[:10]) + b"\n")
    with pytest.raises(SftDataError, match=r"long\.jsonl gets 0\.0% of the mix for a weight of 50%.*rows hold"):
        sftdata.mix([f"{short}:1", f"{sources['long']}:1"], tmp_path / "m.jsonl",
                    tokenizer=str(smollm2_tokenizer_dir), template="chatml")
    assert not (tmp_path / "m.jsonl").exists()


@pytest.mark.parametrize("spec, message", [("a.jsonl", "has no weight"), ("a.jsonl:abc", "has no weight"),
                                           ("a.jsonl:0", "positive number")])
def test_every_source_needs_a_weight(tmp_path, spec, message):
    with pytest.raises(SftDataError, match=message):
        sftdata.mix([spec, "b.jsonl:1"], tmp_path / "m.jsonl", by="rows")
