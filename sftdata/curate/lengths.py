"""Per-sample lengths and the one pass that measures them, shared by `sftdata stats` (sftdata.curate.stats)
and `sftdata audit` (sftdata.curate.audit).

`scan` reads records JSONL, renders and tokenizes each sample as the trainer would, and hands every
sample and reject to its observers; `LengthObserver` keeps the char and token lengths of the prompt,
the completion and the whole sample (`Lengths`), and what a max_seq_length would cut. `describe` and
`histogram` summarise a column of lengths.
"""
from __future__ import annotations

import os
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..items import Reject
from ..rendering.plan import RenderPlan
from ..tokenize.encode import Encoder
from .results import Progress, Ticker
from .samples import Inputs, Sample, encoder_for, open_inputs, rendered, tokenized

COLUMNS = ("prompt_chars", "completion_chars", "total_chars", "prompt_tokens", "completion_tokens",
           "total_tokens", "trained_tokens")


@dataclass(slots=True)
class Lengths:
    """Per-sample lengths as compact integer columns, plus what a max_seq_length would cut."""

    max_seq_length: int | None = None
    columns: dict[str, array] = field(default_factory=lambda: {c: array("q") for c in COLUMNS})
    eos_lost: int = 0
    completion_lost: int = 0
    nothing_trained: int = 0
    examples: dict[str, list[str]] = field(default_factory=lambda: {"over": [], "eos_lost": [],
                                                                     "completion_lost": [], "nothing_trained": []})

    def add(self, sample: Sample) -> None:
        tok = sample.tokenized
        assert tok is not None
        prompt, completion = sample.rendered.split()
        start = tok.completion_start
        values = (len(prompt), len(completion), len(prompt) + len(completion), start, tok.length - start,
                  tok.length, tok.trained_tokens)
        for name, value in zip(COLUMNS, values):
            self.columns[name].append(value)
        limit = self.max_seq_length
        if limit is None or tok.length <= limit:
            return
        where = str(sample.locator)
        self._example("over", where)
        spans = tok.spans()
        if spans and spans[-1][1] > limit:
            self.eos_lost += 1
            self._example("eos_lost", where)
        if start >= limit:
            self.completion_lost += 1
            self._example("completion_lost", where)
        if not spans or spans[0][0] >= limit:
            self.nothing_trained += 1
            self._example("nothing_trained", where)

    def _example(self, kind: str, where: str, keep: int = 5) -> None:
        if len(self.examples[kind]) < keep:
            self.examples[kind].append(where)

    def array(self, name: str) -> np.ndarray:
        return np.frombuffer(self.columns[name], dtype=np.int64) if len(self.columns[name]) else np.zeros(0, np.int64)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"samples": len(self.columns["total_tokens"]),
                               "lengths": {name: describe(self.array(name)) for name in COLUMNS}}
        if self.max_seq_length is not None:
            over = int((self.array("total_tokens") > self.max_seq_length).sum())
            out["max_seq_length"] = {"limit": self.max_seq_length, "over": over, "eos_lost": self.eos_lost,
                                     "completion_lost": self.completion_lost,
                                     "nothing_trained": self.nothing_trained, "examples": self.examples}
        out["histograms"] = {name: histogram(self.array(name), self.max_seq_length if name == "total_tokens" else None)
                             for name in ("total_tokens", "prompt_tokens", "completion_tokens")}
        return out


def describe(values: np.ndarray) -> dict[str, float | int | None]:
    if len(values) == 0:
        return {"min": None, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99], method="nearest")
    return {"min": int(values.min()), "p50": int(p50), "p90": int(p90), "p99": int(p99), "max": int(values.max()),
            "mean": round(float(values.mean()), 1)}


def histogram(values: np.ndarray, limit: int | None = None, bins: int = 24) -> dict[str, Any]:
    """Equal-width integer bins from 0 past the 99th percentile (and past the limit, when one is given);
    the samples beyond the last edge are counted as `overflow`, so one outlier of 8,700 tokens does not
    squeeze every other sample into the first bar."""
    if len(values) == 0:
        return {"edges": [], "counts": [], "overflow": 0}
    p99 = int(np.percentile(values, 99, method="nearest"))
    top = max(p99, limit or 0)
    width = max(1, -(-(top + 1) // bins))
    edges = list(range(0, top + width + 1, width))
    inside = values[values < edges[-1]]
    counts, _ = np.histogram(inside, bins=edges)
    return {"edges": edges, "counts": [int(c) for c in counts], "overflow": int(len(values) - len(inside))}


def scan(inputs: Sequence[str | os.PathLike[str]], plan: RenderPlan, observers: Sequence[Any],
         progress: Progress | None = None) -> tuple[Inputs, RenderPlan, Encoder]:
    """One pass: every sample and reject goes to each observer (`sample(s)` / `reject(r)`; `bind(plan,
    encoder)` first, where defined). Rendered samples count as written, so the counts balance."""
    inputs_ = open_inputs(inputs)
    encoder = encoder_for(plan)
    for observer in observers:
        if hasattr(observer, "bind"):
            observer.bind(plan, encoder)
    ticker = Ticker(progress)
    for value in tokenized(rendered(inputs_.records(), plan), plan, encoder):
        ticker.tick()
        if isinstance(value, Reject):
            inputs_.counts.reject(value)
            for observer in observers:
                observer.reject(value)
        else:
            inputs_.counts.file(value.locator.file).written += 1
            for observer in observers:
                observer.sample(value)
    ticker.close()
    return inputs_, plan, encoder


class LengthObserver:
    def __init__(self, max_seq_length: int | None) -> None:
        self.lengths = Lengths(max_seq_length)
        self.rejects: list[Reject] = []

    def sample(self, sample: Sample) -> None:
        self.lengths.add(sample)

    def reject(self, reject: Reject) -> None:
        if len(self.rejects) < 5:
            self.rejects.append(reject)
