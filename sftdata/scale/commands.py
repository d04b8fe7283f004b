"""A command split by split: each task runs the command's own library function on one split (a Source with
its byte range, sftdata.scale.splits) into its part, with `sidecar=False`, so a part holds exactly the rows and
rejects a local run writes for those lines; the driver writes the run's one _meta.json.

The command arrives as a `ScaledCommand` (sftdata.api's registry: the function, the figures that add up over
parts); this module never names a command. The tokenizer is loaded once per worker process and handed to the
function as an object.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import SftDataError
from ..items import RunResult
from ..storage import staged
from ..writers import rejects_path
from .driver import (
    check_output,
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

BUILT = ("sftdata_version", "command", "created", "seconds", "sources", "counts", "outputs", "parents", "fast_path")


@dataclass(frozen=True, slots=True)
class ScaledCommand:
    """What an engine needs of a command: its name (for the sidecar), the library function each split runs
    (`function(inputs, output, **options, sidecar=False)`), the result's figures that add up over splits
    (numbers are summed, lists joined; dotted names reach inside a dataclass or dict), the options, and which
    tokenizer loader the function uses (`light`: sftdata.tokenize.light)."""

    name: str
    function: Callable[..., RunResult]
    sums: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    light_tokenizer: bool = False


@dataclass(frozen=True, slots=True)
class CommandJob:
    command: ScaledCommand
    split: Split
    out_dir: str


def command_split(job: CommandJob) -> dict[str, Any]:
    """One split through the command's function: its part files, counts, first rejects, sidecar and result."""
    split, command = job.split, job.command
    options = dict(command.options)
    part = part_path(job.out_dir, split.index)
    try:
        if options.get("tokenizer") is not None:
            options["tokenizer"] = worker_tokenizer(options["tokenizer"], light=command.light_tokenizer)
        with staged(part) as local:  # a URL: written here, uploaded when complete
            result = command.function([split.source()], local, **options, sidecar=False)
    except SftDataError as error:
        return task_error(split.index, error)
    meta = {k: v for k, v in result.meta.items() if k not in BUILT}
    examples = [r.as_dict() for r in result.examples]
    return {"index": split.index, "counts": result.counts.summary(), "examples": examples, "meta": meta,
            "result": dataclasses.replace(result, meta={}, examples=[])}


def run_command(command: ScaledCommand, inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
                engine: Engine, address: str | None = None, split_mib: float = 64, concat: bool = False) -> RunResult:
    """OUTPUT is a folder of part files with one _meta.json; the result is the command's own type (as its
    function returns it) with the summed counts and figures."""
    started = time.perf_counter()
    encoding = command.options.get("encoding") or "auto"
    check_output(output)  # an output that is a file is refused before any engine starts
    splits = splits_of(inputs, split_mib, engine, address, encoding)  # a bad input fails before OUT is made
    out = open_folder(output)
    results = run_tasks(command_split, [CommandJob(command, s, str(out)) for s in splits], engine, address)
    counts, examples = merge(splits, results)
    metas = [r["meta"] for r in results]
    extra = {**combine(metas, command.sums), **rendering(metas, command.options.get("tokenizer")),
             **engine_figures(engine, address, split_mib, splits)}
    if "encodings" in extra:  # each split knows the codec its file was read with
        extra["encodings"] = {s.name: s.codec for s in splits if s.codec}
    result = summed([r["result"] for r in results], command.sums)
    result = dataclasses.replace(result, counts=counts, output=out, rejects=None, examples=examples)
    result.meta, single = finish(command.name, out, splits, counts, extra, started, concat)
    if single is not None:
        result.output, result.rejects = single, rejects_path(single)
    return result


def summed(results: Sequence[RunResult], sums: Sequence[str]) -> RunResult:
    """The first part's result with the figures named in `sums` added up (or joined) over all parts: each is a
    field of the result (dotted names reach into a dataclass or dict it holds)."""
    out = copy.deepcopy(results[0])
    _add_up(out, results, sums)
    return out


def combine(parts: Sequence[dict[str, Any]], sums: Sequence[str]) -> dict[str, Any]:
    """The first part's figures, with those named in `sums` summed (numbers) or joined (lists) over all parts."""
    if not parts:
        return {}
    out = copy.deepcopy(parts[0])
    _add_up(out, parts, sums)
    return out


def _add_up(out: Any, parts: Sequence[Any], sums: Sequence[str]) -> None:
    """Set each figure named in `sums` on `out` (a copy of parts[0]) to its sum, or its sorted union, over `parts`."""
    for dotted in sums:
        first = _get(out, dotted)
        if isinstance(first, (list, tuple, set)):
            _set(out, dotted, sorted({v for p in parts for v in (_get(p, dotted) or [])}))
        elif first is not None:
            _set(out, dotted, sum(_get(p, dotted) or 0 for p in parts))


def _get(data: Any, dotted: str) -> Any:
    """The figure at `dotted` in a dict or dataclass (a result, or one it holds); None where there is none."""
    for key in dotted.split("."):
        if isinstance(data, dict):
            if key not in data:
                return None
            data = data[key]
        elif dataclasses.is_dataclass(data) and not isinstance(data, type) and hasattr(data, key):
            data = getattr(data, key)
        else:
            return None
    return data


def _set(data: Any, dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for key in path:
        data = data[key] if isinstance(data, dict) else getattr(data, key)
    if isinstance(data, dict):
        data[last] = value
    else:
        setattr(data, last, value)
