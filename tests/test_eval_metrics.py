"""sftdata/evaluation/metrics.py on hand-checked Korean pairs, and chrF against sacrebleu's own."""
from __future__ import annotations

import random

import pytest
import sacrebleu

from sftdata.evaluation.metrics import chrf, exact_match, repetition, rouge_l

PARTICLES = [("세종대왕은 1443년에 훈민정음을 창제하여 1446년에 반포하였다.", "세종대왕이 1443년에 훈민정음을 창제하고 1446년에 반포했다."),
             ("서울은 대한민국의 수도이며 가장 큰 도시입니다.", "서울이 대한민국의 수도이고 가장 큰 도시이다.")]
UNRELATED = ("서울은 대한민국의 수도이며 가장 큰 도시입니다.", "오늘 점심으로 김치찌개를 먹었는데 맛있었다.")


def test_chrf_is_sacrebleus_sentence_chrf():
    rng = random.Random(0)
    alphabet = "가나다라마바사아자 abcde.,"
    pairs = [*PARTICLES, UNRELATED, ("", "x"), ("x", ""), ("The cat sat on the mat", "the cat is on the mat")]
    pairs += [("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))),
               "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))) for _ in range(300)]
    for hyp, ref in pairs:
        assert chrf(hyp, ref) == pytest.approx(sacrebleu.sentence_chrf(hyp, [ref]).score, abs=1e-9), (hyp, ref)


def test_korean_pairs():
    same = "저는 한빛입니다. 무엇을 도와드릴까요?"
    assert chrf(same, same) == 100.0 and rouge_l(same, same) == 100.0 and exact_match(same, same)
    assert chrf(*UNRELATED) < 5 and rouge_l(*UNRELATED) < 15
    for hyp, ref in PARTICLES:  # particles changed: high on characters, where half the words differ
        words = set(hyp.split())
        assert len(words & set(ref.split())) / len(words) <= 0.5
        assert chrf(hyp, ref) > 45 and rouge_l(hyp, ref) > 80
    assert chrf("서울은 대한민국의 수도", "서울은대한민국의 수도") == 100.0  # spacing does not count


def test_rouge_l_exact_match_and_repetition():
    assert rouge_l("abcd", "abd") == pytest.approx(100 * 2 * (3 / 4) * (3 / 3) / (3 / 4 + 1))  # LCS "abd"
    assert rouge_l("", "abc") == 0.0
    assert exact_match(" 서울. ", "서울") and exact_match("Seoul!", "seoul") and not exact_match("서울시", "서울")
    assert not exact_match("", "")
    assert repetition("네 알겠습니다 " * 20) > 0.9 and repetition("세종대왕은 훈민정음을 창제했다.") == 0.0
