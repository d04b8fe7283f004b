"""The mapping language: how raw fields become record fields, as a validated model.

A mapping file (YAML or JSON) looks like::

    to: qa                       # instruction | chat | qa
    explode: annotations.qa      # optional: one record per element of this list
                                 # ([] for lists in lists: data[].paragraphs[].qas[])
    as: pair                     # name of the element in paths (default: item)
    fields:
      question: pair.question    # a dotted path into the raw item
      answer: {path: pair.answer}
      context: {join: [title, body], sep: "\\n\\n", required: false}
      id: {path: doc_id, required: false}
      meta.customer: info.customer_name   # meta.KEY (or meta.A.B) places a value under the record's meta
    keep_unmapped: true          # what no path reads is kept under meta, in its place: with id: info.id,
                                 # meta.info keeps info's other keys

A field path may start with the explode path's ``[]`` steps to read the element being mapped at that level
(``context: data[].paragraphs[].context`` under ``explode: data[].paragraphs[].qas[]``).

Chat targets use ``messages:`` (a list path with role/content keys and role tags) instead of fields.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .records import RecordKind, Role, record_model

_REQUIRED = {RecordKind.instruction: ("instruction", "output"), RecordKind.qa: ("question", "answer")}
META = "meta."  # a field named meta.KEY (meta.A.B) places its value under the record's meta


def meta_key(name: str) -> tuple[str, ...] | None:
    """The keys under meta a field name places its value at (meta.customer → ("customer",)), or None."""
    if not name.startswith(META):
        return None
    keys = tuple(name[len(META):].split("."))
    return keys if all(k.strip() for k in keys) else None


class FieldSource(BaseModel):
    """Where one record field comes from: exactly one of path, const or join."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = Field(None, description="Dotted path into the raw item, e.g. annotations.qa[0].question.")
    const: str | int | None = Field(None, description="A constant value for every record.")
    join: list[str] | None = Field(None, description="Paths whose values are joined with sep (missing ones skipped).")
    sep: str = Field("\n", description="Separator for join.")
    required: bool = Field(True, description="A missing path rejects the row; if false the field is left out.")
    as_text: bool = Field(False, description="Write a number or true/false found at the path as text (1446 → "
                                             "\"1446\"); lists and objects are still rejected.")

    @model_validator(mode="after")
    def _exactly_one(self) -> FieldSource:
        given = [name for name in ("path", "const", "join") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of path, const, join (got {', '.join(given) or 'none'})")
        return self

    def paths(self) -> list[str]:
        return [self.path] if self.path else list(self.join or [])


class MessagesSource(BaseModel):
    """Where the turns of a chat record come from."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="Path to the list of turns.")
    role_key: str = Field("role", description="Key of the role tag in each turn.")
    content_key: str = Field("content", description="Key of the text in each turn.")
    roles: dict[str, Role] = Field(default_factory=dict, description="Role tag → role, e.g. human: user.")
    system_path: str | None = Field(None, description="Optional path of a system prompt kept outside the turns.")
    tools_path: str | None = Field(None, description="Optional path of the tool schemas (a list, or a JSON string).")


class MappingSpec(BaseModel):
    """A complete mapping from raw items to records of one kind."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    to: RecordKind = Field(description="The record kind produced.")
    explode: str | None = Field(None, description="Path of a list: one record per element. [] steps take each "
                                "element of lists on the way: data[].paragraphs[].qas[] (KorQuAD, SQuAD).")
    as_: str = Field("item", alias="as", description="Name bound to the exploded element in paths.")
    fields: dict[str, str | FieldSource] = Field(default_factory=dict, description="Record field (or meta.KEY) → "
                                                  "source.")
    messages: MessagesSource | None = Field(None, description="Turns of a chat record.")
    keep_unmapped: bool = Field(True, description="Keep what no path reads under meta, where it stands in the source "
                                "(with id: info.id, meta.info keeps info's other keys); a list a path reads into "
                                "is read whole.")

    @field_validator("fields")
    @classmethod
    def _normalise(cls, fields: dict[str, str | FieldSource]) -> dict[str, str | FieldSource]:
        return {name: FieldSource(path=src) if isinstance(src, str) else src for name, src in fields.items()}

    @model_validator(mode="after")
    def _fits_target(self) -> MappingSpec:
        model = record_model(self.to)
        allowed = set(model.model_fields) - {"kind", "messages", "meta"}
        unknown = sorted(name for name in set(self.fields) - allowed if meta_key(name) is None)
        if unknown:
            raise ValueError(f"fields {unknown} are not fields of a {self.to.value} record "
                             f"(allowed: {sorted(allowed)}, or meta.KEY to place a value under meta)")
        if self.to is RecordKind.chat:
            if self.messages is None:
                raise ValueError("a chat mapping needs messages: {path: ...}")
        else:
            if self.messages is not None:
                raise ValueError(f"messages: is only for chat records, not {self.to.value}")
            missing = [name for name in _REQUIRED[self.to] if name not in self.fields]
            if missing:
                raise ValueError(f"a {self.to.value} mapping needs fields {missing}")
        return self

    def sources(self) -> dict[str, FieldSource]:
        return self.fields  # type: ignore[return-value]  # normalised by the validator


def _optional(path: str) -> dict[str, Any]:
    return {"path": path, "required": False}


def _squad(question_id: str) -> dict[str, Any]:
    """SQuAD's layout (KorQuAD 1.0, KLUE-MRC): data[].paragraphs[].qas[], the passage in each paragraph. The answer
    is answers[0].text, or plausible_answers[0].text for a question the passage cannot answer (SQuAD 2.0, KLUE's
    is_impossible), as the datasets' own loaders take it."""
    return {"to": "qa", "explode": "data[].paragraphs[].qas[]", "as": "qa", "fields": {
        "question": "qa.question", "context": "data[].paragraphs[].context",
        "answer": {"join": ["qa.answers[0].text", "qa.plausible_answers[0].text"], "sep": " / "},
        "id": _optional(f"qa.{question_id}")}}


PRESETS: dict[str, dict[str, Any]] = {
    "alpaca": {"to": "instruction", "fields": {
        "instruction": "instruction", "input": _optional("input"), "output": "output",
        "system": _optional("system"), "id": _optional("id")}},
    "qa": {"to": "qa", "fields": {
        "question": "question", "answer": "answer", "context": _optional("context"), "id": _optional("id")}},
    "openai": {"to": "chat", "messages": {"path": "messages", "tools_path": "tools"},
               "fields": {"id": _optional("id")}},
    "sharegpt": {"to": "chat", "fields": {"id": _optional("id")}, "messages": {
        "path": "conversations", "role_key": "from", "content_key": "value", "system_path": "system",
        "tools_path": "tools", "roles": {"human": "user", "user": "user", "gpt": "assistant",
                                         "assistant": "assistant", "system": "system",
                                         "function_call": "assistant", "observation": "tool", "tool": "tool"}}},
    "korquad": _squad("id"),
    "klue-mrc": _squad("guid"),
    # KorQuAD 2.x: qas under each article, its context the whole article's HTML (left out: no training row holds it)
    "korquad2": {"to": "qa", "explode": "data[].qas[]", "as": "qa", "fields": {
        "question": "qa.question", "answer": "qa.answer.text", "id": _optional("qa.id")}},
}


def preset(name: str) -> MappingSpec:
    """A fresh MappingSpec for a named preset (KeyError if unknown)."""
    return MappingSpec.model_validate(PRESETS[name])
