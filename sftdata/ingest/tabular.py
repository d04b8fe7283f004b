"""CSV/TSV and Parquet files → RawItems or Rejects, streaming in bounded memory (see sftdata.ingest.readers; the
Source, FileProblem and raw lines it shares with the readers are in sftdata.ingest.sources).

CSV lines end at \\n, \\r\\n or a lone \\r, as the csv module and editors count them; a row is
located at the line where it starts, also when a quoted cell spans lines. Cells stay text (CSV has no
types); blank header names become column_N, a repeated header name is an error; rows with too few or
too many cells are rejected, except that trailing empty cells (as spreadsheets write them) are
dropped. Parquet rows are located by 0-based index; values JSON cannot hold (bytes, decimals,
durations, 128-bit integers) become text or numbers.

A split of a file (sftdata.scale) reads the rows that start in a byte range (CSV, after the header;
sftdata.ingest.csvsurvey is its planner's survey) or a run of row groups (Parquet).
"""
from __future__ import annotations

import codecs
import csv
import re
from collections import deque
from collections.abc import Iterator
from typing import IO, Any

from ..items import Locator, RawItem, Reject, Stage
from ..storage import Url, open_binary
from . import sources
from .encodings import escape_bytes, first_error
from .sources import FileProblem, Format, LongLine, Source, raw_lines

CSV_FIELD_LIMIT = 64 << 20  # characters in one CSV cell (the csv module's default is 128 Ki)


_LONE_CR = re.compile(rb"(?<=\r)(?!\n)")


class _CsvLines:
    """Decoded physical lines for csv.reader, remembering the raw bytes and the first problem of the
    lines read since the last take(): csv.reader pulls exactly the lines of one row at a time."""

    def __init__(self, handle: IO[bytes], encoding: str, number: int = 0, offset: int = 0) -> None:
        self._source = raw_lines(handle)
        self._queue: deque[bytes] = deque()
        self.codec = "utf-8" if encoding == "utf-8-sig" else encoding
        self.number = number  # physical lines read (of the file, when reading starts at line number + 1)
        self.offset = offset  # the file's bytes read: where the next line starts
        self._raw: list[bytes] = []
        self._problem: tuple[str, str] | None = None

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        if self._queue:
            line = self._queue.popleft()
        else:
            line = next(self._source)
            if line.find(b"\r", 0, len(line) - (2 if line[-2:] == b"\r\n" else 1)) >= 0 \
                    and type(line) is not LongLine:  # a lone CR ends a line too
                self._queue.extend(part for part in _LONE_CR.split(line) if part)
                line = self._queue.popleft()
        self.number += 1
        self.offset += line.length if type(line) is LongLine else len(line)
        if self.number == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[3:]
        self._raw.append(line)
        if type(line) is LongLine:
            self._note("line_too_long", f"line {self.number} is {line.length:,} bytes, over the limit of "
                       f"{sources.MAX_LINE_BYTES:,}; it was skipped unread")
            return "\n"
        try:
            return line.decode(self.codec)
        except UnicodeDecodeError as error:
            self._note("undecodable", f"byte 0x{line[error.start]:02x} at byte {error.start} of line {self.number} "
                       f"is not valid {self.codec} (pass --encoding if the file is in another encoding)")
            return line.decode(self.codec, errors="surrogateescape")

    def _note(self, reason: str, message: str) -> None:
        if self._problem is None:
            self._problem = (reason, message)

    def take(self) -> tuple[bytes, tuple[str, str] | None]:
        raw, problem = b"".join(self._raw), self._problem
        self._raw, self._problem = [], None
        if problem is None and b"\x00" in raw:
            problem = ("nul_byte", "the row holds a NUL byte (\\x00): a binary or corrupted file?")
        return raw, problem


def read_csv(source: Source, encoding: str) -> Iterator[RawItem | Reject]:
    """The file's rows; a split (sftdata.scale, `source.span` = (offset, end, line)) reads the header, then
    the rows that start at a byte offset in [offset, end), the first of them on line `line`."""
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)
    delimiter = "\t" if source.format is Format.tsv else ","
    with open_binary(source.path) as handle:
        lines = _CsvLines(handle, encoding)
        reader = csv.reader(lines, delimiter=delimiter)
        try:
            header, generated = _csv_header(reader, lines, source.name)
        except FileProblem:
            if source.span is None or source.span[0] == 0:
                raise
            return  # a split after the first: the first reports the file's problem, once
        end = None
        if source.span is not None and header:
            start, end, first = source.span
            if start > lines.offset:  # a split after the header's: read from its first row on
                handle.seek(start)
                lines = _CsvLines(handle, encoding, first - 1, start)
                reader = csv.reader(lines, delimiter=delimiter)
        while header and (end is None or lines.offset < end):
            start = lines.number + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                raw, _ = lines.take()
                yield Reject(Stage.read, "bad_csv_row", f"CSV error: {error}", Locator(source.name, line=start),
                             raw_bytes=escape_bytes(raw))
                continue
            raw, problem = lines.take()
            locator = Locator(source.name, line=start)
            if problem is not None:
                yield Reject(Stage.read, problem[0], problem[1], locator, raw_bytes=escape_bytes(raw))
            elif any(cell.strip() for cell in row):
                yield _csv_row(header, generated, row, locator, lines.number)


def _csv_header(reader: Any, lines: _CsvLines, name: str) -> tuple[list[str], set[str]]:
    """The column names (an empty list for an empty file); blank names become column_N."""
    row: list[str] = []
    while not any(cell.strip() for cell in row):
        try:
            row = next(reader)
        except StopIteration:
            return [], set()
        except csv.Error as error:
            raise FileProblem("bad_csv_header", f"bad CSV header: {error}", file=name, line=lines.number) from None
        raw, problem = lines.take()
        if problem is not None:
            raise FileProblem(problem[0], f"header: {problem[1]}", file=name, line=lines.number,
                             raw_bytes=escape_bytes(raw))
    header, generated = [], set()
    for position, cell in enumerate(row, 1):
        column = cell.strip() or f"column_{position}"
        if not cell.strip():
            generated.add(column)
        if column in header:
            raise FileProblem("bad_csv_header", f"column {column!r} appears twice in the header", file=name,
                             line=lines.number, hint="rename one of the columns")
        header.append(column)
    return header, generated


def _csv_row(header: list[str], generated: set[str], row: list[str], locator: Locator,
             last_line: int) -> RawItem | Reject:
    if len(row) > len(header) and not any(cell.strip() for cell in row[len(header):]):
        row = row[: len(header)]  # trailing empty cells, as spreadsheets write them
    if len(row) != len(header):
        spans = f" (the row runs from line {locator.line} to {last_line}: an unclosed quote?)" \
            if last_line > (locator.line or 0) else ""
        return Reject(Stage.read, "bad_csv_row", f"row has {len(row)} cells, the header has {len(header)}{spans}",
                      locator, raw=row)
    return RawItem({k: v for k, v in zip(header, row) if not (k in generated and not v.strip())}, locator)


# --- Parquet ------------------------------------------------------------------------------------

_NOT_JSON = ("Binary", "Decimal", "Duration", "Int128", "UInt128", "Object")


def read_parquet(source: Source, batch_rows: int = 8192) -> Iterator[RawItem | Reject]:
    """The file's rows, or with a span (a split, sftdata.scale) rows [start, end), which are whole row groups:
    only those are read. A file on a remote filesystem (a Url) is read through pyarrow, row group by row
    group, into the same polars rows."""
    import polars as pl

    index = source.span[0] if source.span else 0
    try:
        batches = _arrow_batches(source, batch_rows) if isinstance(source.path, Url) else _polars_batches(source, batch_rows)
        for batch in batches:
            fix = [name for name, dtype in batch.schema.items() if any(t in str(dtype) for t in _NOT_JSON)]
            for row in batch.iter_rows(named=True):
                for name in fix:
                    row[name] = _jsonable(row[name])
                yield RawItem(row, Locator(source.name, index=index))
                index += 1
    except (pl.exceptions.PolarsError, OSError, ValueError) as error:
        raise _parquet_error(source, error, index) from None
    except BaseException as error:  # pyo3's PanicException derives from BaseException
        if type(error).__name__ != "PanicException":
            raise
        raise _parquet_error(source, error, index) from None


def _polars_batches(source: Source, batch_rows: int) -> Iterator[Any]:
    import polars as pl

    frame = pl.scan_parquet(source.path)
    if source.span:  # polars skips the row groups outside the slice
        frame = frame.slice(source.span[0], source.span[1] - source.span[0])
    yield from frame.collect_batches(chunk_size=batch_rows, engine="streaming")  # memory: threads x row groups


def _arrow_batches(source: Source, batch_rows: int) -> Iterator[Any]:
    import polars as pl
    import pyarrow.parquet as pq

    with open_binary(source.path) as handle:
        file = pq.ParquetFile(handle)
        groups, row = [], 0
        for g in range(file.num_row_groups):
            if source.span is None or source.span[0] <= row < source.span[1]:
                groups.append(g)
            row += file.metadata.row_group(g).num_rows
        for batch in file.iter_batches(batch_size=batch_rows, row_groups=groups):
            yield pl.from_arrow(batch)


def _parquet_error(source: Source, error: BaseException, index: int) -> FileProblem:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    where = f" after row {index - 1}" if index else ""
    return FileProblem("unreadable_file", f"cannot read Parquet{where}: {first}", file=source.name)


def _jsonable(value: Any) -> Any:
    """Parquet values orjson cannot write (bytes, Decimal, timedelta, 128-bit ints) as JSON values."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return data.decode("utf-8") if first_error(data, "utf-8") is None else escape_bytes(data, 1 << 20)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, int) and not -(1 << 63) <= value < (1 << 64):
        return str(value)
    if hasattr(value, "total_seconds"):
        return value.total_seconds()
    if type(value).__name__ == "Decimal":
        return str(value)
    return value
