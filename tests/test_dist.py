"""sftdata.dist: convert split into byte ranges gives what a local run gives, byte for byte, in order:
the planner on tricky files with tiny splits (no engine), and a real Ray local cluster (2 CPUs), with a
worker killed mid-task."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import orjson
import pytest

import sftdata
from sftdata.dist.run import convert as dist_convert
from sftdata.dist.splits import plan_splits
from sftdata.ingest.readers import iter_lines

OPTIONS = {"preset": "alpaca", "mapping": None, "to": None, "encoding": "auto", "records_path": None,
           "template": None, "tokenizer": None, "eos": None, "style": None, "template_args": None,
           "train_on": "all", "split_thinking": False, "split_turns": False}


def _row(i: int) -> dict:
    return {"instruction": f"질문 {i}: 서울의 구는 몇 개인가요?" if i % 3 else f"Question {i}", "input": "",
            "output": f"답 {i}" if i % 7 else ""}  # every 7th row has an empty output: a reject


def _tricky(folder: Path) -> list[Path]:
    folder.mkdir()
    lines = [orjson.dumps(_row(i)) for i in range(40)]
    lines[5] = b'{"instruction": "broken'  # invalid JSON
    lines[11] = b""  # blank line
    lines[12] = b"   "
    bom = folder / "bom_crlf.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n")
    plain = folder / "plain.jsonl"
    plain.write_bytes(b"\n".join(lines[:20]) + b"\n" + b'{"instruction": "no end of line", "output": "x"}')
    late = [json.dumps({"instruction": f"ascii {i}", "output": "ok"}).encode() for i in range(30)]
    late.append(json.dumps({"instruction": "마지막 줄", "output": "한국어"}, ensure_ascii=False).encode("cp949"))
    cp949 = folder / "late_cp949.jsonl"  # the line that makes it CP949 is the last one
    cp949.write_bytes(b"\n".join(late) + b"\n")
    whole = folder / "items.json"
    whole.write_text(json.dumps([_row(i) for i in range(5)], ensure_ascii=False), encoding="utf-8")
    return [bom, plain, cp949, whole]


def _files(base: Path) -> tuple[bytes, bytes]:
    return base.read_bytes(), base.with_name(base.name[: -len(".jsonl")] + ".rejects.jsonl").read_bytes()


@pytest.mark.parametrize("split_bytes", [1, 7, 64, 333, 1 << 20])
def test_splits_give_the_local_output_byte_for_byte(tmp_path, split_bytes):
    inputs = _tricky(tmp_path / "in")
    local = sftdata.convert(inputs, tmp_path / "local.jsonl", preset="alpaca")
    result = dist_convert(inputs, tmp_path / "parts", engine="local", split_mib=split_bytes / (1 << 20),
                          concat=True, options=OPTIONS)
    assert _files(tmp_path / "parts.jsonl") == _files(tmp_path / "local.jsonl")
    parts = sorted((tmp_path / "parts").glob("part-*[0-9].jsonl"))
    assert b"".join(p.read_bytes() for p in parts) == (tmp_path / "local.jsonl").read_bytes()
    assert result.counts.summary() == local.counts.summary() and result.counts.balanced()
    meta = orjson.loads((tmp_path / "parts" / "_meta.json").read_bytes())
    assert meta["counts"]["by_reason"] == local.meta["counts"]["by_reason"]
    assert meta["encodings"][str(inputs[2])] == "cp949" and meta["splits"] == len(parts)
    # the folder is an input like any other: records commands read the parts (not the rejects or sidecar)
    again = sftdata.split([tmp_path / "parts"], tmp_path / "split", eval_ratio=0.5)
    assert again.counts.total("read") == local.counts.total("written")


def test_the_sidecar_and_a_folder_read_from_above(tmp_path):
    from sftdata.ingest.readers import expand_sources

    inputs = _tricky(tmp_path / "in")
    local = sftdata.convert(inputs, tmp_path / "out" / "local.jsonl", preset="alpaca")
    dist_convert(inputs, tmp_path / "out" / "records", engine="local", split_mib=1e-4, concat=True, options=OPTIONS)
    meta = orjson.loads((tmp_path / "out" / "records" / "_meta.json").read_bytes())
    for key in ("preset", "mapping", "mapping_spec", "to", "split_thinking", "split_turns", "encoding"):
        assert meta[key] == local.meta[key], key
    # from above, the parts folder is skipped where --concat wrote its rows beside it: no row read twice
    assert [s.path.name for s in expand_sources([tmp_path / "out"])] == ["local.jsonl", "records.jsonl"]
    assert len(expand_sources([tmp_path / "out" / "records"])) == meta["splits"]


def test_planner_numbers_lines_as_the_reader_does(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"a":1}\n\n{"a":2}\r\n{"a":3}\n')
    splits = plan_splits([path], 4)
    # bytes 0-7 line 1, 8 line 2 (blank), 9-17 line 3 (CRLF), 18-25 line 4: a range owns the lines starting in it
    assert [(s.start, s.end, s.first_line) for s in splits] == [(0, 4, 1), (4, 8, 2), (8, 12, 2), (12, 16, 4),
                                                                 (16, 20, 4), (20, 24, 5), (24, 26, 5)]
    assert {s.codec for s in splits} == {"utf-8"}
    owned = [[n for n, _ in iter_lines(path, s.start, s.end, s.first_line)] for s in splits]
    assert owned == [[1], [], [3], [], [4], [], []]
    assert [n for part in owned for n in part] == [n for n, _ in iter_lines(path)]


def test_a_rendered_run_on_splits(tmp_path):
    inputs = _tricky(tmp_path / "in")[:2]
    local = sftdata.convert(inputs, tmp_path / "local.jsonl", preset="alpaca", template="alpaca_ko", eos="</s>")
    dist_convert(inputs, tmp_path / "parts", engine="local", split_mib=50 / (1 << 20), concat=True,
                 options={**OPTIONS, "template": "alpaca_ko", "eos": "</s>"})
    assert _files(tmp_path / "parts.jsonl") == _files(tmp_path / "local.jsonl")
    assert local.meta["template"] == orjson.loads((tmp_path / "parts" / "_meta.json").read_bytes())["template"]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _big(path: Path, rows: int) -> Path:
    with open(path, "wb") as handle:
        for i in range(rows):
            handle.write(b'{"broken\n' if i % 997 == 5 else orjson.dumps(_row(i)) + b"\n")
    return path


def test_ray_cluster_gives_the_local_output(tmp_path, ray_cluster):
    data = _big(tmp_path / "big.jsonl", 20_000)
    local = sftdata.convert([data], tmp_path / "local.jsonl", preset="alpaca")
    result = sftdata.convert([data], tmp_path / "out", preset="alpaca", engine="ray", split_mib=0.25, concat=True)
    assert _files(tmp_path / "out.jsonl") == _files(tmp_path / "local.jsonl")
    assert result.counts.summary() == local.counts.summary() and result.counts.balanced()
    assert orjson.loads((tmp_path / "out" / "_meta.json").read_bytes())["splits"] >= 4


def test_a_worker_killed_mid_task_changes_nothing(tmp_path, ray_cluster):
    import psutil

    data = _big(tmp_path / "big.jsonl", 60_000)
    local = sftdata.convert([data], tmp_path / "local.jsonl", preset="alpaca", template="alpaca", eos="</s>")
    killed: list[int] = []
    done = threading.Event()

    def kill_one() -> None:
        while not done.is_set() and not killed:
            for proc in psutil.process_iter(["pid", "cmdline"]):
                if any("ray::convert_split" in part for part in proc.info["cmdline"] or []):
                    os.kill(proc.info["pid"], signal.SIGKILL)
                    killed.append(proc.info["pid"])
                    break
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    try:
        result = sftdata.convert([data], tmp_path / "out", preset="alpaca", template="alpaca", eos="</s>",
                                 engine="ray", split_mib=0.5, concat=True)
    finally:
        done.set()
        killer.join(5)
    assert killed, "no worker was caught running a split"
    assert _files(tmp_path / "out.jsonl") == _files(tmp_path / "local.jsonl")
    assert result.counts.summary() == local.counts.summary()


def test_spark_local_session_gives_the_local_output(tmp_path):
    """A real Spark local[2] session (Java from the OS packages): the same splits, the same bytes."""
    data = _big(tmp_path / "big.jsonl", 20_000)
    inputs = [data, *_tricky(tmp_path / "in")]
    local = sftdata.convert(inputs, tmp_path / "local.jsonl", preset="alpaca")
    try:
        result = sftdata.convert(inputs, tmp_path / "out", preset="alpaca", engine="spark", address="local[2]",
                                 split_mib=0.25, concat=True)
    finally:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
    assert _files(tmp_path / "out.jsonl") == _files(tmp_path / "local.jsonl")
    assert result.counts.summary() == local.counts.summary()
    assert orjson.loads((tmp_path / "out" / "_meta.json").read_bytes())["engine"] == "spark"
