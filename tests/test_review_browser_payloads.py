"""Script and HTML payloads where the first browser test puts none: file names, tool names and tool-call arguments,
the reviewer's name, reject and bulk notes, and an edit saved and shown again; in Debian's Chromium against the real
server (tests/support/browser.py), checked in the page: nothing runs, everything reads as text."""
from __future__ import annotations

import json
import signal

import pytest

import sftdata
from support.browser import chromium, serve_review
from support.review_data import PAYLOADS

NAMES = ['<img src=x onerror="window.__pwned=1">', "{{7*7}}"]  # data file names (a slash cannot be in one)


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


def _tool_row(payload: str) -> dict:
    tool = {"type": "function", "function": {"name": payload, "description": payload,
                                             "parameters": {"type": "object", "properties": {payload: {"type": "string"}}}}}
    return {"tools": [tool], "messages": [
        {"role": "user", "content": "도구를 불러 주세요"},
        {"role": "assistant", "content": "", "reasoning_content": payload,
         "tool_calls": [{"type": "function", "function": {"name": payload, "arguments": {payload: payload}}}]},
        {"role": "tool", "name": payload, "content": payload},
        {"role": "assistant", "content": "도구 결과입니다 " + payload}]}


def test_payloads_in_file_names_tool_calls_reviewer_notes_and_edits_never_run(browser, tmp_path):
    outputs = []
    for n, name in enumerate(NAMES):
        raw = tmp_path / f"{name}.jsonl"
        rows = [_tool_row(p) for p in PAYLOADS] + [_tool_row(PAYLOADS[0])]  # the last, a duplicate
        raw.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
        outputs.append(tmp_path / f"{name}.out{n}.jsonl")
        sftdata.dedup([raw], outputs[-1])
    reviewer = '"><svg onload="window.__pwned=1">{{7*7}}'
    server, url = serve_review(outputs, "--reviewer", reviewer)
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    def clean() -> None:
        assert page.evaluate("window.__pwned") is None
        assert page.locator("main img, main svg, main script, header img, header svg").count() == 0

    try:
        page.goto(url)
        assert all(name in page.inner_text("main") for name in NAMES) and reviewer in page.inner_text("header")
        clean()
        rows = page.locator("tr.row").count()
        for row in range(rows):
            page.goto(url + f"row/{row}")
            clean()
            text = page.inner_text("main")
            assert any(p in text for p in PAYLOADS) and any(name in text for name in NAMES), row
        note = '</textarea><script>window.__pwned=1</script>{{7*7}}'
        page.goto(url + "row/0")
        page.fill("#reject-note", note)
        page.click("#reject")
        assert note in page.inner_text("#history") and reviewer in page.inner_text("#decision")
        clean()
        record = json.loads(page.input_value("#edit-record"))
        record["messages"][-1]["content"] = note
        page.fill("#edit-record", json.dumps(record, ensure_ascii=False))
        page.click("#save-edit")
        assert note in page.inner_text("#record") and note in page.input_value("#edit-record")
        clean()
        page.goto(url + "?q=" + "pwned")
        page.fill("form.bulk input[name=note]", note)
        page.click("#bulk-apply")
        clean()
        page.goto(url + "?outcome=duplicate")
        page.click("tr.row a")
        assert "kept row" in page.inner_text("#pair") and note in page.inner_text("#history")
        clean()
        assert dialogs == [] and "49" not in page.inner_text("header")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(20)
        page.close()
