"""The shared front of the curation commands: records JSONL → records → Rendered → Tokenized.

Records are read with the core's RecordParser and rendered with a RenderPlan (``--template``,
default ``auto``: ``chat`` for chat records, ``alpaca`` otherwise, with the tokenizer's EOS), so a
curation command sees exactly what ``sftdata render`` writes. Tokenizing runs in a helper thread
(tokenizers releases the GIL), one batch ahead of reading and rendering; a batch holds at most
``BATCH`` samples and ``BATCH_CHARS`` characters. Every sample passes `screen` first, so none longer
than sftdata.tokenize.encode.MAX_SAMPLE_CHARS is tokenized, nor one certainly over a command's drop limit.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import TokenizerError, option
from ..ingest.mapping import Mapped
from ..ingest.readers import expand_sources, read_items
from ..ingest.records import RecordParser, mapped_records, record_row
from ..ingest.sources import Source
from ..items import Counts, Locator, Reject, Rendered, Stage, Style
from ..rendering.plan import AUTO, RenderPlan, TemplateArgs, TrainOn, parse_template_args
from ..schemas.records import Record, RecordKind
from ..tokenize.encode import MAX_SAMPLE_CHARS, Encoder, Tokenized
from ..tokenize.light import load_light
from ..tokenize.load import load_tokenizer

T = TypeVar("T")
BATCH = 512
BATCH_CHARS = 2 * MAX_SAMPLE_CHARS


@dataclass(slots=True)
class Sample:
    record: Record
    rendered: Rendered
    tokenized: Tokenized | None = None

    @property
    def locator(self) -> Locator:
        return self.rendered.locator


@dataclass(slots=True)
class Inputs:
    """Expanded input files (or splits of them, sftdata.scale) with their counts started; `records()` streams
    them once per call."""

    sources: list[Source]
    counts: Counts
    kind: RecordKind | None = None

    @property
    def paths(self) -> list[Path]:
        return list(dict.fromkeys(s.path for s in self.sources))

    def records(self, counts: Counts | None = None) -> Iterator[Mapped | Reject]:
        counts = counts if counts is not None else self.counts
        for source in self.sources:
            counts.file(source.name)
        return mapped_records(read_items(self.sources), RecordParser(self.kind), counts, None)


def open_inputs(inputs: Iterable[str | os.PathLike[str] | Source], kind: RecordKind | None = None) -> Inputs:
    sources = expand_sources(list(inputs))
    counts = Counts()
    for source in sources:
        counts.file(source.name)
    return Inputs(sources, counts, kind)


def load(tokenizer: Any) -> tuple[Any, str]:
    """(tokenizer object, how the user named it): a directory, .gguf file or hub id is loaded here
    (with `tokenizers` alone where that is exact: sftdata.tokenize.light); a loaded one is used as is."""
    if isinstance(tokenizer, (str, os.PathLike)):
        return load_light(tokenizer) or load_tokenizer(tokenizer), os.fspath(tokenizer)
    if tokenizer is None:
        raise TokenizerError("this command needs a tokenizer", hint=f"pass {option('tokenizer', 'DIR|FILE.gguf|HUB_ID')}")
    return tokenizer, str(getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__)


def open_plan(template: str | None, tokenizer: Any, spec: str | None = None, *, template_args: TemplateArgs = None,
              train_on: TrainOn = "all") -> RenderPlan:
    """A RenderPlan (text style, the tokenizer's EOS) for a tokenizer given as a path/hub id or loaded."""
    if spec is None:
        tokenizer, spec = load(tokenizer)
    plan = RenderPlan(Style.text, template or AUTO, None, spec, tokenizer, template_args=parse_template_args(template_args),
                      train_on=train_on)
    if plan.template != AUTO:
        plan.renderer_for(RecordKind.instruction)  # fail fast on a bad template, as make_plan does
    return plan


def encoder_for(plan: RenderPlan) -> Encoder:
    """An Encoder for the plan's tokenizer whose stop tokens are the EOS and end-of-turn strings of
    every renderer the plan has built (call `note_renderers` as more are built)."""
    encoder = Encoder(plan.tokenizer_obj)
    note_renderers(plan, encoder)
    return encoder


def note_renderers(plan: RenderPlan, encoder: Encoder) -> None:
    for renderer in plan.renderers.values():
        for text in (renderer.eos, renderer.template.end_of_turn, *renderer.ends):
            if text:
                encoder.add_stop(text)


def rendered(stream: Iterable[Mapped | Reject], plan: RenderPlan) -> Iterator[Sample | Reject]:
    for value in stream:
        if isinstance(value, Reject):
            yield value
            continue
        out = plan.renderer_for(RecordKind(value.record.kind)).render(value.record, value.locator)
        yield out if isinstance(out, Reject) else Sample(value.record, out)


TooLong = Callable[[Sample, int], Reject]


def screen(sample: Sample, encoder: Encoder, max_tokens: int | None = None,
           too_long: TooLong | None = None) -> Reject | None:
    """The check every tokenizing command makes before tokenizing (Encoder.screen): a Reject with the
    record as `raw`, or None. `max_tokens` is the caller's limit when it drops longer samples;
    `too_long(sample, at_least)` words the reject for one certainly over it (default: stage
    tokenize, reason ``too_long``)."""
    verdict = encoder.screen(sample.rendered, max_tokens)
    if verdict is None:
        return None
    if isinstance(verdict, Reject):
        verdict.raw = record_row(sample.record)
        return verdict
    if too_long is not None:
        return too_long(sample, verdict)
    return Reject(Stage.tokenize, "too_long", f"at least {verdict:,} tokens, more than {max_tokens:,}",
                  sample.locator, raw=record_row(sample.record))


def tokenized(stream: Iterable[Sample | Reject], plan: RenderPlan, encoder: Encoder, batch: int = BATCH, *,
              max_tokens: int | None = None, too_long: TooLong | None = None) -> Iterator[Sample | Reject]:
    """Samples with `tokenized` filled in, in input order; one batch is tokenized in a helper thread
    while the next is read and rendered. Samples `screen` stops (with `max_tokens` and `too_long`)
    come out as Rejects instead, untokenized."""

    def encode(values: list[Sample | Reject]) -> list[Sample | Reject]:
        samples = [v for v in values if isinstance(v, Sample)]
        for sample, tok in zip(samples, encoder.encode([s.rendered for s in samples])):
            sample.tokenized = tok
        return values

    def screened() -> Iterator[Sample | Reject]:
        for value in stream:
            if isinstance(value, Sample):
                value = screen(value, encoder, max_tokens, too_long) or value
            yield value

    with ThreadPoolExecutor(1, thread_name_prefix="sftdata-tokenize") as pool:
        pending: Future[list[Sample | Reject]] | None = None
        for values in batches(screened(), batch, _chars, BATCH_CHARS):
            note_renderers(plan, encoder)  # renderers are built lazily, on the first record of a kind
            submitted = pool.submit(encode, values)
            if pending is not None:
                yield from pending.result()
            pending = submitted
        if pending is not None:
            yield from pending.result()


def batches(items: Iterable[T], size: int, cost: Callable[[T], int] | None = None,
            budget: int = 0) -> Iterator[list[T]]:
    """Lists of at most `size` items, and, with `cost`, of at most `budget` in total (or one item)."""
    batch: list[T] = []
    spent = 0
    for item in items:
        if cost is not None:
            price = cost(item)
            if batch and spent + price > budget:
                yield batch
                batch, spent = [], 0
            spent += price
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch, spent = [], 0
    if batch:
        yield batch


def _chars(value: Sample | Reject) -> int:
    return value.rendered.chars if isinstance(value, Sample) else 0
