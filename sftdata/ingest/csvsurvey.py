"""The survey of a byte range of a CSV/TSV file for the split planner (sftdata.dist.splits), which reads no
data itself: where the range's first row starts, whatever the bytes before it left open."""
from __future__ import annotations

import csv
from typing import IO, Any

from .tabular import _CsvLines

SURVEY_END = "\ue000sftdata: the end of a surveyed range\ue000"


def csv_structure(handle: IO[bytes], start: int, stop: int, delimiter: str) -> dict[str, Any]:
    """What the bytes [start, stop) of a CSV file hold, for a split planner (sftdata.dist.splits) that has not
    read the bytes before them; start and stop are 0, the end of the file, or just after a \\n.

    `lines`: its physical lines as read_csv counts them. For each state the range can begin in, at a row's
    start (0) or inside a quoted cell an earlier range opened (1): `first`, the offset and the line (counted
    from `start`) of the first row that starts in it, or None; `ends_at_row`, whether it ends at a row's start.
    The bytes are read as latin-1: quotes, delimiters and line ends are the same bytes in UTF-8, CP949 and
    EUC-KR, whose multi-byte characters never use them. (A cell over CSV_FIELD_LIMIT that crosses a range
    may be cut at another line than in one pass over the file.)"""
    out: dict[str, Any] = {"lines": 0, "first": [None, None], "ends_at_row": [True, False]}
    for quoted in (0, 1):
        handle.seek(start)
        lines = _CsvLines(_Bounded(handle, stop), "latin-1", 0, start)
        fed = _Fed(lines, bool(quoted))
        reader = csv.reader(fed, delimiter=delimiter)
        while True:
            at, offset = lines.number, lines.offset
            try:
                row: list[str] | None = next(reader)
            except StopIteration:  # an empty range: the state passes through
                break
            except csv.Error:
                row = None  # read_csv rejects the row; the next one starts on the next line
            lines.take()
            inside = at < lines.number  # the row starts in the range (the one past it may continue it)
            if inside and out["first"][quoted] is None and not (quoted and at == 0):
                out["first"][quoted] = (offset, at)
            if fed.ended:
                out["ends_at_row"][quoted] = row is None or (row == [SURVEY_END] and not inside)
                break
        out["lines"] = lines.number
    return out


class _Bounded:
    """The bytes of a file up to `stop`, read by lines."""

    def __init__(self, handle: IO[bytes], stop: int) -> None:
        self.handle, self.stop = handle, stop

    def readline(self, size: int = -1) -> bytes:
        left = self.stop - self.handle.tell()
        return self.handle.readline(left if size < 0 else min(size, left)) if left > 0 else b""


class _Fed:
    """A range's lines for csv.reader (the first opening a quoted cell, when the range begins inside one),
    then one line past the range's end, which starts a row of its own only if the range ends at a row's start."""

    def __init__(self, lines: _CsvLines, quoted: bool) -> None:
        self.lines, self.quoted, self.ended, self.any = lines, quoted, False, False

    def __iter__(self) -> _Fed:
        return self

    def __next__(self) -> str:
        if self.ended:
            raise StopIteration
        try:
            line = next(self.lines)
        except StopIteration:
            if not self.any:
                raise
            self.ended = True
            return SURVEY_END + "\n"
        first, self.any = not self.any, True
        return '"' + line if first and self.quoted else line
