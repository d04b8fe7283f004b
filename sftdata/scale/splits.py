"""The split planner: which rows of which file each task reads, fixed before any split is converted.

A JSON Lines file is cut into byte ranges of about `split_bytes` from its size alone; a range owns the
lines that start in it (sftdata.ingest.readers.iter_lines reads exactly those). Two things about a range
depend on the bytes before it: the number of its first line, so every row and reject keeps the 1-based
line a local run gives it, and the file's codec (`--encoding auto` decides UTF-8 / UTF-8 with BOM / CP949
on the whole file, and the line that decides may sit in the last range). Both come from a survey of each
range, which can run as tasks on the engine (`survey`): its newlines, whether a line starts exactly at it,
and the codec its own lines decide (sftdata.ingest.encodings.scan_lines); the driver adds up the newlines
and takes the first range's decision, so it never reads the data itself.

A CSV/TSV file is cut the same way, but a row may span lines (a quoted cell holding line ends), so a range
owns the rows that start in it, and where its first row starts depends on whether the bytes before it left
a quoted cell open. The survey reads its range from its first line both ways (sftdata.ingest.csvsurvey.
csv_structure: at a row's start, or inside a quoted cell) and reports for each where the first row starts
and whether the range ends at a row's start; the driver follows the states from the file's start, range by
range. A split's task reads the header, then its rows (sftdata.ingest.tabular.read_csv).

A Parquet file is cut at its row groups, read from its footer (pyarrow's metadata reader): consecutive row
groups up to about `split_bytes` compressed form a split of rows [start, end), its rows located by the same
0-based index a local run gives them. A JSON file is one split: a JSON document must be parsed whole.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import IO, Any

from ..errors import SftDataError
from ..ingest.csvsurvey import csv_structure
from ..ingest.encodings import bom_encoding, scan_lines
from ..ingest.readers import Encoding, Format, Source, detect_encoding, expand_sources
from ..storage import Location, location, open_binary, size_of

CHUNK = 1 << 24
LINED = {Format.jsonl: None, Format.csv: ",", Format.tsv: "\t"}  # cut into byte ranges (CSV/TSV: the delimiter)


@dataclass(frozen=True, slots=True)
class Split:
    index: int  # position in the run's order: part-{index:05d}
    path: str
    name: str  # the file as rows and rejects name it (what a local run calls it)
    is_dir_entry: bool  # the Source came from a folder or glob (readers name it by its path then)
    format: str
    start: int = 0  # JSON Lines: a byte offset; CSV/TSV: the byte offset of its first row; Parquet: a row
    end: int | None = None  # None: the whole file
    first_line: int = 1  # the number of its first line (CSV/TSV: its first row's); Parquet: its first index
    codec: str | None = None
    size: int | None = None  # the bytes the split covers (Parquet: its row groups compressed), when known

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def source(self) -> Source:
        """The split as a reader input: every command reads it as it reads a file (sftdata.ingest.readers)."""
        span = (self.start, self.end, self.first_line) if self.end is not None else None
        return Source(location(self.path), Format(self.format), self.is_dir_entry, span, self.codec if span else None)


@dataclass(frozen=True, slots=True)
class RangeJob:
    """One byte range of a JSON Lines file to survey."""

    path: str
    start: int
    end: int
    detect: bool  # also classify the range's own lines (--encoding auto)
    delimiter: str | None = None  # a CSV/TSV file: also its rows (sftdata.ingest.csvsurvey)
    in_cell: bool = False  # only its rows, as if it began inside a quoted cell


Survey = Callable[[Sequence[RangeJob]], list[dict[str, Any]]]


def plan_splits(inputs: Sequence[str | os.PathLike[str]], split_bytes: int, encoding: Encoding = "auto",
                survey: Survey | None = None) -> list[Split]:
    """Every input's splits, in the order a local run reads them. `survey` runs the range surveys (e.g. as
    tasks on an engine) and returns their results in order; by default they run here."""
    if split_bytes < 1:
        raise ValueError("split_bytes must be positive")
    sources = expand_sources(list(inputs))
    ranges: dict[int, list[tuple[int, int]]] = {}
    jobs: list[RangeJob] = []
    for k, source in enumerate(sources):
        if source.format in LINED and source.path.is_file():
            size = size_of(source.path) or 0
            ranges[k] = [(start, min(start + split_bytes, size)) for start in range(0, size, split_bytes)] or [(0, 0)]
            jobs += [RangeJob(str(source.path), a, b, encoding == "auto", LINED[source.format]) for a, b in ranges[k]]
    run = survey or (lambda todo: [survey_range(j) for j in todo])
    surveyed = iter(run(jobs))
    found = {k: [next(surveyed) for _ in spans] for k, spans in ranges.items()}
    def from_cell(k: int, i: int) -> RangeJob:  # source k's range i again, as if it began inside a quoted cell
        return RangeJob(str(sources[k].path), *ranges[k][i], False, LINED[sources[k].format], in_cell=True)

    in_cell = _from_cells({k: found[k] for k in found if sources[k].format is not Format.jsonl}, from_cell, run)
    out: list[Split] = []
    for k, source in enumerate(sources):
        base = {"path": str(source.path), "name": source.name, "is_dir_entry": source.in_directory,
                "format": source.format.value}
        groups = row_groups(source.path, split_bytes) if source.format is Format.parquet else None
        if groups:
            out += [Split(len(out) + n, **base, start=a, end=b, first_line=a, size=size)
                    for n, (a, b, size) in enumerate(groups)]
            continue
        if k not in ranges:
            out.append(Split(len(out), **base, size=size_of(source.path)))
            continue
        codec = _codec(found[k]) if encoding == "auto" else detect_encoding(source.path, encoding)
        if source.format is not Format.jsonl:
            out += _csv_splits(len(out), base, found[k], in_cell[k], codec)
            continue
        newlines = 0
        for (start, end), figures in zip(ranges[k], found[k]):
            first = 1 if start == 0 else newlines + (1 if figures["starts_here"] else 2)
            out.append(Split(len(out), **base, start=start, end=end, first_line=first, codec=codec, size=end - start))
            newlines += figures["newlines"]
    return out


def _from_cells(files: dict[int, list[dict[str, Any]]], job: Callable[[int, int], RangeJob],
                run: Survey) -> dict[int, dict[int, dict[str, Any]]]:
    """For each CSV file, the surveys from inside a quoted cell of the ranges its chain of states needs: first
    those whose range before ends inside a cell when it begins at a row's start, all files in one round; then
    any more the chain reaches (a cell that spans a whole range), a round each."""
    done: dict[int, dict[int, dict[str, Any]]] = {k: {} for k in files}
    want = {k: [i for i in range(1, len(found)) if not found[i - 1]["csv"]["ends_at_row"]]
            for k, found in files.items()}
    while any(want.values()):
        asked = [(k, i) for k, todo in want.items() for i in todo]
        for (k, i), figures in zip(asked, run([job(k, i) for k, i in asked])):
            done[k][i] = figures["csv"]
        want = {k: [i for i in [_missing(found, done[k])] if i is not None] for k, found in files.items()}
    return done


def _states(found: list[dict[str, Any]], in_cell: dict[int, dict[str, Any]]) -> Iterator[dict[str, Any] | int]:
    """Each range's survey from the state the one before leaves it in (the file starts at a row's start), or
    the index of the first range whose survey from inside a cell is still missing."""
    quoted = False
    for i, figures in enumerate(found):
        survey = in_cell.get(i) if quoted else figures["csv"]
        if survey is None:
            yield i
            return
        yield survey
        quoted = not survey["ends_at_row"]


def _missing(found: list[dict[str, Any]], in_cell: dict[int, dict[str, Any]]) -> int | None:
    return next((x for x in _states(found, in_cell) if isinstance(x, int)), None)


def _csv_splits(index: int, base: dict[str, Any], found: list[dict[str, Any]], in_cell: dict[int, dict[str, Any]],
                codec: str) -> list[Split]:
    """A CSV file's splits: where each range's first row starts, and on which line, from the state it begins in."""
    out, lines = [], 0
    for figures, survey in zip(found, _states(found, in_cell)):
        assert not isinstance(survey, int)
        start, stop = figures["window"]
        first = survey["first"]
        offset, line = (first[0], lines + first[1] + 1) if first else (stop, lines + 1)
        out.append(Split(index + len(out), **base, start=offset, end=stop, first_line=line, codec=codec,
                         size=stop - start))
        lines += figures["csv"]["lines"]
    return out


def row_groups(path: Location, split_bytes: int) -> list[tuple[int, int, int]] | None:
    """A Parquet file's splits from its footer: (first row, end row, compressed bytes) of runs of whole row
    groups of about `split_bytes`; None for a file of one split, or one whose footer cannot be read (its
    task then reads it whole and fails or rejects it exactly as a local run does)."""
    try:
        import pyarrow.parquet as pq

        with open_binary(path) as handle:
            meta = pq.read_metadata(handle)
    except ImportError:
        raise SftDataError("Parquet files are split by row group with pyarrow", hint="pip install pyarrow "
                           "(the [ray] and [spark] extras install it)") from None
    except Exception:
        return None
    out: list[tuple[int, int, int]] = []
    start = row = size = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        if size and size + _compressed(group) > split_bytes:
            out.append((start, row, size))
            start, size = row, 0
        row += group.num_rows
        size += _compressed(group)
    out.append((start, row, size))
    return out if len(out) > 1 else None


def _compressed(group: Any) -> int:
    return sum(group.column(c).total_compressed_size for c in range(group.num_columns))


def _codec(found: list[dict[str, Any]]) -> str:
    """The file's codec from its ranges' surveys, as detect_stream decides it scanning the whole file."""
    for figures in found:
        if figures["decided"]:
            return figures["decided"]
    return "cp949" if any(f["saw_cp949"] for f in found) else "utf-8"


def survey_range(job: RangeJob) -> dict[str, Any]:
    """The newlines in [start, end), whether a line starts exactly at `start`, and what the lines that start
    in the range decide about the codec (range 0 looks for a BOM first, as detect_stream does); for a CSV
    file, also its window (from the first line starting at or after `start` to the first at or after `end`)
    and its rows (sftdata.ingest.csvsurvey), or with `in_cell` only those, as if it began inside a cell."""
    with open_binary(location(job.path)) as handle:
        if job.in_cell:
            window = (_line_start(handle, job.start), _line_start(handle, job.end))
            return {"csv": csv_structure(handle, *window, job.delimiter or ",", True)}
        starts_here = True
        if job.start > 0:
            handle.seek(job.start - 1)
            starts_here = handle.read(1) == b"\n"
        newlines, position = 0, job.start
        while position < job.end and job.delimiter is None:  # a CSV file's lines are counted by its survey
            chunk = handle.read(min(CHUNK, job.end - position))
            if not chunk:
                break
            newlines += chunk.count(b"\n")
            position += len(chunk)
        decided, saw_cp949 = None, False
        if job.detect:
            decided, saw_cp949 = _classify(handle, job, starts_here)
        figures = {"newlines": newlines, "starts_here": starts_here, "decided": decided, "saw_cp949": saw_cp949}
        if job.delimiter is not None:
            window = (_line_start(handle, job.start), _line_start(handle, job.end))
            figures.update(window=window, csv=csv_structure(handle, *window, job.delimiter, False))
    return figures


def _line_start(handle: IO[bytes], position: int) -> int:
    """The first offset at or after `position` just after a \\n (or 0, or the end of the file)."""
    return 0 if position == 0 else _next_line(handle, position - 1)


def _classify(handle: IO[bytes], job: RangeJob, starts_here: bool) -> tuple[str | None, bool]:
    first = job.start
    if not starts_here:  # the line under `start` belongs to the range before
        handle.seek(job.start)
        first = _next_line(handle, job.start)
    if first >= job.end:
        return None, False
    handle.seek(max(job.end - 1, first))
    window = _Window(handle, first, _next_line(handle, max(job.end - 1, first)))
    if job.start > 0:
        return scan_lines(window)
    head = window.read(64)
    bom = bom_encoding(head)
    return (bom, False) if bom else scan_lines(window, head)


def _next_line(handle: IO[bytes], position: int) -> int:
    """The offset just after the first newline at or after `position` (or the end of the file)."""
    handle.seek(position)
    while chunk := handle.read(1 << 20):
        cut = chunk.find(b"\n")
        if cut >= 0:
            return position + cut + 1
        position += len(chunk)
    return position


class _Window:
    """The bytes [start, stop) of a file, read like a file."""

    def __init__(self, handle: IO[bytes], start: int, stop: int) -> None:
        self.handle, self.stop = handle, stop
        handle.seek(start)

    def read(self, size: int = -1) -> bytes:
        left = self.stop - self.handle.tell()
        return self.handle.read(left if size < 0 else min(size, left)) if left > 0 else b""
