"""Running a command split by split on an engine, with the output a local run writes.

`convert_split` is the task: it reads one split (sftdata.dist.splits) and runs it through the same code
as `sftdata convert` (mapping or importer, records, render plan, the pipeline's write loop), writing
`part-NNNNN.jsonl` and `part-NNNNN.rejects.jsonl` atomically; a task retried after its worker died, or
run twice, rewrites its own part and nothing else. The render plan and the tokenizer are built once per
worker process. sftdata.dist.engines hands the tasks to local, Ray or Spark. The driver sums the counts per file and reason into one `_meta.json` and, with
`concat`, writes the parts end to end as the single files a local run writes.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..errors import SftDataError
from ..formats.interop import importer_for
from ..ingest.mapping import Mapper, resolve_spec
from ..ingest.readers import read_source
from ..ingest.records import _records
from ..items import Counts, Locator, Reject, RunResult, Stage, Style
from ..pipeline import _run
from ..provenance import build_meta
from ..rendering.plan import make_plan
from ..schemas.mapping import MappingSpec
from ..schemas.records import RecordKind
from ..writers import AtomicFile, meta_path, rejects_path, write_json
from .engines import Engine, run_jobs
from .splits import Split, plan_splits

PART = "part-{:05d}"


@dataclass(frozen=True, slots=True)
class ConvertJob:
    split: Split
    out_dir: str
    options: dict[str, Any] = field(default_factory=dict)  # JSON-able: the convert options


_PREPARED: dict[bytes, tuple[Any, Any, RecordKind | None]] = {}  # per worker process: options → (mapper, plan, to)


def _prepare(options: dict[str, Any]) -> tuple[Any, Any, RecordKind | None]:
    key = orjson.dumps(options, option=orjson.OPT_SORT_KEYS)
    if key not in _PREPARED:
        mapping = options["mapping"]
        mapping = MappingSpec.model_validate(mapping) if isinstance(mapping, dict) else mapping
        importer = importer_for(options["preset"], mapping)
        mapper = importer or Mapper(resolve_spec(options["preset"], mapping))
        plan = _plan(options)
        _PREPARED[key] = (mapper, plan, RecordKind(options["to"]) if options["to"] else None)
    return _PREPARED[key]


def _plan(options: dict[str, Any]) -> Any:
    style = Style(options["style"]) if options["style"] else None
    return make_plan(options["template"], options["tokenizer"], options["eos"], style,
                     template_args=options["template_args"], train_on=options["train_on"])


def convert_split(job: ConvertJob) -> dict[str, Any]:
    """One split through convert's code: its part files, and its counts and first rejects as JSON."""
    split, options = job.split, job.options
    try:
        mapper, plan, to = _prepare(options)
        counts = Counts()
        counts.file(split.name)
        items = read_source(split.source(), encoding=options["encoding"], records_path=options["records_path"])
        stream = _records(items, mapper, counts, to, options["split_thinking"], options["split_turns"])
        result = _run("convert", stream, counts, Path(job.out_dir) / f"{PART.format(split.index)}.jsonl", plan, None)
    except SftDataError as error:
        return {"index": split.index, "error": str(error)}
    return {"index": split.index, "counts": counts.summary(),
            "examples": [r.as_dict() for r in result.examples]}


def convert(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *, engine: Engine,
            address: str | None = None, split_mib: float = 64, concat: bool = False,
            options: dict[str, Any]) -> RunResult:
    """`sftdata convert --engine ...`: OUTPUT is a folder of part files with one _meta.json."""
    started = time.perf_counter()
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise SftDataError("on an engine the output is a folder of part files, and this is a file", file=str(out),
                           hint="name a folder (add --concat for the single files a local run writes)")
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("part-*.jsonl"), out / "_meta.json"]:  # parts of an earlier run with more splits
        stale.unlink(missing_ok=True)
    splits = plan_splits(inputs, max(1, int(split_mib * (1 << 20))), options["encoding"])
    results = sorted(run_jobs(convert_split, [ConvertJob(s, str(out), options) for s in splits], engine, address),
                     key=lambda r: r["index"])
    failed = [r["error"] for r in results if "error" in r]
    if failed:
        raise SftDataError(failed[0])
    counts, examples = _merge(splits, results)
    mapper, plan, to = _prepare(options)  # the driver's own: the plan (and tokenizer) built once here too
    extra: dict[str, Any] = {"engine": engine, "address": address, "split_mib": split_mib, "splits": len(splits),
                             "parts": [f"{PART.format(s.index)}.jsonl" for s in splits], **_described(options, mapper, to),
                             "encodings": {s.name: s.codec for s in splits if s.codec}}
    if plan is not None:
        extra.update(plan.provenance())
    sources = list(dict.fromkeys(Path(s.path) for s in splits))
    result = RunResult("convert", counts, out, None, examples=examples)
    result.meta = build_meta("convert", sources, counts, out, None, extra, started)
    write_json(out / "_meta.json", result.meta)
    if concat:
        single = out.with_name(out.name + ".jsonl")
        _concat([out / f"{PART.format(s.index)}.jsonl" for s in splits], single)
        _concat([rejects_path(out / f"{PART.format(s.index)}.jsonl") for s in splits], rejects_path(single))
        write_json(meta_path(single), build_meta("convert", sources, counts, single, rejects_path(single), extra, started))
        result.output, result.rejects = single, rejects_path(single)
    return result


def _described(options: dict[str, Any], mapper: Any, to: RecordKind | None) -> dict[str, Any]:
    """The mapping part of convert's sidecar, as a local run writes it."""
    described = mapper.describe() if hasattr(mapper, "describe") else mapper.spec.model_dump(
        mode="json", by_alias=True, exclude_none=True)
    mapping = options["mapping"]
    return {"preset": options["preset"], "mapping": options["preset"] or (mapping if isinstance(mapping, str) else None),
            "mapping_spec": described, "split_thinking": options["split_thinking"],
            "split_turns": options["split_turns"], "to": (to or (mapper.to if hasattr(mapper, "to") else
                                                                  mapper.spec.to)).value,
            "encoding": options["encoding"]}


def _merge(splits: list[Split], results: list[dict[str, Any]]) -> tuple[Counts, list[Reject]]:
    counts = Counts()
    for split in splits:
        counts.file(split.name)
    examples: list[Reject] = []
    for result in results:
        for name, figures in result["counts"]["files"].items():
            mine = counts.file(name)
            for key, value in figures.items():
                setattr(mine, key, getattr(mine, key) + value)
        for reason, n in result["counts"]["by_reason"].items():
            counts.by_reason[reason] = counts.by_reason.get(reason, 0) + n
        for row in result["examples"]:
            if len(examples) < 5:
                where = Locator(row["file"], row.get("line"), row.get("index"), row.get("element"))
                examples.append(Reject(Stage(row["stage"]), row["reason"], row["message"], where,
                                       field=row.get("field"), raw=row.get("raw")))
    return counts, examples


def _concat(parts: list[Path], target: Path) -> None:
    with AtomicFile(target) as sink:
        for part in parts:
            with open(part, "rb") as handle:
                while chunk := handle.read(1 << 22):
                    sink.write(chunk)
