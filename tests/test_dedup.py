"""sftdata/curate/minhash.py and sftdata/curate/dedup.py: exact and near duplicates, Korean included, in bounded memory."""
from __future__ import annotations

import json
import re
import sys
import unicodedata
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import sftdata
from sftdata.cli import app
from sftdata.curate.dedup import dedup, dupes_path
from sftdata.curate.minhash import (
    DEFAULT_THRESHOLD,
    Sketcher,
    find_duplicates,
    group_edges,
    lsh_params,
    normalise,
    shingle_sizes,
)
from sftdata.curate.verify import estimate
from support.peak_rss import run_measured

# One word changed in each pair; a word-based ROUGE tokeniser ([a-z0-9]+) sees no token at all.
KO_PAIRS = [
    ("서울은 대한민국의 수도이며 가장 큰 도시입니다.", "서울은 대한민국의 수도이며 가장 오래된 도시입니다."),
    ("다음 문장을 영어로 번역하세요: 오늘 날씨가 정말 좋네요.", "다음 문장을 영어로 번역하세요: 오늘 날씨가 정말 춥네요."),
    ("한국의 전통 음식 중에서 김치의 역사와 만드는 방법을 자세히 설명해 주세요.",
     "한국의 전통 음식 중에서 김치의 역사와 만드는 과정을 자세히 설명해 주세요."),
]
KO_DISTINCT = ["부산에서 가볼 만한 해변을 추천해 주세요.", "파이썬으로 피보나치 수열을 구하는 함수를 작성하세요.",
               "광합성의 원리를 초등학생에게 설명해 주세요.", "조선 시대의 과거 제도에 대해 알려 주세요.",
               "커피와 차의 카페인 함량을 비교해 주세요."]


def _jaccard(a: str, b: str, n: int) -> float:
    x = {a[i:i + n] for i in range(max(1, len(a) - n + 1))}
    y = {b[i:i + n] for i in range(max(1, len(b) - n + 1))}
    return len(x & y) / len(x | y)


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_korean_one_word_edits_are_near_duplicates_that_word_rouge_misses(tmp_path) -> None:
    for a, b in KO_PAIRS:
        assert re.findall(r"[a-z0-9]+", a.lower()) == []  # rouge_score's tokenizer keeps nothing of Hangul
        assert _jaccard(normalise(a), normalise(b), 3) >= DEFAULT_THRESHOLD
    rows = [{"question": q, "answer": f"답변 {i}"} for i, q in enumerate(KO_DISTINCT + [a for a, _ in KO_PAIRS])]
    rows += [{"question": b, "answer": "다른 답변"} for _, b in KO_PAIRS]
    source = _write(tmp_path / "ko.jsonl", rows)
    result = dedup([source], tmp_path / "out.jsonl", fields=["question"])
    dupes = _lines(dupes_path(tmp_path / "out.jsonl"))
    assert [d["line"] for d in dupes] == [9, 10, 11]
    assert [d["duplicate_of"]["line"] for d in dupes] == [6, 7, 8]
    assert all(d["reason"] == "near_duplicate" and 0.6 < d["similarity"] < 1 and not d["exact"] for d in dupes)
    assert result.counts.balanced() and result.summary()["written"] == 8


def test_shingle_size_follows_the_script() -> None:
    assert shingle_sizes(["서울은 대한민국의 수도", "describe the process", "描述泰姬陵的建筑风格", "한국어 문장에 API 단어", "mostly english 한국"]).tolist() == [3, 5, 3, 3, 5]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from([" ", "\n", "\t", "\r", "\x0b", "\x1c", "\x85", "\xa0", "\u2028",
                                         "\u3000", "\u200b", "a", "B", "ß", "가", "ﬁ", "\u0301"]) | st.characters(),
               max_size=24))
def test_normalise_is_nfkc_casefold_and_whitespace_collapsed(text) -> None:
    """normalise takes a shortcut when a text has no whitespace but single spaces and line ends: it must give
    what the definition (NFKC, casefold, every run of str.isspace characters one space, none at the ends) gives."""
    assert normalise(text) == re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()


def test_every_whitespace_character_but_the_space_is_unprintable() -> None:
    """What normalise's shortcut relies on: a printable text holds no whitespace other than " "."""
    assert {c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace() and c.isprintable()} == {" "}


def test_real_data_exact_and_chinese_near_duplicates(shared_data, tmp_path) -> None:
    en, zh = tmp_path / "en.jsonl", tmp_path / "zh.jsonl"
    sftdata.convert([shared_data / "alpaca_en_demo.json"], en, preset="alpaca")
    sftdata.convert([shared_data / "alpaca_zh_demo.json"], zh, preset="alpaca")
    result = dedup([en], tmp_path / "en.out.jsonl")
    summary = result.summary()
    assert (summary["read"], summary["written"], summary["deduplicated"]) == (999, 985, 14)
    assert summary["exact"] == 14 and summary["near"] == 0  # no distinct pair is near 0.7 (max 0.44)
    dupes = _lines(dupes_path(tmp_path / "en.out.jsonl"))
    assert len(dupes) == 14 and all(d["similarity"] == 1.0 and d["duplicate_of"]["line"] < d["line"] for d in dupes)
    kept = _lines(tmp_path / "en.out.jsonl")
    first = orjson.loads(en.read_bytes().splitlines()[0])
    assert kept[0] == first  # rows are written as they were read
    result = dedup([zh], tmp_path / "zh.out.jsonl", fields=["instruction", "input"])
    near = [d for d in _lines(dupes_path(tmp_path / "zh.out.jsonl")) if not d["exact"]]
    assert [d["raw"]["instruction"] for d in near] == ["请描述泰姬陵的建筑风格。"] or \
        [d["raw"]["instruction"] for d in near] == ["描述泰姬陵的建筑风格。"]
    assert near[0]["similarity"] == 0.9 and result.summary()["deduplicated"] == 9
    # by default the answers are compared too: the two Taj Mahal prompts have different answers, so both stay
    assert dedup([zh], tmp_path / "zh.all.jsonl").summary()["deduplicated"] == 8


def test_against_removes_rows_found_in_another_file(shared_data, tmp_path) -> None:
    rows = orjson.loads((shared_data / "alpaca_en_demo.json").read_bytes())[:200]
    train = _write(tmp_path / "train.jsonl", rows[:150])
    evals = _write(tmp_path / "eval.jsonl", rows[140:200] + [{"instruction": rows[3]["instruction"] + " Be brief.",
                                                             "output": "x"}])
    result = dedup([train], tmp_path / "out.jsonl", against=[evals])
    dupes = _lines(dupes_path(tmp_path / "out.jsonl"))
    reasons = {d["reason"] for d in dupes}
    assert reasons == {"in_against_file"}
    assert {d["line"] for d in dupes} >= set(range(141, 151))
    assert all(d["duplicate_of"]["file"] == str(evals) for d in dupes)
    assert result.counts.balanced() and result.summary()["against_rows"] == 61
    assert result.meta["against"][0]["path"] == str(evals)


def test_fields_choose_what_is_compared(tmp_path) -> None:
    inputs = ["Whales migrate thousands of kilometres.", "The stock market fell sharply on Monday.",
              "Photosynthesis turns light into sugar.", "서울의 지하철은 아홉 개 노선이 있다.", "Bees dance to share where food is."]
    rows = [{"instruction": "Summarise the text.", "input": text,
             "output": "Same answer for all of them, which is long enough to compare."} for text in inputs]
    source = _write(tmp_path / "in.jsonl", rows)
    assert dedup([source], tmp_path / "a.jsonl").summary()["deduplicated"] == 0
    assert dedup([source], tmp_path / "b.jsonl", fields=["output"]).summary()["deduplicated"] == 4
    assert dedup([source], tmp_path / "c.jsonl", fields=["instruction"]).summary()["exact"] == 4


def test_the_default_compares_what_a_row_teaches_not_a_shared_passage(tmp_path) -> None:
    """Several questions about one passage (the README's example) are different rows: by default a Q&A row is
    its question and answer, never the context alone; --fields question,context still finds them alike."""
    repo = Path(__file__).resolve().parents[1]
    records = tmp_path / "records.jsonl"
    sftdata.convert([repo / "examples/ko_qa/labels"], records, mapping=repo / "examples/ko_qa/mapping.yaml")
    result = dedup([records], tmp_path / "d.jsonl")
    assert (result.summary()["written"], result.summary()["compared"]) == (11, "exchange")
    assert dedup([records], tmp_path / "c.jsonl", fields=["question", "context"]).summary()["deduplicated"] >= 5
    passage = "제주도는 한국에서 가장 큰 섬으로, 한라산과 해안 절경으로 유명하며 해마다 많은 관광객이 찾는다. " * 4
    system = "당신은 친절한 한국어 도우미입니다. 질문에 정확하고 간결하게 답하세요. " * 4
    rows = [{"question": q, "context": passage, "answer": a} for q, a in
            [("제주도에서 가장 높은 산은?", "한라산"), ("제주도의 유명한 것은?", "해안 절경"), ("제주도는 어떤 섬인가?", "가장 큰 섬")]]
    rows += [{"messages": [{"role": "system", "content": system}, {"role": "user", "content": q},
                           {"role": "assistant", "content": a}]} for q, a in
             [("오늘 날씨 어때?", "맑아요"), ("점심 뭐 먹을까?", "비빔밥"), ("제주도 가는 법?", "비행기")]]
    rows += [{"instruction": "다음 문장의 감정을 분류하세요.", "input": text, "output": label} for text, label in
             [("정말 최고의 하루였다", "긍정"), ("너무 실망스러웠다", "부정"), ("정말 최고의 하루였다", "긍정")]]
    source = _write(tmp_path / "mixed.jsonl", rows)
    result = dedup([source], tmp_path / "m.jsonl")
    assert [d["line"] for d in _lines(dupes_path(tmp_path / "m.jsonl"))] == [9]  # only the repeated instruction row
    assert result.summary()["exact"] == 1
    assert dedup([source], tmp_path / "p.jsonl", fields=["system", "context"]).summary()["deduplicated"] == 4


def test_invalid_rows_are_rejected_and_counts_balance(tmp_path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"instruction": "a", "output": "b"}\nnot json\n{"instruction": "", "output": "b"}\n'
                       b'{"instruction": "a", "output": "b"}\n')
    result = dedup([source], tmp_path / "out.jsonl")
    s = result.summary()
    assert (s["read"], s["written"], s["rejected"], s["deduplicated"]) == (4, 1, 2, 1)
    assert len(_lines(tmp_path / "out.rejects.jsonl")) == 2
    assert result.meta["counts"]["deduplicated"] == 1


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["the", "cat", "sat", "on", "a", "mat", "한국", "서울", "에서", "빠른", "dog"]),
                min_size=8, max_size=30), st.integers(0, 1000))
def test_estimate_tracks_true_jaccard(words, seed) -> None:
    rng = np.random.default_rng(seed)
    a = " ".join(words)
    edited = list(words)
    edited[int(rng.integers(len(edited)))] = "zebra"
    b = " ".join(edited)
    sk = Sketcher(seed=1).sketch([a, b])
    n = int(shingle_sizes([normalise(a)])[0])
    if n != int(shingle_sizes([normalise(b)])[0]):
        return
    truth = _jaccard(normalise(a), normalise(b), n)
    est = float(estimate(sk.sig, np.array([0]), np.array([1]))[0])
    assert abs(est - truth) < 0.2  # 128 permutations: standard error ~0.04


def test_lsh_catches_pairs_at_the_threshold() -> None:
    bands, rows = lsh_params(DEFAULT_THRESHOLD)
    assert bands * rows <= 128
    assert 1 - (1 - DEFAULT_THRESHOLD ** rows) ** bands > 0.8  # candidates at J = 0.7
    assert 1 - (1 - 0.3 ** rows) ** bands < 0.05  # few at J = 0.3


def test_band_keys_group_as_wide_keys_do() -> None:
    """group_edges sorts 32-bit keys packed with their rows, other keys with a stable argsort: the same edges."""
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 300, 5000).astype(np.uint32)  # many groups of many rows
    rows = np.sort(rng.choice(1 << 20, 5000, replace=False)).astype(np.int64)
    packed, stable = group_edges(keys, rows), group_edges(keys.astype(np.uint64), rows)
    assert len(packed) == 5000 - len(np.unique(keys)) and np.array_equal(packed, stable)
    assert set(map(tuple, packed.tolist())) == {(r, rows[keys == k].min()) for k, r in zip(keys.tolist(), rows.tolist())
                                                if r != rows[keys == k].min()}


def test_clusters_keep_the_first_and_point_to_it() -> None:
    texts = ["alpha beta gamma delta epsilon", "something unrelated here", "alpha beta gamma delta epsilon",
             "", "", "ALPHA  beta gamma delta epsilon"]
    matches = find_duplicates(Sketcher().sketch(texts), DEFAULT_THRESHOLD)
    assert matches.dup_of.tolist() == [-1, -1, 0, -1, -1, 0]  # empty texts are never duplicates
    assert matches.exact.tolist() == [False, False, True, False, False, True]  # case and spaces normalised


def test_sketches_are_deterministic_and_small() -> None:
    texts = [f"row {i} with some text" for i in range(100)]
    a, b = Sketcher().sketch(texts), Sketcher().sketch(texts)
    assert np.array_equal(a.bands, b.bands) and np.array_equal(a.sig, b.sig)
    per_row = (a.exact.nbytes + a.bands.nbytes + a.sig.nbytes + a.empty.nbytes) / len(texts)
    assert per_row < 300  # a full 128 x uint64 signature would be 1,024 bytes


def test_cli_dedup_json(tmp_path) -> None:
    source = _write(tmp_path / "in.jsonl", [{"question": q, "answer": "답"} for q in [KO_PAIRS[0][0], KO_PAIRS[0][1],
                                                                                     KO_DISTINCT[0]]])
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["dedup", str(source), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[0])
    assert summary["deduplicated"] == 1 and summary["near"] == 1
    assert json.loads(out.with_name("out.meta.json").read_text())["command"] == "dedup"
    bad = CliRunner().invoke(app, ["dedup", str(source), "-o", str(out), "--threshold", "0"])
    assert bad.exit_code == 2


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=60), st.sampled_from(["", "ab", "서울은 수도", "x" * 70])), min_size=1,
                max_size=12), st.integers(7, 40))
def test_sketches_do_not_depend_on_how_long_texts_are_cut(texts, group) -> None:
    """Long rows are sketched in overlapping pieces (bounded memory): the same sketches as whole."""
    import sftdata.curate.shingles as shingles

    texts = texts + [" ".join(texts) * 3]  # one text longer than the small group size
    whole = Sketcher(seed=1).sketch(texts)
    norm = [normalise(t) for t in texts]
    whole_sets = shingles.text_shingles(norm)
    saved = shingles._GROUP_CHARS
    shingles._GROUP_CHARS = group
    try:
        cut = Sketcher(seed=1).sketch(texts)
        sizes = shingle_sizes(norm)
        cut_sets = shingles.text_shingles(norm)
    finally:
        shingles._GROUP_CHARS = saved
    assert sizes.tolist() == shingle_sizes([normalise(t) for t in texts]).tolist()
    for name in ("exact", "bands", "sig", "empty"):
        assert np.array_equal(getattr(whole, name), getattr(cut, name)), name
    whole_order, cut_order = np.lexsort(whole_sets[::-1]), np.lexsort(cut_sets[::-1])
    for a, b in zip(whole_sets, cut_sets):  # the shingles verification compares, each once, too
        assert np.array_equal(a[whole_order], b[cut_order])


@pytest.mark.slow  # a 50 MB row through dedup in a measured process: ~16 s CPU
def test_a_50_mb_row_is_deduplicated_in_bounded_memory(tmp_path) -> None:
    """One 50 MB line (a hostile input) took 2 GB to sketch; cut into pieces it stays under 1 GB."""
    import random
    import sys

    rnd = random.Random(0)
    words = ["".join(rnd.choices("abcdefghij", k=6)) for _ in range(2000)]
    rows = [{"instruction": "hi", "output": "x"}, {"instruction": " ".join(rnd.choices(words, k=7_200_000)),
                                                   "output": "y"}, {"instruction": "HI", "output": "x"}]
    (tmp_path / "big.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    del rows
    done, peak_kib = run_measured([sys.executable, "-m", "sftdata.cli", "dedup", "big.jsonl", "-o", "out.jsonl",
                                   "--json"], cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert peak_kib < 1 << 20, f"peak RSS {peak_kib / 1024:.0f} MiB"
    summary = json.loads(done.stdout)
    assert (summary["written"], summary["deduplicated"]) == (2, 1)
    assert (tmp_path / "out.jsonl").stat().st_size > 50_000_000


def test_a_pair_of_huge_near_duplicate_rows_is_verified_in_bounded_memory(tmp_path) -> None:
    """Two 6M-character rows one word apart are verified exactly a share of the hash space at a time (one batch
    of their shingle sets would take gigabytes): dropped as a near duplicate, under 1 GB peak RSS."""
    import random
    import sys

    rnd = random.Random(1)
    words = ["".join(rnd.choices("abcdefghij", k=6)) for _ in range(3000)]
    big = rnd.choices(words, k=860_000)
    edited = list(big)
    edited[1000] = "zzzzzz"
    rows = [{"instruction": " ".join(big), "output": "y"}, {"instruction": "hi", "output": "x"},
            {"instruction": " ".join(edited), "output": "y"}]
    (tmp_path / "big.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    del rows, big, edited
    done, peak_kib = run_measured([sys.executable, "-m", "sftdata.cli", "dedup", "big.jsonl", "-o", "out.jsonl",
                                   "--json"], cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert peak_kib < 1 << 20, f"peak RSS {peak_kib / 1024:.0f} MiB"
    dupes = _lines(tmp_path / "out.dupes.jsonl")
    assert [(d["line"], d["duplicate_of"]["line"], d["exact"]) for d in dupes] == [(3, 1, False)]
    assert 0.999 < dupes[0]["similarity"] < 1


def test_huge_pairs_and_batches_give_the_same_exact_jaccard() -> None:
    """verify.jaccard's two ways (a batch of shingle sets; a huge pair through files by hash modulo k) agree with
    each other and with the n-gram sets of the normalised strings, for Korean, English and mixed rows."""
    import random

    import sftdata.curate.verify as verify

    rnd = random.Random(3)
    words = ["".join(rnd.choices("가나다라마바사아자차카", k=2)) for _ in range(300)] + "alpha beta gamma delta".split()
    texts = [" ".join(rnd.choices(words, k=rnd.randint(1, 50))) for _ in range(40)]
    texts += [t + " " + rnd.choice(words) for t in texts[:10]] + ["", "ab", "AB  c"]
    norm = [normalise(t) for t in texts]
    pairs = np.array([(i, j) for i in range(len(texts)) for j in range(i)], dtype=np.int64)

    def grams(t: str) -> set[tuple[int, str]]:
        n = 3 if sum("가" <= c <= "힣" for c in t) * 2 >= max(len(t.replace(" ", "")), 1) else 5
        t = t if len(t) >= n else t + "\0" * (n - len(t))
        return {(n, t[i:i + n]) for i in range(len(t) - n + 1)}

    sets = [grams(t) if t else set() for t in norm]
    truth = [len(sets[i] & sets[j]) / len(sets[i] | sets[j]) if sets[i] and sets[j] else 0.0 for i, j in pairs]
    batched = verify.jaccard(pairs, verify.MemoryTexts(norm))
    saved = verify.LARGE_CHARS
    verify.LARGE_CHARS = 40  # most pairs take the huge-pair way, in several parts
    try:
        large = verify.jaccard(pairs[::7], verify.MemoryTexts(norm))
    finally:
        verify.LARGE_CHARS = saved
    assert batched.tolist() == truth and large.tolist() == truth[::7]
