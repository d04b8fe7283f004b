"""Each curation command returns its own result type: typed figures (`result.tokens`, `result.overflow.over`)
that `summary()` and the sidecar give under the keys they always had, and that a split run adds up."""
from __future__ import annotations

import json
from pathlib import Path

import orjson

import sftdata
from sftdata.curate.pretokenize import Overflow, OverflowCounts, PretokenizeResult
from sftdata.curate.results import CurateResult
from sftdata.curate.split import SplitResult
from sftdata.items import Counts
from sftdata.scale.commands import combine, summed

COUNTS = ["read", "written", "rejected", "filtered", "deduplicated", "by_reason", "files", "command", "output",
          "rejects"]


def _records(folder: Path) -> Path:
    rows = [{"instruction": f"question {i}", "output": "answer " * (1 + i % 40)} for i in range(30)]
    rows.append({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
    path = folder / "records.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b'\n{"not": "a record"}\n')
    return path


def test_pretokenize_result_is_typed_and_its_summary_keeps_its_keys(tmp_path, smollm2_tokenizer_dir) -> None:
    out = tmp_path / "out.jsonl"
    result = sftdata.pretokenize([_records(tmp_path)], out, tokenizer=str(smollm2_tokenizer_dir), template="auto",
                                 max_seq_length=40)
    assert type(result) is PretokenizeResult and isinstance(result, CurateResult)
    assert not hasattr(result, "extra")  # figures are typed fields, never a dict beside them
    assert isinstance(result.overflow, OverflowCounts) and result.overflow.policy is Overflow.drop
    assert result.overflow.over == result.overflow.dropped > 0 and result.overflow.truncated == 0
    assert result.columns == ["assistant_masks", "completion_mask"] and result.max_seq_length == 40
    assert result.tokens == sum(len(r["input_ids"]) for r in map(orjson.loads, out.read_bytes().splitlines()))
    s = result.summary()
    assert set(COUNTS) <= set(s) and list(s)[-4:] == ["max_seq_length", "overflow", "columns", "tokens"]
    assert {"template", "eos", "tokenizer", "style"} <= set(s)
    assert s["overflow"] == {"policy": "drop", "over": result.overflow.over, "dropped": result.overflow.dropped,
                             "truncated": 0}
    assert result.figures() == {k: s[k] for k in ("max_seq_length", "overflow", "columns", "tokens")}
    meta = json.loads(out.with_name("out.meta.json").read_text())
    assert meta["overflow"] == s["overflow"] and meta["tokens"] == result.tokens
    orjson.dumps(s)  # plain JSON values only


def test_split_result_is_typed_and_its_summary_keeps_its_keys(tmp_path) -> None:
    result = sftdata.split([_records(tmp_path)], tmp_path / "out", eval_ratio=0.3, seed=1)
    assert type(result) is SplitResult and result.train + result.eval == 31 and result.eval > 0
    assert result.eval_path == tmp_path / "out" / "eval.jsonl"
    s = result.summary()
    assert set(COUNTS) <= set(s) and list(s)[-6:] == ["train", "eval", "eval_path", "eval_ratio", "seed",
                                                      "group_near_dups"]
    assert s["eval_path"] == str(result.eval_path) and (s["train"], s["eval"]) == (result.train, result.eval)
    meta = json.loads((tmp_path / "out" / "eval.meta.json").read_text())
    assert meta["eval"] == result.eval and meta["side"] == "eval"


def test_summed_adds_up_dataclass_figures_and_dict_figures() -> None:
    def part(over: int, tokens: int, columns: list[str]) -> PretokenizeResult:
        return PretokenizeResult("pretokenize", Counts(), max_seq_length=8, tokens=tokens, columns=columns,
                                 overflow=OverflowCounts(Overflow.truncate, over, 0, over))

    sums = ("tokens", "overflow.over", "overflow.dropped", "overflow.truncated", "columns")
    parts = [part(1, 10, ["completion_mask"]), part(2, 5, ["assistant_masks"])]
    out = summed(parts, sums)
    assert type(out) is PretokenizeResult and out.tokens == 15 and out.max_seq_length == 8
    assert out.overflow == OverflowCounts(Overflow.truncate, 3, 0, 3)
    assert out.columns == ["assistant_masks", "completion_mask"] and parts[0].overflow.over == 1
    assert combine([{"o": {"a": 1}}, {"o": {"a": 2}}], ("o.a",)) == {"o": {"a": 3}}
