"""How `sftdata synth` shows its progress and result (declared in sftdata.api.synth): seed records expanded
with an LLM (OpenAI-compatible server or local model)."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from .common import Shown, View, err


@contextmanager
def _synthesizing(shown: Shown) -> Iterator[Callable[[Any], None] | None]:
    """The progress bar; an interrupt says where the accepted records are and how to continue."""
    try:
        with _progress(shown.args["count"], shown.as_json) as progress:
            yield progress
    except KeyboardInterrupt:
        err.print(f"interrupted: every record accepted so far is in {shown.args['output']}; re-run the same command "
                  "to continue where it stopped", markup=False)
        raise typer.Exit(130) from None


def _synthesized(result: Any, shown: Shown) -> None:
    summary = result.summary()
    if shown.as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
        sys.stdout.flush()
    _print_summary(summary, result.examples)
    if not result.complete:
        err.print(f"[bold red]stopped:[/] {escape(str(summary['stopped']))}. Re-run the same command to continue "
                  "(cached replies are not paid for twice).", soft_wrap=True)
        raise typer.Exit(1)


@contextmanager
def _progress(total: int, quiet: bool) -> Iterator[Callable[[Any], None] | None]:
    if quiet or not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("synth", total=total, info="")

        def update(s: Any) -> None:
            info = (f"failed {s.failed} · rejected {s.rejected} · {s.request_rate * 60:.1f} req/min · "
                    f"{s.prompt_tokens + s.completion_tokens:,} tokens")
            bar.update(task, completed=min(s.accepted, total), info=info)

        yield update


def _print_summary(summary: dict[str, Any], examples: list[dict[str, Any]]) -> None:
    table = Table(title=f"sftdata synth ({summary['mode']})", title_justify="left")
    table.add_column("")
    table.add_column("", justify="right")
    for key in ("target", "accepted", "resumed", "requested", "cached", "failed", "retries", "generated",
                "rejected", "surplus"):
        table.add_row(key, f"{summary[key]:,}")
    err.print(table)
    for title, key in (("rejected by reason", "by_reason"), ("failed requests by reason", "failed_by_reason")):
        if summary[key]:
            err.print(f"{title}: " + ", ".join(f"{k} {v:,}" for k, v in summary[key].items()), markup=False)
    for row in examples:
        err.print(f"  request {row.get('request_index')}: [yellow]{escape(str(row['reason']))}[/] "
                  f"{escape(str(row['message']))}",
                  soft_wrap=True, markup=True, highlight=False)
    usage = summary["usage"]
    line = f"tokens: {usage['prompt_tokens']:,} prompt + {usage['completion_tokens']:,} completion"
    if "cost" in usage:
        line += f", cost {usage['cost']:.4f}"
    err.print(line)
    err.print(f"output: {summary['output']}\nrejects: {summary['rejects']}\ncache: {summary['cache']}", markup=False)


VIEWS = {"synth": View(_synthesized, strict=False, context=_synthesizing)}
