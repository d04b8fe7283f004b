"""Eval files for `decontaminate`: every item a file holds, or a warning saying how many were not read.

Records JSONL is read as records; raw files with a preset (`korquad`, `klue-mrc`, `korquad2`, or the convert
presets) or a mapping, whose explode path may go through lists in lists (`data[].paragraphs[].qas[]`,
sftdata.ingest.paths). Alongside the items read, each file is searched for the objects that hold the key the
mapping reads its question from (`question`, `instruction`, `messages`, ...): where the two counts differ, or
rows were rejected, the file's figures carry a warning naming where those objects are and how to read them
all; a file that gives no item is an error saying the same.
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import SftDataError, option
from ..ingest.mapping import Mapper, resolve_spec
from ..ingest.paths import EACH, Each, format_path, parse_path
from ..ingest.readers import Source, expand_sources, read_items
from ..ingest.records import RecordParser, mapped_records
from ..items import Counts, RawItem, Reject
from ..schemas.mapping import MappingSpec
from ..schemas.records import RecordKind
from .fields import Side, side_fields, texts

if TYPE_CHECKING:
    from .decontaminate import EvalIndex

KNOWN_LAYOUTS = {"data[].paragraphs[].qas[]": "--against-preset korquad (KorQuAD 1.0, SQuAD; klue-mrc for KLUE-MRC)",
                 "data[].qas[]": "--against-preset korquad2 (KorQuAD 2.x)"}
ROWS = "the top of each row"  # where an object that is a whole row holds the key
_GUESS_KEYS = ("question", "instruction", "messages", "conversations")  # records JSONL's keys, then sharegpt's


@dataclass(slots=True)
class Tally:
    """One eval file: the items read and rejected, and the objects in it that hold the mapping's key."""

    items: int = 0
    rejected: int = 0
    held: Counter[str] = field(default_factory=Counter)  # where (a path with [] for each list) → objects
    first_reject: Reject | None = None

    def hold(self, data: Any, key: str | None) -> None:
        if key is None:
            self.held[ROWS] += 1
            return
        stack: list[tuple[tuple[str | Each, ...], Any]] = [((), data)]
        while stack:
            where, value = stack.pop()
            if isinstance(value, dict):
                if key in value:
                    self.held[format_path(where) or ROWS] += 1
                stack.extend(((*where, k), v) for k, v in value.items() if isinstance(v, (dict, list)))
            elif isinstance(value, list):
                stack.extend(((*where, EACH), v) for v in value if isinstance(v, (dict, list)))


def item_key(spec: MappingSpec | None) -> str | None:
    """The key each eval item's question (instruction, turns) is read from: what the file is searched for."""
    if spec is None:
        return None
    if spec.messages is not None:
        path = spec.messages.path
    else:
        source = spec.sources().get("question" if spec.to is RecordKind.qa else "instruction")
        path = (source.paths() or [""])[0] if source else ""
    names = [s for s in parse_path(path) if isinstance(s, str)] if path else []
    return names[-1] if names and names[-1] != spec.as_ else None


def read_eval(index: EvalIndex, against: Sequence[str | os.PathLike[str]], n: int | None,
              fields: Side | Sequence[str], preset: str | None, mapping: str | None) -> None:
    """Every eval item of every file into `index`, each file's figures (items, rejected, held, warning) into
    `index.files`; SftDataError for a file that gives no item."""
    spec = resolve_spec(preset, mapping) if (preset or mapping) else None
    mapper = Mapper(spec) if spec else RecordParser()
    key = item_key(spec)
    empty: list[str] = []
    for source in expand_sources(list(against)):
        name, tally = str(source.path), Tally()
        for value in mapped_records(_held(read_items([source]), tally, key), mapper, Counts(), None):
            if isinstance(value, Reject):
                tally.rejected += 1
                tally.first_reject = tally.first_reject or value
                continue
            tally.items += 1
            for part in texts(value.record, side_fields(value.record, fields) if isinstance(fields, Side) else fields):
                index.add(part, value.locator, name, n)
        held = sum(tally.held.values()) if key else None
        index.files[name] = {"items": tally.items, "rejected": tally.rejected, "found": 0, "held": held,
                             "warning": _warning(tally, key, spec) if tally.items else None}
        if not tally.items:
            empty.append(f"{name}{_why(tally, key, spec, source)}")
    if empty:
        how = (option("against_map", mapping) if mapping else option("against_preset", preset) if preset
               else f"records (no {option('against_preset')} or {option('against_map')})")
        raise SftDataError(f"no eval items read as {how} from {'; '.join(empty)}",
                           hint=None if (preset or mapping) else f"raw eval files need {option('against_preset')} (alpaca, "
                           f"qa, openai, sharegpt, korquad, klue-mrc, korquad2) or {option('against_map')}")


def _held(items: Iterator[RawItem | Reject], tally: Tally, key: str | None) -> Iterator[RawItem | Reject]:
    for item in items:
        if isinstance(item, RawItem):
            tally.hold(item.data, key)
        yield item


def _where(held: Counter[str], limit: int = 3) -> str:
    return ", ".join(f"{n:,} at {where}" for where, n in held.most_common(limit))


def _advice(held: Counter[str], spec: MappingSpec | None) -> str:
    """How to read every object found: a preset that knows the layout, or the explode path to write."""
    where = held.most_common(1)[0][0] if held else None
    if where is None or where == ROWS:
        return ""
    explode = (spec.explode or "").removesuffix("[]") if spec else ""
    if explode == where.removesuffix("[]"):
        return ""
    if where in KNOWN_LAYOUTS:
        return f"; pass {KNOWN_LAYOUTS[where]}, or explode {where} in the map"
    return f"; to read each, explode {where} in the map (each [] takes every element of a list)"


def _warning(tally: Tally, key: str | None, spec: MappingSpec | None) -> str | None:
    held = sum(tally.held.values())
    parts = []
    if key and held != tally.items:
        parts.append(f"read {tally.items:,} eval items, but the file holds {held:,} objects with a {key!r} key "
                     f"({_where(tally.held)})")
    if tally.rejected:
        first = tally.first_reject
        parts.append(f"{tally.rejected:,} rejected" + (f" (first, {first.locator}: {first.reason}: {first.message})"
                                                       if first else ""))
    if not parts:
        return None
    return "; ".join(parts) + (_advice(tally.held, spec) if key and held != tally.items else "")


def _why(tally: Tally, key: str | None, spec: MappingSpec | None, source: Source) -> str:
    """Why a file gave no item: its rejects, and where the objects that look like eval items are."""
    text = ""
    if tally.first_reject is not None:
        first = tally.first_reject
        text = f": {tally.rejected:,} rejected (first, {first.locator}: {first.reason}: {first.message})"
    if key and tally.held:
        return text + f"; it holds {sum(tally.held.values()):,} objects with a {key!r} key ({_where(tally.held)})" + \
            _advice(tally.held, spec)
    for guess in _GUESS_KEYS if key is None else ():
        found = Tally()
        for item in read_items([source]):
            if isinstance(item, RawItem):
                found.hold(item.data, guess)
        if found.held and set(found.held) != {ROWS}:
            return text + f"; it holds {sum(found.held.values()):,} objects with a {guess!r} key " \
                          f"({_where(found.held)})" + _advice(found.held, None)
    return text
