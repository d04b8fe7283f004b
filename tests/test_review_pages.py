"""What the review pages show over real HTTP (the in-process server `sftdata.review` starts): personal information
masked on every page and endpoint unless --show-pii."""
from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import sftdata

PHONE, MAIL = "010-1234-5678", "minji.kim@example.com"


def _text(url: str) -> str:
    with urllib.request.urlopen(url) as response:
        return response.read().decode()


def _pii_chain(folder: Path) -> Path:
    """A chat file with personal information in a kept row, a near duplicate of it and an invalid row."""
    row = {"messages": [{"role": "user", "content": f"제 번호는 {PHONE}이고 메일은 {MAIL} 입니다. 기억해 주세요."},
                        {"role": "assistant", "content": "네, 잘 기억해 두겠습니다. 다른 도움이 필요하신가요?"}]}
    near = json.loads(json.dumps(row))
    near["messages"][1]["content"] += " 감사합니다."
    invalid = {"messages": [{"role": "user", "content": f"연락처 {PHONE}"}]}
    raw = folder / "raw.jsonl"
    raw.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in (row, near, invalid)) + "\n", encoding="utf-8")
    kept = folder / "kept.jsonl"
    sftdata.dedup([raw], kept)
    return kept


def test_personal_information_is_masked_in_the_list_the_pair_and_the_source_unless_show_pii(tmp_path):
    kept = _pii_chain(tmp_path)
    for show in (False, True):
        handle = sftdata.review([kept], port=0, show_pii=show)
        try:
            pages = [_text(handle.url), _text(handle.url + "api/rows")]
            pages += [_text(handle.url + f"row/{n}") for n in range(3)]
            pages += [_text(handle.url + "source?" + urllib.parse.urlencode({"file": name, "line": line}))
                      for name, line in ((str(kept), 1), (str(tmp_path / "raw.jsonl"), 3))]
        finally:
            handle.stop()
        assert "id=\"pair\"" in "".join(pages)  # the duplicate beside its kept row is among them
        for page in pages:
            assert (PHONE in page or MAIL in page) is show, page[:300]


def test_every_token_cell_shows_something_a_byte_of_a_korean_character_too(tmp_path, smollm2_tokenizer_dir):
    data = tmp_path / "ko.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "안녕하세요"},
                                             {"role": "assistant", "content": "반갑습니다"}]}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    handle = sftdata.review([data], port=0, tokenizer=str(smollm2_tokenizer_dir), template="chat")
    try:
        page = _text(handle.url + "row/0")
    finally:
        handle.stop()
    cells = re.findall(r'<span class="tok ([^"]*)" data-id="\d+"[^>]*>([^<]*)</span>', page)
    assert cells and any("part" in kind.split() for kind, _ in cells)  # SmolLM2 splits a Hangul syllable
    assert all(text or "part" in kind.split() for kind, text in cells)  # no cell is an empty, unexplained box
    assert 'rel="icon" href="data:,"' in page  # no favicon request (refused without the token)


def test_a_slow_page_does_not_hold_up_the_others(tmp_path, smollm2_tokenizer_dir):
    """A row page of a long record takes seconds (every token labelled); the stylesheet, the list and a decision on
    another row are answered meanwhile (pages are made in worker threads, not on the server's event loop)."""
    import threading

    long = {"messages": [{"role": "user", "content": "긴 글을 요약해 주세요. " + "가나다라마바사 아자차카타파하. " * 2000},
                         {"role": "assistant", "content": "요약입니다."}]}
    short = {"messages": [{"role": "user", "content": "안녕"}, {"role": "assistant", "content": "안녕하세요"}]}
    data = tmp_path / "long.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in (long, short)) + "\n", encoding="utf-8")
    handle = sftdata.review([data], port=0, tokenizer=str(smollm2_tokenizer_dir), template="chat")
    try:
        # the token pass is still counting the long row's tokens: a decision on a whole filter is refused, not
        # made on the rows counted so far
        bulk = urllib.request.Request(handle.url + "bulk", data=b"min_trained=1&action=reject")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bulk)
        assert refused.value.code == 409 and "still reading" in refused.value.read().decode()
        slow = threading.Thread(target=_text, args=(handle.url + "row/0",))
        slow.start()
        time.sleep(0.3)
        others = [handle.url + "static/review.css", handle.url, handle.url + "row/1"]
        for url in others:
            _text(url)
        request = urllib.request.Request(handle.url + "row/1/decide", data=b"action=accept")
        with urllib.request.urlopen(request) as response:
            assert response.status == 200
        assert slow.is_alive()  # every other request was answered while the long page was still being made
        slow.join(120)
    finally:
        handle.stop()


def test_the_bulk_form_waits_until_every_row_is_counted(tmp_path, smollm2_tokenizer_dir):
    rows = [{"messages": [{"role": "user", "content": f"질문 {n} " + "가나다라 " * 400},
                          {"role": "assistant", "content": "답입니다."}]} for n in range(40)]
    data = tmp_path / "many.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    handle = sftdata.review([data], port=0, tokenizer=str(smollm2_tokenizer_dir), template="chat")
    try:
        first = _text(handle.url + "?min_trained=1")
        while not json.loads(_text(handle.url + "api/status"))["tokens_done"]:
            time.sleep(0.05)
        later = _text(handle.url + "?min_trained=1")
    finally:
        handle.stop()
    assert 'id="bulk-wait"' in first and 'id="bulk-apply"' not in first
    assert 'id="bulk-apply"' in later and 'id="bulk-wait"' not in later


def test_a_convert_reject_names_its_label_file_element_and_its_source_link_works(tmp_path):
    example = Path(__file__).resolve().parents[1] / "examples" / "ko_qa"
    out = tmp_path / "records.jsonl"
    sftdata.convert([example / "labels"], out, mapping=example / "mapping.yaml")
    handle = sftdata.review([out], port=0)
    try:
        rows = json.loads(_text(handle.url + "api/rows"))["rows"]
        rejected = _text(handle.url + f"row/{next(r['row'] for r in rows if r['outcome'] == 'rejected')}")
        kept = _text(handle.url + "row/0")
        link = re.search(r'id="source"><a href="[^"]*/source\?([^"]+)"', kept)
        assert link is not None
        assert "김치" in _text(handle.url + "source?" + link.group(1).replace("&amp;", "&"))
    finally:
        handle.stop()
    assert re.search(r'id="source">[^<]*LIFE_0003\.json#1</dd>', rejected)  # an element, not a line: no link


def test_the_findings_pass_marks_personal_information_in_kept_rejected_and_duplicate_rows(tmp_path):
    from sftdata.reviewing.index import finding_codes
    from sftdata.reviewing.session import Options, Review

    kept = _pii_chain(tmp_path)
    review = Review([kept], Options())
    review.start()
    review.index.join()
    assert review.index.done and review.index.checked
    columns = review.index.columns()
    outcomes = {}
    for row in range(len(review.index)):
        outcomes.setdefault(int(columns.outcome[row]), []).append("pii" in finding_codes(int(columns.findings[row])))
    assert len(outcomes) == 3 and all(all(marks) for marks in outcomes.values())  # kept, rejected, duplicate


def test_a_refused_decision_on_a_whole_filter_shows_the_list_with_the_reason(tmp_path):
    kept = _pii_chain(tmp_path)
    handle = sftdata.review([kept], port=0, show_pii=True)
    try:
        while not json.loads(_text(handle.url + "api/status"))["checked"]:
            time.sleep(0.05)
        bulk = urllib.request.Request(handle.url + "bulk", data=b"outcome=rejected&action=restore")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bulk)
        page = refused.value.read().decode()
    finally:
        handle.stop()
    assert refused.value.code == 422 and 'id="error"' in page and "nothing decided" in page
    assert "must end with an assistant turn" in page and 'class="row o-rejected"' in page  # the filter's rows
    assert not (tmp_path / "kept.review.jsonl").exists()
