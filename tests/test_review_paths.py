"""Where `sftdata review` finds the files of a chain, whatever folder it runs in: a meta's relative names (written
where its step ran) mean the files that step read, never a file of the same name in the server's working folder;
a review file names its data beside itself, so review-apply runs from anywhere."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import orjson
import pytest

import sftdata
from sftdata.errors import InputError
from sftdata.reviewing.decisions import Action
from sftdata.reviewing.query import Filter
from sftdata.reviewing.session import Options, Review
from support.review_data import write_chain


def _relative_chain(tmp_path: Path, monkeypatch) -> Path:
    """A team's chain made with relative names in data/: dedup, then decontaminate against an eval file."""
    data = tmp_path / "data"
    data.mkdir()
    write_chain(data)
    record = orjson.loads((data / "kept.jsonl").read_bytes().splitlines()[3])
    (data / "eval.jsonl").write_text(json.dumps({"instruction": record["messages"][1]["content"],
                                                 "output": "설날과 추석이 있습니다."}, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    monkeypatch.chdir(data)
    sftdata.dedup(["raw.jsonl"], "kept.jsonl")
    sftdata.decontaminate(["kept.jsonl"], "clean.jsonl", against=["eval.jsonl"])
    return data


def test_meta_named_files_are_found_beside_the_data_not_in_the_working_folder(tmp_path, monkeypatch):
    data = _relative_chain(tmp_path, monkeypatch)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "raw.jsonl").write_text('{"messages": [{"role": "user", "content": "다른 파일"}]}\n', encoding="utf-8")
    (elsewhere / "eval.jsonl").write_text('{"instruction": "다른 평가", "output": "다른 답"}\n', encoding="utf-8")
    monkeypatch.chdir(elsewhere)
    for given, outcome, other in (("kept.jsonl", "duplicate", "raw.jsonl"), ("clean.jsonl", "contaminated",
                                                                             "eval.jsonl")):
        review = Review([Path("../data") / given], Options())
        review.start()
        review.index.join()
        found = review.row(int(review.select(Filter(outcome=outcome))[0]))
        assert found.pair is not None and found.pair.found, (given, found.pair)
        assert "다른" not in "".join(text for text, _ in found.pair.theirs)  # not the decoy of the same name
        assert review.chain.allowed(other) == (data / other).resolve()
        assert review.chain.allowed(given) == (data / given).resolve()  # a kept row's source link
        assert review.chain.allowed(elsewhere / other) is None


def test_review_apply_runs_from_any_folder(tmp_path, monkeypatch):
    data = _relative_chain(tmp_path, monkeypatch)
    review = Review([Path("kept.jsonl")], Options(reviewer="민지"))
    review.start()
    review.index.join()
    review.decide([0], Action.reject, note="틀림")
    monkeypatch.chdir(tmp_path)
    s = sftdata.review_apply(data / "kept.review.jsonl", tmp_path / "out.jsonl").summary()
    assert s["rejected"] >= 1 and s["read"] == s["written"] + s["rejected"] + s["filtered"] + s["deduplicated"]
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)
    monkeypatch.chdir(moved / "..")
    again = sftdata.review_apply(Path("moved/kept.review.jsonl"), tmp_path / "out2.jsonl").summary()
    assert again["written"] == s["written"]  # a folder moved with its review file still applies


def test_two_files_of_the_same_name_are_refused_as_a_decision_could_not_tell_them_apart(tmp_path, monkeypatch):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_chain(tmp_path / name)
    with pytest.raises(InputError, match="two files named kept.jsonl"):
        Review([tmp_path / "a" / "kept.jsonl", tmp_path / "b" / "kept.jsonl"], Options())
    monkeypatch.chdir(tmp_path)
    assert len(Review([tmp_path / "a" / "kept.jsonl", Path("a/kept.jsonl")], Options()).chain.data) == 1  # one file


def test_a_step_input_named_like_its_output_is_read_as_the_input(tmp_path, monkeypatch):
    """`cd a && sftdata dedup kept.jsonl -o ../b/kept.jsonl`: the dupes name the kept row as kept.jsonl, the input,
    which is not the part of the same name under review."""
    source = tmp_path / "a"
    source.mkdir()
    chain = write_chain(source)
    shutil.copy(chain["raw"], source / "kept.jsonl")  # the input now has the output's name
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(source)
    sftdata.dedup(["kept.jsonl"], "../b/kept.jsonl")
    review = Review([tmp_path / "b" / "kept.jsonl"], Options())
    review.start()
    review.index.join()
    found = review.row(int(review.select(Filter(outcome="duplicate"))[-1]))
    kept_line = orjson.loads((tmp_path / "b" / "kept.dupes.jsonl").read_bytes().splitlines()[-1])["duplicate_of"]
    expected = orjson.loads((source / "kept.jsonl").read_bytes().splitlines()[kept_line["line"] - 1])
    assert found.pair is not None and found.pair.found
    theirs = "".join(text for text, _ in found.pair.theirs)
    assert expected["messages"][1]["content"] in theirs
    assert review.chain.allowed("kept.jsonl") == (source / "kept.jsonl").resolve()
    assert review.chain.part_names["kept.jsonl"] == (tmp_path / "b" / "kept.jsonl").resolve()
