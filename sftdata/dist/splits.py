"""The split planner: which rows of which file each task reads, fixed on the driver before anything runs.

A JSON Lines file is cut into byte ranges of about `split_bytes`; a range owns the lines that start in it
(sftdata.ingest.readers.iter_lines reads exactly those). Two things about a range depend on the bytes
before it, so the planner fixes them with one sequential pass over the file (counting newlines, 1-2 GB/s):
the number of its first line, so every row and reject keeps the 1-based line a local run gives it, and the
file's codec (`--encoding auto` decides UTF-8 / UTF-8 with BOM / CP949 on the whole file, and the line
that decides may sit in the last range). Other formats (JSON, CSV/TSV, Parquet) are one split per file:
a CSV record may span lines, and a JSON document must be parsed whole.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..ingest.readers import Encoding, Format, Source, detect_encoding, expand_sources

CHUNK = 1 << 24


@dataclass(frozen=True, slots=True)
class Split:
    index: int  # position in the run's order: part-{index:05d}
    path: str
    name: str  # the file as rows and rejects name it (what a local run calls it)
    is_dir_entry: bool  # the Source came from a folder or glob (readers name it by its path then)
    format: str
    start: int = 0
    end: int | None = None  # None: the whole file
    first_line: int = 1
    codec: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def source(self) -> Source:
        """The split as a reader input: every command reads it as it reads a file (sftdata.ingest.readers)."""
        span = (self.start, self.end, self.first_line) if self.end is not None else None
        return Source(Path(self.path), Format(self.format), self.is_dir_entry, span, self.codec if span else None)


def plan_splits(inputs: Sequence[str | os.PathLike[str]], split_bytes: int, encoding: Encoding = "auto") -> list[Split]:
    """Every input's splits, in the order a local run reads them."""
    if split_bytes < 1:
        raise ValueError("split_bytes must be positive")
    out: list[Split] = []
    for source in expand_sources(list(inputs)):
        base = {"path": str(source.path), "name": source.name, "is_dir_entry": source.in_directory,
                "format": source.format.value}
        if source.format is not Format.jsonl or not source.path.is_file():
            out.append(Split(len(out), **base))
            continue
        codec = detect_encoding(source.path, encoding)
        for start, end, first in _ranges(source.path, split_bytes):
            out.append(Split(len(out), **base, start=start, end=end, first_line=first, codec=codec))
    return out


def _ranges(path: os.PathLike[str], split_bytes: int) -> list[tuple[int, int, int]]:
    """(start, end, number of the first line that starts at or after `start`) for each range of the file."""
    size = os.path.getsize(path)
    bounds = list(range(0, size, split_bytes)) or [0]
    firsts: list[int] = []
    newlines = 0
    position = 0
    with open(path, "rb") as handle:
        for bound in bounds:
            while position < bound:  # count the newlines before the bound
                chunk = handle.read(min(CHUNK, bound - position))
                if not chunk:
                    break
                newlines += chunk.count(b"\n")
                position += len(chunk)
            if bound == 0:
                firsts.append(1)
                continue
            handle.seek(bound - 1)
            starts_here = handle.read(1) == b"\n"  # a line starts exactly at the bound
            handle.seek(position)
            firsts.append(newlines + 1 if starts_here else newlines + 2)  # else the next line is the first owned
    return [(start, min(start + split_bytes, size), first) for start, first in zip(bounds, firsts)]
