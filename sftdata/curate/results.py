"""What a curation command reports: its result type (CurateResult: the command's own figures as typed fields, as
JSON values) and its progress (Ticker). Kept apart from sftdata.curate.samples, which renders and tokenizes, so
a command that only reads records (dedup) imports no renderer or tokenizer (about 45 ms of start-up)."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import PurePath
from typing import Any

from ..items import Reject, RunResult
from ..writers import dumps_line

Progress = Callable[[int], None]

OMIT_NONE = {"omit_none": True}
"""Dataclass field metadata: a figure left None is left out of `figures()` (a key only some runs have)."""


def plain(value: Any) -> Any:
    """A figure as JSON holds it: a dataclass as a dict of its fields (those marked OMIT_NONE left out while
    None), a Path as text, an Enum as its value; lists, tuples and dicts element by element."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain_fields(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _plain_fields(value: Any, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {f.name: plain(v) for f in dataclasses.fields(value) if f.name not in skip
            and not ((v := getattr(value, f.name)) is None and f.metadata.get("omit_none"))}


@dataclass(slots=True)
class CurateResult(RunResult):
    """A RunResult whose subclass (one per command: FilterResult, SplitResult, ...) declares the command's own
    figures as typed fields; `figures()` gives them as JSON values, and they go into the summary."""

    def figures(self) -> dict[str, Any]:
        """The subclass's own fields (not CurateResult's), in declaration order, as plain JSON values (`plain`)."""
        return _plain_fields(self, _BASE_FIELDS)

    def write_reject(self, reject: Reject, sink: Any) -> None:
        """A row that could not be processed: counted as rejected, kept as an example, written to `sink`."""
        self.counts.reject(reject)
        self.add_example(reject)
        sink.write(dumps_line(reject.as_dict()))

    def summary(self) -> dict[str, Any]:
        out = RunResult.summary(self)
        out.update(self.figures())
        return out


_BASE_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(CurateResult))


class Ticker:
    """Calls progress every `every` rows (and once at the end with the rest)."""

    def __init__(self, progress: Progress | None, every: int = 1000) -> None:
        self.progress, self.every, self.pending = progress, every, 0

    def tick(self, n: int = 1) -> None:
        self.pending += n
        if self.progress and self.pending >= self.every:
            self.progress(self.pending)
            self.pending = 0

    def close(self) -> None:
        if self.progress and self.pending:
            self.progress(self.pending)
        self.pending = 0
