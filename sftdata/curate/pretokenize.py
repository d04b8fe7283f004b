"""`sftdata pretokenize`: records → token ids with the training masks TRL's SFTTrainer accepts.

Each output row is ``{"input_ids": [...], "completion_mask": [...]}`` for instruction and Q&A
templates (1 on the completion and its EOS) or ``{"input_ids": [...], "assistant_masks": [...]}``
for chat templates (1 on every assistant turn and its end-of-turn token). The ids and masks come
from sftdata.tokenize.encode, the code `inspect` and `stats` show. SFTTrainer takes a dataset with
``input_ids`` as already processed; it always applies ``assistant_masks``, and ``completion_mask``
only with ``SFTConfig(completion_only_loss=True)`` (its default is on only for prompt/completion
text columns).

No sample silently exceeds max_seq_length: with ``drop`` (the default) a longer sample goes to
OUT.rejects.jsonl (stage ``tokenize``, reason ``too_long``, counted as filtered; one whose text is
certainly too long is not tokenized at all, see sftdata.curate.samples.screen); with
``truncate`` the untrained tail after the last EOS and then the oldest tokens are cut (the prompt
first, after the BOS), so the completion's end and its EOS are always kept. Rows whose tokens break an invariant (no EOS at the end of a trained
span, a second one inside it, two BOS) are rejected rather than written.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..errors import OptionError
from ..ingest.records import record_row
from ..items import Reject, Stage
from ..provenance import build_meta
from ..rendering.plan import TemplateArgs, TrainOn
from ..schemas.records import RecordKind
from ..storage import location
from ..tokenize.encode import Tokenized
from ..writers import AtomicFile, dumps_line, meta_path, rejects_path, write_json
from .results import CurateResult, Progress, Ticker
from .samples import Sample, encoder_for, open_inputs, open_plan, rendered, tokenized


class Overflow(str, Enum):
    """What happens to a sample longer than max_seq_length: it is dropped, or truncated (`truncate`)."""

    drop = "drop"
    truncate = "truncate"


@dataclass(slots=True)
class OverflowCounts:
    """Samples longer than max_seq_length: how many (`over`), and of them how many were dropped or truncated
    under the run's `policy`."""

    policy: Overflow = Overflow.drop
    over: int = 0
    dropped: int = 0
    truncated: int = 0


@dataclass(slots=True)
class PretokenizeResult(CurateResult):
    """What `pretokenize` wrote: its figures go into the summary and OUT.meta.json."""

    max_seq_length: int = 0
    overflow: OverflowCounts = field(default_factory=OverflowCounts)
    columns: list[str] = field(default_factory=list)  # the mask columns written: completion_mask, assistant_masks
    tokens: int = 0  # tokens in all written samples


def truncate(tok: Tokenized, limit: int) -> Tokenized:
    """Fit `limit` tokens: the untrained tail after the last EOS goes (e.g. the newline a chat format
    puts after its end-of-turn token), then tokens from the front, after the BOS, which stays. The
    prompt is thus cut first, and the completion's end and its EOS are always kept."""
    if tok.length <= limit:
        return tok
    head = int(tok.bos_added)
    spans = tok.spans()
    end = spans[-1][1] if spans else tok.length
    start = max(head, end - (limit - head))
    ids = tok.input_ids[:head] + tok.input_ids[start:end]
    mask = tok.mask[:head] + tok.mask[start:end]
    bounds = [min(max(head, b - start + head), len(ids)) for b in tok.bounds]
    return Tokenized(ids, mask, bounds, list(tok.trained), tok.locator, tok.bos_added)


def mask_column(kind: RecordKind) -> str:
    return "assistant_masks" if kind is RecordKind.chat else "completion_mask"


def pretokenize(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *, tokenizer: Any,
                template: str, max_seq_length: int, on_overflow: Overflow = Overflow.drop,
                template_args: TemplateArgs = None, train_on: TrainOn = "all",
                progress: Progress | None = None, sidecar: bool = True) -> PretokenizeResult:
    """Records JSONL → OUT (JSONL of input_ids + mask), OUT.rejects.jsonl, OUT.meta.json (with `sidecar=False`,
    a split's, the meta is returned unwritten: sftdata.provenance)."""
    started = time.perf_counter()
    output = location(output)
    if max_seq_length < 2:
        raise OptionError("must be at least 2", option="max_seq_length", value=max_seq_length)
    plan = open_plan(template, tokenizer, template_args=template_args, train_on=train_on)
    encoder = encoder_for(plan)
    inputs_ = open_inputs(inputs)
    counts = inputs_.counts
    result = PretokenizeResult("pretokenize", counts, output, rejects_path(output), max_seq_length=max_seq_length,
                               overflow=OverflowCounts(on_overflow))
    overflow = result.overflow
    columns: set[str] = set()
    tokens = 0
    ticker = Ticker(progress)
    with AtomicFile(output) as out, AtomicFile(rejects_path(output)) as rej:
        drop = on_overflow is Overflow.drop
        for value in tokenized(rendered(inputs_.records(), plan), plan, encoder,
                               max_tokens=max_seq_length if drop else None,
                               too_long=lambda sample, least: _too_long(sample, least, max_seq_length, overflow)):
            ticker.tick()
            if isinstance(value, Sample):
                value = fit(value, encoder, max_seq_length, on_overflow, overflow)
            if isinstance(value, Reject):
                (counts.drop if value.stage is Stage.tokenize and value.reason == "too_long" else counts.reject)(value)
                result.add_example(value)
                rej.write(dumps_line(value.as_dict()))
                continue
            tok = value.tokenized
            assert tok is not None
            column = mask_column(plan.renderer_for(RecordKind(value.record.kind)).template.kind)
            columns.add(column)
            tokens += tok.length
            out.write(dumps_line({"input_ids": tok.input_ids, column: tok.mask}))
            counts.file(value.locator.file).written += 1
    ticker.close()
    specials = encoder.specials
    result.columns, result.tokens = sorted(columns), tokens
    extra = {**result.figures(), **plan.provenance(),
             "special_tokens": {"bos": specials.bos, "bos_id": specials.bos_id, "eos": specials.eos,
                                "eos_id": specials.eos_id, "pad": specials.pad, "pad_id": specials.pad_id,
                                "bos_added_by_tokenizer": specials.adds_bos},
             "tokenization": encoder.strategy.value,
             "trl": "SFTTrainer applies assistant_masks always, completion_mask with "
                    "SFTConfig(completion_only_loss=True)"}
    result.meta = build_meta("pretokenize", inputs_.paths, counts, output, result.rejects, extra, started,
                             hash_sources=sidecar)
    if sidecar:
        write_json(meta_path(output), result.meta)
    return result


def _too_long(sample: Sample, least: int, limit: int, overflow: OverflowCounts) -> Reject:
    """The reject for a sample certainly over the limit, found before tokenizing (sftdata.curate.samples.screen)."""
    overflow.over += 1
    overflow.dropped += 1
    return Reject(Stage.tokenize, "too_long", f"at least {least:,} tokens (found before tokenizing), more than "
                  f"--max-seq-length {limit} (--on-overflow drop)", sample.locator, raw=record_row(sample.record))


def fit(sample: Sample, encoder: Any, limit: int, policy: Overflow, overflow: OverflowCounts) -> Sample | Reject:
    tok = sample.tokenized
    assert tok is not None
    problems = encoder.problems(tok)
    if problems:
        return Reject(Stage.tokenize, problems[0].value, f"the tokens break an invariant: "
                      f"{', '.join(p.value for p in problems)}", sample.locator, raw=record_row(sample.record))
    if tok.length <= limit:
        return sample
    overflow.over += 1
    if policy is Overflow.drop:
        overflow.dropped += 1
        return Reject(Stage.tokenize, "too_long", f"{tok.length} tokens, more than --max-seq-length {limit} "
                      "(--on-overflow drop)", sample.locator, raw=record_row(sample.record))
    overflow.truncated += 1
    sample.tokenized = truncate(tok, limit)
    return sample
