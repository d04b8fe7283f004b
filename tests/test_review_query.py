"""Finding rows in `sftdata review`: the language filter (the script of what a row teaches, read in the index
pass), full-text search, and jumping to a line."""
from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import sftdata
from sftdata.reviewing.decisions import Action
from sftdata.reviewing.query import Filter
from sftdata.reviewing.session import Options, Review


def _write(path: Path, rows: list[dict], ascii_only: bool = False) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=ascii_only) for r in rows) + "\n", encoding="utf-8")
    return path


def _chat(user: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


ROWS = [
    _chat("Translate 'hello' into Korean, please.", "안녕하세요라고 합니다."),  # English prompt, Korean answer: ko
    _chat("한국어로 답하지 말고 영어로 답해 주세요.", "Sure, here is my answer in English."),  # en
    {"instruction": "다음 문장을 요약하세요.", "input": "긴 글", "output": "짧은 요약입니다."},  # keys are not text: ko
    {"question": "日本の首都は?", "answer": "東京です。"},  # ja
    {"question": "2+2?", "answer": "4"},  # no letters
    _chat("Привет", "Здравствуйте, чем могу помочь?"),  # ru
]


def _review(paths: list[Path]) -> Review:
    review = Review(paths, Options())
    review.start()
    review.index.join()
    return review


def test_the_language_filter_reads_the_script_of_what_a_row_teaches(tmp_path):
    review = _review([_write(tmp_path / "mixed.jsonl", ROWS)])
    found = {lang: [int(r) for r in review.select(Filter(lang=lang))] for lang in ("ko", "en", "ja", "ru", "none")}
    assert found == {"ko": [0, 2], "en": [1], "ja": [3], "ru": [5], "none": [4]}
    assert [int(r) for r in review.select(Filter(lang="ko", q="요약"))] == [2]


def test_search_finds_korean_in_files_python_wrote_with_escapes(tmp_path):
    review = _review([_write(tmp_path / "escaped.jsonl", ROWS, ascii_only=True)])
    assert b"\\uc548" in (tmp_path / "escaped.jsonl").read_bytes()  # 안 as json.dumps writes it by default
    assert [int(r) for r in review.select(Filter(q="안녕하세요"))] == [0]
    assert [int(r) for r in review.select(Filter(q="Sure, here"))] == [1]


def test_a_jump_to_a_line_with_no_row_says_so(tmp_path):
    data = _write(tmp_path / "mixed.jsonl", ROWS)
    handle = sftdata.review([data], port=0)
    try:
        query = urllib.parse.urlencode({"file": data.name, "line": 99})
        with urllib.request.urlopen(handle.url + "?" + query) as response:
            page = response.read().decode()
        assert "mixed.jsonl has no row at line 99" in page
        query = urllib.parse.urlencode({"file": data.name, "line": 2})
        with urllib.request.urlopen(handle.url + "?" + query) as response:
            assert response.url.endswith("/row/1")
    finally:
        handle.stop()


def test_a_file_saved_with_a_byte_order_mark_reads_as_the_readers_read_it(tmp_path):
    data = tmp_path / "bom.jsonl"
    data.write_bytes(b"\xef\xbb\xbf" + "\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS).encode() + b"\n")
    assert sftdata.validate([data]).summary()["rejected"] == 0  # the readers take it
    review = _review([data])
    first = review.row(0)
    assert first.reason == "" and first.record == ROWS[0] and review.index.read(0).startswith(b"{")
    assert [int(r) for r in review.select(Filter(lang="ko"))] == [0, 2]
    out = tmp_path / "applied.jsonl"
    review.decide([1], Action.reject)
    sftdata.review_apply(review.path, out)
    assert out.read_bytes().splitlines()[0] == json.dumps(ROWS[0], ensure_ascii=False).encode()
