"""A Hugging Face datasets folder: records as Parquet shards under data/, typed columns, and the
`dataset_info`/`configs` front matter that lets `datasets.load_dataset(folder)` open it as is.

Columns are the record's own fields, so nothing is lost: `meta` (free-form) and, where their shapes
vary from row to row, `tools` and tool calls are stored as JSON text; tool calls in the usual
``{type, function: {name, arguments}}`` form are typed, with `arguments` as JSON text.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from ..schemas.records import Record, RecordKind
from .rows import NotExportable, call_parts, is_canonical_call

S = pl.String
SPLIT_NAMES = {"eval": "validation", "val": "validation", "valid": "validation", "dev": "validation"}


@dataclass(slots=True)
class Profile:
    """What a first pass over the records found: kinds and which optional parts ever occur."""

    kinds: dict[str, int] = field(default_factory=dict)
    id_types: set[str] = field(default_factory=set)
    present: set[str] = field(default_factory=set)  # system, context, meta, tools, tool_calls, name, call_id
    odd_calls: bool = False  # some tool call is not in the canonical form
    rendered: int = 0  # rows of rendered text ({"text"} or a string prompt/completion), not records

    def add(self, row: Any) -> None:
        if not isinstance(row, dict):
            return
        if "text" in row or isinstance(row.get("prompt"), str):
            self.rendered += 1
            return
        kind = "chat" if "messages" in row else "qa" if "question" in row else "instruction"
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if row.get("id") is not None:
            self.id_types.add("int" if isinstance(row["id"], int) and not isinstance(row["id"], bool) else "str")
        for key in ("system", "context", "meta", "tools", "input"):
            if row.get(key):
                self.present.add(key)
        for message in row.get("messages") or []:
            if not isinstance(message, dict):
                continue
            if message.get("role") == "system":
                self.present.add("system")
            if message.get("name") is not None:
                self.present.add("name")
            for key in ("reasoning_content", "weight"):
                if message.get(key) is not None:
                    self.present.add(key)
            for call in message.get("tool_calls") or []:
                self.present.add("tool_calls")
                if not is_canonical_call(call):
                    self.odd_calls = True
                elif call.get("id"):
                    self.present.add("call_id")

    def kind(self) -> RecordKind:
        """One kind for a table: the only one present, else chat (every kind converts to it)."""
        return RecordKind(next(iter(self.kinds))) if len(self.kinds) == 1 else RecordKind.chat


def hf_schema(kind: RecordKind, profile: Profile) -> dict[str, pl.DataType]:
    has = profile.present.__contains__
    schema: dict[str, pl.DataType]
    if kind is RecordKind.instruction:
        schema = {"instruction": S, "input": S, "output": S, **({"system": S} if has("system") else {})}
    elif kind is RecordKind.qa:
        schema = {"question": S, "answer": S, **({"context": S} if has("context") else {})}
    else:
        message: dict[str, pl.DataType] = {"role": S, "content": S}
        if has("tool_calls"):
            call: dict[str, pl.DataType] = {"id": S} if has("call_id") else {}
            call.update(type=S, function=pl.Struct({"name": S, "arguments": S}))
            message["tool_calls"] = S if profile.odd_calls else pl.List(pl.Struct(call))
        if has("name"):
            message["name"] = S
        if has("reasoning_content"):
            message["reasoning_content"] = S
        if has("weight"):
            message["weight"] = pl.Int64
        schema = {"messages": pl.List(pl.Struct(message)), **({"tools": S} if has("tools") else {})}
    if profile.id_types:
        schema["id"] = pl.Int64 if profile.id_types == {"int"} else S
    converted = set(profile.kinds) - {kind.value}
    if has("meta") or (kind is RecordKind.chat and converted and (has("input") or has("context"))):
        schema["meta"] = S  # also where a conversion to chat keeps the input apart (schemas.records.INPUT_KEY)
    return schema


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def hf_row(record: Record, schema: dict[str, pl.DataType]) -> dict[str, Any]:
    """A record as a row of this schema (record already of the schema's kind)."""
    data = record.model_dump(mode="json", exclude_none=True)
    lost = sorted(k for k, v in data.items() if k not in schema and v not in ("", [], {}))
    if lost:  # never silently: the profile pass should have made room for every field
        raise NotExportable("no_column", f"no column for {', '.join(lost)} in this table", lost[0])
    row: dict[str, Any] = {}
    for name in schema:
        value = data.get(name)
        if name == "messages":
            value = [_message(m, schema) for m in value]
        elif name in ("meta", "tools"):
            value = _json(value) if value else None
        elif name == "id" and value is not None and schema["id"] == S:
            value = str(value)
        row[name] = value
    return row


def _message(message: dict[str, Any], schema: dict[str, pl.DataType]) -> dict[str, Any]:
    fields = schema["messages"].inner.fields  # type: ignore[attr-defined]
    out = {f.name: message.get(f.name) for f in fields}
    calls = message.get("tool_calls")
    if calls and "tool_calls" in out:
        if any(f.name == "tool_calls" and f.dtype == S for f in fields):
            out["tool_calls"] = _json(calls)
        else:
            typed = []
            for call in calls:
                call_id, name, arguments = call_parts(call)  # type: ignore[misc]  # canonical: checked by the profile
                text = arguments if isinstance(arguments, str) else _json(arguments)
                typed.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": text}})
            out["tool_calls"] = typed
    return out


def features_yaml(schema: dict[str, pl.DataType]) -> list[dict[str, Any]]:
    """The `dataset_info.features` list of a dataset card, in the datasets library's YAML form."""
    return [{"name": name, **_feature(dtype)} for name, dtype in schema.items()]


def _feature(dtype: pl.DataType) -> dict[str, Any]:
    if isinstance(dtype, pl.List):
        inner = _feature(dtype.inner)
        return {"list": inner["struct"] if "struct" in inner else inner["dtype"]}
    if isinstance(dtype, pl.Struct):
        return {"struct": [{"name": f.name, **_feature(f.dtype)} for f in dtype.fields]}
    if dtype == pl.Int64:
        return {"dtype": "int64"}
    return {"dtype": "string"}


class ShardWriter:
    """Rows of one split → data/{split}-0000i-of-0000N.parquet, N known once the split is done."""

    def __init__(self, folder: Path, split: str, schema: dict[str, pl.DataType], rows_per_shard: int) -> None:
        self.folder, self.split, self.schema, self.rows_per_shard = folder / "data", split, schema, rows_per_shard
        self.rows: list[dict[str, Any]] = []
        self.parts: list[Path] = []
        self.num_examples = self.num_bytes = 0

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.rows_per_shard:
            self._flush()

    def _flush(self) -> None:
        if not self.rows and self.parts:
            return
        frame = pl.DataFrame(self.rows, schema=self.schema)
        self.folder.mkdir(parents=True, exist_ok=True)
        part = self.folder / f".{self.split}-{len(self.parts):05d}.part"
        frame.write_parquet(part)
        self.parts.append(part)
        self.num_examples += frame.height
        self.num_bytes += frame.estimated_size()
        self.rows = []

    def finish(self) -> list[Path]:
        self._flush()
        total = len(self.parts)
        files = []
        for index, part in enumerate(self.parts):
            final = self.folder / f"{self.split}-{index:05d}-of-{total:05d}.parquet"
            os.replace(part, final)
            files.append(final)
        return files


def configs_yaml(splits: list[str]) -> list[dict[str, Any]]:
    return [{"config_name": "default",
             "data_files": [{"split": split, "path": f"data/{split}-*"} for split in splits]}]


def split_name(stem: str) -> str:
    return SPLIT_NAMES.get(stem.lower(), stem)


def split_files(path: Path) -> dict[str, list[Path]]:
    """A data file (one split, train), a folder of split JSONL files (train.jsonl, eval.jsonl, ...) as
    `sftdata split` writes them, or a folder this module wrote (data/{split}-*.parquet)."""
    if not path.is_dir():
        return {"train": [path]}
    shards = sorted((path / "data").glob("*.parquet")) if (path / "data").is_dir() else []
    found: dict[str, list[Path]] = {}
    if shards:
        for shard in shards:
            found.setdefault(shard.name.split("-")[0], []).append(shard)
        return found
    for file in sorted(path.glob("*.jsonl")):
        if file.stem != "rejects" and not file.name.endswith(".rejects.jsonl") and not file.name.startswith("."):
            found.setdefault(split_name(file.stem), []).append(file)
    return found


def read_rows(files: list[Path]) -> Any:
    """Rows of a split: JSON objects of JSONL files, or of Parquet shards (JSON-text columns left as text)."""
    from ..ingest.readers import expand_sources, read_items
    from ..items import RawItem

    for file in files:
        if file.suffix == ".parquet":
            yield from pl.read_parquet(file).iter_rows(named=True)
            continue
        for item in read_items(expand_sources([file])):
            if isinstance(item, RawItem):
                yield item.data
