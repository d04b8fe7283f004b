"""What the format modules share about one row of another tool's format, read or written: the Importer base
and RowError (a foreign row that cannot become a record), NotExportable (a record a format cannot
express), the meta key that keeps what only OpenAI lines hold, and the field helpers every importer
uses (JSON text, the id and unmapped columns).

Tool calls are held in records in the Hugging Face chat-template form
``{"type": "function", "function": {"name": ..., "arguments": {...}}}``; the helpers here are the one
place that reads the other spellings of a call. The importers themselves live in interop (TRL, hf, the
preset registry), openai_format and llamafactory.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from pydantic import ValidationError

from ..ingest.mapping import Mapped
from ..ingest.records import not_an_object
from ..ingest.validation import reject_from_validation
from ..items import RawItem, Reject, Stage
from ..schemas.records import RecordKind, record_model

# Keys under meta that carry what only the OpenAI format has (weights, explicit tool_call ids),
# so an OpenAI file read and written again comes back the same.
OPENAI_META = "openai"


class RowError(Exception):
    """A row that cannot become a record; becomes a Reject with this reason."""

    def __init__(self, reason: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason, self.message, self.field = reason, message, field


class NotExportable(Exception):
    """A record the target format cannot express; the exporter turns it into a Reject with this reason."""

    def __init__(self, reason: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason, self.message, self.field = reason, message, field


class Importer:
    """Foreign rows → records. Subclasses implement `decode`; `map` is what the pipeline calls."""

    name = ""
    to = RecordKind.chat  # the kind most rows become (recorded in the sidecar)

    def decode(self, row: dict[str, Any]) -> tuple[RecordKind, dict[str, Any]]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"importer": self.name}

    def map(self, item: RawItem) -> Iterator[Mapped | Reject]:
        data = item.data
        if not isinstance(data, dict):
            yield not_an_object(item)
            return
        try:
            kind, values = self.decode(data)
        except RowError as error:
            yield Reject(Stage.map, error.reason, error.message, item.locator, field=error.field, raw=data)
            return
        try:
            yield Mapped(record_model(kind).model_validate(values), item.locator)  # type: ignore[arg-type]
        except ValidationError as error:
            yield reject_from_validation(error, item.locator, data)


# ---- tool calls and fields ---------------------------------------------------------------------

def parse_arguments(value: Any) -> Any:
    """A call's arguments as a JSON object when the text is one; anything else is kept as it is."""
    if isinstance(value, str):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        return parsed if isinstance(parsed, dict) else value
    return value


def call_parts(call: Any) -> tuple[str | None, str, Any] | None:
    """(id, name, arguments) of a tool call in HF/OpenAI form or bare {name, arguments}; None if neither."""
    if not isinstance(call, dict):
        return None
    function = call.get("function") if isinstance(call.get("function"), dict) else call
    name = function.get("name")
    if not isinstance(name, str) or not name:
        return None
    call_id = call.get("id")
    return (call_id if isinstance(call_id, str) else None), name, function.get("arguments", {})


def canonical_call(name: str, arguments: Any, call_id: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"id": call_id} if call_id else {}
    call.update(type="function", function={"name": name, "arguments": arguments})
    return call


def is_canonical_call(call: Any) -> bool:
    """Exactly the HF form (optionally with an id): what every importer produces."""
    parts = call_parts(call)
    return (parts is not None and set(call) <= {"id", "type", "function"} and call.get("type") == "function"
            and set(call["function"]) == {"name", "arguments"})


def json_value(value: Any, field: str) -> Any:
    """A value stored as JSON text (tools, meta, tool_calls in Parquet) → the value; None stays None."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise RowError("invalid_json", f"{field}: not valid JSON ({error.msg})", field) from None


def common_fields(row: dict[str, Any], used: set[str]) -> dict[str, Any]:
    """id and the unmapped top-level columns (→ meta), as the presets keep them."""
    out: dict[str, Any] = {}
    if row.get("id") not in (None, ""):
        out["id"] = row["id"]
    extra = {k: v for k, v in row.items() if k not in used and k != "id"}
    if extra:
        out["meta"] = extra
    return out
