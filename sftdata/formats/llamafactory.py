"""LLaMA-Factory datasets: `dataset_info.json` entries, and Alpaca/ShareGPT rows both ways.

An entry names a file (`file_name`), its `formatting` (alpaca, the default, or sharegpt), the
`columns` that hold each part and, for ShareGPT, the `tags` of roles. Reading follows LLaMA-Factory's
own converters: an Alpaca row is an instruction record, or a chat record when it carries a
`history` of earlier turns or `tools` (the user turn then joins prompt and query with "\\n", as
LLaMA-Factory does); a ShareGPT `function_call` turn is an assistant tool call and an `observation`
a tool result.

Paths: the data file is always the one given on the command line. An entry's `file_name` is only
compared with it, never opened, so an entry cannot make sftdata read outside its folder.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..errors import MappingError, option
from ..schemas.records import ChatRecord, InstructionRecord, RecordKind, Role
from .rows import Importer, NotExportable, RowError, call_parts, canonical_call, common_fields, json_value

TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
        "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}
COLUMNS = {"alpaca": {"prompt": "instruction", "query": "input", "response": "output", "history": None,
                      "system": None, "tools": None},
           "sharegpt": {"messages": "conversations", "system": None, "tools": None}}
_UNSUPPORTED = {"images": "multimodal (images)", "videos": "multimodal (videos)", "audios": "multimodal (audios)",
                "chosen": "a preference (ranking) dataset", "rejected": "a preference (ranking) dataset",
                "kto_tag": "a KTO (unpaired preference) dataset"}


@dataclass(frozen=True)
class DatasetEntry:
    """One entry of dataset_info.json, with LLaMA-Factory's defaults filled in."""

    name: str
    formatting: str
    columns: dict[str, str | None]
    tags: dict[str, str]
    file_name: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, name: str, raw: Any, source: str) -> DatasetEntry:
        def bad(message: str, hint: str | None = None) -> MappingError:
            return MappingError(f"dataset {name!r}: {message}", file=source, hint=hint)

        if not isinstance(raw, dict):
            raise bad("the entry is not an object")
        formatting = raw.get("formatting", "alpaca")
        if formatting not in COLUMNS:
            raise bad(f"formatting {formatting!r} is not read", hint="use alpaca or sharegpt")
        if raw.get("ranking"):
            raise bad("is a preference (ranking) dataset, not SFT data")
        columns, tags = raw.get("columns", {}), raw.get("tags", {})
        for what, value in (("columns", columns), ("tags", tags)):
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise bad(f"{what} must map names to column or tag strings")
        for column in columns:
            if column in _UNSUPPORTED:
                raise bad(f"is {_UNSUPPORTED[column]}; sftdata reads text SFT data only")
            if column not in COLUMNS[formatting]:
                raise bad(f"column {column!r} does not apply to {formatting} formatting",
                          hint=f"known: {', '.join(COLUMNS[formatting])}")
        unknown = sorted(set(tags) - set(TAGS))
        if unknown:
            raise bad(f"unknown tags {unknown}", hint=f"known: {', '.join(TAGS)}")
        file_name = raw.get("file_name")
        return cls(name, formatting, {**COLUMNS[formatting], **columns}, {**TAGS, **tags},
                   file_name if isinstance(file_name, str) else None, raw)


def load_dataset_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as error:
        raise MappingError(f"cannot read dataset_info: {error.strerror or error}", file=str(path)) from None
    except orjson.JSONDecodeError as error:
        raise MappingError(f"dataset_info is not valid JSON: {error.msg}", file=str(path)) from None
    if not isinstance(data, dict):
        raise MappingError("dataset_info must be a JSON object of dataset entries", file=str(path))
    return data


def _matches(info_dir: Path, file_name: str, data: Path) -> bool:
    target = (info_dir / file_name).resolve()
    data = data.resolve()
    return data == target or target in data.parents


def pick_entry(dataset_info: str | os.PathLike[str], data_files: list[Path], name: str | None = None) -> DatasetEntry:
    """The entry named `name`, or the one whose file_name is the (single) data file."""
    source = str(dataset_info)
    info = load_dataset_info(dataset_info)
    if name is not None:
        if name not in info:
            close = difflib.get_close_matches(name, list(info), n=3)
            raise MappingError(f"no dataset named {name!r}", file=source,
                               hint=f"did you mean {', '.join(close)}?" if close else "see the file's top-level names")
        return DatasetEntry.parse(name, info[name], source)
    if len(data_files) != 1:
        raise MappingError(f"several data files: pick the entry with {option('name')}", file=source)
    data = data_files[0]
    named = {n: e for n, e in info.items() if isinstance(e, dict) and isinstance(e.get("file_name"), str)}
    found = [n for n, e in named.items() if _matches(Path(source).parent, e["file_name"], data)]
    if not found:
        found = [n for n, e in named.items() if Path(e["file_name"]).name == data.name]
    if len(found) != 1:
        what = "no entry has" if not found else f"entries {', '.join(found)} have"
        raise MappingError(f"{what} file_name {data.name!r}", file=source, hint=f"pick the entry with {option('name')}")
    return DatasetEntry.parse(found[0], info[found[0]], source)


def llamafactory_importer(dataset_info: str | os.PathLike[str] | None, data_files: list[str | os.PathLike[str]],
                          name: str | None = None, *, mapping: Any = None) -> LlamaFactoryImporter:
    """The importer `sftdata convert DATA --preset llamafactory [--dataset-info INFO] [--name N]` uses;
    without INFO, the dataset_info.json beside the first data file (LLaMA-Factory's own layout)."""
    if mapping is not None:
        raise MappingError("a mapping file and a LLaMA-Factory entry exclude each other")
    if dataset_info is None:
        if not data_files:
            raise MappingError("no data file given")
        dataset_info = Path(data_files[0]).parent / "dataset_info.json"
        if not dataset_info.is_file():
            raise MappingError("no dataset_info.json beside the data", file=str(dataset_info),
                               hint="pass --dataset-info PATH")
    entry = pick_entry(dataset_info, [Path(p) for p in data_files], name)
    return LlamaFactoryImporter(entry, str(dataset_info))


class LlamaFactoryImporter(Importer):
    name = "llamafactory"
    role_aliases: dict[str, str] = {}

    def __init__(self, entry: DatasetEntry, dataset_info: str = "") -> None:
        self.entry, self.dataset_info = entry, dataset_info
        self.to = RecordKind.instruction if entry.formatting == "alpaca" else RecordKind.chat
        self.used = {c for c in entry.columns.values() if c}

    def describe(self) -> dict[str, Any]:
        return {"importer": self.name, "dataset_info": self.dataset_info, "name": self.entry.name,
                "entry": self.entry.raw}

    def decode(self, row: dict[str, Any]) -> tuple[RecordKind, dict[str, Any]]:
        common = common_fields(row, self.used)
        if self.entry.formatting == "alpaca":
            kind, values = self._alpaca(row)
        else:
            kind, values = RecordKind.chat, self._sharegpt(row)
        return kind, {**values, **common}

    def _column(self, row: dict[str, Any], part: str) -> Any:
        column = self.entry.columns.get(part)
        return row.get(column) if column else None

    def _tools(self, row: dict[str, Any]) -> dict[str, Any]:
        tools = json_value(self._column(row, "tools"), self.entry.columns.get("tools") or "tools")
        if isinstance(tools, dict):
            tools = [tools]
        return {"tools": tools} if tools not in (None, []) else {}

    def _alpaca(self, row: dict[str, Any]) -> tuple[RecordKind, dict[str, Any]]:
        columns = self.entry.columns
        prompt, query = self._column(row, "prompt"), self._column(row, "query")
        response, system = self._column(row, "response"), self._column(row, "system")
        history, tools = self._column(row, "history"), self._tools(row)
        if not isinstance(response, str):
            raise RowError("wrong_type", f"{columns['response']}: expected text, found {type(response).__name__}",
                           columns["response"])
        if not history and not tools:
            values: dict[str, Any] = {"instruction": prompt, "input": query or "", "output": response}
            if system:
                values["system"] = system
            return RecordKind.instruction, values
        messages = [{"role": "system", "content": system}] if system else []
        for index, pair in enumerate(history or []):
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
                raise RowError("invalid_history", f"{columns['history']}[{index}]: expected [query, response]",
                               f"{columns['history']}[{index}]")
            messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
        user = "\n".join(part for part in (prompt, query) if isinstance(part, str) and part)
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": response}]
        return RecordKind.chat, {"messages": messages, **tools}

    def _sharegpt(self, row: dict[str, Any]) -> dict[str, Any]:
        tags, column = self.entry.tags, self.entry.columns["messages"] or "conversations"
        turns = row.get(column)
        if not isinstance(turns, list) or not turns:
            raise RowError("wrong_type", f"{column}: expected a non-empty list of turns", column)
        roles = {**self.role_aliases, tags["user_tag"]: "user", tags["assistant_tag"]: "assistant",
                 tags["observation_tag"]: "tool", tags["function_tag"]: "call"}
        messages: list[dict[str, Any]] = []
        system = self._column(row, "system")
        for index, turn in enumerate(turns):
            where = f"{column}[{index}]"
            if not isinstance(turn, dict):
                raise RowError("wrong_type", f"{where}: expected an object", where)
            tag, content = turn.get(tags["role_tag"]), turn.get(tags["content_tag"])
            if index == 0 and tag == tags["system_tag"]:
                system = content
                continue
            role = roles.get(tag) if isinstance(tag, str) else None
            if role is None:
                raise RowError("unknown_role", f"{where}: unknown role tag {tag!r}", f"{where}.{tags['role_tag']}")
            if role == "tool" and messages and messages[-1]["role"] == "tool":
                raise RowError("broken_alternation", f"{where}: two tool results in a row; LLaMA-Factory skips "
                               "such examples (turns must alternate)", where)
            if role == "call":
                messages.append({"role": "assistant", "content": "", "tool_calls": _calls(content, where)})
            else:
                messages.append({"role": role, "content": content})
        if isinstance(system, str) and system:
            messages.insert(0, {"role": "system", "content": system})
        return {"messages": messages, **self._tools(row)}


class ShareGptImporter(LlamaFactoryImporter):
    """`--preset sharegpt`: ShareGPT rows (`conversations` of from/value turns, optional `system` and
    `tools` columns) read as LLaMA-Factory reads them, so `function_call` turns become assistant tool
    calls and `observation` turns tool results; the role names other ShareGPT dumps use (user,
    assistant, tool) are read too. A call that does not parse is a reject with the reason."""

    name = "sharegpt"
    role_aliases = {"user": "user", "assistant": "assistant", "tool": "tool", "function": "tool"}

    def __init__(self) -> None:
        entry = DatasetEntry.parse("sharegpt", {"formatting": "sharegpt", "columns": {
            "messages": "conversations", "system": "system", "tools": "tools"}}, "--preset sharegpt")
        super().__init__(entry)

    def describe(self) -> dict[str, Any]:
        return {"importer": self.name, "entry": self.entry.raw}


def _calls(content: Any, where: str) -> list[dict[str, Any]]:
    """A function_call turn's JSON text ({name, arguments} or a list of them) → tool calls."""
    try:
        value = orjson.loads(content) if isinstance(content, str) else None
    except orjson.JSONDecodeError:
        value = None
    calls = value if isinstance(value, list) else [value]
    parts = [call_parts(c) for c in calls]
    if not calls or any(p is None for p in parts):
        raise RowError("invalid_tool_call", f"{where}: a function_call turn must hold JSON "
                       '{"name": ..., "arguments": ...} or a list of them', where)
    return [canonical_call(name, arguments) for _, name, arguments in parts]  # type: ignore[misc]


# ---- export: records → rows, and the entry that registers them -----------------------------------

def alpaca_row(record: InstructionRecord) -> dict[str, Any]:
    row: dict[str, Any] = {"instruction": record.instruction, "input": record.input, "output": record.output}
    if record.system:
        row["system"] = record.system
    return row


def sharegpt_row(record: ChatRecord) -> tuple[dict[str, Any], bool]:
    """A ShareGPT row, and whether tool call ids had to be left out."""
    turns: list[dict[str, str]] = []
    row: dict[str, Any] = {}
    dropped_ids = False
    for index, message in enumerate(record.messages):
        if message.role is Role.system:
            row["system"] = message.content
            continue
        if message.role is Role.tool and turns and turns[-1]["from"] == TAGS["observation_tag"]:
            raise NotExportable("consecutive_tool_results", f"message {index}: LLaMA-Factory needs turns to "
                                "alternate, so two tool results cannot follow each other", f"messages[{index}]")
        if message.name is not None:
            raise NotExportable("message_name", f"message {index}: ShareGPT turns have no name",
                                f"messages[{index}].name")
        if message.tool_calls:
            if message.content:
                raise NotExportable("tool_call_with_text", f"message {index}: a function_call turn holds the call "
                                    "only, not the text beside it", f"messages[{index}].content")
            calls = [call_parts(c) for c in message.tool_calls]
            if any(p is None for p in calls):
                raise NotExportable("invalid_tool_call", f"message {index}: a tool call without a function name",
                                    f"messages[{index}].tool_calls")
            dropped_ids = dropped_ids or any(p[0] for p in calls)  # type: ignore[index]
            value = [{"name": p[1], "arguments": p[2]} for p in calls]  # type: ignore[index]
            text = orjson.dumps(value[0] if len(value) == 1 else value).decode()
            turns.append({"from": TAGS["function_tag"], "value": text})
            continue
        tag = {Role.user: "user_tag", Role.assistant: "assistant_tag", Role.tool: "observation_tag"}[message.role]
        value = message.content
        if message.reasoning_content:  # LLaMA-Factory's convention: the think block inside the content
            value = f"<think>\n{message.reasoning_content}\n</think>\n\n{value}"
        turns.append({"from": TAGS[tag], "value": value})
    row = {"conversations": turns, **row}
    if record.tools:
        row["tools"] = orjson.dumps(record.tools).decode()
    return row, dropped_ids


def dataset_entry(file_name: str, formatting: str, *, system: bool, tools: bool) -> dict[str, Any]:
    """The dataset_info.json entry for a file sftdata wrote (explicit, so it reads without defaults)."""
    if formatting == "alpaca":
        columns = {"prompt": "instruction", "query": "input", "response": "output"}
        if system:
            columns["system"] = "system"
        return {"file_name": file_name, "formatting": "alpaca", "columns": columns}
    columns = {"messages": "conversations", **({"system": "system"} if system else {}),
               **({"tools": "tools"} if tools else {})}
    return {"file_name": file_name, "formatting": "sharegpt", "columns": columns, "tags": dict(TAGS)}
