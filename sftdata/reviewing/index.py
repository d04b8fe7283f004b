"""The row index: one streaming pass over every part of a chain keeps, per row, its byte offset and a few small
figures in compact arrays (outcome, part, line, reason, trained tokens, reasoning/tool-call flags, audit findings
as a bit set), never the rows themselves. A row is read back from its file by offset when a page shows it.

The pass runs in a helper thread; rows are visible as soon as they are scanned (`wait_for` lets a page wait for the
ones it shows), so the first page of a 1M-row file is served while the rest is still being indexed. A second pass
then checks each row for the findings that need no tokenizer (mojibake, personal information: most of the cost).
"""
from __future__ import annotations

import threading
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import orjson

from ..curate.findings import CHECKS
from ..curate.textquality import DOMINANT, dominant_script
from .chain import Chain, Part, PartKind

CHUNK = 8 << 20
BOM = b"\xef\xbb\xbf"
FINDINGS: tuple[str, ...] = tuple(CHECKS)  # bit i of a row's findings is FINDINGS[i]
REASONING, TOOLS = 1, 2  # bits of a row's flags; bits 2-4 hold its language (LANGUAGES[flags >> 2 & 7])
LANGUAGES: tuple[str, ...] = ("", *DOMINANT, "other")  # "": no letters, or token ids (no text to read)
UNKNOWN = -1


class Outcome(str, Enum):
    kept = "kept"
    rejected = "rejected"
    filtered = "filtered"
    duplicate = "duplicate"
    contaminated = "contaminated"


OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)


class Format(str, Enum):
    """What the rows of a data file are."""

    records = "records"
    rendered = "rendered"
    pretokenized = "pretokenized"


def finding_bits(codes: list[str] | set[str]) -> int:
    return sum(1 << FINDINGS.index(c) for c in codes if c in FINDINGS)


def finding_codes(bits: int) -> list[str]:
    return [code for i, code in enumerate(FINDINGS) if bits >> i & 1]


def outcome_of_reject(row: dict[str, Any]) -> Outcome:
    """How a side file's row was decided: the stage and reason the other commands wrote."""
    stage, reason = row.get("stage"), row.get("reason")
    if stage == "dedup":
        return Outcome.duplicate
    if reason == "contaminated" or "eval" in row:
        return Outcome.contaminated
    if stage == "filter" or (stage == "tokenize" and reason == "too_long"):
        return Outcome.filtered
    return Outcome.rejected


def format_of(line: bytes) -> Format:
    if b'"input_ids"' in line:
        return Format.pretokenized
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return Format.records
    if isinstance(value, dict) and set(value) - {"id", "meta"} in ({"text"}, {"prompt", "completion"}):
        return Format.rendered
    return Format.records


def flags_of(row: Any) -> int:
    """Whether a record holds reasoning or tool calls, and the language of what it teaches."""
    if not isinstance(row, dict):
        return 0
    flags = TOOLS if row.get("tools") else 0
    flags |= LANGUAGES.index(dominant_script(answer_text(row)) or "") << 2
    for message in row.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if message.get("reasoning_content") or (isinstance(content, str) and content.lstrip().startswith("<think>")):
            flags |= REASONING
        if message.get("tool_calls") or message.get("role") == "tool":
            flags |= TOOLS
    return flags


def language_of(flags: int) -> str:
    return LANGUAGES[flags >> 2 & 7]


def answer_text(row: dict[str, Any]) -> str:
    """What a row trains on (a chat's assistant turns, an instruction's output, a Q&A's answer, a rendered row's
    completion), or all its text where it has none: the language filter reads its script."""
    messages = row.get("messages")
    if isinstance(messages, list):
        parts = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
    else:
        parts = [row.get(k) for k in ("output", "answer", "completion", "text")]
    text = "\n".join(p for p in parts if isinstance(p, str))
    if text.strip():
        return text
    values = [m.get("content") for m in messages if isinstance(m, dict)] if isinstance(messages, list) else \
        [v for k, v in row.items() if k not in ("id", "meta")]
    return "\n".join(v for v in values if isinstance(v, str))


def pretokenized_figures(line: bytes) -> tuple[int, int]:
    """(tokens, trained tokens) of a pretokenize row, counted in its bytes: the mask holds only 0 and 1."""
    start = line.find(b"[", line.find(b'"input_ids"'))
    end = line.find(b"]", start)
    tokens = line.count(b",", start, end) + 1 if end > start + 1 else 0
    mask = line.find(b"_mask", end)
    trained = line.count(b"1", line.find(b"[", mask), line.find(b"]", mask)) if mask >= 0 else UNKNOWN
    return tokens, trained


@dataclass(slots=True)
class Columns:
    """The index's arrays as numpy arrays (a copy taken under the index's lock)."""

    outcome: np.ndarray
    part: np.ndarray
    line: np.ndarray
    reason: np.ndarray
    trained: np.ndarray
    flags: np.ndarray
    findings: np.ndarray

    def __len__(self) -> int:
        return len(self.outcome)


Scanner = Callable[[Part, int, bytes], tuple[int, int, int, int, int]]


class RowIndex:
    """Offsets and figures of every row of a chain, filled by `start()` in a helper thread."""

    def __init__(self, chain: Chain, cheap_findings: Callable[[Any], set[str]] | None = None,
                 reject_findings: Callable[[dict[str, Any]], set[str]] | None = None) -> None:
        self.chain = chain
        self.formats: dict[int, Format] = {}
        self.reasons: list[str] = [""]
        self._reason_ids: dict[str, int] = {"": 0}
        self.offset = array("Q")
        self.length = array("L")
        self.outcome, self.part, self.line = array("B"), array("H"), array("L")
        self.reason, self.trained, self.flags, self.findings = array("H"), array("l"), array("B"), array("Q")
        self.cheap_findings, self.reject_findings = cheap_findings, reject_findings
        self.lock = threading.Condition()
        self.done = False  # every row listed (offsets, outcome, reason, flags)
        self.checked = False  # and the findings that need no tokenizer checked (a second pass: they cost the most)
        self.error: str | None = None
        self._cache: tuple[int, Columns] | None = None
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self.offset)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sftdata-review-index", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            for number, part in enumerate(self.chain.parts):
                self._scan(number, part)
            with self.lock:
                self.done = True  # pages and filters of every row from here; findings fill in while they are read
                self.lock.notify_all()
            for number, part in enumerate(self.chain.parts):
                self._check(number, part)
        except OSError as error:  # a file gone or unreadable mid-scan: the page says so
            self.error = str(error)
        finally:
            with self.lock:
                self.done = self.checked = True
                self.lock.notify_all()

    def _check(self, number: int, part: Part) -> None:
        """The cheap findings (mojibake, pii) of every row of a part: of a data row, and of a side file's raw row."""
        if self.cheap_findings is None or self.formats.get(number) is Format.pretokenized:
            return
        found: list[tuple[int, int]] = []
        for (row, _), (_, _, line) in zip(self.rows_of(number), (x for x in lines_of(part) if x[2].strip())):
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            bits = self._cheap(value if part.kind is PartKind.data else
                               value.get("raw") if isinstance(value, dict) else None)
            if bits:
                found.append((row, bits))
            if len(found) >= 4096:
                self.add_findings(found)
                found = []
        self.add_findings(found)

    def add_findings(self, found: list[tuple[int, int]]) -> None:
        with self.lock:
            for row, bits in found:
                self.findings[row] |= bits
            self._cache = None

    def _scan(self, number: int, part: Part) -> None:
        batch: list[tuple[int, int, int, int, int, int, int, int]] = []
        for offset, line_no, line in lines_of(part):
            if not line.strip():
                continue
            batch.append((offset, len(line), line_no, *self._figures(number, part, line)))
            if len(batch) >= 4096:
                self._add(number, batch)
                batch = []
        self._add(number, batch)

    def _figures(self, number: int, part: Part, line: bytes) -> tuple[int, int, int, int, int]:
        """(outcome, reason id, trained tokens, flags, findings bits) of one row."""
        if part.kind is PartKind.data:
            fmt = self.formats.get(number)
            if fmt is None:
                fmt = self.formats[number] = format_of(line)
            if fmt is Format.pretokenized:
                tokens, trained = pretokenized_figures(line)
                return 0, 0, trained, 0, finding_bits({"nothing_trained"} if trained == 0 else set())
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                return 0, 0, UNKNOWN, 0, 0
            return 0, 0, UNKNOWN, flags_of(row), 0
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            return OUTCOMES.index(Outcome.rejected), 0, UNKNOWN, 0, 0
        if not isinstance(row, dict):
            return OUTCOMES.index(Outcome.rejected), 0, UNKNOWN, 0, 0
        outcome = Outcome.duplicate if part.kind is PartKind.dupes else \
            Outcome.contaminated if part.kind is PartKind.matches else outcome_of_reject(row)
        raw = row.get("raw")
        findings = 0
        if outcome is Outcome.rejected and self.reject_findings is not None:
            findings |= finding_bits(self.reject_findings(row))
        return OUTCOMES.index(outcome), self._reason_id(str(row.get("reason") or "")), UNKNOWN, flags_of(raw), findings

    def _cheap(self, row: Any) -> int:
        return finding_bits(self.cheap_findings(row)) if self.cheap_findings is not None and row is not None else 0

    def _reason_id(self, reason: str) -> int:
        found = self._reason_ids.get(reason)
        if found is None:
            found = self._reason_ids[reason] = len(self.reasons)
            self.reasons.append(reason)
        return found

    def _add(self, number: int, batch: list[tuple[int, int, int, int, int, int, int, int]]) -> None:
        if not batch:
            return
        offset, length, line, outcome, reason, trained, flags, findings = zip(*batch)
        with self.lock:
            self.offset.extend(offset)
            self.length.extend(length)
            self.line.extend(line)
            self.part.extend([number] * len(batch))
            self.outcome.extend(outcome)
            self.reason.extend(reason)
            self.trained.extend(trained)
            self.flags.extend(flags)
            self.findings.extend(findings)
            self.lock.notify_all()

    def update(self, figures: list[tuple[int, int, int]]) -> None:
        """(row, trained tokens, findings bits) a later pass found (with a tokenizer), applied together."""
        with self.lock:
            for row, trained, findings in figures:
                self.trained[row] = trained
                self.findings[row] |= findings
            self._cache = None

    def wait_for(self, rows: int, timeout: float = 10.0) -> None:
        """Until `rows` rows are indexed or the pass is done (or the timeout passes)."""
        with self.lock:
            self.lock.wait_for(lambda: self.done or len(self.offset) >= rows, timeout)

    def columns(self) -> Columns:
        with self.lock:
            n = len(self.offset)
            if self._cache is not None and self._cache[0] == n:
                return self._cache[1]
            columns = Columns(*(np.array(a) for a in (self.outcome, self.part, self.line, self.reason, self.trained,
                                                      self.flags, self.findings)))
            self._cache = (n, columns)
            return columns

    def locate(self, row: int) -> tuple[Part, int, int, int]:
        """(part, line number, byte offset, byte length) of a row."""
        with self.lock:
            return self.chain.parts[self.part[row]], self.line[row], self.offset[row], self.length[row]

    def read(self, row: int) -> bytes:
        part, _, offset, length = self.locate(row)
        with open(part.path, "rb") as f:
            f.seek(offset)
            return f.read(length)

    def rows_of(self, part_number: int) -> Iterator[tuple[int, int]]:
        """(row, line) of every indexed row of one part."""
        columns = self.columns()
        for row in np.flatnonzero(columns.part == part_number):
            yield int(row), int(columns.line[row])


def lines_of(part: Part) -> Iterator[tuple[int, int, bytes]]:
    """(byte offset, 1-based line number, line without its newline) of every line of a file, read in chunks."""
    offset, number, rest = 0, 0, b""
    with open(part.path, "rb") as f:
        if f.read(3) == BOM:  # as the readers take a file an editor on Windows saved: the BOM is not the row's
            offset = 3
        else:
            f.seek(0)
        while chunk := f.read(CHUNK):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                number += 1
                yield offset, number, line.rstrip(b"\r")
                offset += len(line) + 1
    if rest:
        yield offset, number + 1, rest.rstrip(b"\r")
