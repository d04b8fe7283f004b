"""Shared pieces of the CLI: the rich console (stderr), error handling, progress, summaries, options.

Human output goes to stderr; `--json` prints one compact summary line on stdout. Errors from the
library become one line and exit code 2; `--strict` turns rejects into exit 1.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import SftDataError, dashed

err = Console(stderr=True, highlight=False, emoji=False)  # ":abc:" in a file name stays text


@dataclass(slots=True)
class Shown:
    """What a command's view gets besides the result: the output switches and the arguments it was called with."""

    as_json: bool = False
    strict: bool = False
    args: dict[str, Any] = field(default_factory=dict)


def _standard(result: Any, shown: Shown) -> None:
    report(result, shown.as_json, shown.strict)


@dataclass(frozen=True, slots=True)
class View:
    """How the CLI shows a command (sftdata.cli.build): `show(result, shown)` prints and exits (default: the
    counts table, exit 4 when nothing was written, 1 for rejects with --strict); `label` names the progress
    spinner (None: no spinner) unless `progress(shown)` gives its own context; `strict` and `json` say whether
    the command has those switches."""

    show: Callable[[Any, Shown], None] = _standard
    label: str | None = "working"
    strict: bool = True
    json: bool = True
    context: Callable[[Shown], Any] | None = None

    def progress(self, shown: Shown) -> Any:
        if self.context is not None:
            return self.context(shown)
        if self.label is None:
            return nullcontext()
        return progress_bar(self.label, shown.as_json)


def error_line(error: SftDataError, command: Any = None) -> str:
    """The error as the CLI says it: options named by their flags (`--threshold 1.5: …`), not `threshold=`."""
    return error.said(command.flag if command is not None else dashed)


@contextmanager
def errors(command: Any = None) -> Iterator[None]:
    try:
        yield
    except SftDataError as error:
        err.print(f"[bold red]error:[/] {escape(error_line(error, command))}", markup=True, soft_wrap=True,
                  highlight=False)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted; no partial output was left under the final names")
        raise typer.Exit(130) from None


def quiet_hf() -> None:
    """transformers/datasets progress bars and warnings would interleave with ours."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


@contextmanager
def progress_bar(label: str, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    if quiet or not err.is_terminal:
        yield None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} rows"),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task(label, total=None)
        yield lambda n: progress.advance(task, n)


NOTHING_WRITTEN = 4  # exit code of a run that wrote no rows (README, exit codes)


def report(result: Any, as_json: bool, strict: bool) -> None:
    """The summary, and the exit code: 4 when the run wrote nothing (the summary's `nothing_written`, the
    library's reason: sftdata.outcome), 1 for rejects with --strict."""
    summary = result.summary()
    empty = summary.get("nothing_written")
    if as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
        sys.stdout.flush()
    print_summary(summary, result.examples)
    if empty:
        err.print(f"[bold red]nothing written:[/] {escape(empty)}", soft_wrap=True)
        raise typer.Exit(NOTHING_WRITTEN)
    if strict and summary["rejected"]:
        raise typer.Exit(1)


def print_summary(summary: dict[str, Any], examples: list[Any]) -> None:
    table = Table(title=f"sftdata {summary['command']}", title_justify="left")
    keys = ("read", "written", "rejected", "filtered", "deduplicated")
    table.add_column("file", overflow="fold")
    for column in keys:
        table.add_column(column, justify="right")
    files = summary["files"]
    # Many per-item files: list only those with rejects, the total row says the rest.
    shown = files if len(files) <= 10 else {n: c for n, c in files.items() if c["rejected"]}
    for name, c in shown.items():
        table.add_row(escape(name), *(f"{c[k]:,}" for k in keys))
    if len(files) > 1:
        table.add_row(f"total ({len(files):,} files)", *(f"{summary[k]:,}" for k in keys), style="bold")
    err.print(table)
    if summary["by_reason"]:
        reasons = Table(title="rejects by reason", title_justify="left")
        reasons.add_column("reason")
        reasons.add_column("rows", justify="right")
        for reason, n in summary["by_reason"].items():
            reasons.add_row(escape(reason), f"{n:,}")
        err.print(reasons)
        for reject in examples:
            err.print(f"  {escape(str(reject.locator))}: [yellow]{escape(reject.reason)}[/] {escape(reject.message)}",
                      soft_wrap=True)
    for key in ("output", "rejects"):
        if summary.get(key):
            err.print(f"{key}: {escape(str(summary[key]))}")
    if summary.get("template"):
        for t in summary["template"]:
            err.print(escape(f"template: {t['name']} (sha256 {t['sha256'][:12]}…), EOS {t['eos']!r}"))
    balanced = summary["read"] == sum(summary[k] for k in ("written", "rejected", "filtered", "deduplicated"))
    terms = "".join(f" + {k} {summary[k]:,}" for k in ("filtered", "deduplicated") if summary.get(k))
    err.print(f"read {summary['read']:,} = written {summary['written']:,} + rejected {summary['rejected']:,}{terms}"
              + ("" if balanced else "  [bold red](counts do not balance: please report)[/]"))
