"""Paths and code that inputs could smuggle in: what a mapping, a sidecar, a dataset name or a
tokenizer folder says never makes sftdata read or write outside what the command line names, nor
run code. (SSTI in templates: test_templating.py; the API key: test_synth_server.py; pickle-only
model folders: test_train_config.py; dataset_info `file_name`: test_interop.py.)"""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

import sftdata
from sftdata.errors import MappingError, OutputError
from sftdata.formats.card import make_card
from sftdata.ingest.mapping import load_mapping
from sftdata.writers import meta_path

GOOD = b'{"instruction": "hi", "output": "there", "doc": {"id": "d1"}}\n'


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system [\"touch {marker}\"]",
                                 "!!python/name:os.system", "!!python/object/new:pathlib.Path [\"{marker}\"]"])
def test_a_mapping_file_cannot_run_code(tmp_path, tag):
    marker = tmp_path / "pwned"
    mapping = tmp_path / "m.yaml"
    mapping.write_text("to: instruction\nfields:\n  instruction: " + tag.format(marker=marker) + "\n  output: output\n",
                       encoding="utf-8")
    with pytest.raises(MappingError, match="not valid YAML") as caught:
        load_mapping(mapping)
    assert str(caught.value).startswith(str(mapping))
    assert not marker.exists()


@pytest.mark.parametrize("path", ["/etc/hostname", "../../secret.json", "~/.ssh/id_rsa", "..", "file:///etc/passwd"])
def test_mapping_paths_are_keys_in_the_row_never_files(tmp_path, path):
    """A mapping path is a dotted path into each row: absolute or '..' names are at most missing keys."""
    secret = tmp_path / "secret.json"
    secret.write_text('{"instruction": "SECRET"}', encoding="utf-8")
    (tmp_path / "in").mkdir()
    data = tmp_path / "in" / "a.jsonl"
    data.write_bytes(GOOD)
    mapping = tmp_path / "in" / "m.json"
    mapping.write_text(json.dumps({"to": "instruction", "fields": {"instruction": path, "output": "output"}}))
    out = tmp_path / "out" / "o.jsonl"
    try:
        result = sftdata.convert([data], out, mapping=mapping)
    except MappingError as error:  # not even a valid path: refused as a whole, naming the mapping file
        assert str(error).startswith(str(mapping)) and "path" in str(error)
        assert not out.exists()
        return
    assert result.summary()["by_reason"] == {"path_missing": 1}
    assert [r["source_path"] for r in _lines(meta_path(out).with_name("o.rejects.jsonl"))] == [path]
    written = b"".join(p.read_bytes() for p in out.parent.iterdir())
    assert b"SECRET" not in written
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        ["secret.json", "a.jsonl", "m.json", "o.jsonl", "o.rejects.jsonl", "o.meta.json"])


def test_a_sidecar_names_only_sidecars_for_the_card(tmp_path):
    """`parents` in a .meta.json is followed for the card's provenance, but only to other sidecars."""
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "notes.json").write_text(json.dumps({"command": "LEAKED", "api_key": "sk-LEAKED"}))
    data = tmp_path / "data" / "train.jsonl"
    data.parent.mkdir()
    sftdata.convert([_write(tmp_path / "raw.jsonl", GOOD)], data)
    meta = orjson.loads(meta_path(data).read_bytes())
    meta["parents"] = [str(outside / "notes.json"), "../private/notes.json", "/etc/hostname"]
    meta_path(data).write_bytes(orjson.dumps(meta))
    card = make_card(data).output
    assert card.parent == data.parent
    text = card.read_text(encoding="utf-8")
    assert "LEAKED" not in text and "**convert**" in text


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", ["../escape", "/tmp/abs", "a/b", "..\\x", ""])
def test_an_export_name_cannot_leave_the_output_folder(tmp_path, name):
    records = tmp_path / "r.jsonl"
    sftdata.convert([_write(tmp_path / "raw.jsonl", GOOD)], records)
    out = tmp_path / "deep" / "lf"
    if name:
        with pytest.raises(OutputError, match="may hold only"):
            sftdata.export(records, out, "llamafactory", name=name)
        assert not (tmp_path / "deep").exists() or not any((tmp_path / "deep").iterdir())
    for safe in ("..", "."):  # dots alone are file name parts, not directories: they stay inside
        sftdata.export(records, out, "llamafactory", name=safe, force=True)
        inside = {p.resolve() for p in out.rglob("*")}
        assert all(out.resolve() in p.parents for p in inside)
        assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == sorted(["lf", "lf.meta.json",
                                                                                  "lf.rejects.jsonl"])


def test_a_tokenizer_folder_cannot_run_its_own_code(smollm2_tokenizer_dir, tmp_path):
    """trust_remote_code is off: a tokenizer_config.json auto_map pointing at shipped Python is not imported."""
    import shutil

    from sftdata.tokenize.load import load_tokenizer

    folder = tmp_path / "tok"
    shutil.copytree(smollm2_tokenizer_dir, folder)
    marker = tmp_path / "pwned"
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                                    "from transformers import PreTrainedTokenizerFast as EvilTokenizer\n")
    try:
        tokenizer = load_tokenizer(folder)
    except sftdata.SftDataError as error:  # refusing is as good as ignoring, as long as nothing ran
        assert "trust" in str(error).lower() or "remote" in str(error).lower(), error
    else:
        assert tokenizer.eos_token == "<|im_end|>"
    assert not marker.exists()
