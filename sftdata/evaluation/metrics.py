"""Reference metrics that work for Korean, on strings: chrF, character ROUGE-L, exact match, repetition,
language share.

Word-based BLEU/ROUGE split text on spaces (or, in LLaMA-Factory's predict mode, with jieba): in Korean a
particle changes the whole eojeol (`서울은` / `서울이`), so a right answer scores as wrong. Character
metrics do not care where the spaces fall:

- chrF (Popović 2015) as sacrebleu computes it by default (character n-grams of orders 1-6, spaces
  removed, precision and recall averaged over the orders that occur, F with beta 2), 0-100 per answer;
  tests/test_eval_metrics.py checks it against sacrebleu's `sentence_chrf`.
- ROUGE-L over characters (spaces removed): the longest common subsequence as an F-measure (beta 1),
  0-100.
- exact match after normalisation (NFKC, casefold, punctuation and spaces removed), for short answers.
- repetition: the share of an answer's character 10-grams (spaces removed) that occur more than once
  in it; a model stuck in a loop scores near 1.
- language share: the share of letters in the script of `lang` (sftdata.curate.textquality).
"""
from __future__ import annotations

import unicodedata
from collections import Counter

CHRF_ORDER = 6
CHRF_BETA = 2.0
REPEAT_N = 10


def _squeeze(text: str) -> str:
    return "".join(text.split())


def chrf(hypothesis: str, reference: str, order: int = CHRF_ORDER, beta: float = CHRF_BETA) -> float:
    hyp, ref = _squeeze(hypothesis), _squeeze(reference)
    factor = beta ** 2
    precision = recall = 0.0
    effective = 0
    for n in range(1, order + 1):
        h = Counter(hyp[i:i + n] for i in range(len(hyp) - n + 1))
        r = Counter(ref[i:i + n] for i in range(len(ref) - n + 1))
        n_hyp, n_ref = sum(h.values()), sum(r.values())
        if n_hyp and n_ref:
            match = sum((h & r).values())
            precision += match / n_hyp
            recall += match / n_ref
            effective += 1
    if not effective:
        return 0.0
    precision, recall = precision / effective, recall / effective
    if not precision + recall:
        return 0.0
    return 100 * (1 + factor) * precision * recall / (factor * precision + recall)


def rouge_l(hypothesis: str, reference: str) -> float:
    hyp, ref = _squeeze(hypothesis), _squeeze(reference)
    if not hyp or not ref:
        return 0.0
    lcs = _lcs(hyp, ref)
    if not lcs:
        return 0.0
    precision, recall = lcs / len(hyp), lcs / len(ref)
    return 100 * 2 * precision * recall / (precision + recall)


def _lcs(a: str, b: str) -> int:
    """Length of the longest common subsequence, in O(len(a) * len(b)) time and O(len(b)) memory."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for ch in a:
        current = [0]
        for j, other in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if ch == other else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def normalise_answer(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if ch.isalnum())


def exact_match(hypothesis: str, reference: str) -> bool:
    return bool(reference.strip()) and normalise_answer(hypothesis) == normalise_answer(reference)


def repetition(text: str, n: int = REPEAT_N) -> float:
    body = _squeeze(text)
    grams = [body[i:i + n] for i in range(len(body) - n + 1)]
    if not grams:
        return 0.0
    counts = Counter(grams)
    return sum(c for c in counts.values() if c > 1) / len(grams)
