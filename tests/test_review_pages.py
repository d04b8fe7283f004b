"""What the review pages show over real HTTP (the in-process server `sftdata.review` starts): personal information
masked on every page and endpoint unless --show-pii."""
from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from pathlib import Path

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
