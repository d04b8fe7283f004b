"""sftdata/rendering/columnar.py and compile.py: the columnar convert path gives the per-row path's bytes.

Every test runs convert twice on the same JSONL, once as shipped (columnar where eligible) and once
with the columnar path switched off, and compares the output and rejects files byte for byte and
the counts exactly.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sftdata
from sftdata import pipeline
from sftdata.ingest import sources
from sftdata.ingest.mapping import mapping_from_data
from sftdata.items import Style
from sftdata.rendering import columnar, rowchecks
from sftdata.rendering.compile import compile_blocks
from sftdata.rendering.templating import load_template

EOS = "</s>"
QA_FROM_ALPACA = {"to": "qa", "fields": {"question": "instruction", "answer": "output",
                                         "context": {"path": "input", "required": False}}}


@pytest.fixture(autouse=True)
def columnar_for_small_files(monkeypatch):
    """The test files are small; below pipeline.FAST_PATH_MIN_BYTES they would all go per row."""
    monkeypatch.setattr(pipeline, "FAST_PATH_MIN_BYTES", 0)


@pytest.fixture(scope="module")
def alpaca_jsonl(tmp_path_factory, shared_data) -> Path:
    rows = orjson.loads((shared_data / "alpaca_en_demo.json").read_bytes())
    path = tmp_path_factory.mktemp("alpaca") / "alpaca_en_demo.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few rows, so one file makes many chunks and many runs."""
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 600)
    monkeypatch.setattr(columnar._blocks, "__defaults__", (600,))


def _convert(source: Path, out: Path, fast: bool, **options) -> sftdata.RunResult:
    original = pipeline.fast_plan
    pipeline.fast_plan = original if fast else (lambda *a, **k: None)
    try:
        return sftdata.convert([source], out, **options)
    finally:
        pipeline.fast_plan = original


def _same(source: Path, tmp: Path, *, expect_fast: bool = True, **options) -> sftdata.RunResult:
    """Both paths on one file: identical bytes and counts; returns the columnar run."""
    fast_out, slow_out = tmp / "fast.jsonl", tmp / "slow.jsonl"
    fast = _convert(source, fast_out, True, **options)
    slow = _convert(source, slow_out, False, **options)
    assert fast.meta["fast_path"] == {str(source): expect_fast}
    assert slow.meta["fast_path"] == {str(source): False}
    assert fast_out.read_bytes() == slow_out.read_bytes()
    assert (tmp / "fast.rejects.jsonl").read_bytes() == (tmp / "slow.rejects.jsonl").read_bytes()
    assert fast.counts.summary() == slow.counts.summary() and fast.counts.balanced()
    assert [r.as_dict() for r in fast.examples] == [r.as_dict() for r in slow.examples]
    return fast


def _jsonl(tmp: Path, lines: list[bytes], name: str = "in.jsonl") -> Path:
    path = tmp / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize("template,style", [("alpaca", None), ("alpaca", Style.prompt_completion),
                                            ("alpaca_ko", None), ("alpaca_ko", Style.prompt_completion)])
def test_alpaca_demo_renders_the_same(alpaca_jsonl, tmp_path, template, style):
    result = _same(alpaca_jsonl, tmp_path, preset="alpaca", template=template, eos=EOS, style=style)
    assert result.counts.summary()["written"] == 999


@pytest.mark.parametrize("style", [None, Style.prompt_completion])
def test_alpaca_demo_as_qa_renders_the_same(alpaca_jsonl, tmp_path, style):
    spec = mapping_from_data(QA_FROM_ALPACA)
    result = _same(alpaca_jsonl, tmp_path, mapping=spec, template="qa_ko", eos=EOS, style=style)
    assert result.counts.summary()["written"] == 999


@pytest.mark.parametrize("preset_or_spec", ["alpaca", QA_FROM_ALPACA])
def test_alpaca_demo_records_are_the_same(alpaca_jsonl, tmp_path, preset_or_spec):
    options = {"preset": preset_or_spec} if isinstance(preset_or_spec, str) else {
        "mapping": mapping_from_data(preset_or_spec)}
    _same(alpaca_jsonl, tmp_path, **options)


HOSTILE = [
    b'{"instruction": "Add.", "input": "1 2", "output": "3"}',
    b'{"instruction":"Say hi.","output":"hi","id":7}',
    b'{"instruction":5,"output":"x"}',  # a number where text belongs
    b'{"instruction":"ok","output":true}',
    b'{"instruction":null,"output":"x"}',
    b'{"output":"no instruction"}',
    b'{"instruction":"   ","output":"x"}',
    b'{"instruction":"\\u001c\\u001d","output":"x"}',  # Python strips these, Rust's \\s does not
    b'{"instruction":"a\\u2003","output":"\\u3000"}',
    b'{"instruction":"eos","output":"ends</s>"}',
    b'{"instruction":"eos in input","input":"x</s>y","output":"z"}',
    b'{"instruction":"extra","output":"x","source":"web"}',
    b'{"instruction":"nested","output":{"text":"x"}}',
    b'{"instruction":"broken","output":',
    b"",
    b"   \t",
    b'{"instruction":"dup","output":"first","output":"last"}',
    b'{"instruction":"dup null","output":"first","output":null}',
    b'{"instruction":"lone","output":"\\ud800"}',
    b'{"instruction":"pair","output":"\\ud83d\\ude00"}',
    b'{"\\u0069nstruction":"escaped key","output":"x"}',
    b'{"instruction":"quote colon","output":"say \\"x\\": y"}',
    b'{"instruction":"sys","output":"x","system":""}',
    b'{"instruction":"sys blank","output":"x","system":" "}',
    b'{"instruction":"sys set","output":"x","system":"Be brief.","input":""}',
    b'{"instruction":"id text","output":"x","id":"a-1"}',
    b'{"instruction":"id float","output":"x","id":1.5}',
    b'{"instruction":"id big","output":"x","id":123456789012345678901234}',
    b'["not", "an", "object"]',
    b'"a string"',
    b' {"instruction":"leading space","output":"x"}',
    b'{"instruction":"tab\\tand\\u0000nul","output":"\\b\\f\\r\\n\\"\\\\/"}',
    b'{"instruction":"raw\ttab","output":"x"}',
    b'{"instruction":"crlf","output":"x"}\r',
    b'\xef\xbb\xbf{"instruction":"bom mid-file","output":"x"}',
    b'{"instruction":"bad utf8 \xff","output":"x"}',
    b'{"instruction":"unicode \xed\x95\x9c\xea\xb8\x80","output":"\xe2\x80\xa8"}',
]


@pytest.mark.parametrize("template", ["alpaca", None])
def test_hostile_rows_match_row_for_row(tmp_path, small_blocks, template):
    good = [b'{"instruction":"row %d","input":"","output":"fine"}' % i for i in range(40)]
    lines = good[:10] + HOSTILE + good[10:20] + HOSTILE[::-1] + good[20:]
    source = _jsonl(tmp_path, lines)
    result = _same(source, tmp_path, preset="alpaca", template=template, eos=EOS if template else None)
    assert result.counts.summary()["rejected"] > 10


def test_hostile_rows_in_one_chunk(tmp_path):
    """With the default block size everything lands in one chunk, which polars cannot parse whole."""
    good = [b'{"instruction":"row %d","output":"fine"}' % i for i in range(20)]
    _same(_jsonl(tmp_path, good + HOSTILE + good), tmp_path, preset="alpaca", template="alpaca", eos=EOS)


def test_rows_polars_parses_are_checked_one_by_one(tmp_path, monkeypatch):
    """In a chunk polars reads whole, each row it cannot vouch for goes the per-row way, alone."""
    unparseable = {b'{"instruction":"broken","output":', b"", b"   \t", b'["not", "an", "object"]', b'"a string"',
                   b'{"instruction":"raw\ttab","output":"x"}', b'{"instruction":"bad utf8 \xff","output":"x"}',
                   b'\xef\xbb\xbf{"instruction":"bom mid-file","output":"x"}'}
    vouched = {b'{"instruction": "Add.", "input": "1 2", "output": "3"}',
               b'{"instruction":"quote colon","output":"say \\"x\\": y"}',
               b'{"instruction":"sys","output":"x","system":""}',
               b'{"instruction":"sys set","output":"x","system":"Be brief.","input":""}',
               b'{"instruction":"id text","output":"x","id":"a-1"}',
               b'{"instruction":"tab\\tand\\u0000nul","output":"\\b\\f\\r\\n\\"\\\\/"}',
               b'{"instruction":"crlf","output":"x"}\r'}
    good = [b'{"instruction":"row %d","output":"fine"}' % i for i in range(5)]
    lines = good + [line for line in HOSTILE if line not in unparseable] + good
    source, slow = _jsonl(tmp_path, lines), []
    _same(source, tmp_path, preset="alpaca", template="alpaca", eos=EOS)
    original = pipeline.mapped_records
    monkeypatch.setattr(pipeline, "mapped_records", lambda items, *a: original(
        (slow.append(i.locator.line) or i for i in items), *a))
    sftdata.convert([source], tmp_path / "spy.jsonl", preset="alpaca", template="alpaca", eos=EOS)
    fast = {number for number, line in enumerate(lines, 1) if number not in slow}
    assert fast == {n for n, line in enumerate(lines, 1) if line in vouched or line in good}


def test_a_clean_file_is_rendered_by_polars(tmp_path, monkeypatch):
    rows = [b'{"instruction":"row %d","input":"%s","output":"fine"}' % (i, b"x" * (i % 2)) for i in range(50)]
    per_row = []
    original = pipeline.mapped_records
    monkeypatch.setattr(pipeline, "mapped_records", lambda items, *a: per_row.extend(items) or original([], *a))
    result = sftdata.convert([_jsonl(tmp_path, rows)], tmp_path / "out.jsonl", preset="alpaca",
                             template="alpaca", eos=EOS)
    assert per_row == [] and result.counts.summary()["written"] == 50


def test_bom_crlf_and_blank_lines_keep_their_line_numbers(tmp_path, small_blocks):
    lines = [b'\xef\xbb\xbf{"instruction":"a","output":"b"}\r', b"", b"\r", b'{"instruction":" ","output":"b"}\r',
             b"\x0b\x0c", b'{"instruction":"c","output":"d"}', b"{bad}"]
    source = _jsonl(tmp_path, lines)
    result = _same(source, tmp_path, preset="alpaca", template="alpaca", eos=EOS)
    assert [r.locator.line for r in result.examples] == [4, 7]


def test_a_line_over_the_limit_is_rejected_the_same(tmp_path, small_blocks, monkeypatch):
    monkeypatch.setattr(sources, "MAX_LINE_BYTES", 200)
    long = b'{"instruction":"%s","output":"x"}' % (b"y" * 300)
    lines = [b'{"instruction":"a","output":"b"}', long, b'{"instruction":"c","output":"d"}']
    result = _same(_jsonl(tmp_path, lines), tmp_path, preset="alpaca", template="alpaca", eos=EOS)
    assert result.counts.summary()["by_reason"] == {"line_too_long": 1}


def test_user_mapping_with_consts_and_required_optionals(tmp_path, small_blocks):
    spec = mapping_from_data({"to": "instruction", "fields": {
        "instruction": "q", "output": "a", "system": {"const": "You are terse."},
        "input": {"path": "ctx", "required": False}, "id": {"const": 3}}})
    lines = [b'{"q":"x","a":"y"}', b'{"q":"x","a":"y","ctx":"c"}', b'{"q":"x"}', b'{"a":"y","ctx":null}']
    _same(_jsonl(tmp_path, lines), tmp_path, mapping=spec, template="alpaca", eos=EOS)
    _same(_jsonl(tmp_path, lines), tmp_path, mapping=spec)


def test_required_optional_field_missing_is_a_path_reject(tmp_path, small_blocks):
    spec = mapping_from_data({"to": "instruction", "fields": {"instruction": "q", "output": "a", "system": "s"}})
    lines = [b'{"q":"x","a":"y","s":"sys"}', b'{"q":"x","a":"y"}', b'{"q":"x","a":"y","s":null}',
             b'{"q":"x","a":"y","s":""}']
    result = _same(_jsonl(tmp_path, lines), tmp_path, mapping=spec, template="alpaca", eos=EOS)
    assert result.counts.summary()["by_reason"] == {"blank": 1, "path_missing": 1}


def test_integer_then_text_ids_keep_their_json_type(tmp_path, small_blocks):
    ids = [1, 2, 0, -5, "a", "7", 3, None, "", 10**17]
    lines = [orjson.dumps({"instruction": f"q{n}", "output": "a", "id": i}) for n, i in enumerate(ids * 3)]
    _same(_jsonl(tmp_path, lines), tmp_path, preset="alpaca")
    _same(_jsonl(tmp_path, lines), tmp_path, preset="alpaca", template="alpaca", eos=EOS)


def test_several_sources_in_one_run(tmp_path, alpaca_jsonl, shared_data):
    json_source = shared_data / "alpaca_en_demo.json"
    outputs = {}
    for fast in (True, False):
        out = tmp_path / f"{fast}.jsonl"
        original = pipeline.fast_plan
        pipeline.fast_plan = original if fast else (lambda *a, **k: None)
        try:
            result = sftdata.convert([alpaca_jsonl, json_source], out, preset="alpaca", template="alpaca", eos=EOS)
        finally:
            pipeline.fast_plan = original
        outputs[fast] = out.read_bytes(), result.counts.summary()
    assert outputs[True] == outputs[False]
    assert result.counts.summary()["written"] == 2 * 999
    fast_meta = orjson.loads((tmp_path / "True.meta.json").read_bytes())["fast_path"]
    assert fast_meta == {str(alpaca_jsonl): True, str(json_source): False}


def test_what_the_columnar_path_leaves_alone(tmp_path, alpaca_jsonl, shared_data):
    _same(alpaca_jsonl, tmp_path, preset="alpaca", template="alpaca", eos=EOS, style=Style.messages,
          expect_fast=False)
    _same(alpaca_jsonl, tmp_path, preset="alpaca", template="alpaca", eos=EOS, to=sftdata.RecordKind.chat,
          expect_fast=False)
    spec = mapping_from_data({"to": "instruction", "fields": {"instruction": {"join": ["instruction", "input"]},
                                                              "output": "output"}})
    _same(alpaca_jsonl, tmp_path, mapping=spec, template="alpaca", eos=EOS, expect_fast=False)
    result = sftdata.convert([shared_data / "alpaca_en_demo.json"], tmp_path / "j.jsonl", preset="alpaca")
    assert result.meta["fast_path"] == {str(shared_data / "alpaca_en_demo.json"): False}


def test_small_files_skip_the_columnar_path_and_polars(tmp_path, alpaca_jsonl, monkeypatch):
    monkeypatch.setattr(pipeline, "FAST_PATH_MIN_BYTES", alpaca_jsonl.stat().st_size + 1)
    result = sftdata.convert([alpaca_jsonl], tmp_path / "o.jsonl", preset="alpaca", template="alpaca", eos=EOS)
    assert result.meta["fast_path"] == {str(alpaca_jsonl): False}
    assert result.counts.summary()["written"] == 999
    code = ("import sys, sftdata, sftdata.pipeline\n"
            f"sftdata.pipeline.FAST_PATH_MIN_BYTES = {alpaca_jsonl.stat().st_size + 1}\n"
            f"sftdata.convert([{str(alpaca_jsonl)!r}], {str(tmp_path / 'p.jsonl')!r}, preset='alpaca', "
            "template='alpaca', eos='</s>')\n"
            "print('polars' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "False", done.stderr
    assert (tmp_path / "p.jsonl").read_bytes() == (tmp_path / "o.jsonl").read_bytes()


def test_templates_with_loops_or_filters_are_not_compiled(tmp_path, alpaca_jsonl):
    for body in ("{% for c in instruction %}{{ c }}{% endfor %}", "{{ instruction | upper }}",
                 "{{ instruction[0] }}", "{% set x = 1 %}{{ instruction }}"):
        path = tmp_path / "mine.jinja"
        path.write_text("{% block prompt %}" + body + "\n{% endblock %}{% block completion %}{{ output }}"
                        "{% endblock %}", encoding="utf-8")
        assert compile_blocks(load_template(str(path)), {"instruction", "output"}) is None
        result = _same(alpaca_jsonl, tmp_path, preset="alpaca", template=str(path), eos=EOS, expect_fast=False)
        assert result.counts.summary()["written"] == 999


def test_if_elif_else_not_and_or_follow_jinja(tmp_path):
    path = tmp_path / "logic.jinja"
    path.write_text(
        "{% block prompt %}{% if system and not input %}S={{ system }}{% elif input or id %}I={{ input }}/{{ id }}"
        "{% else %}none {{ system }}{% endif %}|{% if not id %}noid{% endif %}\n{% endblock %}"
        "{% block completion %}{{ output }}{{ eos_token }}{% endblock %}", encoding="utf-8")
    assert compile_blocks(load_template(str(path)), {"system", "input", "id", "output", "eos_token"})
    lines = [orjson.dumps({"instruction": "i", "output": "o", **extra}) for extra in (
        {}, {"system": "s"}, {"input": "x"}, {"system": "s", "input": "x"}, {"id": 0}, {"id": 5}, {"id": "a"},
        {"id": ""}, {"system": "s", "id": 0})]
    for style in (None, Style.prompt_completion):
        _same(_jsonl(tmp_path, lines), tmp_path, preset="alpaca", template=str(path), eos=EOS, style=style)


def test_python_whitespace_class_is_complete():
    assert set(rowchecks.PY_WHITESPACE) == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_polars_ndjson_escapes_strings_as_orjson_does(text):
    buffer = io.BytesIO()
    pl.DataFrame({"text": [text]}).write_ndjson(buffer)
    assert buffer.getvalue() == orjson.dumps({"text": text}) + b"\n"
    encoded = pl.select(pl.struct(pl.lit(text).alias("v")).struct.json_encode()).item()
    assert encoded.encode() == orjson.dumps({"v": text})


_TEXT = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(["", " ", "\x1c", "</s>", "a</s>", "\\", '"',
                                                                    '": ', "\n", "\u3000", "é", "None"]),
                  st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12))
_ROW = st.fixed_dictionaries({}, optional={"instruction": _TEXT, "input": _TEXT, "output": _TEXT,
                                           "system": _TEXT, "id": _TEXT, "extra": _TEXT})


def _line(row: dict, style: int) -> bytes:
    if style == 0:
        return orjson.dumps(row)
    return json.dumps(row, ensure_ascii=style == 1).encode()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_ROW, st.integers(0, 2)), max_size=25), st.sampled_from(["alpaca", None]),
       st.sampled_from([None, Style.prompt_completion]))
def test_random_records_agree(rows, template, style):
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        source = _jsonl(tmp, [_line(row, how) for row, how in rows])
        original = columnar.BLOCK_BYTES
        columnar._blocks.__defaults__ = (300,)
        try:
            _same(source, tmp, preset="alpaca", template=template, eos=EOS if template else None,
                  style=style if template else None)
        finally:
            columnar._blocks.__defaults__ = (original,)
