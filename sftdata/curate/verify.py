"""Candidate pairs verified exactly: the Jaccard similarity of the two rows' shingle sets (sftdata.curate.shingles).

MinHash LSH (sftdata.curate.minhash) only finds candidates. Each candidate pair is then decided on the exact
Jaccard index of the two normalised texts' sets of character n-grams, compared as 64-bit hashes (two distinct
n-grams of one pair would have to collide in 64 bits to change a count). Exact duplicates (equal blake2b hashes
of the normalised texts) score EXACT_SCORE without a look at the texts, and a pair whose signature estimate is
far below the threshold (MARGIN) is ruled out unread; every other pair, and so every drop, is verified.

Memory stays bounded: the normalised texts are not held. While rows are sketched, each normalised text is
appended to an unnamed temporary file (SpilledTexts, in the output's folder for `sftdata dedup`: only its end
offset, 8 bytes a row, stays in memory; sftdata.scale.dedup writes the same per split into its work folder).
Verification then reads back only the texts of rows that are in some candidate pair, a batch of pairs at a
time (about VERIFY_CHARS of text per batch), builds each such row's shingle set once per batch and counts the
shared shingles of every pair with one sorted-array search. The temporary file costs disk about the size of
the compared text (UTF-8). A pair of two huge rows (over LARGE_CHARS together) is compared on its own: its
shingle hashes go to temporary files by hash modulo k and the k parts are compared one at a time.
"""
from __future__ import annotations

import os
import tempfile
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Protocol

import numpy as np

from .shingles import shingle_pieces, text_shingles

EXACT_SCORE = 2.0  # a verified pair's score when the normalised texts are identical
VERIFY_CHARS = 1 << 18  # text (characters or UTF-8 bytes, both sides of each pair) per verified batch: ~20 MB
LARGE_CHARS = 1 << 22  # a pair longer than this is verified on its own, in parts of about this size
MARGIN = 0.2
"""A candidate pair whose signature estimate is below threshold - MARGIN is not verified: it is not a duplicate.
The 8-bit estimate from 128 minimums has a standard error of about 0.04 at J = 0.7, so a pair at the threshold
falls 0.2 below it with a probability of 1.5e-6 (the binomial tail), against the ~8% of such pairs LSH itself
never proposes. On the load bench's 100k rows (many rows share common words) this skips 98% of the 866k
candidates, none of them above an exact 0.49. The estimate only ever rules a pair out: every drop is verified."""


class Texts(Protocol):
    """Normalised texts by row number."""

    def sizes(self, rows: np.ndarray) -> np.ndarray:
        """Each row's text length (characters or UTF-8 bytes: what a batch of pairs costs)."""
        ...

    def get(self, rows: np.ndarray) -> list[str]:
        ...


@dataclass(slots=True)
class MemoryTexts:
    """Texts held in a list (the texts of one sketched batch, or of records an audit or split holds anyway), and
    their UTF-8 when it was made anyway (the sketcher hashes it: dedup spills it, not encoding the texts again)."""

    items: list[str]
    encoded: list[bytes] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def sizes(self, rows: np.ndarray) -> np.ndarray:
        return np.fromiter((len(self.items[i]) for i in rows.tolist()), dtype=np.int64, count=len(rows))

    def get(self, rows: np.ndarray) -> list[str]:
        return [self.items[i] for i in rows.tolist()]


class SpilledTexts:
    """Texts appended to an unnamed temporary file (gone when closed or when the process ends), read back by
    row with positioned reads (not a memory map, whose touched pages would count as this process's memory);
    only the end offsets stay in memory. Any byte strings can be kept the same way (`add`, `span`):
    sftdata.curate.dedup keeps its output lines in one."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self._file: IO[bytes] | None = None
        self._directory = directory
        self._ends = array("q")
        self._size = 0

    def __len__(self) -> int:
        return len(self._ends)

    def extend(self, texts: Sequence[str]) -> None:
        self.add([t.encode() for t in texts])

    def add(self, items: Sequence[bytes]) -> None:
        """Append byte strings (texts already encoded as UTF-8, or any others), one row each."""
        if self._file is None:  # in `directory` when it exists (the output's folder), else the system's
            directory = self._directory if self._directory and os.path.isdir(self._directory) else None
            self._file = tempfile.TemporaryFile(dir=directory, prefix=".sftdata-texts-")
        self._file.write(b"".join(items))
        ends = np.cumsum(np.fromiter(map(len, items), dtype=np.int64, count=len(items))) + self._size
        self._ends.frombytes(ends.tobytes())
        self._size = int(ends[-1]) if len(ends) else self._size

    def span(self, first: int, last: int) -> tuple[bytes, np.ndarray]:
        """The bytes of rows [first, last) as one string, and where each of those rows ends in it."""
        ends = np.frombuffer(self._ends, dtype=np.int64)[first:last]
        start = int(self._ends[first - 1]) if first else 0
        return self._read(start, int(ends[-1]) - start if len(ends) else 0), ends - start

    def offsets(self) -> np.ndarray:
        """Where each row's text starts, and where the last one ends (len + 1 values)."""
        return np.concatenate(([0], np.frombuffer(self._ends, dtype=np.int64))).astype(np.int64)

    def data(self) -> np.ndarray:
        """All the texts' bytes (sftdata.scale.dedup saves a split's: at most the split's size)."""
        return np.frombuffer(self._read(0, self._size), dtype=np.uint8)

    def sizes(self, rows: np.ndarray) -> np.ndarray:
        ends = np.frombuffer(self._ends, dtype=np.int64)
        return ends[rows] - np.where(rows > 0, ends[np.maximum(rows - 1, 0)], 0)

    def get(self, rows: np.ndarray) -> list[str]:
        ends = self._ends
        out = []
        for i in rows.tolist():
            start = ends[i - 1] if i else 0
            out.append(self._read(start, ends[i] - start).decode())
        return out

    def _read(self, start: int, size: int) -> bytes:
        if self._file is None or not size:
            return b""
        self._file.flush()
        return os.pread(self._file.fileno(), size, start)

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:  # its buffer could not be flushed (the disk is full): nothing of it is needed
                pass
            self._file = None


def jaccard(pairs: np.ndarray, texts: Texts) -> np.ndarray:
    """The exact Jaccard similarity of the shingle sets of rows pairs[i, 0] and pairs[i, 1] (float64; 0 when
    either set is empty), a batch of about VERIFY_CHARS characters at a time; a pair longer than LARGE_CHARS
    on its own (two huge rows) through temporary files, a share of the hash space at a time."""
    out = np.zeros(len(pairs), dtype=np.float64)
    if not len(pairs):
        return out
    cost = texts.sizes(pairs[:, 0]) + texts.sizes(pairs[:, 1])
    for i in np.flatnonzero(cost > LARGE_CHARS).tolist():
        out[i] = _large_pair(texts.get(pairs[i]), -(-int(cost[i]) // LARGE_CHARS))
    rest = np.flatnonzero(cost <= LARGE_CHARS)
    rest = rest[np.argsort(pairs[rest, 1], kind="stable")]  # a row's pairs together: its text is read once
    total = np.cumsum(cost[rest])
    start = 0
    while start < len(rest):
        stop = max(start + 1, int(np.searchsorted(total, (total[start - 1] if start else 0) + VERIFY_CHARS, "right")))
        out[rest[start:stop]] = _batch(pairs[rest[start:stop]], texts)
        start = stop
    return out


def _large_pair(texts: list[str], parts: int) -> float:
    """Exact Jaccard of two huge texts in bounded memory: each text's shingle hashes are cut (a piece of the
    text at a time) into `parts` temporary files by hash modulo `parts`, and the sets are compared file by file
    (the files split the hash space, so the shared and distinct counts add up)."""
    with tempfile.TemporaryDirectory(prefix="sftdata-verify-") as folder:
        names = [[os.path.join(folder, f"{side}-{k}") for k in range(parts)] for side in range(2)]
        for side, text in enumerate(texts):
            handles = [open(name, "wb") for name in names[side]]  # closed below
            try:
                for cut in shingle_pieces(text):
                    residue = cut % np.uint64(parts)
                    for k in range(parts):
                        cut[residue == k].tofile(handles[k])
            finally:
                for handle in handles:
                    handle.close()
        shared = union = 0
        for left, right in zip(*names):
            a, b = distinct(np.fromfile(left, dtype=np.uint64)), distinct(np.fromfile(right, dtype=np.uint64))
            both = len(np.intersect1d(a, b, assume_unique=True))
            shared, union = shared + both, union + len(a) + len(b) - both
    return shared / union if union else 0.0


def _batch(pairs: np.ndarray, texts: Texts) -> np.ndarray:
    rows, local = np.unique(pairs, return_inverse=True)
    local = local.reshape(pairs.shape)
    owner, hashes = text_shingles(texts.get(rows))
    if not len(hashes):
        return np.zeros(len(pairs))
    order = np.argsort(hashes)
    new = np.ones(len(hashes), dtype=bool)
    new[1:] = hashes[order[1:]] != hashes[order[:-1]]
    ids = np.empty(len(hashes), dtype=np.int64)
    ids[order] = np.cumsum(new) - 1  # each shingle as 0..K-1
    width = int(ids[order[-1]]) + 1
    members = distinct(owner * width + ids)  # each row's distinct shingles: row, then shingle
    counts = np.bincount(members // width, minlength=len(rows))
    starts = np.cumsum(counts) - counts
    small, large = local[:, 0].copy(), local[:, 1].copy()
    swap = counts[small] > counts[large]  # look the smaller set up in the larger one
    small[swap], large[swap] = local[swap, 1], local[swap, 0]
    per_pair = counts[small]
    pair = np.repeat(np.arange(len(pairs)), per_pair)
    within = np.arange(len(pair)) - np.repeat(np.cumsum(per_pair) - per_pair, per_pair)
    query = large[pair] * width + members[starts[small][pair] + within] % width
    at = np.minimum(np.searchsorted(members, query), len(members) - 1)
    shared = np.bincount(pair[members[at] == query], minlength=len(pairs))
    union = counts[local[:, 0]] + counts[local[:, 1]] - shared
    return np.where(union > 0, shared / np.maximum(union, 1), 0.0)


def distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, ascending, by a sort (numpy 2.4's hash-based np.unique took 40x as long on 4M int64)."""
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


def verify(pairs: np.ndarray, exact_left: np.ndarray, exact_right: np.ndarray, texts: Texts, threshold: float,
           estimates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs (row numbers of `texts`) that are duplicates, with their scores: EXACT_SCORE for
    identical normalised texts, else the exact Jaccard similarity, kept at or above the threshold. With the
    pairs' MinHash `estimates`, a pair estimated below threshold - MARGIN is not read at all (see MARGIN)."""
    if not len(pairs):
        return pairs, np.zeros(0, dtype=np.float64)
    score = np.full(len(pairs), EXACT_SCORE)
    near = exact_left != exact_right
    score[near] = 0.0
    if estimates is not None:
        near &= estimates >= threshold - MARGIN
    near = np.flatnonzero(near)
    score[near] = jaccard(pairs[near], texts)
    keep = score >= threshold
    return pairs[keep], score[keep]


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


def verify_estimate(pairs: np.ndarray, exact_left: np.ndarray, exact_right: np.ndarray, sig: np.ndarray,
                    threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """verify on the signatures' estimate instead of the texts: what dedup did before exact verification,
    kept only so bench/dedup_bench.py can measure what the exact check costs. Never used by a command."""
    if not len(pairs):
        return pairs, np.zeros(0, dtype=np.float64)
    same = exact_left == exact_right
    near = np.round(estimate(sig, pairs[:, 0], pairs[:, 1]).astype(np.float64), 3)  # as dedup wrote it then
    keep = same | (near >= threshold)
    return pairs[keep], np.where(same[keep], EXACT_SCORE, near[keep])


def verdicts(best: np.ndarray, dropped: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row (all dropped unless `dropped` says which are): dropped as an exact duplicate, and the
    similarity to the row it duplicates (1.0 when exact), from the score of that pair."""
    dropped = np.ones(len(best), dtype=bool) if dropped is None else dropped
    exact = dropped & (best == EXACT_SCORE)
    similarity = np.where(exact, 1.0, np.where(dropped, best, 0.0)).astype(np.float64)
    return exact, similarity
