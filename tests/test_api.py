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
    code = ("import sys, sftdata; sftdata.dedup; sftdata.stats; sftdata.export; sftdata.train; "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'openai', 'trl', 'peft') if m in sys.modules))")
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
