"""Export to trl, openai, llamafactory, axolotl and hf on the real data in ../shared/data: each output is
loaded with its consumer's own loader where one is installable (datasets, TRL), converted back, and
compared with the records it came from; what a format cannot carry must be reported."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml

import sftdata
from sftdata.errors import InputError, OutputError
from sftdata.formats.llamafactory import DatasetEntry, llamafactory_importer
from sftdata.formats.openai_format import check_openai_line, openai_tool
from sftdata.schemas.records import ChatRecord, InstructionRecord, RecordKind, convert_record

REPO = Path(__file__).resolve().parents[1]
FORMATS = ("trl", "openai", "llamafactory", "axolotl", "hf")
SOURCES = {  # name: (file, how it is converted)
    "alpaca": ("alpaca_en_demo.json", "alpaca"),
    "identity": ("identity.json", "alpaca"),
    "glaive": ("glaive_toolcall_en_demo.json", "sharegpt"),
    "glaive_calls": ("glaive_toolcall_en_demo.json", "llamafactory"),  # function_call turns as tool calls
}


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def records(shared_data, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("records")
    out = {}
    for name, (file, how) in SOURCES.items():
        out[name] = folder / f"{name}.jsonl"
        data = shared_data / file
        mapping = llamafactory_importer(shared_data / "dataset_info.json", [data]) if how == "llamafactory" else None
        sftdata.convert([data], out[name], preset=None if mapping else how, mapping=mapping)
    return out


def _target(tmp_path: Path, fmt: str) -> Path:
    return tmp_path / (f"out_{fmt}.jsonl" if fmt in ("trl", "openai") else f"out_{fmt}")


def _convert_back(fmt: str, out: Path, result, tmp_path: Path) -> Path:
    back = tmp_path / "back.jsonl"
    if fmt in ("trl", "openai"):
        sftdata.convert([out], back, preset=fmt)
    elif fmt == "llamafactory":
        data = out / result.files[0]
        sftdata.convert([data], back, mapping=llamafactory_importer(out / "dataset_info.json", [data]))
    elif fmt == "axolotl":
        sftdata.convert([out / "train.jsonl"], back, preset="alpaca" if result.meta["type"] == "alpaca" else "trl")
    else:
        sftdata.convert([out / "data"], back, preset="hf")
    return back


def _expected(fmt: str, row: dict) -> dict:
    """What a record becomes after export and import: itself, less what the format reports it cannot carry."""
    if fmt == "trl" and "messages" not in row and row.get("input"):
        return {**row, "instruction": f"{row['instruction']}\n\n{row['input']}", "input": ""}
    if fmt == "openai":
        record = (ChatRecord if "messages" in row else InstructionRecord).model_validate(row)
        chat = convert_record(record, RecordKind.chat)
        out = chat.model_dump(mode="json", exclude_none=True, exclude={"meta", "id"})
        if "tools" in out:
            out["tools"] = [openai_tool(t) for t in out["tools"]]
        for message in out["messages"]:  # OpenAI's format holds a call's arguments as JSON text, read back as text
            for call in message.get("tool_calls") or []:
                if not isinstance(call["function"]["arguments"], str):
                    call["function"]["arguments"] = orjson.dumps(call["function"]["arguments"]).decode()
        return out
    return row


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("source", list(SOURCES))
def test_round_trip(records, tmp_path, source, fmt):
    rows = _lines(records[source])
    out = _target(tmp_path, fmt)
    result = sftdata.export(records[source], out, fmt)
    summary = result.summary()
    assert result.counts.balanced() and summary["read"] == len(rows)
    rejected = {r["line"] for r in _lines(result.rejects)}
    assert not rejected  # --preset sharegpt keeps function_call turns as tool calls, so every tool result answers one
    kept = [row for number, row in enumerate(rows, 1) if number not in rejected]
    back = _lines(_convert_back(fmt, out, result, tmp_path))
    assert back == [_expected(fmt, row) for row in kept]
    # what could not be carried is reported, with a count
    joined = sum(1 for row in kept if row.get("input"))
    if fmt in ("trl", "openai") and joined:
        assert result.dropped == {"input": joined}
    else:
        assert result.dropped == {}
    if fmt == "openai" and "messages" not in rows[0]:
        assert result.converted == {"instruction→chat": len(kept)}
    sidecar = orjson.loads(Path(str(out).removesuffix(".jsonl") + ".meta.json").read_bytes())
    assert sidecar["command"] == "export" and sidecar["to"] == fmt and sidecar["parents"]
    assert sidecar["dropped_fields"] == result.dropped and sidecar["counts"]["written"] == len(kept)


def test_meta_and_ids_are_reported_where_a_format_cannot_carry_them(shared_data, tmp_path):
    records = tmp_path / "seed.jsonl"
    sftdata.convert([shared_data / "seed_tasks.jsonl"], records, mapping=sftdata.schemas.mapping.MappingSpec.model_validate(
        {"to": "instruction", "explode": "instances", "as": "instance",
         "fields": {"instruction": "instruction", "input": "instance.input", "output": "instance.output", "id": "id"}}))
    rows = _lines(records)
    assert len(rows) == 175 and all(r["meta"] and r["id"] for r in rows)
    with_input = sum(1 for r in rows if r["input"])
    trl = sftdata.export(records, tmp_path / "t.jsonl", "trl")
    assert trl.dropped == {"meta": 175, "input": with_input}
    assert all(isinstance(r["id"], str) for r in _lines(tmp_path / "t.jsonl"))  # ids travel as a column
    openai = sftdata.export(records, tmp_path / "o.jsonl", "openai")
    assert openai.dropped == {"id": 175, "meta": 175, "input": with_input}
    lf = sftdata.export(records, tmp_path / "lf", "llamafactory")
    assert lf.dropped == {"meta": 175}
    hf = sftdata.export(records, tmp_path / "hf", "hf")
    assert hf.dropped == {} and hf.converted == {}
    back = tmp_path / "back.jsonl"
    sftdata.convert([tmp_path / "hf" / "data"], back, preset="hf")
    assert _lines(back) == rows  # the hf folder carries everything


# ---- the consumers' own loaders --------------------------------------------------------------------

@pytest.mark.slow  # TRL's SFTTrainer prepares both exports: ~12 s CPU
def test_trl_loads_the_export_as_is(records, tmp_path, smollm2_tokenizer_dir):
    from datasets import load_dataset
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    tokenizer = AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir))
    for source, columns in (("alpaca", ["prompt", "completion"]), ("glaive_calls", ["messages", "tools"])):
        out = tmp_path / f"{source}.jsonl"
        sftdata.export(records[source], out, "trl")
        data = load_dataset("json", data_files=str(out), split="train")
        assert data.column_names == columns and all(is_conversational(row) for row in data.select(range(20)))
        sample = {k: v for k, v in data[3].items() if k != "tools"}
        rendered = maybe_apply_chat_template(sample, tokenizer, tools=json.loads(data[3]["tools"]) if "tools" in data[3] else None)
        assert set(rendered) == ({"prompt", "completion"} if "prompt" in columns else {"text"})
        model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                                             num_attention_heads=2, num_key_value_heads=2, intermediate_size=32))
        trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=data,
                             args=SFTConfig(output_dir=str(tmp_path / "sft"), report_to=[], use_cpu=True,
                                            max_length=512, per_device_train_batch_size=2))
        prepared = trainer.train_dataset
        assert prepared.num_rows == data.num_rows and "input_ids" in prepared.column_names


def test_every_openai_line_passes_the_format_checks(records, tmp_path):
    for source in SOURCES:
        out = tmp_path / f"{source}.jsonl"
        sftdata.export(records[source], out, "openai")
        assert all(check_openai_line(line) == [] for line in _lines(out))


def test_llamafactory_folder_loads_and_follows_its_rules(records, tmp_path):
    from datasets import load_dataset

    for source, formatting in (("alpaca", "alpaca"), ("glaive_calls", "sharegpt")):
        out = tmp_path / source
        sftdata.export(records[source], out, "llamafactory", name="mine")
        info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
        entry = DatasetEntry.parse("mine", info["mine"], "dataset_info.json")
        assert entry.formatting == formatting and entry.file_name == "mine.json"
        data = load_dataset("json", data_files=str(out / "mine.json"), split="train")  # as LLaMA-Factory loads it
        assert set(c for c in entry.columns.values() if c) <= set(data.column_names)
        if formatting == "sharegpt":  # LLaMA-Factory's converter: odd turns user/observation, even assistant/function
            odd, even = (entry.tags["user_tag"], entry.tags["observation_tag"]), (entry.tags["assistant_tag"], entry.tags["function_tag"])
            for turns in data["conversations"]:
                assert len(turns) % 2 == 0
                assert all(t["from"] in (odd, even)[i % 2] for i, t in enumerate(turns))


def test_axolotl_folder_and_its_config_snippet(records, tmp_path):
    from datasets import load_dataset

    for source, kind in (("alpaca", "alpaca"), ("glaive_calls", "chat_template")):
        out = tmp_path / source
        sftdata.export(records[source], out, "axolotl")
        config = yaml.safe_load((out / "axolotl.yaml").read_text(encoding="utf-8"))
        (entry,) = config["datasets"]
        assert entry["type"] == kind and entry["ds_type"] == "json" and Path(entry["path"]) == (out / "train.jsonl").resolve()
        data = load_dataset("json", data_files=entry["path"], split="train")
        if kind == "chat_template":
            assert entry["field_messages"] == "messages" and entry["roles"]["assistant"] == ["assistant"]
            assert isinstance(data[0]["tools"], list)  # axolotl wants tool schemas as a list
        else:
            assert data.column_names == ["instruction", "input", "output"]


def test_hf_folder_opens_with_load_dataset_and_carries_a_card(records, tmp_path):
    from datasets import load_dataset

    out = tmp_path / "hf"
    evals = tmp_path / "eval.jsonl"
    evals.write_bytes(b"".join(records["alpaca"].read_bytes().splitlines(keepends=True)[:100]))
    from sftdata.formats.exporting import export  # rows_per_shard: the library's knob, not a CLI option

    result = export(records["alpaca"], out, "hf", eval_file=evals, license="apache-2.0", rows_per_shard=400)
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "train-00000-of-00003.parquet", "train-00001-of-00003.parquet", "train-00002-of-00003.parquet",
        "validation-00000-of-00001.parquet"]
    data = load_dataset(str(out))
    assert {s: d.num_rows for s, d in data.items()} == {"train": 999, "validation": 100}
    card = (out / "README.md").read_text(encoding="utf-8")
    matter = yaml.safe_load(card.split("---\n")[1])
    assert matter["language"] == ["en"] and matter["license"] == "apache-2.0"
    assert matter["task_categories"] == ["text-generation"] and matter["size_categories"] == ["1K<n<10K"]
    assert [s["num_examples"] for s in matter["dataset_info"]["splits"]] == [999, 100]
    assert [f["name"] for f in matter["dataset_info"]["features"]] == ["instruction", "input", "output"]
    assert "**convert**" in card and "**export**" in card and "alpaca_en_demo.json" in card
    assert result.summary()["written"] == 1099

    chat = tmp_path / "hf_chat"
    sftdata.export(records["glaive_calls"], chat, "hf")
    rows = load_dataset(str(chat), split="train")
    call = rows[0]["messages"][3]["tool_calls"][0]
    assert call["function"]["name"] == "search_recipes" and json.loads(call["function"]["arguments"])


def test_a_split_folder_exports_its_splits(records, tmp_path):
    split = tmp_path / "split"
    split.mkdir()
    lines = records["identity"].read_bytes().splitlines(keepends=True)
    (split / "train.jsonl").write_bytes(b"".join(lines[:80]))
    (split / "eval.jsonl").write_bytes(b"".join(lines[80:]))
    lf = sftdata.export(split, tmp_path / "lf", "llamafactory")
    assert sorted(lf.files) == ["lf_train.json", "lf_validation.json"]
    ax = sftdata.export(split, tmp_path / "ax", "axolotl")
    config = yaml.safe_load((tmp_path / "ax" / "axolotl.yaml").read_text(encoding="utf-8"))
    assert config["test_datasets"][0]["split"] == "train" and config["datasets"][0]["path"].endswith("train.jsonl")
    assert ax.summary()["written"] == 91
    with pytest.raises(InputError, match="one file"):
        sftdata.export(split, tmp_path / "x.jsonl", "openai")


def test_folders_are_replaced_atomically_and_never_clobbered(records, tmp_path):
    out = tmp_path / "lf"
    sftdata.export(records["identity"], out, "llamafactory")
    sftdata.export(records["identity"], out, "llamafactory")  # its own earlier export: replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(OutputError, match="not empty"):
        sftdata.export(records["identity"], mine, "hf")
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep me"
    sftdata.export(records["identity"], mine, "hf", force=True)
    assert not (mine / "notes.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_cli_export(tmp_path):
    source = tmp_path / "calls.jsonl"  # the second row's tool result answers no tool call: OpenAI cannot take it
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
            {"messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "Checking."},
                          {"role": "tool", "content": "21C"}, {"role": "assistant", "content": "21C."}]}]
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    out = tmp_path / "o.jsonl"
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), "export", str(source), "--to", "openai",
                             "-o", str(out), "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["written"], summary["rejected"], summary["to"]) == (1, 1, "openai")
    assert "tool_result_without_call" in result.stderr
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), "export", str(source), "--to", "openai",
                             "-o", str(out), "--strict"], capture_output=True, text=True)
    assert result.returncode == 1


def test_mixed_kinds_become_chats_and_say_so(tmp_path):
    records = tmp_path / "mixed.jsonl"
    rows = [{"instruction": "Add", "input": "1+1", "output": "2", "id": 1},
            {"question": "Capital of Korea?", "answer": "Seoul", "context": "Korea is in Asia.", "id": 2},
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], "id": 3}]
    records.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    trl = sftdata.export(records, tmp_path / "t.jsonl", "trl")
    assert trl.converted == {"instruction→chat": 1, "qa→chat": 1} and trl.dropped == {"input": 1, "context": 1}
    assert [list(r) for r in _lines(tmp_path / "t.jsonl")] == [["messages", "id"]] * 3
    hf = sftdata.export(records, tmp_path / "hf", "hf")
    assert hf.converted == {"instruction→chat": 1, "qa→chat": 1} and hf.dropped == {}
    back = tmp_path / "back.jsonl"
    sftdata.convert([tmp_path / "hf" / "data"], back, preset="hf", to=RecordKind.instruction)
    assert [r["instruction"] for r in _lines(back)] == ["Add", "Capital of Korea?", "Hi"]  # input split kept in meta
    assert _lines(back)[0]["input"] == "1+1"


def test_rendered_text_is_not_records(shared_data, tmp_path):
    rendered = tmp_path / "sft.jsonl"
    sftdata.convert([shared_data / "identity.json"], rendered, preset="alpaca", template="alpaca", eos="</s>")
    with pytest.raises(InputError, match="rendered SFT text"):
        sftdata.export(rendered, tmp_path / "o.jsonl", "trl")


def test_the_folder_sftdata_split_writes(records, tmp_path):
    from sftdata.curate.split import split

    split([records["alpaca"]], tmp_path / "split", eval_ratio=0.1, seed=1)
    sizes = {name: len(_lines(tmp_path / "split" / f"{name}.jsonl")) for name in ("train", "eval")}
    result = sftdata.export(tmp_path / "split", tmp_path / "hf", "hf")
    assert result.summary()["written"] == 999 == sum(sizes.values())  # rejects.jsonl is not a split
    matter = yaml.safe_load((tmp_path / "hf" / "README.md").read_text(encoding="utf-8").split("---\n")[1])
    assert {s["name"]: s["num_examples"] for s in matter["dataset_info"]["splits"]} == {
        "train": sizes["train"], "validation": sizes["eval"]}
    card = sftdata.make_card(tmp_path / "split")
    assert card.splits == {"train": sizes["train"], "validation": sizes["eval"]}
    assert "**split**" in card.output.read_text(encoding="utf-8")


def test_trl_assistant_only_loss_trains_exactly_what_pretokenize_masks(records, tmp_path, smollm2_tokenizer_dir):
    """`export --to trl --template chatml` writes a chat template with {% generation %} blocks; TRL's
    SFTTrainer with assistant_only_loss=True then masks, token for token, what sftdata's pretokenize does."""
    from datasets import load_dataset
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    out = tmp_path / "calls.jsonl"
    result = sftdata.export(records["glaive_calls"], out, "trl", template="chatml")
    template = tmp_path / "calls.chat_template.jinja"
    assert result.meta["chat_template"]["file"] == template.name and "{%- generation %}" in template.read_text()
    qwen3 = REPO.parent / "shared" / "data" / "chat_templates" / "qwen3.jinja"  # as Qwen3 ships it: no blocks
    with pytest.raises(sftdata.SftDataError, match="no {% generation %} blocks"):
        sftdata.export(records["glaive_calls"], tmp_path / "x.jsonl", "trl", template=str(qwen3),
                       tokenizer=str(smollm2_tokenizer_dir))

    tokenizer = AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir))
    tokenizer.chat_template = template.read_text(encoding="utf-8")
    data = load_dataset("json", data_files=str(out), split="train")
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, intermediate_size=32))
    trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=data,
                         args=SFTConfig(output_dir=str(tmp_path / "sft"), report_to=[], use_cpu=True, max_length=None,
                                        assistant_only_loss=True, per_device_train_batch_size=2))
    theirs = trainer.train_dataset
    mine = tmp_path / "tok.jsonl"
    sftdata.pretokenize([records["glaive_calls"]], mine, tokenizer=str(smollm2_tokenizer_dir), template="chatml",
                        max_seq_length=65536)
    ours = _lines(mine)
    assert theirs.num_rows == len(ours) == result.summary()["written"]
    for row, ids, labels in zip(ours, theirs["input_ids"], theirs["labels"]):  # TRL folds the mask into labels
        assert row["input_ids"] == list(ids) and row["assistant_masks"] == [int(label != -100) for label in labels]
