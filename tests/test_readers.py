"""sftdata.ingest.readers, sftdata.ingest.tabular and sftdata.ingest.encodings, unit by unit: sources, encodings, lines,
the per-line parser, CSV and Parquet specifics, and bounded memory. End-to-end hostile inputs
(through convert, with the counts invariant) are in test_hostile.py."""
from __future__ import annotations

import datetime
import decimal
import os
import tracemalloc
from pathlib import Path

import orjson
import pytest

from sftdata.errors import InputError
from sftdata.ingest import readers, sources
from sftdata.ingest.encodings import classify, detect_bytes, escape_around, escape_bytes, normalize
from sftdata.ingest.readers import (
    detect_encoding,
    expand_sources,
    iter_lines,
    parse_json_line,
    read_items,
    read_source,
)
from sftdata.ingest.sources import Format, LongLine, Source
from sftdata.items import RawItem, Reject

KO = '{"instruction": "안녕하세요", "output": "반갑습니다"}\n'
GOOD = b'{"instruction": "hi", "output": "there"}\n'


def items(path: Path, **kw) -> list[RawItem | Reject]:
    return list(read_items(expand_sources([path]), **kw))


# --- sources ------------------------------------------------------------------------------------

def test_expand_walks_directories_recursively_and_skips_other_files(tmp_path):
    (tmp_path / "d" / "sub" / "deeper").mkdir(parents=True)
    for name in ("d/a.json", "d/sub/b.jsonl", "d/sub/deeper/c.csv", "d/sub/d.TSV", "d/e.ndjson", "d/f.parquet"):
        (tmp_path / name).write_bytes(b"")
    for name in ("d/README.txt", "d/.hidden.json", "d/notes.md", "d/sub/data.json.bak"):
        (tmp_path / name).write_bytes(b"junk")
    (tmp_path / "d" / ".git").mkdir()
    (tmp_path / "d" / ".git" / "x.json").write_bytes(b"{}")
    sources = expand_sources([tmp_path / "d"])
    assert [s.path.relative_to(tmp_path).as_posix() for s in sources] == [
        "d/a.json", "d/e.ndjson", "d/f.parquet", "d/sub/b.jsonl", "d/sub/d.TSV", "d/sub/deeper/c.csv"]
    assert all(s.in_directory for s in sources)
    assert [s.format for s in sources] == [Format.json, Format.jsonl, Format.parquet, Format.jsonl, Format.tsv,
                                           Format.csv]


def test_expand_globs_named_files_once_and_in_order(tmp_path):
    for name in ("b.json", "a.json", "c.jsonl", "sub/d.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"{}")
    sources = expand_sources([tmp_path / "c.jsonl", str(tmp_path / "**" / "*.json"), tmp_path / "c.jsonl"])
    assert [s.path.name for s in sources] == ["c.jsonl", "a.json", "b.json", "d.json"]
    assert [s.in_directory for s in sources] == [False, True, True, True]


def test_expand_errors_are_clear(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    cases = {str(tmp_path / "missing.jsonl"): "no such file", str(tmp_path / "empty"): "holds no",
             str(tmp_path / "notes.txt"): "unknown file type", str(tmp_path / "*.parquet"): "matches no"}
    for entry, words in cases.items():
        with pytest.raises(InputError, match=words) as caught:
            expand_sources([entry])
        assert entry in str(caught.value)


def test_symlink_loops_do_not_hang_the_walk(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.json").write_bytes(GOOD)
    os.symlink(tmp_path / "d", tmp_path / "d" / "loop")
    assert [s.path.name for s in expand_sources([tmp_path / "d"])] == ["a.json"]


# --- encodings ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "expected"), [
    (b"plain ascii\n" * 10, "utf-8"),
    (b"", "utf-8"),
    (KO.encode("utf-8"), "utf-8"),
    (b"\xef\xbb\xbf" + KO.encode("utf-8"), "utf-8-sig"),
    (KO.encode("cp949"), "cp949"),
    (KO.encode("euc-kr"), "cp949"),
    ("instruction,output\r\n똠방각하,뷁\r\n".encode("cp949"), "cp949"),  # CP949-only syllables
    ('[{"a": "x"}]'.encode("utf-16"), "utf-16"),
    (b'\xff\xfe{"a": 1}\n', "utf-8"),  # looks like a UTF-16 BOM, but no NULs follow: corrupt UTF-8
])
def test_detect(tmp_path, data, expected):
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    assert detect_encoding(path) == expected
    assert detect_bytes(data) == expected


def test_cp949_after_megabytes_of_ascii_is_still_detected(tmp_path):
    path = tmp_path / "late.csv"
    path.write_bytes(b"instruction,output\r\n" + b"hello,world\r\n" * 300_000 + "안녕,반가워\r\n".encode("cp949"))
    assert path.stat().st_size > 3 << 20
    assert detect_encoding(path) == "cp949"


def test_a_corrupt_line_does_not_decide_the_encoding(tmp_path):
    # A truncated UTF-8 syllable first, then real UTF-8 Korean: the file is UTF-8 and the bad line a reject.
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"instruction": "\xec\x95", "output": "x"}\n' + KO.encode() * 2)
    assert detect_encoding(path) == "utf-8"
    got = items(path)
    assert isinstance(got[0], Reject) and got[0].reason == "undecodable"
    assert [g.data["instruction"] for g in got[1:]] == ["안녕하세요", "안녕하세요"]


def test_classify_needs_hangul_to_settle_cp949():
    assert classify("안녕".encode("cp949")) == ("cp949", True)
    assert classify("안녕".encode()) == ("utf-8", False)
    assert classify(b"\xff\xff") == (None, False)
    assert classify("漢字".encode("cp949")) == (None, True)  # valid CP949 but not Korean: undecided


def test_encoding_names():
    assert normalize("EUC-KR") == normalize("euc_kr") == normalize("ks_c_5601-1987") == "cp949"
    assert normalize("UTF8") == "utf-8"
    assert detect_encoding(Path("unused"), "euc-kr") == "cp949"
    with pytest.raises(InputError, match="unknown encoding 'klingon'"):
        detect_encoding(Path("unused"), "klingon")


def test_escape_bytes_and_the_window_around_an_offset():
    assert escape_bytes(b"ab\xff\x00") == "ab\\xff\\x00"
    assert escape_bytes(b"x" * 10, limit=4) == "xxxx...(+6 bytes)"
    long = b"a" * 100_000 + b"\xff" + b"b" * 100_000
    shown = escape_around(long, 100_000)
    assert "\\xff" in shown and len(shown) < 10_000


# --- lines --------------------------------------------------------------------------------------

def test_iter_lines_numbers_skip_blank_lines_and_drop_line_ends(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"\xef\xbb\xbfone\r\n\n  \t\ntwo\nthree\r\n\r\nfour")
    assert list(iter_lines(path)) == [(1, b"one"), (4, b"two"), (5, b"three"), (7, b"four")]


def test_a_line_over_the_limit_is_skipped_unread_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_LINE_BYTES", 1000)
    path = tmp_path / "f.jsonl"
    long = b'{"instruction": "' + b"x" * 5000 + b'", "output": "y"}\n'
    path.write_bytes(GOOD + long + GOOD)
    lines = list(iter_lines(path))
    assert [n for n, _ in lines] == [1, 2, 3]
    assert isinstance(lines[1][1], LongLine) and lines[1][1].length == len(long)
    got = [parse_json_line("f", n, line, "utf-8") for n, line in lines]
    assert got[1].reason == "line_too_long" and got[1].locator.line == 2 and got[1].raw_bytes.startswith('{"instr')
    assert isinstance(got[0], RawItem) and isinstance(got[2], RawItem)


@pytest.mark.parametrize(("line", "encoding", "reason"), [
    (b'{"a": 1', "utf-8", "invalid_json"),
    (b'{"a": "\xff"}', "utf-8", "undecodable"),
    (b'{"a": "\xff"}', "cp949", "undecodable"),
    (b'{"a": "x\x00"}', "utf-8", "invalid_json"),
    (b"[" * (readers.MAX_DEPTH + 1) + b"]" * (readers.MAX_DEPTH + 1), "utf-8", "too_deep"),  # the shortest
    (b"[" * 300 + b"]" * 300, "utf-8", "too_deep"),
    (b"[" * 5000 + b"]" * 5000, "utf-8", "too_deep"),
])
def test_parse_json_line_rejects(line, encoding, reason):
    got = parse_json_line("f.jsonl", 7, line, encoding)
    assert isinstance(got, Reject) and got.reason == reason and got.locator.line == 7
    orjson.dumps(got.as_dict())  # every reject can be written


@pytest.mark.parametrize("encoding", ["utf-8", "cp949", "auto"])
def test_parse_json_line_decodes(encoding):
    text = '{"a": "안녕"}'
    line = text.encode("utf-8" if encoding == "utf-8" else "cp949")
    assert parse_json_line("f", 1, line, encoding).data == {"a": "안녕"}
    if encoding == "auto":
        assert parse_json_line("f", 1, text.encode(), encoding).data == {"a": "안녕"}


def test_nesting_up_to_the_limit_is_kept():
    line = b'{"a": ' + b"[" * (readers.MAX_DEPTH - 1) + b"]" * (readers.MAX_DEPTH - 1) + b"}"
    assert isinstance(parse_json_line("f", 1, line, "utf-8"), RawItem)
    assert isinstance(parse_json_line("f", 1, b"[" * readers.MAX_DEPTH + b"]" * readers.MAX_DEPTH, "utf-8"), RawItem)


# --- JSON ---------------------------------------------------------------------------------------

def test_json_list_object_and_records_path(tmp_path):
    (tmp_path / "list.json").write_bytes(b"[" + GOOD + b"," + GOOD + b"]")
    (tmp_path / "one.json").write_bytes(GOOD)
    (tmp_path / "under.json").write_bytes(b'{"meta": 1, "data": {"rows": [' + GOOD + b"]}}")
    assert [i.locator.index for i in items(tmp_path / "list.json")] == [0, 1]
    one = items(tmp_path / "one.json")
    assert len(one) == 1 and one[0].locator.index is None and one[0].data["output"] == "there"
    assert [i.data["instruction"] for i in items(tmp_path / "under.json", records_path="data.rows")] == ["hi"]
    with pytest.raises(InputError, match="--records-path 'data.nope'"):
        items(tmp_path / "under.json", records_path="data.nope")
    with pytest.raises(InputError, match="is a int, not a list"):
        items(tmp_path / "under.json", records_path="meta")


def test_json_file_errors_name_file_line_and_offset(tmp_path):
    path = tmp_path / "f.json"
    path.write_bytes(b'[\n{"instruction": "a", "output": "b"},\n{"instruction": "\xff"}]')
    with pytest.raises(InputError) as caught:
        items(path)
    assert str(caught.value).startswith(f"{path}:3: cannot decode byte 0xff at byte offset 56 (line 3)")
    path.write_bytes(b'[\n{"a": 1},\n{"a": }]')
    with pytest.raises(InputError, match=r"f.json:3: invalid JSON"):
        items(path)


def test_utf16_json_reads_but_utf16_lines_are_a_clear_error(tmp_path):
    (tmp_path / "f.json").write_bytes('[{"instruction": "안녕", "output": "x"}]'.encode("utf-16"))
    assert items(tmp_path / "f.json")[0].data["instruction"] == "안녕"
    (tmp_path / "f.jsonl").write_bytes('{"instruction": "x", "output": "y"}\n'.encode("utf-16"))
    with pytest.raises(InputError, match="utf-16 cannot be read line by line"):
        items(tmp_path / "f.jsonl")


# --- CSV ----------------------------------------------------------------------------------------

def test_csv_header_rules(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"\n\ninstruction, output ,\r\nhi,there,\r\nq,a,note\r\n")
    got = items(path)
    assert [g.data for g in got] == [{"instruction": "hi", "output": "there"},
                                     {"instruction": "q", "output": "a", "column_3": "note"}]
    assert [g.locator.line for g in got] == [4, 5]
    path.write_bytes(b"a,b,a\n1,2,3\n")
    with pytest.raises(InputError, match="column 'a' appears twice"):
        items(path)
    path.write_bytes("이름,값\n".encode("cp949") + b"x,y\n")
    with pytest.raises(InputError, match="header: byte 0xc0 at byte 0 of line 1 is not valid utf-8"):
        items(path, encoding="utf-8")


def test_csv_lone_cr_line_ends_count_as_lines(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b'instruction,output\rhi,there\r"two\rlines",x\rbad\rlast,row')
    got = items(path)
    assert [(g.locator.line, type(g).__name__) for g in got] == [(2, "RawItem"), (3, "RawItem"), (5, "Reject"),
                                                                  (6, "RawItem")]
    assert got[1].data["instruction"] == "two\rlines"


def test_tsv_uses_tabs(tmp_path):
    path = tmp_path / "f.tsv"
    path.write_bytes(b"instruction\toutput\nsay, hi\tok\n")
    assert items(path)[0].data == {"instruction": "say, hi", "output": "ok"}


def test_csv_cell_bigger_than_the_csv_module_default(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"instruction,output\n" + b"x" * 1_000_000 + b",y\nq,a\n")
    got = items(path)
    assert len(got[0].data["instruction"]) == 1_000_000 and got[1].data == {"instruction": "q", "output": "a"}


# --- Parquet ------------------------------------------------------------------------------------

def test_parquet_rows_are_json_values_with_0_based_index(tmp_path):
    pl = pytest.importorskip("polars")
    path = tmp_path / "f.parquet"
    pl.DataFrame({"instruction": ["a", "b"], "blob": [b"ok", b"\xff\x00"], "dec": [decimal.Decimal("1.50")] * 2,
                  "dur": [datetime.timedelta(seconds=90)] * 2, "when": [datetime.date(2024, 1, 2)] * 2,
                  "tags": [["x"], []]}).write_parquet(path)
    got = items(path)
    assert [g.locator.index for g in got] == [0, 1]
    assert got[0].data == {"instruction": "a", "blob": "ok", "dec": "1.50", "dur": 90.0,
                           "when": datetime.date(2024, 1, 2), "tags": ["x"]}
    assert got[1].data["blob"] == "\\xff\\x00"
    orjson.dumps([g.data for g in got])


def test_not_parquet_is_one_clear_error(tmp_path):
    path = tmp_path / "f.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="cannot read Parquet: ") as caught:
        items(path)
    assert "\n" not in str(caught.value)


# --- whole files in a directory -----------------------------------------------------------------

def test_file_problems_are_errors_when_named_and_rejects_when_found(tmp_path):
    path = tmp_path / "d" / "broken.json"
    path.parent.mkdir()
    path.write_bytes(b'{"a": ')
    with pytest.raises(InputError, match="broken.json:1: invalid JSON"):
        list(read_source(Source(path, Format.json, False)))
    [reject] = read_source(Source(path, Format.json, True))
    assert (reject.reason, reject.locator.file, reject.raw_bytes) == ("invalid_json", str(path), '{"a": ')


# --- bounded memory -----------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_line_formats_stream_in_bounded_memory(tmp_path, suffix):
    path = tmp_path / f"big{suffix}"
    row = "설명해 주세요 " * 100
    with open(path, "w", encoding="utf-8") as handle:
        if suffix == ".csv":
            handle.write("instruction,output\n" + f"{row},{row}\n" * 8_000)
        else:
            handle.write((orjson.dumps({"instruction": row, "output": row}).decode() + "\n") * 8_000)
    size = path.stat().st_size
    assert size > 20 << 20
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_items(expand_sources([path])))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 8_000
    assert peak < 4 << 20, f"peak {peak:,} bytes while reading {size:,}"


# --- detection across block boundaries (property) -------------------------------------------------

def _reference_detect(data: bytes) -> str:
    saw_cp949 = False
    for line in data.split(b"\n"):
        if line.isascii():
            continue
        decided, cp949_ok = classify(line)
        if decided:
            return decided
        saw_cp949 = saw_cp949 or cp949_ok
    return "cp949" if saw_cp949 else "utf-8"


_LINES = [b"", b"plain ascii", b'{"a": 1}', "안녕하세요".encode(), "안녕하세요".encode("cp949"), "漢字".encode("cp949"),
          "똠방각하".encode("cp949"), b"\xff\xfe", "질문".encode()[:4], b"caf\xe9", "é".encode()]


def test_detection_does_not_depend_on_where_blocks_end(monkeypatch):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from sftdata.ingest import encodings

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.sampled_from(_LINES), max_size=12), st.integers(min_value=16, max_value=40))
    def check(lines: list[bytes], block: int) -> None:
        data = b"\n".join(lines)
        if encodings.bom_encoding(data[:64]):
            return
        monkeypatch.setattr(encodings, "BLOCK", block)
        assert detect_bytes(data) == _reference_detect(data)

    check()
