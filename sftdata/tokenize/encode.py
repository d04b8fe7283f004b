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
`sftdata.tokenize.bound`), so a segment of B UTF-8 bytes takes at least ceil(B / L) tokens.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import accumulate, chain
from typing import Any

import numpy as np

from ..errors import TokenizerError
from ..items import Locator, Reject, Rendered, Stage
from .bound import TokenBound, token_bound

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
    """What can be wrong with one tokenized sample (sftdata.curate.audit explains each)."""

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

    def ends_with_stop(self, span: Sequence[int]) -> bool:
        """A stop token, or the text of a stop that this tokenizer splits into several tokens (an
        end-of-turn marker of another model family: `audit` reports that it is not one token)."""
        if span and span[-1] in self.stop_ids:
            return True
        if not self.multi_token_stops:
            return False
        longest = max(len(ids) for ids in self.multi_token_stops.values())
        tail = self.decode(span[-(longest + 2):])  # BPE may merge the marker's first piece with the text before
        return any(tail.endswith(text) for text in self.multi_token_stops)

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
        if self.strategy is Strategy.offsets or rendered.whole:  # tokenized whole
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
        chars = rendered.chars
        if chars > self.max_chars:
            return Reject(Stage.tokenize, "too_large", f"sample of {chars:,} characters exceeds the "
                          f"{self.max_chars:,}-character limit for tokenizing", rendered.locator)
        return None

    def encode(self, batch: Sequence[Rendered]) -> list[Tokenized]:
        """Instruction and Q&A samples piece by piece (the prompt as inference tokenizes it alone); chats
        whole, as a conversation is tokenized, so the ids are transformers' own. A chat where a token would
        straddle the end of a trained turn (end-of-turn markers that are not special tokens of this tokenizer) is
        tokenized piece by piece instead, so its trained spans stay exact."""
        whole = [r for r in batch if r.whole or self.strategy is Strategy.offsets]
        done = {id(r): t for r, t in zip(whole, self._encode_wholes(whole)) if t is not None}
        rest = [r for r in batch if id(r) not in done]
        pieces = self._encode([s.text for r in rest for s in r.segments])
        at = 0
        for rendered in rest:
            n = len(rendered.segments)
            done[id(rendered)] = self._assemble(rendered, pieces[at:at + n])
            at += n
        return [done[id(r)] for r in batch]

    def _encode_wholes(self, batch: list[Rendered]) -> list[Tokenized | None]:
        if not batch:
            return []
        if self.backend is not None:
            encoded = self.backend.encode_batch([r.text for r in batch], add_special_tokens=False)
            return [self._encode_whole(r, e.ids, e.offsets) for r, e in zip(batch, encoded)]
        out = []
        for rendered in batch:
            e = self.tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
            out.append(self._encode_whole(rendered, list(e["input_ids"]), e["offset_mapping"]))
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

    def _encode_whole(self, rendered: Rendered, ids: list[int],
                      offsets: Sequence[tuple[int, int]]) -> Tokenized | None:
        """Ids and mask of a text tokenized whole, from each token's character offsets: a token is trained when it
        overlaps a trained segment (chats) or starts in one (other samples); `bounds` count the tokens that start
        before each segment's end. Array operations over the offsets, not a Python loop per token."""
        ids = list(ids)
        ends = list(accumulate(len(segment.text) for segment in rendered.segments))
        trained = np.array([segment.train for segment in rendered.segments], dtype=bool)
        spans = np.fromiter(chain.from_iterable(offsets), dtype=np.int64, count=2 * len(offsets)).reshape(-1, 2)
        starts, stops = spans[:, 0], np.maximum(spans[:, 1], spans[:, 0] + 1)  # an empty token covers its start
        # the segment each token starts in, never an earlier one than the token before's (offsets out of order)
        segment_of = np.maximum.accumulate(np.searchsorted(np.array(ends[:-1], dtype=np.int64), starts, side="right"))
        # A token across the start of a turn ("\n\n" where the header's newline meets the turn's) is trained, as
        # transformers' assistant mask has it; one across the end would hide the stop marker in a merged token.
        highs = np.array(ends, dtype=np.int64)[trained]  # where each trained segment ends
        if rendered.whole and self.strategy is Strategy.piecewise:
            if ((starts[:, None] < highs) & (spans[:, 1][:, None] > highs)).any():
                return None
        if rendered.whole:
            lows = np.array([0, *ends[:-1]], dtype=np.int64)[trained]
            mask = ((starts[:, None] < highs) & (stops[:, None] > lows)).any(axis=1) if len(highs) else \
                np.zeros(len(starts), dtype=bool)
        else:
            mask = trained[segment_of]
        bounds = [*np.searchsorted(segment_of, np.arange(len(ends) - 1), side="right").tolist(), len(ids)]
        mask_list = mask.astype(np.int8).tolist()
        bos_added = self._wants_bos([ids])
        if bos_added:
            ids, mask_list, bounds = [self.specials.bos_id, *ids], [0, *mask_list], [b + 1 for b in bounds]  # type: ignore[list-item]
        return Tokenized(ids, mask_list, bounds, trained.tolist(), rendered.locator, bos_added)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        if self.backend is not None:
            return [e.ids for e in self.backend.encode_batch(texts, add_special_tokens=False)]
        return [list(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def _pieces_concatenate(self) -> bool:
        ids = [i for piece in self._encode(_PROBE) for i in piece]
        return self.decode(ids) == "".join(_PROBE)

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's ids, without special tokens (token counts of parts of a sample)."""
        return self._encode(texts)

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
            if not self.ends_with_stop(ids[start:end]):
                found.append(Problem.eos_missing)
            stop = ids[end - 1]  # its own stop twice (gpt-oss's answer may hold an <|end|> before its <|return|>)
            if stop in self.stop_ids and stop in ids[start:end - 1]:
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
