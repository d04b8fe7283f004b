"""Rendered → Tokenized: the one place input_ids and training masks are made.

`stats`, `inspect`, `audit`, `filter --max-tokens` and `pretokenize` all call `Encoder.encode`, so
the mask a user inspects is the mask the trainer gets.

How: each segment of a Rendered value (prompt, completion, every chat turn) is tokenized on its
own with ``add_special_tokens=False``, and the tokenizer's BOS is put in front once when the
tokenizer adds one by itself (Gemma does; SmolLM2 does not) and the text does not already begin
with it. Segment boundaries are then token boundaries, so the mask covers exactly the trained text,
the prompt tokens are the ones the model sees at inference (where the prompt is tokenized alone),
and ``decode(input_ids) == [BOS] + rendered text`` for tokenizers whose pieces concatenate (byte-level
BPE, SentencePiece without a dummy prefix). A tokenizer that prefixes every piece with a space
(Metaspace ``prepend_scheme="always"``) fails that probe; it is tokenized whole with an offset
mapping instead, each token belonging to the segment where it starts.

Before tokenizing, `Encoder.screen` turns away what must not reach the tokenizer whole (a 50 MB row
took the Hugging Face tokenizer 185 s and 8 GB): a sample of more than ``MAX_SAMPLE_CHARS``
characters, always, and, where the command drops samples over a token limit, one that is certainly
over it: every token covers at most L bytes of the text (L = the longest token of the vocabulary, see
`TokenBound`), so a segment of B UTF-8 bytes takes at least ceil(B / L) tokens.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .errors import TokenizerError
from .items import Locator, Reject, Stage
from .templating import Rendered

MAX_SAMPLE_CHARS = 1_000_000
"""No command tokenizes a rendered sample longer than this many characters (a few hundred thousand
tokens, far beyond any context length): it is rejected (stage ``tokenize``, reason ``too_large``)
before the tokenizer sees it, so one enormous row cannot take GBs. Tokenizing 1,000,000 characters
takes at most ~5 s and ~0.5 GB (CJK text with SmolLM2's tokenizer, 2.7 million tokens)."""

_PROBE = ["Hello", " world", "\n\n안녕하세요", " 세계", "x  y", "!"]


class Strategy(str, Enum):
    piecewise = "piecewise"
    offsets = "offsets"


class Problem(str, Enum):
    """What can be wrong with one tokenized sample (sftdata.audit explains each)."""

    eos_missing = "eos_missing"  # a trained span does not end with the EOS / end-of-turn token
    eos_doubled = "eos_doubled"  # a trained span holds a second stop token
    bos_doubled = "bos_doubled"  # two BOS at the start
    nothing_trained = "nothing_trained"  # no token carries a loss


@dataclass(slots=True)
class Tokenized:
    """Token ids with the training mask (1 = the loss is taken on this token) and segment bounds."""

    input_ids: list[int]
    mask: list[int]
    bounds: list[int]  # token index where each segment ends (segment i is bounds[i-1]..bounds[i])
    trained: list[bool]  # per segment
    locator: Locator
    bos_added: bool = False  # the tokenizer's own BOS, put in front by the encoder

    @property
    def length(self) -> int:
        return len(self.input_ids)

    def spans(self) -> list[tuple[int, int]]:
        """[start, end) token ranges of the trained segments."""
        out, start = [], int(self.bos_added)
        for end, train in zip(self.bounds, self.trained):
            if train and end > start:
                out.append((start, end))
            start = end
        return out

    @property
    def completion_start(self) -> int:
        """First token of the last trained segment (the completion of instruction/Q&A records)."""
        spans = self.spans()
        return spans[-1][0] if spans else self.length

    @property
    def trained_tokens(self) -> int:
        return sum(self.mask)


@dataclass(frozen=True, slots=True)
class Specials:
    """The tokenizer's special tokens, and what it adds by itself when asked to."""

    bos: str | None
    bos_id: int | None
    eos: str | None
    eos_id: int | None
    pad: str | None
    pad_id: int | None
    adds_bos: bool
    adds_eos: bool


class Encoder:
    """Tokenizes Rendered values with one tokenizer; `stop_texts` are the EOS / end-of-turn strings
    the renderers end trained spans with; longer samples than `max_chars` are never tokenized."""

    def __init__(self, tokenizer: Any, stop_texts: Iterable[str] = (), max_chars: int = MAX_SAMPLE_CHARS) -> None:
        self.tokenizer = tokenizer
        self.max_chars = max_chars
        self._bound: TokenBound | None | bool = False  # False: not analysed yet
        self.backend = getattr(tokenizer, "backend_tokenizer", None)
        self.specials = _specials(tokenizer)
        self.stop_ids: set[int] = set()
        self.stop_texts: set[str] = set()
        self.multi_token_stops: dict[str, list[int]] = {}
        for text in {*stop_texts, *([self.specials.eos] if self.specials.eos else [])}:
            self.add_stop(text)
        self.strategy = Strategy.piecewise if self._pieces_concatenate() else Strategy.offsets

    def add_stop(self, text: str) -> None:
        if text in self.stop_texts:
            return
        self.stop_texts.add(text)
        ids = self._encode([text])[0]
        if len(ids) == 1:
            self.stop_ids.add(ids[0])
        else:
            self.multi_token_stops[text] = ids

    @property
    def bound(self) -> TokenBound | None:
        """How few tokens a text can take with this tokenizer; None where no sound bound is known."""
        if self._bound is False:
            self._bound = token_bound(self.tokenizer)
        return self._bound  # type: ignore[return-value]

    def min_tokens(self, rendered: Rendered) -> int | None:
        """A number of tokens `encode` certainly gives at least (without the BOS it may add); None
        where the tokenizer allows no sound bound."""
        bound = self.bound
        if bound is None:
            return None
        if self.strategy is Strategy.offsets:  # tokenized whole
            return bound.min_tokens(sum(bound.covered_bytes(s.text) for s in rendered.segments))
        return sum(bound.min_tokens(bound.covered_bytes(s.text)) for s in rendered.segments)

    def screen(self, rendered: Rendered, max_tokens: int | None = None) -> Reject | int | None:
        """What stops a sample before tokenizing: a Reject (stage tokenize, reason ``too_large``) when
        its text is longer than `max_chars`; with `max_tokens` (a limit over which the caller drops
        samples), the number of tokens it certainly exceeds that limit with (the caller makes the
        reject, in its own words). None: tokenize it."""
        if max_tokens is not None:
            least = self.min_tokens(rendered)
            if least is not None and least > max_tokens:
                return least
        chars = sum(len(s.text) for s in rendered.segments)
        if chars > self.max_chars:
            return Reject(Stage.tokenize, "too_large", f"sample of {chars:,} characters exceeds the "
                          f"{self.max_chars:,}-character limit for tokenizing", rendered.locator)
        return None

    def encode(self, batch: Sequence[Rendered]) -> list[Tokenized]:
        if self.strategy is Strategy.offsets:
            return [self._encode_whole(r) for r in batch]
        texts = [s.text for r in batch for s in r.segments]
        pieces = self._encode(texts)
        out, at = [], 0
        for rendered in batch:
            n = len(rendered.segments)
            out.append(self._assemble(rendered, pieces[at:at + n]))
            at += n
        return out

    def _assemble(self, rendered: Rendered, pieces: list[list[int]]) -> Tokenized:
        ids: list[int] = []
        mask: list[int] = []
        bounds: list[int] = []
        bos_added = self._wants_bos(pieces)
        if bos_added:
            ids.append(self.specials.bos_id)  # type: ignore[arg-type]
            mask.append(0)
        for segment, piece in zip(rendered.segments, pieces):
            ids += piece
            mask += [int(segment.train)] * len(piece)
            bounds.append(len(ids))
        return Tokenized(ids, mask, bounds, [s.train for s in rendered.segments], rendered.locator, bos_added)

    def _wants_bos(self, pieces: list[list[int]]) -> bool:
        if not self.specials.adds_bos:
            return False
        first = next((p for p in pieces if p), [])
        return not (first and first[0] == self.specials.bos_id)

    def _encode_whole(self, rendered: Rendered) -> Tokenized:
        text = rendered.text
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(encoded["input_ids"]), encoded["offset_mapping"]
        ends, at = [], 0
        for segment in rendered.segments:
            at += len(segment.text)
            ends.append(at)
        bounds, seg = [0] * len(ends), 0
        mask: list[int] = []
        for index, (start, _) in enumerate(offsets):
            while seg < len(ends) - 1 and start >= ends[seg]:
                seg += 1
            mask.append(int(rendered.segments[seg].train))
            bounds[seg] = index + 1
        for i in range(1, len(bounds)):
            bounds[i] = max(bounds[i], bounds[i - 1])
        bos_added = self._wants_bos([ids])
        if bos_added:
            ids, mask, bounds = [self.specials.bos_id, *ids], [0, *mask], [b + 1 for b in bounds]  # type: ignore[list-item]
        return Tokenized(ids, mask, bounds, [s.train for s in rendered.segments], rendered.locator, bos_added)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        if self.backend is not None:
            return [e.ids for e in self.backend.encode_batch(texts, add_special_tokens=False)]
        return [list(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def _pieces_concatenate(self) -> bool:
        ids = [i for piece in self._encode(_PROBE) for i in piece]
        return self.decode(ids) == "".join(_PROBE)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def expected_text(self, rendered: Rendered, tokenized: Tokenized) -> str:
        """What decode(input_ids) must give: the rendered text, after the BOS the encoder added."""
        return (self.specials.bos if tokenized.bos_added else "") + rendered.text  # type: ignore[operator]

    def problems(self, tokenized: Tokenized) -> list[Problem]:
        """Invariants of one sample: each trained span ends with exactly one stop token and holds
        no other, at most one BOS at the start, and something is trained."""
        found: list[Problem] = []
        spans = tokenized.spans()
        if not spans:
            found.append(Problem.nothing_trained)
        ids = tokenized.input_ids
        for start, end in spans:
            if ids[end - 1] not in self.stop_ids:
                found.append(Problem.eos_missing)
            if any(i in self.stop_ids for i in ids[start:end - 1]):
                found.append(Problem.eos_doubled)
        bos = self.specials.bos_id
        if bos is not None and len(ids) > 1 and ids[0] == bos and ids[1] == bos:
            found.append(Problem.bos_doubled)
        return sorted(set(found), key=list(Problem).index)


def _specials(tokenizer: Any) -> Specials:
    def token_id(text: str | None) -> int | None:
        return tokenizer.convert_tokens_to_ids(text) if text else None

    bos, eos, pad = tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token
    if not eos:
        raise TokenizerError("the tokenizer defines no EOS token", hint="pass a tokenizer with an eos_token")
    plain = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    bos_id, eos_id = token_id(bos), token_id(eos)
    adds_bos = bos_id is not None and len(full) > len(plain) and full[0] == bos_id
    adds_eos = eos_id is not None and len(full) > len(plain) and full[-1] == eos_id
    return Specials(bos, bos_id, eos, eos_id, pad, token_id(pad), adds_bos, adds_eos)


def token_texts(encoder: Encoder, ids: Sequence[int]) -> list[str]:
    """A display string per token: tokens that end inside a multi-byte character show nothing and
    the character appears on the token that completes it."""
    out: list[str] = []
    pending: list[int] = []
    for token in ids:
        pending.append(token)
        text = encoder.decode(pending)
        if "\ufffd" in text and len(pending) < 4:
            out.append("")
            continue
        out.append(text)
        pending = []
    if pending:
        out[-1] = encoder.decode(pending)
    return out


# --- a lower bound on the number of tokens, from the vocabulary -----------------------------------

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
