"""`sftdata scrub`: personal information out of every text field of the records, before data moves on.

Each row's strings (fields, messages' content and reasoning, tool-call arguments, meta) are searched
with sftdata.curate.pii. ``mask`` replaces each hit with a typed placeholder, the same one for the same
value everywhere in the record (numbered when a record holds several values of one type:
``[전화번호1]``, ``[전화번호2]``); ``drop`` sends rows with hits to OUT.rejects.jsonl (counted as filtered,
reason ``pii``); ``report`` writes no data, only counts. Nothing sftdata writes or shows copies a hit:
the rows of the rejects file (invalid rows too) are masked, and so are reject messages; summaries,
sidecars and cards hold counts by type and field only.
"""
from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import OptionError
from ..ingest.records import record_row
from ..items import Reject, Stage
from ..provenance import build_meta
from ..storage import location
from ..writers import atomic_or_null, dumps_line, meta_path, rejects_path, write_json
from .fields import KNOWN
from .pii import PLACEHOLDERS, Hit, PiiType, find, given_name
from .results import CurateResult, Progress, Ticker
from .samples import open_inputs

Action = Literal["mask", "drop", "report"]
SKIP_KEYS = frozenset({"id", "role", "type", "weight", "kind"})  # record structure, not text


@dataclass(slots=True)
class ScrubSpec:
    action: Action = "mask"
    types: frozenset[PiiType] = frozenset(PiiType)
    fields: frozenset[str] | None = None  # None: every text field (and meta)
    name_fields: tuple[str, ...] = ()  # dotted paths whose values are person names
    placeholders: dict[PiiType, str] = field(default_factory=lambda: dict(PLACEHOLDERS))
    min_confidence: Literal["high", "low"] = "high"

    def wanted(self, hit: Hit) -> bool:
        return hit.type in self.types and (self.min_confidence == "low" or hit.confidence == "high")

    def describe(self) -> dict[str, Any]:
        return {"action": self.action, "types": sorted(t.value for t in self.types),
                "fields": sorted(self.fields) if self.fields else "all", "name_fields": list(self.name_fields),
                "min_confidence": self.min_confidence}


def parse_spec(action: str = "mask", types: Sequence[str] = (), fields: Sequence[str] = (),
               name_fields: Sequence[str] = (), placeholders: Sequence[str] = (),
               min_confidence: str = "high") -> ScrubSpec:
    """A ScrubSpec from the command's options (comma-separated or repeated values)."""
    if action not in ("mask", "drop", "report"):
        raise OptionError("is unknown", option="action", value=action, hint="use mask, drop or report")
    if min_confidence not in ("high", "low"):
        raise OptionError("is unknown", option="min_confidence", value=min_confidence, hint="use high or low")
    chosen = _split(types)
    known = {t.value for t in PiiType}
    bad = [t for t in chosen if t not in known]
    if bad:
        raise OptionError("are not PII types", option="types", value=", ".join(bad), hint=f"use any of {', '.join(sorted(known))}")
    names = _split(fields)
    unknown = [f for f in names if f not in KNOWN | {"meta"}]
    if unknown:
        raise OptionError("are not fields of a record", option="fields", value=", ".join(unknown),
                           hint=f"use any of {', '.join(sorted(KNOWN | {'meta'}))}")
    table = dict(PLACEHOLDERS)
    for item in placeholders:
        key, sep, text = item.partition("=")
        if not sep or key not in known or not text:
            raise OptionError("is not TYPE=TEXT", option="placeholder", value=item, hint=f"TYPE is one of {', '.join(sorted(known))}")
        table[PiiType(key)] = text
    selected = frozenset(PiiType(t) for t in chosen) if chosen else frozenset(PiiType)
    return ScrubSpec(action, selected, frozenset(names) or None, tuple(_split(name_fields)), table,
                     min_confidence)  # type: ignore[arg-type]


def _split(values: Sequence[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@dataclass(slots=True)
class RowScan:
    """The hits of one row: (type, value) in order of first appearance, and counts by type and field."""

    values: dict[tuple[PiiType, str], int] = field(default_factory=dict)
    by_type: Counter[str] = field(default_factory=Counter)
    by_field: Counter[str] = field(default_factory=Counter)
    low: Counter[str] = field(default_factory=Counter)  # low-confidence candidates left alone

    def __bool__(self) -> bool:
        return bool(self.by_type)

    def describe(self) -> str:
        return ", ".join(f"{PLACEHOLDERS[PiiType(t)]} ×{n}" for t, n in self.by_type.most_common())


class Scrubber:
    """Finds and masks the PII of rows (JSON values) as a ScrubSpec says."""

    def __init__(self, spec: ScrubSpec) -> None:
        self.spec = spec
        self.named_rows = 0  # rows in which a --name-field held a name
        self._anything: Scrubber | None = None  # for values outside the field rules (mask_anything)

    def scan(self, row: Any) -> tuple[RowScan, Any]:
        """(what the row holds, the row masked)."""
        names = self._names(row)
        self.named_rows += bool(names)
        aliases = {g: n for n in names if (g := given_name(n.strip()))}  # 민수 is 김민수: one placeholder
        scan = RowScan()
        hits: dict[int, list[Hit]] = {}

        def collect(text: str, where: str | None) -> str:
            found = []
            for hit in find(text, names):
                if hit.type not in self.spec.types:
                    continue
                if not self.spec.wanted(hit):
                    scan.low[hit.type.value] += 1
                    continue
                found.append(hit)
                key = (hit.type, _identity(hit, text, aliases))
                scan.values.setdefault(key, len(scan.values))
                scan.by_type[hit.type.value] += 1
                scan.by_field[where or "?"] += 1
            hits[id(text)] = found
            return text

        _walk(row, collect, None, self.spec.fields)
        if not scan:
            return scan, row
        labels = self._labels(scan)
        return scan, _walk(row, lambda text, _: _replace(text, hits.get(id(text), ()), labels, aliases), None,
                           self.spec.fields)

    def mask_anything(self, value: Any) -> Any:
        """Any JSON value (an invalid row, a reject message) masked in every string, with no field rules."""
        if self._anything is None:
            self._anything = Scrubber(ScrubSpec(types=self.spec.types, placeholders=self.spec.placeholders,
                                                min_confidence="low", name_fields=self.spec.name_fields))
        return self._anything.scan(value)[1]

    def _labels(self, scan: RowScan) -> dict[tuple[PiiType, str], str]:
        per_type = Counter(t for t, _ in scan.values)
        seen: Counter[PiiType] = Counter()
        labels = {}
        for (kind, value), _ in sorted(scan.values.items(), key=lambda kv: kv[1]):
            base = self.spec.placeholders[kind]
            if per_type[kind] > 1:
                seen[kind] += 1
                base = _numbered(base, seen[kind])
            labels[(kind, value)] = base
        return labels

    def _names(self, row: Any) -> list[str]:
        out: list[str] = []
        for path in self.spec.name_fields:
            value: Any = row
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, list):
                out += [v for v in value if isinstance(v, str)]
        return out


def _identity(hit: Hit, text: str, aliases: dict[str, str] | None = None) -> str:
    value = text[hit.start:hit.end]
    if hit.type is PiiType.name and aliases:
        value = aliases.get(value, value)
    if hit.type in (PiiType.address, PiiType.name, PiiType.email, PiiType.passport):
        return re.sub(r"\s+", " ", value).casefold()
    return re.sub(r"\D", "", value)  # 010-1234-5678 and 01012345678 are one number


def _numbered(placeholder: str, n: int) -> str:
    if placeholder[-1:] in "]>)}":
        return f"{placeholder[:-1]}{n}{placeholder[-1]}"
    return f"{placeholder}{n}"


def _replace(text: str, hits: Sequence[Hit], labels: dict[tuple[PiiType, str], str],
             aliases: dict[str, str] | None = None) -> str:
    out, last = [], 0
    for hit in hits:
        out += [text[last:hit.start], labels[(hit.type, _identity(hit, text, aliases))]]
        last = hit.end
    return "".join(out) + text[last:] if hits else text


def _walk(value: Any, fn: Callable[[str, str | None], str], where: str | None, fields: frozenset[str] | None) -> Any:
    """`value` with fn(text, field) applied to each string a record's text lives in. `where` is the field a
    string belongs to: a top-level key, or a chat message's role; `fields` limits which are visited."""
    if isinstance(value, str):
        return value if (fields is not None and where not in fields) else fn(value, where)
    if isinstance(value, list):
        return [_walk(v, fn, where, fields) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    role = value.get("role") if isinstance(value.get("role"), str) else None
    for key, item in value.items():
        if key in SKIP_KEYS:
            out[key] = item
            continue
        field_name = where if where is not None and where != "messages" else key
        if role is not None:
            field_name = role
        out[key] = _walk(item, fn, field_name, fields)
    return out


@dataclass(slots=True)
class ScrubResult(CurateResult):
    """What `scrub` found (PiiTally.summary): its figures go into the summary; `output` and `rejects` are None
    with action report."""

    action: str = "mask"
    rows_with_pii: int = 0
    hits: dict[str, int] = field(default_factory=dict)  # per PII type, most first
    hits_by_field: dict[str, int] = field(default_factory=dict)
    low_confidence_left: dict[str, int] = field(default_factory=dict)  # unlabelled hits left alone, per type


def scrub(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str] | None, spec: ScrubSpec, *,
          progress: Progress | None = None) -> ScrubResult:
    """Records JSONL → OUT with PII masked (or rows with PII dropped to OUT.rejects.jsonl); `report`
    writes nothing and returns the counts."""
    started = time.perf_counter()
    if spec.action != "report" and output is None:
        raise OptionError("needs an output", option="action", value=spec.action, hint="give output, or count only with action report")
    out_path = location(output) if output is not None else None
    inputs_ = open_inputs(inputs)
    counts = inputs_.counts
    scrubber = Scrubber(spec)
    result = ScrubResult("scrub", counts, out_path if spec.action != "report" else None,
                         rejects_path(out_path) if out_path and spec.action != "report" else None, action=spec.action)
    totals = PiiTally()
    ticker = Ticker(progress)
    with atomic_or_null(result.output) as out, atomic_or_null(result.rejects) as rej:
        for value in inputs_.records():
            ticker.tick()
            if isinstance(value, Reject):
                result.write_reject(_masked_reject(value, scrubber), rej)
                continue
            scan, row = scrubber.scan(record_row(value.record))
            totals.add(scan)
            if scan and spec.action == "drop":
                dropped = Reject(Stage.filter, "pii", f"personal information: {scan.describe()}", value.locator,
                                 raw=row)
                counts.drop(dropped)
                result.add_example(dropped)
                rej.write(dumps_line(dropped.as_dict()))
                continue
            counts.file(value.locator.file).written += 1
            out.write(dumps_line(row))
        if spec.name_fields and not scrubber.named_rows and counts.total("read") > counts.total("rejected"):
            raise OptionError("held no name in any row, so no name would be masked; nothing was written",
                              option="name_field", value=", ".join(spec.name_fields),
                              hint="name the field by its path in the records, e.g. meta.customer_name")
    ticker.close()
    found = totals.summary()
    result.rows_with_pii, result.hits = found["rows_with_pii"], found["hits"]
    result.hits_by_field, result.low_confidence_left = found["hits_by_field"], found["low_confidence_left"]
    result.meta = build_meta("scrub", inputs_.paths, counts, result.output, result.rejects,
                             {"scrub": spec.describe(), "pii": totals.summary()}, started)
    if out_path is not None:
        write_json(meta_path(out_path), result.meta)
    return result


@dataclass(slots=True)
class PiiTally:
    rows: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    by_field: Counter[str] = field(default_factory=Counter)
    low: Counter[str] = field(default_factory=Counter)

    def add(self, scan: RowScan) -> None:
        self.rows += bool(scan)
        self.by_type.update(scan.by_type)
        self.by_field.update(scan.by_field)
        self.low.update(scan.low)

    def summary(self) -> dict[str, Any]:
        return {"rows_with_pii": self.rows, "hits": dict(self.by_type.most_common()),
                "hits_by_field": dict(self.by_field.most_common()),
                "low_confidence_left": dict(self.low.most_common())}


def _masked_reject(reject: Reject, scrubber: Scrubber) -> Reject:
    return Reject(reject.stage, reject.reason, scrubber.mask_anything(reject.message), reject.locator,
                  field=reject.field, source_path=reject.source_path, raw=scrubber.mask_anything(reject.raw),
                  raw_bytes=scrubber.mask_anything(reject.raw_bytes))

