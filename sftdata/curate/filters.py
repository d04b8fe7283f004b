"""`sftdata filter`: drop rows by length, token count, deny patterns, language mix or refusals.

Every dropped row goes to OUT.rejects.jsonl with its reason (stage ``filter``) and is counted as
filtered, so read = written + rejected + filtered. Lengths in characters are of the whole record
text (prompt and answer); tokens are of the sample as rendered with the template and the
tokenizer's EOS, by the same encoder `pretokenize` uses.
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import OptionError, option
from ..ingest.mapping import Mapped
from ..ingest.records import record_row
from ..items import Reject, Stage
from ..provenance import build_meta
from ..rendering.plan import TemplateArgs, TrainOn
from ..schemas.records import RecordKind
from ..storage import location
from ..writers import AtomicFile, dumps_line, meta_path, rejects_path, write_json
from .fields import Side, record_text
from .results import CurateResult, Progress, Ticker
from .samples import (
    BATCH_CHARS,
    Sample,
    batches,
    encoder_for,
    note_renderers,
    open_inputs,
    open_plan,
    screen,
)
from .textquality import check_lang, refusal, script_share


@dataclass(slots=True)
class FilterSpec:
    min_chars: int | None = None
    max_chars: int | None = None
    max_tokens: int | None = None
    max_reasoning_tokens: int | None = None
    deny: list[str] = field(default_factory=list)
    lang: str | None = None
    min_lang_share: float | None = None  # given without `lang` it would check nothing: refused; default 0.5
    drop_refusals: bool = False

    def __post_init__(self) -> None:
        """Values that cannot work are an OptionError before any row is read: a bound out of range, or bounds
        that contradict each other and would drop every row."""
        for name, least in (("min_chars", 0), ("max_chars", 1), ("max_tokens", 1), ("max_reasoning_tokens", 0)):
            value = getattr(self, name)
            if value is not None and value < least:
                raise OptionError(f"must be {least} or more", option=name, value=value)
        if self.min_chars is not None and self.max_chars is not None and self.min_chars > self.max_chars:
            raise OptionError(f"is more than the longest length kept (max_chars {self.max_chars}): every row would "
                              "be dropped", option="min_chars", value=self.min_chars)
        if self.min_lang_share is None:
            self.min_lang_share = 0.5
        elif self.lang is None:
            raise OptionError("is a share of the letters written in a language, and no language is given: it would "
                              "check nothing", option="min_lang_share", value=self.min_lang_share,
                              hint=f"add {option('lang', 'ko')} (or another language)")
        if not 0 <= self.min_lang_share <= 1:
            raise OptionError("is a share of the letters: it must be between 0 and 1", option="min_lang_share",
                              value=self.min_lang_share, hint="0.5 keeps rows whose letters are at least half in that script")

    def compiled(self) -> list[re.Pattern[str]]:
        out = []
        for pattern in self.deny:
            try:
                out.append(re.compile(pattern))
            except re.error as error:
                raise OptionError(f"not a regular expression: {error}", option="deny", value=pattern) from None
        return out

    def describe(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("min_chars", "max_chars", "max_tokens", "deny", "lang",
                                              "min_lang_share", "drop_refusals")}


class RowFilter:
    """The text filters of a spec, one row at a time: None to keep it, or the Reject that drops it."""

    def __init__(self, spec: FilterSpec) -> None:
        self.spec, self.deny = spec, spec.compiled()
        if spec.lang:
            check_lang(spec.lang)

    def check(self, mapped: Mapped) -> Reject | None:
        spec, record = self.spec, mapped.record
        text = record_text(record, Side.all)

        def drop(reason: str, message: str, field: str | None = None) -> Reject:
            return Reject(Stage.filter, reason, message, mapped.locator, field=field, raw=record_row(record))

        if spec.min_chars is not None and len(text) < spec.min_chars:
            return drop("too_short", f"{len(text)} characters, fewer than --min-chars {spec.min_chars}")
        if spec.max_chars is not None and len(text) > spec.max_chars:
            return drop("too_long", f"{len(text)} characters, more than --max-chars {spec.max_chars}")
        for pattern in self.deny:
            found = pattern.search(text)
            if found:
                return drop("denied", f"matches --deny {pattern.pattern!r}: {found.group()[:80]!r}")
        if spec.lang:
            share = script_share(text, spec.lang)
            if share is not None and share < spec.min_lang_share:
                return drop("language_mix", f"{share:.0%} of the letters are {spec.lang} script, less than "
                            f"--min-lang-share {spec.min_lang_share:.0%}")
        if spec.drop_refusals:
            phrase = refusal(record_text(record, Side.answer))
            if phrase:
                return drop("refusal", f"the answer refuses: {phrase!r}", field="answer")
        return None


@dataclass(slots=True)
class FilterResult(CurateResult):
    """What `filter` did: the filters it applied (FilterSpec.describe) go into the summary and OUT.meta.json."""

    filters: dict[str, Any] = field(default_factory=dict)


def filter_records(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], spec: FilterSpec, *,
                   tokenizer: Any = None, template: str | None = None, template_args: TemplateArgs = None, train_on: TrainOn = "all",
                   progress: Progress | None = None, sidecar: bool = True) -> FilterResult:
    """Records JSONL → OUT (rows that pass), OUT.rejects.jsonl (invalid and dropped rows, with reasons) and
    OUT.meta.json (with `sidecar=False`, a split's, the meta is returned unwritten: sftdata.provenance)."""
    started = time.perf_counter()
    output = location(output)
    counted = [f for f, v in (("max_tokens", spec.max_tokens), ("max_reasoning_tokens", spec.max_reasoning_tokens))
               if v is not None]
    if counted and tokenizer is None:
        value = spec.max_tokens if counted[0] == "max_tokens" else spec.max_reasoning_tokens
        raise OptionError("counts tokens: it needs a tokenizer", option=counted[0], value=value)
    rows = RowFilter(spec)
    inputs_ = open_inputs(inputs)
    counts = inputs_.counts
    tokens = spec.max_tokens is not None or spec.max_reasoning_tokens is not None
    plan = open_plan(template, tokenizer, template_args=template_args, train_on=train_on) if tokens else None
    encoder = encoder_for(plan) if plan is not None else None
    result = FilterResult("filter", counts, output, rejects_path(output), filters=spec.describe())
    ticker = Ticker(progress)
    with AtomicFile(output) as out, AtomicFile(rejects_path(output)) as rej:
        for batch in batches(inputs_.records(), 1024):
            verdicts: list[Mapped | Reject] = [v if isinstance(v, Reject) else (rows.check(v) or v) for v in batch]
            if encoder is not None and spec.max_reasoning_tokens is not None:
                verdicts = _reasoning_check(verdicts, encoder, spec.max_reasoning_tokens)
            if plan is not None and encoder is not None and spec.max_tokens is not None:
                verdicts = _token_check(verdicts, plan, encoder, spec.max_tokens)
            for value in verdicts:
                if isinstance(value, Mapped):
                    counts.file(value.locator.file).written += 1
                    out.write(dumps_line(record_row(value.record)))
                    continue
                if value.stage in (Stage.filter, Stage.dedup):
                    counts.drop(value)
                else:
                    counts.reject(value)
                result.add_example(value)
                rej.write(dumps_line(value.as_dict()))
            ticker.tick(len(batch))
    ticker.close()
    extra: dict[str, Any] = result.figures()
    if plan is not None:
        extra.update(plan.provenance())
    result.meta = build_meta("filter", inputs_.paths, counts, output, result.rejects, extra, started,
                             hash_sources=sidecar)
    if sidecar:
        write_json(meta_path(output), result.meta)
    return result


def _reasoning_check(values: list[Mapped | Reject], encoder: Any, limit: int) -> list[Mapped | Reject]:
    """Drop chats whose longest reasoning (reasoning_content or a leading <think> block) is over `limit` tokens."""
    from .thinking import reasoning_tokens

    out: list[Mapped | Reject] = []
    for value in values:
        count = reasoning_tokens(value.record, encoder) if isinstance(value, Mapped) else 0
        out.append(value if count <= limit else Reject(
            Stage.filter, "reasoning_too_long", f"reasoning of {count:,} tokens, more than --max-reasoning-tokens "
            f"{limit}", value.locator, raw=record_row(value.record)))
    return out


def _token_check(values: list[Mapped | Reject], plan: Any, encoder: Any, limit: int) -> list[Mapped | Reject]:
    """Render and tokenize the rows still kept; drop those longer than `limit` tokens."""
    keep = [(i, v) for i, v in enumerate(values) if isinstance(v, Mapped)]
    samples: list[tuple[int, Mapped, Sample]] = []
    out = list(values)

    def too_many(sample: Sample, least: int) -> Reject:
        return Reject(Stage.filter, "too_many_tokens", f"at least {least:,} tokens (found before tokenizing), "
                      f"more than --max-tokens {limit}", sample.locator, raw=record_row(sample.record))

    for i, mapped in keep:
        rendered = plan.renderer_for(RecordKind(mapped.record.kind)).render(mapped.record, mapped.locator)
        if isinstance(rendered, Reject):
            out[i] = rendered
            continue
        sample = Sample(mapped.record, rendered)
        stopped = screen(sample, encoder, limit, too_many)  # certainly too long, or too large to tokenize
        if stopped is not None:
            out[i] = stopped
        else:
            samples.append((i, mapped, sample))
    note_renderers(plan, encoder)
    for part in batches(samples, len(samples) or 1, lambda x: x[2].rendered.chars,
                        BATCH_CHARS):  # a bounded amount of text per call, as sftdata.curate.samples.tokenized
        for (i, mapped, _), tok in zip(part, encoder.encode([s.rendered for _, _, s in part])):
            if tok.length > limit:
                out[i] = Reject(Stage.filter, "too_many_tokens", f"{tok.length} tokens, more than --max-tokens "
                                f"{limit}", mapped.locator, raw=record_row(mapped.record))
    return out
