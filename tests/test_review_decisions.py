"""Decisions in `sftdata review` that must not let bad rows into the curated output: a restored row comes back
only as a record the schema accepts, into records data; an edit is what the row page shows from then on."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

import sftdata
from sftdata.reviewing.decisions import Action, Decision, ReviewFile, now
from sftdata.reviewing.index import Outcome
from sftdata.reviewing.query import Filter
from sftdata.reviewing.session import DecisionRefused, Options, Review
from support.review_data import write_chain


def _review(paths: list[Path], **options) -> Review:
    review = Review(paths, Options(reviewer="민지", **options))
    review.start()
    review.index.join()
    return review


def test_a_rejected_row_the_schema_refuses_cannot_be_restored_only_edited(tmp_path):
    chain = write_chain(tmp_path)
    review = _review([chain["kept"]])
    invalid = int(review.select(Filter(outcome=Outcome.rejected.value))[0])
    with pytest.raises(DecisionRefused, match="must end with an assistant turn.*|edit it instead"):
        review.decide([invalid], Action.restore)
    duplicate = int(review.select(Filter(outcome=Outcome.duplicate.value))[0])
    review.decide([duplicate], Action.restore)  # a duplicate is a valid record: it comes back
    fixed = {"messages": [{"role": "user", "content": "답이 없는 질문"}, {"role": "assistant", "content": "이제 답이 있습니다."}]}
    review.decide([invalid], Action.edit, edit=json.dumps(fixed, ensure_ascii=False))
    out = tmp_path / "reviewed.jsonl"
    sftdata.review_apply(review.path, out)
    written = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert fixed in written and all(m["messages"][-1]["role"] == "assistant" for m in written)


def test_review_apply_keeps_a_row_dropped_when_a_hand_made_restore_names_an_invalid_record(tmp_path):
    chain = write_chain(tmp_path)
    review = _review([chain["kept"]])
    invalid = review.key(int(review.select(Filter(outcome=Outcome.rejected.value))[0]))
    ReviewFile(review.path, review.chain.data).decide([Decision(invalid, Action.restore, "손", now())])
    out = tmp_path / "reviewed.jsonl"
    s = sftdata.review_apply(review.path, out).summary()
    assert b"\xeb\x8b\xb5\xec\x9d\xb4 \xec\x97\x86\xeb\x8a\x94" not in out.read_bytes()  # 답이 없는: still dropped
    assert s["read"] == s["written"] + s["rejected"] + s["filtered"] + s["deduplicated"] and s["rejected"] == 1


def test_a_dropped_row_of_pretokenized_data_cannot_be_restored_into_it(tmp_path, smollm2_tokenizer_dir):
    chain = write_chain(tmp_path)
    out = tmp_path / "tok.jsonl"
    sftdata.pretokenize([chain["raw"]], out, tokenizer=str(smollm2_tokenizer_dir), template="chat",
                        max_seq_length=4096)
    review = _review([out])
    dropped = review.select(Filter(outcome=Outcome.rejected.value))
    assert len(dropped)
    with pytest.raises(DecisionRefused, match="token ids, not records"):
        review.decide([int(dropped[0])], Action.restore)


def test_an_edited_row_is_shown_as_edited_and_a_second_edit_starts_from_the_first(tmp_path, smollm2_tokenizer_dir):
    chain = write_chain(tmp_path)
    review = _review([chain["kept"]], tokenizer=str(smollm2_tokenizer_dir), template="chat")
    record = orjson.loads(chain["kept"].read_bytes().splitlines()[0])
    record["messages"][2]["content"] = "고친 답변입니다."
    review.decide([0], Action.edit, edit=json.dumps(record, ensure_ascii=False))
    found = review.row(0)
    assert found.edited and found.record == record and "고친 답변입니다." in found.record_json
    assert found.turns[2].content == "고친 답변입니다."
    assert review.tokens is not None
    view = review.tokens.of_record(found.record, sftdata.items.Locator("kept.jsonl", 1))
    assert "고친" in "".join(c.text for c in view.cells if c.kind == "trained")
    assert not review.row(1).edited


def test_a_decision_on_a_row_that_changed_since_is_left_out_and_said(tmp_path):
    chain = write_chain(tmp_path)
    review = _review([chain["kept"]])
    review.decide([1], Action.reject, note="틀림")
    lines = chain["kept"].read_bytes().splitlines()
    kept_second = lines[1]
    lines[1], lines[2] = lines[2], lines[1]  # the step rerun: line 2 now holds another row
    chain["kept"].write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "reviewed.jsonl"
    result = sftdata.review_apply(review.path, out)
    assert result.decisions.stale == 1 and result.decisions.rejected == 0
    assert kept_second in out.read_bytes().splitlines()  # the row rejected is not the one line 2 holds now
    assert orjson.loads((tmp_path / "reviewed.meta.json").read_bytes())["review"]["stale"] == 1
    again = _review([chain["kept"]])
    shown = again.row(1)
    assert shown.decision is None and shown.stale is not None and shown.stale.note == "틀림"


@pytest.mark.parametrize("relative", [False, True])  # names as given (a team runs the steps in its data folder)
def test_a_decontaminate_report_is_reviewed_and_rejecting_a_match_drops_its_row(tmp_path, monkeypatch, relative):
    chain = write_chain(tmp_path)
    record = orjson.loads(chain["kept"].read_bytes().splitlines()[3])
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text(json.dumps({"instruction": record["messages"][1]["content"], "output": "설날과 추석."},
                                    ensure_ascii=False) + "\n", encoding="utf-8")
    report = tmp_path / "report.jsonl"
    if relative:
        monkeypatch.chdir(tmp_path)
        chain["kept"], eval_file, report = Path("kept.jsonl"), Path("eval.jsonl"), Path("report.jsonl")
    sftdata.decontaminate([chain["kept"]], report, against=[eval_file], action="report")
    assert not report.exists() and (tmp_path / "report.matches.jsonl").is_file()
    review = _review([report])  # the report's OUT: its matches beside the rows they name
    match = int(review.select(Filter(outcome=Outcome.contaminated.value))[0])
    found = review.row(match)
    assert found.pair is not None and found.pair.found and found.pair.title == "eval item"
    made = review.decide([match], Action.reject, note="평가 문항")
    assert made[0].key.file == "kept.jsonl" and made[0].key.line == 4  # the data row the match names
    assert review.row(3).decision is not None  # the data row shows the decision too
    out = tmp_path / "reviewed.jsonl"
    s = sftdata.review_apply(review.path, out).summary()
    assert orjson.dumps(record) not in out.read_bytes().splitlines() and s["rejected"] >= 1
    assert len(out.read_bytes().splitlines()) == len(chain["kept"].read_bytes().splitlines()) - 1
