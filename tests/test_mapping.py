"""sftdata/ingest/mapping.py and schemas/mapping.py: presets on real data, the mapping language, per-row rejects."""
from __future__ import annotations

from collections import Counter

import pytest

from sftdata.errors import MappingError
from sftdata.ingest.mapping import Mapped, Mapper, load_mapping, mapping_from_data, resolve_spec
from sftdata.ingest.paths import PathSyntaxError, parse_path
from sftdata.ingest.readers import expand_sources, read_items
from sftdata.items import Locator, RawItem, Reject


def _map_file(path, spec):
    mapper = Mapper(spec)
    return [out for item in read_items(expand_sources([path])) for out in mapper.map(item)]


def _one(spec_data, raw):
    return list(Mapper(mapping_from_data(spec_data)).map(RawItem(raw, Locator("f.json", index=0))))


def test_alpaca_preset_on_real_data(shared_data):
    out = _map_file(shared_data / "alpaca_en_demo.json", resolve_spec("alpaca", None))
    assert len(out) == 999 and all(isinstance(o, Mapped) for o in out)
    assert sum(1 for o in out if o.record.input == "") == 587
    assert out[3].locator == Locator(str(shared_data / "alpaca_en_demo.json"), index=3)


def test_sharegpt_preset_maps_tool_calling_conversations(shared_data):
    out = _map_file(shared_data / "glaive_toolcall_en_demo.json", resolve_spec("sharegpt", None))
    assert Counter(type(o).__name__ for o in out) == {"Mapped": 300}
    roles = Counter(m.role.value for o in out for m in o.record.messages)
    assert roles["tool"] > 0 and roles["assistant"] > roles["user"] - 1
    assert all(isinstance(o.record.tools, list) for o in out if o.record.tools is not None)


def test_explode_self_instruct_seed_tasks(shared_data):
    spec = mapping_from_data({"to": "instruction", "explode": "instances", "as": "instance", "fields": {
        "instruction": "instruction", "input": "instance.input", "output": "instance.output", "id": "id"}})
    out = _map_file(shared_data / "seed_tasks.jsonl", spec)
    assert len(out) == 175 and all(isinstance(o, Mapped) for o in out)
    first = out[0]
    assert first.locator.line == 1 and first.locator.element == 0
    assert first.record.id == "seed_task_0"
    assert first.record.meta == {"name": "breakfast_suggestion", "is_classification": False}


def test_nested_paths_with_indexes_join_and_const():
    raw = {"doc": {"title": "T", "body": "B"}, "annotations": {"qa": [{"question": "Q?", "answer": "A."}]}}
    (out,) = _one({"to": "qa", "fields": {
        "question": "annotations.qa[0].question", "answer": "annotations.qa[-1].answer",
        "context": {"join": ["doc.title", "doc.missing", "doc.body"], "sep": " / "}, "id": {"const": "c1"}}}, raw)
    assert isinstance(out, Mapped)
    assert (out.record.question, out.record.answer, out.record.context, out.record.id) == ("Q?", "A.", "T / B", "c1")


def test_missing_path_is_a_reject_naming_the_path():
    (out,) = _one({"to": "qa", "fields": {"question": "annotations.qa[2].question", "answer": "a"}},
                  {"annotations": {"qa": [{"question": "x"}]}, "a": "y"})
    assert isinstance(out, Reject) and out.reason == "path_missing"
    assert out.source_path == "annotations.qa[2].question"
    assert "index out of range" in out.message


def test_wrong_type_is_a_reject_naming_field_and_source_path():
    (out,) = _one({"to": "instruction", "fields": {"instruction": "q", "output": "a.b"}}, {"q": "x", "a": {"b": 5}})
    assert isinstance(out, Reject) and out.reason == "string_type"
    assert out.field == "output" and out.source_path == "a.b"


def test_explode_of_missing_or_empty_list_is_one_reject():
    spec = {"to": "qa", "explode": "qa", "fields": {"question": "item.q", "answer": "item.a"}}
    assert [o.reason for o in _one(spec, {"qa": []})] == ["explode_not_list"]
    assert [o.reason for o in _one(spec, {"other": 1})] == ["path_missing"]
    out = _one(spec, {"qa": [{"q": "1", "a": "2"}, {"q": "3"}]})
    assert isinstance(out[0], Mapped) and isinstance(out[1], Reject) and out[1].locator.element == 1


def test_non_object_item_is_rejected():
    (out,) = list(Mapper(resolve_spec("alpaca", None)).map(RawItem([1, 2], Locator("f.json", index=4))))
    assert isinstance(out, Reject) and out.reason == "not_an_object"


def test_empty_optional_cell_means_absent():
    (out,) = _one({"to": "instruction", "fields": {"instruction": "i", "output": "o",
                                                    "system": {"path": "s", "required": False}}},
                  {"i": "x", "o": "y", "s": ""})
    assert isinstance(out, Mapped) and out.record.system is None


def test_keep_unmapped_off():
    spec = {"to": "instruction", "keep_unmapped": False, "fields": {"instruction": "i", "output": "o"}}
    (out,) = _one(spec, {"i": "x", "o": "y", "extra": 1})
    assert out.record.meta == {}


@pytest.mark.parametrize("data, text", [
    ({"to": "qa", "fields": {"question": "q"}}, "needs fields ['answer']"),
    ({"to": "qa", "fields": {"question": "q", "answer": "a", "output": "o"}}, "not fields of a qa record"),
    ({"to": "chat", "fields": {}}, "needs messages"),
    ({"to": "qa", "fields": {"question": {"path": "q", "const": "x"}, "answer": "a"}}, "exactly one of"),
    ({"to": "qa", "fields": {"question": "q..x", "answer": "a"}}, "bad path"),
    ({"to": "poem", "fields": {}}, "to"),
])
def test_invalid_mappings_raise_mapping_error(data, text):
    with pytest.raises(MappingError, match=text.replace("[", r"\[").replace("]", r"\]")):
        mapping_from_data(data)


def test_mapping_file_errors(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("to: [unclosed", encoding="utf-8")
    with pytest.raises(MappingError, match="not valid YAML"):
        load_mapping(bad)
    with pytest.raises(MappingError, match="cannot read mapping"):
        load_mapping(tmp_path / "absent.yaml")
    with pytest.raises(MappingError, match="unknown preset"):
        resolve_spec("nope", None)


def test_path_syntax():
    assert parse_path('a.b[0]["x.y"][-2]') == ("a", "b", 0, "x.y", -2)
    with pytest.raises(PathSyntaxError):
        parse_path("a[")


# -- property-based: generated rows and mappings ---------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sftdata.ingest.paths import PathNotFound, format_path, resolve  # noqa: E402

_KEYS = st.sampled_from(["a", "b", "instruction", "output", "x.y", "한국어", "", " ", "0", "[0]", '"q"'])
_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                    st.text(max_size=8), st.sampled_from(["", "  ", "\x00", "\u202e", "{{ 7*7 }}"]))
_VALUES = st.recursive(_LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(_KEYS, inner, max_size=3)), max_leaves=12)
_STEPS = st.lists(st.one_of(_KEYS, st.integers(-3, 3)), min_size=1, max_size=3).map(tuple)
_SOURCES = st.one_of(_STEPS.map(lambda s: {"path": format_path(s)}),
                     st.builds(lambda s, r: {"path": format_path(s), "required": r}, _STEPS, st.booleans()),
                     st.builds(lambda ps, sep: {"join": [format_path(p) for p in ps], "sep": sep},
                               st.lists(_STEPS, min_size=1, max_size=3), st.text(max_size=2)),
                     st.text(max_size=4).map(lambda c: {"const": c}))


@settings(max_examples=300, deadline=None)
@given(row=st.one_of(st.dictionaries(_KEYS, _VALUES, max_size=5), _VALUES), instruction=_SOURCES, output=_SOURCES,
       keep=st.booleans())
def test_any_mapping_on_any_row_gives_a_record_or_a_named_reject(row, instruction, output, keep):
    spec = mapping_from_data({"to": "instruction", "fields": {"instruction": instruction, "output": output},
                              "keep_unmapped": keep})
    results = list(Mapper(spec).map(RawItem(row, Locator("f.jsonl", line=7))))
    assert len(results) == 1
    [got] = results
    if isinstance(got, Reject):
        assert got.reason and got.message and got.locator == Locator("f.jsonl", line=7)
        return
    assert isinstance(got, Mapped) and isinstance(row, dict)
    for name, source in (("instruction", instruction), ("output", output)):
        value = getattr(got.record, name)
        assert isinstance(value, str) and value.strip()
        if "path" in source:  # a path mapped to a record field is exactly the value found there
            assert value == resolve(row, parse_path(source["path"]))
        elif "const" in source:
            assert value == source["const"]


@settings(max_examples=300, deadline=None)
@given(row=_VALUES, steps=_STEPS)
def test_paths_round_trip_and_resolve_or_say_which_step(row, steps):
    text = format_path(steps)
    assert parse_path(text) == steps
    try:
        resolve(row, steps)
    except PathNotFound as error:
        assert any(str(error).startswith(format_path(steps[:n]) + ": ") for n in range(1, len(steps) + 1)), error


def test_numbers_map_as_text_when_asked_and_a_wrong_as_name_is_named(tmp_path):
    import orjson

    import sftdata

    rows = [{"q": "몇 년?", "answer": 1446}, {"q": "참?", "answer": True}, {"q": "목록?", "answer": [1, 2]}]
    source = tmp_path / "n.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    mapping = tmp_path / "m.yaml"
    mapping.write_text("to: qa\nfields:\n  question: q\n  answer: {path: answer, as_text: true}\n", encoding="utf-8")
    result = sftdata.convert([source], tmp_path / "out.jsonl", mapping=mapping)
    s = result.summary()
    assert (s["written"], s["rejected"]) == (2, 1)  # a list is still not text
    assert [orjson.loads(x)["answer"] for x in (tmp_path / "out.jsonl").read_bytes().splitlines()] == ["1446", "true"]
    plain = tmp_path / "plain.yaml"
    plain.write_text("to: qa\nfields:\n  question: q\n  answer: answer\n", encoding="utf-8")
    assert sftdata.convert([source], tmp_path / "o2.jsonl", mapping=plain).summary()["written"] == 0

    nested = tmp_path / "nested.jsonl"
    nested.write_bytes(orjson.dumps({"qa": [{"question": "왜?", "answer": "때문에"}]}) + b"\n")
    wrong_as = tmp_path / "as.yaml"
    wrong_as.write_text("to: qa\nexplode: qa\nas: pair\nfields:\n  question: qa.question\n  answer: qa.answer\n",
                        encoding="utf-8")
    result = sftdata.convert([nested], tmp_path / "o3.jsonl", mapping=wrong_as)
    assert result.summary()["by_reason"] == {"path_missing": 1}
    assert "named 'pair' by `as:`" in result.examples[0].message


# --- keep_unmapped keeps what no path reads; meta.KEY places a value under meta ---------------------------------

_CS = {"info": {"id": "CS-0042", "customer_name": "김민수", "channel": "전화"}, "agent": "이서연",
       "dialogue": [{"speaker": "고객", "text": "안녕하세요, 김민수입니다. 배송지를 바꾸고 싶어요."},
                    {"speaker": "상담사", "text": "김민수 고객님, 새 주소를 알려 주시겠어요? 민수님 번호로 문자 드릴게요."}]}
_CS_CHAT = {"path": "dialogue", "role_key": "speaker", "content_key": "text",
            "roles": {"고객": "user", "상담사": "assistant"}}


def test_keep_unmapped_keeps_the_rest_of_an_object_a_path_reads_into():
    import copy

    raw = copy.deepcopy(_CS)
    (out,) = _one({"to": "chat", "messages": _CS_CHAT, "fields": {"id": "info.id"}}, raw)
    assert out.record.id == "CS-0042"
    assert out.record.meta == {"info": {"customer_name": "김민수", "channel": "전화"}, "agent": "이서연"}
    assert raw == _CS  # the raw item is not changed
    # an object every key of which is read goes; a list a path indexes into is read whole
    spec = {"to": "qa", "fields": {"question": "q.text", "answer": "a[0].text", "id": "info.id"}}
    (out,) = _one(spec, {"q": {"text": "왜?"}, "a": [{"text": "때문에"}, {"text": "b"}], "info": {"id": 1, "x": 2},
                         "empty": {}})
    assert out.record.meta == {"info": {"x": 2}, "empty": {}}
    # exploded elements share the item: each record gets the same rest, the item is left alone
    spec = {"to": "qa", "explode": "doc.qa", "as": "pair",
            "fields": {"question": "pair.q", "answer": "pair.a", "context": "doc.text"}}
    item = {"doc": {"qa": [{"q": "1", "a": "2"}, {"q": "3", "a": "4"}], "text": "본문", "doc_id": "D1"}, "src": "s"}
    first, second = _one(spec, item)
    assert first.record.meta == second.record.meta == {"doc": {"doc_id": "D1"}, "src": "s"}
    assert set(item["doc"]) == {"qa", "text", "doc_id"}


def test_fields_placed_under_meta():
    spec = {"to": "chat", "messages": _CS_CHAT, "fields": {
        "id": "info.id", "meta.customer": "info.customer_name", "meta.route.channel": "info.channel",
        "meta.info.source": {"const": "콜센터"}, "meta.missing": {"path": "nope", "required": False}}}
    (out,) = _one(spec, _CS)
    assert out.record.meta == {"agent": "이서연", "info": {"source": "콜센터"}, "customer": "김민수",
                               "route": {"channel": "전화"}}
    (out,) = _one({**spec, "keep_unmapped": False}, _CS)
    assert out.record.meta == {"info": {"source": "콜센터"}, "customer": "김민수", "route": {"channel": "전화"}}
    (out,) = _one({"to": "qa", "fields": {"question": "q", "answer": "a", "meta.tag": "tag"}}, {"q": "x", "a": "y"})
    assert isinstance(out, Reject) and out.reason == "path_missing" and out.source_path == "tag"
    for bad in ("meta.", "meta..x", "metadata", "meta"):
        with pytest.raises(MappingError, match="or meta.KEY"):
            mapping_from_data({"to": "qa", "fields": {"question": "q", "answer": "a", bad: "x"}})


def test_a_value_placed_under_meta_is_not_a_top_level_key_on_the_columnar_path(tmp_path):
    import orjson

    import sftdata

    source = tmp_path / "rows.jsonl"
    source.write_bytes(b"".join(orjson.dumps({"i": f"질문 {n}", "o": "답", "who": "박서준"}) + b"\n" for n in range(3)))
    mapping = tmp_path / "m.yaml"
    mapping.write_text("to: instruction\nfields:\n  instruction: i\n  output: o\n  meta.customer: who\n",
                       encoding="utf-8")
    sftdata.convert([source], tmp_path / "out.jsonl", mapping=mapping)
    rows = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert [r["meta"] for r in rows] == [{"customer": "박서준"}] * 3 and all("meta.customer" not in r for r in rows)


@pytest.mark.parametrize("name_field, fields", [
    ("meta.info.customer_name", {"id": "info.id"}),  # kept by keep_unmapped beside the mapped id
    ("meta.customer", {"id": "info.id", "meta.customer": "info.customer_name"}),  # placed by the mapping
])
def test_convert_then_scrub_masks_the_customer_name_in_the_dialogue(tmp_path, name_field, fields):
    import orjson
    import yaml

    import sftdata

    rows = [_CS, {**_CS, "info": {"id": "CS-0043", "customer_name": "박서준"}, "dialogue": [
        {"speaker": "고객", "text": "박서준인데요, 환불 문의드립니다."},
        {"speaker": "상담사", "text": "네, 박서준 고객님. 환불은 3일 걸립니다."}]}]
    source = tmp_path / "cs.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    mapping = tmp_path / "cs.yaml"
    mapping.write_text(yaml.safe_dump({"to": "chat", "messages": _CS_CHAT, "fields": fields}, allow_unicode=True),
                       encoding="utf-8")
    records = tmp_path / "records.jsonl"
    assert sftdata.convert([source], records, mapping=mapping).summary()["written"] == 2
    clean = tmp_path / "clean.jsonl"
    sftdata.scrub([records], clean, name_field=[name_field])
    chats = [[m["content"] for m in orjson.loads(line)["messages"]] for line in clean.read_bytes().splitlines()]
    text = orjson.dumps(chats).decode()
    assert "김민수" not in text and "박서준" not in text and "민수님" not in text
    assert chats[0] == ["안녕하세요, [이름]입니다. 배송지를 바꾸고 싶어요.",
                        "[이름] 고객님, 새 주소를 알려 주시겠어요? [이름]님 번호로 문자 드릴게요."]
    assert chats[1][0] == "[이름]인데요, 환불 문의드립니다."


# --- the path language: [] takes each element of a list, at any depth (KorQuAD's data[].paragraphs[].qas[]) ----

from sftdata.ingest.paths import EACH, bind, expand  # noqa: E402

_SQUAD = {"version": "v", "data": [
    {"title": "A", "paragraphs": [
        {"context": "c0", "qas": [{"id": "1", "question": "q1", "answers": [{"text": "a1"}]},
                                  {"id": "2", "question": "q2", "answers": [{"text": "a2"}]}]},
        {"context": "c1", "qas": []},
        {"context": "c2", "qas": [{"id": "3", "question": "q3", "answers": [{"text": "a3"}]}]}]},
    {"title": "B", "paragraphs": [{"context": "c3", "qas": [{"id": "4", "question": "q4", "answers": [{"text": "a4"}]}]}]}]}
_NESTED = {"to": "qa", "explode": "data[].paragraphs[].qas[]", "as": "qa", "fields": {
    "question": "qa.question", "answer": "data[].paragraphs[].qas[].answers[0].text",
    "context": "data[].paragraphs[].context", "id": "data[].title"}}


def test_each_step_parses_formats_and_is_not_a_key():
    assert parse_path("data[].paragraphs[].qas[]") == ("data", EACH, "paragraphs", EACH, "qas", EACH)
    assert format_path(parse_path("a[][0][].b")) == "a[][0][].b"
    assert parse_path('a["[]"]') == ("a", "[]") and format_path(("a", "[]")) == 'a["[]"]'  # a key named []
    with pytest.raises(PathNotFound, match=r"^a\[\]: \[\] \(each element\)"):
        resolve({"a": [1]}, parse_path("a[]"))


def test_expand_reaches_every_element_in_order_and_names_where_a_branch_stops():
    found = [(format_path(w), v) for w, v in expand(_SQUAD, parse_path("data[].paragraphs[].qas[].question"))]
    assert found == [("data[0].paragraphs[0].qas[0].question", "q1"), ("data[0].paragraphs[0].qas[1].question", "q2"),
                     ("data[0].paragraphs[2].qas[0].question", "q3"), ("data[1].paragraphs[0].qas[0].question", "q4")]
    broken = {"data": [{"paragraphs": [{"qas": [{"question": "q"}]}, {"context": "no qas"}, {"qas": "x"}]}, 5]}
    out = [(format_path(w), str(v) if isinstance(v, PathNotFound) else v)
           for w, v in expand(broken, parse_path("data[].paragraphs[].qas[]"))]
    assert out == [("data[0].paragraphs[0].qas[0]", {"question": "q"}),
                   ("data[0].paragraphs[1]", "data[0].paragraphs[1].qas: missing"),
                   ("data[0].paragraphs[2].qas", "data[0].paragraphs[2].qas[]: expected a list, found str"),
                   ("data[1]", "data[1].paragraphs: expected an object, found int")]


def test_nested_explode_maps_every_question_with_its_paragraph_and_article():
    import copy

    out = _one(_NESTED, _SQUAD)
    assert [(o.record.question, o.record.answer, o.record.context, o.record.id, o.locator.element) for o in out] == [
        ("q1", "a1", "c0", "A", 0), ("q2", "a2", "c0", "A", 1), ("q3", "a3", "c2", "A", 2), ("q4", "a4", "c3", "B", 3)]
    assert all(o.record.meta == {"version": "v"} for o in out)
    korquad = Mapper(resolve_spec("korquad", None)).map(RawItem(_SQUAD, Locator("k.json")))
    assert [(o.record.question, o.record.context, o.record.id) for o in korquad] == [
        ("q1", "c0", "1"), ("q2", "c0", "2"), ("q3", "c2", "3"), ("q4", "c3", "4")]
    # a branch that stops is one reject holding the object where it stops (not the whole file); the rest is read
    broken = copy.deepcopy(_SQUAD)
    del broken["data"][0]["paragraphs"][2]["qas"]
    out = _one(_NESTED, broken)
    assert [type(o).__name__ for o in out] == ["Mapped", "Mapped", "Reject", "Mapped"]
    assert out[2].reason == "path_missing" and out[2].raw == {"context": "c2"}
    assert out[2].message == "data[0].paragraphs[2].qas: missing" and out[2].locator.element == 2
    assert [o.reason for o in _one(_NESTED, {"data": [{"paragraphs": []}]})] == ["explode_not_list"]
    # one level: a trailing [] changes nothing
    flat = {"to": "qa", "explode": "qa[]", "fields": {"question": "item.q", "answer": "item.a"}}
    assert [o.record.question for o in _one(flat, {"qa": [{"q": "1", "a": "2"}, {"q": "3", "a": "4"}]})] == ["1", "3"]


@pytest.mark.parametrize("data, text", [
    ({"to": "qa", "fields": {"question": "qas[].question", "answer": "a"}}, "must be a start of the explode path"),
    ({"to": "qa", "explode": "data[].qas", "fields": {"question": "item.q", "answer": "data[].other[].a"}},
     r"data\[\]\.other\[\]\.a: \[\] stands for the element being read"),
    ({"to": "qa", "explode": "[]", "fields": {"question": "q", "answer": "a"}}, "names no list"),
])
def test_each_outside_the_explode_path_is_a_mapping_error(data, text):
    with pytest.raises(MappingError, match=text):
        mapping_from_data(data)


@settings(max_examples=300, deadline=None)
@given(row=_VALUES, steps=st.lists(st.one_of(_KEYS, st.integers(-2, 2), st.just(EACH)), min_size=1,
                                   max_size=4).map(tuple))
def test_expand_gives_concrete_paths_that_resolve_to_what_it_found(row, steps):
    assert parse_path(format_path(steps)) == steps
    for where, value in expand(row, steps):
        if isinstance(value, PathNotFound):
            assert str(value).startswith(format_path(where)), value
            continue
        assert len(where) == len(steps) and bind(steps, where) == where  # each [] took an index, the rest as given
        assert resolve(row, where) is value
