"""`sftdata review` without a browser: the row index over an output chain, the token view against pretokenize's
own masks, the review file under kill -9, review-apply's counts and bytes, and the server's gate (token, files,
methods, CSP) over real HTTP. The browser tests are tests/test_review_browser.py."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import orjson
import pytest

import sftdata
from sftdata.reviewing.chain import open_chain
from sftdata.reviewing.decisions import Action, Decision, ReviewFile, RowKey, load, now, review_path
from sftdata.reviewing.index import Outcome, RowIndex, finding_codes
from sftdata.reviewing.query import Filter
from sftdata.reviewing.session import DecisionRefused, Options, Review
from sftdata.reviewing.tokens import Tokens
from support.review_data import write_chain


@pytest.fixture
def chain(tmp_path: Path) -> dict[str, Path]:
    return write_chain(tmp_path)


def _index(paths: list[Path]) -> RowIndex:
    index = RowIndex(open_chain(paths))
    index.start()
    index.join()
    return index


def test_the_index_holds_every_row_of_the_chain_with_its_outcome_and_offset(chain):
    index = _index([chain["kept"]])
    columns = index.columns()
    kept = chain["kept"].read_bytes().splitlines()
    assert len(index) == len(kept) + 1 + 2  # the kept rows, the invalid row, the two duplicates
    outcomes = [Outcome(o).value for o in (list(Outcome)[int(v)] for v in columns.outcome)]
    assert outcomes == ["kept"] * len(kept) + ["rejected"] + ["duplicate"] * 2
    for row, line in enumerate(kept):
        assert index.read(row) == line  # read back by offset, byte for byte
    assert [index.reasons[int(r)] for r in columns.reason[len(kept):]] == ["chat_rule", "exact_duplicate",
                                                                           "near_duplicate"]
    assert int(columns.flags[0]) & 1  # the Korean rows hold reasoning


def test_a_pretokenized_file_is_counted_in_its_bytes_as_pretokenize_wrote_it(chain, tmp_path, smollm2_tokenizer_dir):
    out = tmp_path / "tok.jsonl"
    sftdata.pretokenize([chain["kept"]], out, tokenizer=str(smollm2_tokenizer_dir), template="chat", max_seq_length=4096)
    index = _index([out])
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [int(t) for t in index.columns().trained] == [sum(r["assistant_masks"]) for r in rows]
    assert all(finding_codes(int(f)) == [] for f in index.columns().findings)


def test_the_token_view_trains_exactly_what_pretokenize_trains(chain, tmp_path, smollm2_tokenizer_dir):
    out = tmp_path / "tok.jsonl"
    sftdata.pretokenize([chain["kept"]], out, tokenizer=str(smollm2_tokenizer_dir), template="chat", max_seq_length=4096)
    tokens = Tokens(str(smollm2_tokenizer_dir), "chat")
    written = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    records = [orjson.loads(line) for line in chain["kept"].read_bytes().splitlines()]
    assert len(written) == len(records)
    for record, row in zip(records, written):
        view = tokens.of_record(record, sftdata.items.Locator("kept.jsonl", 1))
        assert [c.id for c in view.cells] == row["input_ids"]
        assert view.trained_ids == [i for i, m in zip(row["input_ids"], row["assistant_masks"]) if m]
        assert any(c.kind == "eos" for c in view.cells)  # the stop token is marked


def test_a_truncation_point_is_where_pretokenize_cuts(chain, tmp_path, smollm2_tokenizer_dir):
    out = tmp_path / "cut.jsonl"
    sftdata.pretokenize([chain["kept"]], out, tokenizer=str(smollm2_tokenizer_dir), template="chat", max_seq_length=60,
                        on_overflow="truncate")
    tokens = Tokens(str(smollm2_tokenizer_dir), "chat", max_seq_length=60)
    record = orjson.loads(chain["kept"].read_bytes().splitlines()[0])
    view = tokens.of_record(record, sftdata.items.Locator("kept.jsonl", 1))
    assert view.cut_at is not None
    kept_ids = [c.id for c in view.cells if not c.cut]
    assert kept_ids == orjson.loads(out.read_bytes().splitlines()[0])["input_ids"]


def test_an_edit_is_checked_by_the_record_schema_and_a_kept_row_cannot_be_restored(chain):
    review = Review([chain["kept"]], Options(reviewer="민지"))
    review.start()
    review.index.join()
    with pytest.raises(DecisionRefused, match="must end with an assistant turn"):
        review.decide([0], Action.edit, edit=json.dumps({"messages": [{"role": "user", "content": "질문"}]}))
    with pytest.raises(DecisionRefused, match="not JSON"):
        review.decide([0], Action.edit, edit="{")
    with pytest.raises(DecisionRefused, match="only a dropped row"):
        review.decide([0], Action.restore)
    assert load(review.path).history == []  # nothing refused was saved
    made = review.decide([1], Action.reject, note="답이 틀림")
    assert load(review.path).latest[made[0].key].note == "답이 틀림"


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from sftdata.reviewing.decisions import Action, Decision, ReviewFile, RowKey, now
    review = ReviewFile(Path(sys.argv[1]), [Path(sys.argv[2])])
    n = 0
    while True:
        n += 1
        review.decide([Decision(RowKey("kept.jsonl", n), Action.reject, "검토자", now(), "메모 " * 20000)])
        print(n, flush=True)
""")


def test_the_review_file_survives_kill_9_mid_save(tmp_path, chain):
    path = tmp_path / "kept.review.jsonl"
    said_saved = 0
    for attempt in range(5):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(chain["kept"])],
                                   stdout=subprocess.PIPE, text=True)
        lines = [int(process.stdout.readline())]  # writing: killed 0.1 to 0.3 s later, mid-save most likely
        deadline = time.monotonic() + 0.1 + attempt * 0.05
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if line:
                lines.append(int(line))
        process.send_signal(signal.SIGKILL)
        process.wait()
        rest = process.stdout.read().split()
        said_saved += len(lines) + len(rest)
        state = load(path)
        assert len(state.history) >= said_saved  # nothing it said it saved is lost
        blob = path.read_bytes()
        for whole in blob.split(b"\n")[:-1]:
            if whole:
                orjson.loads(whole)  # raises on a half line, except a last one without its newline
    assert said_saved > 5
    ReviewFile(path, [chain["kept"]]).decide([])  # a later writer starts on a line of its own


def _decided(chain) -> Path:
    review = Review([chain["kept"]], Options(reviewer="민지"))
    review.start()
    review.index.join()
    kept = len(chain["kept"].read_bytes().splitlines())
    record = orjson.loads(review.index.read(2))
    record["messages"][2]["content"] = "고친 답변입니다."
    review.decide([0], Action.accept)
    review.decide([1], Action.reject, note="사실과 다름")
    review.decide([2], Action.edit, edit=json.dumps(record, ensure_ascii=False))
    review.decide([kept + 1], Action.restore)  # the exact duplicate
    return review.path


def test_apply_writes_the_decisions_balanced_and_byte_identical_on_rerun(chain, tmp_path):
    path = _decided(chain)
    out = tmp_path / "reviewed.jsonl"
    result = sftdata.review_apply(path, out)
    s = result.summary()
    kept = chain["kept"].read_bytes().splitlines()
    assert s["read"] == len(kept) + 3
    assert s["written"] == len(kept) - 1 + 1 and s["rejected"] == 2 and s["deduplicated"] == 1
    assert s["read"] == s["written"] + s["rejected"] + s["filtered"] + s["deduplicated"]
    written = out.read_bytes().splitlines()
    assert written[0] == kept[0] and kept[1] not in written
    assert orjson.loads(written[1])["messages"][2]["content"] == "고친 답변입니다."
    dupes = chain["dupes"].read_bytes().splitlines()
    assert orjson.loads(written[-1]) == orjson.loads(dupes[0])["raw"]  # the restored duplicate, last
    rejects = [orjson.loads(line) for line in (tmp_path / "reviewed.rejects.jsonl").read_bytes().splitlines()]
    assert {r["reason"] for r in rejects} == {"rejected_in_review", "chat_rule", "near_duplicate"}
    meta = orjson.loads((tmp_path / "reviewed.meta.json").read_bytes())
    assert meta["review"] | {"sha256": None} == {"file": path.name, "sha256": None, "reviewers": ["민지"],
                                                 "accepted": 1, "rejected": 1, "edited": 1, "restored": 1,
                                                 "stale": 0}
    first = (out.read_bytes(), (tmp_path / "reviewed.rejects.jsonl").read_bytes())
    sftdata.review_apply(path, out)
    assert (out.read_bytes(), (tmp_path / "reviewed.rejects.jsonl").read_bytes()) == first
    card = Path(sftdata.card(out, tmp_path / "README.md").output).read_text(encoding="utf-8")
    assert "review-apply" in card and "accepted 1, rejected 1, edited 1, restored 1" in card


def _get(url: str, data: bytes | None = None) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data)) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_server_refuses_requests_without_the_token_and_files_outside_the_chain(chain):
    handle = sftdata.review([chain["kept"]], port=0, reviewer="민지")
    try:
        url = handle.url
        root = url.split("/", 3)
        base = f"{root[0]}//{root[2]}"
        status, headers, body = _get(url)
        assert status == 200 and "default-src 'self'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"] and b"<script>" not in body
        for path in ("/", "/static/review.js", "/row/0", "/api/status", "/x" + url.split("/")[3] + "/"):
            assert _get(base + path)[0] == 403, path
        assert _get(url[:-3] + "AAA/")[0] == 403  # a wrong token
        assert _get(url + "static/review.js")[0] == 200
        assert _get(url + "static/../chain.py")[0] in (403, 404)
        assert _get(url + "source?" + urllib.parse.urlencode({"file": "/etc/passwd", "line": 1}))[0] == 403
        assert _get(url + "source?" + urllib.parse.urlencode({"file": str(chain["kept"]), "line": 1}))[0] == 200
        assert _get(url + "source?" + urllib.parse.urlencode({"file": str(chain["raw"]), "line": 1}))[0] == 200
        assert _get(url + "row/0/decide")[0] == 405  # state changes are POSTs
        assert _get(base + "/row/0/decide", b"action=reject")[0] == 403
        status, _, body = _get(url + "row/0/decide", urllib.parse.urlencode(
            {"action": "edit", "record": json.dumps({"messages": []})}).encode())
        assert status == 422 and "record schema refuses" in body.decode()
        assert _get(url + "row/0/decide", b"action=accept")[0] == 200  # after its redirect to the row page
        assert load(review_path(chain["kept"])).latest
        assert _get(url + "bulk", b"outcome=duplicate&action=restore&note=%EB%8B%A4%EB%A5%B8+%EC%A7%88%EB%AC%B8")[0] == 200
        restored = [d for d in load(review_path(chain["kept"])).history if d.action is Action.restore]
        assert [(d.key.file, d.note) for d in restored] == [("kept.dupes.jsonl", "다른 질문")] * 2
        with urllib.request.urlopen(url + "?" + urllib.parse.urlencode({"file": "kept.dupes.jsonl", "line": 2})) as r:
            assert r.url.endswith(f"/row/{len(chain['kept'].read_bytes().splitlines()) + 2}")  # jump to a line
    finally:
        handle.stop()
    assert not handle.running


def test_read_only_refuses_every_decision_and_a_host_beyond_loopback_says_the_token_is_needed(chain):
    handle = sftdata.review([chain["kept"]], port=0, read_only=True, host="0.0.0.0")
    try:
        assert any("needs the token" in note for note in handle.notes)
        url = handle.url.replace("0.0.0.0", "127.0.0.1")
        assert _get(url + "row/0/decide", b"action=accept")[0] == 422
        assert b"decide" not in _get(url + "row/0")[2].split(b"<main>")[1].split(b"</main>")[0].replace(
            b'id="decision"', b"")
    finally:
        handle.stop()


def test_the_cli_prints_one_json_line_with_the_url_and_serves_until_stopped(chain):
    process = subprocess.Popen([sys.executable, "-m", "sftdata.cli", "review", str(chain["kept"]), "--no-open",
                                "--json", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        url = json.loads(line)["url"]
        assert url.startswith("http://127.0.0.1:")
        assert _get(url + "api/status")[0] == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(20)
    assert process.returncode == 0, process.stderr.read()


def test_personal_information_is_masked_unless_show_pii(tmp_path):
    data = tmp_path / "pii.jsonl"
    row = {"messages": [{"role": "user", "content": "제 번호는 010-1234-5678 입니다. 기억해 주세요."},
                        {"role": "assistant", "content": "네, 알겠습니다."}]}
    data.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    for show, expected in ((False, False), (True, True)):
        review = Review([data], Options(show_pii=show))
        review.start()
        review.index.join()
        found = review.row(0)
        assert ("010-1234-5678" in found.record_json) is expected and found.pii_masked is not expected
        assert finding_codes(int(review.index.columns().findings[0])) == ["pii"]


def test_a_contaminated_row_sits_beside_its_eval_item_with_the_shared_text(chain, tmp_path):
    eval_file = tmp_path / "eval.jsonl"
    record = orjson.loads(chain["kept"].read_bytes().splitlines()[3])
    question = record["messages"][1]["content"]
    eval_file.write_text(json.dumps({"instruction": question, "output": "설날과 추석이 있습니다."}, ensure_ascii=False)
                         + "\n", encoding="utf-8")
    out = tmp_path / "clean.jsonl"
    sftdata.decontaminate([chain["kept"]], out, against=[eval_file])
    review = Review([out], Options())
    review.start()
    review.index.join()
    rows = review.select(Filter(outcome="contaminated"))
    assert len(rows) == 1
    found = review.row(int(rows[0]))
    assert found.pair is not None and found.pair.title == "eval item" and found.pair.found
    assert question in "".join(text for text, same in found.pair.theirs if same)  # the shared text, marked


def test_a_folder_of_part_files_is_reviewed_with_each_parts_side_files(tmp_path):
    import sftdata.reviewing.query as query

    folder = tmp_path / "out"
    folder.mkdir()
    for n in range(2):
        source = tmp_path / f"in{n}"
        source.mkdir()
        write_chain(source)
        sftdata.dedup([source / "raw.jsonl"], folder / f"part-{n:05d}.jsonl")
    review = Review([folder], Options())
    review.start()
    review.index.join()
    assert review.path == folder / "_review.jsonl"
    names = [p.name for p in review.chain.parts]
    assert names == ["part-00000.jsonl", "part-00000.rejects.jsonl", "part-00000.dupes.jsonl",
                     "part-00001.jsonl", "part-00001.rejects.jsonl", "part-00001.dupes.jsonl"]
    assert len(review.select(query.Filter(outcome="duplicate"))) == 4
    assert len(review.select(query.Filter(file="part-00001.jsonl"))) == len(review.index) // 2
    assert len(review.select(query.Filter(finding="invalid_rows"))) == 2
    assert len(query.search(review.index, "김치찌개")) == 4  # kept twice, and its near duplicate in each part


def test_read_only_writes_nothing_beside_the_data(chain):
    review = Review([chain["kept"]], Options(read_only=True))
    review.start()
    review.index.join()
    with pytest.raises(DecisionRefused, match="read-only"):
        review.decide([0], Action.accept)
    assert not review.path.exists()


def test_a_pretokenized_row_page_shows_its_own_ids_and_mask(chain, tmp_path, smollm2_tokenizer_dir):
    out = tmp_path / "tok.jsonl"
    sftdata.pretokenize([chain["kept"]], out, tokenizer=str(smollm2_tokenizer_dir), template="chat", max_seq_length=4096)
    row = orjson.loads(out.read_bytes().splitlines()[0])
    for tokenizer in (str(smollm2_tokenizer_dir), None):
        handle = sftdata.review([out], tokenizer=tokenizer, port=0)
        try:
            status, _, body = _get(handle.url + "row/0")
            assert status == 200
            page = body.decode()
            if tokenizer:
                page = page.split('<div class="stream">', 1)[1].split("</div>", 1)[0]  # the tokens, not the legend
                trained = page.count('class="tok k-trained') + page.count('class="tok k-eos')
                assert trained == sum(row["assistant_masks"])
                assert page.count('class="tok ') == len(row["input_ids"])
            else:
                assert " ".join(map(str, row["input_ids"])) in page
            _, _, listing = _get(handle.url + "?finding=nothing_trained")
            assert b"0 rows match" in listing
        finally:
            handle.stop()


def test_a_partial_last_line_is_ignored_on_load_and_cut_by_the_next_writer(tmp_path, chain):
    path = tmp_path / "kept.review.jsonl"
    review = ReviewFile(path, [chain["kept"]])
    review.decide([Decision(RowKey("kept.jsonl", 1), Action.accept, "a", now())])
    whole = path.read_bytes()
    with path.open("ab") as f:
        f.write(b'{"file":"kept.jsonl","line":2,"action":"rej')  # a write cut short
    state = load(path)
    assert state.partial and [d.key.line for d in state.history] == [1]
    ReviewFile(path, [chain["kept"]]).decide([Decision(RowKey("kept.jsonl", 3), Action.accept, "b", now())])
    assert path.read_bytes().startswith(whole) and b"rej" not in path.read_bytes()
    assert [d.key.line for d in load(path).history] == [1, 3]
