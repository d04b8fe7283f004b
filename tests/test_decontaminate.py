"""`sftdata decontaminate`: KorQuAD-style eval items written here, near copies of them in training data
(particles changed, spaces moved, one word replaced, the passage quoted) found, and training rows that
share only common phrases with the eval set kept. Eval files as released: KorQuAD 1.0 and KLUE-MRC
(data[].paragraphs[].qas[]) and KorQuAD 2.x (data[].qas[]) read whole, by preset or by a map with a nested
explode path, and a map that reads fewer items than the file holds warned about, never silently."""
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
    assert meta["decontaminate"]["threshold"] == 0.73 and meta["against"][0]["sha256"]


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


@pytest.mark.parametrize("ngram", [1, 2])
def test_an_ngram_too_short_to_mean_a_copy_is_refused_with_the_smallest_that_works(tmp_path, korquad, ngram):
    """`--ngram 2` said "use 5 or more" though 3 and 4 are accepted: the hint names 3, which runs."""
    eval_file, mapping = korquad
    train = _write(tmp_path / "train.jsonl", [*CONTAMINATED, *CLEAN])
    done = CliRunner().invoke(app, ["decontaminate", str(train), "--against", str(eval_file), "--against-map",
                                    str(mapping), "--action", "report", "--ngram", str(ngram)])
    assert done.exit_code == 2 and f"--ngram {ngram}: is too short to mean a copy. use 3 or more" in done.output
    with pytest.raises(SftDataError, match=f"ngram={ngram}: is too short to mean a copy. use 3 or more"):
        sftdata.decontaminate([train], None, against=[eval_file], against_map=str(mapping), action="report",
                              ngram=ngram)
    smallest = sftdata.decontaminate([train], None, against=[eval_file], against_map=str(mapping), action="report",
                                     ngram=3).summary()
    assert smallest["read"] == len(CONTAMINATED) + len(CLEAN)


# -- eval files as released: lists in lists -------------------------------------------------------------

ARTICLES = [
    ("세포", [
        ("미토콘드리아는 세포 호흡을 통해 에너지를 생산하는 세포 소기관으로, 자체 DNA를 가지고 있어 세포 안에서 스스로 분열할 수 있다.",
         ["에너지를 생산하는 세포 소기관은 무엇인가요?", "미토콘드리아가 스스로 분열할 수 있는 까닭은?",
          "미토콘드리아가 에너지를 만드는 과정의 이름은?"]),
        ("엽록체는 식물 세포에서 빛에너지를 이용해 포도당을 합성하는 광합성이 일어나는 곳이며 초록색 색소인 엽록소를 담고 있다.",
         ["광합성이 일어나는 식물 세포의 기관은 어디인가?", "엽록체에 들어 있는 초록색 색소는?"]),
        ("리보솜은 전령 RNA의 염기 서열을 읽어 아미노산을 이어 붙이는 단백질 합성 장소로, 세포질과 소포체 표면에서 발견된다.",
         ["단백질 합성이 일어나는 장소는 어디인가요?", "리보솜이 읽는 RNA의 종류는 무엇인가?",
          "리보솜이 발견되는 두 곳은 어디인가?"]),
    ]),
    ("훈민정음", [
        ("훈민정음은 조선의 제4대 임금 세종이 1443년에 창제하고 1446년에 반포한 문자 체계로, 백성이 쉽게 익혀 쓰도록 만들어졌다.",
         ["세종대왕이 훈민정음을 창제한 연도는 언제인가?", "훈민정음이 반포된 해는?"]),
        ("훈민정음 해례본은 1940년 경상북도 안동에서 발견되었으며 1997년 유네스코 세계기록유산으로 등재되었다.",
         ["훈민정음 해례본이 발견된 지역은 어디인가요?", "해례본이 세계기록유산에 오른 해는 언제인가?"]),
    ]),
]
QUESTIONS = [q for _, paragraphs in ARTICLES for _, qs in paragraphs for q in qs]
NESTED_MAP = """to: qa
explode: data[].paragraphs[].qas[]
as: qa
fields:
  question: data[].paragraphs[].qas[].question
  context: data[].paragraphs[].context
  answer: qa.answers[0].text
"""


def _squad_file(path: Path, id_key: str = "id", impossible: int = 0) -> Path:
    """A KorQuAD 1.0 / KLUE-MRC file as released: one JSON object, data[].paragraphs[].qas[]. With `impossible`,
    every `impossible`-th question has no answer, only plausible_answers (SQuAD 2.0, KLUE's is_impossible)."""
    data, k = [], 0
    for title, paragraphs in ARTICLES:
        article = {"title": title, "paragraphs": []}
        for context, qs in paragraphs:
            qas = []
            for q in qs:
                k += 1
                answer = [{"text": context[:5], "answer_start": 0}]
                none = bool(impossible) and k % impossible == 0
                qas.append({id_key: f"q-{k}", "question": q, "answers": [] if none else answer,
                            **({"plausible_answers": answer, "is_impossible": none, "question_type": 3 if none else 1}
                               if impossible else {})})
            article["paragraphs"].append({"context": context, "qas": qas})
        data.append(article)
    path.write_bytes(orjson.dumps({"version": "KorQuAD_v1.0_dev", "data": data}))
    return path


def _copies(tmp_path: Path) -> Path:
    """Training rows: every eval question copied, and rows about other things."""
    return _write(tmp_path / "train.jsonl", [*({"instruction": q, "output": "답"} for q in QUESTIONS), *CLEAN])


@pytest.mark.parametrize("how", ["preset", "map"])
def test_korquad_file_as_released_yields_every_question(tmp_path, how):
    eval_file = _squad_file(tmp_path / "KorQuAD_v1.0_dev.json")
    (tmp_path / "nested.yaml").write_text(NESTED_MAP, encoding="utf-8")
    given = {"against_preset": "korquad"} if how == "preset" else {"against_map": str(tmp_path / "nested.yaml")}
    result = sftdata.decontaminate([_copies(tmp_path)], tmp_path / "o.jsonl", against=[eval_file], **given)
    s = result.summary()
    rate = s["eval"][str(eval_file)]
    assert len(QUESTIONS) == 12 and (rate["items"], rate["held"], rate["found"]) == (12, 12, 12)
    assert rate["warning"] is None and rate["rejected"] == 0
    assert (s["filtered"], s["written"]) == (12, len(CLEAN))
    dropped = _lines(tmp_path / "o.rejects.jsonl")
    assert sorted(d["eval"]["element"] for d in dropped) == list(range(12))  # each question, numbered in file order


def test_a_map_that_reads_fewer_items_than_the_file_holds_says_so(tmp_path):
    eval_file = _squad_file(tmp_path / "korquad.json")
    one_per_article = tmp_path / "flat.yaml"  # the map: one level of explode over nested articles
    one_per_article.write_text("to: qa\nexplode: data\nfields:\n  question: item.paragraphs[0].qas[0].question\n"
                               "  answer: item.paragraphs[0].qas[0].answers[0].text\n", encoding="utf-8")
    result = sftdata.decontaminate([_copies(tmp_path)], None, against=[eval_file], against_map=str(one_per_article),
                                   action="report")
    rate = result.summary()["eval"][str(eval_file)]
    assert (rate["items"], rate["held"]) == (2, 12)
    assert "read 2 eval items, but the file holds 12 objects with a 'question' key (12 at data[].paragraphs[].qas[])" \
        in rate["warning"] and "--against-preset korquad" in rate["warning"]
    done = CliRunner().invoke(app, ["decontaminate", str(_copies(tmp_path)), "--against", str(eval_file),
                                    "--against-map", str(one_per_article), "--action", "report"])
    assert done.exit_code == 0, done.output
    assert "warning:" in done.output and "holds 12 objects" in done.output

    # a map whose explode path is not in the file: an error naming the map, its reject and where the items are
    paragraphs = tmp_path / "paragraphs.yaml"
    paragraphs.write_text("to: qa\nexplode: paragraphs\nas: p\nfields:\n  question: p.qas[0].question\n"
                          "  answer: p.qas[0].answers[0].text\n", encoding="utf-8")
    with pytest.raises(SftDataError, match=r"no eval items read as against_map=.*paragraphs\.yaml.*paragraphs: "
                       r"missing.*12 at data\[\]\.paragraphs\[\]\.qas\[\]"):
        sftdata.decontaminate([_copies(tmp_path)], None, against=[eval_file], against_map=str(paragraphs),
                              action="report")

    # a branch the nested path cannot follow is a reject, counted and named, and the rest is read
    raw = orjson.loads(eval_file.read_bytes())
    del raw["data"][1]["paragraphs"][0]["qas"]
    eval_file.write_bytes(orjson.dumps(raw))
    rate = sftdata.decontaminate([_copies(tmp_path)], None, against=[eval_file], against_preset="korquad",
                                 action="report").summary()["eval"][str(eval_file)]
    assert (rate["items"], rate["rejected"], rate["held"]) == (10, 1, 10)
    assert "1 rejected" in rate["warning"] and "data[1].paragraphs[0].qas: missing" in rate["warning"]


def test_klue_mrc_preset_reads_unanswerable_questions_too(tmp_path):
    eval_file = _squad_file(tmp_path / "klue-mrc-v1.1_dev.json", id_key="guid", impossible=3)
    result = sftdata.decontaminate([_copies(tmp_path)], tmp_path / "o.jsonl", against=[eval_file],
                                   against_preset="klue-mrc")
    rate = result.summary()["eval"][str(eval_file)]
    assert (rate["items"], rate["found"], rate["warning"]) == (12, 12, None)
    from sftdata.ingest.mapping import Mapper, resolve_spec
    from sftdata.ingest.readers import expand_sources, read_items
    records = [m.record for item in read_items(expand_sources([eval_file]))
               for m in Mapper(resolve_spec("klue-mrc", None)).map(item)]
    assert [r.id for r in records] == [f"q-{k}" for k in range(1, 13)]
    assert records[2].answer == records[2].context[:5] and records[2].context == ARTICLES[0][1][0][0]


def test_korquad2_preset_reads_questions_under_each_article(tmp_path):
    eval_file = tmp_path / "KorQuAD_2.1_dev_00.json"
    eval_file.write_bytes(orjson.dumps({"version": "KorQuAD_2.1_dev", "data": [
        {"title": title, "url": "https://ko.wikipedia.org/wiki/" + title, "context": "<html>…</html>",
         "qas": [{"id": f"{title}-{j}", "question": q, "answer": {"text": "답", "answer_start": 0}}
                 for context, qs in paragraphs for j, q in enumerate(qs)]} for title, paragraphs in ARTICLES]}))
    rate = sftdata.decontaminate([_copies(tmp_path)], None, against=[eval_file], against_preset="korquad2",
                                 action="report").summary()["eval"][str(eval_file)]
    assert (rate["items"], rate["found"], rate["held"], rate["warning"]) == (12, 12, 12, None)
    with pytest.raises(SftDataError, match="korquad2.*pass --against-preset korquad"):  # 1.0's layout, 2.x preset
        sftdata.decontaminate([_copies(tmp_path)], None, against=[_squad_file(tmp_path / "v1.json")],
                              against_preset="korquad2", action="report")


def test_a_one_word_edit_of_a_question_is_dropped_at_the_default(tmp_path):
    """The issue's pair: the asked word at the end replaced (`무엇` → `어디`) left 74% covered under 0.8; the
    default now comes from bench/decontaminate_bench.py, and the ending past the edit counts."""
    eval_file = _write(tmp_path / "eval.jsonl", [
        {"question": "에너지를 생산하는 세포 소기관은 무엇인가요?", "answer": "미토콘드리아"},
        {"question": "세포에서 에너지를 생산하는 세포 소기관은 무엇인가요?", "answer": "미토콘드리아"},
        {"question": "대한민국의 수도는 어디인가요?", "answer": "서울"}])
    train = _write(tmp_path / "train.jsonl", [
        {"instruction": "에너지를 생산하는 세포 소기관은 어디인가요?", "output": "미토콘드리아입니다."},
        {"instruction": "세포에서 에너지를 만드는 세포 소기관은 무엇인가요?", "output": "미토콘드리아"},
        {"instruction": "일본의 수도는 어디인가요?", "output": "도쿄"},  # another question in the same mould: kept
        {"instruction": "식물 세포에만 있는 세포 소기관은 무엇인가요?", "output": "엽록체"}])
    out = tmp_path / "clean.jsonl"
    s = sftdata.decontaminate([train], out, against=[eval_file]).summary()
    assert (s["filtered"], s["written"]) == (2, 2)
    assert [r["instruction"] for r in _lines(out)] == ["일본의 수도는 어디인가요?", "식물 세포에만 있는 세포 소기관은 무엇인가요?"]
    covered = [d["containment"] for d in _lines(tmp_path / "clean.rejects.jsonl")]
    assert all(c >= 0.85 for c in covered), covered


def test_a_passage_shared_by_many_questions_is_one_item_and_still_found(tmp_path):
    """A paragraph with more questions than --common is indexed once, so its n-grams are not taken for
    boilerplate and a training row quoting the passage is found."""
    context = ARTICLES[1][1][0][0] + " " + ARTICLES[1][1][1][0]
    eval_file = _write(tmp_path / "many.jsonl", [{"title": "t", "context": context, "qas": [
        {"id": str(k), "question": f"질문 {k}번: 이 글에서 {k}번째로 나오는 낱말은?", "answers": [{"text": "훈민정음"}]}
        for k in range(30)]}])
    (tmp_path / "m.yaml").write_text(MAPPING, encoding="utf-8")
    train = _write(tmp_path / "train.jsonl", [{"instruction": "다음 글을 요약하세요.", "input": context[10:90],
                                               "output": "요약"}])
    s = sftdata.decontaminate([train], None, against=[eval_file], against_map=str(tmp_path / "m.yaml"),
                              action="report").summary()
    assert s["contaminated_rows"] == 1 and s["eval"][str(eval_file)]["items"] == 30
