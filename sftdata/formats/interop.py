"""Reading the formats other tools train with back into records: the import half of interop.

An `Importer` stands where a MappingSpec stands in `convert()`: it turns one raw row of a foreign
format into a record (or a Reject naming why not). The import presets are `openai` (chat
fine-tuning JSONL, tool calls included), `trl` (TRL's conversational `messages` or
`prompt`/`completion` rows), `hf` (the Parquet folder `sftdata export --to hf` writes) and
`llamafactory` (built from a `dataset_info.json` entry, see sftdata.formats.llamafactory).

Tool calls are held in records in the Hugging Face chat-template form
``{"type": "function", "function": {"name": ..., "arguments": {...}}}``; the helpers of sftdata.formats.rows
are the one place that reads the other spellings of a call. The Importer base, RowError and NotExportable
live there too, so the importers here and in openai_format and llamafactory share them.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import MappingError
from ..rendering.chat import REASONING_FIELDS
from ..schemas.records import RecordKind
from .llamafactory import ShareGptImporter
from .openai_format import OpenAIImporter
from .rows import Importer, RowError, common_fields, json_value, parse_arguments

# ---- messages and tools (the TRL and hf rows) ----------------------------------------------------

def _drop_none(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}


def _messages(value: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise RowError("wrong_type", f"{field}: expected a non-empty list of messages", field)
    out = []
    for index, message in enumerate(value):
        if not isinstance(message, dict):
            raise RowError("wrong_type", f"{field}[{index}]: expected an object", f"{field}[{index}]")
        message = _drop_none(message)  # Arrow fills absent struct fields with nulls
        for alias in REASONING_FIELDS[1:]:  # other names reasoning is stored under
            if alias in message and "reasoning_content" not in message and message.get("role") == "assistant":
                message["reasoning_content"] = message.pop(alias)
        if isinstance(message.get("tool_calls"), str):
            message["tool_calls"] = json_value(message["tool_calls"], f"{field}[{index}].tool_calls")
        if isinstance(message.get("tool_calls"), list):
            message["tool_calls"] = [_canonical_arguments(_drop_none(c)) if isinstance(c, dict) else c
                                     for c in message["tool_calls"]]
        if message.get("role") == "assistant" and message.get("tool_calls") and "content" not in message:
            message["content"] = ""
        out.append(message)
    return out


def _canonical_arguments(call: dict[str, Any]) -> dict[str, Any]:
    """Arguments written as JSON text (as the exports write them, one type in every row) read back as the
    object they hold, as every other importer keeps them."""
    function = call.get("function")
    if isinstance(function, dict) and "arguments" in function:
        call = {**call, "function": {**function, "arguments": parse_arguments(function["arguments"])}}
    return call


def _tools(row: dict[str, Any]) -> dict[str, Any]:
    tools = json_value(row.get("tools"), "tools")
    return {"tools": tools} if tools not in (None, []) else {}


# ---- TRL: conversational messages, or prompt/completion -----------------------------------------

class TrlImporter(Importer):
    """TRL's SFT rows: `messages` (→ chat), or `prompt`/`completion` (single-turn → instruction)."""

    name = "trl"

    def decode(self, row: dict[str, Any]) -> tuple[RecordKind, dict[str, Any]]:
        if "messages" in row:
            values = {"messages": _messages(row["messages"], "messages"), **_tools(row)}
            return RecordKind.chat, {**values, **common_fields(row, {"messages", "tools"})}
        if "prompt" in row and "completion" in row:
            return self._pair(row)
        if "text" in row:
            raise RowError("rendered_text", "a `text` row is already rendered: its turns cannot be told apart",
                           "text")
        raise RowError("unknown_shape", "expected `messages`, or `prompt` and `completion`")

    def _pair(self, row: dict[str, Any]) -> tuple[RecordKind, dict[str, Any]]:
        prompt, completion = row["prompt"], row["completion"]
        common = common_fields(row, {"prompt", "completion", "tools"})
        if isinstance(prompt, str) and isinstance(completion, str):  # standard (already formatted) pair
            return RecordKind.instruction, {"instruction": prompt, "output": completion, **common}
        turns = _messages(prompt, "prompt") + _messages(completion, "completion")
        roles = [t.get("role") for t in turns]
        tools = _tools(row)
        plain = all(set(t) == {"role", "content"} for t in turns) and not tools
        if plain and roles in (["user", "assistant"], ["system", "user", "assistant"]):
            values = {"instruction": turns[-2]["content"], "output": turns[-1]["content"], **common}
            if roles[0] == "system":
                values["system"] = turns[0]["content"]
            return RecordKind.instruction, values
        return RecordKind.chat, {"messages": turns, **tools, **common}


# ---- the Parquet folder sftdata writes (records as columns, JSON text where shapes vary) --------

class HfImporter(Importer):
    """Rows of an `sftdata export --to hf` folder: record columns; meta, tools and odd tool calls as JSON."""

    name = "hf"

    def decode(self, row: dict[str, Any]) -> tuple[RecordKind, dict[str, Any]]:
        row = _drop_none(row)
        kind = (RecordKind.chat if "messages" in row else RecordKind.qa if "question" in row
                else RecordKind.instruction)
        values = dict(row)
        if "meta" in values:
            meta = json_value(values["meta"], "meta")
            if meta is None:
                del values["meta"]
            else:
                values["meta"] = meta
        if kind is RecordKind.chat:
            values["messages"] = _messages(values["messages"], "messages")
            for message in values["messages"]:
                for call in message.get("tool_calls") or []:
                    if isinstance(call, dict) and isinstance(call.get("function"), dict):
                        call["function"]["arguments"] = parse_arguments(call["function"].get("arguments"))
            values.pop("tools", None)
            values.update(_tools(row))
        return kind, values


# ---- the registry convert() consults --------------------------------------------------------------

IMPORT_PRESETS: dict[str, Callable[[], Importer]] = {"openai": OpenAIImporter, "trl": TrlImporter,
                                                     "hf": HfImporter, "sharegpt": ShareGptImporter}


def importer_for(preset: str | None, mapping: Any) -> Importer | None:
    """The Importer convert() uses for these options, or None when a MappingSpec does the work."""
    if isinstance(mapping, Importer):
        if preset and preset != mapping.name:
            raise MappingError(f"preset {preset!r} given together with a {mapping.name} importer")
        return mapping
    if preset == "llamafactory":
        raise MappingError("the llamafactory preset needs the dataset's dataset_info.json",
                           hint="pass --dataset-info PATH (and --name NAME to pick an entry)")
    if preset in IMPORT_PRESETS:
        if mapping:
            raise MappingError("give either a preset or a mapping file, not both")
        return IMPORT_PRESETS[preset]()
    return None
