"""Which text of a record a curation step looks at: the prompt side, the answer side, the exchange, or named fields.

The prompt side is what a user asks (instruction + input, question + context, or the user turns of
a chat); the answer side is what the model learns to say (output, answer, assistant turns). The
exchange is what one row teaches, without the material rows share: instruction + input + output,
question + answer (not the context, which every question about one passage repeats), the user and
assistant turns of a chat (not the system prompt or tool output); `dedup` compares it by default.
Named fields are record fields (instruction, input, output, system, question, context, answer)
or, for chats, roles (system, user, assistant, tool).
"""
from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from ..errors import OptionError
from ..schemas.records import ChatRecord, InstructionRecord, QARecord, Record

PROMPT = {"instruction": ("instruction", "input"), "qa": ("question", "context"), "chat": ("user",)}
ANSWER = {"instruction": ("output",), "qa": ("answer",), "chat": ("assistant",)}
EXCHANGE = {"instruction": ("instruction", "input", "output"), "qa": ("question", "answer"), "chat": ("user", "assistant")}
ALL = {"instruction": ("system", "instruction", "input", "output"), "qa": ("context", "question", "answer"),
       "chat": ("system", "user", "assistant", "tool")}
KNOWN = {"instruction", "input", "output", "system", "question", "context", "answer", "user", "assistant", "tool"}


class Side(str, Enum):
    prompt = "prompt"
    answer = "answer"
    exchange = "exchange"
    all = "all"


_SIDES = {Side.prompt: PROMPT, Side.answer: ANSWER, Side.exchange: EXCHANGE, Side.all: ALL}


def check_fields(fields: Sequence[str]) -> list[str]:
    unknown = [f for f in fields if f not in KNOWN]
    if unknown:
        raise OptionError("are not fields of a record", option="fields", value=", ".join(unknown),
                          hint=f"use any of {', '.join(sorted(KNOWN))}")
    return list(fields)


def side_fields(record: Record, side: Side) -> tuple[str, ...]:
    return _SIDES[side][record.kind]


def record_text(record: Record, side: Side | Sequence[str] = Side.prompt, sep: str = "\n") -> str:
    """The chosen text of a record, parts joined with `sep` (empty parts skipped)."""
    names = side_fields(record, side) if isinstance(side, Side) else side
    if isinstance(record, ChatRecord):
        return sep.join([p for p in texts(record, names) if p])
    return sep.join([p for n in names if (p := getattr(record, n, None))])  # a field it lacks, None or "": skipped


def texts(record: Record, names: Sequence[str]) -> list[str]:
    if isinstance(record, ChatRecord):
        wanted = set(names)
        return [m.content for m in record.messages if m.role.value in wanted]
    if isinstance(record, (InstructionRecord, QARecord)):
        return [getattr(record, n) or "" for n in names if hasattr(record, n)]
    return []  # pragma: no cover - Record is a closed union
