"""`sftdata review` in a real browser: the OS's Chromium driven by Playwright against the real server (started by
the CLI in its own process, so it can be killed -9 and restarted), over a Korean chat chain with reasoning turns,
duplicates, an invalid row and rows of script and HTML payloads."""
from __future__ import annotations

import json
import signal

import orjson
import pytest

import sftdata
from support.browser import chromium, serve_review
from support.review_data import PAYLOADS, write_chain

TEMPLATE = "chatml_think"  # SmolLM2's ChatML tokens, with the reasoning turn rendered and trained


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


def _wait_tokens(page, url: str) -> None:
    for _ in range(200):
        status = json.loads(page.request.get(url + "api/status").text())
        if status["done"] and status["tokens_done"]:
            return
        page.wait_for_timeout(100)
    raise AssertionError("the token pass did not finish")


def _trained(page) -> list[int]:
    cells = page.eval_on_selector_all(".stream .tok", "els => els.map(e => [Number(e.dataset.id), e.className])")
    return [i for i, cls in cells if ("k-trained" in cls or "k-eos" in cls) and "cut" not in cls.split()]


def test_a_reviewer_sees_what_trains_overrules_and_the_decisions_survive_a_kill(browser, tmp_path,
                                                                                 smollm2_tokenizer_dir):
    chain = write_chain(tmp_path)
    pretokenized = tmp_path / "tok.jsonl"
    sftdata.pretokenize([chain["kept"]], pretokenized, tokenizer=str(smollm2_tokenizer_dir), template=TEMPLATE,
                        max_seq_length=4096)
    expected = [orjson.loads(line) for line in pretokenized.read_bytes().splitlines()]
    options = ("--tokenizer", str(smollm2_tokenizer_dir), "--template", TEMPLATE, "--reviewer", "민지")
    server, url = serve_review([chain["kept"]], *options)
    page = browser.new_page()
    try:
        _wait_tokens(page, url)
        page.goto(url)
        assert page.locator("tr.row").count() == len(expected) + 3
        # the Korean reasoning row, token by token: the trained tokens are pretokenize's
        page.goto(url + "row/0")
        assert "사용자가" in page.inner_text("#record") and page.locator(".stream .tok.k-eos").count() == 1
        row = expected[0]
        assert _trained(page) == [i for i, m in zip(row["input_ids"], row["assistant_masks"]) if m]
        assert "사용자가" in "".join(page.eval_on_selector_all(".stream .tok.k-trained", "els => els.map(e => e.textContent)"))
        assert page.locator(".stream .tok.special").count() >= 4  # <|im_start|>, <|im_end|> shown as control tokens
        # filter to a finding the data has (the invalid row: invalid_rows), and keyboard navigation
        page.goto(url)
        page.select_option("select[name=outcome]", "duplicate")
        page.click("form.filters button[type=submit]")
        assert page.locator("tr.row").count() == 2
        assert set(page.eval_on_selector_all("td.outcome", "els => els.map(e => e.textContent)")) == {"duplicate"}
        page.keyboard.press("j")
        page.keyboard.press("Enter")
        page.wait_for_url("**/row/*")
        assert page.inner_text("#pair h2").startswith("kept row")
        assert "exact duplicate" in page.inner_text("#pair") and page.locator("#theirs mark").count() >= 1
        assert "서울의 봄 날씨는" in page.inner_text("#theirs")
        page.click("#restore")
        assert "restore by 민지" in page.inner_text("#decision")
        duplicate_row = int(page.url.split("/row/")[1].split("?")[0])
        # reject one, edit one (a refused edit first, with its reason)
        page.goto(url + "row/1")
        page.fill("#reject-note", "사실과 다름")
        page.click("#reject")
        assert "reject by 민지" in page.inner_text("#decision")
        page.goto(url + "row/2")
        page.fill("#edit-record", json.dumps({"messages": [{"role": "user", "content": "질문만"}]}, ensure_ascii=False))
        page.click("#save-edit")
        assert "must end with an assistant turn" in page.inner_text("#error")
        record = orjson.loads(chain["kept"].read_bytes().splitlines()[2])
        record["messages"][2]["content"] = "고친 답변입니다."
        page.fill("#edit-record", json.dumps(record, ensure_ascii=False))
        page.click("#save-edit")
        assert "edit by 민지" in page.inner_text("#decision")
        page.goto(url + "?" + "finding=invalid_rows")
        assert page.locator("tr.row").count() == 1 and "chat_rule" in page.inner_text("tr.row")
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    # a fresh server finds every decision made before the kill
    server, url = serve_review([chain["kept"]], *options)
    try:
        page.goto(url + f"row/{duplicate_row}")
        assert "restore by 민지" in page.inner_text("#decision")
        page.goto(url + "row/1")
        assert "사실과 다름" in page.inner_text("#history")
        page.goto(url)
        assert "3 decided" in page.inner_text("#summary")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(20)
        page.close()
    out = tmp_path / "reviewed.jsonl"
    done = sftdata.review_apply(tmp_path / "kept.review.jsonl", out)
    s = done.summary()
    assert (s["read"], s["written"], s["rejected"], s["deduplicated"]) == (len(expected) + 3, len(expected), 2, 1)
    assert done.decisions.rejected == done.decisions.edited == done.decisions.restored == 1
    assert "고친 답변입니다." in out.read_text(encoding="utf-8")


def test_script_and_html_payloads_in_every_field_show_as_text_and_never_run(browser, tmp_path, smollm2_tokenizer_dir):
    chain = write_chain(tmp_path)
    server, url = serve_review([chain["kept"]], "--tokenizer", str(smollm2_tokenizer_dir), "--template", TEMPLATE)
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        _wait_tokens(page, url)
        page.goto(url + "?q=pwned")
        hostile = page.eval_on_selector_all("tr.row", "els => els.map(e => e.getAttribute('data-href'))")
        assert len(hostile) == len(PAYLOADS)
        assert page.evaluate("window.__pwned") is None
        for href in hostile:
            page.goto(url.split("/", 3)[0] + "//" + url.split("/", 3)[2] + href)
            text = page.inner_text("main")
            assert any(payload in text for payload in PAYLOADS)  # shown as text, in the record
            if "7*7" in page.input_value("#edit-record"):
                assert "{{ 7*7 }} {% raw %}pwned{% endraw %}" in text  # data is never template code
            assert page.evaluate("window.__pwned") is None
            assert page.locator("main img, main svg, main script").count() == 0
            page.fill("#edit-record", page.input_value("#edit-record"))  # the record round-trips through the form
        assert dialogs == []
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(20)
        page.close()
