"""The commands as library functions: read → map → validate → (render) → write, with counts.

convert() starts from raw data and a mapping; render() and validate() start from records JSONL as
convert writes it. All three share one loop, so the counts invariant holds the same way for each.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SftDataError
from .formats.interop import Importer, importer_for
from .formats.llamafactory import llamafactory_importer
from .ingest.mapping import Mapped, Mapper, resolve_spec
from .ingest.readers import Encoding, Format, Source, detect_encoding, expand_sources, read_items
from .ingest.records import RecordParser, mapped_records, record_row
from .items import Counts, Progress, RawItem, Reject, RunResult, Style, Written
from .provenance import build_meta
from .rendering.plan import RenderPlan, TemplateArgs, TrainOn, make_plan
from .schemas.mapping import MappingSpec
from .schemas.records import RecordKind, record_model
from .storage import location, size_of
from .writers import AtomicFile, dumps_line, meta_path, rejects_path, write_json

if TYPE_CHECKING:
    from .rendering.columnar import FastPlan

def _run(command: str, stream: Iterator[Mapped | Reject], counts: Counts, output: Path | None,
         plan: RenderPlan | None, progress: Progress | None, keep_examples: int = 5) -> RunResult:
    """Drain the stream into the output and rejects files (or only count, when output is None)."""
    result = RunResult(command, counts)
    out_file = AtomicFile(output) if output else None
    rej_file = AtomicFile(rejects_path(output)) if output else None
    with _maybe(out_file) as out, _maybe(rej_file) as rej:
        done = reported = 0
        for value in stream:
            if isinstance(value, Written):  # rows the columnar path rendered and counted already
                if out is not None:
                    out.write(value.data)
                done += value.rows - 1
                value = None  # type: ignore[assignment]
            if isinstance(value, Mapped):
                row = plan.row(value.record, value.locator) if plan else record_row(value.record)
                if not isinstance(row, Reject):
                    counts.file(value.locator.file).written += 1
                    if out is not None:
                        out.write(dumps_line(row))
                    value = None  # type: ignore[assignment]
                else:
                    value = row  # type: ignore[assignment]
            if isinstance(value, Reject):
                counts.reject(value)
                result.add_example(value, keep_examples)
                if rej is not None:
                    rej.write(dumps_line(value.as_dict()))
            done += 1
            if progress and done - reported >= 1000:
                progress(done - reported)
                reported = done
        if progress:
            progress(done - reported)
    result.output, result.rejects = output, (rejects_path(output) if output else None)
    return result


class _maybe:
    def __init__(self, atomic: AtomicFile | None) -> None:
        self.atomic = atomic

    def __enter__(self):
        return self.atomic.__enter__() if self.atomic else None

    def __exit__(self, *exc: Any) -> None:
        if self.atomic:
            self.atomic.__exit__(*exc)


def _finish(result: RunResult, sources: list[Path], extra: dict[str, Any], plan: RenderPlan | None,
            started: float, sidecar: bool = True) -> RunResult:
    """The run's meta, written beside the output unless `sidecar` is False (a split's: sftdata.provenance)."""
    if plan is not None:
        extra = {**extra, **plan.provenance()}
    result.meta = build_meta(result.command, sources, result.counts, result.output, result.rejects, extra, started,
                             hash_sources=sidecar)
    if result.output is not None and sidecar:
        write_json(meta_path(result.output), result.meta)
    return result


def convert(inputs: list[str | os.PathLike[str]], output: str | os.PathLike[str], *,
            preset: str | None = None, mapping: str | os.PathLike[str] | MappingSpec | Importer | None = None,
            to: RecordKind | None = None, encoding: Encoding = "auto", records_path: str | None = None,
            template: str | None = None, tokenizer: str | None = None, eos: str | None = None,
            style: Style | None = None, template_args: TemplateArgs = None, train_on: TrainOn = "all",
            split_thinking: bool = False, split_turns: bool = False, dataset_info: str | os.PathLike[str] | None = None,
            name: str | None = None, progress: Progress | None = None, sidecar: bool = True) -> RunResult:
    """Raw data → records JSONL (or rendered SFT JSONL with a template), plus rejects and meta files.

    `mapping` may also be an Importer (sftdata.formats.interop), as the openai/trl/hf/llamafactory presets use;
    `dataset_info` and `name` pick a LLaMA-Factory dataset_info.json entry (implying preset="llamafactory");
    `split_thinking` moves an assistant content's leading <think>…</think> into reasoning_content;
    `split_turns` writes one chat per trained assistant turn, ending at it (counted as rows read);
    `sidecar=False` returns the meta without writing OUT.meta.json (a split of a run: sftdata.scale)."""
    started = time.perf_counter()
    style, to = Style(style) if style is not None else None, RecordKind(to) if to is not None else None
    if (dataset_info is not None or preset == "llamafactory" or name is not None) and not isinstance(mapping, Importer):
        mapping, preset = llamafactory_importer(dataset_info, inputs, name, mapping=mapping), "llamafactory"
    sources = expand_sources(inputs)
    importer = importer_for(preset, mapping)  # foreign formats (sftdata.formats.interop) read row by row
    spec = None if importer else resolve_spec(preset, mapping)
    plan = make_plan(template, tokenizer, eos, style, template_args=template_args, train_on=train_on)
    counts = Counts()
    for source in sources:
        counts.file(source.name)
    plain = not (split_thinking or split_turns)
    fast = {s.name: fast_plan(s, spec, plan, to, encoding) if spec and plain else None for s in sources}
    stream = _convert_stream(sources, fast, importer or Mapper(spec), counts, to, encoding, records_path,
                             split_thinking, split_turns)
    result = _run("convert", stream, counts, location(output), plan, progress)
    mapping_desc: Any = preset or (str(mapping) if mapping and not isinstance(mapping, (MappingSpec, Importer)) else None)
    described = importer.describe() if importer else spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    extra = {"preset": preset, "mapping": mapping_desc, "mapping_spec": described, "split_thinking": split_thinking,
             "split_turns": split_turns, "to": (to or (importer or spec).to).value, "encoding": encoding,
             "encodings": _encodings(sources, encoding, fast), "fast_path": {k: v is not None for k, v in fast.items()}}
    return _finish(result, [s.path for s in sources], extra, plan, started, sidecar)


def _encodings(sources: list[Source], encoding: Encoding, fast: dict[str, FastPlan | None]) -> dict[str, str | None]:
    """The codec each text file was read with (what --encoding auto detected), for the sidecar."""
    out: dict[str, str | None] = {}
    for source in sources:
        plan = fast.get(source.name)
        if source.format is Format.parquet or not source.path.is_file():  # a FIFO or device is never opened here
            continue
        try:
            out[source.name] = plan.codec if plan is not None else detect_encoding(source.path, encoding)
        except (OSError, SftDataError):
            out[source.name] = None
    return out


# Below this size a file goes the per-row way: importing polars for the columnar path costs more
# start-up (0.3-1 s) than it saves on a few hundred rows.
FAST_PATH_MIN_BYTES = 1 << 20


def fast_plan(source: Source, spec: MappingSpec, plan: RenderPlan | None, to: RecordKind | None,
              encoding: Encoding) -> FastPlan | None:
    """The columnar plan for a source, or None where the per-row path is the one to take."""
    if source.span is not None or (size_of(source.path) or 0) < FAST_PATH_MIN_BYTES:
        return None  # a split of a file (sftdata.scale), small, or a problem the reader reports
    from .rendering.columnar import fast_plan as columnar_plan

    return columnar_plan(source, spec, plan, to, encoding)


def _convert_stream(sources: list[Source], fast: dict[str, FastPlan | None], mapper: Mapper | Importer,
                    counts: Counts, to: RecordKind | None, encoding: Encoding,
                    records_path: str | None, split_think: bool = False, split_turn: bool = False) -> Iterator[Any]:
    """Per source: the columnar path where it gives the same bytes (sftdata.rendering.columnar), else the per-row loop."""
    def per_row(items: Iterable[RawItem | Reject]) -> Iterator[Mapped | Reject]:
        return mapped_records(items, mapper, counts, to, split_think, split_turn)

    for source in sources:
        plan = fast[source.name]
        if plan is not None:
            from .rendering.columnar import convert_source

            yield from convert_source(source, plan, counts, per_row)
        else:
            yield from per_row(read_items([source], encoding=encoding, records_path=records_path))


def render(inputs: list[str | os.PathLike[str]], output: str | os.PathLike[str], *,
           template: str | None = "auto", tokenizer: str | None = None, eos: str | None = None,
           style: Style = Style.text, kind: RecordKind | None = None, template_args: TemplateArgs = None,
           train_on: TrainOn = "all", split_thinking: bool = False, split_turns: bool = False,
           progress: Progress | None = None, sidecar: bool = True) -> RunResult:
    """Records JSONL → SFT JSONL in the given style, with exactly one EOS per trained span (`sidecar`: see
    convert)."""
    started = time.perf_counter()
    style, kind = Style(style), RecordKind(kind) if kind is not None else None  # the CLI's words work too
    sources = expand_sources(inputs)
    plan = make_plan(template or "auto", tokenizer, eos, style, template_args=template_args,
                     train_on=train_on)
    counts = Counts()
    for source in sources:
        counts.file(source.name)
    stream = mapped_records(read_items(sources), RecordParser(kind), counts, None, split_thinking, split_turns)
    result = _run("render", stream, counts, location(output), plan, progress)
    return _finish(result, [s.path for s in sources], {}, plan, started, sidecar)


def validate(inputs: list[str | os.PathLike[str]], *, kind: RecordKind | None = None,
             rejects: str | os.PathLike[str] | None = None, progress: Progress | None = None) -> RunResult:
    """Check records JSONL against the record models; writes rejects only when asked to."""
    sources = expand_sources(inputs)
    counts = Counts()
    for source in sources:
        counts.file(source.name)
    stream = mapped_records(read_items(sources), RecordParser(kind), counts, None)
    result = _run("validate", stream, counts, None, None, progress, keep_examples=20)
    if rejects is not None:
        with AtomicFile(rejects) as handle:
            for reject in mapped_records(read_items(sources), RecordParser(kind), Counts(), None):
                if isinstance(reject, Reject):
                    handle.write(dumps_line(reject.as_dict()))
        result.rejects = Path(rejects)
    return result


def schema(kind: RecordKind) -> dict[str, Any]:
    return record_model(kind).model_json_schema()


__all__ = ["RunResult", "SftDataError", "convert", "render", "validate", "schema"]
