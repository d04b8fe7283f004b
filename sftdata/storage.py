"""Where files live: this machine's disk, or a filesystem fsspec knows (``s3://``, ``gs://``, ``hdfs://``,
``abfs://``, ...), named by URL.

`location(text)` is a Path for a local name (``file://`` too) and a `Url` for any other scheme. A Url has
the few pathlib operations sftdata uses (name, suffix, parent, ``/``, open, exists, glob, ...) over the
filesystem fsspec picks for its scheme; fsspec and that filesystem's package (s3fs, gcsfs, adlfs, pyarrow
for HDFS) are imported on first use, and a missing one is an SftDataError naming what to install.
Credentials and endpoints come from the filesystem's own configuration (AWS_* variables, ~/.aws,
GOOGLE_APPLICATION_CREDENTIALS, ...); sftdata never takes or writes them.

Reading streams (`open_binary` gives a buffered handle with ``readline(limit)``, ``seek`` and ``tell``, so
a split of a file is a ranged read). Writing goes through a local file that is uploaded whole when it is
complete (sftdata.writers.AtomicFile): an object store shows an object only once it is whole, so a killed
task never leaves a half-written part under its name. `staged` runs code that writes local files and
uploads them when it is done.
"""
from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

from .errors import InputError, OutputError, SftDataError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "abfs": "adlfs", "az": "adlfs",
            "hdfs": "pyarrow", "viewfs": "pyarrow"}


def _io(method: Any) -> Any:
    """Failures of the filesystem's client that are not OSErrors (a botocore NoCredentialsError, ...) as
    OSErrors, which every caller turns into a reject or a typed error."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (OSError, SftDataError):
            raise
        except Exception as error:
            raise OSError(f"{type(error).__name__}: {error}") from error
    return wrapper


BLOCK = 8 << 20  # bytes a read or write request moves; the filesystems' defaults (s3fs: 50 MiB) cost memory
MAX_PARTS = 9_000


class Url:
    """A file or folder on a filesystem fsspec knows, named by its URL ("s3://bucket/data/train.jsonl")."""

    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        scheme = _SCHEME.match(url)
        if not scheme:
            raise ValueError(f"not a URL: {url!r}")
        root = scheme.end()
        self.url = url[:root] + url[root:].rstrip("/")

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"Url({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Url) and other.url == self.url

    def __hash__(self) -> int:
        return hash(("url", self.url))

    def __lt__(self, other: Url) -> bool:
        return self.url < other.url

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0].lower()

    @property
    def name(self) -> str:
        return self.url.split("://", 1)[1].rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> Url:
        scheme, rest = self.url.split("://", 1)
        return Url(f"{scheme}://{rest.rsplit('/', 1)[0]}") if "/" in rest else self

    def with_name(self, name: str) -> Url:
        return self.parent / name

    def __truediv__(self, name: str) -> Url:
        return Url(f"{self.url}/{name}")

    # --- the filesystem -----------------------------------------------------------------------

    def fs(self) -> tuple[Any, str]:
        """(fsspec filesystem, the path it knows the URL by). Listings the filesystem cached for the path are
        dropped: other processes (an engine's workers) write beside it."""
        fs, path = filesystem(self.url)
        fs.invalidate_cache(path)
        return fs, path

    @_io
    def exists(self) -> bool:
        fs, path = self.fs()
        return bool(fs.exists(path))

    @_io
    def is_file(self) -> bool:
        fs, path = self.fs()
        return bool(fs.isfile(path))

    @_io
    def is_dir(self) -> bool:
        fs, path = self.fs()
        return bool(fs.isdir(path))

    def is_symlink(self) -> bool:
        return False

    @_io
    def size(self) -> int:
        fs, path = self.fs()
        return int(fs.size(path))

    @_io
    def info(self) -> dict[str, Any]:
        fs, path = self.fs()
        return dict(fs.info(path))

    @_io
    def mkdir(self, parents: bool = True, exist_ok: bool = True) -> None:
        fs, path = self.fs()
        fs.makedirs(path, exist_ok=True)

    @_io
    def unlink(self, missing_ok: bool = False) -> None:
        fs, path = self.fs()
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    @_io
    def remove_tree(self) -> None:
        fs, path = self.fs()
        with contextlib.suppress(FileNotFoundError):
            fs.rm(path, recursive=True)

    @_io
    def files(self) -> list[Url]:
        """Every file under this folder, sorted."""
        fs, path = self.fs()
        return sorted(self._url(fs, p) for p in fs.find(path))

    def glob(self, pattern: str) -> list[Url]:
        return [url for url, _ in glob(f"{self.url}/{pattern}")]

    @_io
    def open(self, mode: str = "rb", block_size: int | None = None) -> IO[bytes]:
        fs, path = self.fs()
        return fs.open(path, mode, **({"block_size": block_size} if block_size else {}))

    def read_bytes(self) -> bytes:
        with self.open("rb") as handle:
            return handle.read()

    @_io
    def upload(self, local: str | os.PathLike[str]) -> None:
        """A local file streamed to the URL, one block in memory (s3fs's put_file holds up to ten 50 MiB parts:
        over 1 GiB for a 600 MB file); an upload that fails is discarded, never completed half-written."""
        fs, path = self.fs()
        block = max(BLOCK, -(-os.path.getsize(local) // MAX_PARTS))  # S3 takes at most 10,000 parts an object
        remote = fs.open(path, "wb", block_size=block)
        try:
            with open(local, "rb") as handle:
                while data := handle.read(BLOCK):
                    remote.write(data)
        except BaseException:
            discard = getattr(remote, "discard", None)
            if discard is not None:
                discard()  # s3fs: aborts the multipart upload
            with contextlib.suppress(Exception):
                remote.closed = True  # so that nothing commits it when it is collected
            raise
        remote.close()

    @_io
    def download(self, local: str | os.PathLike[str]) -> None:
        fs, path = self.fs()
        fs.get_file(path, os.fspath(local))

    def _url(self, fs: Any, path: str) -> Url:
        return Url(fs.unstrip_protocol(path)) if "://" not in path else Url(path)


Location = Path | Url


def is_url(value: object) -> bool:
    """A name with a scheme other than file://."""
    if isinstance(value, Url):
        return True
    return isinstance(value, str) and bool(_SCHEME.match(value)) and not value.lower().startswith("file://")


def location(value: str | os.PathLike[str] | Url) -> Location:
    """A Url for a name with a scheme, else a Path (``file:///x`` is the Path /x)."""
    if isinstance(value, (Url, Path)):
        return value
    text = os.fspath(value)
    if text.lower().startswith("file://"):
        return Path(text[len("file://"):])
    return Url(text) if is_url(text) else Path(text)


_COLLAPSED = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:/(?!/)")


def check_local(path: Path) -> None:
    """A Path that was a URL before pathlib collapsed its "//" ("s3://b/x" → "s3:/b/x") would be written as a
    local folder named "s3:": the command that made it takes local paths only."""
    if _COLLAPSED.match(str(path)):
        raise OutputError(f"this command writes to local paths, not to {str(path).split(':')[0]}:// URLs",
                          file=str(path), hint="write locally and copy, or use convert, render, filter, "
                          "pretokenize, dedup, scrub, decontaminate or mix, which write to URLs")


def filesystem(url: str) -> tuple[Any, str]:
    """fsspec's filesystem for the URL's scheme (cached by fsspec) and the URL's path on it."""
    scheme = url.split("://", 1)[0].lower()
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise SftDataError(f"{scheme}:// paths are read through fsspec", hint=f"pip install fsspec "
                           f"{PACKAGES.get(scheme, '')}".rstrip()) from None
    try:
        return url_to_fs(url)
    except ImportError as error:
        raise SftDataError(f"{scheme}:// paths need the filesystem package fsspec names: {error}",
                           hint=f"pip install {PACKAGES[scheme]}" if scheme in PACKAGES else None) from None
    except ValueError as error:
        raise InputError(f"no filesystem for {scheme}://: {error}", file=url) from None


@_io
def glob(pattern: str) -> list[tuple[Url, bool]]:
    """The URLs a pattern with wildcards matches, sorted, each with whether it is a folder."""
    fs, path = filesystem(pattern)
    fs.invalidate_cache()
    found = fs.glob(path, detail=True)
    return sorted((Url(fs.unstrip_protocol(p)), info.get("type") == "directory") for p, info in found.items())


def open_binary(path: Location, buffer: int = 1 << 20) -> IO[bytes]:
    """A file opened for reading, buffered: ``readline(limit)``, ``seek`` and ``tell`` work on both kinds."""
    if isinstance(path, Url):
        return io.BufferedReader(path.open("rb", BLOCK), buffer)  # type: ignore[arg-type]
    return open(path, "rb")


def size_of(path: Location) -> int | None:
    try:
        return path.size() if isinstance(path, Url) else os.path.getsize(path)
    except OSError:
        return None


@contextlib.contextmanager
def staged(target: Location, *, last: tuple[str, ...] = (".meta.json", "_meta.json")) -> Iterator[Path]:
    """A local name for `target`: a Path is itself; for a Url, code writes `target` and its sidecars (or a
    folder named `target`) under a local folder, and when it finishes without error every file written there
    is uploaded beside the URL, sidecars named in `last` after the data, and the local copies are removed."""
    if isinstance(target, Path):
        yield target
        return
    folder = Path(tempfile.mkdtemp(prefix="sftdata-stage-"))
    try:
        yield folder / target.name
        written = sorted(p for p in folder.rglob("*") if p.is_file())
        for path in sorted(written, key=lambda p: p.name.endswith(last)):
            try:
                (target.parent / path.relative_to(folder).as_posix()).upload(path)
            except OSError as error:
                raise OutputError(f"cannot upload: {error.strerror or error}", file=str(target)) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
