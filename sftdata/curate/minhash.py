"""Near-duplicate detection: MinHash LSH over character n-grams, in numpy.

Text is normalised (NFKC, casefold, whitespace collapsed) and cut into character n-grams, so
Korean, Chinese and Japanese work like any other script (word-based ROUGE tokenisers drop Hangul
and see zero similarity). n is 5 for alphabetic text and 3 for text whose characters are mostly
Hangul, CJK ideographs or kana, where one character already carries a syllable: 3-grams of Latin
letters saturate on long texts (unrelated 1,500-character English answers share up to 45% of their
3-grams, 23% of their 5-grams), while 5-grams of Hangul syllables miss one-word edits of short
sentences.

Per row only what clustering needs is kept: an exact hash of the normalised text (8 bytes), the
LSH band keys (20 bands x 4 bytes at the default threshold) and a b-bit signature (the low 8 bits of
each of the 128 minimums, 128 bytes) that estimates Jaccard similarity as (matches - 1/256) /
(1 - 1/256) to verify LSH candidates. That is about 220 bytes per row (220 MB for 1M rows) instead
of 1 KiB for full 128 x uint64 signatures.

The default threshold, 0.7, was picked on real data: among the 999 prompts of alpaca_en_demo the
most similar pair that is not identical after normalisation has Jaccard 0.44 (5-grams) and among the
1,000 of alpaca_zh_demo 0.38 (3-grams), apart from one true near-duplicate at 0.90
("请描述泰姬陵的建筑风格。" / "描述泰姬陵的建筑风格。"). 0.7 keeps a margin of more than 0.25 (over six
standard deviations of the 128-permutation estimate) above every distinct pair, and still catches
79% of single-word edits of those English prompts (median 69 characters) and one-word changes of
Korean sentences of about 25 syllables or more (J 0.72 to 0.82 with 3-grams).
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import SftDataError

DEFAULT_THRESHOLD = 0.7
NUM_PERM = 128
_U64, _U32 = np.uint64, np.uint32
_MAX = np.iinfo(np.uint64).max
_MAX32 = np.iinfo(np.uint32).max
_SPACE = re.compile(r"\s+")
_CJK = ((0x1100, 0x11FF), (0x3040, 0x30FF), (0x3130, 0x318F), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
        (0xAC00, 0xD7AF), (0xF900, 0xFAFF))
_CHUNK = 1 << 14  # shingles per minhash step: a (128 x chunk) uint32 block is 8 MiB
_GROUP_CHARS = 1 << 20  # characters per group of texts sketched at once: ~50 MB of arrays at most


def normalise(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _pieces(texts: Sequence[str], overlap: int = 0) -> Iterator[tuple[np.ndarray, list[str]]]:
    """The texts in groups of about _GROUP_CHARS characters, as (owner index per piece, pieces), so
    the arrays built per group stay small whatever one text's length (a 50 MB row). A text longer
    than _GROUP_CHARS is cut into pieces that share `overlap` characters, so every n-gram of it
    (n = overlap + 1) lies whole in one piece; owners never decrease."""
    owners: list[int] = []
    pieces: list[str] = []
    size = 0
    for i, text in enumerate(texts):
        if len(text) <= _GROUP_CHARS:
            cuts = [text]
        else:
            step = _GROUP_CHARS - overlap
            cuts = [text[start:start + _GROUP_CHARS] for start in range(0, len(text) - overlap, step)]
        for cut in cuts:
            if pieces and size + len(cut) > _GROUP_CHARS:
                yield np.array(owners, dtype=np.int64), pieces
                owners, pieces, size = [], [], 0
            owners.append(i)
            pieces.append(cut)
            size += len(cut)
    if pieces:
        yield np.array(owners, dtype=np.int64), pieces


def shingle_sizes(texts: Sequence[str]) -> np.ndarray:
    """Per normalised text: 3 when at least half of its non-space characters are Hangul, CJK or kana,
    else 5 (see the module docstring)."""
    cjk_total = np.zeros(len(texts), dtype=np.int64)
    letters_total = np.zeros(len(texts), dtype=np.int64)
    for owners, pieces in _pieces(texts):
        lengths = np.fromiter((len(t) for t in pieces), dtype=np.int64, count=len(pieces))
        codes = np.frombuffer("".join(pieces).encode("utf-32-le"), dtype=np.uint32)
        cjk = np.zeros(len(codes), dtype=bool)
        for lo, hi in _CJK:
            cjk |= (codes >= lo) & (codes <= hi)
        ends = np.cumsum(lengths)
        starts = ends - lengths

        def per_piece(flags: np.ndarray) -> np.ndarray:
            total = np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))
            return total[ends] - total[starts]  # noqa: B023

        np.add.at(cjk_total, owners, per_piece(cjk))
        np.add.at(letters_total, owners, per_piece(codes != 32))
    return np.where(cjk_total * 2 >= np.maximum(letters_total, 1), 3, 5)


def lsh_params(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows) minimising the weighted area of false positives (0.1) plus false negatives (0.9)
    around the threshold: candidates are verified with the signatures, so a false positive costs a
    comparison while a false negative is a duplicate left in."""
    grid = np.linspace(0.0, 1.0, 201)
    best, best_cost = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        rows = num_perm // bands
        if rows < 1:
            break
        p = 1.0 - (1.0 - grid ** rows) ** bands
        below, above = grid < threshold, grid >= threshold
        cost = 0.1 * _area(p[below], grid[below]) + 0.9 * _area(1.0 - p[above], grid[above])
        if cost < best_cost:
            best, best_cost = (bands, rows), cost
    return best


def _area(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoid rule (np.trapezoid is numpy >= 2 only)."""
    return float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum())


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, vectorised (uint64 arithmetic wraps)."""
    x = x ^ (x >> _U64(30))
    x = x * _U64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> _U64(27))
    x = x * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


@dataclass(slots=True)
class Sketches:
    """Per row: exact hash, LSH band keys, b-bit signature, and whether the text was empty."""

    exact: np.ndarray  # (n,) uint64
    bands: np.ndarray  # (n, bands) uint32: a random collision only adds a candidate, which is verified
    sig: np.ndarray  # (n, num_perm) uint8
    empty: np.ndarray  # (n,) bool

    def __len__(self) -> int:
        return len(self.exact)

    @staticmethod
    def join(parts: list[Sketches], bands: int, num_perm: int = NUM_PERM) -> Sketches:
        """One Sketches from many, consuming `parts` column by column, so the peak is the joined
        arrays plus one column of parts, not two copies of everything."""
        if not parts:
            return Sketches(np.zeros(0, _U64), np.zeros((0, bands), _U32), np.zeros((0, num_perm), np.uint8),
                            np.zeros(0, bool))
        columns = {}
        for name in ("exact", "bands", "sig", "empty"):
            columns[name] = np.concatenate([getattr(p, name) for p in parts])
            for part in parts:
                setattr(part, name, None)
        parts.clear()
        return Sketches(**columns)


class Sketcher:
    """Turns texts into Sketches; the same seed gives the same sketches on every machine."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, num_perm: int = NUM_PERM, seed: int = 1) -> None:
        if not 0.0 < threshold <= 1.0:
            raise SftDataError(f"the similarity threshold must be in (0, 1], not {threshold}")
        self.threshold, self.num_perm = threshold, num_perm
        self.bands, self.rows = lsh_params(threshold, num_perm)
        rng = np.random.default_rng(seed)
        # Permutations x -> a*x + b mod 2^32 (a odd) of 32-bit shingle hashes: half the memory
        # traffic of 64-bit arithmetic, and a (128 x chunk) block fits in cache.
        self.a = (rng.integers(0, _MAX32, num_perm, dtype=_U32, endpoint=True) | _U32(1))[:, None]
        self.b = rng.integers(0, _MAX32, num_perm, dtype=_U32, endpoint=True)[:, None]
        self.band_mult = rng.integers(0, _MAX, self.rows, dtype=_U64, endpoint=True) | _U64(1)

    def sketch(self, texts: Sequence[str]) -> Sketches:
        norm = [normalise(t) for t in texts]
        exact = np.fromiter((int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
                             for t in norm), dtype=_U64, count=len(norm))
        empty = np.fromiter((not t for t in norm), dtype=bool, count=len(norm))
        mins = np.full((len(norm), self.num_perm), _MAX32, dtype=_U32)
        sizes = shingle_sizes(norm)
        for n in np.unique(sizes):
            rows = np.flatnonzero(sizes == n)
            mins[rows] = self._minhash([norm[i] for i in rows], int(n))
        used = mins[:, : self.bands * self.rows].reshape(len(norm), self.bands, self.rows).astype(_U64)
        with np.errstate(over="ignore"):
            keys = (_mix((used * self.band_mult).sum(axis=2, dtype=_U64)) >> _U64(32)).astype(_U32)
        return Sketches(exact, keys, (mins & _U32(0xFF)).astype(np.uint8), empty)

    def _minhash(self, texts: list[str], n: int) -> np.ndarray:
        out = np.full((len(texts), self.num_perm), _MAX32, dtype=_U32)
        for owners, pieces in _pieces(texts, overlap=n - 1):  # the same n-grams, in bounded memory
            hashes, counts = shingle_hashes(pieces, n)
            hashes = (hashes >> _U64(32)).astype(_U32)
            owner = np.repeat(owners, counts)
            for start in range(0, len(hashes), _CHUNK):
                h, t = hashes[start:start + _CHUNK], owner[start:start + _CHUNK]
                values = self.a * h[None, :]
                values += self.b
                firsts = np.concatenate(([0], np.flatnonzero(np.diff(t)) + 1))
                part = np.minimum.reduceat(values, firsts, axis=1).T
                rows = t[firsts]
                out[rows] = np.minimum(out[rows], part)
        return out


def shingle_hashes(texts: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every character n-gram of every text (texts shorter than n count as one n-gram),
    and how many each text has."""
    padded = [t if len(t) >= n else t + "\0" * (n - len(t)) for t in texts]
    lengths = np.fromiter((len(t) for t in padded), dtype=np.int64, count=len(padded))
    codes = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(_U64)
    width = len(codes) - n + 1
    rolling = np.zeros(width, dtype=_U64)
    with np.errstate(over="ignore"):
        for k in range(n):
            rolling = rolling * _U64(0x100000001B3) + codes[k:k + width]
    counts = lengths - n + 1
    starts = np.cumsum(lengths) - lengths
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return _mix(rolling[np.repeat(starts, counts) + within] + _U64(n)), counts


def estimate(sig: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of rows left[i] and right[i] from their b-bit signatures."""
    if len(left) == 0:
        return np.zeros(0, dtype=np.float32)
    out = np.empty(len(left), dtype=np.float32)
    for start in range(0, len(left), 1 << 14):
        l, r = left[start:start + (1 << 14)], right[start:start + (1 << 14)]
        matches = (sig[l] == sig[r]).mean(axis=1)
        out[start:start + len(l)] = np.clip((matches - 1 / 256) / (1 - 1 / 256), 0.0, 1.0)
    return out


@dataclass(slots=True)
class Matches:
    """For each row: the row it duplicates (-1 when kept), whether exactly, and the estimated similarity."""

    dup_of: np.ndarray  # int64
    exact: np.ndarray  # bool
    similarity: np.ndarray  # float32
    cluster: np.ndarray  # int64: the lowest row index of the row's cluster (itself when alone)


def find_duplicates(sk: Sketches, threshold: float, refs: int = 0) -> Matches:
    """Exact and near (estimated Jaccard >= threshold) duplicates, kept or dropped in input order.

    The rule: a row is dropped only as a duplicate of a row that is *kept* (or of a reference), and only
    when that pair was verified on the signatures at or above the threshold. So a chain A~B~C where C is
    far from A keeps C, the dupes file never names a similarity below the threshold, and no two kept rows
    that the index compared are near duplicates. Rows [0, refs) are references (`--against`
    files): never kept or dropped themselves; a later row that duplicates one is dropped. Empty texts are
    never duplicates. `cluster` is the kept row (or reference) each row belongs with: itself when kept.
    sftdata.scale.dedup runs the same steps split by split: group_edges per shuffle partition,
    verify per split, resolve on the driver."""
    n = len(sk)
    valid = np.flatnonzero(~sk.empty)
    edges = [group_edges(sk.exact[valid], valid)]
    for band in range(sk.bands.shape[1]):
        edges.append(group_edges(sk.bands[valid, band], valid))
    pairs = unique_pairs(edges)
    pairs, score = verify(pairs, sk.exact[pairs[:, 0]], sk.exact[pairs[:, 1]], sk.sig, pairs[:, 0], pairs[:, 1],
                          threshold)
    dup_of, best = _attach(n, pairs, score, refs)
    exact, similarity = verdicts(best, dup_of >= 0)
    cluster = np.where(dup_of >= 0, dup_of, np.arange(n))
    return Matches(dup_of, exact, similarity, cluster)


EXACT_SCORE = 2.0  # a verified pair's score when the normalised texts are identical


def verify(pairs: np.ndarray, exact_left: np.ndarray, exact_right: np.ndarray, sig: np.ndarray, left: np.ndarray,
           right: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs that are duplicates, with their scores: EXACT_SCORE for identical normalised texts,
    else the estimated Jaccard similarity (rows `left`/`right` of `sig`), kept at or above the threshold."""
    if not len(pairs):
        return pairs, np.zeros(0, dtype=np.float32)
    same = exact_left == exact_right
    near = estimate(sig, left, right)
    keep = same | (near >= threshold)
    return pairs[keep], np.where(same[keep], EXACT_SCORE, near[keep]).astype(np.float32)


def verdicts(best: np.ndarray, dropped: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row (all dropped unless `dropped` says which are): dropped as an exact duplicate, and the
    similarity to the row it duplicates (1.0 when exact), from the score of that pair."""
    dropped = np.ones(len(best), dtype=bool) if dropped is None else dropped
    exact = dropped & (best == EXACT_SCORE)
    similarity = np.where(exact, 1.0, np.where(dropped, best, 0.0)).astype(np.float32)
    return exact, similarity


def resolve(pairs: np.ndarray, score: np.ndarray, refs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The keep rule (find_duplicates) over verified pairs of row ids that may be sparse (sftdata.scale.dedup:
    global ids of billions of rows): only the rows in some pair take memory. Returns, for each dropped row,
    (its id, the id of the row it duplicates, the pair's score)."""
    if not len(pairs):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    nodes, compact = np.unique(pairs, return_inverse=True)  # sorted: input order is kept
    compact = compact.reshape(pairs.shape)
    dup_of, best = _attach(len(nodes), compact, score, int(np.searchsorted(nodes, refs)))
    dropped = np.flatnonzero(dup_of >= 0)
    return nodes[dropped], nodes[dup_of[dropped]], best[dropped]


def unique_pairs(edges: list[np.ndarray]) -> np.ndarray:
    """The distinct (later, earlier) row pairs among the edges (each edge is (member, the bucket's first
    row), so member > first), packed into one int64 key each for a 1-D sort."""
    if not edges or not sum(len(e) for e in edges):
        return np.zeros((0, 2), np.int64)
    keys = np.concatenate([(e[:, 0] << 32) | e[:, 1] for e in edges])
    keys = np.unique(keys)
    out = np.empty((len(keys), 2), dtype=np.int64)
    np.right_shift(keys, 32, out=out[:, 0])
    np.bitwise_and(keys, 0xFFFFFFFF, out=out[:, 1])
    return out


def _attach(n: int, pairs: np.ndarray, score: np.ndarray, refs: int,
            rounds: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the earlier kept row (or reference) it duplicates, or -1 when it is kept, and the score
    of that pair.

    In input order, a row is dropped when a verified earlier partner is kept, and kept when every earlier
    partner is dropped. That is settled in vectorised rounds (a row whose earlier partners are all
    settled is settled in the next round); a long chain left after `rounds` rounds is finished row by
    row. Each dropped row then names its best kept partner: exact first, then the most similar."""
    dup_of = np.full(n, -1, dtype=np.int64)
    best = np.zeros(n, dtype=np.float32)
    if len(pairs) == 0:
        return dup_of, best
    later, earlier = pairs[:, 0], pairs[:, 1]
    keep = later >= refs  # a reference is never dropped
    later, earlier, score = later[keep], earlier[keep], score[keep]
    state = np.zeros(n, dtype=np.int8)  # 0 unsettled, 1 kept, 2 dropped
    partnered = np.zeros(n, dtype=bool)
    partnered[later] = True
    state[~partnered] = 1
    for _ in range(rounds):
        if not (state[later] == 0).any():
            break
        known = state[earlier]
        drop = np.zeros(n, dtype=bool)
        drop[later[known == 1]] = True
        wait = np.zeros(n, dtype=bool)
        wait[later[known == 0]] = True
        open_ = state == 0
        state[open_ & drop] = 2
        state[open_ & ~drop & ~wait] = 1
    else:
        _settle_in_order(state, later, earlier)
    dropped = state[later] == 2
    chosen = dropped & (state[earlier] == 1)
    l, e, sc = later[chosen], earlier[chosen], score[chosen]
    order = np.lexsort((e, -sc, l))
    first = np.concatenate(([True], l[order][1:] != l[order][:-1]))
    dup_of[l[order][first]] = e[order][first]
    best[l[order][first]] = sc[order][first]
    return dup_of, best


def _settle_in_order(state: np.ndarray, later: np.ndarray, earlier: np.ndarray) -> None:
    """The rows a long chain left unsettled, one by one in input order."""
    rows = np.flatnonzero(state[later] == 0)
    order = np.lexsort((earlier[rows], later[rows]))
    for j, i in zip(later[rows][order].tolist(), earlier[rows][order].tolist()):
        if state[j] == 2:
            continue
        if state[i] == 1:
            state[j] = 2
    open_ = np.flatnonzero(state == 0)
    state[open_] = 1


def group_edges(keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(member, first) pairs for every group of equal keys; `first` is the group's lowest row."""
    if len(keys) == 0:
        return np.zeros((0, 2), np.int64)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    new = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    group_first = rows[order][np.maximum.accumulate(np.where(new, np.arange(len(order)), 0))]
    members = rows[order]
    mask = ~new
    return np.stack([members[mask], group_first[mask]], axis=1).astype(np.int64)
