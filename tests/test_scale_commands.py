"""render, filter, pretokenize and dedup split by split (sftdata.scale) give what a local run gives, byte for
byte and in order: tiny splits of tricky records files, no engine (the Ray and Spark runs are in
test_scale.py). Dedup's kept rows, dupes (with the row each duplicates and the similarity), rejects and
figures must match the local command for any split size and number of shuffle partitions."""
from __future__ import annotations

import json
import random
from pathlib import Path

import orjson
import pytest

import sftdata
from sftdata.scale.dedup import dedup as dist_dedup


def _records(folder: Path) -> list[Path]:
    """Records files as convert writes them, and the ways real ones go wrong: a BOM and CRLF, broken and
    blank lines, a row that is not a record, chats among instructions, and a CP949 file whose deciding
    line is the last one."""
    folder.mkdir()
    rng = random.Random(7)
    lines = []
    for i in range(120):
        if i % 17 == 3:
            lines.append(b'{"instruction": "broken')
        elif i % 19 == 4:
            lines.append(b"")
        elif i % 23 == 5:
            lines.append(orjson.dumps({"instruction": "", "output": "no prompt"}))
        elif i % 5 == 0:
            lines.append(orjson.dumps({"messages": [
                {"role": "user", "content": f"대화 {i}: " + "안녕하세요 " * rng.randint(1, 30)},
                {"role": "assistant", "content": "<think>생각</think>반갑습니다 " * rng.randint(1, 20)}]}))
        else:
            lines.append(orjson.dumps({"instruction": f"질문 {i}: " + "서울의 구 " * rng.randint(1, 40), "input": "",
                                       "output": f"답 {i} " * rng.randint(1, 30)}))
    bom = folder / "bom_crlf.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n")
    late = [json.dumps({"instruction": f"ascii {i}", "output": "ok " * i}).encode() for i in range(40)]
    late.append(json.dumps({"instruction": "마지막 줄", "output": "한국어"}, ensure_ascii=False).encode("cp949"))
    cp949 = folder / "late_cp949.jsonl"
    cp949.write_bytes(b"\n".join(late) + b"\n")
    return [bom, cp949]


def _same_files(a: Path, b: Path, suffixes: tuple[str, ...] = (".jsonl", ".rejects.jsonl")) -> None:
    for suffix in suffixes:
        left, right = a.with_name(a.stem + suffix), b.with_name(b.stem + suffix)
        assert left.read_bytes() == right.read_bytes(), suffix


def _without_places(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in ("output", "rejects", "dupes")}


ENGINE_KEYS = {"engine", "address", "split_mib", "splits", "parts", "shuffle_partitions", "shuffle_bytes",
               "candidate_pairs", "verified_pairs"}


def _same_meta(local: Path, parts: Path) -> None:
    """The run's sidecar says what a local run's says, apart from where, when, how long and the engine."""
    a, b = orjson.loads(local.read_bytes()), orjson.loads(parts.read_bytes())
    differ = {k for k in set(a) | set(b) if a.get(k) != b.get(k)} - ENGINE_KEYS
    assert differ <= {"created", "seconds", "outputs", "dupes"}, differ


COMMANDS = [
    ("render", {"template": "auto", "style": "text", "tokenizer": "SMOL"}),
    ("render", {"template": "alpaca_ko", "eos": "</s>", "split_thinking": True}),
    ("filter", {"min_chars": 40, "max_tokens": 90, "tokenizer": "SMOL", "drop_refusals": True}),
    ("pretokenize", {"tokenizer": "SMOL", "template": "auto", "max_seq_length": 96}),
    ("pretokenize", {"tokenizer": "SMOL", "template": "auto", "max_seq_length": 96, "on_overflow": "truncate"}),
]


@pytest.mark.parametrize("split_bytes", [61, 1 << 20])
@pytest.mark.parametrize(("command", "options"), COMMANDS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(COMMANDS)])
def test_records_commands_on_splits_give_the_local_bytes(tmp_path, smollm2_tokenizer_dir, command, options,
                                                         split_bytes, monkeypatch):
    import sftdata.api.scaled as scaled

    options = {k: str(smollm2_tokenizer_dir) if v == "SMOL" else v for k, v in options.items()}
    inputs = _records(tmp_path / "in")
    local = getattr(sftdata, command)(inputs, tmp_path / "local.jsonl", **options)

    real = scaled.on_engine

    def on_splits(command, inputs, output, engine, address, split_mib, concat, options):  # the split path, no engine
        return real(command, inputs, output, "local", None, split_bytes / (1 << 20), concat, options)

    monkeypatch.setattr(scaled, "on_engine", on_splits)
    result = getattr(sftdata, command)(inputs, tmp_path / "parts", engine="ray", concat=True, **options)
    _same_files(tmp_path / "parts.jsonl", tmp_path / "local.jsonl")
    assert _without_places(result.summary()) == _without_places(local.summary())
    assert type(result) is type(local)  # the command's own result type (PretokenizeResult, ...), its figures summed
    assert result.counts.balanced() and result.counts.total("rejected") > 0
    _same_meta(tmp_path / "local.meta.json", tmp_path / "parts.meta.json")
    meta = orjson.loads((tmp_path / "parts" / "_meta.json").read_bytes())
    assert meta["splits"] == len(list((tmp_path / "parts").glob("part-*[0-9].jsonl")))
    assert [s["path"] for s in meta["sources"]] == [str(p) for p in inputs] and "sha256" in meta["sources"][0]


def _near_duplicates(path: Path, rows: int, seed: int = 3) -> Path:
    """Rows drawn from a small pool of Korean and English sentences, copied exactly, with one word changed,
    spaced differently or left alone; a few empty, broken or not records."""
    rng = random.Random(seed)
    words = ("서울 부산 대구 인천 광주 대전 울산 세종 경기 강원 충북 충남 전북 전남 경북 경남 제주 "
             "river mountain city coast harbour station market bridge tower park").split()
    pool = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 30))) for _ in range(rows // 4)]
    with open(path, "wb") as handle:
        for i in range(rows):
            kind = rng.random()
            text = rng.choice(pool)
            if i % 211 == 7:
                handle.write(b'{"broken\n')
                continue
            if kind < 0.25:
                text = text.replace(" ", "  ", 1)
            elif kind < 0.45:
                text = text + " " + rng.choice(words)
            elif kind < 0.48:
                text = ""
            elif kind < 0.75:
                text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 30)))
            handle.write(orjson.dumps({"instruction": text, "input": "", "output": "답"}) + b"\n")  # dedup compares it too
    return path


@pytest.mark.parametrize(("split_bytes", "partitions"), [(400, 1), (2000, 3), (9000, 7), (1 << 20, 2)])
def test_dedup_on_splits_gives_the_local_rows_and_dupes(tmp_path, split_bytes, partitions):
    data = _near_duplicates(tmp_path / "rows.jsonl", 1500)
    evals = tmp_path / "eval.jsonl"
    evals.write_bytes(b"".join(data.read_bytes().splitlines(keepends=True)[100:140]))  # the eval set leaked in
    local = sftdata.dedup([data], tmp_path / "local.jsonl", against=[evals])
    result = dist_dedup([data], tmp_path / "parts", against=[evals], split_mib=split_bytes / (1 << 20), concat=True,
                        partitions=partitions)
    _same_files(tmp_path / "parts.jsonl", tmp_path / "local.jsonl", (".jsonl", ".rejects.jsonl", ".dupes.jsonl"))
    assert _without_places(result.summary()) == _without_places(local.summary())
    summary = result.summary()
    assert summary["exact"] > 50 and summary["near"] > 50 and result.counts.by_reason["in_against_file"] >= 30
    assert result.counts.balanced() and summary["rejected"] > 0
    _same_meta(tmp_path / "local.meta.json", tmp_path / "parts.meta.json")
    parts = tmp_path / "parts"
    assert not (parts / ".work").exists()  # the sketches are gone once the run is written
    kept = b"".join(p.read_bytes() for p in sorted(parts.glob("part-*[0-9].jsonl")))
    assert kept == (tmp_path / "local.jsonl").read_bytes()


def test_dedup_of_a_parquet_file_split_at_row_groups(tmp_path):
    """Records in Parquet (as datasets and polars write them) are cut at row groups: same kept rows and dupes."""
    import polars as pl

    rows = [orjson.loads(line) for line in _near_duplicates(tmp_path / "rows.jsonl", 800).read_bytes().splitlines()
            if line.startswith(b'{"instruction"')]
    data = tmp_path / "rows.parquet"
    pl.DataFrame(rows).write_parquet(data, row_group_size=50)
    local = sftdata.dedup([data], tmp_path / "local.jsonl")
    result = dist_dedup([data], tmp_path / "parts", split_mib=3000 / (1 << 20), concat=True, partitions=3)
    _same_files(tmp_path / "parts.jsonl", tmp_path / "local.jsonl", (".jsonl", ".rejects.jsonl", ".dupes.jsonl"))
    assert _without_places(result.summary()) == _without_places(local.summary())
    assert result.meta["splits"] > 3 and local.summary()["near"] > 20
    assert b'"index":' in (tmp_path / "parts.dupes.jsonl").read_bytes()


def test_dedup_on_splits_compares_the_chosen_fields_and_keeps_chains(tmp_path):
    """--fields, and a chain A~B~C with C far from A: B goes as a duplicate of A, C is kept, across splits."""
    a = "서울특별시 종로구 세종대로 광화문 광장에서 열린 행사에 시민들이 많이 모였다 오늘"
    b = a.replace("오늘", "어제")
    c = b.replace("서울특별시 종로구", "부산광역시 해운대구")
    rows = [{"instruction": "요약하세요.", "input": t, "output": f"{i}"} for i, t in enumerate([a, "다른 문장", b, c] * 3)]
    data = tmp_path / "chain.jsonl"
    data.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    local = sftdata.dedup([data], tmp_path / "local.jsonl", fields=["input"])
    result = dist_dedup([data], tmp_path / "parts", fields=["input"], split_mib=200 / (1 << 20), concat=True,
                        partitions=2)
    _same_files(tmp_path / "parts.jsonl", tmp_path / "local.jsonl", (".jsonl", ".rejects.jsonl", ".dupes.jsonl"))
    assert _without_places(result.summary()) == _without_places(local.summary())
    assert result.meta["splits"] > 3 and result.summary()["compared"] == ["input"]


def test_dedup_on_an_engine_refuses_a_bad_threshold_before_any_task(tmp_path):
    data = _near_duplicates(tmp_path / "rows.jsonl", 10)
    with pytest.raises(sftdata.SftDataError, match="threshold"):
        dist_dedup([data], tmp_path / "parts", threshold=1.5)
    assert not (tmp_path / "parts").exists()


def test_an_unreadable_input_fails_the_run_as_locally(tmp_path):
    """A named input that is not a regular file (a FIFO) is the user's error on an engine too: the task
    reports it and the driver raises it, never a traceback from inside a worker."""
    import os

    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(sftdata.SftDataError) as local:
        sftdata.dedup([fifo], tmp_path / "local.jsonl")
    with pytest.raises(sftdata.SftDataError) as split:
        dist_dedup([fifo], tmp_path / "parts")
    assert str(split.value) == str(local.value) and "not a regular file" in str(local.value)
