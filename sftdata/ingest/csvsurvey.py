"""The survey of a byte range of a CSV/TSV file for the split planner (sftdata.scale.splits), which reads no
data itself: where the range's first row starts, given the state the bytes before it left.

A range [start, stop) starts at 0 or just after a \\n and ends at the end of the file or just after a \\n.
It begins either at a row's start (state 0) or inside a quoted cell an earlier range opened (state 1):
which one is only known once the ranges before it are surveyed, so the planner surveys every range from
state 0 and, where the chain of states says so, again from state 1. From state 1 the rest of the open
cell's row is read line by line (usually one line), and from the first row start on it is the same as a
survey from state 0 of the range's rest.

The bytes are read as latin-1: quotes, delimiters and line ends are the same bytes in UTF-8, CP949 and
EUC-KR, whose multi-byte characters never use them. A range is read in blocks of lines (split as _CsvLines
splits them: \\n, \\r\\n or a lone \\r) and parsed by the csv module; a range holding a line
near MAX_LINE_BYTES is read line by line with _CsvLines, as read_csv reads it. (A cell over
CSV_FIELD_LIMIT may be cut at another line than in one pass over the file.)
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import IO, Any

from . import sources
from .tabular import _CsvLines

# str.splitlines also ends lines at these, which are no line ends in a CSV file: made plain letters first
# (latin-1 text holds \x85 wherever UTF-8 text holds a character with that byte)
_NOT_LINE_ENDS = bytes.maketrans(b"\x0b\x0c\x1c\x1d\x1e\x85", b"xxxxxx")
BLOCK = 4 << 20
SURVEY_END = "\ue000sftdata: the end of a surveyed range\ue000"


def csv_structure(handle: IO[bytes], start: int, stop: int, delimiter: str, quoted: bool,
                  block: int = BLOCK) -> dict[str, Any]:
    """The range from a row's start (`quoted` False) or from inside a quoted cell: `lines`, its physical lines
    as read_csv counts them (from a row's start only); `first`, the offset and line (counted from `start`)
    of the first row that starts in it, or None; `ends_at_row`, whether it ends at a row's start."""
    try:
        if not quoted:
            return _from_row(handle, start, stop, delimiter, block)
        first, ends_at_row = _rest_of_cell(handle, start, stop, delimiter, block)
        if first is not None:
            ends_at_row = _from_row(handle, first[0], stop, delimiter, block)["ends_at_row"]
        return {"first": first, "ends_at_row": ends_at_row}
    except _LongLine:
        return _by_lines(handle, start, stop, delimiter, quoted)


def _from_row(handle: IO[bytes], start: int, stop: int, delimiter: str, block: int) -> dict[str, Any]:
    if start >= stop:
        return {"lines": 0, "first": None, "ends_at_row": True}  # no line starts here: the state passes
    lines = _Lines(handle, start, stop, block, quoted=False, track=False)  # only lines with a quote reach it:
    reader = csv.reader(lines, delimiter=delimiter)  # one without leaves a row's start or a cell as it found it
    last: list[str] | None = None
    while True:
        try:
            for last in reader:  # the csv module's own loop: no Python between rows  # noqa: B007
                pass
            break
        except csv.Error:
            last = None  # read_csv rejects the row; the next one starts on the next line
    # The line past the range is a row of its own only when the range ends at a row's start (inside a cell,
    # it is that cell's text, never the whole of a row)
    return {"lines": lines.number, "first": (start, 0), "ends_at_row": last is None or last == [SURVEY_END]}


def _rest_of_cell(handle: IO[bytes], start: int, stop: int, delimiter: str,
                  block: int) -> tuple[tuple[int, int] | None, bool]:
    """(the first row start after the open cell's row, or None; whether the range ends at a row's start)."""
    if start >= stop:
        return None, False
    tail = _Lines(handle, start, stop, block, quoted=True, track=True)
    row = _row(csv.reader(tail, delimiter=delimiter))
    if tail.ended:  # the cell runs past the range (a row the csv module refuses ends at its line)
        return None, row is None
    return ((tail.offset, tail.number) if tail.offset < stop else None), True


def _row(reader: Any) -> list[str] | None:
    """The next row, or None for one the csv module refuses (read_csv rejects it; the next starts on the next
    line)."""
    try:
        return next(reader)
    except csv.Error:
        return None


class _LongLine(Exception):
    pass


class _Lines:
    """The lines of bytes [start, stop) decoded as latin-1, then SURVEY_END; `quoted`: the first opens a quoted
    cell. `track`: count lines and bytes one by one; else only the lines holding a quote are given (a line
    without one ends a row that starts on it, and continues a cell it starts in: the state after it is the
    state before), and `number` counts them all once `ended`."""

    def __init__(self, handle: IO[bytes], start: int, stop: int, block: int, *, quoted: bool, track: bool) -> None:
        self.handle, self.start, self.stop, self.block = handle, start, stop, block
        self.quoted, self.track = quoted, track
        self.number, self.offset, self.ended = 0, start, False

    def __iter__(self) -> Iterator[str]:
        first = True
        for lines in self._blocks():
            if first and self.quoted:
                lines[0], first = '"' + lines[0], False
                self.offset -= 1
            if self.track:
                for line in lines:
                    self.number += 1
                    self.offset += len(line)
                    yield line
            else:
                self.number += len(lines)
                yield from [line for line in lines if '"' in line]
        self.ended = True
        yield SURVEY_END + "\n"

    def _blocks(self) -> Iterator[list[str]]:
        self.handle.seek(self.start)
        rest, first = b"", True
        while True:
            left = self.stop - self.handle.tell()
            data = rest + self.handle.read(min(self.block, left)) if left > 0 else rest
            if len(data) > sources.MAX_LINE_BYTES - 2 * self.block:
                raise _LongLine  # a line that may be over the limit: read_csv's way reads it
            cut = len(data) if left <= self.block else data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            text, rest = data[:cut].translate(_NOT_LINE_ENDS).decode("latin-1"), data[cut:]
            if first and self.start == 0 and text.startswith("\xef\xbb\xbf"):
                text = text[3:]  # _CsvLines drops a BOM from line 1
                self.offset += 3
            first = False
            if text:
                yield text.splitlines(keepends=True)  # at \n, \r\n or a lone \r, as _CsvLines splits them
            if left <= self.block:
                return


def _by_lines(handle: IO[bytes], start: int, stop: int, delimiter: str, quoted: bool) -> dict[str, Any]:
    """The survey read line by line with _CsvLines, as read_csv reads."""
    out: dict[str, Any] = {"lines": 0, "first": None, "ends_at_row": not quoted}
    handle.seek(start)
    lines = _CsvLines(_Bounded(handle, stop), "latin-1", 0, start)
    fed = _Fed(lines, quoted)
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
        if inside and out["first"] is None and not (quoted and at == 0):
            out["first"] = (offset, at)
        if fed.ended:
            out["ends_at_row"] = row is None or (row == [SURVEY_END] and not inside)
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
