"""Hostile inputs end to end through sftdata.convert. Every test writes its own inputs into tmp_path.

For each case: no exception but a clear InputError where the whole input is unusable; otherwise
read = written + rejected for every input file, every reject names its file (and line or index,
field where there is one) and carries the raw item or its escaped bytes, and every good record of
the same file is still written. The CLI side (exit codes, no tracebacks) is in test_cli.py.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from sftdata import convert
from sftdata.errors import InputError
from sftdata.ingest import sources

GOOD = b'{"instruction": "hi", "output": "there"}\n'
GOOD_ROW = {"instruction": "hi", "input": "", "output": "there"}


class Run:
    def __init__(self, result: Any, out: Path) -> None:
        self.result = result
        self.summary = result.summary()
        self.written = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        self.rejects = [orjson.loads(line) for line in out.with_name("out.rejects.jsonl").read_bytes().splitlines()]

    def where(self) -> list[tuple[Any, ...]]:
        """(file name, line or index, reason) of each reject, in order."""
        return [(Path(r["file"]).name, r.get("line", r.get("index")), r["reason"]) for r in self.rejects]


def run(tmp_path: Path, files: dict[str, bytes], *inputs: str, **options: Any) -> Run:
    for name, data in files.items():
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    out = tmp_path / "out" / "out.jsonl"
    result = convert([str(tmp_path / "in" / i) for i in (inputs or files)], out, **options)
    got = Run(result, out)
    # the invariant, per input file, and the files agree with the counts
    assert result.counts.balanced(), got.summary["files"]
    for name, c in got.summary["files"].items():
        assert c["read"] == c["written"] + c["rejected"] + c["filtered"] + c["deduplicated"], name
    assert len(got.written) == got.summary["written"] and len(got.rejects) == got.summary["rejected"]
    for reject in got.rejects:
        assert reject["file"] and reject["reason"] and reject["message"] and reject["stage"]
        assert "raw" in reject or "raw_bytes" in reject
    return got


def counts(got: Run, name: str) -> tuple[int, int, int]:
    [c] = [c for f, c in got.summary["files"].items() if Path(f).name == name]
    return c["read"], c["written"], c["rejected"]


# --- JSONL lines --------------------------------------------------------------------------------

def test_truncated_json_lines(tmp_path):
    got = run(tmp_path, {"a.jsonl": GOOD + b'{"instruction": "a", "out\n' + GOOD + b'{"instruction": "x"'})
    assert got.where() == [("a.jsonl", 2, "invalid_json"), ("a.jsonl", 4, "invalid_json")]
    assert "unexpected end" in got.rejects[0]["message"] and got.rejects[0]["raw"] == '{"instruction": "a", "out'
    assert got.written == [GOOD_ROW, GOOD_ROW]


@pytest.mark.parametrize(("data", "bad_lines"), [
    (b"\xff" + GOOD + GOOD + GOOD, [1]),  # start of the file (and of a line)
    (GOOD + b'{"instruction": "\xc3\x28", "output": "x"}\n' + GOOD, [2]),  # middle of a line
    (GOOD + b'{"instruction": "hi", "output": "x"}\xe0\n' + GOOD, [2]),  # end of a line
    (GOOD + GOOD + b'{"instruction": "hi", "output": "\xed\x95', [3]),  # end of the file: a cut syllable
    (GOOD + b"\x80\x80\x80\n" + GOOD, [2]),  # a whole line of stray continuation bytes
])
def test_invalid_utf8_is_a_per_line_reject(tmp_path, data, bad_lines):
    got = run(tmp_path, {"a.jsonl": data})
    assert [w[1:] for w in got.where()] == [(n, "undecodable") for n in bad_lines]
    for reject in got.rejects:
        assert "\\x" in reject["raw_bytes"] and "utf-8" in reject["message"] and "at byte" in reject["message"]
    assert got.written == [GOOD_ROW, GOOD_ROW]


def test_invalid_utf8_among_korean_utf8_lines(tmp_path):
    ko = '{"instruction": "질문", "output": "답"}\n'.encode()
    got = run(tmp_path, {"a.jsonl": ko + ko[:19] + b"\n" + ko + b"\xff\xfe" + ko})  # 19: inside a syllable
    assert got.where() == [("a.jsonl", 2, "undecodable"), ("a.jsonl", 4, "undecodable")]
    assert [w["instruction"] for w in got.written] == ["질문", "질문"]


def test_nul_bytes(tmp_path):
    got = run(tmp_path, {"a.jsonl": GOOD + b'{"instruction": "a\x00", "output": "b"}\n' + b"\x00" * 64 + b"\n"
                         + GOOD + b'{"instruction": "escaped \\u0000 is text", "output": "b"}\n',
                         "b.csv": b"instruction,output\nhi,th\x00ere\nhi,there\n"})
    assert got.where() == [("a.jsonl", 2, "invalid_json"), ("a.jsonl", 3, "invalid_json"), ("b.csv", 2, "nul_byte")]
    assert "NUL" in got.rejects[0]["message"] and "\\x00" in got.rejects[2]["raw_bytes"]
    assert got.written[:2] == [GOOD_ROW, GOOD_ROW] and got.written[2]["instruction"] == "escaped \x00 is text"
    assert got.written[3:] == [GOOD_ROW]


def test_byte_order_marks(tmp_path):
    bom = b"\xef\xbb\xbf"
    got = run(tmp_path, {"a.jsonl": bom + GOOD + GOOD, "b.json": bom + b"[" + GOOD + b"]",
                         "c.csv": bom + b"instruction,output\r\nhi,there\r\n", "d.json": bom + GOOD})
    assert got.rejects == [] and got.written == [GOOD_ROW] * 5


def test_crlf_and_lone_cr(tmp_path):
    crlf, cr = GOOD.replace(b"\n", b"\r\n"), GOOD.replace(b"\n", b"\r")
    got = run(tmp_path, {"a.jsonl": crlf + crlf + b'{"instruction":\r"between tokens","output":"ok"}\r\n',
                         "b.jsonl": GOOD + cr + cr + b"\n" + GOOD,
                         "c.csv": b'instruction,output\rhi,there\r"two\r\nlines",x\rp,q\r\n'})
    assert got.where() == [("b.jsonl", 2, "invalid_json")]  # JSON Lines end at \n: two records on one line
    assert "carriage return" in got.rejects[0]["message"]
    assert counts(got, "a.jsonl") == (3, 3, 0) and counts(got, "b.jsonl") == (3, 2, 1)
    assert counts(got, "c.csv") == (3, 3, 0)
    assert {"instruction": "two\r\nlines", "input": "", "output": "x"} in got.written


# --- encodings ----------------------------------------------------------------------------------

KO_CSV = "instruction,output\r\n안녕하세요,반갑습니다\r\n\"여러 줄\r\n셀\",똠방각하\r\n".encode("cp949")
KO_JSONL = '{"instruction": "안녕하세요", "output": "반갑습니다"}\n{"instruction": "질문", "output": "답"}\n'


@pytest.mark.parametrize("encoding", ["auto", "cp949", "euc-kr"])
def test_cp949_csv(tmp_path, encoding):
    got = run(tmp_path, {"k.csv": KO_CSV}, encoding=encoding)
    assert got.rejects == []
    assert [(w["instruction"], w["output"]) for w in got.written] == [("안녕하세요", "반갑습니다"),
                                                                      ("여러 줄\r\n셀", "똠방각하")]


@pytest.mark.parametrize("encoding", ["auto", "euc-kr", "EUC-KR", "cp949"])
def test_euc_kr_jsonl(tmp_path, encoding):
    got = run(tmp_path, {"k.jsonl": KO_JSONL.encode("euc-kr")}, encoding=encoding)
    assert got.rejects == [] and [w["output"] for w in got.written] == ["반갑습니다", "답"]


def test_korean_file_read_with_the_wrong_encoding_rejects_lines_not_the_run(tmp_path):
    data = KO_JSONL.encode("euc-kr") + GOOD
    got = run(tmp_path, {"k.jsonl": data, "k.csv": KO_CSV + b"hi,there\r\n"}, encoding="utf-8")
    assert got.where() == [("k.jsonl", 1, "undecodable"), ("k.jsonl", 2, "undecodable"),
                           ("k.csv", 2, "undecodable"), ("k.csv", 3, "undecodable")]
    assert all("pass --encoding" in r["message"] for r in got.rejects)
    assert got.written == [GOOD_ROW, GOOD_ROW]


def test_cp949_after_more_than_a_megabyte_of_ascii(tmp_path):
    long = b"x" * 2000  # long ASCII rows: megabytes of them without too many rows to convert
    jsonl = b'{"instruction": "hi", "output": "%s"}\n' % long * 1200
    csv = b"instruction,output\n" + b"hi,%s\n" % long * 1200
    assert len(jsonl) > 2 << 20 and len(csv) > 2 << 20
    got = run(tmp_path, {"late.jsonl": jsonl + KO_JSONL.encode("cp949"),
                         "late.csv": csv + KO_CSV.split(b"\r\n", 1)[1]})
    assert got.rejects == [] and len(got.written) == 2404
    assert [w["instruction"] for w in got.written if w["instruction"] != "hi"] == ["안녕하세요", "질문", "안녕하세요",
                                                                                  "여러 줄\r\n셀"]


def test_an_undecodable_json_file_is_an_error_with_the_byte_offset(tmp_path):
    with pytest.raises(InputError) as caught:
        run(tmp_path, {"a.json": b'[{"instruction": "a", "output": "b"},\n {"instruction": "\xff\xff"}]'})
    assert "a.json:2: cannot decode byte 0xff at byte offset 56 (line 2) as utf-8" in str(caught.value)


# --- wrong shapes -------------------------------------------------------------------------------

def test_wrong_types_nulls_missing_extra_and_blank_fields(tmp_path):
    lines = [
        {"instruction": 5, "output": "x"},  # number where a string belongs
        {"instruction": "a", "output": None},  # null required field
        {"instruction": "a", "input": None, "output": "b"},  # null optional field: fine
        {"output": "b"},  # missing field
        {"instruction": "a", "output": "b", "extra": {"k": [1, 2]}},  # extra field: kept in meta
        {"instruction": "", "output": "b"},  # empty string
        {"instruction": "a", "output": " \t\n "},  # whitespace only
        {"instruction": ["a"], "output": "b"},  # a list where a string belongs
        [1, 2],  # not an object
        "just a string",
    ]
    got = run(tmp_path, {"a.jsonl": b"".join(orjson.dumps(x) + b"\n" for x in lines)})
    assert [(w[1], w[2], r.get("field")) for w, r in zip(got.where(), got.rejects)] == [
        (1, "string_type", "instruction"), (2, "missing", "output"), (4, "path_missing", None),
        (6, "blank", "instruction"), (7, "blank", "output"), (8, "string_type", "instruction"),
        (9, "not_an_object", None), (10, "not_an_object", None)]
    assert got.rejects[0]["raw"] == lines[0]  # the raw item travels with its reject
    assert got.written == [{"instruction": "a", "input": "", "output": "b"},
                           {"instruction": "a", "input": "", "output": "b", "meta": {"extra": {"k": [1, 2]}}}]


def test_out_of_order_roles_openai(tmp_path):
    convs = [[("assistant", "a"), ("user", "b")], [("user", "q"), ("assistant", "a")],
             [("user", "q"), ("user", "again"), ("assistant", "a")], [("user", "q"), ("system", "s"), ("assistant", "a")],
             [("user", "q"), ("assistant", "a"), ("user", "dangling")]]
    data = b"".join(orjson.dumps({"messages": [{"role": r, "content": c} for r, c in conv]}) + b"\n" for conv in convs)
    got = run(tmp_path, {"c.jsonl": data}, preset="openai")
    assert [(w[1], r["field"]) for w, r in zip(got.where(), got.rejects)] == [
        (1, "messages[0].role"), (3, "messages[1].role"), (4, "messages[1].role"), (5, "messages[2].role")]
    assert got.written == [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]


def test_out_of_order_roles_sharegpt(tmp_path):
    convs = [[("gpt", "a"), ("human", "b")], [("human", "q"), ("gpt", "a")], [("human", "q"), ("human", "q2")],
             [("human", "q"), ("robot", "a")]]
    data = b"".join(orjson.dumps({"conversations": [{"from": r, "value": c} for r, c in conv]}) + b"\n"
                    for conv in convs)
    got = run(tmp_path, {"c.jsonl": data}, preset="sharegpt")
    assert [(w[1], w[2], r["field"]) for w, r in zip(got.where(), got.rejects)] == [
        (1, "chat_rule", "messages[0].role"), (3, "chat_rule", "messages[1].role"),
        (4, "unknown_role", "conversations[1].from")]  # the importer names the raw row's own field
    assert len(got.written) == 1


# --- sizes and depths ---------------------------------------------------------------------------

def test_a_20_mb_single_line_valid_and_invalid(tmp_path):
    big = b'{"instruction": "hi", "output": "' + b"x" * (20 << 20) + b'"}\n'
    got = run(tmp_path, {"a.jsonl": GOOD + big + big[:-3] + b"\n" + GOOD})
    assert got.where() == [("a.jsonl", 3, "invalid_json")]
    assert len(got.written) == 3 and len(got.written[1]["output"]) == 20 << 20


def test_a_line_over_the_limit_is_rejected_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_LINE_BYTES", 4096)
    big = b'{"instruction": "hi", "output": "' + b"x" * 10_000 + b'"}\n'
    got = run(tmp_path, {"a.jsonl": GOOD + big + GOOD, "b.csv": b"instruction,output\nhi,there\n" + b"x" * 10_000
                         + b",y\nhi,there\n"})
    assert got.where() == [("a.jsonl", 2, "line_too_long"), ("b.csv", 3, "line_too_long")]
    assert len(got.written) == 4


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv"])
def test_empty_line_files_have_no_records(tmp_path, suffix):
    got = run(tmp_path, {f"a{suffix}": b"", f"b{suffix}": b"\n\r\n  \n"})
    assert got.summary["read"] == 0 and got.written == [] and got.rejects == []


@pytest.mark.parametrize(("data", "words"), [
    (b"", "file is empty"),
    (b"  \n", "file is empty"),
    (b"42", "top level is a number"),
    (b'"text"', "top level is a string"),
    (b"null", "top level is a null"),
    (b"[" * 10_000 + b"]" * 10_000, "invalid JSON"),
    (b'{"a": ' * 10_000 + b"1" + b"}" * 10_000, "invalid JSON"),
])
def test_json_files_that_hold_no_records_are_clear_errors(tmp_path, data, words):
    with pytest.raises(InputError, match=words) as caught:
        run(tmp_path, {"a.json": data})
    assert str(caught.value).startswith(str(tmp_path / "in" / "a.json"))


def test_10000_deep_nesting_in_lines_and_lists(tmp_path):
    deep = b"[" * 10_000 + b"]" * 10_000
    mid = b'{"instruction": "a", "output": "b", "x": ' + b"[" * 300 + b"]" * 300 + b"}"
    got = run(tmp_path, {"a.jsonl": GOOD + deep + b"\n" + mid + b"\n" + GOOD,
                         "b.json": b"[" + GOOD + b"," + mid + b"," + GOOD + b"]"})
    assert got.where() == [("a.jsonl", 2, "too_deep"), ("a.jsonl", 3, "too_deep"), ("b.json", 1, "too_deep")]
    assert got.written == [GOOD_ROW] * 4


# --- directories --------------------------------------------------------------------------------

def test_a_directory_of_per_item_files_with_broken_and_foreign_files(tmp_path):
    d = tmp_path / "in" / "labels"
    (d / "sub").mkdir(parents=True)
    (d / "a.json").write_bytes(GOOD)
    (d / "sub" / "b.json").write_bytes(b"[" + GOOD + b"," + GOOD + b"]")
    (d / "broken.json").write_bytes(b'{"instruction": "hi", "outp')
    (d / "README.txt").write_text("not data, not read")
    (d / "empty.json").write_bytes(b"")
    (d / "number.json").write_bytes(b"3.5")
    (d / "latin.json").write_bytes(b'{"instruction": "caf\xe9", "output": "x"}')
    (d / "dir.json").mkdir()  # a directory with a data suffix: walked like any directory
    (d / "dir.json" / "c.json").write_bytes(GOOD)
    os.symlink(tmp_path / "nowhere.json", d / "dangling.json")  # unreadable: tests run as root, chmod won't do
    os.mkfifo(d / "pipe.jsonl")  # must not hang
    got = run(tmp_path, {}, "labels")
    assert got.where() == [("broken.json", 1, "invalid_json"), ("dangling.json", None, "unreadable_file"),
                           ("empty.json", None, "empty_file"), ("latin.json", 1, "undecodable"),
                           ("number.json", None, "not_a_record"), ("pipe.jsonl", None, "unreadable_file")]
    assert "broken symbolic link" in got.rejects[1]["message"] and "pipe" in got.rejects[5]["message"]
    assert "byte offset 20" in got.rejects[3]["message"] and got.rejects[3]["raw_bytes"].startswith('{"instr')
    assert got.written == [GOOD_ROW] * 4
    assert not any("README" in f for f in got.summary["files"])
    assert counts(got, "b.json") == (2, 2, 0) and counts(got, "broken.json") == (1, 0, 1)


def test_a_glob_of_files(tmp_path):
    got = run(tmp_path, {"x/1.json": GOOD, "x/2.json": b"{", "x/3.txt": b"nope"}, "x/*.json")
    assert got.where() == [("2.json", 1, "invalid_json")] and got.written == [GOOD_ROW]


def test_records_path_in_a_directory_rejects_files_without_it(tmp_path):
    got = run(tmp_path, {"d/a.json": b'{"data": [' + GOOD + b"]}", "d/b.json": b'{"other": []}'}, "d",
              records_path="data")
    assert got.where() == [("b.json", None, "records_path")] and got.written == [GOOD_ROW]


# --- CSV ----------------------------------------------------------------------------------------

def test_csv_wrong_cell_counts_and_multiline_cells_keep_line_numbers(tmp_path):
    data = (b"instruction,output,input\n"  # 1
            b"hi,there,\n"  # 2
            b"only,two\n"  # 3: too few
            b'"multi\nline\ncell",x,y\n'  # 4-6
            b"many,cells,here,extra\n"  # 7: too many
            b'"a ""quoted"" one",b,\n'  # 8
            b"trail,ing,,,\n"  # 9: trailing empty cells, as spreadsheets write them
            b"\n"  # 10: blank
            b'"another\r\nmulti",z,\n'  # 11-12
            b"last,row,z\n"  # 13
            b'"unclosed,x,y\n'  # 14: runs to the end of the file
            b"more,stuff,z\n")  # 15
    got = run(tmp_path, {"a.csv": data})
    assert got.where() == [("a.csv", 3, "bad_csv_row"), ("a.csv", 7, "bad_csv_row"), ("a.csv", 14, "bad_csv_row")]
    assert got.rejects[0]["raw"] == ["only", "two"] and "2 cells, the header has 3" in got.rejects[0]["message"]
    assert "line 14 to 15" in got.rejects[2]["message"]
    assert [w["instruction"] for w in got.written] == ["hi", "multi\nline\ncell", 'a "quoted" one', "trail",
                                                       "another\r\nmulti", "last"]
    assert [w["input"] for w in got.written] == ["", "y", "", "", "", "z"]


def test_csv_with_undecodable_and_cp949_rows(tmp_path):
    data = b"instruction,output\nhi,there\nbad,\xff\xfe\nhi,there\n"
    got = run(tmp_path, {"a.csv": data})
    assert got.where() == [("a.csv", 3, "undecodable")] and got.rejects[0]["raw_bytes"] == "bad,\\xff\\xfe\\n"
    assert got.written == [GOOD_ROW, GOOD_ROW]


# --- Parquet ------------------------------------------------------------------------------------

def test_parquet_with_a_wrong_typed_column(tmp_path):
    pl = pytest.importorskip("polars")
    (tmp_path / "in").mkdir()
    pl.DataFrame({"instruction": ["a", "b", "c"], "output": [1, 2, 3]}).write_parquet(tmp_path / "in" / "ints.parquet")
    pl.DataFrame({"instruction": ["a", None, "c", " ", "e"], "output": ["x", "y", None, "z", "w"],
                  "id": [1.5, 2.0, 3.0, 4.0, 5.0]}).write_parquet(tmp_path / "in" / "mixed.parquet")
    got = run(tmp_path, {}, "ints.parquet", "mixed.parquet")
    assert [(w, r.get("field", "").split(".")[0]) for w, r in zip(got.where(), got.rejects)] == [
        (("ints.parquet", 0, "string_type"), "output"), (("ints.parquet", 1, "string_type"), "output"),
        (("ints.parquet", 2, "string_type"), "output"), (("mixed.parquet", 0, "string_type"), "id"),
        (("mixed.parquet", 1, "missing"), "instruction"), (("mixed.parquet", 2, "missing"), "output"),
        (("mixed.parquet", 3, "blank"), "instruction")]
    assert got.rejects[0]["raw"] == {"instruction": "a", "output": 1}
    assert got.written == [{"instruction": "e", "input": "", "output": "w", "id": 5}]


def test_a_broken_parquet_file(tmp_path):
    with pytest.raises(InputError, match="cannot read Parquet"):
        run(tmp_path, {"a.parquet": b"PAR1 not really"})
    got = run(tmp_path, {"d/a.parquet": b"PAR1 not really", "d/b.jsonl": GOOD}, "d")
    assert got.where() == [("a.parquet", None, "unreadable_file")] and got.written == [GOOD_ROW]
