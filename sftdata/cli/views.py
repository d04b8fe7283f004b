"""Commands that show data as the trainer sees it: stats, inspect, audit."""
from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import orjson
import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .common import JsonOpt, TemplateArgsOpt, TrainOnArg, TrainOnOpt, err, errors, print_summary, progress_bar

FilesArg = Annotated[list[str], typer.Argument(help="Records JSONL as convert writes it (instruction, chat or QA).")]
TokenizerReq = Annotated[str, typer.Option("--tokenizer", help="Tokenizer directory, .gguf file or hub id.")]
TemplateAuto = Annotated[Optional[str], typer.Option("--template", "-t", help="Template (default: chat for chat records, alpaca otherwise).")]
MaxLenOpt = Annotated[Optional[int], typer.Option("--max-seq-length", help="The trainer's max_seq_length.")]


class TrainerOpt(str, Enum):
    generic = "generic"
    trl = "trl"
    sftdata = "sftdata"


def stats(
    inputs: FilesArg,
    tokenizer: TokenizerReq,
    template: TemplateAuto = None,
    max_seq_length: MaxLenOpt = None,
    template_args: TemplateArgsOpt = None,
    train_on: TrainOnArg = TrainOnOpt.all,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write a self-contained HTML report (with the audit's findings).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Lengths in characters and tokens (prompt, completion, sample) and what max_seq_length would cut.

    Example: `sftdata stats train.jsonl --tokenizer ./tokenizer --max-seq-length 1024 --report report.html`
    """
    from .. import api

    with errors(), progress_bar("rendering and tokenizing", as_json) as progress:
        result = api.stats(inputs, tokenizer, template=template, max_seq_length=max_seq_length, report=report,
                           template_args=template_args, train_on=train_on.value, progress=progress)
    summary = result.summary()
    _json(summary, as_json)
    print_summary(summary, result.examples)
    _nothing_rendered(summary, result.examples)
    _print_lengths(summary["stats"])


def _nothing_rendered(summary: dict[str, Any], examples: list[Any]) -> None:
    """No sample rendered (an empty file, rendered text, rows of another layout): say why, exit 4."""
    from ..outcome import nothing_written
    from .common import NOTHING_WRITTEN

    empty = nothing_written(summary, examples)
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


def inspect_(
    inputs: FilesArg,
    tokenizer: TokenizerReq,
    template: TemplateAuto = None,
    template_args: TemplateArgsOpt = None,
    train_on: TrainOnArg = TrainOnOpt.all,
    n: Annotated[int, typer.Option("-n", help="How many samples.")] = 3,
    skip: Annotated[int, typer.Option("--skip", help="Skip this many samples first.")] = 0,
    ids: Annotated[bool, typer.Option("--ids", help="Show each token's id.")] = False,
    pad_to: Annotated[Optional[int], typer.Option("--pad-to", help="Append padding up to this length, as a collator would.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show samples token by token: masked prompt, trained completion, EOS, padding.

    The ids and masks are the ones `pretokenize` writes. Example: `sftdata inspect train.jsonl --tokenizer ./tok -n 2 --ids`
    """
    from .. import api

    with errors():
        inspection = api.inspect(inputs, tokenizer, template=template, n=n, skip=skip, ids=ids, pad_to=pad_to,
                                 template_args=template_args, train_on=train_on.value)
    shown = inspection.samples
    if as_json:
        _json({"command": "inspect", "samples": [s.as_dict() for s in shown]}, True)
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


def audit(
    inputs: FilesArg,
    tokenizer: TokenizerReq,
    template: TemplateAuto = None,
    max_seq_length: MaxLenOpt = None,
    template_args: TemplateArgsOpt = None,
    train_on: TrainOnArg = TrainOnOpt.all,
    trainer: Annotated[TrainerOpt, typer.Option("--trainer", help="generic: a collator that masks pad ids; trl (>= 1.0) and sftdata mask by position.")] = TrainerOpt.generic,
    eval_files: Annotated[Optional[list[str]], typer.Option("--eval", help="An eval set to check for overlap with.")] = None,
    lang: Annotated[Optional[str], typer.Option("--lang", help="Expected language (ko, zh, ja, en, ...) for the language-mix check.")] = None,
    min_lang_share: Annotated[float, typer.Option("--min-lang-share", help="Least share of letters in that script.")] = 0.5,
    threshold: Annotated[float, typer.Option("--threshold", help="Near-duplicate Jaccard threshold.")] = 0.7,
    as_json: JsonOpt = False,
) -> None:
    """Check data + tokenizer + template for known training pitfalls; exit 1 on any error finding.

    Example: `sftdata audit train.jsonl --tokenizer ./tok --max-seq-length 2048 --eval eval.jsonl --lang ko`
    """
    from .. import api

    with errors(), progress_bar("auditing", as_json) as progress:
        result = api.audit(inputs, tokenizer, template=template, max_seq_length=max_seq_length,
                           trainer=trainer.value, eval_files=eval_files or (), lang=lang,
                           min_lang_share=min_lang_share, threshold=threshold, template_args=template_args, train_on=train_on.value, progress=progress)
    summary = result.summary()
    _json(summary, as_json)
    print_summary(summary, result.examples)
    _nothing_rendered(summary, result.examples)
    colours = {"error": "bold red", "warning": "yellow", "info": "cyan"}
    for f in summary["findings"]:
        err.print(f"[{colours[f['severity']]}]{f['severity'].upper()}[/] [bold]{escape(f['title'])}[/] "
                  f"({f['code']}, {f['count']:,})", soft_wrap=True)
        err.print(f"  breaks: {f['breaks']}", soft_wrap=True, markup=False)
        err.print(f"  fix:    {f['fix']}", soft_wrap=True, markup=False)
        if f["examples"]:
            err.print(f"  e.g.    {', '.join(f['examples'][:3])}", soft_wrap=True, markup=False)
    err.print(f"{summary['errors']} error(s), {summary['warnings']} warning(s)"
              + ("" if summary["findings"] else ": no findings"))
    if summary["errors"]:
        raise typer.Exit(1)

