"""One row with its evidence, as the row page shows it: the record (or pretokenized ids), outcome and reason, the
source file and line, the audit findings, the tokens, the kept row a dropped duplicate duplicates and the eval
item a contaminated row holds, each with the shared text marked."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

import orjson

from ..curate.findings import CHECKS
from ..items import Locator
from .chain import Chain, PartKind
from .decisions import Decision, RowKey
from .index import BOM, OUTCOMES, Format, Outcome, RowIndex, finding_codes

Mask = Callable[[Any], Any] | None  # personal information masked in a value, as scrub masks it
MAX_COMPARED = 20_000  # characters of each side compared for the shared text


@dataclass(frozen=True, slots=True)
class Turn:
    role: str
    content: str
    reasoning: str = ""
    tool_calls: str = ""


@dataclass(frozen=True, slots=True)
class Shown:
    """A finding on a row: its code, severity, title and the fix (sftdata.curate.findings)."""

    code: str
    severity: str
    title: str
    fix: str


@dataclass(slots=True)
class Pair:
    """The other side of a decision: the kept row of a duplicate or the eval item of a match, with the text both
    share marked (a list of (text, shared) pieces on each side)."""

    title: str
    where: str
    ours: list[tuple[str, bool]]
    theirs: list[tuple[str, bool]]
    detail: str
    found: bool = True


@dataclass(slots=True)
class RowDetail:
    row: int
    key: RowKey
    outcome: Outcome
    fmt: Format | None
    reason: str = ""
    message: str = ""
    field_name: str = ""
    source: str = ""  # where the row came from, as the step that decided wrote it (file:line, file[index]#element)
    source_file: str = ""
    source_line: int | None = None  # a line of source_file /source can show (None: a JSON file's element)
    source_is_part: bool = True  # source_file names a part of the chain (else a file as a step named it)
    record: Any = None
    ids: list[int] | None = None
    mask: list[int] | None = None
    findings: list[Shown] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    pair: Pair | None = None
    decision: Decision | None = None
    history: list[Decision] = field(default_factory=list)
    pii_masked: bool = False
    edited: bool = False  # record is the latest edit's (the file still holds the original)
    stale: Decision | None = None  # the latest decision, made on what this line held before (not applied)

    @property
    def dropped(self) -> bool:
        return self.outcome is not Outcome.kept

    @property
    def record_json(self) -> str:
        return orjson.dumps(self.record, option=orjson.OPT_INDENT_2).decode() if self.record is not None else ""


def shown_findings(codes: list[str]) -> list[Shown]:
    return [Shown(c, CHECKS[c].severity.value, CHECKS[c].title, CHECKS[c].fix) for c in codes if c in CHECKS]


def detail(index: RowIndex, row: int, mask: Mask = None) -> RowDetail:
    """The row with its evidence; `mask` (personal information as scrub masks it) applied to every text shown."""
    part, line, _, _ = index.locate(row)
    columns = index.columns()
    outcome = OUTCOMES[int(columns.outcome[row])] if row < len(columns) else Outcome.kept
    raw = index.read(row)
    fmt = index.formats.get(index.chain.parts.index(part)) if part.kind is PartKind.data else None
    out = RowDetail(row, RowKey(part.name, line), outcome, fmt, source=f"{part.name}:{line}", source_file=part.name,
                    source_line=line)
    codes = finding_codes(int(columns.findings[row])) if row < len(columns) else []
    out.findings = shown_findings(codes)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        out.reason, out.message = "invalid_json", "the line is not JSON"
        out.record = raw.decode("utf-8", "replace")
        return out
    if part.kind is PartKind.data:
        if fmt is Format.pretokenized and isinstance(value, dict):
            out.ids = [int(i) for i in value.get("input_ids") or []]
            mask = value.get("assistant_masks", value.get("completion_mask"))
            out.mask = [int(m) for m in mask] if isinstance(mask, list) else None
        else:
            out.record = value
    elif isinstance(value, dict):
        out.reason, out.message = str(value.get("reason", "")), _masked(mask, str(value.get("message", "")))
        out.field_name = str(value.get("field") or "")
        out.record = value.get("raw")
        if value.get("file") is not None:
            at = {k: value.get(k) if isinstance(value.get(k), int) else None for k in ("line", "index", "element")}
            out.source = str(Locator(str(value["file"]), **at))
            out.source_file, out.source_line, out.source_is_part = str(value["file"]), at["line"], False
    if out.record is not None and mask is not None:
        masked = mask(out.record)
        out.record, out.pii_masked = masked, masked != out.record
    if isinstance(value, dict) and part.kind is not PartKind.data:
        if "duplicate_of" in value:
            out.pair = _duplicate(index.chain, value, out.record, mask)
        elif "eval" in value:
            out.pair = _match(index.chain, value, out.record, mask)
    out.turns = turns_of(out.record)
    return out


def _masked(mask: Mask, value: Any) -> Any:
    return value if mask is None or value is None else mask(value)


def turns_of(record: Any) -> list[Turn]:
    """A record as a conversation: a chat's messages, or an instruction / Q&A record as its fields."""
    if not isinstance(record, dict):
        return []
    if isinstance(record.get("messages"), list):
        found = []
        for m in record["messages"]:
            if isinstance(m, dict):
                calls = m.get("tool_calls")
                found.append(Turn(str(m.get("role", "?")), _text(m.get("content")), _text(m.get("reasoning_content")),
                                  orjson.dumps(calls, option=orjson.OPT_INDENT_2).decode() if calls else ""))
        return found
    return [Turn(k, _text(v)) for k, v in record.items() if k not in ("id", "meta") and v not in (None, "")]


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def record_text(record: Any) -> str:
    return "\n".join(t.reasoning + ("\n" if t.reasoning else "") + t.content for t in turns_of(record))


def read_line(chain: Chain, file: str, line: int) -> Any:
    """A row of a file the chain names (a step's source, an eval file), or None where it may not be read."""
    path = chain.allowed(file)
    if path is None or line < 1:
        return None
    with open(path, "rb") as f:
        for number, text in enumerate(f, 1):
            if number == line:
                try:
                    return orjson.loads(text.removeprefix(BOM))
                except orjson.JSONDecodeError:
                    return None
    return None


def _duplicate(chain: Chain, value: dict[str, Any], record: Any, mask: Mask) -> Pair:
    kept = value.get("duplicate_of") or {}
    where = f"{kept.get('file')}:{kept.get('line', kept.get('index', '?'))}"
    other = _masked(mask, read_line(chain, str(kept.get("file")), int(kept.get("line") or 0)))
    similarity = value.get("similarity")
    detail_text = ("exact duplicate" if value.get("exact") else f"Jaccard similarity {similarity!r}") \
        if similarity is not None else ""
    ours, theirs = shared(record_text(record), record_text(other))
    return Pair("kept row", where, ours, theirs, detail_text, other is not None)


def _match(chain: Chain, value: dict[str, Any], record: Any, mask: Mask) -> Pair:
    item = value.get("eval") or {}
    where = f"{item.get('file')}:{item.get('line', item.get('index', '?'))}"
    other = _masked(mask, read_line(chain, str(item.get("file")), int(item.get("line") or 0)))
    ours, theirs = shared(record_text(record), record_text(other) if other is not None else "")
    span = _masked(mask, str(value.get("span", "")))
    return Pair("eval item", where, ours, theirs,
                f"covers {value.get('containment', '?')} of the eval item; shared span {span!r}", other is not None)


def shared(a: str, b: str, least: int = 8) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """Both texts cut into pieces, each marked whether it is part of a run of at least `least` characters the two
    share (difflib's matching blocks)."""
    a, b = a[:MAX_COMPARED], b[:MAX_COMPARED]
    blocks = [m for m in SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks() if m.size >= least]
    return _pieces(a, [(m.a, m.size) for m in blocks]), _pieces(b, [(m.b, m.size) for m in blocks])


def _pieces(text: str, runs: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    out, at = [], 0
    for start, size in sorted(runs):
        if start > at:
            out.append((text[at:start], False))
        if start + size > at:
            out.append((text[max(at, start):start + size], True))
            at = start + size
    if at < len(text):
        out.append((text[at:], False))
    return out


def preview(index: RowIndex, row: int, limit: int = 160, mask: Mask = None) -> str:
    """A line of text for the list: the first user turn (or instruction, question), or a pretokenized row's size."""
    raw = index.read(row)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _masked(mask, raw[:limit * 4].decode("utf-8", "replace"))[:limit]
    if isinstance(value, dict) and "input_ids" in value:
        return f"{len(value.get('input_ids') or [])} token ids"
    record = value.get("raw") if isinstance(value, dict) and ("stage" in value and "reason" in value) else value
    turns = turns_of(record)
    first = next((t for t in turns if t.role in ("user", "instruction", "question")), turns[0] if turns else None)
    text = first.content if first else _text(record)
    return _masked(mask, text)[:limit].replace("\n", " ")
