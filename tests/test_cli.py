"""The `sftdata` command as a user runs it (a subprocess): exit codes 0/1/2, `--json` as exactly one
line on stdout with human output on stderr only, `--strict`, one clear error line and never a
traceback for bad input, `schema`, `--help` examples, and no heavy imports for a plain convert."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

GOOD = b'{"instruction": "hi", "output": "there"}\n'
BAD = b'{"instruction": "hi"\n'
SUMMARY_KEYS = {"read", "written", "rejected", "filtered", "deduplicated", "by_reason"}
HEAVY = {"torch", "transformers", "datasets", "peft", "trl", "bitsandbytes", "openai", "starlette", "uvicorn"}


def sftdata(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100"}
    done = subprocess.run([sys.executable, "-m", "sftdata.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=300)
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr
    assert "internal error" not in done.stderr, done.stderr
    return done


def summary_line(done: subprocess.CompletedProcess[str]) -> dict:
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout  # exactly one line on stdout, nothing else
    summary = orjson.loads(lines[0])
    assert SUMMARY_KEYS <= set(summary)
    return summary


def test_convert_json_summary_is_one_stdout_line_and_rejects_exit_0_without_strict(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(GOOD + BAD + GOOD)
    done = sftdata("convert", "a.jsonl", "-o", "out.jsonl", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = summary_line(done)
    assert (summary["read"], summary["written"], summary["rejected"]) == (3, 2, 1)
    assert summary["by_reason"] == {"invalid_json": 1}
    assert "read 3 = written 2 + rejected 1" in done.stderr  # the human summary goes to stderr
    assert "a.jsonl:2" in done.stderr
    assert len((tmp_path / "out.jsonl").read_bytes().splitlines()) == 2
    [reject] = [orjson.loads(x) for x in (tmp_path / "out.rejects.jsonl").read_bytes().splitlines()]
    assert (reject["file"], reject["line"], reject["raw"]) == ("a.jsonl", 2, '{"instruction": "hi"')


def test_strict_turns_rejects_into_exit_1(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(GOOD + BAD)
    (tmp_path / "clean.jsonl").write_bytes(GOOD)
    done = sftdata("convert", "a.jsonl", "-o", "out.jsonl", "--strict", "--json", cwd=tmp_path)
    assert done.returncode == 1 and summary_line(done)["rejected"] == 1
    assert (tmp_path / "out.jsonl").is_file()  # the good rows are still written
    assert sftdata("convert", "clean.jsonl", "-o", "c.jsonl", "--strict", cwd=tmp_path).returncode == 0


def test_without_json_stdout_stays_empty(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(GOOD)
    done = sftdata("convert", "a.jsonl", "-o", "out.jsonl", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == "" and "written 1" in done.stderr


BROKEN_INPUTS = {
    "missing": (None, "no such file or directory"),
    "number.json": (b"42", "top level is a number"),
    "empty.json": (b"", "file is empty"),
    "deep.json": (b"[" * 10_000 + b"]" * 10_000, "invalid JSON"),
    "latin1.json": (b'[{"instruction": "caf\xe9"}]', "cannot decode byte 0xe9 at byte offset 21"),
    "broken.json": (b'[{"instruction": "a",\n', "invalid JSON"),
    "utf16.jsonl": ('{"a": 1}\n'.encode("utf-16"), "utf-16 cannot be read line by line"),
    "table.parquet": (b"PAR1 but not really", "cannot read Parquet"),
    "dup.csv": (b"a,a\n1,2\n", "appears twice"),
    "notes.txt": (b"hello", "unknown file type"),
}


@pytest.mark.parametrize("name", sorted(BROKEN_INPUTS))
def test_unusable_input_is_exit_2_with_one_clear_line(tmp_path, name):
    data, words = BROKEN_INPUTS[name]
    if data is not None:
        (tmp_path / name).write_bytes(data)
    done = sftdata("convert", name, "-o", "out.jsonl", "--json", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"error: {name}") and words in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr  # one line
    assert not (tmp_path / "out.jsonl").exists()


def test_bad_options_are_exit_2(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(GOOD)
    done = sftdata("convert", "a.jsonl", "-o", "out.jsonl", "--encoding", "klingon", cwd=tmp_path)
    assert done.returncode == 2 and "unknown encoding 'klingon'" in done.stderr
    assert sftdata("convert", "a.jsonl", cwd=tmp_path).returncode == 2  # no --output
    assert sftdata("convert", "a.jsonl", "-o", "o.jsonl", "--preset", "nope", cwd=tmp_path).returncode == 2


def test_a_hostile_directory_converts_with_rejects(tmp_path):
    d = tmp_path / "labels"
    d.mkdir()
    (d / "a.json").write_bytes(GOOD)
    (d / "b.json").write_bytes(b"{")
    (d / "c.json").write_bytes(b"7")
    (d / "README.txt").write_text("ignored")
    os.symlink(tmp_path / "gone.json", d / "gone.json")
    done = sftdata("convert", "labels", "-o", "out.jsonl", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = summary_line(done)
    assert (summary["read"], summary["written"], summary["rejected"]) == (4, 1, 3)
    assert summary["by_reason"] == {"invalid_json": 1, "not_a_record": 1, "unreadable_file": 1}
    assert sftdata("convert", "labels", "-o", "out.jsonl", "--strict", cwd=tmp_path).returncode == 1


def test_cp949_csv_from_the_command_line(tmp_path):
    (tmp_path / "k.csv").write_bytes("instruction,output\r\n안녕하세요,반갑습니다\r\n".encode("cp949"))
    done = sftdata("convert", "k.csv", "-o", "out.jsonl", "--json", cwd=tmp_path)
    assert done.returncode == 0 and summary_line(done)["written"] == 1
    assert orjson.loads((tmp_path / "out.jsonl").read_bytes())["instruction"] == "안녕하세요"
    assert orjson.loads((tmp_path / "out.meta.json").read_bytes())["encodings"] == {"k.csv": "cp949"}  # detected
    done = sftdata("convert", "k.csv", "-o", "out.jsonl", "--json", "--encoding", "utf-8", "--strict", cwd=tmp_path)
    assert done.returncode == 4 and summary_line(done)["by_reason"] == {"undecodable": 1}  # nothing written
    assert "--encoding auto" in summary_line(done)["nothing_written"] and "nothing written" in done.stderr


def test_text_from_files_and_data_is_never_read_as_console_markup(tmp_path):
    # Llama-style tags in the data and brackets in file names used to crash rich's markup parser.
    (tmp_path / "q[_i].jsonl").write_bytes(GOOD + b'{"conversations": [{"from": "[/INST]", "value": "x"}]}\n')
    done = sftdata("convert", "q[_i].jsonl", "-o", "out.jsonl", "--preset", "sharegpt", cwd=tmp_path)
    assert done.returncode == 4  # every row rejected: nothing written
    assert "q[_i].jsonl:2" in done.stderr and "unknown role tag '[/INST]'" in done.stderr
    done = sftdata("convert", "gone[/bold].jsonl", "-o", "out.jsonl", cwd=tmp_path)
    assert done.returncode == 2 and "gone[/bold].jsonl" in done.stderr


def test_validate_exit_codes(tmp_path):
    (tmp_path / "ok.jsonl").write_bytes(b'{"instruction": "a", "input": "", "output": "b"}\n')
    (tmp_path / "bad.jsonl").write_bytes(b'{"instruction": "a", "output": ""}\n')
    assert sftdata("validate", "ok.jsonl", cwd=tmp_path).returncode == 0
    done = sftdata("validate", "bad.jsonl", "--json", cwd=tmp_path)
    assert done.returncode == 1 and summary_line(done)["by_reason"] == {"blank": 1}
    assert sftdata("validate", "missing.jsonl", cwd=tmp_path).returncode == 2


@pytest.mark.parametrize("kind", ["instruction", "chat", "qa"])
def test_schema_prints_a_valid_json_schema(tmp_path, kind):
    done = sftdata("schema", kind, cwd=tmp_path)
    assert done.returncode == 0
    schema = orjson.loads(done.stdout)
    _check_json_schema(schema)
    required = {"instruction": {"instruction", "output"}, "chat": {"messages"}, "qa": {"question", "answer"}}[kind]
    assert required <= set(schema["required"])
    try:
        import jsonschema
    except ImportError:
        return
    jsonschema.Draft202012Validator.check_schema(schema)


def _check_json_schema(schema: dict) -> None:
    """Structural checks (jsonschema is not a dependency): an object schema whose refs resolve."""
    assert schema["type"] == "object" and isinstance(schema["properties"], dict)
    assert set(schema.get("required", [])) <= set(schema["properties"])
    defs = schema.get("$defs", {})

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None:
                assert ref.startswith("#/$defs/") and ref.split("/")[-1] in defs, ref
            for key in ("type",):
                if key in node:
                    types = node[key] if isinstance(node[key], list) else [node[key]]
                    assert set(types) <= {"object", "array", "string", "integer", "number", "boolean", "null"}
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)


def test_every_command_help_shows_an_example():
    from sftdata.cli import app

    command = typer.main.get_command(app)
    names = sorted(command.commands)  # type: ignore[attr-defined]
    assert {"convert", "render", "validate", "schema"} <= set(names)
    runner = CliRunner()
    for name in names:
        result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
        assert result.exit_code == 0, (name, result.output)
        assert "Example" in result.output and "sftdata " + name in result.output, (name, result.output)


@pytest.mark.parametrize("extra", [[], ["--template", "alpaca", "--eos", "</s>"], ["--preset", "openai"]])
def test_convert_without_a_tokenizer_imports_nothing_heavy(tmp_path, extra):
    data = GOOD if "--preset" not in extra else b'{"messages": [{"role": "user", "content": "q"}, ' \
        b'{"role": "assistant", "content": "a"}]}\n'
    (tmp_path / "a.jsonl").write_bytes(data)
    code = (
        "import sys\n"
        "from sftdata.cli import main\n"
        f"sys.argv = ['sftdata', 'convert', 'a.jsonl', '-o', 'out.jsonl', '--json', *{extra!r}]\n"
        "try:\n    main()\nexcept SystemExit as stop:\n    assert not stop.code, stop.code\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(HEAVY)!r}))\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "HEAVY=\n" in done.stderr, done.stderr
    assert summary_line(done)["written"] == 1


MARKUP = "[/][bold]x[/bold]"  # an unmatched closing tag makes rich raise MarkupError if read as markup
NAME_MARKUP = "[bold]x[red]"  # what a file name can hold: swallowed as style tags if read as markup


def test_names_and_data_with_console_markup_print_literally_in_every_command(tmp_path):
    """File names, output folders and reject texts reach the console escaped, never parsed as markup."""
    from sftdata.cli import app

    src = tmp_path / f"in{NAME_MARKUP}.jsonl"
    row = b'{"instruction": "what is [/INST] [/]?", "input": "", "output": "a tag [bold]"}\n'
    src.write_bytes(row + row + b'{"instruction": "[/]"\n')
    runner = CliRunner()
    out = tmp_path / "o[" / "]x"  # the path reads 'o[/]x'
    runs = {
        "dedup": ["dedup", str(src), "-o", str(out / "d.jsonl")],
        "filter": ["filter", str(src), "-o", str(out / "f.jsonl"), "--deny", r"\[/\]"],
        "split": ["split", str(src), "-o", str(out / "split"), "--eval-ratio", "0.5"],
        "validate": ["validate", str(src)],
        "export": ["export", str(out / "d.jsonl"), "--to", "trl", "-o", str(out / "e.jsonl")],
        "card": ["card", str(out / "d.jsonl"), "-o", str(out / "README.md")],
    }
    for name, args in runs.items():
        result = runner.invoke(app, args, env={"COLUMNS": "400", "NO_COLOR": "1"})
        assert result.exception is None or isinstance(result.exception, SystemExit), (name, result.exception)
        assert result.exit_code in (0, 1, 4), (name, result.output)  # 4: a run that wrote nothing
        assert "o[/]x" in result.stderr or name == "validate", (name, result.stderr)
        assert NAME_MARKUP in result.stderr or name in ("export", "card"), (name, result.stderr)
    filtered = runner.invoke(app, runs["filter"], env={"COLUMNS": "400", "NO_COLOR": "1"}).stderr
    assert "'\\[/\\]'" in filtered or "[/]" in filtered, filtered


def test_synth_and_generate_print_model_text_literally():
    from rich.console import Console

    from sftdata.cli import common, synth, train

    console = Console(record=True, width=300, stderr=True)
    old, common.err = common.err, console
    synth.err = console
    try:
        summary = {"mode": "answer", "usage": {"prompt_tokens": 1, "completion_tokens": 2}, "output": f"o{MARKUP}",
                   "rejects": "r", "cache": "c", "by_reason": {MARKUP: 1}, "failed_by_reason": {},
                   **{k: 0 for k in ("target", "accepted", "resumed", "requested", "cached", "failed", "retries",
                                     "generated", "rejected", "surplus")}}
        synth._print_summary(summary, [{"request_index": 3, "reason": MARKUP, "message": f"model said {MARKUP}"}])
    finally:
        common.err = synth.err = old
    text = console.export_text()
    assert text.count(MARKUP) == 4, text
    assert train._answer(MARKUP, True) == r"\[/]\[bold]x\[/bold]"
    console.print(train._answer(MARKUP, False))
    assert console.export_text().strip() == MARKUP + " (cut at --max-new-tokens)"


def test_runs_that_write_nothing_say_why_and_exit_4(tmp_path, smollm2_tokenizer_dir):
    """A mapping typo, a folder of rows in another layout, rendered text fed to a records command, and empty
    inputs (.json and .jsonl alike): each says what the rows hold and the likely fix, and exits 4."""
    (tmp_path / "qa.jsonl").write_bytes('{"qa": {"question": "왜?", "answer": "때문에"}}\n'.encode() * 3)
    (tmp_path / "typo.yaml").write_text("to: qa\nfields:\n  question: qa.questoin\n  answer: qa.answer\n",
                                        encoding="utf-8")
    done = sftdata("convert", "qa.jsonl", "--map", "typo.yaml", "-o", "out.jsonl", "--json", cwd=tmp_path)
    message = summary_line(done)["nothing_written"]
    assert done.returncode == 4 and "path_missing" in message and "qa" in message and "--map" in message
    done = sftdata("convert", "qa.jsonl", "-o", "out2.jsonl", cwd=tmp_path)  # alpaca assumed: not this layout
    assert done.returncode == 4 and "keys qa" in done.stderr
    (tmp_path / "sft.jsonl").write_bytes(b'{"text": "### Q: a\\n### A: b</s>"}\n')
    done = sftdata("validate", "sft.jsonl", cwd=tmp_path)
    assert done.returncode == 1  # validate: invalid rows are exit 1, as documented
    done = sftdata("dedup", "sft.jsonl", "-o", "d.jsonl", cwd=tmp_path)
    assert done.returncode == 4 and "rendered SFT text" in done.stderr
    done = sftdata("stats", "sft.jsonl", "--tokenizer", smollm2_tokenizer_dir, cwd=tmp_path)
    assert done.returncode == 4 and "nothing to measure" in done.stderr and "rendered SFT text" in done.stderr
    for empty in ("empty.jsonl", "empty.json"):
        (tmp_path / empty).write_bytes(b"" if empty.endswith("l") else b"[]")
        done = sftdata("convert", empty, "-o", f"{empty}.out.jsonl", cwd=tmp_path)
        assert done.returncode == 4 and "nothing was read" in done.stderr, (empty, done.stderr)
        done = sftdata("validate", empty, cwd=tmp_path)
        assert done.returncode == 4 and "nothing was read" in done.stderr, (empty, done.stderr)
    done = sftdata("dedup", "qa.jsonl", "-o", "x.jsonl", cwd=tmp_path)
    assert done.returncode == 4


def test_rendered_text_fed_to_record_commands_says_what_the_file_is(tmp_path, smollm2_tokenizer_dir):
    """README command 1 writes {"text": ...}; stats, validate and dedup on it name the file's kind and the fix."""
    (tmp_path / "sft.jsonl").write_bytes(b'{"text": "### Q: a\\n### A: b</s>"}\n' * 2)
    done = sftdata("validate", "sft.jsonl", "--json", cwd=tmp_path)
    assert done.returncode == 1 and summary_line(done)["by_reason"] == {"rendered_text": 2}
    assert "convert" in done.stderr and "without --template" in done.stderr
    done = sftdata("dedup", "sft.jsonl", "-o", "d.jsonl", cwd=tmp_path)
    assert done.returncode == 4 and "rendered SFT text" in done.stderr
    done = sftdata("stats", "sft.jsonl", "--tokenizer", smollm2_tokenizer_dir, cwd=tmp_path)
    assert done.returncode == 4 and "nothing to measure" in done.stderr and "rendered SFT text" in done.stderr


@pytest.mark.slow  # three CLI processes, each importing transformers: ~20 s CPU
def test_tokenizer_errors_point_the_right_way(tmp_path):
    (tmp_path / "r.jsonl").write_bytes(b'{"instruction": "a", "output": "b"}\n')
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text("{}", encoding="utf-8")
    for given, said in (("./tokenizer/", "no such tokenizer directory"), ("cfg", "has no tokenizer files"),
                        ("someone/no-such-model", "not in the local cache")):
        done = sftdata("stats", "r.jsonl", "--tokenizer", given, cwd=tmp_path)
        assert done.returncode == 2 and said in done.stderr and "Repo id" not in done.stderr, done.stderr


def test_inspect_past_the_last_sample_says_how_many_there_are_and_exits_4(tmp_path, smollm2_tokenizer_dir):
    """`inspect --skip 1000` on two samples printed nothing and exited 0; an input with no sample neither."""
    import sftdata as api

    (tmp_path / "r.jsonl").write_bytes(GOOD * 2)
    (tmp_path / "empty.jsonl").write_bytes(b"")
    done = sftdata("inspect", "r.jsonl", "--tokenizer", smollm2_tokenizer_dir, "--skip", "1000", "--json",
                   cwd=tmp_path)
    assert done.returncode == 4, done.stderr
    said = orjson.loads(done.stdout.splitlines()[0])
    assert said["samples"] == [] and "holds 2 samples" in said["nothing_shown"]
    assert "nothing to show" in done.stderr and "holds 2 samples" in done.stderr
    found = api.inspect(tmp_path / "r.jsonl", str(smollm2_tokenizer_dir), skip=2)
    assert found.samples == [] and found.rendered == 2 and "skip fewer than 2" in found.nothing_shown
    found = api.inspect(tmp_path / "empty.jsonl", str(smollm2_tokenizer_dir))
    assert found.samples == [] and found.nothing_shown.startswith("nothing was read")
    assert api.inspect(tmp_path / "r.jsonl", str(smollm2_tokenizer_dir), skip=1).nothing_shown is None
