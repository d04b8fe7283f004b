"""`sftdata decontaminate`: KorQuAD-style eval items written here, near copies of them in training data
(particles changed, spaces moved, one word replaced, the passage quoted) found, and training rows that
share only common phrases with the eval set kept."""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

import sftdata
from sftdata.cli import app
from sftdata.errors import SftDataError

PASSAGES = [
    ("훈민정음은 조선의 제4대 임금 세종이 1443년에 창제하고 1446년에 반포한 문자 체계이다. 세종은 백성이 글을 몰라 억울한 일을 "
     "당하는 것을 안타깝게 여겨 집현전 학자들과 함께 새 문자를 연구하였다.",
     [("세종대왕이 훈민정음을 창제한 연도는 언제인가?", "1443년"), ("훈민정음이 반포된 해는?", "1446년")]),
    ("한라산은 제주특별자치도 중앙에 솟아 있는 화산으로 높이는 1,947미터이며 남한에서 가장 높은 산이다. 정상에는 백록담이라는 "
     "화구호가 있고 1970년에 국립공원으로 지정되었다.",
     [("한라산 정상에 있는 화구호의 이름은 무엇인가?", "백록담"), ("한라산이 국립공원으로 지정된 연도는?", "1970년")]),
    ("판소리는 한 명의 소리꾼이 고수의 북장단에 맞추어 소리와 아니리, 너름새를 섞어 가며 긴 이야기를 엮어 가는 음악이다. 2003년 "
     "유네스코 인류무형문화유산 걸작으로 선정되었다.",
     [("판소리에서 소리꾼의 장단을 맞추는 사람은 누구인가?", "고수"), ("판소리가 유네스코 인류무형문화유산으로 선정된 해는?", "2003년")]),
]
MAPPING = """to: qa
explode: qas
as: qa
fields:
  question: qa.question
  context: context
  answer: qa.answers[0].text
"""
CONTAMINATED = [
    {"instruction": "세종대왕은 훈민정음을 창제한 연도가 언제인가요?", "output": "1443년입니다."},  # particles changed
    {"instruction": "한라산 정상에있는 화구 호의 이름은 무엇 인가?", "output": "백록담"},  # spaces moved
    {"instruction": "판소리에서 소리꾼의 장단을 맞추는 연주자는 누구인가?", "output": "고수"},  # one word replaced
    {"instruction": "다음 글을 요약하세요.", "input": "한라산은 제주특별자치도 중앙에 솟아 있는 화산으로 높이는 1,947미터이며 "
     "남한에서 가장 높은 산이다. 정상에는 백록담이라는 화구호가 있다.", "output": "한라산은 남한 최고봉인 화산이다."},  # the passage quoted
]
CLEAN = [
    {"instruction": "세종대왕의 업적을 세 가지 설명하시오.", "output": "한글 창제, 측우기 발명, 집현전 설치"},
    {"instruction": "국립공원으로 지정된 산을 하나 알려 주세요.", "output": "지리산"},
    {"instruction": "설악산 정상의 이름은 무엇인가?", "output": "대청봉"},
    {"instruction": "판소리 다섯 마당을 알려 주세요.", "output": "춘향가, 심청가, 흥보가, 수궁가, 적벽가"},
    {"instruction": "What year was the Korean alphabet created?", "output": "1443"},
]


def _write(path: Path, rows: list) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture()
def korquad(tmp_path: Path) -> tuple[Path, Path]:
    rows = [{"title": f"doc{i}", "context": context,
             "qas": [{"id": f"{i}-{j}", "question": q, "answers": [{"text": a, "answer_start": context.find(a)}]}
                     for j, (q, a) in enumerate(qas)]}
            for i, (context, qas) in enumerate(PASSAGES)]
    (tmp_path / "korquad.yaml").write_text(MAPPING, encoding="utf-8")
    return _write(tmp_path / "korquad_dev.jsonl", rows), tmp_path / "korquad.yaml"


def test_near_copies_found_true_negatives_kept(tmp_path, korquad):
    eval_file, mapping = korquad
    train = _write(tmp_path / "train.jsonl", [CLEAN[0], CONTAMINATED[0], CLEAN[1], CONTAMINATED[1], CLEAN[2],
                                              CONTAMINATED[2], CLEAN[3], CONTAMINATED[3], CLEAN[4]])
    out = tmp_path / "clean.jsonl"
    result = sftdata.decontaminate([train], out, against=[eval_file], against_map=str(mapping))
    s = result.summary()
    assert (s["read"], s["written"], s["filtered"], s["rejected"]) == (9, 5, 4, 0) and result.counts.balanced()
    assert [r["instruction"] for r in _lines(out)] == [r["instruction"] for r in CLEAN]
    dropped = _lines(tmp_path / "clean.rejects.jsonl")
    assert [d["line"] for d in dropped] == [2, 4, 6, 8]
    assert [(d["eval"]["line"], d["eval"]["element"]) for d in dropped] == [(1, 0), (2, 0), (3, 0), (2, 0)]
    assert all(d["reason"] == "contaminated" and d["span"] and d["raw"] for d in dropped)
    assert "훈민정음을 창제한" in dropped[0]["span"]
    assert len(dropped[3]["span"]) >= 50  # the passage: one long shared run
    rate = s["eval"][str(eval_file)]
    assert (rate["items"], rate["found"], rate["rate"], rate["train_rows"]) == (6, 3, 0.5, 4)
    meta = orjson.loads((tmp_path / "clean.meta.json").read_bytes())
    assert meta["decontaminate"]["threshold"] == 0.8 and meta["against"][0]["sha256"]


def test_report_only_and_records_as_eval(tmp_path):
    eval_records = _write(tmp_path / "eval.jsonl", [{"question": q, "context": c, "answer": a}
                                                     for c, qas in PASSAGES for q, a in qas])
    train = _write(tmp_path / "train.jsonl", [*CONTAMINATED[:3], *CLEAN])
    result = sftdata.decontaminate([train], None, against=[eval_records], action="report", fields=["question"])
    s = result.summary()
    assert result.output is None and s["written"] == 8 and s["contaminated_rows"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.jsonl", "train.jsonl"]
    listed = sftdata.decontaminate([train], tmp_path / "r.jsonl", against=[eval_records], action="report",
                                   fields=["question"])
    assert listed.output is None and sorted(p.name for p in tmp_path.iterdir()) == [
        "eval.jsonl", "r.matches.jsonl", "r.meta.json", "train.jsonl"]
    assert [m["line"] for m in _lines(tmp_path / "r.matches.jsonl")] == [1, 2, 3]
    assert all(m["span"] and m["eval"]["line"] for m in _lines(tmp_path / "r.matches.jsonl"))


def test_word_ngrams_would_miss_what_character_ngrams_find():
    """The reason for character n-grams: with particles changed, the copied question shares few words."""
    from sftdata.curate.decontaminate import EvalIndex, matches
    from sftdata.items import Locator

    index = EvalIndex(files={"e": {"items": 0, "rejected": 0, "found": 0}})
    question = PASSAGES[0][1][0][0]
    index.add(question, Locator("e", 1), "e", None)
    index.prune(20)
    copy = CONTAMINATED[0]["instruction"]
    words = set(question.split())
    assert len(words & set(copy.split())) / len(words) < 0.5
    found = matches(copy, index, 0.8, 50)
    assert found is not None and found.containment >= 0.8


def test_errors_and_cli(tmp_path, korquad):
    eval_file, mapping = korquad
    train = _write(tmp_path / "train.jsonl", [*CONTAMINATED, *CLEAN])
    with pytest.raises(SftDataError, match="no eval items"):
        sftdata.decontaminate([train], tmp_path / "o.jsonl", against=[eval_file])  # nested rows, no mapping
    done = CliRunner().invoke(app, ["decontaminate", str(train), "--against", str(eval_file), "--against-map",
                                    str(mapping), "-o", str(tmp_path / "o.jsonl"), "--json"])
    assert done.exit_code == 0, done.output
    summary = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert summary["filtered"] == 4 and summary["by_reason"] == {"contaminated": 4}
