"""Atomic outputs: everything is written to a temporary file beside the target and renamed into
place only when complete, so a killed run never leaves a half-written file under the final name. A target
on a remote filesystem (a sftdata.storage.Url) is written to a local temporary file and uploaded whole
when complete: an object store shows an object only once it is whole."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from .errors import OutputError
from .storage import Location, Url, check_local, location


def sidecar_path(output: Location, suffix: str) -> Location:
    """A file written beside an output: OUT.jsonl → OUT{suffix} (".rejects.jsonl", ".meta.json", ...)."""
    return output.with_name(_stem(output) + suffix)


def rejects_path(output: Location) -> Location:
    return sidecar_path(output, ".rejects.jsonl")


def meta_path(output: Location) -> Location:
    return sidecar_path(output, ".meta.json")


def _stem(output: Location) -> str:
    name = output.name
    for suffix in (".jsonl", ".json", ".parquet", ".csv", ".html"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


class AtomicFile:
    """A binary file that appears under `path` only if the `with` block finishes without error."""

    def __init__(self, path: str | os.PathLike[str] | Url) -> None:
        self.path = location(path)
        if isinstance(self.path, Path):
            check_local(self.path)
        self._handle: IO[bytes] | None = None
        self._tmp: str | None = None

    def __enter__(self) -> IO[bytes]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            here = None if isinstance(self.path, Url) else self.path.parent  # a Url: uploaded when complete
            fd, self._tmp = tempfile.mkstemp(dir=here, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as error:
            raise OutputError(f"cannot write: {error.strerror or error}", file=str(self.path)) from None
        self._handle = os.fdopen(fd, "wb", buffering=1 << 20)
        return self._handle

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        assert self._handle is not None and self._tmp is not None
        if isinstance(error, OSError):  # e.g. disk full while writing: nothing under the final name
            try:
                self._handle.close()
            except OSError:
                pass
            _unlink(self._tmp)
            raise OutputError(f"cannot write: {error.strerror or error}", file=str(self.path)) from None
        try:
            if kind is None:
                self._handle.flush()
                os.fsync(self._handle.fileno())
            self._handle.close()
            if kind is None:
                os.chmod(self._tmp, 0o644)
                if isinstance(self.path, Url):
                    self.path.upload(self._tmp)
                    _unlink(self._tmp)
                else:
                    os.replace(self._tmp, self.path)
                return
        except OSError as failure:
            _unlink(self._tmp)
            raise OutputError(f"cannot write: {failure.strerror or failure}", file=str(self.path)) from None
        _unlink(self._tmp)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def dumps_line(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)  # orjson.dumps(value) + b"\n", without a copy


def write_json(path: Location, value: Any) -> None:
    with AtomicFile(path) as handle:
        handle.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


def file_digest(path: Location) -> dict[str, Any]:
    if isinstance(path, Url):
        return _remote_digest(path)
    digest = hashlib.sha256()
    try:  # a source the reader rejected as unreadable (broken link, FIFO) must not hang or crash here
        if not path.is_file():
            return {"path": str(path), "error": "not a regular file"}
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        return {"path": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    except OSError as error:
        return {"path": str(path), "error": error.strerror or str(error)}


def _remote_digest(url: Url) -> dict[str, Any]:
    """A remote file's size and the store's own content hash (an S3 ETag, a GCS MD5 or CRC32C): hashing it
    here would read the whole object on the driver."""
    try:
        info = url.info()
    except OSError as error:
        return {"path": str(url), "error": error.strerror or str(error)}
    found = {k.lower(): v for k, v in info.items()}
    stored = {key: str(found[key]).strip('"') for key in ("etag", "md5hash", "crc32c", "checksum") if found.get(key)}
    return {"path": str(url), "bytes": int(info.get("size") or 0), **stored}


def publish_dir(target: Path, fill: Callable[[Path], None], done: str) -> Path:
    """A cache folder written whole: `fill` writes into a staging folder beside `target`, which is then
    renamed into place. When the rename fails because another process published it first (its `done`
    file is there), theirs is kept; any other failure is raised."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        fill(staging)
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / done).is_file():
            raise
    return target


class NullFile:
    """Where a command that writes nothing in this mode (``--action report``) sends its lines."""

    def write(self, data: bytes) -> None:
        pass

    def __enter__(self) -> NullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def atomic_or_null(path: Path | None) -> AtomicFile | NullFile:
    return AtomicFile(path) if path is not None else NullFile()
