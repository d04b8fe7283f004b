"""A review: the chain's index, the tokenizer (when given), the review file, and the decisions a reviewer makes,
each checked before it is saved (an edit by the record schema, a restore only of a dropped row)."""
from __future__ import annotations

import getpass
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..curate.scrub import Scrubber, ScrubSpec
from ..curate.textquality import mojibake
from ..errors import SftDataError
from ..ingest.mapping import Mapped
from ..ingest.records import RecordParser, record_row
from ..items import Locator, RawItem, Reject, Stage
from ..rendering.plan import TemplateArgs, TrainOn
from .chain import Chain, Part, PartKind, open_chain
from .decisions import Action, Decision, ReviewFile, RowKey, now, review_path, row_hash
from .index import OUTCOMES, Format, Outcome, RowIndex, finding_bits
from .query import Filter, jump, select
from .rows import RowDetail, detail, record_text, turns_of
from .tokens import RowChecks, Tokens


class DecisionRefused(SftDataError):
    """A decision that cannot be saved as asked (an edit the record schema refuses, a restore of a kept row)."""


class CheapFindings:
    """Findings that need no tokenizer, as the audit words them: text that looks mis-decoded (`mojibake`), personal
    information scrub would mask (`pii`). Called by the index's thread only (its own Scrubber)."""

    def __init__(self) -> None:
        self.scrubber = Scrubber(ScrubSpec())

    def __call__(self, row: Any) -> set[str]:
        found = set()
        text = record_text(row) if isinstance(row, dict) else ""
        if text and mojibake(text):
            found.add("mojibake")
        if isinstance(row, dict) and self.scrubber.scan(row)[0]:
            found.add("pii")
        return found


@dataclass(slots=True)
class Options:
    tokenizer: Any = None
    template: str | None = None
    template_args: TemplateArgs = None
    train_on: TrainOn = "all"
    max_seq_length: int | None = None
    read_only: bool = False
    reviewer: str | None = None
    show_pii: bool = False


@dataclass(slots=True)
class Timings:
    tokenizer_s: float = 0.0  # loading the tokenizer and template, reported apart
    token_pass_done: bool = False
    notes: list[str] = field(default_factory=list)


class Review:
    def __init__(self, paths: Sequence[str | os.PathLike[str]], options: Options) -> None:
        self.options = options
        self.chain: Chain = open_chain(paths)
        self.reviewer = options.reviewer or os.environ.get("SFTDATA_REVIEWER") or _user()
        self.timings = Timings()
        self.tokens: Tokens | None = None
        if options.tokenizer is not None:
            started = time.perf_counter()
            self.tokens = Tokens(options.tokenizer, options.template, template_args=options.template_args,
                                 train_on=options.train_on, max_seq_length=options.max_seq_length)
            self.timings.tokenizer_s = time.perf_counter() - started
        self.scrubber = None if options.show_pii else Scrubber(ScrubSpec())
        self.checks = RowChecks(options.max_seq_length)
        self.index = RowIndex(self.chain, CheapFindings(), self.reject_findings)
        first = Path(paths[0])
        self.file = ReviewFile(first / "_review.jsonl" if first.is_dir() else review_path(self.chain.data[0]),
                               self.chain.data)
        self._token_thread: threading.Thread | None = None

    def reject_findings(self, row: dict[str, Any]) -> set[str]:
        """What the audit makes of a row a step rejected (an answer left empty, a special token in the text, ...)."""
        stage = row.get("stage")
        reject = Reject(Stage(stage) if stage in Stage._value2member_map_ else Stage.read, str(row.get("reason", "")),
                        str(row.get("message", "")), Locator(str(row.get("file", "")), row.get("line")),
                        field=row.get("field"))
        return set(self.checks.of(reject))

    @property
    def path(self) -> Path:
        return self.file.path

    def start(self) -> None:
        self.index.start()
        if self.tokens is not None:
            self._token_thread = threading.Thread(target=self._token_pass, name="sftdata-review-tokens", daemon=True)
            self._token_thread.start()
        else:
            self.timings.token_pass_done = True

    def _token_pass(self) -> None:
        """Trained tokens and token findings of every records row, as pretokenize reads the data files."""
        assert self.tokens is not None
        self.index.join()
        try:
            for number, part in enumerate(self.chain.parts):
                if part.kind is not PartKind.data or self.index.formats.get(number) is not Format.records:
                    continue
                rows = dict((line, row) for row, line in self.index.rows_of(number))
                found: list[tuple[int, int, int]] = []
                for line, trained, codes in self.tokens.scan(part.path):
                    row = rows.get(line)
                    if row is not None:
                        found.append((row, trained, finding_bits(codes)))
                    if len(found) >= 4096:
                        self.index.update(found)
                        found = []
                self.index.update(found)
        except SftDataError as error:
            self.timings.notes.append(f"token pass stopped: {error}")
        finally:
            self.timings.token_pass_done = True

    def row(self, row: int) -> RowDetail:
        found = detail(self.index, row, self.mask)  # masked as scrub masks it (tokens too) unless --show-pii
        target = self.target(row)
        found.decision = self.file.state.latest.get(self.key(row))
        if found.decision is not None and not found.decision.fits(self.index.read(target)):
            found.stale, found.decision = found.decision, None  # made on a row this line no longer holds
        found.history = [d for d in self.file.state.history if d.key == found.key]
        if found.decision is not None and found.decision.action is Action.edit and found.decision.record is not None:
            record = found.decision.record  # what review-apply writes, and what it trains
            found.record, found.edited = self.mask(record) if self.scrubber else record, True
            found.pii_masked = found.pii_masked or found.record != record
            found.turns = turns_of(found.record)
        return found

    def mask(self, value: Any) -> Any:
        """A value as the pages show it: personal information masked as scrub masks it, unless --show-pii."""
        if self.scrubber is None or value is None:
            return value
        return self.scrubber.scan(value)[1] if isinstance(value, dict) else self.scrubber.mask_anything(value)

    def key(self, row: int) -> RowKey:
        """The row a decision on this row is saved for (a report's match: the data row it names)."""
        part, line, _, _ = self.index.locate(self.target(row))
        return RowKey(part.name, line)

    def target(self, row: int) -> int:
        """The row itself, or for a match `decontaminate --action report` listed (its row still in the data), the
        data row it names: accepting, rejecting or editing a match decides that row."""
        part, _, _, _ = self.index.locate(row)
        if part.kind is not PartKind.matches:
            return row
        try:
            value = orjson.loads(self.index.read(row))
        except orjson.JSONDecodeError:
            return row
        path = self.chain.allowed(str(value.get("file"))) if isinstance(value, dict) else None
        data = next((p for p in self.chain.parts if p.kind is PartKind.data and p.path.resolve() == path), None)
        named = jump(self.index, data.name, int(value.get("line") or 0)) if data is not None else None
        return row if named is None else named

    def decide(self, rows: Sequence[int], action: Action, note: str = "", edit: str | None = None) -> list[Decision]:
        """Save a decision on each row (one line each, written together); refused as a whole when one is wrong."""
        if self.options.read_only:
            raise DecisionRefused("this review is read-only (--read-only)")
        columns = self.index.columns()
        made = []
        for row in rows:
            if not 0 <= row < len(columns):
                raise DecisionRefused(f"no row {row}")
            outcome = OUTCOMES[int(columns.outcome[row])]
            record = None
            if action is Action.restore and outcome is Outcome.kept:
                raise DecisionRefused("only a dropped row (rejected, filtered, duplicate, contaminated) can be restored")
            if action is Action.restore:
                self.restorable(row)
            if action is Action.edit:
                record = self.validate(row, edit or "")
            made.append(Decision(self.key(row), action, self.reviewer, now(), note.strip()[:2000], record,
                                 row_hash(self.index.read(self.target(row)))))
        self.file.decide(made)
        return made

    def validate(self, row: int, text: str) -> dict[str, Any]:
        """An edited record, checked by the record schema as convert's reader checks a row; the reason otherwise."""
        part, line, _, _ = self.index.locate(row)
        if not self._records(part):
            raise DecisionRefused("only records can be edited (this row is rendered text or token ids)")
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise DecisionRefused(f"the edit is not JSON: {error}") from None
        return checked_record(data, Locator(part.name, line), "the edit")

    def restorable(self, row: int) -> dict[str, Any]:
        """The record a dropped row would come back as: review-apply writes it among the data's records, so it must
        be a record the schema accepts (a row rejected for its content needs an edit instead), and the data must be
        records (a rendered or pretokenized file takes its rows from the step that made it)."""
        part, line, _, _ = self.index.locate(row)
        if not self._records(part):
            raise DecisionRefused(f"{part.data.name} holds rendered text or token ids, not records: a dropped row "
                                  "comes back by reviewing the records it was made from")
        try:
            value = orjson.loads(self.index.read(row))
        except orjson.JSONDecodeError:
            raise DecisionRefused(f"{part.name}:{line} is not JSON: nothing to restore") from None
        raw = value.get("raw") if isinstance(value, dict) else None
        return checked_record(raw, Locator(part.name, line), f"restoring {part.name}:{line} as it is (edit it instead)")

    def _records(self, part: Part) -> bool:
        """Whether the data file a part belongs to holds records (a file with no row yet counts as records)."""
        number = next(n for n, p in enumerate(self.chain.parts) if p.kind is PartKind.data and p.path == part.data)
        return self.index.formats.get(number, Format.records) is Format.records

    def select(self, where: Filter) -> Any:
        return select(self.index, where)


def checked_record(data: Any, locator: Locator, what: str) -> dict[str, Any]:
    """The record as the record schema reads it (as convert's reader checks a row), or the refusal saying why."""
    value = next(RecordParser().map(RawItem(data, locator)))
    if not isinstance(value, Mapped):
        where = f" (field {value.field})" if value.field else ""
        raise DecisionRefused(f"the record schema refuses {what}{where}: {value.reason}: {value.message}")
    return record_row(value.record)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"
