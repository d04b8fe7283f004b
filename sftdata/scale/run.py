"""Running a command split by split on an engine, with the output a local run writes.

`convert_split` is the task: it reads one split (sftdata.scale.splits) and runs it through the same code
as `sftdata convert` (mapping or importer, records, render plan, the pipeline's write loop), writing
`part-NNNNN.jsonl` and `part-NNNNN.rejects.jsonl` atomically; a task retried after its worker died, or
run twice, rewrites its own part and nothing else. The render plan and the tokenizer are built once per
worker process. sftdata.scale.engines hands the tasks to local, Ray or Spark; sftdata.scale.driver sums the
counts per file and reason into one `_meta.json` and, with `concat`, writes the parts end to end as the
single files a local run writes.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import SftDataError
from ..formats.interop import importer_for
from ..ingest.mapping import Mapper, resolve_spec
from ..ingest.readers import read_source
from ..ingest.records import _records
from ..items import Counts, RunResult, Style
from ..pipeline import _run
from ..rendering.plan import make_plan
from ..schemas.mapping import MappingSpec
from ..schemas.records import RecordKind
from ..writers import rejects_path
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


@dataclass(frozen=True, slots=True)
class ConvertJob:
    split: Split
    out_dir: str
    options: dict[str, Any] = field(default_factory=dict)  # JSON-able: the convert options


_PREPARED: dict[bytes, tuple[Any, Any, RecordKind | None]] = {}  # per worker: options → (mapper, tokenizer, to)


def _prepare(options: dict[str, Any]) -> tuple[Any, Any, RecordKind | None]:
    """The mapper and the tokenizer, built once per worker process."""
    key = orjson.dumps(options, option=orjson.OPT_SORT_KEYS)
    if key not in _PREPARED:
        mapping = options["mapping"]
        mapping = MappingSpec.model_validate(mapping) if isinstance(mapping, dict) else mapping
        importer = importer_for(options["preset"], mapping)
        mapper = importer or Mapper(resolve_spec(options["preset"], mapping))
        tokenizer = worker_tokenizer(options["tokenizer"]) if options["tokenizer"] else None
        _PREPARED[key] = (mapper, tokenizer, RecordKind(options["to"]) if options["to"] else None)
    return _PREPARED[key]


def _plan(options: dict[str, Any], tokenizer: Any) -> Any:
    """A render plan of the split's own (cheap once the tokenizer is loaded): its sidecar names the templates
    this split's rows used, in the order they first did."""
    style = Style(options["style"]) if options["style"] else None
    return make_plan(options["template"], tokenizer, options["eos"], style,
                     template_args=options["template_args"], train_on=options["train_on"])


def convert_split(job: ConvertJob) -> dict[str, Any]:
    """One split through convert's code: its part files, and its counts, first rejects and rendering as JSON."""
    split, options = job.split, job.options
    try:
        mapper, tokenizer, to = _prepare(options)
        plan = _plan(options, tokenizer)
        counts = Counts()
        counts.file(split.name)
        items = read_source(split.source(), encoding=options["encoding"], records_path=options["records_path"])
        stream = _records(items, mapper, counts, to, options["split_thinking"], options["split_turns"])
        result = _run("convert", stream, counts, part_path(job.out_dir, split.index), plan, None)
    except SftDataError as error:
        return task_error(split.index, error)
    return {"index": split.index, "counts": counts.summary(), "examples": [r.as_dict() for r in result.examples],
            "rendering": plan.provenance() if plan is not None else None}


def convert(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *, engine: Engine,
            address: str | None = None, split_mib: float = 64, concat: bool = False,
            options: dict[str, Any]) -> RunResult:
    """`sftdata convert --engine ...`: OUTPUT is a folder of part files with one _meta.json."""
    started = time.perf_counter()
    splits = splits_of(inputs, split_mib, engine, address, options["encoding"])  # a bad input fails before OUT is made
    out = open_folder(output)
    results = run_tasks(convert_split, [ConvertJob(s, str(out), options) for s in splits], engine, address)
    counts, examples = merge(splits, results)
    mapper, _, to = _prepare(options)
    extra: dict[str, Any] = {**engine_figures(engine, address, split_mib, splits), **_described(options, mapper, to),
                             "encodings": {s.name: s.codec for s in splits if s.codec}}
    rendered = [r["rendering"] for r in results if r["rendering"] is not None]
    if rendered:
        extra.update({**rendered[0], **rendering(rendered, options["tokenizer"])})
    result = RunResult("convert", counts, out, None, examples=examples)
    result.meta, single = finish("convert", out, splits, counts, extra, started, concat)
    if single is not None:
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
