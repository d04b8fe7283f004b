"""A command is one declaration (sftdata.api.registry): the function with its options described in its
annotations. The CLI built from it parses what the function declares and names an option's error by its flag,
while the notebook names it `option=`. Shown with a toy command declared here and removed afterwards."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import pytest
from typer.testing import CliRunner

from sftdata.api.registry import COMMANDS, Arg, Opt, command
from sftdata.errors import OptionError, SftDataError, option


@pytest.fixture
def toy():
    calls = []

    @command(group="core")
    def toy_count(
        inputs: Annotated[Sequence[str], Arg("Files.")],
        *,
        mode: Annotated[Literal["rows", "tokens"], Opt(help="What to count.")] = "rows",
        keep: Annotated[Sequence[str], Opt("--keep", "-k", help="Repeatable.")] = (),
        limit: Annotated[float, Opt("--max", help="Upper bound in (0, 1].")] = 0.5,
        label: Annotated[str | None, Opt(help="A name.")] = None,
    ) -> dict:
        """Count things (a toy)."""
        if not 0 < limit <= 1:
            raise OptionError("must be in (0, 1]", option="limit", value=limit)
        if label is not None and mode == "tokens":
            raise SftDataError(f"{option('label')} names rows", hint=f"pass {option('mode', 'rows')}")
        calls.append(dict(inputs=list(inputs), mode=mode, keep=keep, limit=limit, label=label))
        return {"count": len(inputs)}

    yield calls
    del COMMANDS["toy-count"]  # not monkeypatch.delitem: its undo would put the toy back after the test


def _app(name):
    import sftdata.cli.core as core
    from sftdata.cli import build_app
    from sftdata.cli.common import View

    views = dict(core.VIEWS, **{name: View(lambda result, shown: print(result["count"]), label=None, strict=False)})
    core.VIEWS, old = views, core.VIEWS
    try:
        return build_app([name])
    finally:
        core.VIEWS = old


def test_a_declared_command_runs_from_the_cli_with_the_declared_types(toy):
    done = CliRunner().invoke(_app("toy-count"), ["toy-count", "a", "b", "--mode", "tokens", "-k", "x", "--keep", "y"])
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == "2"
    assert toy == [{"inputs": ["a", "b"], "mode": "tokens", "keep": ["x", "y"], "limit": 0.5, "label": None}]
    assert isinstance(toy[0]["mode"], str) and type(toy[0]["mode"]) is str  # the Literal's value, not an Enum


def test_omitted_options_take_the_functions_defaults(toy):
    assert CliRunner().invoke(_app("toy-count"), ["toy-count", "a"]).exit_code == 0
    assert toy == [{"inputs": ["a"], "mode": "rows", "keep": (), "limit": 0.5, "label": None}]


def test_a_choice_outside_the_literal_is_refused_by_the_cli(toy):
    done = CliRunner().invoke(_app("toy-count"), ["toy-count", "a", "--mode", "bytes"])
    assert done.exit_code == 2 and toy == []


def test_an_option_error_names_the_flag_in_the_cli_and_the_keyword_in_a_notebook(toy):
    done = CliRunner().invoke(_app("toy-count"), ["toy-count", "a", "--max", "3"])
    assert done.exit_code == 2
    assert "--max 3.0: must be in (0, 1]" in done.output and "limit=" not in done.output
    with pytest.raises(OptionError) as raised:
        COMMANDS["toy-count"].function(["a"], limit=3)
    assert str(raised.value) == "limit=3: must be in (0, 1]"


def test_an_error_names_the_other_options_it_mentions_as_its_caller_knows_them(toy):
    """`option(...)` in any error's message or hint: the CLI writes the flag (and a value after it), a notebook
    the keyword argument."""
    done = CliRunner().invoke(_app("toy-count"), ["toy-count", "a", "--mode", "tokens", "--label", "x"])
    assert done.exit_code == 2
    assert "--label names rows. pass --mode rows" in done.output and "mode=" not in done.output, done.output
    with pytest.raises(SftDataError) as raised:
        COMMANDS["toy-count"].function(["a"], mode="tokens", label="x")
    assert str(raised.value) == "label= names rows. pass mode=rows"


def test_library_errors_name_real_options_both_ways(tmp_path):
    """A real command's error that names options: flags on the command line, keywords in a notebook."""
    import sftdata
    from sftdata.cli import app

    data = tmp_path / "a.jsonl"
    data.write_text('{"instruction": "q", "output": "a"}\n', encoding="utf-8")
    done = CliRunner().invoke(app, ["convert", str(data), "-o", str(tmp_path / "o.jsonl"), "--eos", "</s>"])
    assert done.exit_code == 2
    assert "--tokenizer/--eos only matter with --template or --style" in done.output, done.output
    with pytest.raises(SftDataError) as raised:
        sftdata.convert([data], tmp_path / "o.jsonl", eos="</s>")
    assert "tokenizer=/eos= only matter with template= or style=" in str(raised.value)
    assert "\x02" not in str(raised.value) and "--" not in str(raised.value)


def test_a_notebook_call_is_checked_as_the_cli_parses_it(toy):
    """One string for a list option is a list of one; a value outside a Literal is an OptionError naming the
    choices (the CLI's parser refuses both forms the same way); the function keeps its signature and docs."""
    import inspect

    function = COMMANDS["toy-count"].function
    assert function("a", keep="x") == {"count": 1}
    assert toy == [{"inputs": ["a"], "mode": "rows", "keep": ["x"], "limit": 0.5, "label": None}]
    with pytest.raises(OptionError) as raised:
        function(["a"], mode="bytes")
    assert str(raised.value) == "mode='bytes': is not one of rows, tokens" and len(toy) == 1
    assert list(inspect.signature(function).parameters) == ["inputs", "mode", "keep", "limit", "label"]
    assert function.__name__ == "toy_count" and function.__doc__ == "Count things (a toy)."
