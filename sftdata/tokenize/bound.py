"""A lower bound on how many tokens a text takes, from the tokenizer's vocabulary and pipeline.

`Encoder.screen` (sftdata/tokenize/encode.py) uses it to drop a sample that is certainly over a token limit
without tokenizing it: every token covers at most L bytes of the text (L = the longest token), so a
segment of B UTF-8 bytes takes at least ceil(B / L) tokens. Where no such L exists (a token can
cover text of any length, or text can vanish), there is no bound and only the character cap applies.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

UNICODE_SHRINK = 12
"""How many times fewer UTF-8 bytes a Unicode normalizer (NFC, NFD, NFKC, NFKD, Lowercase) can
leave: 4 per character (NFKC maps U+1FBF9, 4 bytes, to "9") times 3 per composition (three 3-byte
Hangul jamo compose into one 3-byte syllable); Lowercase at most 3 (U+212A KELVIN SIGN to "k")."""
_KEEPS_TEXT = {"ByteLevel", "Metaspace", "Split", "Digits", "Punctuation", "UnicodeScripts"}
_UNICODE = {"NFC", "NFD", "NFKC", "NFKD", "Lowercase"}
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class TokenBound:
    """Every token covers at most `longest` bytes of the text the model sees (the normalized text;
    under a ByteLevel pre-tokenizer one character per byte), and the normalizer leaves at least
    1/`shrink` of the input's bytes, so B input bytes take at least ceil(B / (longest × shrink))
    tokens. Where an added token strips the whitespace beside it (lstrip/rstrip) it can swallow any
    amount of whitespace, so only the other bytes count (`skip_space`)."""

    longest: int
    shrink: int = 1
    skip_space: bool = False

    def covered_bytes(self, text: str) -> int:
        if self.skip_space:
            text = _SPACE.sub("", text)
        return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))

    def min_tokens(self, size: int) -> int:
        return -(-size // (self.longest * self.shrink))


def token_bound(tokenizer: Any) -> TokenBound | None:
    """The TokenBound of a tokenizer backed by `tokenizers` with a BPE model, from its vocabulary and
    pipeline; None where a token can cover text of any length or text can vanish: another model
    (WordPiece and WordLevel map a whole unknown word to one [UNK], Unigram fuses unknown runs), BPE
    fusing unknown characters without a byte fallback for each, a normalizer or pre-tokenizer that
    removes text (Strip, StripAccents, BertNormalizer, Precompiled, a Replace by less, Whitespace,
    a Split that removes its matches), or a slow tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    try:
        model = backend.model  # type: ignore[union-attr]
        if type(model).__name__ != "BPE":
            return None
        normalizer, pre = _state(backend.normalizer), _state(backend.pre_tokenizer)  # type: ignore[union-attr]
        vocab = backend.get_vocab(with_added_tokens=False)  # type: ignore[union-attr]
        added = list(backend.get_added_tokens_decoder().values())  # type: ignore[union-attr]
    except Exception:  # no backend, or one this code does not know
        return None
    shrink = _shrink(normalizer)
    if shrink is None or not _keeps_text(pre):
        return None
    byte_level = _has(pre, "ByteLevel")
    unk = model.unk_token
    if unk is not None:
        byte_fallback = model.byte_fallback and all(f"<0x{b:02X}>" in vocab for b in range(256))
        if model.fuse_unk and not byte_fallback:
            return None  # a run of unknown characters of any length becomes one token
    # A model token's string is the text it covers, after a continuing-subword prefix or end-of-word
    # suffix (which only make it longer); under ByteLevel each character stands for one byte.
    longest = max((len(t) if byte_level else len(t.encode("utf-8", "surrogatepass")) for t in vocab), default=1)
    if unk is not None:
        longest = max(longest, 4)  # the unknown token covers one character
    longest = max([longest, *(len(a.content.encode("utf-8", "surrogatepass")) for a in added)])
    skip_space = any(a.lstrip or a.rstrip for a in added)
    if skip_space and shrink != 1:
        return None  # a normalizer could make whitespace a stripping token then swallows
    return TokenBound(max(longest, 1), shrink, skip_space)


def _state(component: Any) -> dict[str, Any] | None:
    return None if component is None else json.loads(component.__getstate__())


def _shrink(normalizer: dict[str, Any] | None) -> int | None:
    if normalizer is None:
        return 1
    kind = normalizer.get("type")
    if kind == "Sequence":
        total = 1
        for part in normalizer.get("normalizers") or []:
            factor = _shrink(part)
            if factor is None:
                return None
            total *= factor
        return total
    if kind == "Prepend":
        return 1
    if kind in _UNICODE:
        return UNICODE_SHRINK
    if kind == "Replace":
        pattern, content = (normalizer.get("pattern") or {}).get("String"), normalizer.get("content")
        if not isinstance(pattern, str) or not isinstance(content, str) or not pattern or not content:
            return None  # a regular expression or a deletion: any amount of text can go
        size, replaced = len(pattern.encode("utf-8")), len(content.encode("utf-8"))
        return max(1, -(-size // replaced))
    return None


def _keeps_text(pre: dict[str, Any] | None) -> bool:
    if pre is None:
        return True
    kind = pre.get("type")
    if kind == "Sequence":
        return all(_keeps_text(p) for p in pre.get("pretokenizers") or [])
    return kind in _KEEPS_TEXT and pre.get("behavior") != "Removed"


def _has(pre: dict[str, Any] | None, kind: str) -> bool:
    if pre is None:
        return False
    if pre.get("type") == "Sequence":
        return any(_has(p, kind) for p in pre.get("pretokenizers") or [])
    return pre.get("type") == kind
