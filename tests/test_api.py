"""The notebook API: one function per command, with the command's options as keyword arguments, and the
notebook flow of docs/notebook.md run end to end on real data and a real tokenizer."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import sftdata
from sftdata.api import COMMANDS as DECLARED

REPO = Path(__file__).resolve().parents[1]
CLI_ONLY = {"as_json", "strict"}  # output switches of the CLI; the library returns values and raises


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_a_declared_command_is_its_notebook_function_and_its_cli(name):
    """The CLI's options are the function's parameters (plus --json/--strict), built from the one declaration."""
    import typer

    from sftdata.cli import build_app

    declared = DECLARED[name]
    assert getattr(sftdata, name.replace("-", "_")) is declared.function
    click = typer.main.get_command(build_app([name])).commands[name]
    options = {p.name for p in click.params} - CLI_ONLY
    expected = {o.name for o in declared.options}
    if declared.overrides is not None:
        expected |= set(declared.overrides.model_fields)
    assert options == expected
    for option in declared.options:
        param = next(p for p in click.params if p.name == option.name)
        if option.flag.startswith("-"):
            assert option.flag in param.opts, (option.name, param.opts)


def test_every_cli_command_is_a_declared_one():
    from sftdata.cli import command_names

    assert sorted(command_names()) == sorted(DECLARED) and len(DECLARED) >= 24


def test_importing_sftdata_and_its_curation_functions_stays_light():
    code = ("import sys, sftdata; sftdata.dedup; sftdata.stats; sftdata.export; sftdata.train; sftdata.review; "
            "sftdata.review_apply; print(sorted(m for m in ('torch', 'transformers', 'datasets', 'openai', 'trl', 'peft', "
            "'starlette', 'uvicorn') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_the_docs_notebook_flow_runs(tmp_path, smollm2_tokenizer_dir, monkeypatch):
    """docs/notebook.md's flow, line for line, with its paths pointed at this test's folders."""
    page = (REPO / "docs" / "notebook.md").read_text(encoding="utf-8")
    block = page.split("<!-- notebook-flow -->", 2)[1].split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(REPO)
    block = block.replace('"out/', f'"{tmp_path}/').replace('"./tokenizer"', f'"{smollm2_tokenizer_dir}"')
    scope: dict = {}
    exec(compile(block, "docs/notebook.md (notebook flow)", "exec"), scope)
    converted, kept, tokenized = scope["converted"], scope["kept"], scope["tokenized"]
    c = converted.counts.summary()
    assert c["read"] == c["written"] + c["rejected"] and c["written"] > 0
    k = kept.summary()
    assert k["read"] == k["written"] + k["rejected"] + k.get("filtered", 0) + k.get("deduplicated", 0)
    assert scope["report"].summary()["stats"]["samples"] == k["written"] - scope["parts"].summary()["eval"]
    rows = [orjson.loads(line) for line in Path(tokenized.output).read_text(encoding="utf-8").splitlines()]
    assert rows and all(len(r["input_ids"]) == len(r["completion_mask"]) and any(r["completion_mask"]) for r in rows)
    assert scope["findings"].summary()["errors"] == 0


GOOD_ROW = b'{"instruction": "hi", "output": "there"}\n'


def test_one_path_is_taken_as_a_list_of_one(tmp_path, monkeypatch):
    """`sftdata.convert("raw/legacy.jsonl", ...)`: one path (str or PathLike) where a command takes files is that
    file, not its characters (each one a missing file), for every command (sftdata.api.registry)."""
    (tmp_path / "legacy.jsonl").write_bytes(GOOD_ROW * 2)
    monkeypatch.chdir(tmp_path)
    assert sftdata.convert("legacy.jsonl", "out.jsonl", preset="alpaca").counts.summary()["written"] == 2
    assert sftdata.validate(tmp_path / "out.jsonl").counts.summary()["written"] == 2
    kept = sftdata.dedup(str(tmp_path / "out.jsonl"), tmp_path / "dedup.jsonl", against=tmp_path / "legacy.jsonl")
    assert kept.summary()["read"] == 2 and kept.summary()["deduplicated"] == 2  # both rows are in `against`


def test_a_value_outside_a_choice_is_an_option_error_naming_the_choices(tmp_path):
    """`sftdata.export(..., "alpaca")` (a format that does not exist): an OptionError, as the CLI refuses it."""
    from sftdata.errors import OptionError, SftDataError

    (tmp_path / "r.jsonl").write_bytes(GOOD_ROW)
    with pytest.raises(OptionError) as raised:
        sftdata.export(tmp_path / "r.jsonl", tmp_path / "out.jsonl", "alpaca")
    assert isinstance(raised.value, SftDataError) and raised.value.option == "to"
    assert str(raised.value) == "to='alpaca': is not one of trl, openai, llamafactory, axolotl, hf"
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_every_choice_option_refuses_an_unknown_value_before_running(name):
    """Each Literal or Enum option of each command: a wrong string is an OptionError (never a ValueError or
    KeyError from deep inside), raised before the command reads anything (the placeholders name no file)."""
    from sftdata.api.registry import choices_of
    from sftdata.errors import OptionError

    declared = DECLARED[name]
    required = {o.name: "placeholder" for o in declared.options if o.required}
    for option in declared.options:
        choices = choices_of(option.annotation)
        if choices is None:
            continue
        with pytest.raises(OptionError) as raised:
            declared.function(**{**required, option.name: "no-such-choice"})
        assert raised.value.option == option.name and all(str(c) in str(raised.value) for c in choices)


def test_an_empty_input_says_nothing_written_in_the_result_as_the_cli_does(tmp_path):
    """The library's summary carries `nothing_written` (sftdata.outcome); the CLI prints the same line, exits 4."""
    from typer.testing import CliRunner

    from sftdata.cli import app

    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "good.jsonl").write_bytes(GOOD_ROW)
    empty = sftdata.convert([tmp_path / "empty.jsonl"], tmp_path / "out.jsonl").summary()
    assert empty["nothing_written"].startswith("nothing was read from")
    done = CliRunner().invoke(app, ["convert", str(tmp_path / "empty.jsonl"), "-o", str(tmp_path / "o.jsonl"),
                                    "--json"])
    assert done.exit_code == 4
    assert orjson.loads(done.stdout.splitlines()[0])["nothing_written"] == empty["nothing_written"]
    assert "nothing_written" in sftdata.validate([tmp_path / "empty.jsonl"]).summary()
    assert "nothing_written" not in sftdata.convert([tmp_path / "good.jsonl"], tmp_path / "g.jsonl").summary()
    assert "nothing_written" not in sftdata.validate([tmp_path / "good.jsonl"]).summary()  # validate writes no rows
