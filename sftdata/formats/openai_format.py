"""OpenAI's chat fine-tuning format: the line checks, and records → lines → records.

A line is ``{"messages": [...], "tools": [...]}``. The checks are the error classes of OpenAI's
cookbook "Data preparation and analysis for chat model fine-tuning" (data_type,
missing_messages_list, message_missing_key, message_unrecognized_key, unrecognized_role,
missing_content, example_missing_assistant_message), widened to the tool-calling form the API
accepts today (``tool`` role, ``tool_calls``, ``tool_call_id``, ``weight``, top-level ``tools``), plus
the classes that form adds: unrecognized_key, message_data_type, invalid_weight, invalid_tool_calls,
unanswered_tool_message and invalid_tools.

What records hold and OpenAI lines do not (ids, meta, the instruction/input split) is counted by
the exporter; what OpenAI lines hold and records do not (weights, explicit tool_call ids,
parallel_tool_calls) is kept under ``meta["openai"]`` on import and written back on export.
"""
from __future__ import annotations

from typing import Any

import orjson

from ..schemas.records import ChatRecord, RecordKind, Role
from .rows import (
    OPENAI_META,
    Importer,
    NotExportable,
    RowError,
    call_parts,
    canonical_call,
    common_fields,
)

ERROR_CLASSES = (
    "data_type", "missing_messages_list", "message_missing_key", "message_unrecognized_key",
    "unrecognized_role", "missing_content", "example_missing_assistant_message",
    "unrecognized_key", "message_data_type", "invalid_weight", "invalid_tool_calls",
    "unanswered_tool_message", "invalid_tools",
)
TOP_KEYS = ("messages", "tools", "parallel_tool_calls")
MESSAGE_KEYS = ("role", "content", "name", "weight", "tool_calls", "tool_call_id")
ROLES = ("system", "user", "assistant", "tool")


def _valid_call(call: Any) -> bool:
    function = call.get("function") if isinstance(call, dict) else None
    return (isinstance(call, dict) and isinstance(call.get("id"), str) and call.get("type") == "function"
            and isinstance(function, dict) and isinstance(function.get("name"), str) and function["name"] != ""
            and isinstance(function.get("arguments"), str))


def _valid_tool(tool: Any) -> bool:
    function = tool.get("function") if isinstance(tool, dict) else None
    return (isinstance(tool, dict) and tool.get("type") == "function" and isinstance(function, dict)
            and isinstance(function.get("name"), str) and function["name"] != "")


def check_openai_line(obj: Any) -> list[str]:
    """The error classes one parsed line falls into, in order of first appearance; [] when valid."""
    errors: list[str] = []

    def add(name: str) -> None:
        if name not in errors:
            errors.append(name)

    if not isinstance(obj, dict):
        return ["data_type"]
    if any(key not in TOP_KEYS for key in obj):
        add("unrecognized_key")
    tools = obj.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(_valid_tool(t) for t in tools)):
        add("invalid_tools")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        add("missing_messages_list")
        return errors
    open_calls: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            add("message_data_type")
            continue
        role, content, calls = message.get("role"), message.get("content"), message.get("tool_calls")
        if "role" not in message or ("content" not in message and not calls):
            add("message_missing_key")
        if any(key not in MESSAGE_KEYS for key in message):
            add("message_unrecognized_key")
        if role not in ROLES:
            add("unrecognized_role")
        if calls is not None:
            if role != "assistant" or not isinstance(calls, list) or not calls or not all(map(_valid_call, calls)):
                add("invalid_tool_calls")
            else:
                open_calls = [c["id"] for c in calls]
        if not (isinstance(content, str) and content) and not (role == "assistant" and calls and content in (None, "")):
            add("missing_content")
        if "weight" in message and (role != "assistant" or message["weight"] not in (0, 1)
                                    or isinstance(message["weight"], bool)):
            add("invalid_weight")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id in open_calls:
                open_calls.remove(call_id)
            else:
                add("unanswered_tool_message")
        elif "tool_call_id" in message:
            add("message_unrecognized_key")
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        add("example_missing_assistant_message")
    return errors


def openai_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool schema in OpenAI's wrapper; a bare {name, description, parameters} schema gets wrapped."""
    if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        return tool
    return {"type": "function", "function": tool}


def encode_openai(record: ChatRecord) -> tuple[dict[str, Any], bool]:
    """One OpenAI line for a chat record, and whether its tools had to be wrapped."""
    extra = record.meta.get(OPENAI_META) if isinstance(record.meta.get(OPENAI_META), dict) else {}
    weights, explicit_ids = extra.get("weights") or {}, extra.get("tool_call_ids") or {}
    messages: list[dict[str, Any]] = []
    open_calls: list[str] = []
    count = 0
    for index, message in enumerate(record.messages):
        out: dict[str, Any] = {"role": message.role.value}
        if message.content or not message.tool_calls:
            out["content"] = message.content
        if message.name is not None:
            out["name"] = message.name
        if message.tool_calls:
            calls = []
            for call in message.tool_calls:
                parts = call_parts(call)
                if parts is None:
                    raise NotExportable("invalid_tool_call", f"message {index}: a tool call without a function name",
                                        f"messages[{index}].tool_calls")
                call_id, name, arguments = parts
                call_id = call_id or f"call_{count}"
                count += 1
                text = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
                calls.append(canonical_call(name, text, call_id))
            out["tool_calls"] = calls
            open_calls = [c["id"] for c in calls]
        if message.role is Role.tool:
            call_id = explicit_ids.get(str(index)) or (open_calls[0] if open_calls else None)
            if call_id is None or call_id not in open_calls:
                raise NotExportable("tool_result_without_call",
                                    f"message {index}: a tool result that answers no assistant tool call; OpenAI's "
                                    "format needs each tool message to name the call it answers",
                                    f"messages[{index}]")
            open_calls.remove(call_id)
            out["tool_call_id"] = call_id
        if message.weight is not None:
            out["weight"] = message.weight
        elif str(index) in weights:  # records written before weight was a message field
            out["weight"] = weights[str(index)]
        messages.append(out)
    line: dict[str, Any] = {"messages": messages}
    wrapped = False
    if record.tools:
        line["tools"] = [openai_tool(t) for t in record.tools]
        wrapped = line["tools"] != record.tools
    if "parallel_tool_calls" in extra:
        line["parallel_tool_calls"] = extra["parallel_tool_calls"]
    return line, wrapped


class OpenAIImporter(Importer):
    """OpenAI fine-tuning lines → chat records; call ids that follow the positional pattern are implied."""

    name = "openai"
    to = RecordKind.chat

    def decode(self, row: dict[str, Any]) -> tuple[RecordKind, dict[str, Any]]:
        if "functions" in row:
            raise RowError("legacy_functions", "the legacy `functions`/`function_call` form is not read; "
                           "use `tools` and `tool_calls`", "functions")
        raw = row.get("messages")
        if not isinstance(raw, list) or not raw:
            raise RowError("missing_messages_list", "`messages` must be a non-empty list", "messages")
        extra: dict[str, Any] = {}
        messages = []
        open_calls: list[str] = []
        count = 0
        for index, message in enumerate(raw):
            if not isinstance(message, dict):
                raise RowError("message_data_type", f"message {index}: expected an object", f"messages[{index}]")
            out = {k: v for k, v in message.items() if k != "tool_call_id"}
            if message.get("content") is None and message.get("tool_calls"):
                out["content"] = ""
            elif not isinstance(message.get("content"), str) and "content" in message:
                raise RowError("unsupported_content", f"message {index}: content must be text",
                               f"messages[{index}].content")
            if isinstance(message.get("tool_calls"), list):
                calls, open_calls = [], []
                for call in message["tool_calls"]:
                    parts = call_parts(call)
                    if parts is None:
                        raise RowError("invalid_tool_calls", f"message {index}: a tool call without a function name",
                                       f"messages[{index}].tool_calls")
                    call_id, name, arguments = parts
                    positional = f"call_{count}"  # the id export gives a call that has none
                    count += 1
                    open_calls.append(call_id or positional)
                    kept = None if call_id in (None, positional) else call_id
                    calls.append(canonical_call(name, arguments, kept))  # as given: text stays text, as transformers has it
                out["tool_calls"] = calls
            if message.get("role") == "tool":
                call_id = message.get("tool_call_id")
                expected = open_calls[0] if open_calls else None
                if call_id is not None and call_id != expected:
                    extra.setdefault("tool_call_ids", {})[str(index)] = call_id
                if call_id in open_calls:
                    open_calls.remove(call_id)
                elif open_calls:
                    open_calls.pop(0)
            messages.append(out)
        values: dict[str, Any] = {"messages": messages}
        if row.get("tools") not in (None, []):
            values["tools"] = row["tools"]
        if "parallel_tool_calls" in row:
            extra["parallel_tool_calls"] = row["parallel_tool_calls"]
        values.update(common_fields(row, {"messages", "tools", "parallel_tool_calls"}))
        if extra:
            values["meta"] = {**values.get("meta", {}), OPENAI_META: extra}
        return RecordKind.chat, values
