"""Export records to what people train with: TRL, OpenAI fine-tuning, LLaMA-Factory, axolotl and a
Hugging Face datasets folder, each in the shape its own loader reads as is.

Every record is written or rejected with a reason (a format that cannot express it, e.g. two tool
results in a row for LLaMA-Factory). What a format cannot carry is counted, never dropped silently:
`dropped_fields` (id, meta, the separate `input`/`context` of a record whose text joins the user
turn, tool call ids) and `converted` (records re-expressed as another kind, tools re-wrapped).
The `hf` folder carries everything; `convert --preset hf` reads it back.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from ..errors import InputError, OptionError, OutputError, option
from ..ingest.mapping import Mapped
from ..ingest.readers import expand_sources, read_items
from ..ingest.records import RecordParser, mapped_records, record_row
from ..items import Counts, Progress, Reject, RunResult, Stage
from ..provenance import build_meta, read_meta
from ..writers import AtomicFile, dumps_line, meta_path, rejects_path, write_json
from .card import Stats
from .hfdataset import Profile, ShardWriter, read_rows, split_files
from .rows import NotExportable
from .targets import FOLDERS, LAYOUTS, AxolotlLayout, ExportFormat, HfLayout, Layout, Tally

__all__ = ["ExportFormat", "ExportResult", "export"]


@dataclass(slots=True)
class ExportResult(RunResult):
    format: str = ""
    dropped: dict[str, int] = field(default_factory=dict)
    converted: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out = RunResult.summary(self)
        out.update(to=self.format, dropped_fields=self.dropped, converted=self.converted, output_files=self.files)
        return out


@contextmanager
def _staged(output: Path, overwrite: bool) -> Iterator[Path]:
    """A temporary folder beside `output`, renamed into place only when the block succeeds."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp"))
    except OSError as error:
        raise OutputError(f"cannot write: {error.strerror or error}", file=str(output)) from None
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        old = None
        if output.exists():
            old = output.with_name(f".{output.name}.{os.getpid()}.old")
            os.replace(output, old)
        os.replace(tmp, output)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write: {error.strerror or error}", file=str(output)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _check_target(output: Path, folder: bool, overwrite: bool) -> None:
    if not folder:
        if output.is_dir():
            raise OutputError("is a folder; this format writes one .jsonl file", file=str(output))
        return
    if output.exists() and not output.is_dir():
        raise OutputError("exists and is not a folder; this format writes a folder", file=str(output))
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        previous = read_meta(output)  # the sidecar of an earlier export to this folder
        if not (previous and previous.get("command") == "export"):
            raise OutputError("folder exists and is not empty", file=str(output),
                              hint="pick a new folder, or pass --force to replace it")


def _inputs(path: Path, eval_file: Path | None) -> dict[str, list[Path]]:
    if not path.exists():
        raise InputError("no such file or directory", file=str(path))
    splits = split_files(path)
    if not splits:
        raise InputError("no split files (.jsonl) in this folder", file=str(path))
    if any(p.suffix == ".parquet" for paths in splits.values() for p in paths):
        raise InputError(f"this is an exported hf folder; convert it back with {option('preset', 'hf')} first", file=str(path))
    if eval_file is not None:
        if not eval_file.is_file():
            raise InputError("no such file", file=str(eval_file))
        splits["validation"] = [eval_file]
    return splits


def export(input: str | os.PathLike[str], output: str | os.PathLike[str], to: ExportFormat | str, *,
           eval_file: str | os.PathLike[str] | None = None, name: str | None = None, license: str | None = None,
           overwrite: bool = False, rows_per_shard: int = 100_000, template: str | None = None,
           tokenizer: str | None = None, progress: Progress | None = None) -> ExportResult:
    """Records JSONL (or a split folder) → the files `to` trains from, plus rejects and a .meta.json sidecar.

    With `template` (trl, axolotl), a chat template with {% generation %} blocks is checked on the chats
    and written beside the data, for TRL's assistant_only_loss (sftdata.formats.trainingtemplate)."""
    started = time.perf_counter()
    fmt, source, out = ExportFormat(to), Path(input), Path(output)
    splits = _inputs(source, Path(eval_file) if eval_file else None)
    trained_with = _training_template(fmt, template, tokenizer, splits) if template else None
    if fmt not in FOLDERS and len(splits) > 1:
        raise InputError(f"{fmt.value} writes one file: export one split at a time", file=str(source),
                         hint="or use --to hf, llamafactory or axolotl, which keep splits")
    _check_target(out, fmt in FOLDERS, overwrite)
    profile = Profile()
    for paths in splits.values():
        for row in read_rows(paths):
            profile.add(row)
    if profile.rendered and not profile.kinds:
        raise InputError("holds rendered SFT text, not records", file=str(source),
                         hint="export the records convert writes without --template/--style")
    tally, counts = Tally(), Counts()
    name = name or out.stem or "dataset"
    if not re.fullmatch(r"[\w.-]+", name):
        raise OutputError(f"dataset name {name!r} may hold only letters, digits, '_', '-' and '.'")
    layout = LAYOUTS[fmt](profile, Tally(), name, out)
    if isinstance(layout, HfLayout):
        layout.license = license
    all_sources = [p for paths in splits.values() for p in paths]
    result = ExportResult("export", counts, format=fmt.value)
    stats: dict[str, Stats] = {}
    with ExitStack() as stack:
        root = stack.enter_context(_staged(out, overwrite)) if fmt in FOLDERS else out.parent
        rejects = stack.enter_context(AtomicFile(rejects_path(out)))
        done = 0
        for split, paths in splits.items():
            sources = expand_sources(paths)
            for s in sources:
                counts.file(s.name)
            stats[split] = Stats()
            target = layout.file_for(root, split, len(splits) == 1)
            sink = _open_sink(stack, fmt, target, root, split, layout, rows_per_shard)
            stream = mapped_records(read_items(sources), RecordParser(), counts, None)
            done = _drain(stream, layout, sink, stats[split], tally, rejects, result, progress, done)
            layout.files += sink.close()
        if progress:
            progress(done % 1000)
        files = [str(p.relative_to(root)) if fmt in FOLDERS else p.name for p in layout.files]
        extra = {"to": fmt.value, "name": layout.name, **layout.describe(), "files": files,
                 "dropped_fields": dict(sorted(tally.dropped.items())),
                 "converted": dict(sorted(tally.converted.items()))}
        if trained_with is not None:
            extra["chat_template"] = _write_template(trained_with, fmt, out, root, layout)
        result.meta = build_meta("export", all_sources, counts, out, rejects_path(out), extra, started)
        layout.finish(root, stats, result.meta)
    write_json(meta_path(out), result.meta)
    result.output, result.rejects = out, rejects_path(out)
    result.dropped, result.converted, result.files = extra["dropped_fields"], extra["converted"], files
    return result


def _training_template(fmt: ExportFormat, template: str, tokenizer: str | None,
                       splits: dict[str, list[Path]]) -> Any:
    from ..schemas.records import ChatRecord
    from .trainingtemplate import training_template

    if fmt not in (ExportFormat.trl, ExportFormat.axolotl):
        raise OptionError(f"applies to the trl and axolotl exports, not {fmt.value}", option="template")
    chats = (m.record for paths in splits.values()
             for m in mapped_records(read_items(expand_sources(paths)), RecordParser(), Counts(), None)
             if isinstance(m, Mapped) and isinstance(m.record, ChatRecord))
    return training_template(template, tokenizer, chats)


def _write_template(trained_with: Any, fmt: ExportFormat, out: Path, root: Path, layout: Layout) -> dict[str, Any]:
    """OUT.chat_template.jinja beside a JSONL export; chat_template.jinja (and axolotl.yaml's keys) in a folder."""
    path = root / "chat_template.jinja" if fmt in FOLDERS else out.with_name(f"{out.stem}.chat_template.jinja")
    with AtomicFile(path) as handle:
        handle.write(trained_with.source.encode("utf-8"))
    if isinstance(layout, AxolotlLayout):
        layout.chat_template = trained_with.source
    return trained_with.ref(path)


def _drain(stream: Iterator[Mapped | Reject], layout: Layout, sink: Any, stats: Stats, tally: Tally, rejects: IO[bytes],
           result: ExportResult, progress: Progress | None, done: int) -> int:
    """Each record written (its notes added to the tally) or rejected with the reason its format gives."""
    counts = result.counts
    for value in stream:
        if isinstance(value, Mapped):
            layout.tally = Tally()  # the notes of this record only
            try:
                row = layout.encode(value.record)
            except NotExportable as error:
                value = Reject(Stage.export, error.reason, error.message, value.locator,  # type: ignore[assignment]
                               field=error.field, raw=record_row(value.record))
            else:
                tally.dropped.update(layout.tally.dropped)
                tally.converted.update(layout.tally.converted)
                sink.add(row)
                stats.add(record_row(value.record))
                counts.file(value.locator.file).written += 1
        if isinstance(value, Reject):
            counts.reject(value)
            if len(result.examples) < 5:
                result.examples.append(value)
            rejects.write(dumps_line(value.as_dict()))
        done += 1
        if progress and done % 1000 == 0:
            progress(1000)
    return done


class _JsonlSink:
    def __init__(self, handle: IO[bytes], path: Path) -> None:
        self.handle, self.path = handle, path

    def add(self, row: dict[str, Any]) -> None:
        self.handle.write(dumps_line(row))

    def close(self) -> list[Path]:
        return [self.path]


class _JsonArraySink(_JsonlSink):
    """A JSON list, one row per line: what LLaMA-Factory's Alpaca/ShareGPT files are."""

    def __init__(self, handle: IO[bytes], path: Path) -> None:
        super().__init__(handle, path)
        self.first = True
        handle.write(b"[")

    def add(self, row: dict[str, Any]) -> None:
        self.handle.write((b"\n" if self.first else b",\n") + orjson.dumps(row))
        self.first = False

    def close(self) -> list[Path]:
        self.handle.write(b"\n]\n")
        return [self.path]


class _ParquetSink:
    def __init__(self, writer: ShardWriter, layout: HfLayout) -> None:
        self.writer, self.layout = writer, layout

    def add(self, row: dict[str, Any]) -> None:
        self.writer.add(row)

    def close(self) -> list[Path]:
        files = self.writer.finish()
        self.layout.splits.append({"name": self.writer.split, "num_bytes": self.writer.num_bytes,
                                   "num_examples": self.writer.num_examples})
        return files


def _open_sink(stack: ExitStack, fmt: ExportFormat, target: Path, root: Path, split: str, layout: Layout,
               rows_per_shard: int) -> Any:
    if isinstance(layout, HfLayout):
        return _ParquetSink(ShardWriter(root, split, layout.schema, rows_per_shard), layout)
    handle = stack.enter_context(AtomicFile(target))
    return _JsonArraySink(handle, target) if fmt is ExportFormat.llamafactory else _JsonlSink(handle, target)
