"""render, filter and pretokenize split by split: each task runs the command's own library function on
one split (a Source with its byte range, sftdata.scale.splits) into its part, so a part holds exactly the
rows and rejects a local run writes for those lines.

The tokenizer is loaded once per worker process and handed to the command as an object; the driver builds
the run's _meta.json from a part's sidecar (the same template, EOS and options in every part) with the
counts and the command's additive figures (`SUMS`, e.g. pretokenize's tokens and overflow) summed.
"""
from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import SftDataError
from ..items import RunResult
from ..provenance import in_split_task
from ..storage import staged
from ..writers import meta_path, rejects_path
from .driver import (
    engine_figures,
    finish,
    merge,
    open_folder,
    part_path,
    rendering,
    run_tasks,
    splits_of,
    task_error,
    worker_tokenizer,
)
from .engines import Engine
from .splits import Split

Command = Literal["render", "filter", "pretokenize"]
# Figures a command reports per run that add up over parts (dotted: inside a dict); lists are joined.
SUMS: dict[str, tuple[str, ...]] = {"pretokenize": ("tokens", "overflow.over", "overflow.dropped", "overflow.truncated")}
UNIONS: dict[str, tuple[str, ...]] = {"pretokenize": ("columns",)}
BUILT = ("sftdata_version", "command", "created", "seconds", "sources", "counts", "outputs", "parents")


@dataclass(frozen=True, slots=True)
class CommandJob:
    command: Command
    split: Split
    out_dir: str
    options: dict[str, Any] = field(default_factory=dict)  # the command's keyword arguments


def _function(command: Command) -> Callable[..., RunResult]:
    if command == "render":
        from ..pipeline import render

        return render
    if command == "filter":
        from ..curate.filters import filter_records

        return filter_records
    from ..curate.pretokenize import pretokenize

    return pretokenize


def command_split(job: CommandJob) -> dict[str, Any]:
    """One split through the command's function: its part files, counts, first rejects and figures."""
    split, options = job.split, dict(job.options)
    part = part_path(job.out_dir, split.index)
    try:
        if options.get("tokenizer") is not None:
            options["tokenizer"] = worker_tokenizer(options["tokenizer"], light=job.command != "render")
        with in_split_task(), staged(part) as local:  # a URL: written here, uploaded when complete
            result = _function(job.command)([split.source()], local, **options)
            meta_path(local).unlink(missing_ok=True)  # the run has one _meta.json, which the driver writes
    except SftDataError as error:
        return task_error(split.index, error)
    return {"index": split.index, "counts": result.counts.summary(), "examples": [r.as_dict() for r in result.examples],
            "meta": {k: v for k, v in result.meta.items() if k not in BUILT}, "extra": getattr(result, "extra", {})}


def run_command(command: Command, inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
                engine: Engine, address: str | None = None, split_mib: float = 64, concat: bool = False,
                options: dict[str, Any]) -> RunResult:
    """`sftdata render|filter|pretokenize --engine ...`: OUTPUT is a folder of part files with one _meta.json;
    the result is the command's own type (RunResult, CurateResult) with the summed counts and figures."""
    started = time.perf_counter()
    splits = splits_of(inputs, split_mib, engine, address)  # a bad input fails before OUT is made
    out = open_folder(output)
    results = run_tasks(command_split, [CommandJob(command, s, str(out), options) for s in splits], engine, address)
    counts, examples = merge(splits, results)
    figures = combine([r["extra"] for r in results], command)
    extra = {**combine([r["meta"] for r in results], command), **rendering([r["meta"] for r in results],
                                                                          options.get("tokenizer")),
             **engine_figures(engine, address, split_mib, splits)}
    result = _result_type(command)(command, counts, out, None, examples=examples)
    if hasattr(result, "extra"):
        result.extra = figures
    result.meta, single = finish(command, out, splits, counts, extra, started, concat)
    if single is not None:
        result.output, result.rejects = single, rejects_path(single)
    return result


def _result_type(command: Command) -> type[RunResult]:
    if command == "render":
        return RunResult
    from ..curate.samples import CurateResult

    return CurateResult


def combine(parts: Sequence[dict[str, Any]], command: Command) -> dict[str, Any]:
    """The first part's figures, with the command's additive ones summed and its lists joined over all parts."""
    if not parts:
        return {}
    out = copy.deepcopy(parts[0])
    for dotted in SUMS.get(command, ()):
        _set(out, dotted, sum(_get(p, dotted) or 0 for p in parts) if _get(out, dotted) is not None else None)
    for dotted in UNIONS.get(command, ()):
        if _get(out, dotted) is not None:
            _set(out, dotted, sorted({v for p in parts for v in (_get(p, dotted) or [])}))
    return out


def _get(data: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for key in path:
        data = data[key]
    data[last] = value
