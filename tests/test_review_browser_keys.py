"""Keyboard review in Debian's Chromium against the real server: back from a row (u), the list is on that row's
page with that row selected, so j / k go on from where the reviewer was."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import sftdata
from support.browser import chromium


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


def test_back_from_a_row_keeps_the_place_in_the_list(browser, tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"질문 {n}"}, {"role": "assistant", "content": f"답 {n}"}]}
            for n in range(120)]
    data = Path(tmp_path / "many.jsonl")
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    handle = sftdata.review([data], port=0)
    page = browser.new_page()
    try:
        page.goto(handle.url + "row/57")
        page.keyboard.press("u")
        page.wait_for_url("**/?page=1#r57")
        assert page.locator("tr.selected").get_attribute("id") == "r57"
        page.keyboard.press("j")
        page.keyboard.press("Enter")
        page.wait_for_url("**/row/58**")
        page.goto(handle.url + "row/4?back=" + "q%3D%EC%A7%88%EB%AC%B8")  # from the list of a search
        page.keyboard.press("u")
        page.wait_for_url("**/?q=*page=0#r4")
        assert page.locator("tr.selected").get_attribute("id") == "r4"
    finally:
        page.close()
        handle.stop()
