"""Export targets: one Layout per format, turning records into that format's rows and writing the
files that go beside them (LLaMA-Factory's dataset_info.json entry, axolotl's `datasets:` snippet,
the Hugging Face card). The run itself (reading, counting, staging, sidecars) is sftdata.formats.exporting.

What a format cannot carry is noted per record (`Tally`) and reported only for records written.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import yaml

from ..schemas.records import ChatRecord, InstructionRecord, Record, RecordKind, convert_record, qa_to_instruction
from ..writers import write_json
from .card import CardData, Stats, pipeline_steps, render_card
from .hfdataset import Profile, configs_yaml, features_yaml, hf_row, hf_schema
from .llamafactory import alpaca_row, dataset_entry, sharegpt_row
from .openai_format import check_openai_line, encode_openai
from .rows import OPENAI_META, NotExportable


class ExportFormat(str, Enum):
    trl = "trl"
    openai = "openai"
    llamafactory = "llamafactory"
    axolotl = "axolotl"
    hf = "hf"


FOLDERS = {ExportFormat.llamafactory, ExportFormat.axolotl, ExportFormat.hf}


@dataclass(slots=True)
class Tally:
    dropped: Counter[str] = field(default_factory=Counter)
    converted: Counter[str] = field(default_factory=Counter)


class Layout:
    """One format: how records become rows, and which files hold them."""

    folder = False

    def __init__(self, profile: Profile, tally: Tally, name: str, output: Path) -> None:
        self.profile, self.tally, self.name, self.output = profile, tally, name, output
        self.carry_id = len(profile.id_types) <= 1
        self.files: list[Path] = []

    def file_for(self, root: Path, split: str, single: bool) -> Path:
        return self.output

    def encode(self, record: Record) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {}

    def finish(self, root: Path, stats: dict[str, Stats], meta: dict[str, Any]) -> None:
        """Write the files beside the data (registry entry, config snippet, card)."""

    # shared steps of encode
    def chat(self, record: Record) -> ChatRecord:
        if record.kind != "chat":
            self.tally.converted[f"{record.kind}→chat"] += 1
            self.joined(record)
            return convert_record(record, RecordKind.chat)  # type: ignore[return-value]
        return record  # type: ignore[return-value]

    def instruction(self, record: Record) -> InstructionRecord:
        if record.kind == "qa":
            self.tally.converted["qa→instruction"] += 1
            return qa_to_instruction(record)  # type: ignore[arg-type]
        return record  # type: ignore[return-value]

    def joined(self, record: Record) -> None:
        """The record's input (or context) becomes part of the user turn: its own field is gone."""
        part = getattr(record, "input", None) or getattr(record, "context", None)
        if part:
            self.tally.dropped["input" if record.kind == "instruction" else "context"] += 1

    def common(self, record: Record, row: dict[str, Any]) -> dict[str, Any]:
        if record.id is not None:
            if self.carry_id:
                row["id"] = record.id
            else:
                self.tally.dropped["id"] += 1
        if {k for k in record.meta if k != OPENAI_META}:
            self.tally.dropped["meta"] += 1
        return row


def _messages(chat: ChatRecord, tally: Tally) -> list[dict[str, Any]]:
    """Messages as TRL and axolotl read them: reasoning_content is their own field; a per-message
    weight is OpenAI's and neither reads it (counted as dropped)."""
    if any(m.weight is not None for m in chat.messages):
        tally.dropped["weight"] += 1
    out = [m.model_dump(mode="json", exclude_none=True, exclude={"weight"}) for m in chat.messages]
    for message in out:  # one type for arguments in every row (JSON text), or datasets' JSON reader fails;
        for call in message.get("tool_calls") or []:  # written as a chat template's tojson writes the object
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and not isinstance(function.get("arguments"), (str, type(None))):
                function["arguments"] = json.dumps(function["arguments"], ensure_ascii=False)
    return out


class TrlLayout(Layout):
    """`messages` (+ `tools` as JSON text, which SFTTrainer parses) when any record is a chat;
    else conversational `prompt`/`completion`, so only the completion is trained by default."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.shape = "messages" if "chat" in self.profile.kinds else "prompt-completion"

    def describe(self) -> dict[str, Any]:
        return {"shape": self.shape}

    def encode(self, record: Record) -> dict[str, Any]:
        if self.shape == "messages":
            chat = self.chat(record)
            row: dict[str, Any] = {"messages": _messages(chat, self.tally)}
            if chat.tools or "tools" in self.profile.present:  # the same keys in every row (null where absent)
                row["tools"] = orjson.dumps(chat.tools).decode() if chat.tools else None
            return self.common(record, row)
        self.joined(record)
        inst = self.instruction(record)
        user = inst.instruction + (f"\n\n{inst.input}" if inst.input else "")
        prompt = ([{"role": "system", "content": inst.system}] if inst.system else []) + [
            {"role": "user", "content": user}]
        return self.common(record, {"prompt": prompt, "completion": [{"role": "assistant", "content": inst.output}]})


class OpenAILayout(Layout):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.carry_id = False  # no key beside messages/tools is allowed

    def encode(self, record: Record) -> dict[str, Any]:
        chat = self.chat(record)
        if any(m.reasoning_content for m in chat.messages):  # OpenAI's format has no place for it
            self.tally.dropped["reasoning_content"] += 1
        line, wrapped = encode_openai(chat)
        if wrapped:
            self.tally.converted["tools→openai_function_wrapper"] += 1
        errors = check_openai_line(line)
        if errors:  # a safety net: every line written passes the format's own checks
            raise NotExportable("openai_check", "fails OpenAI's checks: " + ", ".join(errors))
        return self.common(record, line)


class LlamaFactoryLayout(Layout):
    """`NAME.json` (Alpaca when no record is a chat, else ShareGPT) and its dataset_info.json entry."""

    folder = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.formatting = "sharegpt" if "chat" in self.profile.kinds else "alpaca"

    def file_for(self, root: Path, split: str, single: bool) -> Path:
        return root / (f"{self.name}.json" if single else f"{self.name}_{split}.json")

    def describe(self) -> dict[str, Any]:
        return {"formatting": self.formatting}

    def encode(self, record: Record) -> dict[str, Any]:
        if self.formatting == "alpaca":
            return self.common(record, alpaca_row(self.instruction(record)))
        chat = self.chat(record)
        if any(m.reasoning_content for m in chat.messages):  # LLaMA-Factory reads <think> inside the content
            self.tally.converted["reasoning_content→<think> in content"] += 1
        if any(m.weight is not None for m in chat.messages):
            self.tally.dropped["weight"] += 1
        row, dropped_ids = sharegpt_row(chat)
        if dropped_ids:
            self.tally.dropped["tool_call_ids"] += 1
        return self.common(record, row)

    def finish(self, root: Path, stats: dict[str, Stats], meta: dict[str, Any]) -> None:
        system, tools = "system" in self.profile.present, "tools" in self.profile.present
        info = {path.stem: dataset_entry(path.name, self.formatting, system=system, tools=tools) for path in self.files}
        write_json(root / "dataset_info.json", info)
        meta["dataset_info"] = info


class AxolotlLayout(Layout):
    """`{split}.jsonl` plus `axolotl.yaml`, the `datasets:` entries to paste into an axolotl config:
    type alpaca when every record is an instruction without a system prompt, else chat_template."""

    folder = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        plain = "chat" not in self.profile.kinds and "system" not in self.profile.present
        self.type = "alpaca" if plain else "chat_template"
        self.chat_template: str | None = None  # export --template: axolotl renders with it (chat_template_jinja)

    def file_for(self, root: Path, split: str, single: bool) -> Path:
        return root / f"{split}.jsonl"

    def describe(self) -> dict[str, Any]:
        return {"type": self.type}

    def encode(self, record: Record) -> dict[str, Any]:
        if self.type == "alpaca":
            inst = self.instruction(record)
            return self.common(record, {"instruction": inst.instruction, "input": inst.input, "output": inst.output})
        chat = self.chat(record)
        row: dict[str, Any] = {"messages": _messages(chat, self.tally)}
        if chat.tools or "tools" in self.profile.present:  # the same keys in every row (null where absent)
            row["tools"] = chat.tools or None  # axolotl wants a list of tool schemas
        return self.common(record, row)

    def entry(self, path: Path) -> dict[str, Any]:
        entry: dict[str, Any] = {"path": str((self.output / path.name).resolve()), "ds_type": "json", "type": self.type}
        if self.type == "chat_template":
            entry.update(field_messages="messages", message_property_mappings={"role": "role", "content": "content"},
                         roles={r: [r] for r in ("system", "user", "assistant", "tool")}, roles_to_train=["assistant"])
        return entry

    def finish(self, root: Path, stats: dict[str, Stats], meta: dict[str, Any]) -> None:
        config: dict[str, Any] = {"datasets": [self.entry(p) for p in self.files if p.stem == "train"]}
        tests = [{**self.entry(p), "split": "train"} for p in self.files if p.stem != "train"]
        if tests:
            config["test_datasets"] = tests
        if not config["datasets"]:
            config["datasets"] = [self.entry(p) for p in self.files]
            config.pop("test_datasets", None)
        if self.chat_template is not None:
            config = {"chat_template": "jinja", "chat_template_jinja": self.chat_template, **config}
        text = ("# axolotl: paste these entries into your config (paths are where sftdata wrote the data).\n"
                + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        (root / "axolotl.yaml").write_text(text, encoding="utf-8")
        meta["axolotl"] = config


class HfLayout(Layout):
    """data/{split}-0000i-of-0000N.parquet and a README.md card with the datasets front matter."""

    folder = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.kind = self.profile.kind() if self.profile.kinds else RecordKind.chat
        self.schema = hf_schema(self.kind, self.profile)
        self.license: str | None = None
        self.splits: list[dict[str, Any]] = []

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "columns": list(self.schema)}

    def encode(self, record: Record) -> dict[str, Any]:
        if record.kind != self.kind.value:
            self.tally.converted[f"{record.kind}→{self.kind.value}"] += 1
            record = convert_record(record, self.kind)
        if isinstance(record.id, int) and not self.carry_id:
            self.tally.converted["id→string"] += 1
        return hf_row(record, self.schema)

    def finish(self, root: Path, stats: dict[str, Stats], meta: dict[str, Any]) -> None:
        # Lists are written as Parquet large_list (polars); a `list` feature declared over them fails to cast
        # on datasets 4.0-4.8 when a row's list is null (tool_calls), so list columns are left to be read
        # from the files themselves, which every datasets version does.
        lists = any(isinstance(t, pl.List) for t in self.schema.values())
        info = {**({} if lists else {"features": features_yaml(self.schema)}), "splits": self.splits,
                "download_size": sum(p.stat().st_size for p in self.files),
                "dataset_size": sum(s["num_bytes"] for s in self.splits)}
        steps: list[dict[str, Any]] = []
        for source in meta.get("sources", []):
            steps += [m for m in pipeline_steps(Path(source["path"])) if m not in steps]
        steps.append(meta)
        card = CardData(self.name, stats, steps, license=self.license,
                        extra_yaml={"configs": configs_yaml([s["name"] for s in self.splits]), "dataset_info": info})
        (root / "README.md").write_text(render_card(card), encoding="utf-8")


LAYOUTS: dict[ExportFormat, type[Layout]] = {
    ExportFormat.trl: TrlLayout, ExportFormat.openai: OpenAILayout, ExportFormat.llamafactory: LlamaFactoryLayout,
    ExportFormat.axolotl: AxolotlLayout, ExportFormat.hf: HfLayout}
