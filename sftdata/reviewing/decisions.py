"""The review file: one JSON line per decision, appended as it is made, beside the data (DATA.review.jsonl, or
FOLDER/_review.jsonl for a folder of part files); its first line names the data files reviewed.

Each line is written with one `os.write` of the whole line on a file opened O_APPEND, then fsync'd, so a
process killed at any moment leaves whole lines only, or at worst a partial last line (a write the kernel cut
short), which loading ignores and the next writer cuts off before appending. A decision names its row by the file and line the row is
read from (a data file's, or a side file's), so it survives a restart and a reindex.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import orjson

from ..writers import sidecar_path

VERSION = 1


class Action(str, Enum):
    accept = "accept"
    reject = "reject"
    edit = "edit"
    restore = "restore"


@dataclass(frozen=True, slots=True)
class RowKey:
    """A row: the name of the file it is read from (a data file or a side file) and its 1-based line."""

    file: str
    line: int


@dataclass(frozen=True, slots=True)
class Decision:
    key: RowKey
    action: Action
    reviewer: str
    at: str
    note: str = ""
    record: dict[str, Any] | None = None  # an edit's whole record, as the schema validated it
    row_hash: str = ""  # of the row's bytes when decided: a row changed since (the step rerun) is not decided

    def fits(self, row: bytes) -> bool:
        """Whether the decision was made on this row as it is (a decision with no hash fits any)."""
        return not self.row_hash or self.row_hash == row_hash(row)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.key.file, "line": self.key.line, "action": self.action.value,
                               "reviewer": self.reviewer, "at": self.at}
        if self.note:
            out["note"] = self.note
        if self.record is not None:
            out["record"] = self.record
        if self.row_hash:
            out["row"] = self.row_hash
        return out

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Decision:
        return cls(RowKey(str(value["file"]), int(value["line"])), Action(value["action"]), str(value.get("reviewer", "")),
                   str(value.get("at", "")), str(value.get("note", "")), value.get("record"), str(value.get("row", "")))


@dataclass(slots=True)
class ReviewState:
    """What a review file holds: the data files it reviews, each row's latest decision, and its history."""

    data: list[str] = field(default_factory=list)
    latest: dict[RowKey, Decision] = field(default_factory=dict)
    history: list[Decision] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    partial: bool = False  # a trailing partial line was found (and ignored)


def row_hash(row: bytes) -> str:
    """A row's fingerprint (its line's bytes without the newline), saved with each decision on it."""
    return hashlib.blake2b(row.rstrip(b"\r\n"), digest_size=8).hexdigest()


def review_path(data: Path) -> Path:
    return sidecar_path(data, ".review.jsonl")


def data_paths(state: ReviewState, path: Path) -> list[Path]:
    """The data files a review file names, relative to its own folder (as `ReviewFile` writes them); a name not
    found there is taken as it is (relative to the working folder)."""
    out = []
    for name in state.data:
        beside = path.parent / name
        out.append(beside if not Path(name).is_absolute() and beside.exists() else Path(name))
    return out


def load(path: Path) -> ReviewState:
    state = ReviewState()
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return state
    lines = blob.split(b"\n")
    if lines[-1]:
        state.partial = True  # killed mid-line: what was not written whole was not decided
    for line in lines[:-1]:
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a partial line an earlier crash left, followed by later whole lines
        if not isinstance(value, dict):
            continue
        if "review" in value:
            state.data = [str(p) for p in value.get("data") or []]
            continue
        try:
            decision = Decision.from_dict(value)
        except (KeyError, ValueError, TypeError):
            continue
        state.history.append(decision)
        state.latest[decision.key] = decision
        if decision.reviewer and decision.reviewer not in state.reviewers:
            state.reviewers.append(decision.reviewer)
    return state


class ReviewFile:
    """Appends decisions to a review file, one whole line per `os.write`, fsync'd before it returns."""

    def __init__(self, path: Path, data: list[Path]) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.state = load(path)
        self.data = [os.path.relpath(p.resolve(), path.parent.resolve()) for p in data]  # beside it, wherever run

    def decide(self, decisions: list[Decision]) -> None:
        """Append the decisions (after the line naming the data, the first time), fsync'd before returning."""
        if not decisions:
            return
        with self.lock:  # one writer at a time (pages are made in worker threads): one header, lines whole
            head = [] if self.state.data else [{"review": VERSION, "data": self.data}]
            self._append(head + [d.as_dict() for d in decisions])
            self.state.data = self.state.data or self.data
            for decision in decisions:
                self.state.history.append(decision)
                self.state.latest[decision.key] = decision
                if decision.reviewer and decision.reviewer not in self.state.reviewers:
                    self.state.reviewers.append(decision.reviewer)

    def _append(self, values: list[dict[str, Any]]) -> None:
        blob = b"".join(orjson.dumps(v) + b"\n" for v in values)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _drop_partial_tail(fd)
            written = os.write(fd, blob)
            while written < len(blob):  # a short write (a full disk, a signal): the rest, still appended
                written += os.write(fd, blob[written:])
            os.fsync(fd)
        finally:
            os.close(fd)


def _drop_partial_tail(fd: int) -> None:
    """Cut a partial last line a killed writer left (never decided: it was not written whole), so that the file
    holds whole lines only before ours."""
    size = end = os.fstat(fd).st_size
    while end > 0:
        start = max(0, end - (1 << 16))
        at = os.pread(fd, end - start, start).rfind(b"\n")
        if at >= 0:
            end = start + at + 1
            break
        end = start
    if end != size:
        os.ftruncate(fd, end)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
