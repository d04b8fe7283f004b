"""Record models and the mapping language (installed as ``sftdata.schemas``).

Imports nothing of sftdata's own: the rest of the package builds on these.
"""
from .records import (
    ChatRecord,
    InstructionRecord,
    Message,
    QARecord,
    Record,
    RecordKind,
    Role,
    chat_to_instruction,
    convert_record,
    instruction_to_chat,
    instruction_to_qa,
    qa_to_instruction,
    record_model,
)

__all__ = [
    "ChatRecord", "InstructionRecord", "Message", "QARecord", "Record", "RecordKind", "Role",
    "chat_to_instruction", "convert_record", "instruction_to_chat", "instruction_to_qa",
    "qa_to_instruction", "record_model",
]
