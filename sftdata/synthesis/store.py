"""Crash-safe files of a synth run: the output, its rejects, and a content-addressed request cache.

All three are append-only JSONL beside the output (`OUT.jsonl`, `OUT.rejects.jsonl`,
`OUT.synth-cache.jsonl`). Each line is written with one `os.write` on an O_APPEND descriptor as
soon as it exists, so a kill -9 leaves at most a torn last line, which the next run cuts off; the
output is also fsync'ed (for power loss) at most once a second and at the end. The cache maps a
request's content hash (prompt, sampling, schema, backend and model; never a credential) to the
server's reply, so a re-run replays what it already paid for and sends only what is missing.
An exclusive lock keeps two runs off the same output.
"""
from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..errors import OutputError
from ..writers import dumps_line, rejects_path


def cache_path(output: Path) -> Path:
    name = output.name
    stem = name[: -len(".jsonl")] if name.endswith(".jsonl") else name
    return output.with_name(stem + ".synth-cache.jsonl")


def synth_meta(row: dict[str, Any]) -> dict[str, Any]:
    meta = row.get("meta")
    synth = meta.get("synth") if isinstance(meta, dict) else None
    return synth if isinstance(synth, dict) else {}


class Store:
    """The output, rejects and cache files of one run, opened for appending after a resume scan."""

    def __init__(self, output: str | os.PathLike[str]) -> None:
        self.output = Path(output)
        self.rejects = rejects_path(self.output)
        self.cache_file = cache_path(self.output)
        self.lock_file = self.output.with_name(f".{self.output.name}.lock")
        self.rows: list[dict[str, Any]] = []
        self.accepted_keys: set[tuple[str, int]] = set()
        self.reject_keys: set[tuple[str, int, str]] = set()
        self.cache: dict[str, dict[str, Any]] = {}
        self.repaired: list[str] = []
        self._fds: dict[str, int] = {}
        self._lock: int | None = None
        self._synced = 0.0

    # -- opening and resuming -------------------------------------------------------------------
    def open(self) -> Store:
        try:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self._lock = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise OutputError(f"cannot write: {error.strerror or error}", file=str(self.output)) from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock)
            self._lock = None
            raise OutputError("another synth run is writing this output", file=str(self.output)) from None
        try:
            for number, row in self._scan(self.output, strict=True):
                if not isinstance(row, dict):
                    raise OutputError(f"line {number} is not a JSON object; synth appends to records JSONL",
                                      file=str(self.output))
                self.rows.append(row)
                synth = synth_meta(row)
                if "request_key" in synth and "item" in synth:
                    self.accepted_keys.add((synth["request_key"], synth["item"]))
            for _, row in self._scan(self.rejects, strict=False):
                if isinstance(row, dict) and row.get("request_key") and row.get("stage") != "request":
                    self.reject_keys.add((row["request_key"], row.get("item", -1), row.get("reason", "")))
            for _, row in self._scan(self.cache_file, strict=False):
                if isinstance(row, dict) and isinstance(row.get("key"), str) and isinstance(row.get("reply"), dict):
                    self.cache[row["key"]] = row
            for name, path in (("output", self.output), ("rejects", self.rejects), ("cache", self.cache_file)):
                self._fds[name] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            self.close()
            raise OutputError(f"cannot write: {error.strerror or error}", file=str(self.output)) from None
        except OutputError:
            self.close()
            raise
        return self

    def _scan(self, path: Path, strict: bool) -> Iterator[tuple[int, Any]]:
        return scan_jsonl(path, strict, self.repaired)

    # -- appending ------------------------------------------------------------------------------
    def _append(self, name: str, row: Any, sync: bool = False) -> None:
        fd = self._fds[name]
        try:
            os.write(fd, dumps_line(row))  # one write of a whole line: a kill leaves no half row
            if sync:
                os.fsync(fd)
        except OSError as error:
            raise OutputError(f"cannot write: {error.strerror or error}", file=str(self.output)) from None

    def accept(self, row: dict[str, Any]) -> None:
        # Written at once (a kill loses nothing); fsync'ed at most once a second (5 ms a time here,
        # which would otherwise hold up the event loop), and at close.
        now = time.monotonic()
        self._append("output", row, sync=now - self._synced >= 1.0)
        if now - self._synced >= 1.0:
            self._synced = now
        self.rows.append(row)
        synth = synth_meta(row)
        if "request_key" in synth:
            self.accepted_keys.add((synth["request_key"], synth["item"]))

    def reject(self, row: dict[str, Any]) -> None:
        """A rejected candidate (written once per request key, item and reason) or a failed request."""
        if row.get("stage") != "request":
            key = (row["request_key"], row.get("item", -1), row["reason"])
            if key in self.reject_keys:
                return
            self.reject_keys.add(key)
        self._append("rejects", row)

    def remember(self, key: str, entry: dict[str, Any]) -> None:
        entry = {"key": key, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **entry}
        self._append("cache", entry)
        self.cache[key] = entry

    def close(self) -> None:
        for fd in self._fds.values():
            try:
                os.fsync(fd)
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()
        if self._lock is not None:
            try:
                os.unlink(self.lock_file)
            except OSError:
                pass
            os.close(self._lock)  # releases the flock
            self._lock = None


def scan_jsonl(path: Path, strict: bool, repaired: list[str]) -> Iterator[tuple[int, Any]]:
    """Rows of a JSONL file, after cutting off a torn last line left by a killed run (noted in `repaired`)."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with open(path, "r+b") as handle:
            handle.truncate(keep)
        repaired.append(f"{path.name}: cut a torn last line ({len(data) - keep} bytes)")
        data = data[:keep]
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, orjson.loads(line)
        except orjson.JSONDecodeError:
            if strict:
                raise OutputError(f"line {number} is not valid JSON", file=str(path)) from None
            repaired.append(f"{path.name}: skipped unreadable line {number}")


class RequestCache:
    """A request cache on its own (the eval judge's): the same append-only, content-addressed file as a synth
    run's, replayed on the next run; a torn last line is cut, and one run at a time holds it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = {}
        self.repaired: list[str] = []
        self._fd: int | None = None
        self._lock: int | None = None

    def open(self) -> RequestCache:
        lock_file = self.path.with_name(f".{self.path.name}.lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            self.close()
            raise OutputError(f"the request cache is in use or cannot be written: {error.strerror or error}",
                              file=str(self.path)) from None
        for _, row in scan_jsonl(self.path, False, self.repaired):
            if isinstance(row, dict) and isinstance(row.get("key"), str) and isinstance(row.get("reply"), dict):
                self.entries[row["key"]] = row
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def remember(self, key: str, entry: dict[str, Any]) -> None:
        entry = {"key": key, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **entry}
        assert self._fd is not None, "open() the cache first"
        os.write(self._fd, dumps_line(entry))  # one write of a whole line: a kill leaves no half entry
        self.entries[key] = entry

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._lock is not None:
            try:
                os.unlink(self.path.with_name(f".{self.path.name}.lock"))
            except OSError:
                pass
            os.close(self._lock)
            self._lock = None
