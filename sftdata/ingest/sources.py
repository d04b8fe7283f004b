"""What a reader reads and what comes back from its files, shared by sftdata.ingest.readers (JSON, JSON Lines)
and sftdata.ingest.tabular (CSV/TSV, Parquet): a Source (a file, or a split of one) and its Format, a
FileProblem (a problem with a whole file), and raw lines in bounded memory (a line longer than MAX_LINE_BYTES
comes as a LongLine, its first 4 KiB).

MAX_LINE_BYTES is read here at each call (``sources.MAX_LINE_BYTES``), so one change of it holds for every reader.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import IO

from ..errors import InputError
from ..items import Locator, Reject, Stage
from ..storage import Location

MAX_LINE_BYTES = 256 << 20  # longer lines are rejected without being held in memory
__all__ = ["MAX_LINE_BYTES", "Format", "Source", "LongLine", "FileProblem", "raw_lines", "long_line"]


class Format(str, Enum):
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    tsv = "tsv"
    parquet = "parquet"


@dataclass(frozen=True, slots=True)
class Source:
    path: Location  # a Path, or a Url (s3://, gs://, hdfs://, ...: sftdata.storage)
    format: Format
    in_directory: bool  # per-item files found by walking a directory or glob
    # A split (sftdata.scale): (start, end, first line) bytes of a JSON Lines file, or (start, end, start) rows of
    # a Parquet file (whole row groups)
    span: tuple[int, int, int] | None = None
    codec: str | None = None  # with a JSON Lines span: the codec fixed for the whole file

    @property
    def name(self) -> str:
        return str(self.path)


class LongLine(bytes):
    """The first 4 KiB of a line longer than MAX_LINE_BYTES; `length` is the line's full length."""

    length: int


class FileProblem(InputError):
    """A problem with a whole file: raised if the user named the file, else a Reject for it."""

    def __init__(self, reason: str, message: str, *, file: str, line: int | None = None,
                 hint: str | None = None, raw_bytes: str | None = None) -> None:
        super().__init__(message, file=file, line=line, hint=hint)
        self.reason, self.raw_bytes = reason, raw_bytes

    def reject(self) -> Reject:
        message = self.message + (f". {self.hint}" if self.hint else "")
        return Reject(Stage.read, self.reason, message, Locator(self.file or "", line=self.line),
                      raw_bytes=self.raw_bytes)


def raw_lines(handle: IO[bytes]) -> Iterator[bytes]:
    """Raw lines with their ends; one longer than MAX_LINE_BYTES comes as a LongLine, never whole."""
    limit = MAX_LINE_BYTES
    while line := handle.readline(limit + 1):
        yield long_line(handle, line) if len(line) > limit and line[-1:] != b"\n" else line


def long_line(handle: IO[bytes], head: bytes) -> LongLine:
    """The LongLine of a line whose first `head` bytes were read: the rest of it is skipped, 1 MiB at a time."""
    length = len(head)
    while rest := handle.readline(1 << 20):  # skip the rest of the line, 1 MiB at a time
        length += len(rest)
        if rest[-1:] == b"\n":
            break
    line = LongLine(head[:4096])
    line.length = length
    return line
