"""How the commands that show data as the trainer sees it show it: stats, inspect, audit (declared in
sftdata.api.curate)."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .common import Shown, View, err, print_summary

if TYPE_CHECKING:
    from ..curate.audit import AuditResult
    from ..curate.stats import StatsResult


def _stats(result: StatsResult, shown: Shown) -> None:
    summary = result.summary()
    _json(summary, shown.as_json)
    print_summary(summary, result.examples)
    _nothing_rendered(summary)
    _print_lengths(result.stats)


def _nothing_rendered(summary: dict[str, Any]) -> None:
    """No sample rendered (an empty file, rendered text, rows of another layout): say why (the summary's
    `nothing_written`, sftdata.outcome), exit 4."""
    from .common import NOTHING_WRITTEN

    empty = summary.get("nothing_written")
    if empty:
        err.print(f"[bold red]nothing to measure:[/] {escape(empty)}", soft_wrap=True)
        raise typer.Exit(NOTHING_WRITTEN)


def _json(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
        sys.stdout.flush()


def _print_lengths(stats: dict[str, Any]) -> None:
    table = Table(title=f"lengths of {stats['samples']:,} samples", title_justify="left")
    table.add_column("")
    for column in ("min", "p50", "p90", "p99", "max", "mean"):
        table.add_column(column, justify="right")
    for name, values in stats["lengths"].items():
        table.add_row(name.replace("_", " "), *("–" if v is None else f"{v:,}" for v in values.values()))
    err.print(table)
    reasoning = stats.get("reasoning")
    if reasoning:
        r, a = reasoning["reasoning_tokens"], reasoning["answer_tokens"]
        err.print(f"reasoning in {reasoning['rows']:,} samples: reasoning tokens p50 {r['p50']:,} max {r['max']:,}; "
                  f"answer tokens p50 {a['p50']:,} max {a['max']:,} (`filter --max-reasoning-tokens N` drops long ones)")
    cut = stats.get("max_seq_length")
    _print_histogram(stats["histograms"]["total_tokens"], cut["limit"] if cut else None)
    if cut:
        style = "bold red" if cut["completion_lost"] or cut["nothing_trained"] else "yellow" if cut["over"] else "green"
        err.print(f"[{style}]max_seq_length {cut['limit']:,}: {cut['over']:,} samples longer; truncation would cut "
                  f"the EOS of {cut['eos_lost']:,}, the whole completion of {cut['completion_lost']:,}, and leave "
                  f"{cut['nothing_trained']:,} with nothing trained[/]")


def _print_histogram(hist: dict[str, list[int]], limit: int | None, width: int = 40) -> None:
    if not hist["counts"]:
        return
    err.print("tokens per sample")
    peak = max(*hist["counts"], hist.get("overflow") or 0) or 1
    edges = hist["edges"]
    for i, count in enumerate(hist["counts"]):
        over = limit is not None and edges[i + 1] > limit
        bar = "█" * max(1 if count else 0, round(width * count / peak))
        err.print(f"  {edges[i]:>7,}–{edges[i + 1] - 1:<7,} [{'red' if over else 'cyan'}]{bar}[/] {count:,}")
    if hist.get("overflow"):
        bar = "█" * max(1, round(width * hist["overflow"] / peak))
        err.print(f"  {'≥' + format(edges[-1], ','):>15} [red]{bar}[/] {hist['overflow']:,} (past the 99th percentile)")


_STYLES = {"bos": "bold cyan", "prompt": "grey50 on grey15", "trained": "green", "eos": "bold white on magenta",
           "pad": "red on grey23"}


def _inspected(inspection: Any, given: Shown) -> None:
    ids, pad_to = given.args.get("ids", False), given.args.get("pad_to")
    shown = inspection.samples
    if given.as_json:
        empty = {"nothing_shown": inspection.nothing_shown} if inspection.nothing_shown else {}
        _json({"command": "inspect", "samples": [s.as_dict() for s in shown], **empty}, True)
    if inspection.nothing_shown:
        from .common import NOTHING_WRITTEN

        err.print(f"[bold red]nothing to show:[/] {escape(inspection.nothing_shown)}", soft_wrap=True)
        raise typer.Exit(NOTHING_WRITTEN)
    legend = Text("legend: ")
    for kind, style in _STYLES.items():
        legend.append(f" {kind} ", style=style)
        legend.append(" ")
    err.print(legend)
    specials = inspection.specials
    for sample in shown:
        err.rule(escape(f"{sample.locator} · {sample.length:,} tokens, {sample.trained:,} trained"))
        text = Text()
        for token in sample.tokens:
            text.append(token.text.replace("\n", "↵") + (f"[{token.id}]" if ids else ""),
                        style=_STYLES[token.kind.value])
            if "\n" in token.text:
                text.append("\n")
        err.print(text)
        for problem in sample.problems:
            err.print(f"[bold red]problem:[/] {escape(str(problem))}")
    if pad_to is not None and specials.pad_id is not None and specials.pad_id == specials.eos_id:
        err.print(f"[bold red]the pad token is the EOS ({escape(repr(specials.eos))}):[/] a collator that masks pad ids masks "
                  "the EOS above too (see `sftdata audit`)")


def _audited(result: AuditResult, shown: Shown) -> None:
    summary = result.summary()
    _json(summary, shown.as_json)
    print_summary(summary, result.examples)
    _nothing_rendered(summary)
    colours = {"error": "bold red", "warning": "yellow", "info": "cyan"}
    for f in result.findings:
        err.print(f"[{colours[f['severity']]}]{f['severity'].upper()}[/] [bold]{escape(f['title'])}[/] "
                  f"({f['code']}, {f['count']:,})", soft_wrap=True)
        err.print(f"  breaks: {f['breaks']}", soft_wrap=True, markup=False)
        err.print(f"  fix:    {f['fix']}", soft_wrap=True, markup=False)
        if f["examples"]:
            err.print(f"  e.g.    {', '.join(f['examples'][:3])}", soft_wrap=True, markup=False)
    err.print(f"{result.errors} error(s), {result.warnings} warning(s)" + ("" if result.findings else ": no findings"))
    if result.errors:
        raise typer.Exit(1)



VIEWS = {
    "stats": View(_stats, label="rendering and tokenizing", strict=False),
    "inspect": View(_inspected, label=None, strict=False),
    "audit": View(_audited, label="auditing", strict=False),
}
