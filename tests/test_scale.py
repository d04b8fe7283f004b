"""sftdata.scale: convert split into byte ranges gives what a local run gives, byte for byte, in order:
the planner on tricky files with tiny splits (no engine), a real Ray local cluster (2 CPUs) running
convert, pretokenize and dedup (with a worker killed mid-task, and through the CLI with --address), and a
real Spark local[2] session running convert and dedup."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sftdata
from sftdata.api.scaled import on_engine
from sftdata.ingest.readers import iter_lines
from sftdata.scale.dedup import dedup as dist_dedup
from sftdata.scale.splits import plan_splits


def dist_convert(inputs, output, *, engine, split_mib=64.0, concat=False, options, address=None):
    """convert's split path through the registry (sftdata.api.scaled), as `sftdata convert --engine` takes it."""
    return on_engine("convert", inputs, output, engine, address, split_mib, concat, options)


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


def _parquet(path: Path, rows: int, group_rows: int) -> Path:
    """A Parquet file of many row groups, with the values JSON cannot hold (bytes, decimals) and rejects."""
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "instruction": [_row(i)["instruction"] for i in range(rows)],
        "input": [None if i % 4 else b"\xed\x95\x9c" + bytes([i % 256]) for i in range(rows)],
        "output": [_row(i)["output"] for i in range(rows)],
        "price": pa.array([decimal.Decimal(i) / 100 for i in range(rows)], pa.decimal128(9, 2))})
    pq.write_table(table, path, row_group_size=group_rows)
    return path


@pytest.mark.parametrize("split_bytes", [1, 2000, 1 << 20])
def test_parquet_splits_at_row_groups_give_the_local_output(tmp_path, split_bytes):
    """A Parquet file is cut at its row groups, from its footer alone: rows keep the index a local run
    gives them (rejects name it), and the parts concatenate to the local output."""
    import pyarrow.parquet as pq

    data = _parquet(tmp_path / "rows.parquet", 300, 16)
    inputs = [data, *_tricky(tmp_path / "in")[:1]]
    local = sftdata.convert(inputs, tmp_path / "local.jsonl", preset="alpaca")
    splits = plan_splits(inputs, split_bytes)
    mine = [s for s in splits if s.path == str(data)]
    groups = pq.read_metadata(data).num_row_groups
    assert len(mine) == (groups if split_bytes == 1 else 1 if split_bytes == 1 << 20 else len(mine))
    assert 1 < len(mine) < groups or split_bytes != 2000
    assert all(s.first_line == s.start for s in mine if s.end is not None) and mine[-1].end in (300, None)
    assert all(a.end == b.start for a, b in zip(mine, mine[1:]))
    result = dist_convert(inputs, tmp_path / "parts", engine="local", split_mib=split_bytes / (1 << 20), concat=True,
                          options=OPTIONS)
    assert _files(tmp_path / "parts.jsonl") == _files(tmp_path / "local.jsonl")
    assert result.counts.summary() == local.counts.summary() and local.counts.total("rejected") > 40
    indexes = [orjson.loads(line)["index"] for line in (tmp_path / "local.rejects.jsonl").read_bytes().splitlines()
               if orjson.loads(line)["file"] == str(data)]
    assert indexes == [i for i in range(300) if i % 7 == 0]


LINES = st.sampled_from([b'{"a": 1}', b"", b"  ", '{"a": "한국어"}'.encode(), '{"a": "한국"}'.encode("cp949"),
                         '{"a": "café"}'.encode("latin-1"), b'{"a": "' + b"x" * 300 + b'"}'])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINES, max_size=30), ends=st.sampled_from([b"\n", b"\r\n"]), bom=st.booleans(),
       last_end=st.booleans(), split_bytes=st.integers(1, 200))
def test_the_surveyed_plan_matches_a_pass_over_the_whole_file(tmp_path, lines, ends, bom, last_end, split_bytes):
    """Each range's survey (its newlines, its own lines' codec) adds up to what one pass over the file finds:
    the codec detect_encoding picks, and first lines that number every line as the reader does."""
    from sftdata.ingest.readers import detect_encoding

    path = tmp_path / "f.jsonl"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + ends.join(lines) + (ends if last_end and lines else b""))
    splits = plan_splits([path], split_bytes)
    assert {s.codec for s in splits} == {detect_encoding(path)}
    owned = [n for s in splits for n, _ in iter_lines(path, s.start, s.end, s.first_line)]
    assert owned == [n for n, _ in iter_lines(path)]
    assert all(a.end == b.start for a, b in zip(splits, splits[1:]))


def _csv_files(folder: Path) -> list[Path]:
    """CSV as spreadsheets and exports write it, and as they break: quoted cells holding line ends (LF,
    CRLF, a lone CR) and commas and doubled quotes, a stray quote in an unquoted cell, blank lines before the
    header and between rows, rows with too many or too few cells, a BOM, a TSV, and a CP949 export whose
    Korean starts on its last line."""
    folder.mkdir()
    rows = ['instruction,input,output']
    for i in range(60):
        if i % 9 == 2:
            rows.append(f'"여러 줄\n질문 {i}\r\n둘째 줄","따옴표 ""인용"" 쉼표, 있음","답 {i}"')
        elif i % 9 == 4:
            rows.append(f'5" screen {i},,"답\r셋째"')
        elif i % 9 == 5:
            rows.append(f'bad row {i},x,y,z')
        elif i % 9 == 6:
            rows.append("")
        elif i % 9 == 7:
            rows.append(f'"질문 {i} ""끝""",,"""열린 따옴표\n"""')
        else:
            rows.append(f"질문 {i},,답 {i}" if i % 7 else f"질문 {i},,")
    sheet = folder / "sheet.csv"
    sheet.write_bytes(b"\xef\xbb\xbf\r\n\r\n" + "\r\n".join(rows).encode() + b"\r\n")
    tsv = folder / "sheet.tsv"
    tsv.write_bytes("\n".join(r.replace(",", "\t") for r in rows).encode())  # no end of line at the end
    late = ["instruction,output", *[f"ascii {i},ok" for i in range(40)], '"마지막\n줄",한국어']
    cp949 = folder / "late_cp949.csv"
    cp949.write_bytes("\n".join(late).encode("cp949") + b"\n")
    return [sheet, tsv, cp949]


@pytest.mark.parametrize("split_bytes", [1, 7, 40, 333, 1 << 20])
@pytest.mark.parametrize("files", [_tricky, _csv_files], ids=["jsonl", "csv"])
def test_splits_give_the_local_output_byte_for_byte(tmp_path, files, split_bytes):
    """A range owns the lines (JSON Lines) or the rows (CSV, also where a quoted cell carries a row across
    ranges) that start in it: the parts, in order, are the local run's output."""
    inputs = files(tmp_path / "in")
    local = sftdata.convert(inputs, tmp_path / "local.jsonl", preset="alpaca")
    result = dist_convert(inputs, tmp_path / "parts", engine="local", split_mib=split_bytes / (1 << 20),
                          concat=True, options=OPTIONS)
    assert _files(tmp_path / "parts.jsonl") == _files(tmp_path / "local.jsonl")
    parts = sorted((tmp_path / "parts").glob("part-*[0-9].jsonl"))
    assert b"".join(p.read_bytes() for p in parts) == (tmp_path / "local.jsonl").read_bytes()
    assert result.counts.summary() == local.counts.summary() and result.counts.balanced()
    assert local.counts.total("rejected") > 5
    meta = orjson.loads((tmp_path / "parts" / "_meta.json").read_bytes())
    assert meta["counts"]["by_reason"] == local.meta["counts"]["by_reason"]
    assert meta["encodings"][str(inputs[2])] == "cp949" and meta["splits"] == len(parts) > 3 * (split_bytes < 1000)
    # the folder is an input like any other: records commands read the parts (not the rejects or sidecar)
    again = sftdata.split([tmp_path / "parts"], tmp_path / "split", eval_ratio=0.5)
    assert again.counts.total("read") == local.counts.total("written")


def test_a_csv_whose_header_is_bad_is_one_reject_as_locally(tmp_path):
    folder = tmp_path / "in"
    _csv_files(folder)
    (folder / "twice.csv").write_text("instruction,instruction\n" + "a,b\n" * 50, encoding="utf-8")
    local = sftdata.convert([folder], tmp_path / "local.jsonl", preset="alpaca")
    dist_convert([folder], tmp_path / "parts", engine="local", split_mib=30 / (1 << 20), concat=True, options=OPTIONS)
    assert _files(tmp_path / "parts.jsonl") == _files(tmp_path / "local.jsonl")
    assert local.counts.by_reason["bad_csv_header"] == 1


CELLS = st.sampled_from(["a", "한국어", "", " ", '"q"', '"a,b"', '"x\ny"', '"x\r\ny"', '"x\ry"', '"say ""hi"""',
                         '5" tall', '""', '"', "a\tb", '"\n\n"', '"x\n""y"', '"\n"', '"a\n",b', 'x"\n"y'])


def _csv_text(rows: list[list[str]], ends: str, bom: bool, delimiter: str) -> bytes:
    text = ends.join(delimiter.join(row) for row in [["h1", "h2", "h3", "h4"], *rows])
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


CSV_ROWS = st.lists(st.lists(CELLS, min_size=1, max_size=4), max_size=25)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=CSV_ROWS, ends=st.sampled_from(["\n", "\r\n", "\r"]), bom=st.booleans(),
       split_bytes=st.integers(1, 120), delimiter=st.sampled_from([",", "\t"]), long_lines=st.booleans())
def test_csv_ranges_read_what_one_pass_reads(tmp_path, monkeypatch, rows, ends, bom, split_bytes, delimiter,
                                             long_lines):
    """Any CSV, malformed ones too (stray and unclosed quotes, lone CRs, lines over the length limit): the
    splits' rows and rejects, in order, are the ones one pass over the file gives, with the same lines."""
    from sftdata.ingest import sources
    from sftdata.ingest.readers import expand_sources, read_source

    monkeypatch.setattr(sources, "MAX_LINE_BYTES", 24 if long_lines else 256 << 20)

    path = tmp_path / ("f.csv" if delimiter == "," else "f.tsv")
    path.write_bytes(_csv_text(rows, ends, bom, delimiter))

    def seen(items):  # what a reader gives, up to the problem with the whole file it raises, if any
        out = []
        try:
            out += [(type(i).__name__, i.locator.line, getattr(i, "data", None), getattr(i, "reason", None))
                    for i in items]
        except sources.FileProblem as problem:
            out.append(("FileProblem", problem.line, problem.message, problem.reason))
        return out

    [source] = expand_sources([path])
    whole = seen(read_source(source))
    parts = [x for s in plan_splits([path], split_bytes) for x in seen(read_source(s.source()))]
    assert parts == whole


@settings(max_examples=150, deadline=None)
@given(rows=CSV_ROWS, ends=st.sampled_from(["\n", "\r\n", "\r\n\r"]), bom=st.booleans(),
       cuts=st.lists(st.integers(0, 400), max_size=4), block=st.integers(1, 64))
def test_the_csv_survey_in_blocks_agrees_with_reading_line_by_line(rows, ends, bom, cuts, block):
    """csv_structure's way (blocks of lines; from inside a cell, the cell's row line by line and then the rest
    from a row's start) gives what reading the range line by line as read_csv does gives, from both states,
    for any range and block size."""
    import io

    from sftdata.ingest.csvsurvey import _by_lines, csv_structure

    data = _csv_text(rows, ends, bom, ",")
    starts = sorted({0, len(data), *(data.find(b"\n", c) + 1 or len(data) for c in cuts if c < len(data))})
    for start, stop in zip(starts, starts[1:]):
        for quoted in (False, True):
            fast = csv_structure(io.BytesIO(data), start, stop, ",", quoted, block)
            slow = _by_lines(io.BytesIO(data), start, stop, ",", quoted)
            if quoted:
                slow.pop("lines")
            assert orjson.dumps(fast) == orjson.dumps(slow), (start, stop, quoted)


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


class Killer:
    """Kills (SIGKILL) the first Ray worker seen running a task whose process title names `task`."""

    def __init__(self, task: str) -> None:
        self.task, self.killed, self.done = f"ray::{task}", [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self.done.is_set() and not self.killed:
            for proc in psutil.process_iter(["pid", "cmdline"]):
                if any(self.task in part for part in proc.info["cmdline"] or []):
                    os.kill(proc.info["pid"], signal.SIGKILL)
                    self.killed.append(proc.info["pid"])
                    break
            time.sleep(0.01)

    def __enter__(self) -> Killer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(5)


def test_a_worker_killed_mid_task_changes_nothing(tmp_path, ray_cluster):
    data = _big(tmp_path / "big.jsonl", 60_000)
    local = sftdata.convert([data], tmp_path / "local.jsonl", preset="alpaca", template="alpaca", eos="</s>")
    with Killer("command_split") as killer:  # every command's task on a split (sftdata.scale.commands)
        result = sftdata.convert([data], tmp_path / "out", preset="alpaca", template="alpaca", eos="</s>",
                                 engine="ray", split_mib=0.5, concat=True)
    assert killer.killed, "no worker was caught running a split"
    assert _files(tmp_path / "out.jsonl") == _files(tmp_path / "local.jsonl")
    assert result.counts.summary() == local.counts.summary()


def _records(path: Path, rows: int) -> Path:
    """Records with exact and near duplicates (Korean and English), chats among them, and broken lines."""
    from test_scale_commands import _near_duplicates

    _near_duplicates(path, rows)
    with open(path, "ab") as handle:
        for i in range(0, rows // 20):
            handle.write(orjson.dumps({"messages": [{"role": "user", "content": f"질문 {i % 300}"},
                                                    {"role": "assistant", "content": f"답변 {i}"}]}) + b"\n")
    return path


def _dedup_files(base: Path) -> tuple[bytes, ...]:
    return (*_files(base), base.with_name(base.stem + ".dupes.jsonl").read_bytes())


def test_ray_cluster_pretokenizes_and_deduplicates_as_a_local_run(tmp_path, ray_cluster, smollm2_tokenizer_dir):
    data = _records(tmp_path / "records.jsonl", 20_000)
    tok = str(smollm2_tokenizer_dir)
    local = sftdata.pretokenize([data], tmp_path / "local.jsonl", tokenizer=tok, template="auto", max_seq_length=40)
    result = sftdata.pretokenize([data], tmp_path / "tok", tokenizer=tok, template="auto", max_seq_length=40,
                                 engine="ray", split_mib=0.5, concat=True)
    assert _files(tmp_path / "tok.jsonl") == _files(tmp_path / "local.jsonl")
    assert result.summary()["tokens"] == local.summary()["tokens"] and result.counts.balanced()
    assert result.counts.summary() == local.counts.summary() and result.meta["splits"] >= 3
    local = sftdata.dedup([data], tmp_path / "dedup.jsonl")
    with Killer("split_outputs") as killer:  # a sketch task's worker dies: Ray runs it again
        result = sftdata.dedup([data], tmp_path / "parts", engine="ray", split_mib=0.25, concat=True)
    assert killer.killed, "no worker was caught sketching a split"
    assert _dedup_files(tmp_path / "parts.jsonl") == _dedup_files(tmp_path / "dedup.jsonl")
    assert result.counts.summary() == local.counts.summary() and result.counts.balanced()
    assert (result.summary()["exact"], result.summary()["near"]) == (local.summary()["exact"], local.summary()["near"])
    assert local.summary()["near"] > 1000


def test_ray_workers_read_and_write_a_bucket(tmp_path, ray_cluster, bucket):
    """Ray workers read their byte ranges from S3 (tests/support/s3_server.py), upload their parts, and fetch dedup's
    sketches from the bucket into their own cache: the same kept rows and dupes as a local run."""
    import fsspec

    data = _records(tmp_path / "records.jsonl", 6_000)
    fs = fsspec.filesystem("s3")
    fs.put_file(str(data), f"{bucket}/records.jsonl")
    local = sftdata.dedup([data], tmp_path / "local.jsonl")
    result = sftdata.dedup([f"{bucket}/records.jsonl"], f"{bucket}/parts", engine="ray", split_mib=0.1, concat=True)
    for suffix in ("jsonl", "dupes.jsonl", "rejects.jsonl"):
        assert fs.cat(f"{bucket}/parts.{suffix}").replace(bucket.encode(), str(tmp_path).encode()) == \
            (tmp_path / f"local.{suffix}").read_bytes(), suffix
    assert result.meta["splits"] >= 4 and local.summary()["near"] > 100
    assert result.summary()["deduplicated"] == local.summary()["deduplicated"]
    assert not fs.exists(f"{bucket}/parts/.work")


def test_the_cli_runs_dedup_on_a_running_cluster(tmp_path, ray_cluster):
    """`sftdata dedup --engine ray --address ...` joins the cluster, writes the parts and prints one JSON line."""
    data = _records(tmp_path / "records.jsonl", 3_000)
    local = sftdata.dedup([data], tmp_path / "local.jsonl")
    address = ray_cluster.get_runtime_context().gcs_address
    done = subprocess.run([sys.executable, "-m", "sftdata.cli", "dedup", str(data), "-o", str(tmp_path / "parts"),
                           "--engine", "ray", "--address", address, "--split-mib", "0.1", "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    summary = orjson.loads(line)
    assert summary["deduplicated"] == local.summary()["deduplicated"] and summary["output"] == str(tmp_path / "parts")
    kept = b"".join(p.read_bytes() for p in sorted((tmp_path / "parts").glob("part-*[0-9].jsonl")))
    assert kept == (tmp_path / "local.jsonl").read_bytes()
    assert not list((tmp_path / "parts").glob("part-*.meta.json"))


@pytest.mark.spark  # starts Spark in its own body: no fixture shows it
def test_spark_local_session_gives_the_local_output(tmp_path):
    """A real Spark local[2] session (Java from the OS packages): the same splits, the same bytes; dedup's keys
    through Spark's shuffle into 3 partitions."""
    data = _big(tmp_path / "big.jsonl", 20_000)
    inputs = [data, *_tricky(tmp_path / "in"), *_csv_files(tmp_path / "csv")]
    local = sftdata.convert(inputs, tmp_path / "local.jsonl", preset="alpaca")
    try:
        result = sftdata.convert(inputs, tmp_path / "out", preset="alpaca", engine="spark", address="local[2]",
                                 split_mib=0.25, concat=True)
        records = _records(tmp_path / "records.jsonl", 20_000)
        local_dedup = sftdata.dedup([records], tmp_path / "dedup.jsonl")
        deduplicated = dist_dedup([records], tmp_path / "dedup-parts", engine="spark", address="local[2]",
                                  split_mib=0.5, concat=True, partitions=3)
    finally:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
    assert _files(tmp_path / "out.jsonl") == _files(tmp_path / "local.jsonl")
    assert result.counts.summary() == local.counts.summary()
    assert orjson.loads((tmp_path / "out" / "_meta.json").read_bytes())["engine"] == "spark"
    assert _dedup_files(tmp_path / "dedup-parts.jsonl") == _dedup_files(tmp_path / "dedup.jsonl")
    assert deduplicated.counts.summary() == local_dedup.counts.summary()
    assert deduplicated.meta["shuffle_partitions"] == 3
