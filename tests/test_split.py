"""sftdata/curate/split.py: deterministic, content-keyed train/eval split; near duplicates on one side."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
from typer.testing import CliRunner

import sftdata
from sftdata.cli import app
from sftdata.curate.minhash import Sketcher, find_duplicates
from sftdata.curate.split import position, split
from sftdata.schemas import InstructionRecord


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _records(shared_data: Path, tmp_path: Path) -> Path:
    records = tmp_path / "records.jsonl"
    sftdata.convert([shared_data / "alpaca_en_demo.json"], records, preset="alpaca")
    return records


def test_split_is_reproducible_and_content_keyed(shared_data, tmp_path) -> None:
    records = _records(shared_data, tmp_path)
    a = split([records], tmp_path / "a", eval_ratio=0.1, seed=7)
    split([records], tmp_path / "b", eval_ratio=0.1, seed=7)
    assert (tmp_path / "a/train.jsonl").read_bytes() == (tmp_path / "b/train.jsonl").read_bytes()
    assert (tmp_path / "a/eval.jsonl").read_bytes() == (tmp_path / "b/eval.jsonl").read_bytes()
    s = a.summary()
    assert s["train"] + s["eval"] == 999 and 60 <= s["eval"] <= 140 and a.counts.balanced()
    for side in ("train", "eval"):
        meta = json.loads((tmp_path / "a" / f"{side}.meta.json").read_text())
        assert meta["side"] == side and meta["seed"] == 7 and meta["counts"]["written"] == 999
    # a row's side depends only on its content and the seed: shuffled input, same eval set
    rows = records.read_bytes().splitlines()
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_bytes(b"\n".join(rows[::-1]) + b"\n")
    split([shuffled], tmp_path / "c", eval_ratio=0.1, seed=7)
    assert sorted(map(orjson.dumps, _lines(tmp_path / "c/eval.jsonl"))) == sorted(map(orjson.dumps, _lines(tmp_path / "a/eval.jsonl")))
    other = split([records], tmp_path / "d", eval_ratio=0.1, seed=8)
    assert _lines(tmp_path / "d/eval.jsonl") != _lines(tmp_path / "a/eval.jsonl") and other.counts.balanced()


def test_position_is_a_fixed_function_of_content_and_seed() -> None:
    record = InstructionRecord(instruction="Say hi.", output="Hi!")
    assert position(record, 0) == position(InstructionRecord(instruction="Say hi.", output="Hi!"), 0)
    assert position(record, 0) != position(record, 1)
    assert round(position(record, 0), 12) == round(position(record, 0), 12) and 0 <= position(record, 0) < 1


def test_group_near_dups_keeps_clusters_on_one_side(shared_data, tmp_path) -> None:
    demo = orjson.loads((shared_data / "alpaca_en_demo.json").read_bytes())
    bases = list(dict.fromkeys(r["instruction"] for r in demo if len(r["instruction"]) > 60))[:60]
    rows = []
    for i, base in enumerate(bases):
        rows += [{"instruction": base, "output": f"answer {i} a"}, {"instruction": base + " Thanks!", "output": f"answer {i} b"},
                 {"instruction": base.upper(), "output": f"answer {i} c"}]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    result = split([source], tmp_path / "out", eval_ratio=0.3, seed=1, group_near_dups=True)
    texts = [r["instruction"] for r in rows]
    cluster = find_duplicates(Sketcher().sketch(texts), 0.7).cluster
    evals = {r["output"] for r in _lines(tmp_path / "out/eval.jsonl")}
    side = {}
    for row, first in zip(rows, cluster):
        side.setdefault(int(first), set()).add(row["output"] in evals)
    assert all(len(s) == 1 for s in side.values())
    assert len(side) < len(rows) and 0 < result.summary()["eval"] < len(rows)
    # without grouping, some cluster is split across sides
    split([source], tmp_path / "plain", eval_ratio=0.3, seed=1)
    plain = {r["output"] for r in _lines(tmp_path / "plain/eval.jsonl")}
    assert any(len({row["output"] in plain for row, first in zip(rows, cluster) if first == c}) == 2 for c in side)


def test_cli_split(shared_data, tmp_path) -> None:
    records = _records(shared_data, tmp_path)
    result = CliRunner().invoke(app, ["split", str(records), "-o", str(tmp_path / "out"), "--eval-ratio", "0.05",
                                      "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[0])
    assert summary["train"] == len(_lines(tmp_path / "out/train.jsonl"))
    assert summary["eval"] == len(_lines(tmp_path / "out/eval.jsonl"))
    assert CliRunner().invoke(app, ["split", str(records), "-o", str(tmp_path / "x"), "--eval-ratio", "2"]).exit_code == 2
