"""The driver's side of a split run: the output folder, the tasks on an engine, the counts summed, the
one `_meta.json`, and with `concat` the single files a local run writes.

Every distributed command (sftdata.scale.run's convert, sftdata.scale.commands' render, filter and
pretokenize, sftdata.scale.dedup) writes `part-NNNNN.jsonl` and its sidecars per split into the folder;
a task returns its counts and first rejects as plain data, and fails by returning an "error" (a
row's problem is a reject in its part, never a failed task). `worker_tokenizer` is the tasks' side: a
tokenizer loaded once per worker process.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from ..errors import OptionError, OutputError, SftDataError, option
from ..items import Counts, Locator, Reject, Stage
from ..provenance import build_meta
from ..storage import Location, Url, location, open_binary
from ..writers import AtomicFile, meta_path, rejects_path, sidecar_path, write_json
from .engines import Engine, check_engine, run_jobs
from .splits import Split, plan_splits, survey_range

PART = "part-{:05d}"


def part_path(out: str | os.PathLike[str] | Url, index: int) -> Location:
    return location(out) / f"{PART.format(index)}.jsonl"


def check_output(output: str | os.PathLike[str] | Url) -> Location:
    """The output folder a split run will write, refused before any engine starts if it is a file."""
    out = location(output)
    try:
        if out.is_file():
            raise OutputError("on an engine the output is a folder of part files, and this is a file",
                              file=str(out), hint=f"name a folder (add {option('concat', True)} for the single "
                              "files a local run writes)")
    except OSError as error:
        raise OutputError(f"cannot write: {error.strerror or error}", file=str(out)) from None
    return out


def open_folder(output: str | os.PathLike[str] | Url) -> Location:
    """The output folder (a path, or a URL: sftdata.storage), emptied of the parts and _meta.json of an earlier
    run (which may have had more splits)."""
    out = check_output(output)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for stale in [*out.glob("part-*.jsonl"), out / "_meta.json"]:
            stale.unlink(missing_ok=True)
    except OSError as error:
        raise OutputError(f"cannot write: {error.strerror or error}", file=str(out)) from None
    return out


def splits_of(inputs: Sequence[Any], split_mib: float, engine: Engine, address: str | None,
              encoding: str = "auto") -> list[Split]:
    """The splits, with each byte range surveyed (its newlines and codec) by a task on the engine."""
    if split_mib <= 0:
        raise OptionError("must be positive", option="split_mib", value=split_mib)
    check_engine(engine, address)  # seconds, not a cluster start, to learn an address is wrong
    return plan_splits(inputs, max(1, int(split_mib * (1 << 20))), encoding,
                       survey=lambda jobs: run_jobs(survey_range, jobs, engine, address) if jobs else [])


def run_tasks(task: Callable[[Any], dict[str, Any]], jobs: Sequence[Any], engine: Engine,
              address: str | None) -> list[dict[str, Any]]:
    """The tasks' results in split order; the first task that failed fails the run."""
    results = sorted(run_jobs(task, jobs, engine, address), key=lambda r: r["index"])
    raise_failed(results)
    return results


def raise_failed(results: Sequence[dict[str, Any]]) -> None:
    """The first task that failed (see task_error) fails the run."""
    failed = [r["error"] for r in results if "error" in r]
    if failed:
        raise SftDataError(failed[0])


def task_error(index: int, error: SftDataError) -> dict[str, Any]:
    return {"index": index, "error": str(error)}


def merge(splits: Sequence[Split], results: Sequence[dict[str, Any]], keep: int = 5) -> tuple[Counts, list[Reject]]:
    """The run's counts (per original file and reason) and its first rejects, from the tasks' results."""
    counts = Counts()
    for split in splits:
        counts.file(split.name)
    examples: list[Reject] = []
    for result in results:
        add_counts(counts, result["counts"])
        for row in result["examples"]:
            if len(examples) < keep:
                where = Locator(row["file"], row.get("line"), row.get("index"), row.get("element"))
                examples.append(Reject(Stage(row["stage"]), row["reason"], row["message"], where,
                                       field=row.get("field"), raw=row.get("raw")))
    return counts, examples


def add_counts(counts: Counts, summary: dict[str, Any]) -> None:
    """Add a Counts.summary() (a task's) to `counts`."""
    for name, figures in summary["files"].items():
        mine = counts.file(name)
        for key, value in figures.items():
            setattr(mine, key, getattr(mine, key) + value)
    for reason, n in summary["by_reason"].items():
        counts.by_reason[reason] = counts.by_reason.get(reason, 0) + n


def engine_figures(engine: Engine, address: str | None, split_mib: float, splits: Sequence[Split]) -> dict[str, Any]:
    return {"engine": engine, "address": address, "split_mib": split_mib, "splits": len(splits),
            "parts": [part_path("", s.index).name for s in splits]}


def finish(command: str, out: Location, splits: Sequence[Split], counts: Counts, extra: dict[str, Any], started: float,
           concat: bool, sidecars: Sequence[str] = ()) -> tuple[dict[str, Any], Location | None]:
    """Write _meta.json (sources hashed once, here) and, with `concat`, OUT.jsonl with its rejects, the
    command's other `sidecars` (e.g. ".dupes.jsonl") and its .meta.json. Returns (meta, the single file)."""
    sources = list(dict.fromkeys(location(s.path) for s in splits))
    meta = build_meta(command, sources, counts, out, None, extra, started)
    write_json(out / "_meta.json", meta)
    if not concat:
        return meta, None
    single = out.with_name(out.name + ".jsonl")
    parts = [part_path(out, s.index) for s in splits]
    concatenate(parts, single)
    concatenate([rejects_path(p) for p in parts], rejects_path(single))
    for suffix in sidecars:
        concatenate([sidecar_path(p, suffix) for p in parts], sidecar_path(single, suffix))
    write_json(meta_path(single), build_meta(command, sources, counts, single, rejects_path(single), extra, started))
    return meta, single


def rendering(parts: Sequence[dict[str, Any]], tokenizer: Any = None) -> dict[str, Any]:
    """The rendering part of the run's sidecar (RenderPlan.provenance) from the parts': the templates in the
    order a local run first used them (each part lists those its own rows used, in order), every EOS, and
    the tokenizer as the user named it (a task gets it loaded)."""
    out: dict[str, Any] = {}
    if any("template" in part for part in parts):
        first: dict[bytes, Any] = {}
        for template in (t for part in parts for t in part.get("template") or []):
            first.setdefault(orjson.dumps(template, option=orjson.OPT_SORT_KEYS), template)
        out["template"] = list(first.values())
    eos = [part["eos"] for part in parts if "eos" in part]
    if eos:
        lists = [e for e in eos if isinstance(e, list)]
        out["eos"] = sorted({x for e in lists for x in e}) if lists else eos[0]
    if isinstance(tokenizer, (str, os.PathLike)):
        out["tokenizer"] = os.fspath(tokenizer)
    return out


_TOKENIZERS: dict[tuple[str, str], Any] = {}  # per worker process: (loader, spec) → tokenizer


def worker_tokenizer(spec: Any, light: bool = False) -> Any:
    """The tokenizer as the command would load it (filter and pretokenize may use the light loader, convert
    and render the transformers one), loaded once per worker process; one already loaded is itself."""
    if not isinstance(spec, (str, os.PathLike)):
        return spec
    key = ("light" if light else "full", os.fspath(spec))
    if key not in _TOKENIZERS:
        if light:
            from ..curate.samples import load

            _TOKENIZERS[key] = load(spec)[0]
        else:
            from ..tokenize.load import load_tokenizer

            _TOKENIZERS[key] = load_tokenizer(spec)
    return _TOKENIZERS[key]


def concatenate(parts: Sequence[Location], target: Location) -> None:
    with AtomicFile(target) as sink:
        for part in parts:
            with open_binary(part) as handle:
                while chunk := handle.read(1 << 22):
                    sink.write(chunk)
