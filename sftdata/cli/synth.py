"""`sftdata synth`: expand seed records with an LLM (OpenAI-compatible server or local model)."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from .common import JsonOpt, err, errors


class ModeOpt(str, Enum):
    self_instruct = "self-instruct"
    answer = "answer"
    evolve = "evolve"


class LangOpt(str, Enum):
    ko = "ko"
    en = "en"


class FormatOpt(str, Enum):
    auto = "auto"
    json_schema = "json_schema"
    json_object = "json_object"
    none = "none"


def synth(
    seeds: Annotated[Path, typer.Argument(help="Seed records JSONL (as convert writes it; outputs may be missing).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output records JSONL (appended; re-run to resume).")],
    count: Annotated[int, typer.Option("--count", "-n", help="Records the output holds when done (earlier runs count).")],
    mode: Annotated[ModeOpt, typer.Option("--mode", help="self-instruct, answer or evolve.")] = ModeOpt.self_instruct,
    model: Annotated[Optional[str], typer.Option("--model", help="Model name on the server (default: its first), or a local model directory / .gguf file.")] = None,
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 (without it: local model).")] = None,
    api_key_env: Annotated[str, typer.Option("--api-key-env", help="Environment variable holding the API key.")] = "OPENAI_API_KEY",
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="Requests in flight (local backend: batch size).")] = 4,
    rpm: Annotated[Optional[float], typer.Option("--rpm", help="Requests per minute limit.")] = None,
    tpm: Annotated[Optional[float], typer.Option("--tpm", help="Tokens per minute limit.")] = None,
    template: Annotated[Optional[str], typer.Option("--template", "-t", help="A synth template name or .jinja file (default: synth_MODE_LANG).")] = None,
    lang: Annotated[Optional[LangOpt], typer.Option("--lang", help="Language of the prompts (default en); given, records not written in it are rejected (see --check-lang).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the plan (few-shot sampling, sampling seeds).")] = 0,
    max_requests: Annotated[Optional[int], typer.Option("--max-requests", help="Stop (exit 1) after this many requests; default 10 x COUNT.")] = None,
    response_format: Annotated[FormatOpt, typer.Option("--response-format", help="auto tries json_schema, json_object, none.")] = FormatOpt.auto,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Reply length limit per request.")] = 1024,
    temperature: Annotated[float, typer.Option("--temperature")] = 0.7,
    top_p: Annotated[float, typer.Option("--top-p")] = 1.0,
    few_shot: Annotated[int, typer.Option("--few-shot", help="Seed examples shown per request.")] = 3,
    per_request: Annotated[int, typer.Option("--per-request", help="New tasks asked for per self-instruct request.")] = 3,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for one reply.")] = 120.0,
    retries: Annotated[int, typer.Option("--retries", help="Retries of a request on 429/5xx/timeouts/connection errors.")] = 6,
    backoff: Annotated[float, typer.Option("--backoff", help="First retry delay in seconds (doubles each time).")] = 1.0,
    novelty: Annotated[float, typer.Option("--novelty", help="Reject instructions at least this similar (character n-grams) to a seed or an accepted one.")] = 0.5,
    check_lang: Annotated[Optional[bool], typer.Option("--check-lang/--no-check-lang", help="Reject records not written in --lang (default: on when --lang is given).")] = None,
    min_output_chars: Annotated[int, typer.Option("--min-output-chars", help="Reject outputs shorter than this (after trimming).")] = 2,
    deny_list: Annotated[Optional[Path], typer.Option("--deny-list", help="File of denied phrases, one per line (replaces the default list).")] = None,
    price_in: Annotated[Optional[float], typer.Option("--price-in", help="Price per 1M prompt tokens, for the cost line.")] = None,
    price_out: Annotated[Optional[float], typer.Option("--price-out", help="Price per 1M completion tokens.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate records from seeds with an LLM: self-instruct, answer or evolve.

    Example: `sftdata synth seeds.jsonl -o synth.jsonl --mode self-instruct -n 1000 --base-url http://127.0.0.1:8080/v1 --rpm 60 --lang ko`
    """
    from .. import api

    with errors(), _progress(count, as_json) as progress:
        try:
            result = api.synth(
                seeds, output, count=count, mode=mode.value, model=model, base_url=base_url, api_key_env=api_key_env,
                concurrency=concurrency, rpm=rpm, tpm=tpm, template=template, lang=lang.value if lang else None, seed=seed,
                max_requests=max_requests, response_format=response_format.value, max_tokens=max_tokens,
                temperature=temperature, top_p=top_p, few_shot=few_shot, per_request=per_request, timeout=timeout,
                retries=retries, backoff=backoff, novelty=novelty, check_lang=check_lang, min_output_chars=min_output_chars, deny_list=deny_list,
                price_in=price_in, price_out=price_out, progress=progress)
        except KeyboardInterrupt:
            err.print(f"interrupted: every record accepted so far is in {output}; re-run the same command "
                      "to continue where it stopped", markup=False)
            raise typer.Exit(130) from None
    summary = result.summary()
    if as_json:
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
