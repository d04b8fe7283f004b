"""An independent oracle of dedup's shingles, written from its definition (NFKC, casefold, whitespace collapsed;
character 3-grams where most letters are Asian, else 5-grams; a shorter text padded to one gram), never from
sftdata's code: tests/test_dedup_rule.py and bench/dedup_bench.py judge sftdata's decisions with it."""
from __future__ import annotations

import re
import unicodedata

ASIAN = ((0x1100, 0x11FF), (0x3040, 0x30FF), (0x3130, 0x318F), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
         (0xAC00, 0xD7AF), (0xF900, 0xFAFF))


def grams(text: str) -> set[str]:
    """The normalised text's character n-grams (the whole padded text when shorter)."""
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()
    letters = [c for c in text if c != " "]
    asian = sum(1 for c in letters if any(lo <= ord(c) <= hi for lo, hi in ASIAN))
    n = 3 if asian * 2 >= max(len(letters), 1) else 5
    text = text if len(text) >= n else text + "\0" * (n - len(text))
    return {f"{n}:{text[i:i + n]}" for i in range(len(text) - n + 1)}  # n-grams of another n never match
