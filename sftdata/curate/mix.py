"""`sftdata mix`: several sources drawn so that each one's share of *trained tokens* (or rows) is its weight.

What a model learns from a source is its share of the tokens the loss is taken on, after dedup, filters
and truncation, not its share of rows: 1,000 one-line Korean Q&A rows and 1,000 long reasoning chats are
50/50 by rows and perhaps 5/95 by trained tokens. Each row's trained tokens are counted as `pretokenize`
counts them (the same template, arguments, masks and, with `max_seq_length`, its truncation), so the
shares hold for what the trainer sees.

How much is drawn: ``tokens`` (trained tokens in all), ``total`` (rows in all), or by default the largest
mix in which no source is repeated more than ``max_repeat`` times. A source is down-sampled by drawing
rows in a seeded random order until its target is met, or up-sampled by whole passes over it plus such a
draw; a target that needs more than ``max_repeat`` passes is an error naming the short source and by how
much. The drawn rows are written in one seeded random order: the same sources, weights and seed give
the same file. Rows not drawn are counted as filtered (reason ``not_sampled``) and listed, without
their data, in OUT.rejects.jsonl; a row drawn more than once is counted once as written, its extra
copies as ``repeated``.
"""
from __future__ import annotations

import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InputError, OptionError, SftDataError, option
from ..ingest.records import record_row
from ..items import Counts, Locator, Reject, Stage
from ..provenance import build_meta
from ..rendering.plan import TemplateArgs, TrainOn
from ..storage import location
from ..writers import AtomicFile, dumps_line, meta_path, rejects_path, write_json
from .pretokenize import Overflow, OverflowCounts, fit
from .results import CurateResult, Progress, Ticker
from .samples import (
    Inputs,
    Sample,
    encoder_for,
    open_inputs,
    open_plan,
    rendered,
    tokenized,
)

By = Literal["trained-tokens", "rows"]


@dataclass(slots=True)
class Source:
    path: str
    weight: float
    lines: list[bytes] = field(default_factory=list)
    locators: list[Locator] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # trained tokens per row (empty without a tokenizer)
    picks: list[int] = field(default_factory=list)  # row numbers drawn, with repeats

    def cost(self, by: By) -> list[int]:
        return self.tokens if by == "trained-tokens" else [1] * len(self.lines)


def parse_sources(specs: Sequence[str]) -> list[Source]:
    """`PATH:WEIGHT` items: the weight after the last colon, a positive number."""
    out = []
    for spec in specs:
        path, sep, weight = spec.rpartition(":")
        try:
            value = float(weight) if sep else math.nan
        except ValueError:
            value = math.nan
        if math.isnan(value):
            raise OptionError("has no weight", option="sources", value=spec, hint="give each source as PATH:WEIGHT, e.g. a.jsonl:0.7")
        if not math.isfinite(value) or value <= 0:
            raise OptionError("the weight must be a positive number", option="sources", value=spec)
        out.append(Source(path, value))
    paths = [s.path for s in out]
    if len(set(paths)) < len(paths):
        raise OptionError("a source is named twice", option="sources", hint="give each file once, with the sum of its weights")
    if len(out) < 2:
        raise OptionError("mix needs at least two", option="sources", hint="e.g. `sftdata mix a.jsonl:0.7 b.jsonl:0.3 -o mix.jsonl`")
    return out


def _read(source: Source, inputs: Inputs, plan: Any, encoder: Any, max_seq_length: int | None,
          result: CurateResult, rej: AtomicFile) -> Iterator[None]:
    stream: Any = inputs.records(result.counts)
    if plan is not None:
        stream = tokenized(rendered(stream, plan), plan, encoder)
    overflow = OverflowCounts(Overflow.truncate)
    for value in stream:
        yield None
        if isinstance(value, Sample):  # pretokenize's own checks, and its truncation with --max-seq-length
            value = fit(value, encoder, max_seq_length or sys.maxsize, Overflow.truncate, overflow)
        if isinstance(value, Reject):
            result.write_reject(value, rej)
            continue
        if isinstance(value, Sample):
            assert value.tokenized is not None
            source.tokens.append(value.tokenized.trained_tokens)
        source.lines.append(dumps_line(record_row(value.record)))
        source.locators.append(value.locator)


def targets(sources: list[Source], by: By, total: int | None, tokens: int | None, max_repeat: float) -> list[float]:
    """How much of each source (in the unit of `by`) the mix draws."""
    weights = [s.weight / sum(s.weight for s in sources) for s in sources]
    have = [sum(s.cost(by)) for s in sources]
    empty = [s.path for s, h in zip(sources, have) if h == 0]
    if empty:
        raise InputError(f"source {empty[0]} has nothing to draw from (no valid rows"
                         f"{', no trained tokens' if by == 'trained-tokens' else ''})")
    if tokens is not None:
        whole = float(tokens)
    elif total is not None:  # rows in all: each unit of a source costs 1/(mean units per row) rows
        means = [h / len(s.lines) for s, h in zip(sources, have)]
        whole = total / sum(w / m for w, m in zip(weights, means))
    else:
        whole = min(h * max_repeat / w for h, w in zip(have, weights))
    wanted = [w * whole for w in weights]
    unit = "trained tokens" if by == "trained-tokens" else "rows"
    for source, want, own, weight in zip(sources, wanted, have, weights):
        if want > own * max_repeat * (1 + 1e-9):
            raise SftDataError(
                f"source {source.path} is short: the mix needs {want:,.0f} {unit} of it (weight {weight:.0%}) and it "
                f"has {own:,}, {own * max_repeat:,.0f} with {option('max_repeat', f'{max_repeat:g}')} (short by "
                f"{want - own * max_repeat:,.0f})",
                hint=f"lower its weight or the size of the mix, or raise {option('max_repeat')}")
    return wanted


def draw(source: Source, want: float, by: By, rng: random.Random) -> None:
    """Whole passes over the source, then rows in a random order until `want` is met."""
    cost = source.cost(by)
    have = sum(cost)
    passes = int(want // have)
    source.picks = list(range(len(cost))) * passes
    left = want - passes * have
    order = list(range(len(cost)))
    rng.shuffle(order)
    spent = 0
    for row in order:
        if spent >= left or spent + cost[row] / 2 > left:
            break
        source.picks.append(row)
        spent += cost[row]


TOLERANCE = 0.05  # the largest gap allowed between a source's weight and its share of the mix


def check_shares(sources: list[Source], wanted: list[float], by: By) -> None:
    """Whole rows cannot always meet a weight: a source whose rows are each larger than its target gets none.
    Such a mix is refused (nothing is written), naming the source and its rows' size."""
    drawn = [sum(s.cost(by)[r] for r in s.picks) for s in sources]
    total = sum(drawn) or 1
    weights = sum(s.weight for s in sources)
    gaps = sorted(((got / total - s.weight / weights, i) for i, (s, got) in enumerate(zip(sources, drawn))))
    for gap, i in gaps[:1] + gaps[-1:]:  # the source furthest below its weight first
        source, want = sources[i], wanted[i]
        weight, share = source.weight / weights, drawn[i] / total
        if abs(gap) > TOLERANCE:
            cost = sorted(source.cost(by))
            unit = "trained tokens" if by == "trained-tokens" else "rows"
            raise SftDataError(
                f"source {source.path} gets {share:.1%} of the mix for a weight of {weight:.0%}: its target is "
                f"{want:,.0f} {unit} and its rows hold {cost[len(cost) // 2]:,} each (median), so whole rows cannot "
                "meet it", hint=f"make the mix larger ({option('tokens')}, {option('total')}, or {option('max_repeat')} "
                                 "for the other sources), or mix by rows")


@dataclass(slots=True)
class MixResult(CurateResult):
    """What `mix` drew: its figures go into the summary and, under "mix", into OUT.meta.json."""

    by: By = "trained-tokens"
    seed: int = 0
    max_repeat: float = 1.0
    lines: int = 0  # rows written, each copy of a repeated row counted
    repeated: int = 0  # copies of rows drawn more than once (lines - rows written)
    # per source: source, weight, rows, rows_out, row_share, row_share_out, max_copies, and with a tokenizer
    # trained_tokens, trained_tokens_out, token_share, token_share_out
    sources: list[dict[str, Any]] = field(default_factory=list)


def mix(sources: Sequence[str], output: str | os.PathLike[str], *, by: By = "trained-tokens",
        total: int | None = None, tokens: int | None = None, tokenizer: Any = None, template: str | None = None,
        template_args: TemplateArgs = None, train_on: TrainOn = "all", max_seq_length: int | None = None,
        max_repeat: float = 1.0, seed: int = 0, progress: Progress | None = None) -> MixResult:
    """`PATH:WEIGHT` sources → OUT holding each source's weight share of trained tokens (or rows)."""
    started = time.perf_counter()
    chosen = parse_sources(sources)
    if by not in ("trained-tokens", "rows"):
        raise OptionError("is unknown", option="by", value=by, hint="use trained-tokens or rows")
    if total is not None and tokens is not None:
        raise OptionError("give total (rows) or tokens (trained tokens), not both", option="tokens", value=tokens)
    if by == "trained-tokens" and tokenizer is None:
        raise OptionError("trained-tokens needs a tokenizer (and a template)", option="by", value=by, hint="or mix by rows")
    if tokens is not None and by != "trained-tokens":
        raise OptionError("counts trained tokens: it needs by trained-tokens", option="tokens", value=tokens)
    if max_repeat < 1:
        raise OptionError("is below 1", option="max_repeat", value=max_repeat, hint="1 means no row is drawn twice")
    output = location(output)
    plan = open_plan(template, tokenizer, template_args=template_args, train_on=train_on) if tokenizer is not None else None
    encoder = encoder_for(plan) if plan is not None else None
    opened = [open_inputs([s.path]) for s in chosen]
    counts = Counts()
    for inputs in opened:
        counts.files.update(inputs.counts.files)
    result = MixResult("mix", counts, output, rejects_path(output), by=by, seed=seed, max_repeat=max_repeat)
    ticker = Ticker(progress)
    with AtomicFile(output) as out, AtomicFile(rejects_path(output)) as rej:
        for source, inputs in zip(chosen, opened):
            for _ in _read(source, inputs, plan, encoder, max_seq_length, result, rej):
                ticker.tick()
        wanted = targets(chosen, by, total, tokens, max_repeat)
        rng = random.Random(seed)
        for source, want in zip(chosen, wanted):
            draw(source, want, by, rng)
        check_shares(chosen, wanted, by)
        order = [(i, row) for i, s in enumerate(chosen) for row in s.picks]
        rng.shuffle(order)
        for i, row in order:
            out.write(chosen[i].lines[row])
        _count_draws(chosen, result, rej)
    ticker.close()
    table = _table(chosen, by)
    result.lines, result.repeated, result.sources = len(order), len(order) - counts.total("written"), table
    extra: dict[str, Any] = {"mix": result.figures()}
    if plan is not None:
        extra.update(plan.provenance())
        extra["mix"]["max_seq_length"] = max_seq_length
    result.meta = build_meta("mix", [location(s.path) for s in chosen], counts, output, result.rejects, extra, started)
    write_json(meta_path(output), result.meta)
    return result


def _count_draws(sources: list[Source], result: CurateResult, rej: AtomicFile) -> None:
    for source in sources:
        drawn = set(source.picks)
        for row, locator in enumerate(source.locators):
            if row in drawn:
                result.counts.file(locator.file).written += 1
            else:
                reject = Reject(Stage.filter, "not_sampled", "not drawn for the mix (seeded; see the summary's "
                                "targets)", locator)
                result.counts.drop(reject)
                rej.write(dumps_line(reject.as_dict()))


def _table(sources: list[Source], by: By) -> list[dict[str, Any]]:
    has_tokens = all(len(s.tokens) == len(s.lines) for s in sources)
    rows_in = sum(len(s.lines) for s in sources) or 1
    rows_out = sum(len(s.picks) for s in sources) or 1
    tokens_in = (sum(sum(s.tokens) for s in sources) or 1) if has_tokens else 1
    tokens_out = (sum(sum(s.tokens[r] for r in s.picks) for s in sources) or 1) if has_tokens else 1
    weights = sum(s.weight for s in sources)
    out = []
    for s in sources:
        row: dict[str, Any] = {"source": s.path, "weight": round(s.weight / weights, 4), "rows": len(s.lines),
                               "rows_out": len(s.picks), "row_share": round(len(s.lines) / rows_in, 4),
                               "row_share_out": round(len(s.picks) / rows_out, 4),
                               "max_copies": max(Counter(s.picks).values(), default=0)}
        if has_tokens:
            mine_in, mine_out = sum(s.tokens), sum(s.tokens[r] for r in s.picks)
            row.update(trained_tokens=mine_in, trained_tokens_out=mine_out,
                       token_share=round(mine_in / tokens_in, 4), token_share_out=round(mine_out / tokens_out, 4))
        out.append(row)
    return out
