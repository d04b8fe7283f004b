"""Files, directories and globs → a stream of RawItems (or read Rejects), with locators.

JSONL, CSV/TSV and Parquet stream in bounded memory; a JSON file is parsed whole. A problem with
one row is a Reject; a problem with a whole file the user named is an InputError.
"""
from __future__ import annotations

import codecs
import csv
import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import orjson

from .errors import InputError
from .items import Locator, RawItem, Reject, Stage

Encoding = Literal["auto", "utf-8", "utf-8-sig", "cp949", "euc-kr"] | str
SAMPLE_BYTES = 1 << 20


class Format(str, Enum):
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    tsv = "tsv"
    parquet = "parquet"


_SUFFIXES = {".json": Format.json, ".jsonl": Format.jsonl, ".ndjson": Format.jsonl, ".csv": Format.csv,
             ".tsv": Format.tsv, ".parquet": Format.parquet}


@dataclass(frozen=True, slots=True)
class Source:
    path: Path
    format: Format
    in_directory: bool  # per-item files found by walking a directory or glob

    @property
    def name(self) -> str:
        return str(self.path)


def format_of(path: Path) -> Format | None:
    return _SUFFIXES.get(path.suffix.lower())


def expand_sources(inputs: list[str | os.PathLike[str]]) -> list[Source]:
    """Resolve files, directories (recursive) and globs to Sources, in a stable order."""
    sources: list[Source] = []
    for entry in inputs:
        text = os.fspath(entry)
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and format_of(p))
            if not found:
                raise InputError("directory holds no .json/.jsonl/.csv/.tsv/.parquet files", file=text)
            sources += [Source(p, format_of(p), True) for p in found]  # type: ignore[arg-type]
        elif path.is_file():
            fmt = format_of(path)
            if fmt is None:
                raise InputError(f"unknown file type {path.suffix!r}", file=text,
                                 hint="use .json, .jsonl, .csv, .tsv or .parquet")
            sources.append(Source(path, fmt, False))
        elif glob.has_magic(text):
            found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file() and format_of(Path(p)))
            if not found:
                raise InputError("pattern matches no input files", file=text)
            sources += [Source(p, format_of(p), True) for p in found]  # type: ignore[arg-type]
        else:
            raise InputError("no such file or directory", file=text)
    return sources


def detect_encoding(path: Path, encoding: Encoding = "auto") -> str:
    """'auto': a UTF-8 BOM, else UTF-8 if a sample decodes, else CP949 (Korean Excel), else UTF-8."""
    if encoding != "auto":
        try:
            return codecs.lookup(encoding).name
        except LookupError:
            raise InputError(f"unknown encoding {encoding!r}", file=str(path)) from None
    with open(path, "rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    for candidate in ("utf-8", "cp949"):
        try:
            codecs.getincrementaldecoder(candidate)().decode(sample, final=len(sample) < SAMPLE_BYTES)
            return candidate
        except UnicodeDecodeError:
            continue
    return "utf-8"


def escape_bytes(data: bytes, limit: int = 4096) -> str:
    text = data[:limit].decode("ascii", errors="backslashreplace")
    return text + (f"...(+{len(data) - limit} bytes)" if len(data) > limit else "")


def _decode_error(name: str, error: UnicodeDecodeError, offset: int, encoding: str) -> InputError:
    return InputError(f"cannot decode byte 0x{error.object[error.start]:02x} at byte offset {offset + error.start} "
                      f"as {encoding}", file=name, hint="pass --encoding (e.g. utf-8, cp949)")


def read_items(sources: list[Source], *, encoding: Encoding = "auto",
               records_path: str | None = None) -> Iterator[RawItem | Reject]:
    for source in sources:
        yield from read_source(source, encoding=encoding, records_path=records_path)


def read_source(source: Source, *, encoding: Encoding = "auto",
                records_path: str | None = None) -> Iterator[RawItem | Reject]:
    try:
        enc = detect_encoding(source.path, encoding)
        if source.format is Format.jsonl:
            yield from _read_jsonl(source, enc)
        elif source.format is Format.json:
            yield from _read_json(source, enc, records_path)
        elif source.format in (Format.csv, Format.tsv):
            yield from _read_csv(source, enc)
        else:
            yield from _read_parquet(source)
    except OSError as error:
        if not source.in_directory:
            raise InputError(f"cannot read: {error.strerror or error}", file=source.name) from None
        yield Reject(Stage.read, "unreadable_file", f"cannot read: {error.strerror or error}", Locator(source.name))


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line bytes without the line end), skipping blank lines."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if number == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[3:]
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield number, line


def parse_json_line(source: str, number: int, line: bytes, encoding: str) -> RawItem | Reject:
    locator = Locator(source, line=number)
    try:
        text: bytes | str = line if encoding in ("utf-8", "utf-8-sig") else line.decode(encoding)
        return RawItem(orjson.loads(text), locator)
    except UnicodeDecodeError as error:
        return _undecodable(locator, line, error.start, encoding)
    except orjson.JSONDecodeError as error:
        try:
            decoded = line.decode(encoding if encoding != "utf-8-sig" else "utf-8")
        except UnicodeDecodeError as decode_error:
            return _undecodable(locator, line, decode_error.start, encoding)
        return Reject(Stage.read, "invalid_json", f"invalid JSON: {error.msg} at column {error.colno}",
                      locator, raw=decoded)


def _undecodable(locator: Locator, line: bytes, start: int, encoding: str) -> Reject:
    return Reject(Stage.read, "undecodable", f"byte 0x{line[start]:02x} at offset {start} of the line is not "
                  f"valid {encoding}", locator, raw_bytes=escape_bytes(line))


def _read_jsonl(source: Source, encoding: str) -> Iterator[RawItem | Reject]:
    for number, line in iter_lines(source.path):
        yield parse_json_line(source.name, number, line, encoding)


def _read_json(source: Source, encoding: str, records_path: str | None) -> Iterator[RawItem | Reject]:
    data = source.path.read_bytes()
    try:
        if encoding == "utf-8-sig" or data.startswith(codecs.BOM_UTF8):
            data = data.removeprefix(codecs.BOM_UTF8)
        text: bytes | str = data if encoding in ("utf-8", "utf-8-sig") else data.decode(encoding)
        value = orjson.loads(text)
    except UnicodeDecodeError as error:
        raise _decode_error(source.name, error, 0, encoding) from None
    except orjson.JSONDecodeError as error:
        try:
            data.decode("utf-8" if encoding in ("utf-8", "utf-8-sig") else encoding)
        except UnicodeDecodeError as decode_error:
            problem: InputError = _decode_error(source.name, decode_error, 0, encoding)
        else:
            problem = InputError(f"invalid JSON: {error.msg} (column {error.colno})", file=source.name,
                                 line=error.lineno)
        if not source.in_directory:
            raise problem from None
        yield Reject(Stage.read, "invalid_json", problem.message, Locator(source.name, line=problem.line),
                     raw_bytes=escape_bytes(data))
        return
    if records_path:
        value = _records_under(value, records_path, source.name)
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield RawItem(item, Locator(source.name, index=index))
    elif isinstance(value, dict):
        yield RawItem(value, Locator(source.name))
    else:
        raise InputError(f"top level is a {type(value).__name__}; expected a list of records or one object",
                         file=source.name, hint="use --records-path KEY for a list under a key")


def _records_under(value: Any, records_path: str, name: str) -> Any:
    from .paths import PathNotFound, parse_path, resolve  # a cheap module; kept local to avoid a cycle

    try:
        found = resolve(value, parse_path(records_path))
    except PathNotFound as error:
        raise InputError(f"--records-path {records_path!r}: {error}", file=name) from None
    if not isinstance(found, list):
        raise InputError(f"--records-path {records_path!r} is a {type(found).__name__}, not a list", file=name)
    return found


def _decoded_lines(path: Path, encoding: str) -> Iterator[str]:
    # surrogateescape keeps undecodable bytes visible to the row check below instead of aborting the file.
    decoder = "utf-8" if encoding == "utf-8-sig" else encoding
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if number == 1:
                line = line.removeprefix(codecs.BOM_UTF8)
            yield line.decode(decoder, errors="surrogateescape")


def _read_csv(source: Source, encoding: str) -> Iterator[RawItem | Reject]:
    delimiter = "\t" if source.format is Format.tsv else ","
    reader = csv.reader(_decoded_lines(source.path, encoding), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as error:
        raise InputError(f"bad CSV header: {error}", file=source.name, line=1) from None
    header = [name.strip() for name in header]
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield Reject(Stage.read, "bad_csv_row", f"CSV error: {error}", Locator(source.name, line=start))
            start = reader.line_num + 1
            continue
        locator = Locator(source.name, line=start)
        start = reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        yield _csv_row(header, row, locator, encoding)


def _csv_row(header: list[str], row: list[str], locator: Locator, encoding: str) -> RawItem | Reject:
    joined = "\x1f".join(row)
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        raw = joined.encode(encoding if encoding != "utf-8-sig" else "utf-8", errors="surrogateescape")
        return Reject(Stage.read, "undecodable", f"row holds bytes that are not valid {encoding}", locator,
                      raw_bytes=escape_bytes(raw))
    if len(row) != len(header):
        return Reject(Stage.read, "bad_csv_row", f"row has {len(row)} cells, the header has {len(header)}",
                      locator, raw=row)
    return RawItem(dict(zip(header, row)), locator)


def _read_parquet(source: Source, batch_rows: int = 8192) -> Iterator[RawItem | Reject]:
    import polars as pl

    try:
        frame = pl.scan_parquet(source.path)
        index = 0
        for batch in frame.collect_batches(chunk_size=batch_rows):
            for row in batch.iter_rows(named=True):
                yield RawItem(row, Locator(source.name, index=index))
                index += 1
    except (pl.exceptions.PolarsError, OSError) as error:
        raise InputError(f"cannot read Parquet: {error}", file=source.name) from None
