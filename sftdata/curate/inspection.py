"""`sftdata inspect`: samples token by token, each token labelled as the trainer will treat it.

The ids and masks are the ones sftdata.tokenize.encode makes for `pretokenize` (not a re-implementation);
this module only labels them: BOS, prompt (masked: no loss), trained, EOS (a stop token ending a
trained span), and padding when `pad_to` asks to show what a collator would append.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..errors import OptionError
from ..items import Locator, Reject
from ..outcome import nothing_written
from ..rendering.plan import TemplateArgs, TrainOn
from ..tokenize.encode import Encoder, Tokenized, token_texts
from .samples import encoder_for, open_inputs, open_plan, rendered, tokenized


class TokenKind(str, Enum):
    bos = "bos"
    prompt = "prompt"  # masked: label -100
    trained = "trained"
    eos = "eos"  # trained: the stop token at the end of a trained span
    pad = "pad"  # appended by a collator; masked


@dataclass(frozen=True, slots=True)
class ShownToken:
    id: int
    text: str
    kind: TokenKind


@dataclass(slots=True)
class Shown:
    locator: Locator
    tokens: list[ShownToken]
    length: int
    trained: int
    problems: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"locator": self.locator.as_dict(), "length": self.length, "trained": self.trained,
                "problems": self.problems,
                "tokens": [{"id": t.id, "text": t.text, "kind": t.kind.value} for t in self.tokens]}


def label(encoder: Encoder, tok: Tokenized, pad_to: int | None = None) -> list[ShownToken]:
    ends = {end - 1 for _, end in tok.spans()}
    texts = token_texts(encoder, tok.input_ids)
    out = []
    for index, (token, text, masked) in enumerate(zip(tok.input_ids, texts, tok.mask)):
        if masked:
            kind = TokenKind.eos if index in ends and token in encoder.stop_ids else TokenKind.trained
        elif index == 0 and token == encoder.specials.bos_id:
            kind = TokenKind.bos
        else:
            kind = TokenKind.prompt
        out.append(ShownToken(token, text, kind))
    pad = encoder.specials.pad_id
    if pad_to is not None and pad is not None:
        out += [ShownToken(pad, encoder.specials.pad or "", TokenKind.pad)] * max(0, pad_to - tok.length)
    return out


@dataclass(slots=True)
class Inspected:
    """What `inspect_samples` found: the samples shown, the encoder that labelled them, how many samples render
    (counted as far as the reading went: all of them when it reached the end) and, when none is shown, why."""

    samples: list[Shown]
    encoder: Encoder
    rendered: int
    nothing_shown: str | None = None


def inspect_samples(inputs: Sequence[str | os.PathLike[str]], tokenizer: Any, *, template: str | None = None,
                    template_args: TemplateArgs = None, train_on: TrainOn = "all",
                    n: int = 3, skip: int = 0, pad_to: int | None = None) -> Inspected:
    """The first `n` samples (after `skip`) that render, labelled token by token; none shown (an input with no
    sample that renders, or `skip` past the last one) says why in `nothing_shown`."""
    if n < 1:
        raise OptionError("must be 1 or more", option="n", value=n)
    if skip < 0:
        raise OptionError("must be 0 or more", option="skip", value=skip)
    plan = open_plan(template, tokenizer, template_args=template_args, train_on=train_on)
    encoder = encoder_for(plan)
    inputs_ = open_inputs(inputs)
    examples: list[Reject] = []
    shown: list[Shown] = []
    count = 0  # samples that render, up to the last one shown
    for value in tokenized(rendered(inputs_.records(), plan), plan, encoder, batch=n):
        if isinstance(value, Reject):
            inputs_.counts.reject(value)
            if len(examples) < 5:
                examples.append(value)
            continue
        count += 1
        if count <= skip:
            continue
        tok = value.tokenized
        assert tok is not None
        shown.append(Shown(value.locator, label(encoder, tok, pad_to), tok.length, tok.trained_tokens,
                           [p.value for p in encoder.problems(tok)]))
        if len(shown) == n:
            break
    found = Inspected(shown, encoder, count)
    if not shown and count:
        held = f"{count:,} samples that render" if count > 1 else "1 sample that renders"
        found.nothing_shown = f"the input holds {held}; skipping {skip:,} leaves none to show (skip fewer than {count:,})"
    elif not shown:
        found.nothing_shown = nothing_written({**inputs_.counts.summary(), "written": 0}, examples)
    return found
