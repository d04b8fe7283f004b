"""What dedup compares: a normalised text's set of character n-grams (its shingles), as 64-bit hashes.

Text is normalised (NFKC, casefold, whitespace collapsed) and cut into character n-grams, so
Korean, Chinese and Japanese work like any other script (word-based ROUGE tokenisers drop Hangul
and see zero similarity). n is 5 for alphabetic text and 3 for text whose characters are mostly
Hangul, CJK ideographs or kana, where one character already carries a syllable: 3-grams of Latin
letters saturate on long texts (unrelated 1,500-character English answers share up to 45% of their
3-grams, 23% of their 5-grams), while 5-grams of Hangul syllables miss one-word edits of short
sentences. A text shorter than n is one n-gram (padded with NUL). The hash of an n-gram includes n,
so two texts of different n share nothing (Jaccard 0).

sftdata.curate.minhash sketches these sets; sftdata.curate.verify compares two of them exactly.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence

import numpy as np

_U64 = np.uint64
_CJK = ((0x1100, 0x11FF), (0x3040, 0x30FF), (0x3130, 0x318F), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
        (0xAC00, 0xD7AF), (0xF900, 0xFAFF))
_GROUP_CHARS = 1 << 20  # characters per group of texts cut at once: ~50 MB of arrays at most
_BMP = 0xFFFF  # the last code point of the Basic Multilingual Plane (a noncharacter: not in _CJK)
_TABLE: np.ndarray | None = None  # _letter_table()
_HASH_BLOCK = 1 << 16  # n-gram positions hashed (characters counted) at a time: 512 KiB arrays


def normalise(text: str) -> str:
    """NFKC, casefold, every run of whitespace one space, none at the ends (str.split's whitespace: str.isspace).

    Most texts need only their line ends made spaces: when, after that, the text is printable (so its only
    whitespace is " ": every other str.isspace character is a control or separator, which str.isprintable
    refuses), has no two spaces in a row and none at either end, it is already collapsed; otherwise it is
    split and joined (four times faster than re.sub on a sentence, and half as fast as this check)."""
    folded = unicodedata.normalize("NFKC", text).casefold().replace("\n", " ")
    if folded.isprintable() and "  " not in folded and folded[:1] != " " and folded[-1:] != " ":
        return folded
    return " ".join(folded.split())


def pieces(texts: Sequence[str], overlap: int = 0) -> Iterator[tuple[np.ndarray, list[str]]]:
    """The texts in groups of about _GROUP_CHARS characters, as (owner index per piece, pieces), so
    the arrays built per group stay small whatever one text's length (a 50 MB row). A text longer
    than _GROUP_CHARS is cut into pieces that share `overlap` characters, so every n-gram of it
    (n = overlap + 1) lies whole in one piece; owners never decrease."""
    if texts and sum(map(len, texts)) <= _GROUP_CHARS:  # one group (a sketched batch, usually): no loop
        yield np.arange(len(texts), dtype=np.int64), list(texts)
        return
    owners: list[int] = []
    cut_texts: list[str] = []
    size = 0
    for i, text in enumerate(texts):
        if len(text) <= _GROUP_CHARS:
            cuts = [text]
        else:
            step = _GROUP_CHARS - overlap
            cuts = [text[start:start + _GROUP_CHARS] for start in range(0, len(text) - overlap, step)]
        for cut in cuts:
            if cut_texts and size + len(cut) > _GROUP_CHARS:
                yield np.array(owners, dtype=np.int64), cut_texts
                owners, cut_texts, size = [], [], 0
            owners.append(i)
            cut_texts.append(cut)
            size += len(cut)
    if cut_texts:
        yield np.array(owners, dtype=np.int64), cut_texts


def shingle_sizes(texts: Sequence[str]) -> np.ndarray:
    """Per normalised text: 3 when at least half of its non-space characters are Hangul, CJK or kana,
    else 5 (see the module docstring)."""
    cjk_total = np.zeros(len(texts), dtype=np.int64)
    letters_total = np.zeros(len(texts), dtype=np.int64)
    table = _letter_table()
    for owners, cut in pieces(texts):
        lengths = np.fromiter((len(t) for t in cut), dtype=np.int64, count=len(cut))
        codes = np.frombuffer("".join(cut).encode("utf-32-le"), dtype=np.uint32)
        if not len(codes):
            continue
        full = np.flatnonzero(lengths > 0)  # the pieces that have characters: their starts rise
        starts = (np.cumsum(lengths) - lengths)[full]
        sums = np.empty(len(full), dtype=np.int64)
        # whole pieces of about _HASH_BLOCK characters at a time, so the looked-up values stay in cache
        cuts = np.unique(np.append(np.searchsorted(starts, np.arange(0, len(codes), _HASH_BLOCK)), len(full)))
        for i, j in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
            low, high = starts[i], starts[j] if j < len(full) else len(codes)
            sums[i:j] = np.add.reduceat(table[np.minimum(codes[low:high], _BMP)], starts[i:j] - low)
        np.add.at(cjk_total, owners[full], sums & 0xFFFFFFFF)
        np.add.at(letters_total, owners[full], sums >> 32)
    return np.where(cjk_total * 2 >= np.maximum(letters_total, 1), 3, 5)


def _letter_table() -> np.ndarray:
    """What each character adds to its text's counts, by code point up to _BMP (every code point above the
    Basic Multilingual Plane is counted as _BMP, which is in no _CJK range): 1 << 32 for a non-space
    character, plus 1 for one in a _CJK range (a piece has under 2^32 characters, so neither count spills)."""
    global _TABLE
    if _TABLE is None:
        table = np.full(_BMP + 1, 1 << 32, dtype=np.int64)
        for lo, hi in _CJK:
            table[lo:hi + 1] += 1
        table[32] = 0
        _TABLE = table
    return _TABLE


def size_groups(sizes: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(n, the indices of the texts cut into n-grams) for each n that `sizes` holds, ascending (what np.unique
    would give, without numpy 2.4's np.unique importing numpy.ma: ~20 ms of every dedup process)."""
    for n in (3, 5):
        rows = np.flatnonzero(sizes == n)
        if len(rows):
            yield n, rows


def mix(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """splitmix64's finaliser, vectorised (uint64 arithmetic wraps); with `out` (which may be `x`), in place."""
    out = np.copy(x) if out is None else out
    if out is not x:
        out[...] = x
    shifted = np.empty_like(out)
    for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB), (31, None)):
        np.right_shift(out, _U64(shift), out=shifted)
        np.bitwise_xor(out, shifted, out=out)
        if factor is not None:
            np.multiply(out, _U64(factor), out=out)
    return out


def shingle_hashes(texts: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every character n-gram of every text (texts shorter than n count as one n-gram),
    and how many each text has."""
    padded = [t if len(t) >= n else t + "\0" * (n - len(t)) for t in texts]
    lengths = np.fromiter((len(t) for t in padded), dtype=np.int64, count=len(padded))
    codes = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32)
    width = max(len(codes) - n + 1, 0)  # n-grams of the joined texts
    # leave out the n-grams that straddle two texts: those starting in the last n - 1 characters of a text
    keep = np.ones(width, dtype=bool)
    ends = np.cumsum(lengths)
    for k in range(1, n):
        at = ends - k
        keep[at[at < width]] = False
    counts = lengths - n + 1
    out = np.empty(int(counts.sum()), dtype=_U64)
    done = 0
    for start in range(0, width, _HASH_BLOCK):  # a block's arrays stay in cache through the dozen steps
        stop = min(start + _HASH_BLOCK, width)
        block = codes[start:stop + n - 1].astype(_U64)
        rolling = block[:stop - start].copy()  # the n-gram's rolling hash, FNV-style: h = h * P + code
        for k in range(1, n):
            rolling *= _U64(0x100000001B3)
            rolling += block[k:k + stop - start]
        rolling += _U64(n)
        hashes = rolling[keep[start:stop]]
        out[done:done + len(hashes)] = mix(hashes, out=hashes)
        done += len(hashes)
    return out, counts


def shingle_pieces(text: str) -> Iterator[np.ndarray]:
    """The shingle hashes of one normalised text (repeats included), a piece of the text at a time."""
    n = int(shingle_sizes([text])[0])
    for _, cut in pieces([text], overlap=n - 1):
        yield shingle_hashes(cut, n)[0]


def text_shingles(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every shingle hash of every normalised text, repeats included, grouped by text: (text index per hash,
    hashes). Long texts are cut as the sketches cut them (`pieces`), so the sets are the same."""
    sizes = shingle_sizes(texts)
    owners, hashes = [np.zeros(0, np.int64)], [np.zeros(0, _U64)]
    for n, rows in size_groups(sizes):
        for owner, cut in pieces([texts[i] for i in rows], overlap=n - 1):
            h, counts = shingle_hashes(cut, n)
            owners.append(np.repeat(rows[owner], counts))
            hashes.append(h)
    return np.concatenate(owners), np.concatenate(hashes)
