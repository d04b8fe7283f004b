"""The values that flow between stages: raw items with where they came from, and rejects.

Records (sftdata.schemas) and Rendered values sit between these; every stage returns its good
values plus Rejects, so nothing is dropped without a reason.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True, init=False)
class Locator:
    """Where a raw item came from: file plus 1-based line (JSONL/CSV) or 0-based index (JSON list)."""

    file: str
    line: int | None = None
    index: int | None = None
    element: int | None = None  # position inside an exploded list

    def __init__(self, file: str, line: int | None = None, index: int | None = None,
                 element: int | None = None) -> None:
        # frozen, so the fields are set through their slots' descriptors: the generated __init__ calls
        # object.__setattr__ per field, 70% slower, and every row read makes a Locator
        _set_file(self, file)
        _set_line(self, line)
        _set_index(self, index)
        _set_element(self, element)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file}
        for name in ("line", "index", "element"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    def __str__(self) -> str:
        text = self.file
        if self.line is not None:
            text += f":{self.line}"
        if self.index is not None:
            text += f"[{self.index}]"
        if self.element is not None:
            text += f"#{self.element}"
        return text


_set_file, _set_line, _set_index, _set_element = (vars(Locator)[name].__set__ for name in ("file", "line", "index", "element"))


@dataclass(slots=True)
class RawItem:
    data: Any
    locator: Locator


class Stage(str, Enum):
    read = "read"
    map = "map"
    validate = "validate"
    render = "render"
    tokenize = "tokenize"  # sftdata/tokenize/encode.py and the commands built on it
    filter = "filter"  # a row dropped by a curation filter: counted as filtered, not rejected
    dedup = "dedup"  # a duplicate of an earlier row: counted as deduplicated
    export = "export"  # a record the export format cannot express (sftdata/formats/exporting.py)
    review = "review"  # a row a person rejected in `sftdata review` (sftdata/reviewing/apply.py)


@dataclass(slots=True)
class Reject:
    """A row that did not make it, with the reason a person can act on."""

    stage: Stage
    reason: str  # short code, the key of by_reason counts
    message: str
    locator: Locator
    field: str | None = None
    source_path: str | None = None
    raw: Any = None
    raw_bytes: str | None = None  # escaped bytes of input that could not be decoded

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.locator.as_dict(), "stage": self.stage.value, "reason": self.reason,
                               "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        if self.source_path is not None:
            out["source_path"] = self.source_path
        if self.raw_bytes is not None:
            out["raw_bytes"] = self.raw_bytes
        else:
            out["raw"] = self.raw
        return out


@dataclass(frozen=True, slots=True)
class Written:
    """Output lines the columnar path (sftdata.rendering.columnar) already rendered and counted; the pipeline only writes them."""

    data: bytes
    rows: int


@dataclass(slots=True)
class FileCounts:
    read: int = 0
    written: int = 0
    rejected: int = 0
    filtered: int = 0
    deduplicated: int = 0


@dataclass(slots=True)
class Counts:
    """Per-file and total counts; read = written + rejected + filtered + deduplicated for each file."""

    files: dict[str, FileCounts] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)

    def file(self, name: str) -> FileCounts:
        counts = self.files.get(name)
        if counts is None:
            counts = self.files[name] = FileCounts()
        return counts

    def reject(self, reject: Reject) -> None:
        self.file(reject.locator.file).rejected += 1
        self.by_reason[reject.reason] = self.by_reason.get(reject.reason, 0) + 1

    def drop(self, reject: Reject) -> None:
        """Count a row a curation step left out on purpose: filtered, or deduplicated for Stage.dedup."""
        counts = self.file(reject.locator.file)
        if reject.stage is Stage.dedup:
            counts.deduplicated += 1
        else:
            counts.filtered += 1
        self.by_reason[reject.reason] = self.by_reason.get(reject.reason, 0) + 1

    def total(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.files.values())

    def balanced(self) -> bool:
        return all(c.read == c.written + c.rejected + c.filtered + c.deduplicated for c in self.files.values())

    def summary(self) -> dict[str, Any]:
        keys = ("read", "written", "rejected", "filtered", "deduplicated")
        return {**{k: self.total(k) for k in keys}, "by_reason": dict(sorted(self.by_reason.items())),
                "files": {name: {k: getattr(c, k) for k in keys} for name, c in self.files.items()}}


class Style(str, Enum):
    text = "text"
    prompt_completion = "prompt-completion"
    messages = "messages"


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    train: bool


@dataclass(slots=True)
class Rendered:
    segments: list[Segment]
    locator: Locator
    whole: bool = False  # a chat: tokenized as one text, as the conversation is at inference

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)

    @property
    def chars(self) -> int:
        """len(self.text), without joining: what the tokenizing commands bound and batch by."""
        return sum(len(s.text) for s in self.segments)

    def split(self) -> tuple[str, str]:
        """(prompt, completion): completion is the last trained segment, prompt everything before it."""
        last = max(i for i, s in enumerate(self.segments) if s.train)
        prompt = "".join(s.text for s in self.segments[:last])
        return prompt, self.segments[last].text


Progress = Callable[[int], None]


@dataclass(slots=True)
class RunResult:
    """What a command did: counts per file and reason, where it wrote, and with what."""

    command: str
    counts: Counts
    output: Path | None = None
    rejects: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    examples: list[Reject] = field(default_factory=list)  # the first few rejects, for display

    def add_example(self, reject: Reject, keep: int = 5) -> None:
        """Keep the first `keep` rejects of a run for display."""
        if len(self.examples) < keep:
            self.examples.append(reject)

    @property
    def writes_rows(self) -> bool:
        """Whether the command writes rows: not `validate`, nor a report-only run (`action="report"`); for
        those, nothing written means nothing read."""
        return self.command != "validate" and getattr(self, "action", None) != "report"

    def summary(self) -> dict[str, Any]:
        """The counts, where it wrote and with what; `nothing_written` says why, when the run wrote no rows (the
        CLI prints it and exits 4: sftdata.outcome)."""
        from .outcome import nothing_written

        out = self.counts.summary()
        out.update(command=self.command, output=str(self.output) if self.output else None,
                   rejects=str(self.rejects) if self.rejects else None)
        for key in ("template", "eos", "tokenizer", "style", "to"):
            if key in self.meta:
                out[key] = self.meta[key]
        empty = nothing_written(out, self.examples, writes=self.writes_rows)
        if empty:
            out["nothing_written"] = empty
        return out
