"""The columnar convert path: JSONL → validated, rendered JSONL in polars batches.

The per-row path (parse_json_line → Mapper → pydantic → Jinja) stays the reference. This path
handles a source only when it can give the same bytes (see `fast_plan`), and within a source only
the rows it can vouch for: each block of lines is parsed by polars, and a row passes only when
polars certainly parsed it as orjson would (checked on the raw line: one top-level object whose
keys are all mapped, each at most once, each holding a string or null, no surrogate escapes) and
the per-row path would certainly accept it (required text present and not blank, no EOS inside
the text). Every other row, and every block polars cannot take whole, goes through the per-row
code, so rejects, their messages and the counts are exactly the per-row ones. Passing rows are
rendered with expressions compiled from the same Jinja template (sftdata.rendering.compile) and written by
polars' NDJSON writer, whose string escaping is orjson's (tested).
"""
from __future__ import annotations

import io
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import polars as pl

from ..errors import SftDataError
from ..ingest import sources
from ..ingest.encodings import UTF8
from ..ingest.paths import PathSyntaxError, parse_path
from ..ingest.readers import detect_encoding, iter_lines, parse_json_line
from ..ingest.sources import Format, Source
from ..items import Counts, RawItem, Reject, Style, Written
from ..schemas.mapping import MappingSpec
from ..schemas.records import RecordKind, record_model
from ..storage import Location, open_binary
from .compile import Blocks, Var, compile_blocks, to_expr
from .plan import AUTO, RenderPlan
from .rowchecks import LINE, PLAIN_KEY, Column, RowChecks, column_value, is_int, kept_by_mapper, model_requires

# Blocks are small: jemalloc keeps what polars frees, so peak RSS grows with block size x workers.
BLOCK_BYTES = 1 << 20  # about 1,200 Alpaca rows
WORKERS = 2  # chunks worked on at once: polars releases the GIL
PerRow = Callable[[Iterable[RawItem | Reject]], Iterator[object]]
_BLANK_START = re.compile(rb"\n[\n \t\x0b\x0c]")


@dataclass(slots=True)
class FastPlan:
    """How the columnar path converts one source: the fields, the template, the file's codec."""

    kind: RecordKind
    columns: tuple[Column, ...]
    codec: str = ""
    style: Style | None = None  # None: records are written as they are
    eos: str = ""
    bos: str = ""
    blocks: Blocks | None = None
    id_type: pl.DataType = pl.Int64  # how ids are read; text from the first chunk with a text id
    checks: RowChecks | None = None
    outputs: dict[tuple, list[pl.Expr]] = field(default_factory=dict)  # per chunk schema

    def schema(self, id_type: pl.DataType) -> dict[str, pl.DataType]:
        """The mapped keys' column types: text, except a key only an id comes from."""
        types: dict[str, pl.DataType] = {}
        for column in self.columns:
            if column.key is not None:
                wanted = id_type if column.name == "id" else pl.String
                types[column.key] = wanted if types.get(column.key, wanted) == wanted else pl.String
        return types

    @property
    def fields(self) -> list[str]:
        return [n for n in record_model(self.kind).model_fields if n != "meta"]


def fast_plan(source: Source, spec: MappingSpec, plan: RenderPlan | None, to: RecordKind | None,
              encoding: str) -> FastPlan | None:
    """How the columnar path converts this source, or None when only the per-row path can."""
    if source.format is not Format.jsonl or spec.explode or spec.messages is not None:
        return None
    if spec.to not in (RecordKind.instruction, RecordKind.qa) or to not in (None, spec.to):
        return None
    columns = _columns(spec)
    if columns is None or not source.path.is_file():
        return None
    fast = FastPlan(spec.to, columns)
    if plan is not None and not _with_template(fast, plan):
        return None
    fast.checks = RowChecks(fast.kind, columns, fast.eos if plan is not None else None)
    try:
        fast.codec = detect_encoding(source.path, encoding)
    except (SftDataError, OSError):
        return None  # the per-row path raises or rejects it, as it always did
    return fast if fast.codec in UTF8 else None


def _columns(spec: MappingSpec) -> tuple[Column, ...] | None:
    columns = []
    for name, src in spec.sources().items():
        if name.startswith("meta."):
            return None  # a value placed under meta: the per-row mapper
        if src.const is not None:
            if type(src.const) is not str and not (name == "id" and type(src.const) is int):
                return None
            columns.append(Column(name, None, src.const, src.required))
            continue
        if src.as_text:
            return None  # numbers written as text: the per-row mapper
        try:
            steps = parse_path(src.path) if src.path is not None else ()
        except PathSyntaxError:
            return None
        key = steps[0] if len(steps) == 1 else None
        if not isinstance(key, str) or key == spec.as_ or not PLAIN_KEY.fullmatch(key):
            return None  # joins, nested paths, indexes: the per-row mapper
        columns.append(Column(name, key, None, src.required))
    return tuple(columns)


def _with_template(fast: FastPlan, plan: RenderPlan) -> bool:
    if plan.style not in (Style.text, Style.prompt_completion):
        return False
    if (plan.template or AUTO) == AUTO and fast.kind is not RecordKind.instruction:
        return False  # auto renders Q&A with the instruction template: a conversion
    try:
        renderer = plan.renderer_for(fast.kind)
    except SftDataError:
        return False  # e.g. no EOS: the per-row path raises it when it first renders, as it always did
    if renderer.template.kind is not fast.kind:
        return False
    blocks = compile_blocks(renderer.template, {*fast.fields, "eos_token", "bos_token"})
    if blocks is None:
        return False
    fast.style, fast.eos, fast.bos, fast.blocks = plan.style, renderer.eos, renderer.bos, blocks
    return True


# --- reading ----------------------------------------------------------------------------------

def convert_source(source: Source, fast: FastPlan, counts: Counts, per_row: PerRow) -> Iterator[object]:
    """The source's output in input order: Written blocks, and whatever per_row yields for the
    rows (RawItems or read Rejects) the columnar checks leave to it."""
    tally, number = counts.file(source.name), 1  # number: the line number of the chunk's first line
    for chunk in _prepared(source.path, fast):
        if chunk is None:  # a line too long to hold: the reader's own loop takes the rest of the file
            rest = (parse_json_line(source.name, n, line, fast.codec) for n, line in iter_lines(source.path)
                    if n >= number)
            yield from per_row(rest)
            return
        for part in chunk.parts:
            if isinstance(part, Written):
                tally.read += part.rows
                tally.written += part.rows
                yield part
            else:
                yield from per_row(parse_json_line(source.name, number + chunk.offsets[i], chunk.lines[i],
                                                   fast.codec) for i in range(*part))
        number += chunk.count


@dataclass(slots=True)
class _Chunk:
    count: int  # lines in the block, blank ones included
    offsets: range | list[int]  # each row's line, counted from the block's first
    lines: list[bytes]  # the rows' raw lines, split only when some go the per-row way
    parts: list[Written | tuple[int, int]]  # in order: rendered runs, and (start, stop) row ranges


def _prepared(path: Location, fast: FastPlan) -> Iterator[_Chunk | None]:
    """Chunks in file order, WORKERS of them worked on at once; None where a line is too long to
    hold (after the chunk of the lines before it)."""
    with ThreadPoolExecutor(WORKERS) as pool:
        pending: deque[Future[_Chunk] | None] = deque()
        for block in _blocks(path):
            pending.append(pool.submit(_prepare, fast, block) if block is not None else None)
            while pending and (len(pending) >= WORKERS or pending[-1] is None):
                future = pending.popleft()
                yield future.result() if future is not None else None
        while pending:
            future = pending.popleft()
            yield future.result() if future is not None else None


def _blocks(path: Location, size: int = BLOCK_BYTES) -> Iterator[bytes | None]:
    """Whole lines without the last line end, in bounded memory; lines end at \n as for
    readers.iter_lines, and a UTF-8 BOM before line 1 is dropped. A line longer than
    sources.MAX_LINE_BYTES yields None (after the lines before it) and ends the blocks."""
    rest, bom = b"", 0
    with open_binary(path) as handle:
        while data := handle.read(size):
            if bom == 0 and handle.tell() == len(data) and data.startswith(b"\xef\xbb\xbf"):
                data, bom = data[3:], 3  # iter_lines measures line 1 with its BOM
            data = rest + data if rest else data
            cut = data.rfind(b"\n")
            block, rest = (data[:cut], data[cut + 1:]) if cut >= 0 else (None, data)
            if block is not None:
                long = _first_long(block, bom)
                if long is not None:
                    if long:
                        yield b"\n".join(block.split(b"\n")[:long])
                    yield None
                    return
                yield block
                bom = -1  # line 1 is behind us
            if _first_long(rest, max(bom, 0)) is not None:
                yield None
                return
    if rest:
        yield rest


def _first_long(block: bytes, bom: int) -> int | None:
    """The offset of the first line in block longer than the reader's limit, if any (bom: the
    bytes dropped from the block's first line, when that is line 1)."""
    limit = sources.MAX_LINE_BYTES
    if len(block) + max(bom, 0) <= limit:
        return None
    for offset, line in enumerate(block.split(b"\n")):
        if len(line) + (max(bom, 0) if offset == 0 else 0) > limit:
            return offset
    return None


def _prepare(fast: FastPlan, block: bytes) -> _Chunk:
    data, offsets = _kept_lines(block)
    parts, offsets, count = _chunk(fast, data, offsets, block)
    lines = data.split(b"\n") if any(not isinstance(p, Written) for p in parts) else []
    return _Chunk(count, offsets, lines, parts)


def _kept_lines(block: bytes) -> tuple[bytes, list[int] | None]:
    """The non-blank lines of a block joined by \n, and their offsets (as iter_lines skips
    blank lines); offsets None when every line is kept (then polars counts them)."""
    if _clean(block):
        return block, None
    kept, offsets = [], []
    for offset, line in enumerate(block.split(b"\n")):
        line = line.rstrip(b"\r")
        if line.strip():
            kept.append(line)
            offsets.append(offset)
    return b"\n".join(kept), offsets


def _clean(block: bytes) -> bool:
    # No CR and no line that is empty or starts with whitespace, so no line is blank or needs stripping.
    return block[:1] not in b" \t\x0b\x0c\n" and b"\r" not in block and not _BLANK_START.search(block)


# --- one chunk ----------------------------------------------------------------------------------

def _chunk(fast: FastPlan, data: bytes, offsets: list[int] | None,
           block: bytes) -> tuple[list[Written | tuple[int, int]], range | list[int], int]:
    """(Written runs of passing rows and (start, stop) runs of rows left to the per-row path,
    the rows' line offsets, the block's line count)."""
    if offsets == []:
        return [], offsets, block.count(b"\n") + 1
    frame = _parse(fast, data, offsets)
    if offsets is None:  # every line kept: polars' row count is the line count, checked in _parse
        count = frame.height if frame is not None else block.count(b"\n") + 1
        offsets = range(count)
    else:
        count = block.count(b"\n") + 1
    if frame is None:
        return [(0, len(offsets))], offsets, count
    ok = fast.checks.passing(frame)  # type: ignore[union-attr]
    if ok.all():
        return [Written(_write(frame, fast), frame.height)], offsets, count
    parts: list[Written | tuple[int, int]] = []
    written, row, taken = _write(frame.filter(ok), fast).split(b"\n"), 0, 0
    for length, passed in ok.rle().struct.unnest().iter_rows():
        if passed:  # each output row is one line: polars escapes newlines inside strings
            parts.append(Written(b"\n".join(written[taken:taken + length]) + b"\n", length))
            taken += length
        else:
            parts.append((row, row + length))
        row += length
    return parts, offsets, count


def _parse(fast: FastPlan, data: bytes, offsets: list[int] | None) -> pl.DataFrame | None:
    """The chunk as raw lines plus the mapped keys' columns, or None when polars cannot take it
    whole. Keys are read with a fixed schema (other keys are dropped: the row checks catch them);
    an id is tried as an integer first and read as text from the first chunk where that fails."""
    try:
        lines = pl.read_csv(io.BytesIO(data), has_header=False, separator="\x01", quote_char=None,
                            schema={LINE: pl.String})
        frame = None
        for id_type in dict.fromkeys((fast.id_type, pl.String)):
            try:
                frame = pl.read_ndjson(io.BytesIO(data), schema=fast.schema(id_type))
                fast.id_type = id_type
                break
            except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
                continue
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError, ValueError):
        return None  # a panic inside polars on odd input is its problem, not the run's: per row
    rows = lines.height
    if frame is None or frame.height != rows or (offsets is not None and len(offsets) != rows):
        return None
    # The lines column must be the data split at \n, neither line dropped nor merged.
    if lines[LINE].str.len_bytes().sum() + rows - 1 != len(data) or lines[LINE].null_count():
        return None
    return pl.concat([lines, frame], how="horizontal")


# --- output -------------------------------------------------------------------------------------

def _record_values(fast: FastPlan, schema: pl.Schema) -> dict[str, tuple[pl.Expr, bool]]:
    """Each record field's value after mapping and model defaults, and whether it is an integer."""
    out: dict[str, tuple[pl.Expr, bool]] = {}
    for name, info in record_model(fast.kind).model_fields.items():
        if name != "meta":  # unmapped: the model's default ("" for input, else None)
            out[name] = (pl.lit(None if info.is_required() else info.default, dtype=pl.String), False)
    for column in fast.columns:
        value = pl.when(kept_by_mapper(column, schema)).then(column_value(column, schema))
        default = "" if column.name == "input" else None
        out[column.name] = (value.otherwise(pl.lit(default)), is_int(column, schema))
    return out


def _write(frame: pl.DataFrame, fast: FastPlan) -> bytes:
    """The output lines of these rows, as the per-row path writes them."""
    key = tuple(frame.schema.items())
    if key not in fast.outputs:
        fast.outputs[key] = [_record_line(fast, frame.schema)] if fast.blocks is None else _rendered(fast, frame.schema)
    buffer, rows = io.BytesIO(), frame.select(fast.outputs[key])
    if fast.blocks is None:  # one column of finished JSON lines
        rows.write_csv(buffer, include_header=False, quote_style="never")
    else:
        rows.write_ndjson(buffer)
    return buffer.getvalue()


def _rendered(fast: FastPlan, schema: pl.Schema) -> list[pl.Expr]:
    assert fast.blocks is not None
    variables = {"eos_token": Var(pl.lit(fast.eos), pl.lit(bool(fast.eos))),
                 "bos_token": Var(pl.lit(fast.bos), pl.lit(bool(fast.bos)))}
    for name, (value, integer) in _record_values(fast, schema).items():
        text = value.cast(pl.String) if integer else value
        truthy = value != 0 if integer else value.str.len_bytes() > 0
        variables[name] = Var(text.fill_null("None"), truthy.fill_null(False))
    prompt = to_expr(fast.blocks.prompt, variables)
    body = to_expr(fast.blocks.completion, variables)
    completion = pl.when(body.str.ends_with(fast.eos)).then(body).otherwise(pl.concat_str([body, pl.lit(fast.eos)]))
    if fast.style is Style.prompt_completion:
        return [prompt.alias("prompt"), completion.alias("completion")]
    return [pl.concat_str([prompt, completion]).alias("text")]


def _record_line(fast: FastPlan, schema: pl.Schema) -> pl.Expr:
    """record_row's JSON (model field order, None left out) as one string per row."""
    parts: list[pl.Expr] = []
    for name, (value, integer) in _record_values(fast, schema).items():
        encoded = value.cast(pl.String) if integer else (
            pl.struct(value.alias("v")).struct.json_encode().str.strip_prefix('{"v":').str.strip_suffix("}"))
        piece = pl.concat_str([pl.lit(("," if parts else "{") + f'"{name}":'), encoded])
        parts.append(piece if not parts or name == "input" or model_requires(fast.kind, name)
                     else pl.when(value.is_not_null()).then(piece).otherwise(pl.lit("")))
    return pl.concat_str([*parts, pl.lit("}")]).alias("line")
