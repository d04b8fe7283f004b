"""`sftdata dedup`: drop exact and near-duplicate rows, keeping the first of each cluster.

The input is read once, in bounded memory: each record is validated, its compared text sketched
(sftdata.curate.minhash: ~220 bytes per row) and normalised into a temporary file (sftdata.curate.verify.
SpilledTexts), and the line OUT would hold for it (the row as read, as JSON) appended to a second temporary
file (LineKeeper); invalid rows go to OUT.rejects.jsonl. Candidate pairs are then found in numpy and verified
on the exact Jaccard similarity of their shingle sets, reading back only the candidates' texts; the second
pass copies the kept rows' lines to OUT a run at a time (write_rows) and writes each dropped row to
OUT.dupes.jsonl (with the locator of the row it duplicates and that exact similarity). The two temporary files
sit beside OUT and cost about the compared text's and the kept input's size of disk until the run ends.
`against` files are sketched first, as references: a row found in one (e.g. the eval set) is dropped, and
nothing of the references is written.

What is compared by default (DEFAULT_FIELDS, `Side.exchange`) is what a model learns from a row: the
instruction, input and output; the question and answer (not the context: the pairs about one passage
all repeat it); the user and assistant turns of a chat (not the system prompt or tool output, which
many rows share). `fields` names other fields.
"""
from __future__ import annotations

import math
import os
import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from ..ingest.mapping import Mapped
from ..ingest.readers import expand_sources, read_items
from ..ingest.records import RecordParser, mapped_records
from ..items import Counts, Locator, RawItem, Reject, Stage
from ..provenance import build_meta
from ..storage import location
from ..writers import AtomicFile, dumps_line, file_digest, meta_path, rejects_path, sidecar_path, write_json
from .fields import Side, check_fields, record_text
from .minhash import DEFAULT_THRESHOLD, NUM_PERM, Matches, Sketcher, Sketches, Verify, find_duplicates
from .results import CurateResult, Progress, Ticker
from .verify import SpilledTexts

SKETCH_BATCH = 4096
WRITE_BYTES = 1 << 20  # output lines read back and written at a time, and kept by LineKeeper before a flush (4 MiB
# grew peak RSS by 34 MiB: malloc keeps the freed blocks)
DEFAULT_FIELDS = Side.exchange


def dupes_path(output: Path) -> Path:
    return sidecar_path(output, ".dupes.jsonl")


def compared(fields: Sequence[str] | None) -> Side | list[str]:
    """What dedup compares: the named fields, or DEFAULT_FIELDS."""
    return check_fields(fields) if fields else DEFAULT_FIELDS


@dataclass(slots=True)
class Locators:
    """Row locators kept as integer columns (a Locator object per row would cost ~100 bytes)."""

    files: list[str] = field(default_factory=list)
    numbers: dict[str, int] = field(default_factory=dict)
    file: array = field(default_factory=lambda: array("i"))
    line: array = field(default_factory=lambda: array("q"))
    index: array = field(default_factory=lambda: array("q"))
    element: array = field(default_factory=lambda: array("q"))

    def add(self, locator: Locator) -> None:
        number = self.numbers.get(locator.file)
        if number is None:
            number = self.numbers[locator.file] = len(self.files)
            self.files.append(locator.file)
        self.file.append(number)
        self.line.append(-1 if locator.line is None else locator.line)
        self.index.append(-1 if locator.index is None else locator.index)
        self.element.append(-1 if locator.element is None else locator.element)

    def __getitem__(self, row: int) -> Locator:
        def opt(column: array) -> int | None:
            return None if column[row] < 0 else column[row]

        return Locator(self.files[self.file[row]], opt(self.line), opt(self.index), opt(self.element))

    def __len__(self) -> int:
        return len(self.file)


@dataclass(slots=True)
class SketchedRows:
    """Sketches and locators of the rows read so far (references first, then the input); their normalised
    texts go to a temporary file, for verification."""

    sketcher: Sketcher
    parts: list[Sketches] = field(default_factory=list)
    locators: Locators = field(default_factory=Locators)
    texts: SpilledTexts = field(default_factory=SpilledTexts)

    def add(self, records: Sequence[Mapped], fields: Side | Sequence[str]) -> None:
        """Sketch records held anyway (sftdata.curate.audit)."""
        for mapped in records:
            self.locators.add(mapped.locator)
        self.add_texts([record_text(m.record, fields) for m in records])

    def add_texts(self, texts: Sequence[str]) -> None:
        """Sketch the compared texts of the next rows (sketch_stream adds their locators to `locators` as it reads
        them)."""
        sketches = self.sketcher.sketch(texts, encoded=True)
        self.texts.add(sketches.texts.encoded)  # type: ignore[union-attr,arg-type]
        sketches.texts = None
        self.parts.append(sketches)

    def joined(self) -> Sketches:
        joined = Sketches.join(self.parts, self.sketcher.bands, self.sketcher.num_perm)
        joined.texts = self.texts
        self.parts.append(joined)
        return joined

    def close(self) -> None:
        self.texts.close()


def sketch_stream(stream: Iterable[Mapped | Reject], rows: SketchedRows, fields: Side | Sequence[str],
                  on_reject: Any = None, ticker: Ticker | None = None) -> bytearray:
    """Sketch every record of the stream; returns, per row in stream order, 1 if it was a record.

    Of each record only its compared text waits for the batch to be sketched (its locator goes into integer
    columns at once): the records themselves are freed as they are read, so they never outlive the youngest
    garbage-collector generation, whose collections stay cheap."""
    is_record = bytearray()
    texts: list[str] = []
    add_locator = rows.locators.add
    for value in stream:
        if isinstance(value, Mapped):
            texts.append(record_text(value.record, fields))
            add_locator(value.locator)
            is_record.append(1)
            if len(texts) >= SKETCH_BATCH:
                rows.add_texts(texts)
                texts = []
        else:
            is_record.append(0)
            if on_reject is not None:
                on_reject(value)
        if ticker and len(is_record) % SKETCH_BATCH == 0:
            ticker.tick(SKETCH_BATCH)
    if texts:
        rows.add_texts(texts)
    if ticker:
        ticker.tick(len(is_record) % SKETCH_BATCH)
    return is_record


def read_references(against: Sequence[str | os.PathLike[str]], rows: SketchedRows,
                    fields: Side | Sequence[str]) -> list[Path]:
    if not against:
        return []
    sources = expand_sources(list(against))
    sketch_stream(mapped_records(read_items(sources), RecordParser(), Counts(), None), rows, fields)
    return [s.path for s in sources]


@dataclass(slots=True)
class DedupResult(CurateResult):
    """What `dedup` dropped: where the dupes went, the threshold, what was compared (a Side's name or the
    fields), how many rows were exact and near duplicates, and how many `--against` rows were read."""

    dupes: str | None = None  # OUT.dupes.jsonl (OUT/part-*.dupes.jsonl on an engine without --concat)
    threshold: float = DEFAULT_THRESHOLD
    compared: Side | list[str] = DEFAULT_FIELDS
    exact: int = 0
    near: int = 0
    against_rows: int = 0


def dedup(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
          threshold: float = DEFAULT_THRESHOLD, fields: Sequence[str] | None = None,
          against: Sequence[str | os.PathLike[str]] = (), progress: Progress | None = None,
          check: Verify = "exact") -> DedupResult:
    """Records JSONL → OUT without exact and near duplicates of the compared text (default: DEFAULT_FIELDS,
    what a model learns from each row), OUT.dupes.jsonl (each dropped row, what it duplicates, the exact
    similarity), OUT.rejects.jsonl (invalid rows) and OUT.meta.json. `check="estimate"` decides candidates on
    the MinHash estimate instead (bench/dedup_bench.py's baseline; not a command option)."""
    started = time.perf_counter()
    output = location(output)
    compare = compared(fields)
    sources = expand_sources(list(inputs))
    counts = Counts()
    for source in sources:
        counts.file(source.name)
    folder = output.parent if isinstance(output, Path) else None  # the temporary files go beside OUT: room for it
    rows = SketchedRows(Sketcher(threshold), texts=SpilledTexts(folder))
    references = read_references(against, rows, compare)
    refs = len(rows.locators)
    result = DedupResult("dedup", counts, output, rejects_path(output), dupes=str(dupes_path(output)), threshold=threshold,
                         compared=compare, against_rows=refs)
    ticker = Ticker(progress)
    lines = SpilledTexts(folder)  # each record's output line, from the first pass
    try:
        with AtomicFile(rejects_path(output)) as rej, AtomicFile(output) as out, \
                AtomicFile(dupes_path(output)) as dup:
            def on_reject(reject: Reject) -> None:
                counts.reject(reject)
                result.add_example(reject)
                rej.write(dumps_line(reject.as_dict()))

            parser = LineKeeper(lines)
            sketch_stream(mapped_records(read_items(sources), parser, counts, None), rows, compare, on_reject, ticker)
            parser.flush()
            matches = find_duplicates(rows.joined(), threshold, refs=refs, check=check)
            for reject, line in write_rows(lines, matches, refs, rows.locators, out, ticker):
                counts.drop(reject)
                result.add_example(reject)
                dup.write(dumps_line(line))
    finally:
        rows.close()
        lines.close()
    kept = np.frombuffer(rows.locators.file, dtype=np.int32)[refs:][matches.dup_of[refs:] < 0]
    for number, written in enumerate(np.bincount(kept, minlength=len(rows.locators.files)).tolist()):
        if written:
            counts.file(rows.locators.files[number]).written += written
    ticker.close()
    result.exact = int(matches.exact[refs:].sum())
    result.near = int((matches.dup_of[refs:] >= 0).sum()) - result.exact
    extra = {**result.figures(), **method(rows.sketcher, references, check)}
    result.meta = build_meta("dedup", [s.path for s in sources], counts, output, result.rejects, extra, started)
    write_json(meta_path(output), result.meta)
    return result


class LineKeeper(RecordParser):
    """A RecordParser that also keeps the line dedup writes for each record (the row as read, as JSON) in a
    temporary file: the second pass copies those lines, not reading and parsing the input again."""

    def __init__(self, lines: SpilledTexts) -> None:
        super().__init__()
        self.lines = lines
        self.pending: list[bytes] = []
        self.size = 0

    def map(self, item: RawItem) -> tuple[Mapped | Reject]:  # type: ignore[override]  # iterated as map's is
        value = self.parse(item)
        if type(value) is Mapped:
            line = dumps_line(item.data)
            self.pending.append(line)
            self.size += len(line)
            if self.size >= WRITE_BYTES:
                self.flush()
        return (value,)

    def flush(self) -> None:
        self.lines.add(self.pending)
        self.pending, self.size = [], 0


def write_rows(lines: SpilledTexts, matches: Matches, refs: int, locators: Locators, out: IO[bytes],
               ticker: Ticker) -> Iterator[tuple[Reject, dict[str, Any]]]:
    """The second pass: each kept record's line to `out` (a run of kept rows at a time); for each dropped one,
    the reject and the OUT.dupes.jsonl row (`dropped_row`), in input order."""
    offsets = lines.offsets()
    first = 0
    while first < len(lines):  # rows of about WRITE_BYTES at a time (at least one)
        last = max(first + 1, int(np.searchsorted(offsets, offsets[first] + WRITE_BYTES, "right")) - 1)
        data, ends = lines.span(first, last)
        view = memoryview(data)
        start = 0
        for k in np.flatnonzero(matches.dup_of[refs + first:refs + last] >= 0).tolist():
            begin = int(ends[k - 1]) if k else 0
            out.write(view[start:begin])
            start = int(ends[k])
            row = refs + first + k
            item = RawItem(orjson.loads(view[begin:start]), locators[row])
            yield _dropped(item, row, int(matches.dup_of[row]), refs, matches, locators)
        out.write(view[start:])
        ticker.tick(last - first)
        first = last


def method(sketcher: Sketcher, references: Sequence[Path], check: Verify = "exact") -> dict[str, Any]:
    """How rows were compared, and the --against files (hashed), for the sidecar."""
    return {"minhash": {"num_perm": NUM_PERM, "bands": sketcher.bands, "rows": sketcher.rows,
                        "shingles": "characters: 3-grams for Hangul/CJK/kana text, else 5-grams",
                        "normalise": "NFKC, casefold, whitespace collapsed",
                        "verified": "exact Jaccard of the shingle sets" if check == "exact" else "MinHash estimate"},
            "against": [file_digest(p) for p in references]}


def _dropped(item: RawItem | Reject, row: int, target: int, refs: int, matches: Matches,
             locators: Locators) -> tuple[Reject, dict[str, Any]]:
    return dropped_row(item, locators[target], bool(matches.exact[row]), float(matches.similarity[row]), target < refs)


def dropped_row(item: RawItem | Reject, original: Locator, exact: bool, similarity: float,
                against: bool) -> tuple[Reject, dict[str, Any]]:
    """The reject (counted as deduplicated) and the OUT.dupes.jsonl row for an item dropped as a duplicate of
    `original` (sftdata.scale.dedup writes the same), with the pair's exact Jaccard similarity unrounded (the
    message shows it cut to three decimals, so never above the true value)."""
    reason = "in_against_file" if against else ("exact_duplicate" if exact else "near_duplicate")
    what = "an exact" if exact else f"a near (Jaccard {math.floor(similarity * 1000) / 1000:.3f})"
    reject = Reject(Stage.dedup, reason, f"{what} duplicate of {original}", item.locator,
                    raw=item.data if isinstance(item, RawItem) else None)
    return reject, {**reject.as_dict(), "duplicate_of": original.as_dict(), "similarity": similarity,
                    "exact": exact}


def cluster_rows(records: Sequence[Any], fields: Side | Sequence[str] = Side.prompt,
                 threshold: float = DEFAULT_THRESHOLD, refs: Sequence[Any] = ()) -> Matches:
    """Matches for records held in memory (audit, split): references first, then `records`."""
    sketcher = Sketcher(threshold)
    texts = [record_text(r, fields) for r in [*refs, *records]]
    parts = [sketcher.sketch(texts[i:i + SKETCH_BATCH]) for i in range(0, len(texts), SKETCH_BATCH)]
    return find_duplicates(Sketches.join(parts, sketcher.bands, sketcher.num_perm), threshold, refs=len(refs))

