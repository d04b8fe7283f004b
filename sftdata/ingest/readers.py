"""Files, directories and globs → a stream of RawItems (or read Rejects), with locators.

Formats: JSON (a list of records, one record, or a list under ``--records-path``), JSONL, CSV/TSV and
Parquet. A directory is walked recursively (a glob too, when it matches directories) for files with
those suffixes; other files (README.txt, ...) and names starting with "." are not inputs.

Memory: JSONL, CSV/TSV and Parquet stream in bounded memory, whatever the file size; a line longer
than MAX_LINE_BYTES is skipped unread and rejected. A JSON file is parsed whole.

Problems: one bad row (invalid JSON, undecodable bytes, wrong cell count, NUL bytes, nesting deeper
than MAX_DEPTH) is a Reject with the file, the 1-based line (JSONL, CSV) or 0-based index (JSON
lists, Parquet rows), the reason and the raw item or its escaped bytes; the other rows still flow. A
problem with a whole file (unreadable, undecodable JSON, not JSON at all, a bad CSV header) is an
InputError when the user named the file, and a Reject for that file when it was found by walking a
directory or glob, so one broken file among thousands does not stop a run.

JSONL lines end at \\n (a CR before it is dropped), as the JSON Lines format says. CSV/TSV and
Parquet live in sftdata.ingest.tabular, encodings (``--encoding auto``) in sftdata.ingest.encodings, and what
both read and raise (Source, Format, FileProblem, raw lines, MAX_LINE_BYTES) in sftdata.ingest.sources.
"""
from __future__ import annotations

import codecs
import glob
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from ..errors import InputError
from ..items import Locator, RawItem, Reject, Stage
from ..storage import Location, Url, location, open_binary
from ..storage import glob as glob_urls
from . import sources
from .encodings import (
    UTF8,
    EncodingNameError,
    ascii_compatible,
    bom_encoding,
    describe_error,
    detect_bytes,
    detect_stream,
    escape_around,
    escape_bytes,
    first_error,
    normalize,
)
from .paths import PathNotFound, PathSyntaxError, parse_path, resolve
from .sources import FileProblem, Format, LongLine, Source, long_line
from .tabular import read_csv, read_parquet

Encoding = Literal["auto", "utf-8", "utf-8-sig", "cp949", "euc-kr"] | str
MAX_DEPTH = 200  # deeper nesting is rejected: the JSON writer stops at 254 levels
# Format, Source and LongLine (sftdata.ingest.sources) stay importable from here: the readers' callers name them
__all__ = ["Encoding", "Format", "Source", "LongLine", "expand_sources", "read_items", "read_source", "iter_lines",
           "parse_json_line", "detect_encoding", "escape_bytes", "format_of"]


_SUFFIXES = {".json": Format.json, ".jsonl": Format.jsonl, ".ndjson": Format.jsonl, ".csv": Format.csv,
             ".tsv": Format.tsv, ".parquet": Format.parquet}


def format_of(path: Path | Url) -> Format | None:
    return _SUFFIXES.get(path.suffix.lower())


def expand_sources(inputs: list[str | os.PathLike[str] | Source]) -> list[Source]:
    """Resolve files, directories (recursive) and globs to Sources, in a stable order, each once; a Source
    (a split of a file) is taken as it is."""
    sources: dict[Location | tuple[Location, int], Source] = {}
    for entry in inputs:
        if isinstance(entry, Source):  # one split of a file (sftdata.scale), read as it is
            sources.setdefault((entry.path, entry.span[0]) if entry.span else entry.path, entry)
            continue
        for source in _sources(str(entry) if isinstance(entry, Url) else os.fspath(entry)):
            sources.setdefault(source.path, source)
    return list(sources.values())


def _sources(text: str) -> list[Source]:
    """One input: a file, a directory (walked), or a pattern with wildcards; local, or a URL of a filesystem
    fsspec knows (sftdata.storage), walked and matched the same way."""
    path = location(text)
    walk: Any = _walk_url if isinstance(path, Url) else _walk
    try:
        if path.is_dir():
            found = walk(path)
            if not found:
                raise InputError("directory holds no .json/.jsonl/.csv/.tsv/.parquet files", file=text)
            return [Source(p, format_of(p), True) for p in found]  # type: ignore[arg-type]
        if path.exists() or path.is_symlink():
            fmt = format_of(path)
            if fmt is None:
                raise InputError(f"unknown file type {path.suffix or '(no suffix)'!r}", file=text,
                                 hint="use .json, .jsonl, .ndjson, .csv, .tsv or .parquet")
            return [Source(path, fmt, False)]
        if glob.has_magic(text):
            found = []
            hits = glob_urls(text) if isinstance(path, Url) else [(Path(m), os.path.isdir(m)) for m in
                                                                   sorted(glob.glob(text, recursive=True))]
            for hit, is_dir in hits:
                found += walk(hit) if is_dir else [hit] if format_of(hit) else []
            if not found:
                raise InputError("pattern matches no .json/.jsonl/.csv/.tsv/.parquet files", file=text)
            return [Source(p, format_of(p), True) for p in found]  # type: ignore[arg-type]
    except OSError as error:  # a filesystem's client that cannot list or reach it
        raise InputError(f"cannot read: {error.strerror or error}", file=text) from None
    raise InputError("no such file or directory", file=text)


def _walk_url(root: Url) -> list[Url]:
    """_walk over a filesystem fsspec knows: the same files in the same order."""
    files = root.files()
    names = {f.url for f in files}
    concatenated = [f.parent.url + "/" for f in files if f.name == "_meta.json" and f.parent != root
                    and f.parent.url + ".jsonl" in names]
    found = []
    for f in files:
        parts = f.url[len(root.url) + 1:].split("/")
        if any(p.startswith(".") for p in parts) or not format_of(f) or f.name.endswith(SIDECARS) \
                or f.name == "_meta.json" or any(f.url.startswith(c) for c in concatenated):
            continue
        found.append((tuple((1, p) for p in parts[:-1]) + ((0, parts[-1]),), f))  # a folder's files first
    return [f for _, f in sorted(found)]


# What sftdata writes beside its outputs: a folder of outputs (or of part files) read as input is its data.
SIDECARS = (".rejects.jsonl", ".meta.json", ".dupes.jsonl", ".synth-cache.jsonl", ".judge-cache.jsonl")


def _concatenated(folder: Path) -> bool:
    """A folder of part files (sftdata.scale) whose rows `--concat` also wrote beside it as FOLDER.jsonl: reading
    both would read every row twice, so a walk from above takes the single file."""
    return (folder / "_meta.json").is_file() and folder.with_name(folder.name + ".jsonl").is_file()


def _walk(root: Path) -> list[Path]:
    """Input files under root: known suffixes, no dot-names, no sftdata sidecars (rejects, .meta.json,
    dupes, caches, a folder's _meta.json), symlinked directories once (no loops)."""
    def failed(error: OSError) -> None:
        raise InputError(f"cannot list directory: {error.strerror or error}", file=error.filename or str(root))

    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, onerror=failed, followlinks=True):
        try:
            info = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        if (info.st_dev, info.st_ino) in seen or (folder != str(root) and _concatenated(Path(folder))):
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder, f) for f in sorted(files)
                  if not f.startswith(".") and format_of(Path(f)) and not f.endswith(SIDECARS) and f != "_meta.json"]
    return found


def detect_encoding(path: Location, encoding: Encoding = "auto") -> str:
    """The codec a file is read with: `encoding` normalised, or for 'auto' the rules of sftdata.ingest.encodings."""
    if encoding != "auto":
        return _codec(encoding)
    with open_binary(path) as handle:
        return detect_stream(handle)


def _codec(encoding: str) -> str:
    try:
        return normalize(encoding)
    except EncodingNameError:
        raise InputError(f"unknown encoding {encoding!r}", hint="use auto, utf-8, cp949 (or euc-kr), "
                         "or another Python codec name") from None


def read_items(sources: list[Source], *, encoding: Encoding = "auto",
               records_path: str | None = None) -> Iterator[RawItem | Reject]:
    if encoding != "auto":
        _codec(encoding)  # a bad --encoding is the user's option, not a file's problem: fail first
    for source in sources:
        yield from read_source(source, encoding=encoding, records_path=records_path)


def read_source(source: Source, *, encoding: Encoding = "auto",
                records_path: str | None = None) -> Iterator[RawItem | Reject]:
    """The rows of one file; a Source that is a split (sftdata.scale) reads its byte range of a JSON Lines file
    (the lines that start in it, the first numbered as the planner counted) with the codec fixed for the
    whole file, or its rows of a Parquet file."""
    if source.span is not None:
        encoding = source.codec or encoding
    try:
        _check_regular(source)
        if source.format is Format.parquet:
            yield from read_parquet(source)
        elif source.format is Format.json:
            yield from _read_json(source, encoding, records_path)
        else:
            codec = detect_encoding(source.path, encoding)
            if not ascii_compatible(codec):
                raise FileProblem("undecodable", f"{codec} cannot be read line by line", file=source.name,
                                 hint="save the file as UTF-8")
            if source.format is Format.jsonl:
                yield from _read_jsonl(source, codec, *(source.span or (0, None, 1)))
            else:
                yield from read_csv(source, codec)
    except OSError as error:
        problem = FileProblem("unreadable_file", f"cannot read: {error.strerror or error}", file=source.name)
        if not source.in_directory:
            raise problem from None
        yield problem.reject()
    except FileProblem as problem:
        if not source.in_directory:
            raise
        yield problem.reject()


def _check_regular(source: Source) -> None:
    if isinstance(source.path, Url):
        if not source.path.is_file():
            raise FileProblem("unreadable_file", "not a file (a folder, or gone)", file=source.name)
        return
    if source.path.is_symlink() and not source.path.exists():
        raise FileProblem("unreadable_file", f"broken symbolic link (to {os.readlink(source.path)})", file=source.name)
    mode = os.stat(source.path).st_mode
    if not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "a pipe" if stat.S_ISFIFO(mode) else "a special file"
        raise FileProblem("unreadable_file", f"not a regular file ({what})", file=source.name)


# --- JSON Lines ---------------------------------------------------------------------------------

def _skip_line(handle: IO[bytes]) -> None:
    while rest := handle.readline(1 << 20):
        if rest[-1:] == b"\n":
            return


def iter_lines(path: Location, start: int = 0, end: int | None = None, first: int = 1) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line bytes without the line end), skipping blank lines. Lines end at
    \\n; a UTF-8 BOM on line 1 is dropped; a line over MAX_LINE_BYTES comes as a LongLine prefix.

    With `start`/`end` (a split of the file, sftdata.scale): only the lines that start at a byte offset in
    [start, end), the first of them numbered `first` (the planner counted the lines before it)."""
    limit = sources.MAX_LINE_BYTES
    with open_binary(path) as handle:
        number = first - 1
        if start > 0:
            handle.seek(start - 1)
            if handle.read(1) != b"\n":
                _skip_line(handle)  # that line started before `start`: the previous split owns it
        while (end is None or handle.tell() < end) and (line := handle.readline(limit + 1)):
            number += 1
            if len(line) > limit and line[-1:] != b"\n":
                yield number, long_line(handle, line)
                continue
            if number == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[3:]
            line = line.rstrip(b"\r\n")
            if line and not line.isspace():
                yield number, line


def parse_json_line(source: str, number: int, line: bytes, encoding: str) -> RawItem | Reject:
    """One JSONL line → RawItem, or a Reject (invalid JSON, undecodable, too long, too deep).
    `encoding` is the file's codec; 'auto' here means UTF-8, else CP949, for this line alone."""
    if type(line) is LongLine:
        return Reject(Stage.read, "line_too_long", f"line is {line.length:,} bytes, over the limit of "
                      f"{sources.MAX_LINE_BYTES:,}; it was skipped unread", Locator(source, number),
                      raw_bytes=escape_bytes(line))
    text: bytes | str = line
    if encoding not in UTF8 and not line.isascii():
        codec = ("utf-8" if first_error(line, "utf-8") is None else "cp949") if encoding == "auto" else encoding
        try:
            text = line if codec == "utf-8" else line.decode(codec)
        except UnicodeDecodeError as error:
            return _undecodable(Locator(source, number), line, error, codec)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        if type(text) is bytes and not text.isascii() and (bad := first_error(line, "utf-8")):
            return _undecodable(Locator(source, number), line, bad, "utf-8")
        return _invalid_line(Locator(source, number), error, text if type(text) is str else text.decode())
    # nesting deeper than MAX_DEPTH takes MAX_DEPTH + 1 openers and as many closers: a shorter line cannot
    if len(line) >= 2 * (MAX_DEPTH + 1) and line.count(b"{") + line.count(b"[") > MAX_DEPTH and not _depth_ok(value):
        return _too_deep(Locator(source, number), text if type(text) is str else text.decode())
    return RawItem(value, Locator(source, number))


def _invalid_line(locator: Locator, error: orjson.JSONDecodeError, text: str) -> Reject:
    if "depth" in error.msg:
        return _too_deep(locator, text)
    message = f"invalid JSON: {error.msg} at column {error.colno}"
    if "\x00" in text:
        message += " (the line holds NUL bytes: a binary or truncated file?)"
    elif "\r" in text:
        message += " (the line holds a carriage return: JSON Lines end at \\n)"
    return Reject(Stage.read, "invalid_json", message, locator, raw=text)


def _too_deep(locator: Locator, text: str) -> Reject:
    return Reject(Stage.read, "too_deep", f"JSON nested deeper than {MAX_DEPTH} levels", locator, raw=text)


def _depth_ok(value: Any) -> bool:
    """True if value nests at most MAX_DEPTH levels (orjson's writer, in C, stops at 254)."""
    for _ in range(254 - MAX_DEPTH):
        value = [value]
    try:
        orjson.dumps(value)
        return True
    except orjson.JSONEncodeError:
        return False


def _undecodable(locator: Locator, line: bytes, error: UnicodeDecodeError, encoding: str) -> Reject:
    return Reject(Stage.read, "undecodable", f"byte 0x{line[error.start]:02x} at byte {error.start} of the line "
                  f"is not valid {encoding} (pass --encoding if the file is in another encoding)", locator,
                  raw_bytes=escape_around(line, error.start))


def _read_jsonl(source: Source, encoding: str, start: int = 0, end: int | None = None,
                first: int = 1) -> Iterator[RawItem | Reject]:
    name = source.name
    for number, line in iter_lines(source.path, start, end, first):
        yield parse_json_line(name, number, line, encoding)



# --- JSON ---------------------------------------------------------------------------------------

def _read_json(source: Source, encoding: Encoding, records_path: str | None) -> Iterator[RawItem | Reject]:
    data = source.path.read_bytes()
    name = source.name
    codec = (bom_encoding(data[:64]) or detect_bytes(data)) if encoding == "auto" else _codec(encoding)
    if codec in UTF8:
        data = data.removeprefix(codecs.BOM_UTF8)
    if not data.strip():
        raise FileProblem("empty_file", "file is empty", file=name, hint="a JSON file holds a list of records "
                         "or one record object")
    try:
        text: bytes | str = data if codec in UTF8 else data.decode(codec)
        value = orjson.loads(text)
    except UnicodeDecodeError as error:
        raise _undecodable_file(name, data, error, codec) from None
    except orjson.JSONDecodeError as error:
        if isinstance(text, bytes) and (bad := first_error(data, "utf-8")):
            raise _undecodable_file(name, data, bad, codec) from None
        reason = "too_deep" if "depth" in error.msg else "invalid_json"
        raise FileProblem(reason, f"invalid JSON: {error.msg} (column {error.colno})", file=name,
                         line=error.lineno, raw_bytes=escape_bytes(data)) from None
    if records_path:
        value = _records_under(value, records_path, name)
    deep_ok = _depth_ok(value)
    if isinstance(value, list):
        for index, item in enumerate(value):
            locator = Locator(name, index=index)
            if deep_ok or _depth_ok(item):
                yield RawItem(item, locator)
            else:
                yield Reject(Stage.read, "too_deep", f"JSON nested deeper than {MAX_DEPTH} levels", locator)
    elif isinstance(value, dict) and (deep_ok or source.in_directory):
        yield RawItem(value, Locator(name)) if deep_ok else _too_deep(Locator(name), "")
    elif isinstance(value, dict):
        raise FileProblem("too_deep", f"JSON nested deeper than {MAX_DEPTH} levels", file=name)
    else:
        kind = {bool: "boolean", int: "number", float: "number", str: "string"}.get(type(value), "null")
        raise FileProblem("not_a_record", f"top level is a {kind}; expected a list of records or one object",
                         file=name, hint="use --records-path KEY for a list under a key")


def _undecodable_file(name: str, data: bytes, error: UnicodeDecodeError, codec: str) -> FileProblem:
    return FileProblem("undecodable", describe_error(data, error, codec), file=name,
                      line=data.count(b"\n", 0, error.start) + 1, hint="pass --encoding (e.g. utf-8, cp949)",
                      raw_bytes=escape_around(data, error.start))


def _records_under(value: Any, records_path: str, name: str) -> Any:
    try:
        found = resolve(value, parse_path(records_path))
    except (PathNotFound, PathSyntaxError) as error:
        raise FileProblem("records_path", f"--records-path {records_path!r}: {error}", file=name) from None
    if not isinstance(found, list):
        raise FileProblem("records_path", f"--records-path {records_path!r} is a {type(found).__name__}, "
                         "not a list", file=name)
    return found
