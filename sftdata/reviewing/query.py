"""Finding rows: a filter over the index's arrays (outcome, reason, finding, source file, trained tokens, language,
reasoning and tool calls), full-text search over the files' bytes, and a page of the result."""
from __future__ import annotations

import json
import mmap
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import orjson

from .chain import PartKind
from .index import FINDINGS, LANGUAGES, OUTCOMES, REASONING, TOOLS, Outcome, RowIndex

PAGE = 50
MAX_HITS = 100_000


@dataclass(frozen=True, slots=True)
class Filter:
    """What the list shows: every field left empty matches every row."""

    outcome: str = ""
    reason: str = ""
    finding: str = ""
    file: str = ""
    min_trained: int | None = None
    max_trained: int | None = None
    reasoning: str = ""  # "yes" / "no"
    tools: str = ""
    lang: str = ""  # a language of LANGUAGES, or "none" (no letters, token ids)
    q: str = ""

    @classmethod
    def from_params(cls, params: Any) -> Filter:
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = (params.get(f.name) or "").strip()
            if f.name in ("min_trained", "max_trained"):
                values[f.name] = int(raw) if raw.lstrip("-").isdigit() else None
            else:
                values[f.name] = raw[:500]
        return cls(**values)

    def params(self) -> dict[str, str]:
        return {f.name: str(v) for f in fields(self) if (v := getattr(self, f.name)) not in ("", None)}

    @property
    def empty(self) -> bool:
        return not self.params()


def select(index: RowIndex, where: Filter) -> np.ndarray:
    """The rows (indexed so far) the filter keeps, in index order."""
    c = index.columns()
    keep = np.ones(len(c), dtype=bool)
    if where.outcome in {o.value for o in OUTCOMES}:
        keep &= c.outcome == OUTCOMES.index(Outcome(where.outcome))
    if where.reason:
        keep &= c.reason == (index.reasons.index(where.reason) if where.reason in index.reasons else -1)
    if where.finding:
        bit = FINDINGS.index(where.finding) if where.finding in FINDINGS else None
        keep &= (c.findings >> np.uint64(bit) & np.uint64(1)).astype(bool) if bit is not None else False
    if where.file:
        numbers = [n for n, p in enumerate(index.chain.parts) if p.data.name == where.file or p.name == where.file]
        keep &= np.isin(c.part, numbers)
    if where.min_trained is not None:
        keep &= c.trained >= where.min_trained
    if where.max_trained is not None:
        keep &= (c.trained <= where.max_trained) & (c.trained >= 0)
    if where.lang:
        code = LANGUAGES.index(where.lang) if where.lang in LANGUAGES[1:] else 0 if where.lang == "none" else -1
        keep &= (c.flags >> 2 & 7) == code
    for wanted, bit in ((where.reasoning, REASONING), (where.tools, TOOLS)):
        if wanted in ("yes", "no"):
            has = (c.flags & bit).astype(bool)
            keep &= has if wanted == "yes" else ~has
    if where.q:
        keep &= np.isin(np.arange(len(c)), search(index, where.q))
    return np.flatnonzero(keep)


def search(index: RowIndex, text: str) -> np.ndarray:
    """Rows whose line holds the text as JSON writes it: Hangul as UTF-8 (orjson, sftdata's own files) or as
    \\uXXXX escapes (Python's json.dumps by default, a team's own files); at most MAX_HITS."""
    needles = {orjson.dumps(text)[1:-1], json.dumps(text)[1:-1].encode()} - {b""}
    c = index.columns()
    offsets = np.frombuffer(bytes(index.offset), dtype=np.uint64)[: len(c)] if len(c) else np.zeros(0, np.uint64)
    hits: list[int] = []
    for number, part in enumerate(index.chain.parts):
        rows = np.flatnonzero(c.part == number)
        if not len(rows) or not needles:
            continue
        starts = offsets[rows]
        with open(part.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
            for needle in sorted(needles):
                _find(view, needle, starts, rows, hits)
    return np.unique(np.array(hits, dtype=np.int64))


def _find(view: mmap.mmap, needle: bytes, starts: np.ndarray, rows: np.ndarray, hits: list[int]) -> None:
    """Each row (of `rows`, starting at `starts`) whose bytes hold the needle, once, into hits."""
    at = view.find(needle)
    while at >= 0 and len(hits) < MAX_HITS:
        position = int(np.searchsorted(starts, at, side="right")) - 1
        if position >= 0:
            hits.append(int(rows[position]))
            following = position + 1
            at = view.find(needle, int(starts[following]) if following < len(rows) else len(view))
        else:
            at = view.find(needle, at + 1)


def jump(index: RowIndex, file: str, line: int) -> int | None:
    """The row at a file's line (a data file or one of its side files), if indexed."""
    c = index.columns()
    for number, part in enumerate(index.chain.parts):
        if part.name == file or (part.kind is PartKind.data and part.path.name == file):
            found = np.flatnonzero((c.part == number) & (c.line == line))
            if len(found):
                return int(found[0])
    return None
