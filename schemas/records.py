"""Typed SFT records: instruction, chat and Q&A, and lossless conversions between them.

Every model forbids unknown fields and rejects blank text, so a record that validates is one a
trainer can use. Chat rules live in one validator whose errors name the message index.
"""
from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError


class RecordKind(str, Enum):
    instruction = "instruction"
    chat = "chat"
    qa = "qa"


class Role(str, Enum):
    system = "system"
    user = "user"
    assistant = "assistant"
    tool = "tool"


def _not_blank(value: str) -> str:
    if not value or value.isspace():  # what `not value.strip()` says, without copying the text
        raise PydanticCustomError("blank", "must not be empty or whitespace-only")
    return value


Text = Annotated[str, Field(strict=True), AfterValidator(_not_blank)]
Id = Annotated[str | int, Field(union_mode="left_to_right")]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, use_enum_values=False)


class InstructionRecord(_Record):
    """One instruction-following example (Alpaca layout)."""

    kind: ClassVar[str] = "instruction"
    instruction: Text = Field(description="The task the model is asked to do.")
    input: Annotated[str, Field(strict=True)] = Field("", description="Optional context for the task.")
    output: Text = Field(description="The answer the model should learn to give.")
    system: Text | None = Field(None, description="Optional system prompt.")
    id: Id | None = Field(None, description="Identifier carried from the source.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Provenance and unmapped source fields.")


class QARecord(_Record):
    """One question/answer pair, optionally grounded in a context passage."""

    kind: ClassVar[str] = "qa"
    question: Text = Field(description="The question.")
    answer: Text = Field(description="The answer the model should learn to give.")
    context: Text | None = Field(None, description="Optional passage the answer is grounded in.")
    id: Id | None = Field(None, description="Identifier carried from the source.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Provenance and unmapped source fields.")


class Message(_Record):
    """One turn of a conversation."""

    role: Role = Field(description="system, user, assistant or tool.")
    content: Annotated[str, Field(strict=True)] = Field(
        "", description="Turn text; may be empty only for an assistant turn that carries tool_calls.")
    tool_calls: list[dict[str, Any]] | None = Field(None, description="Function calls made by an assistant turn.")
    name: str | None = Field(None, description="Tool name, for tool results.")
    reasoning_content: Annotated[str, Field(strict=True)] | None = Field(
        None, description="An assistant turn's reasoning (the text a thinking model writes in its think block), "
                          "under the name OpenAI-compatible servers, TRL and axolotl use.")
    weight: Literal[0, 1] | None = Field(
        None, description="1 trains this assistant turn, 0 keeps it as context only (OpenAI's chat fine-tuning "
                          "format); unset follows --train-on.")
    tool_call_id: str | None = Field(
        None, description="The id of the call a tool result answers (OpenAI/TRL form); templates that number or "
                          "match calls (Mistral, Solar) read it.")

    @field_validator("content", mode="before")
    @classmethod
    def _null_content(cls, value: Any) -> Any:
        """OpenAI and TRL write `content: null` on an assistant turn that only calls tools: the empty text."""
        return "" if value is None else value


class ChatRecord(_Record):
    """A conversation that ends with an assistant turn."""

    kind: ClassVar[str] = "chat"
    messages: list[Message] = Field(description="The turns, in order.")
    tools: list[dict[str, Any]] | None = Field(None, description="JSON schemas of the tools the assistant may call.")
    id: Id | None = Field(None, description="Identifier carried from the source.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Provenance and unmapped source fields.")

    @field_validator("messages")
    @classmethod
    def _conversation_rules(cls, messages: list[Message]) -> list[Message]:
        check_conversation(messages)
        return messages


Record = InstructionRecord | ChatRecord | QARecord

# What may follow each role; None stands for the start of the conversation (after any system turn).
_NEXT: dict[Role | None, set[Role]] = {
    None: {Role.user},
    Role.user: {Role.assistant},
    Role.assistant: {Role.user, Role.tool},
    Role.tool: {Role.tool, Role.assistant},
}


def _chat_error(index: int, field: str, message: str) -> PydanticCustomError:
    return PydanticCustomError("chat_rule", "message {index}: " + message, {"index": index, "field": field})


def check_conversation(messages: list[Message]) -> None:
    """All conversation rules in one place; each violation names the message index."""
    if not messages:
        raise PydanticCustomError("chat_rule", "conversation has no messages", {"index": None, "field": "messages"})
    previous: Role | None = None
    for index, message in enumerate(messages):
        if message.role is Role.system:
            if index != 0:
                raise _chat_error(index, "role", "a system message may only come first")
        elif message.role not in _NEXT[previous]:
            after = "the start" if previous is None else f"a {previous.value} turn"
            allowed = " or ".join(sorted(r.value for r in _NEXT[previous]))
            raise _chat_error(index, "role", f"{message.role.value} turn after {after}; expected {allowed}")
        else:
            previous = message.role
        if not message.content.strip() and not (message.role is Role.assistant and message.tool_calls):
            raise _chat_error(index, "content", "content must not be empty")
        if message.tool_call_id is not None and message.role is not Role.tool:
            raise _chat_error(index, "tool_call_id", "only tool turns carry tool_call_id")
        if message.role is not Role.assistant:
            for name in ("reasoning_content", "weight"):
                if getattr(message, name) is not None:
                    raise _chat_error(index, name, f"only assistant turns carry {name}")
    if previous is not Role.assistant:
        raise _chat_error(len(messages) - 1, "role", "the conversation must end with an assistant turn")


# Where instruction → chat joins instruction and input, the input is remembered in meta under this
# key so chat → instruction can split it again: the round trip gives back the same record.
INPUT_KEY = "sftdata.input"


def instruction_to_chat(record: InstructionRecord) -> ChatRecord:
    messages = [Message(role=Role.system, content=record.system)] if record.system else []
    meta = dict(record.meta)
    user = record.instruction
    if record.input:
        user = f"{record.instruction}\n\n{record.input}"
        meta[INPUT_KEY] = record.input
    messages += [Message(role=Role.user, content=user), Message(role=Role.assistant, content=record.output)]
    return ChatRecord(messages=messages, id=record.id, meta=meta)


def chat_to_instruction(record: ChatRecord) -> InstructionRecord:
    """Single-turn chats only: one optional system, one user, one assistant turn, no tools."""
    turns = list(record.messages)
    system = turns.pop(0).content if turns[0].role is Role.system else None
    if len(turns) != 2 or record.tools or turns[1].tool_calls:
        raise PydanticCustomError(
            "not_single_turn", "only a single-turn chat without tools converts to an instruction record "
            "({turns} turns after the system message)", {"turns": len(turns), "field": "messages"})
    meta = dict(record.meta)
    instruction, input_ = turns[0].content, meta.pop(INPUT_KEY, "")
    if input_ and instruction.endswith("\n\n" + input_):
        instruction = instruction[: -len(input_) - 2]
    else:
        input_ = ""
    return InstructionRecord(instruction=instruction, input=input_, output=turns[1].content,
                             system=system, id=record.id, meta=meta)


def qa_to_instruction(record: QARecord) -> InstructionRecord:
    return InstructionRecord(instruction=record.question, input=record.context or "", output=record.answer,
                             id=record.id, meta=record.meta)


def instruction_to_qa(record: InstructionRecord) -> QARecord:
    if record.system:
        raise PydanticCustomError("not_convertible", "a Q&A record has no place for a system prompt",
                                  {"field": "system"})
    return QARecord(question=record.instruction, answer=record.output, context=record.input or None,
                    id=record.id, meta=record.meta)


_MODELS: dict[RecordKind, type[BaseModel]] = {
    RecordKind.instruction: InstructionRecord, RecordKind.chat: ChatRecord, RecordKind.qa: QARecord,
}


def record_model(kind: RecordKind) -> type[BaseModel]:
    return _MODELS[kind]


def convert_record(record: Record, kind: RecordKind) -> Record:
    """Convert a record to another kind; raises PydanticCustomError when the target cannot hold it."""
    source = RecordKind(record.kind)
    if source is kind:
        return record
    if source is RecordKind.qa:
        record = qa_to_instruction(record)  # type: ignore[arg-type]
    elif source is RecordKind.chat:
        record = chat_to_instruction(record)  # type: ignore[arg-type]
    if kind is RecordKind.instruction:
        return record
    if kind is RecordKind.chat:
        return instruction_to_chat(record)  # type: ignore[arg-type]
    return instruction_to_qa(record)  # type: ignore[arg-type]
