"""Novelty: is a new instruction too close to a seed or to something accepted before?

Similarity is the Jaccard index of character n-gram sets, with the same normalisation and n-gram
sizes as the MinHash dedup (`sftdata.curate.minhash`: NFKC, case-folded, whitespace collapsed; 3-grams for
text that is mostly Hangul/CJK/kana, 5-grams otherwise), so `synth` and `dedup` agree on what
"similar" means and Korean works like any other script (the self-instruct reference scores with a
ROUGE-L whose tokenizer drops Hangul, so every Korean pair looks novel to it).

Here the sets are compared exactly, not estimated: the index is an inverted list n-gram →
documents, and a query counts shared n-grams per candidate, fast enough for the tens of thousands
of records one synth run produces. The default threshold (0.5) is stricter than dedup's 0.7: synth
wants new tasks, not only non-duplicates ("capital of France?" / "capital of Germany?" is 0.56).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..curate.minhash import normalise, shingle_sizes

DEFAULT_NOVELTY = 0.5


def ngrams(text: str) -> frozenset[str]:
    """Character n-grams of the normalised text (the whole text when it is shorter than n)."""
    norm = normalise(text)
    if not norm:
        return frozenset()
    n = int(shingle_sizes([norm])[0])
    if len(norm) <= n:
        return frozenset({norm})
    return frozenset(norm[i:i + n] for i in range(len(norm) - n + 1))


def similarity(a: str, b: str) -> float:
    """Jaccard index of the two texts' n-gram sets, in [0, 1]."""
    ga, gb = ngrams(a), ngrams(b)
    if not ga or not gb:
        return 0.0
    shared = len(ga & gb)
    return shared / (len(ga) + len(gb) - shared)


@dataclass(frozen=True, slots=True)
class Match:
    score: float
    label: str | None  # what the text is closest to (a seed id or an accepted record's key)


class NoveltyIndex:
    """Texts seen so far; `nearest` says how close a new text comes to any of them."""

    def __init__(self, threshold: float = DEFAULT_NOVELTY) -> None:
        if not 0 < threshold <= 1:
            raise ValueError("the novelty threshold lies in (0, 1]")
        self.threshold = threshold
        self._postings: dict[str, list[int]] = {}
        self._sizes: list[int] = []
        self._labels: list[str] = []

    def __len__(self) -> int:
        return len(self._sizes)

    def add(self, text: str, label: str) -> None:
        grams = ngrams(text)
        doc = len(self._sizes)
        self._sizes.append(len(grams))
        self._labels.append(label)
        for gram in grams:
            self._postings.setdefault(gram, []).append(doc)

    def nearest(self, text: str) -> Match:
        grams = ngrams(text)
        if not grams:
            return Match(0.0, None)
        shared: Counter[int] = Counter()
        for gram in grams:
            postings = self._postings.get(gram)
            if postings:
                shared.update(postings)
        best, label = 0.0, None
        for doc, count in shared.items():
            score = count / (len(grams) + self._sizes[doc] - count)
            if score > best:
                best, label = score, self._labels[doc]
        return Match(best, label)

    def is_novel(self, text: str) -> tuple[bool, Match]:
        match = self.nearest(text)
        return match.score < self.threshold, match
