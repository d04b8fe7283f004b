"""Near-duplicate candidates: MinHash LSH over character n-grams (sftdata.curate.shingles), in numpy.

MinHash only proposes: rows that share an LSH band key (or the exact hash of their normalised text) become
candidate pairs, and each pair is decided on the exact Jaccard similarity of the two texts' shingle sets
(sftdata.curate.verify), so no row is dropped for a similarity below the threshold.

Per row the sketch keeps only what finding candidates needs: an exact hash of the normalised text (8 bytes),
the LSH band keys (20 bands x 4 bytes at the default threshold) and a b-bit signature (the low 8 bits of each
of the 128 minimums, 128 bytes; sftdata.scale.dedup's work files and bench/dedup_bench.py's estimate-only
baseline use it). That is about 220 bytes per row (220 MB for 1M rows) instead of 1 KiB for full 128 x uint64
signatures; the normalised texts themselves go to a temporary file (verify.SpilledTexts), not memory.

The default threshold, 0.7, was picked on real data: among the 999 prompts of alpaca_en_demo the
most similar pair that is not identical after normalisation has Jaccard 0.44 (5-grams) and among the
1,000 of alpaca_zh_demo 0.38 (3-grams), apart from one true near-duplicate at 0.90
("请描述泰姬陵的建筑风格。" / "描述泰姬陵的建筑风格。"). 0.7 keeps a margin of more than 0.25 above every
distinct pair, and still catches 79% of single-word edits of those English prompts (median 69 characters)
and one-word changes of Korean sentences of about 25 syllables or more (J 0.72 to 0.82 with 3-grams).
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..errors import OptionError
from .shingles import mix, normalise, pieces, shingle_hashes, shingle_sizes, size_groups
from .verify import MemoryTexts, Texts, distinct, estimate, verdicts, verify, verify_estimate

DEFAULT_THRESHOLD = 0.7
NUM_PERM = 128
_U64, _U32 = np.uint64, np.uint32
_MAX = np.iinfo(np.uint64).max
_MAX32 = np.iinfo(np.uint32).max
_CHUNK = 1 << 14  # shingles per minhash step
_PERMS = 16  # permutations computed at a time: a (16 x chunk) uint32 block is 1 MiB, so it stays in L2 cache
Verify = Literal["exact", "estimate"]


def lsh_params(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows) minimising the weighted area of false positives (0.1) plus false negatives (0.9)
    around the threshold: candidates are verified exactly, so a false positive costs a comparison while a
    false negative is a duplicate left in."""
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


@dataclass(slots=True)
class Sketches:
    """Per row: exact hash, LSH band keys, b-bit signature, whether the text was empty, and the normalised
    texts to verify candidates with (held in memory by Sketcher.sketch; SketchedRows moves them to disk)."""

    exact: np.ndarray  # (n,) uint64
    bands: np.ndarray  # (n, bands) uint32: a random collision only adds a candidate, which is verified
    sig: np.ndarray  # (n, num_perm) uint8
    empty: np.ndarray  # (n,) bool
    texts: Texts | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.exact)

    @staticmethod
    def join(parts: list[Sketches], bands: int, num_perm: int = NUM_PERM) -> Sketches:
        """One Sketches from many, consuming `parts` column by column, so the peak is the joined
        arrays plus one column of parts, not two copies of everything. Texts held in memory are joined too."""
        if not parts:
            return Sketches(np.zeros(0, _U64), np.zeros((0, bands), _U32), np.zeros((0, num_perm), np.uint8),
                            np.zeros(0, bool), MemoryTexts([]))
        texts = None
        if all(isinstance(p.texts, MemoryTexts) for p in parts):
            texts = MemoryTexts([t for p in parts for t in p.texts.items])  # type: ignore[union-attr]
        columns = {}
        for name in ("exact", "bands", "sig", "empty"):
            columns[name] = np.concatenate([getattr(p, name) for p in parts])
            for part in parts:
                setattr(part, name, None)
        parts.clear()
        return Sketches(**columns, texts=texts)


class Sketcher:
    """Turns texts into Sketches; the same seed gives the same sketches on every machine."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, num_perm: int = NUM_PERM, seed: int = 1) -> None:
        if not 0.0 < threshold <= 1.0:
            raise OptionError("must be in (0, 1]", option="threshold", value=threshold)
        self.threshold, self.num_perm = threshold, num_perm
        self.bands, self.rows = lsh_params(threshold, num_perm)
        rng = np.random.default_rng(seed)
        # Permutations x -> a*x + b mod 2^32 (a odd) of 32-bit shingle hashes: half the memory
        # traffic of 64-bit arithmetic, and a (128 x chunk) block fits in cache.
        self.a = (rng.integers(0, _MAX32, num_perm, dtype=_U32, endpoint=True) | _U32(1))[:, None]
        self.b = rng.integers(0, _MAX32, num_perm, dtype=_U32, endpoint=True)[:, None]
        self.band_mult = rng.integers(0, _MAX, self.rows, dtype=_U64, endpoint=True) | _U64(1)
        # the permuted hashes of one step, reused (a fresh array per step would be mapped and faulted in anew)
        self._block = np.empty((_PERMS, _CHUNK), dtype=_U32)

    def sketch(self, texts: Sequence[str], encoded: bool = False) -> Sketches:
        """The sketches of the texts, with their normalised texts (in memory) to verify candidates with, and with
        `encoded`, those texts' UTF-8 (MemoryTexts.encoded) too."""
        norm = [normalise(t) for t in texts]
        utf8 = [t.encode() for t in norm]
        exact = np.frombuffer(b"".join([hashlib.blake2b(t, digest_size=8).digest() for t in utf8]),
                              dtype="<u8").astype(_U64)  # each digest read as a little-endian integer
        empty = np.fromiter((not t for t in norm), dtype=bool, count=len(norm))
        mins = np.full((len(norm), self.num_perm), _MAX32, dtype=_U32)
        sizes = shingle_sizes(norm)
        for n, rows in size_groups(sizes):
            if len(rows) == len(norm):
                mins = self._minhash(norm, n)
            else:
                mins[rows] = self._minhash([norm[i] for i in rows], n)
        used = mins[:, : self.bands * self.rows].reshape(len(norm), self.bands, self.rows)
        keys = used[:, :, 0] * self.band_mult[0]  # uint64: each band's minimums, weighted and summed (wrapping)
        for j in range(1, self.rows):
            keys += used[:, :, j] * self.band_mult[j]
        keys = _high_halves(mix(keys, out=keys))
        return Sketches(exact, keys, (mins & _U32(0xFF)).astype(np.uint8), empty,
                        MemoryTexts(norm, utf8 if encoded else None))

    def _minhash(self, texts: Sequence[str], n: int) -> np.ndarray:
        """Each text's minimums of the permuted shingle hashes (len(texts), num_perm). Every text's shingles come
        as one run (pieces: owners never decrease), so a row's minimums are final once its run has ended; only a
        run cut by a step's end is carried into the next step."""
        out = np.full((len(texts), self.num_perm), _MAX32, dtype=_U32)
        carried = -1  # the row whose run the last step ended in
        for owners, cut in pieces(texts, overlap=n - 1):  # the same n-grams, in bounded memory
            hashes, counts = shingle_hashes(cut, n)
            hashes = _high_halves(hashes)
            starts = np.cumsum(counts) - counts  # where each piece's shingles start (each has at least one)
            for start in range(0, len(hashes), _CHUNK):
                h = hashes[start:start + _CHUNK]
                first = int(np.searchsorted(starts, start, "right"))  # the run holding `start` is first - 1
                last = int(np.searchsorted(starts, start + len(h)))  # runs from `last` on start after this step
                firsts = starts[first - 1:last] - start  # the runs in this step (the first may have begun before)
                firsts[0] = 0
                part = np.empty((self.num_perm, len(firsts)), dtype=_U32)
                for k in range(0, self.num_perm, _PERMS):  # a few permutations at a time: the block stays in cache
                    values = self._block[:min(_PERMS, self.num_perm - k), :len(h)]
                    np.multiply(self.a[k:k + _PERMS], h[None, :], out=values)
                    values += self.b[k:k + _PERMS]
                    part[k:k + _PERMS] = np.minimum.reduceat(values, firsts, axis=1)
                rows = owners[first - 1:last]
                if rows[0] == carried:
                    np.minimum(part[:, 0], out[carried], out=part[:, 0])
                out[rows] = part.T
                carried = int(rows[-1])
        return out


def _high_halves(hashes: np.ndarray) -> np.ndarray:
    """hashes >> 32 as uint32 (of a C-contiguous uint64 array, along its last axis), read out of the uint64s
    rather than shifted."""
    halves = hashes.view(_U32)
    return np.ascontiguousarray(halves[..., 1::2] if np.little_endian else halves[..., 0::2])


@dataclass(slots=True)
class Matches:
    """For each row: the row it duplicates (-1 when kept), whether exactly, and the similarity (exact Jaccard)."""

    dup_of: np.ndarray  # int64
    exact: np.ndarray  # bool
    similarity: np.ndarray  # float64
    cluster: np.ndarray  # int64: the lowest row index of the row's cluster (itself when alone)


def find_duplicates(sk: Sketches, threshold: float, refs: int = 0, check: Verify = "exact") -> Matches:
    """Exact and near (exact Jaccard of the shingle sets >= threshold) duplicates, kept or dropped in input order.

    The rule: a row is dropped only as a duplicate of a row that is *kept* (or of a reference), and only
    when that pair was verified at or above the threshold. So a chain A~B~C where C is far from A keeps C, the
    dupes file never names a similarity below the threshold, and no two kept rows that the index compared are
    near duplicates. Rows [0, refs) are references (`--against` files): never kept or dropped themselves; a
    later row that duplicates one is dropped. Empty texts are never duplicates. `cluster` is the kept row (or
    reference) each row belongs with: itself when kept. Candidates come from the LSH bands and the exact
    hashes (those estimated far below the threshold are ruled out: verify.MARGIN); `check="estimate"` decides
    them on the signatures instead of the texts (bench/dedup_bench.py's baseline only). sftdata.scale.dedup runs the same steps split by split: group_edges per shuffle
    partition, verify in the reduce tasks, resolve on the driver."""
    n = len(sk)
    valid = np.flatnonzero(~sk.empty)
    edges = [group_edges(sk.exact[valid], valid)]
    for band in range(sk.bands.shape[1]):
        edges.append(group_edges(sk.bands[valid, band], valid))
    pairs = unique_pairs(edges)
    left, right = sk.exact[pairs[:, 0]], sk.exact[pairs[:, 1]]
    if check == "estimate":
        pairs, score = verify_estimate(pairs, left, right, sk.sig, threshold)
    elif sk.texts is None:
        raise ValueError("exact verification needs the sketches' texts")
    else:
        pairs, score = verify(pairs, left, right, sk.texts, threshold, estimate(sk.sig, pairs[:, 0], pairs[:, 1]))
    dup_of, best = _attach(n, pairs, score, refs)
    exact, similarity = verdicts(best, dup_of >= 0)
    cluster = np.where(dup_of >= 0, dup_of, np.arange(n))
    return Matches(dup_of, exact, similarity, cluster)


def resolve(pairs: np.ndarray, score: np.ndarray, refs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The keep rule (find_duplicates) over verified pairs of row ids that may be sparse (sftdata.scale.dedup:
    global ids of billions of rows): only the rows in some pair take memory. Returns, for each dropped row,
    (its id, the id of the row it duplicates, the pair's score)."""
    if not len(pairs):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float64)
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
    keys = distinct(np.concatenate([(e[:, 0] << 32) | e[:, 1] for e in edges]))
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
    best = np.zeros(n, dtype=np.float64)
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
    """(member, first) pairs for every group of equal keys; `first` is the group's lowest row (`rows` ascend: the
    members of a group come in their order)."""
    if len(keys) == 0:
        return np.zeros((0, 2), np.int64)
    if keys.dtype.kind == "u" and keys.dtype.itemsize <= 4 and 0 <= rows.min() and rows.max() < 1 << 32:
        # 32-bit keys and rows (dedup's band keys): one sort of (key << 32 | row), several times faster than a
        # stable argsort of the keys, in the same order
        packed = np.sort((keys.astype(_U64) << _U64(32)) | rows.astype(_U64))
        ordered = packed >> _U64(32)
        members = (packed & _U64(0xFFFFFFFF)).astype(np.int64)
    else:
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        members = rows[order]
    new = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    group_first = members[np.maximum.accumulate(np.where(new, np.arange(len(members)), 0))]
    mask = ~new
    return np.stack([members[mask], group_first[mask]], axis=1).astype(np.int64)
