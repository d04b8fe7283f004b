"""Records JSONL → Records, with counts: the reading loop every command over records shares."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from ..items import Counts, RawItem, Reject, Stage
from ..schemas.records import ChatRecord, Record, RecordKind, Role, convert_record, record_model
from .mapping import Mapped, Mapper
from .validation import reject_from_validation

_ANY_ROW = frozenset({"id", "meta"})
_RENDERED = (frozenset({"text"}), frozenset({"prompt", "completion"}))  # a row's keys (but _ANY_ROW) as render writes them


class RecordParser:
    """Records JSONL (as convert writes it) → Records; the kind comes from --as or from each row's keys."""

    def __init__(self, kind: RecordKind | None = None) -> None:
        self.kind = kind

    def map(self, item: RawItem) -> Iterator[Mapped | Reject]:
        yield self.parse(item)

    def parse(self, item: RawItem) -> Mapped | Reject:
        """The record (or the reject) of one row."""
        data = item.data
        if not isinstance(data, dict):
            return not_an_object(item)
        if ("text" in data or "prompt" in data) and data.keys() - _ANY_ROW in _RENDERED \
                and isinstance(data.get("text", data.get("prompt")), str):
            return Reject(Stage.map, "rendered_text", "this row is rendered SFT text (what `convert --template` "
                          "writes), not a record: commands over records need what `sftdata convert` writes without "
                          "--template", item.locator, raw=data)
        kind = self.kind or (RecordKind.chat if "messages" in data else
                             RecordKind.qa if "question" in data else RecordKind.instruction)
        try:
            # the model's validator itself: model_validate is a Python wrapper around it (0.4 us a row)
            return Mapped(record_model(kind).__pydantic_validator__.validate_python(data), item.locator)
        except ValidationError as error:
            return reject_from_validation(error, item.locator, data)


def not_an_object(item: RawItem) -> Reject:
    """The reject of a row that is not a JSON object, where one was expected."""
    return Reject(Stage.map, "not_an_object", f"expected a JSON object, found {type(item.data).__name__}",
                  item.locator, raw=item.data)


def inline_thinking(content: str) -> tuple[str, str] | None:
    """(reasoning, answer) of a content that opens with a closed <think>…</think> block, else None."""
    if not (content.lstrip().startswith("<think>") and "</think>" in content):
        return None
    head, _, answer = content.partition("</think>")
    return head.split("<think>", 1)[1].strip("\n"), answer.lstrip("\n")


def split_thinking(record: Record) -> Record:
    """An assistant content that opens with <think>…</think> (LLaMA-Factory's and DeepSeek's way of
    storing reasoning) → reasoning_content + the answer after the block. Anything else is left as is
    (an unclosed <think> included: `audit` reports it)."""
    if not isinstance(record, ChatRecord):
        return record
    messages, changed = [], False
    for message in record.messages:
        inline = inline_thinking(message.content)
        if message.role is Role.assistant and message.reasoning_content is None and inline is not None:
            message = message.model_copy(update={"reasoning_content": inline[0] or None, "content": inline[1]})
            changed = True
        messages.append(message)
    return record.model_copy(update={"messages": messages}) if changed else record


def split_turns(record: Record) -> list[Record]:
    """One chat per trained assistant turn, each ending at that turn with only it trained (weight 1, the
    earlier assistant turns weight 0), so a template renders every turn as it does the last one: the
    faithful choice for templates that render history differently (Qwen3 drops earlier reasoning)."""
    if not isinstance(record, ChatRecord):
        return [record]
    ends = [i for i, m in enumerate(record.messages) if m.role is Role.assistant and m.weight != 0]
    if len(ends) <= 1:
        return [record]
    out: list[Record] = []
    for end in ends:
        messages = [m.model_copy(update={"weight": 1 if i == end else 0}) if m.role is Role.assistant else m
                    for i, m in enumerate(record.messages[: end + 1])]
        out.append(record.model_copy(update={"messages": messages}))
    return out


def mapped_records(items: Iterable[RawItem | Reject], mapper: Mapper | RecordParser, counts: Counts,
             to: RecordKind | None, split_think: bool = False,
             split_turn: bool = False) -> Iterator[Mapped | Reject]:
    """Raw items (or readers' rejects) through `mapper` into records, counting every row read per file: the
    reading loop every command over records shares. `to` converts each record to that kind (a row that cannot
    be converted is a reject); `split_think` moves a leading <think> block into reasoning_content; `split_turn`
    writes one chat per trained assistant turn (each counted as a row read)."""
    name, file_counts = None, None  # the counts of the file read last (most rows come from the same file)
    for item in items:
        if item.locator.file != name:
            name = item.locator.file
            file_counts = counts.file(name)
        if isinstance(item, Reject):
            file_counts.read += 1  # type: ignore[union-attr]
            yield item
            continue
        for mapped in mapper.map(item):
            file_counts.read += 1  # type: ignore[union-attr]
            if isinstance(mapped, Mapped) and to is not None and mapped.record.kind != to.value:
                try:
                    mapped = Mapped(convert_record(mapped.record, to), mapped.locator)
                except Exception as error:  # pydantic custom errors from a conversion that cannot hold
                    mapped = Reject(Stage.validate, "not_convertible", f"cannot convert to {to.value}: {error}",
                                    mapped.locator, raw=mapped.record.model_dump(mode="json", exclude_none=True))
            if split_think and isinstance(mapped, Mapped):
                mapped = Mapped(split_thinking(mapped.record), mapped.locator)
            if split_turn and isinstance(mapped, Mapped):
                parts = split_turns(mapped.record)
                if len(parts) > 1:  # each part is a row of its own: read counts it, as for exploded lists
                    counts.file(item.locator.file).read += len(parts) - 1
                    for k, part in enumerate(parts):
                        yield Mapped(part, replace(mapped.locator, element=k))
                    continue
            yield mapped


def record_row(record: Record) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude_none=True, exclude={"meta"} if not record.meta else None)
