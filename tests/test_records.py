"""schemas/records.py: strict models, conversation rules naming the message index, lossless conversions."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from sftdata.schemas import (
    ChatRecord,
    InstructionRecord,
    QARecord,
    RecordKind,
    chat_to_instruction,
    convert_record,
    instruction_to_chat,
    qa_to_instruction,
)


def _errors(model, data):
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return caught.value.errors()


def test_instruction_requires_non_blank_instruction_and_output():
    assert InstructionRecord(instruction="a", output="b").input == ""
    errors = _errors(InstructionRecord, {"instruction": "  \n", "output": ""})
    assert {(e["loc"], e["type"]) for e in errors} == {(("instruction",), "blank"), (("output",), "blank")}


@pytest.mark.parametrize("data, kind", [
    ({"instruction": 1, "output": "x"}, "string_type"),
    ({"instruction": "x", "output": None}, "string_type"),
    ({"instruction": "x"}, "missing"),
    ({"instruction": "x", "output": "y", "extra": 1}, "extra_forbidden"),
    ({"instruction": "x", "output": "y", "input": 3}, "string_type"),
])
def test_instruction_rejects_wrong_types_missing_and_extra_fields(data, kind):
    assert _errors(InstructionRecord, data)[0]["type"] == kind


def _chat(*turns):
    return {"messages": [{"role": r, "content": c} for r, c in turns]}


@pytest.mark.parametrize("turns, index, text", [
    ([("user", "a"), ("user", "b"), ("assistant", "c")], 1, "user turn after a user turn"),
    ([("assistant", "a")], 0, "assistant turn after the start"),
    ([("user", "a"), ("system", "s"), ("assistant", "c")], 1, "system message may only come first"),
    ([("user", "a"), ("assistant", "b"), ("user", "c")], 2, "must end with an assistant turn"),
    ([("user", "a"), ("assistant", " ")], 1, "content must not be empty"),
    ([("system", "s"), ("user", "a"), ("tool", "42"), ("assistant", "c")], 2, "tool turn after a user turn"),
])
def test_chat_rules_name_the_message_index(turns, index, text):
    error = _errors(ChatRecord, _chat(*turns))[0]
    assert error["type"] == "chat_rule"
    assert error["ctx"]["index"] == index
    assert text in error["msg"] and f"message {index}:" in error["msg"]


def test_tool_calling_conversation_is_valid():
    record = ChatRecord.model_validate({"messages": [
        {"role": "system", "content": "use tools"},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "weather", "arguments": {"city": "Seoul"}}]},
        {"role": "tool", "content": "{\"temp\": 3}"},
        {"role": "tool", "content": "{\"wind\": 1}"},
        {"role": "assistant", "content": "It is 3 degrees."},
    ], "tools": [{"name": "weather", "parameters": {"type": "object"}}]})
    assert len(record.messages) == 6


def test_empty_conversation_and_unknown_role():
    assert _errors(ChatRecord, {"messages": []})[0]["type"] == "chat_rule"
    assert _errors(ChatRecord, _chat(("human", "a"), ("assistant", "b")))[0]["type"] == "enum"


text = st.text(min_size=1).filter(lambda s: s.strip())


@given(instruction=text, input=st.one_of(st.just(""), text), output=text, system=st.one_of(st.none(), text))
def test_instruction_chat_round_trip_is_lossless(instruction, input, output, system):
    record = InstructionRecord(instruction=instruction, input=input, output=output, system=system, id=7,
                               meta={"source": "x"})
    chat = instruction_to_chat(record)
    assert chat_to_instruction(chat) == record
    assert convert_record(convert_record(record, RecordKind.chat), RecordKind.instruction) == record


@given(question=text, answer=text, context=st.one_of(st.none(), text))
def test_qa_instruction_qa_round_trip(question, answer, context):
    record = QARecord(question=question, answer=answer, context=context, id="q1")
    assert convert_record(qa_to_instruction(record), RecordKind.qa) == record


def test_multi_turn_chat_does_not_convert_to_instruction():
    chat = ChatRecord.model_validate(_chat(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")))
    with pytest.raises(Exception, match="single-turn"):
        convert_record(chat, RecordKind.instruction)


def test_record_dump_has_no_kind_tag():
    assert "kind" not in InstructionRecord(instruction="a", output="b").model_dump()


def test_openai_raw_rows_are_chat_records():
    """tool_call_id on tool turns, content: null beside tool_calls, arguments as JSON text or an object."""
    row = {"messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "get", "arguments": "{\"city\": \"Seoul\"}"}},
            {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": {"city": "Busan"}}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "20C"},
        {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
        {"role": "assistant", "content": "20C and 22C."}]}
    record = ChatRecord.model_validate(row)
    assert record.messages[1].content == "" and record.messages[2].tool_call_id == "call_0"
    assert record.messages[1].tool_calls[0]["function"]["arguments"] == "{\"city\": \"Seoul\"}"  # text stays text
    with pytest.raises(ValidationError, match="only tool turns carry tool_call_id"):
        ChatRecord.model_validate({"messages": [{"role": "user", "content": "hi", "tool_call_id": "x"},
                                                {"role": "assistant", "content": "yo"}]})
    with pytest.raises(ValidationError, match="content must not be empty"):
        ChatRecord.model_validate({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}]})
