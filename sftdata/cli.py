"""The `sftdata` command: parses options, calls the library, shows progress and results with rich.

Human output goes to stderr; `--json` prints one compact summary line on stdout. Errors from the
library become one line and exit code 2; `--strict` turns rejects into exit 1.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import orjson
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import SftDataError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode="markdown", help="Raw labelled data → validated SFT data, every reject explained.")
err = Console(stderr=True, highlight=False)


class Kind(str, Enum):
    instruction = "instruction"
    chat = "chat"
    qa = "qa"


class StyleOpt(str, Enum):
    text = "text"
    prompt_completion = "prompt-completion"
    messages = "messages"


class PresetOpt(str, Enum):
    alpaca = "alpaca"
    sharegpt = "sharegpt"
    openai = "openai"
    qa = "qa"


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one compact JSON summary line on stdout.")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Exit 1 if any row was rejected.")]
TemplateOpt = Annotated[Optional[str], typer.Option("--template", "-t", help="alpaca, alpaca_ko, qa_ko, chat, chatml, llama3, or a .jinja file.")]
TokenizerOpt = Annotated[Optional[str], typer.Option("--tokenizer", help="Tokenizer directory, .gguf file or hub id; its EOS is used.")]
EosOpt = Annotated[Optional[str], typer.Option("--eos", help="EOS token text, when no tokenizer is given.")]


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except SftDataError as error:
        err.print(f"[bold red]error:[/] {error}", markup=True, soft_wrap=True, highlight=False)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted; no partial output was left under the final names")
        raise typer.Exit(130) from None


@contextmanager
def _progress(label: str, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    if quiet or not err.is_terminal:
        yield None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} rows"),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task(label, total=None)
        yield lambda n: progress.advance(task, n)


def _report(result: Any, as_json: bool, strict: bool) -> None:
    summary = result.summary()
    if as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
        sys.stdout.flush()
    _print_summary(summary, result.examples)
    if strict and summary["rejected"]:
        raise typer.Exit(1)


def _print_summary(summary: dict[str, Any], examples: list[Any]) -> None:
    table = Table(title=f"sftdata {summary['command']}", title_justify="left")
    keys = ("read", "written", "rejected", "filtered", "deduplicated")
    table.add_column("file", overflow="fold")
    for column in keys:
        table.add_column(column, justify="right")
    files = summary["files"]
    # Many per-item files: list only those with rejects, the total row says the rest.
    shown = files if len(files) <= 10 else {n: c for n, c in files.items() if c["rejected"]}
    for name, c in shown.items():
        table.add_row(name, *(f"{c[k]:,}" for k in keys))
    if len(files) > 1:
        table.add_row(f"total ({len(files):,} files)", *(f"{summary[k]:,}" for k in keys), style="bold")
    err.print(table)
    if summary["by_reason"]:
        reasons = Table(title="rejects by reason", title_justify="left")
        reasons.add_column("reason")
        reasons.add_column("rows", justify="right")
        for reason, n in summary["by_reason"].items():
            reasons.add_row(reason, f"{n:,}")
        err.print(reasons)
        for reject in examples:
            err.print(f"  {reject.locator}: [yellow]{reject.reason}[/] {reject.message}", soft_wrap=True)
    for key in ("output", "rejects"):
        if summary.get(key):
            err.print(f"{key}: {summary[key]}")
    if summary.get("template"):
        for t in summary["template"]:
            err.print(f"template: {t['name']} (sha256 {t['sha256'][:12]}…), EOS {t['eos']!r}")
    balanced = summary["read"] == sum(summary[k] for k in ("written", "rejected", "filtered", "deduplicated"))
    err.print(f"read {summary['read']:,} = written {summary['written']:,} + rejected {summary['rejected']:,}"
              + ("" if balanced else "  [bold red](counts do not balance: please report)[/]"))


@app.command()
def convert(
    inputs: Annotated[list[str], typer.Argument(help="Files, directories (recursive) or globs: .json .jsonl .csv .tsv .parquet")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output JSONL; rejects go to OUT.rejects.jsonl.")],
    preset: Annotated[Optional[PresetOpt], typer.Option("--preset", help="A built-in field layout.")] = None,
    mapping: Annotated[Optional[Path], typer.Option("--map", help="A mapping YAML file (see README).")] = None,
    to: Annotated[Optional[Kind], typer.Option("--to", help="Convert records to this kind.")] = None,
    encoding: Annotated[str, typer.Option("--encoding", help="auto, utf-8, cp949, euc-kr, ...")] = "auto",
    records_path: Annotated[Optional[str], typer.Option("--records-path", help="Path of the record list inside a JSON file.")] = None,
    template: TemplateOpt = None,
    tokenizer: TokenizerOpt = None,
    eos: EosOpt = None,
    style: Annotated[Optional[StyleOpt], typer.Option("--style", help="text, prompt-completion or messages.")] = None,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert raw labelled data into records (and, with --template, into SFT text).

    Example: `sftdata convert labels/ --map mapping.yaml -o train.jsonl --template alpaca_ko --eos "</s>"`
    """
    from . import pipeline
    from .render import Style
    from .schemas.records import RecordKind

    with _errors(), _progress("converting", as_json) as progress:
        result = pipeline.convert(
            inputs, output, preset=preset.value if preset else None, mapping=mapping,
            to=RecordKind(to.value) if to else None, encoding=encoding, records_path=records_path,
            template=template, tokenizer=tokenizer, eos=eos, style=Style(style.value) if style else None,
            progress=progress)
    _report(result, as_json, strict)


@app.command()
def render(
    inputs: Annotated[list[str], typer.Argument(help="Records JSONL as convert writes it.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output JSONL.")],
    template: Annotated[str, typer.Option("--template", "-t", help="auto (chat for chat records, alpaca otherwise), a built-in name or a .jinja file.")] = "auto",
    tokenizer: TokenizerOpt = None,
    eos: EosOpt = None,
    style: Annotated[StyleOpt, typer.Option("--style")] = StyleOpt.text,
    kind: Annotated[Optional[Kind], typer.Option("--as", help="Record kind (default: from each row's keys).")] = None,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Render records into SFT text with a template and exactly one EOS per trained span.

    Example: `sftdata render records.jsonl -o sft.jsonl --template alpaca_ko --tokenizer ./tokenizer`
    """
    from . import pipeline
    from .render import Style
    from .schemas.records import RecordKind

    with _errors(), _progress("rendering", as_json) as progress:
        result = pipeline.render(inputs, output, template=template, tokenizer=tokenizer, eos=eos,
                                 style=Style(style.value), kind=RecordKind(kind.value) if kind else None,
                                 progress=progress)
    _report(result, as_json, strict)


@app.command()
def validate(
    inputs: Annotated[list[str], typer.Argument(help="Records JSONL files.")],
    kind: Annotated[Optional[Kind], typer.Option("--as", help="Record kind (default: from each row's keys).")] = None,
    rejects: Annotated[Optional[Path], typer.Option("--rejects", help="Also write the invalid rows here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check records against the schemas; exit 1 if any row is invalid.

    Example: `sftdata validate train.jsonl --as instruction`
    """
    from . import pipeline
    from .schemas.records import RecordKind

    with _errors(), _progress("validating", as_json) as progress:
        result = pipeline.validate(inputs, kind=RecordKind(kind.value) if kind else None, rejects=rejects,
                                   progress=progress)
    _report(result, as_json, strict=True)


@app.command()
def schema(kind: Annotated[Kind, typer.Argument(help="instruction, chat or qa")]) -> None:
    """Print the JSON Schema of a record kind.

    Example: `sftdata schema chat > chat.schema.json`
    """
    from .pipeline import schema as record_schema
    from .schemas.records import RecordKind

    sys.stdout.write(orjson.dumps(record_schema(RecordKind(kind.value)), option=orjson.OPT_INDENT_2).decode() + "\n")


def main() -> None:
    try:
        app()
    except SftDataError as error:  # raised outside a command body, e.g. while parsing
        err.print(f"[bold red]error:[/] {error}")
        sys.exit(error.exit_code)
    except Exception as error:  # a bug in sftdata, never bad data: keep it to one line unless asked
        if os.environ.get("SFTDATA_DEBUG"):
            raise
        err.print(f"[bold red]internal error:[/] {type(error).__name__}: {error} (set SFTDATA_DEBUG=1 for a traceback)")
        sys.exit(3)


if __name__ == "__main__":
    main()
