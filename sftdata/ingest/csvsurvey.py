"""The survey of a byte range of a CSV/TSV file for the split planner (sftdata.dist.splits), which reads no
data itself: where the range's first row starts, whatever the bytes before it left open."""
from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from typing import IO, Any

from . import readers
from .tabular import _CsvLines

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")  # as _CsvLines splits them: \n, \r\n or a lone \r
BLOCK = 4 << 20
SURVEY_END = "\ue000sftdata: the end of a surveyed range\ue000"


def csv_structure(handle: IO[bytes], start: int, stop: int, delimiter: str) -> dict[str, Any]:
    """What the bytes [start, stop) of a CSV file hold, for a split planner (sftdata.dist.splits) that has not
    read the bytes before them; start and stop are 0, the end of the file, or just after a \\n.

    `lines`: its physical lines as read_csv counts them. For each state the range can begin in, at a row's
    start (0) or inside a quoted cell an earlier range opened (1): `first`, the offset and the line (counted
    from `start`) of the first row that starts in it, or None; `ends_at_row`, whether it ends at a row's start.
    The bytes are read as latin-1: quotes, delimiters and line ends are the same bytes in UTF-8, CP949 and
    EUC-KR, whose multi-byte characters never use them. (A cell over CSV_FIELD_LIMIT that crosses a range
    may be cut at another line than in one pass over the file.)

    One pass from a row's start reads the range a few MiB at a time, its lines split by one regex and parsed
    by the csv module; from inside a quoted cell, only until that parse starts a row on a line where the
    first one does, after which the two agree. A range holding a line near MAX_LINE_BYTES, or where the two
    never meet, is read line by line as read_csv reads it."""
    out: dict[str, Any] = {"lines": 0, "first": [None, None], "ends_at_row": [True, False]}
    if start >= stop:
        return out  # no line starts in the range: the state passes through
    try:
        return _in_blocks(handle, start, stop, delimiter, out)
    except _LongLine:
        return _by_lines(handle, start, stop, delimiter, out, (0, 1))


def _in_blocks(handle: IO[bytes], start: int, stop: int, delimiter: str, out: dict[str, Any],
               block: int = BLOCK) -> dict[str, Any]:
    tail = _Lines(handle, start, stop, block, quoted=True, track=True)  # the rest of a cell an earlier range opened
    row = _row(csv.reader(tail, delimiter=delimiter))
    meets = None if tail.ended else tail.number  # the line where the first row in the range starts
    if meets is None:
        out["ends_at_row"][1] = row is None  # the cell runs past the range (a bad row ends at the line)
    else:
        out["first"][1] = (tail.offset, meets)
    lines = _Lines(handle, start, stop, block, quoted=False, track=False)
    reader = csv.reader(lines, delimiter=delimiter)
    met = meets is None
    while True:
        at = reader.line_num
        met = met or at == meets
        row = _row(reader)
        if lines.ended:
            out["ends_at_row"][0] = row is None or (row == [SURVEY_END] and at == lines.number)
            break
    out["lines"], out["first"][0] = lines.number, (start, 0)
    if meets is not None and meets == lines.number:  # the cell's row was the range's last
        out["first"][1], out["ends_at_row"][1] = None, True
    elif meets is not None and met:
        out["ends_at_row"][1] = out["ends_at_row"][0]  # from the same line in the same state: the same rows
    elif meets is not None:
        _by_lines(handle, start, stop, delimiter, out, (1,))
    return out


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
    cell. `track`: count lines and bytes one by one (else `number` is exact once `ended`)."""

    def __init__(self, handle: IO[bytes], start: int, stop: int, block: int, *, quoted: bool, track: bool) -> None:
        self.handle, self.start, self.stop, self.quoted, self.track = handle, start, stop, quoted, track
        self.block = block
        self.number, self.offset, self.ended = 0, start, False

    def __iter__(self) -> Iterator[str]:
        first = True
        for block in self._blocks():
            if first and self.quoted:
                block[0], first = '"' + block[0], False
                self.offset -= 1
            if self.track:
                for line in block:
                    self.number += 1
                    self.offset += len(line)
                    yield line
            else:
                self.number += len(block)
                yield from block
        self.ended = True
        yield SURVEY_END + "\n"

    def _blocks(self) -> Iterator[list[str]]:
        self.handle.seek(self.start)
        rest, first = b"", True
        while True:
            left = self.stop - self.handle.tell()
            data = rest + self.handle.read(min(self.block, left)) if left > 0 else rest
            if len(data) > readers.MAX_LINE_BYTES - 2 * self.block:
                raise _LongLine  # a line that may be over the limit: read_csv's way reads it
            cut = len(data) if left <= self.block else data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            text, rest = data[:cut].decode("latin-1"), data[cut:]
            if first and self.start == 0 and text.startswith("\xef\xbb\xbf"):
                text = text[3:]  # _CsvLines drops a BOM from line 1
                self.offset += 3
            first = False
            if text:
                yield _LINE.findall(text)
            if left <= self.block:
                return


def _by_lines(handle: IO[bytes], start: int, stop: int, delimiter: str, out: dict[str, Any],
              states: tuple[int, ...]) -> dict[str, Any]:
    """The survey read line by line with _CsvLines, as read_csv reads, from each of `states`."""
    for quoted in states:
        out["first"][quoted], out["ends_at_row"][quoted] = None, quoted == 0
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
