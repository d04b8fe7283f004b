"""Reading other tools' formats: LLaMA-Factory dataset_info entries, OpenAI fine-tuning lines and their
checks, TRL rows; on the real data in ../shared/data."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

import sftdata
from sftdata.errors import MappingError
from sftdata.formats.interop import TrlImporter
from sftdata.formats.llamafactory import DatasetEntry, llamafactory_importer, pick_entry
from sftdata.formats.openai_format import ERROR_CLASSES, OpenAIImporter, check_openai_line, encode_openai
from sftdata.ingest.mapping import Mapped
from sftdata.items import Locator, RawItem

REPO = Path(__file__).resolve().parents[1]


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _map(importer, raw):
    (out,) = list(importer.map(RawItem(raw, Locator("f.json", index=0))))
    return out


# ---- LLaMA-Factory -------------------------------------------------------------------------------

def test_every_entry_of_the_real_registry_parses_or_says_why_not(shared_data):
    info = json.loads((shared_data / "dataset_info.json").read_text(encoding="utf-8"))
    outcomes = Counter()
    for name, raw in info.items():
        try:
            entry = DatasetEntry.parse(name, raw, "dataset_info.json")
        except MappingError as error:
            assert any(w in str(error) for w in ("preference", "multimodal", "KTO", "does not apply")), error
            outcomes["refused"] += 1
        else:
            assert entry.formatting in ("alpaca", "sharegpt")
            outcomes["read"] += 1
    assert outcomes["read"] > 60 and outcomes["refused"] > 10
    glaive = DatasetEntry.parse("glaive_toolcall_en_demo", info["glaive_toolcall_en_demo"], "x")
    assert glaive.columns["messages"] == "conversations" and glaive.tags["function_tag"] == "function_call"
    alpaca = DatasetEntry.parse("alpaca_en_demo", info["alpaca_en_demo"], "x")
    assert (alpaca.columns["prompt"], alpaca.columns["query"], alpaca.columns["response"]) == ("instruction", "input", "output")


@pytest.mark.parametrize("file", ["alpaca_en_demo.json", "identity.json"])
def test_llamafactory_alpaca_import_matches_the_alpaca_preset(shared_data, tmp_path, file):
    by_preset, by_entry = tmp_path / "preset.jsonl", tmp_path / "entry.jsonl"
    sftdata.convert([shared_data / file], by_preset, preset="alpaca")
    importer = llamafactory_importer(shared_data / "dataset_info.json", [shared_data / file])
    assert importer.entry.name == file.removesuffix(".json")
    result = sftdata.convert([shared_data / file], by_entry, preset="llamafactory", mapping=importer)
    assert result.counts.balanced() and result.summary()["rejected"] == 0
    assert by_entry.read_bytes() == by_preset.read_bytes()
    meta = orjson.loads(by_entry.with_name("entry.meta.json").read_bytes())
    assert meta["preset"] == "llamafactory" and meta["mapping_spec"]["name"] == importer.entry.name


def test_llamafactory_sharegpt_function_calls_become_tool_calls(shared_data, tmp_path):
    out = tmp_path / "glaive.jsonl"
    data = shared_data / "glaive_toolcall_en_demo.json"
    result = sftdata.convert([data], out, mapping=llamafactory_importer(shared_data / "dataset_info.json", [data]))
    assert result.summary()["written"] == 300
    rows = _lines(out)
    calls = [m for r in rows for m in r["messages"] if m.get("tool_calls")]
    assert len(calls) == 211  # the function_call turns of the file
    call = calls[0]["tool_calls"][0]
    assert call["type"] == "function" and isinstance(call["function"]["arguments"], dict)
    assert all(isinstance(r.get("tools", []), list) for r in rows)
    # a tool result follows each call, as in the source
    for r in rows:
        roles = [m["role"] for m in r["messages"]]
        for i, m in enumerate(r["messages"]):
            if m.get("tool_calls"):
                assert roles[i + 1] == "tool"


def _entry(tmp_path: Path, entry: dict, rows: list[dict], name: str = "mine") -> tuple[Path, Path]:
    data = tmp_path / "mine.json"
    data.write_text(json.dumps(rows), encoding="utf-8")
    info = tmp_path / "dataset_info.json"
    info.write_text(json.dumps({name: {"file_name": "mine.json", **entry}}), encoding="utf-8")
    return data, info


def test_alpaca_history_becomes_a_chat_record(tmp_path):
    rows = [{"q": "Now?", "ctx": "ctx", "a": "Yes.", "sys": "Be brief.", "hist": [["Hi", "Hello!"], ["And?", "More."]]},
            {"q": "Alone", "ctx": "", "a": "Fine.", "hist": []}]
    data, info = _entry(tmp_path, {"columns": {"prompt": "q", "query": "ctx", "response": "a", "system": "sys",
                                               "history": "hist"}}, rows)
    importer = llamafactory_importer(info, [data])
    first, second = (_map(importer, r) for r in rows)
    assert first.record.kind == "chat"
    assert [(m.role.value, m.content) for m in first.record.messages] == [
        ("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"), ("user", "And?"), ("assistant", "More."),
        ("user", "Now?\nctx"), ("assistant", "Yes.")]  # LLaMA-Factory joins prompt and query with "\n"
    assert second.record.kind == "instruction" and second.record.instruction == "Alone"
    bad = _map(importer, {"q": "x", "a": "y", "hist": [["only one"]]})
    assert bad.reason == "invalid_history" and bad.field == "hist[0]"


def test_sharegpt_entry_with_custom_tags_and_broken_turns(tmp_path):
    rows = [{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                          {"role": "assistant", "content": "A"}]}]
    data, info = _entry(tmp_path, {"formatting": "sharegpt", "columns": {"messages": "messages"},
                                   "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                                            "assistant_tag": "assistant"}}, rows)
    importer = llamafactory_importer(info, [data])
    out = _map(importer, rows[0])
    assert [m.role.value for m in out.record.messages] == ["system", "user", "assistant"]
    assert _map(importer, {"messages": [{"role": "robot", "content": "x"}]}).reason == "unknown_role"
    twice = {"messages": [{"role": "user", "content": "q"}, {"role": "function_call", "content": "{\"name\": \"f\", "
                          "\"arguments\": {}}"}, {"role": "observation", "content": "1"},
                          {"role": "observation", "content": "2"}, {"role": "assistant", "content": "a"}]}
    assert _map(importer, twice).reason == "broken_alternation"
    call = {"messages": [{"role": "user", "content": "q"}, {"role": "function_call", "content": "not json"},
                         {"role": "observation", "content": "1"}, {"role": "assistant", "content": "a"}]}
    assert _map(importer, call).reason == "invalid_tool_call"


def test_picking_entries_and_what_is_refused(tmp_path, shared_data):
    info = shared_data / "dataset_info.json"
    assert pick_entry(info, [shared_data / "identity.json"]).name == "identity"
    assert pick_entry(info, [tmp_path / "anything.json"], name="alpaca_zh_demo").name == "alpaca_zh_demo"
    with pytest.raises(MappingError, match="did you mean"):
        pick_entry(info, [shared_data / "identity.json"], name="identiti")
    with pytest.raises(MappingError, match="no entry has file_name"):
        pick_entry(info, [tmp_path / "unknown.json"])
    for entry, words in (({"ranking": True}, "preference"), ({"columns": {"images": "images"}}, "multimodal"),
                         ({"formatting": "openai"}, "not read"), ({"columns": {"messages": "m"}}, "does not apply")):
        with pytest.raises(MappingError, match=words):
            DatasetEntry.parse("x", {"file_name": "x.json", **entry}, "dataset_info.json")


def test_an_entry_never_makes_sftdata_read_its_file_name(tmp_path):
    """file_name is compared with the data file given, never opened: '..' or absolute names read nothing."""
    data = tmp_path / "given.json"
    data.write_text(json.dumps([{"instruction": "i", "output": "o"}]), encoding="utf-8")
    info = tmp_path / "sub" / "dataset_info.json"
    info.parent.mkdir()
    info.write_text(json.dumps({"evil": {"file_name": "/etc/passwd"}, "up": {"file_name": "../secret.json"}}),
                    encoding="utf-8")
    with pytest.raises(MappingError, match="no entry has file_name"):
        pick_entry(info, [data])
    out = tmp_path / "out.jsonl"
    sftdata.convert([data], out, mapping=llamafactory_importer(info, [data], name="evil"))
    assert _lines(out) == [{"instruction": "i", "input": "", "output": "o"}]


def test_cli_convert_with_the_llamafactory_preset(shared_data, tmp_path):
    out = tmp_path / "g.jsonl"
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), "convert",
                             str(shared_data / "glaive_toolcall_en_demo.json"), "--preset", "llamafactory", "-o",
                             str(out), "--json"], capture_output=True, text=True)  # dataset_info.json found beside
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["written"] == 300
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), "convert", str(shared_data / "identity.json"),
                             "--dataset-info", str(shared_data / "dataset_info.json"), "--name", "nope", "-o",
                             str(out)], capture_output=True, text=True)
    assert result.returncode == 2 and "no dataset named 'nope'" in result.stderr


# ---- OpenAI --------------------------------------------------------------------------------------

GOOD = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Weather?"},
                     {"role": "assistant", "tool_calls": [{"id": "call_0", "type": "function",
                                                           "function": {"name": "get", "arguments": "{\"city\":\"Seoul\"}"}}]},
                     {"role": "tool", "tool_call_id": "call_0", "content": "20C"},
                     {"role": "assistant", "content": "It is 20C.", "weight": 1}],
        "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}]}


def _with(**changes):
    line = json.loads(json.dumps(GOOD))
    for path, value in changes.items():
        target = line
        *steps, last = path.split("__")
        for step in steps:
            target = target[int(step) if step.isdigit() else step]
        if value is KeyError:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return line


BAD_LINES = {
    "data_type": ["not", "an", "object"],
    "missing_messages_list": {"messages": []},
    "message_missing_key": _with(messages__1__content=KeyError),
    "message_unrecognized_key": _with(messages__1__mood="happy"),
    "unrecognized_role": _with(messages__1__role="human"),
    "missing_content": _with(messages__1__content=""),
    "example_missing_assistant_message": {"messages": [{"role": "user", "content": "hello"}]},
    "unrecognized_key": _with(id=7),
    "message_data_type": _with(messages__1="hello"),
    "invalid_weight": _with(messages__4__weight=2),
    "invalid_tool_calls": _with(messages__2__tool_calls__0__function__arguments={"city": "Seoul"}),
    "unanswered_tool_message": _with(messages__3__tool_call_id="call_9"),
    "invalid_tools": _with(tools=[{"name": "get"}]),
}


def test_a_good_line_passes():
    assert check_openai_line(GOOD) == []


@pytest.mark.parametrize("error", ERROR_CLASSES)
def test_each_error_class_is_named(error):
    assert error in check_openai_line(BAD_LINES[error])


def test_openai_import_then_export_gives_the_same_lines(tmp_path):
    """Weights, explicit call ids and parallel_tool_calls survive a round trip through records."""
    odd_ids = _with(messages__2__tool_calls__0__id="abc", messages__3__tool_call_id="abc", parallel_tool_calls=False)
    two_calls = {"messages": [{"role": "user", "content": "both"}, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "a", "arguments": "{}"}},
        {"id": "call_1", "type": "function", "function": {"name": "b", "arguments": "not json"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "B"}, {"role": "tool", "tool_call_id": "call_0", "content": "A"},
        {"role": "assistant", "content": "done", "weight": 0}]}
    lines = [GOOD, odd_ids, two_calls]
    source = tmp_path / "ft.jsonl"
    source.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    records = tmp_path / "records.jsonl"
    assert sftdata.convert([source], records, preset="openai").summary()["written"] == 3
    first = _lines(records)[0]
    assert "tool_call_id" not in json.dumps(first) and "meta" not in first and first["messages"][4]["weight"] == 1
    back = tmp_path / "back.jsonl"
    result = sftdata.export(records, back, "openai")
    assert result.summary()["written"] == 3 and result.dropped == {}
    expected = [dict(line) for line in lines]
    expected[2]["messages"][1] = {k: v for k, v in expected[2]["messages"][1].items() if k != "content"}
    assert _lines(back) == expected


def test_openai_export_refuses_tool_results_that_answer_no_call():
    from sftdata.formats.rows import NotExportable
    from sftdata.schemas import ChatRecord

    record = ChatRecord.model_validate({"messages": [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": "{\"name\": \"f\"}"},
        {"role": "tool", "content": "1"}, {"role": "assistant", "content": "a"}]})
    with pytest.raises(NotExportable, match="answers no assistant tool call"):
        encode_openai(record)


def test_openai_importer_rejects_what_records_cannot_hold():
    importer = OpenAIImporter()
    assert _map(importer, {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}).reason == \
        "unsupported_content"
    assert _map(importer, {"messages": [], "functions": []}).reason == "legacy_functions"
    assert _map(importer, {"messages": [{"role": "developer", "content": "x"}]}).stage.value == "validate"


# ---- TRL -----------------------------------------------------------------------------------------

def test_trl_rows_of_each_shape():
    importer = TrlImporter()
    pair = _map(importer, {"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
                           "completion": [{"role": "assistant", "content": "A"}], "id": 3})
    assert isinstance(pair, Mapped) and pair.record.kind == "instruction"
    assert (pair.record.system, pair.record.instruction, pair.record.output, pair.record.id) == ("S", "Q", "A", 3)
    chat = _map(importer, {"messages": [{"role": "user", "content": "Q", "tool_calls": None},
                                        {"role": "assistant", "content": "A"}], "tools": "[{\"name\": \"f\"}]"})
    assert chat.record.kind == "chat" and chat.record.tools == [{"name": "f"}]
    standard = _map(importer, {"prompt": "The sky is", "completion": " blue."})
    assert standard.record.instruction == "The sky is"
    assert _map(importer, {"text": "rendered"}).reason == "rendered_text"
