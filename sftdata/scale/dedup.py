"""`sftdata dedup --engine ...`: the kept rows and dupes of a local run, split by split.

Three steps on the engine and one on the driver, the same as sftdata.curate.dedup and its
minhash.find_duplicates, spread out:

1. sketch (one task per split, `--against` splits first): the records of the split are read and sketched
   as locally; invalid input rows go to the split's rejects part; the exact hashes, signatures, normalised
   compared texts (UTF-8, with offsets), row locators and which lines were records go to
   `OUT/.work/sketch-NNNNN.*.npy` (one file per column, on the shared output path; for an output URL, to
   `OUT/.work/RUN/` there, and each machine maps its own copies). Each valid row sends its exact hash and
   its LSH band keys (16 bytes a key, 21 keys a row at the default threshold) to a shuffle partition.
2. group and verify (one task per partition, after the engine's shuffle): rows with an equal key are
   joined to the key's first row in input order, as group_edges does locally, and each candidate pair is
   decided by verify.verify on the exact Jaccard similarity of the rows' shingle sets, reading only the
   candidates' texts from the sketch files (memory-mapped, a batch of pairs at a time); only the verified
   pairs, with that similarity, go to the driver.
3. The driver resolves the verified pairs with the local keep rule (minhash.resolve: memory in the number
   of rows that have a duplicate, not of all rows).
4. write (one task per split): the split's rows again, kept ones to its part, dropped ones to its dupes
   part with the locator of the row each duplicates.

Row ids are (split << 32 | row in split) in the tasks, which sorts as input order; the driver turns them into
the global row numbers a local run uses once every split's record count is known.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..curate.dedup import DedupResult, Locators, SketchedRows, compared, dropped_row, dupes_path, method, sketch_stream
from ..curate.minhash import DEFAULT_THRESHOLD, Sketcher, group_edges, resolve
from ..curate.results import CurateResult
from ..curate.verify import estimate, verdicts, verify
from ..errors import SftDataError
from ..ingest.readers import read_source
from ..ingest.records import RecordParser, mapped_records
from ..items import Counts, Locator
from ..storage import Location, location
from ..writers import AtomicFile, dumps_line, rejects_path
from .driver import (
    check_output,
    engine_figures,
    finish,
    merge,
    open_folder,
    part_path,
    raise_failed,
    run_tasks,
    splits_of,
    task_error,
)
from .engines import Engine, run_shuffle
from .splits import Split

WORK = ".work"
SHIFT = 32
LOW = (1 << SHIFT) - 1
PARTITION_BYTES = 64 << 20  # input per shuffle partition (about one split); a reducer holds 336 bytes of keys a row
MAX_PARTITIONS = 1024
VERIFY_BATCH = 1 << 16  # candidate pairs whose hashes and signatures are gathered at once (texts: verify.VERIFY_CHARS)


@dataclass(frozen=True, slots=True)
class SketchJob:
    split: Split
    sid: int  # position among the --against splits and then the input splits
    reference: bool
    out_dir: str
    work: str  # the sketch files' folder (see _work)
    threshold: float
    compare: Any  # Side or field names
    partitions: int


def _work(work: str, sid: int, column: str) -> Location:
    return location(work) / f"sketch-{sid:05d}.{column}.npy"


def _cache(work: str) -> Path:
    """This machine's copies of a remote work folder's files (one folder per run)."""
    return Path(tempfile.gettempdir()) / "sftdata-work" / hashlib.sha256(work.encode()).hexdigest()[:16]


def _mapped(work: str, sid: int, column: str) -> Path:
    """The file to memory-map: the work file, or for a work folder on a remote filesystem (an output URL) its
    copy in this machine's cache, fetched once per machine and run."""
    path = _work(work, sid, column)
    if isinstance(path, Path):
        return path
    cached = _cache(work) / path.name
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        fetching = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        path.download(fetching)
        os.replace(fetching, cached)  # two tasks on one machine may fetch it at once: each copy is whole
    return cached


def sketch_split(job: SketchJob) -> tuple[dict[str, Any], list[tuple[np.ndarray, ...]]]:
    """Step 1: the split's sketches to its work file; its keys, one bucket per shuffle partition (empty ones
    with an "error" when the split cannot be read at all)."""
    try:
        return _sketch(job)
    except SftDataError as error:
        empty = (np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, np.int64))
        return task_error(job.sid, error), [empty] * job.partitions


def _sketch(job: SketchJob) -> tuple[dict[str, Any], list[tuple[np.ndarray, ...]]]:
    split = job.split
    done = CurateResult("dedup", Counts())
    done.counts.file(split.name)
    rows = SketchedRows(Sketcher(job.threshold))
    stream = mapped_records(read_source(split.source()), RecordParser(), done.counts, None)
    if job.reference:  # a local run reads references with throwaway counts and writes none of their rejects
        is_record = sketch_stream(stream, rows, job.compare)
    else:
        with AtomicFile(rejects_path(part_path(job.out_dir, split.index))) as rej:
            is_record = sketch_stream(stream, rows, job.compare, lambda reject: done.write_reject(reject, rej))
    sk = rows.joined()
    try:
        _save(job.work, job.sid, {"exact": sk.exact, "sig": sk.sig, "text": rows.texts.data(),
                                     "text_at": rows.texts.offsets(),
                                     "is_record": np.frombuffer(bytes(is_record), np.uint8),
                                     "files": np.array(rows.locators.files, dtype=str),
                                     **{name: np.asarray(getattr(rows.locators, attr)) for name, attr in LOCATOR_COLUMNS}})
    finally:
        rows.close()
    valid = np.flatnonzero(~sk.empty)
    ids = (np.int64(job.sid) << SHIFT) | valid.astype(np.int64)
    band = np.arange(sk.bands.shape[1], dtype=np.uint64)
    band_keys = ((band[None, :] << np.uint64(SHIFT)) | sk.bands[valid].astype(np.uint64)).ravel()
    band_ids = np.repeat(ids, sk.bands.shape[1])
    exact_keys = sk.exact[valid]
    band_parts = _by_partition(band_keys, band_ids, job.partitions)
    exact_parts = _by_partition(exact_keys, ids, job.partitions)
    buckets = [(*band, *exact) for band, exact in zip(band_parts, exact_parts)]
    result = {"index": job.sid, "records": len(sk), "counts": None if job.reference else done.counts.summary(),
              "examples": [r.as_dict() for r in done.examples], "shuffled": sum(a.nbytes for b in buckets for a in b)}
    return result, buckets


def _by_partition(keys: np.ndarray, ids: np.ndarray, partitions: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(keys, ids) per shuffle partition (a key's hash modulo the partitions), in one stable sort: ids keep
    their ascending order within each partition."""
    partition = keys % np.uint64(partitions)
    order = np.argsort(partition, kind="stable")
    bounds = np.searchsorted(partition[order], np.arange(partitions + 1, dtype=np.uint64))
    keys, ids = keys[order], ids[order]
    return [(keys[a:b], ids[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


LOCATOR_COLUMNS = (("file_no", "file"), ("line", "line"), ("index", "index"), ("element", "element"))


def _save(work: str, sid: int, columns: dict[str, np.ndarray]) -> None:
    """One .npy file per column (numbers and fixed-width strings only: nothing is ever unpickled), each written
    atomically (uploaded whole to a remote work folder), so a task run again rewrites them whole and readers
    map only the rows they need."""
    for name, column in columns.items():
        with AtomicFile(_work(work, sid, name)) as handle:
            np.save(handle, column, allow_pickle=False)


def _column(work: str, sid: int, name: str) -> np.ndarray:
    return np.load(_mapped(work, sid, name), mmap_mode="r", allow_pickle=False)


@dataclass(frozen=True, slots=True)
class WorkTexts:
    """The normalised texts of rows anywhere in the run (row ids), read from their splits' sketch files: the
    verify.Texts the reduce verifies candidate pairs with."""

    work: str

    def sizes(self, ids: np.ndarray) -> np.ndarray:  # a split's "text_at" holds rows + 1 offsets
        return _gather(self.work, ids + 1, ("text_at",))["text_at"] - _gather(self.work, ids, ("text_at",))["text_at"]

    def get(self, ids: np.ndarray) -> list[str]:
        out: list[str] = [""] * len(ids)
        for sid, where, rows in _by_split(ids):
            data, at = _column(self.work, sid, "text"), _column(self.work, sid, "text_at")
            for k, row in zip(where.tolist(), rows.tolist()):
                out[k] = data[at[row]:at[row + 1]].tobytes().decode()
        return out


def _by_split(ids: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(split id, positions in `ids`, rows in the split) for each split the row ids fall in."""
    sids = ids >> SHIFT
    for sid in np.unique(sids).tolist():
        where = np.flatnonzero(sids == sid)
        yield sid, where, ids[where] & LOW


@dataclass(frozen=True, slots=True)
class Grouper:
    """Step 2, the reduce: rows that share a key of the partition become candidate pairs, which are verified on
    the exact Jaccard similarity of their texts (read from the sketch files) here, so only duplicates leave the
    partition."""

    work: str
    threshold: float

    def __call__(self, partition: int, buckets: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, np.ndarray, int]:
        del partition
        candidates = _candidates(buckets)
        pairs, scores = [np.zeros((0, 2), np.int64)], [np.zeros(0, np.float64)]
        texts = WorkTexts(self.work)
        for start in range(0, len(candidates), VERIFY_BATCH):
            batch = candidates[start:start + VERIFY_BATCH]
            left = _gather(self.work, batch[:, 0], ("exact", "sig"))
            right = _gather(self.work, batch[:, 1], ("exact", "sig"))
            m = len(batch)
            estimates = estimate(np.concatenate([left["sig"], right["sig"]]), np.arange(m), m + np.arange(m))
            kept, score = verify(batch, left["exact"], right["exact"], texts, self.threshold, estimates)
            pairs.append(kept)
            scores.append(score)
        return np.concatenate(pairs), np.concatenate(scores), len(candidates)


def _candidates(buckets: list[tuple[np.ndarray, ...]]) -> np.ndarray:
    """(member, first) pairs of row ids, each once, for every key held by more than one row. Each bucket's ids
    ascend (a map task's rows in order), so in map order they ascend overall, the order group_edges needs to
    take each key's first row; Spark may hand the buckets over in any order."""
    buckets = sorted((b for b in buckets if len(b[1]) or len(b[3])), key=_first_id)
    edges = [np.zeros((0, 2), np.int64)]
    for keys_at, ids_at in ((0, 1), (2, 3)):  # LSH band keys, then exact hashes
        if buckets:
            edges.append(group_edges(np.concatenate([b[keys_at] for b in buckets]),
                                     np.concatenate([b[ids_at] for b in buckets])))
    pairs = np.concatenate(edges)
    if len(pairs) < 2:
        return pairs
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))  # a pair found in several bands once
    pairs = pairs[order]
    return pairs[np.concatenate(([True], (np.diff(pairs, axis=0) != 0).any(axis=1)))]


def _first_id(bucket: tuple[np.ndarray, ...]) -> int:
    return int(min(ids[0] for ids in (bucket[1], bucket[3]) if len(ids)))


def _gather(work: str, ids: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Columns of the sketch files at the given (non-empty) row ids, in their order, mapped from disk."""
    columns: dict[str, np.ndarray] = {}
    for sid, where, rows in _by_split(ids):
        for name in names:
            column = _column(work, sid, name)
            if name not in columns:
                columns[name] = np.empty((len(ids), *column.shape[1:]), dtype=column.dtype)
            columns[name][where] = column[rows]
    return columns


def _locators(work: str, ids: np.ndarray) -> list[Locator]:
    """The locators of rows anywhere in the run, from their splits' sketch files."""
    out: list[Locator | None] = [None] * len(ids)
    for sid, where, rows in _by_split(ids):
        table = Locators([str(f) for f in _column(work, sid, "files")], {},  # Python ints, as locally
                         *(_column(work, sid, name)[rows].tolist() for name, _ in LOCATOR_COLUMNS))
        for j, k in enumerate(where.tolist()):
            out[k] = table[j]
    return out  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class WriteJob:
    split: Split
    sid: int
    out_dir: str
    work: str
    rows: np.ndarray  # rows of this split dropped, in order
    targets: np.ndarray  # the row id each duplicates
    scores: np.ndarray  # the verified pair's score (minhash.EXACT_SCORE when exact)
    against: np.ndarray  # whether the target is a --against row


def write_split(job: WriteJob) -> dict[str, Any]:
    """Step 4: the split's rows again, kept ones to its part, dropped ones to its dupes part."""
    split = job.split
    is_record = _column(job.work, job.sid, "is_record")
    originals = _locators(job.work, job.targets) if len(job.targets) else []
    exact, similarity = verdicts(job.scores)
    dropped = {row: k for k, row in enumerate(job.rows.tolist())}
    done = CurateResult("dedup", Counts())
    done.counts.file(split.name)
    part = part_path(job.out_dir, split.index)
    row = 0
    with AtomicFile(part) as out, AtomicFile(dupes_path(part)) as dup:
        for was_record, item in zip(is_record.tolist(), read_source(split.source())):
            if not was_record:
                continue
            k = dropped.get(row)
            if k is None:
                done.counts.file(item.locator.file).written += 1
                out.write(dumps_line(item.data))
            else:
                reject, line = dropped_row(item, originals[k], bool(exact[k]), float(similarity[k]),
                                           bool(job.against[k]))
                done.counts.drop(reject)
                done.add_example(reject)
                dup.write(dumps_line(line))
            row += 1
    return {"index": split.index, "counts": done.counts.summary(), "examples": [r.as_dict() for r in done.examples]}


def dedup(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
          threshold: float = DEFAULT_THRESHOLD, fields: Sequence[str] | None = None,
          against: Sequence[str | os.PathLike[str]] = (), engine: Engine = "local", address: str | None = None,
          split_mib: float = 64, concat: bool = False, partitions: int | None = None) -> DedupResult:
    """Records JSONL → OUT/part-NNNNN.jsonl (kept), .dupes.jsonl and .rejects.jsonl per split and one
    _meta.json, with the rows, dupes and figures of `sftdata dedup` on the same inputs. `partitions`: of the
    key shuffle (default: one per 64 MiB of input, at most MAX_PARTITIONS)."""
    started = time.perf_counter()
    compare = compared(fields)
    sketcher = Sketcher(threshold)  # a bad threshold fails here, before any task
    check_output(output)  # an output that is a file is refused before any engine starts
    refs_splits = splits_of(against, split_mib, engine, address) if against else []
    splits = splits_of(inputs, split_mib, engine, address)
    out = open_folder(output)
    work = str(out / WORK if isinstance(out, Path) else out / WORK / uuid.uuid4().hex)  # remote: a cache per run
    _clear(out, work)
    partitions = partitions or _partitions([*refs_splits, *splits])
    jobs = [SketchJob(s, sid, sid < len(refs_splits), str(out), work, threshold, compare, partitions)
            for sid, s in enumerate([*refs_splits, *splits])]
    try:
        sketched, grouped = run_shuffle(sketch_split, Grouper(work, threshold), jobs, partitions, engine,
                                        address)
        raise_failed(sketched)
        offsets = np.concatenate(([0], np.cumsum([r["records"] for r in sketched]))).astype(np.int64)
        refs = int(offsets[len(refs_splits)])
        pairs, scores = _verified(grouped, offsets)
        dropped, targets, best = resolve(pairs, scores, refs)
        written = run_tasks(write_split, _write_jobs(splits, len(refs_splits), str(out), work, offsets, dropped,
                                                     targets, best, refs), engine, address)
    finally:
        _clear(out, work)
    inputs_done = sketched[len(refs_splits):]
    counts, examples = merge(splits, [*inputs_done, *written])
    exact = int(verdicts(best)[0].sum())
    result = DedupResult("dedup", counts, out, None, examples=examples, dupes=str(out / "part-*.dupes.jsonl"),
                         threshold=threshold, compared=compare, exact=exact, near=len(dropped) - exact, against_rows=refs)
    extra = {**result.figures(), **method(sketcher, list(dict.fromkeys(location(s.path) for s in refs_splits))),
             **engine_figures(engine, address, split_mib, splits), "shuffle_partitions": partitions,
             "shuffle_bytes": sum(r["shuffled"] for r in sketched), "candidate_pairs": sum(g[2] for g in grouped),
             "verified_pairs": len(pairs)}
    result.meta, single = finish("dedup", out, splits, counts, extra, started, concat, sidecars=(".dupes.jsonl",))
    if single is not None:
        result.output, result.rejects = single, rejects_path(single)
        result.dupes = str(dupes_path(single))
    return result


def _clear(out: Location, work: str) -> None:
    """The sketch files: gone before a run and after it (and this machine's copies of remote ones)."""
    if isinstance(out, Path):
        shutil.rmtree(out / WORK, ignore_errors=True)
        return
    (out / WORK).remove_tree()
    shutil.rmtree(_cache(work), ignore_errors=True)


def _partitions(splits: Sequence[Split]) -> int:
    total = sum(s.size or 0 for s in splits)
    return max(1, min(MAX_PARTITIONS, -(-total // PARTITION_BYTES)))


def _verified(grouped: list[tuple[np.ndarray, np.ndarray, int]], offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The partitions' verified pairs as global row numbers, each once (a pair that shares keys in two
    partitions was verified in both, to the same score)."""
    pairs = np.concatenate([np.zeros((0, 2), np.int64), *(_global(g[0], offsets) for g in grouped)])
    scores = np.concatenate([np.zeros(0, np.float64), *(g[1] for g in grouped)])
    _, first = np.unique((pairs[:, 0] << 32) | pairs[:, 1], return_index=True)
    return pairs[first], scores[first]


def _global(ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return offsets[ids >> SHIFT] + (ids & LOW)


def _packed(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    sid = np.searchsorted(offsets, rows, side="right") - 1
    return (sid.astype(np.int64) << SHIFT) | (rows - offsets[sid])


def _write_jobs(splits: Sequence[Split], first_sid: int, out_dir: str, work: str, offsets: np.ndarray, dropped: np.ndarray,
                targets: np.ndarray, best: np.ndarray, refs: int) -> list[WriteJob]:
    order = np.argsort(dropped, kind="stable")
    dropped, targets, best = dropped[order], targets[order], best[order]
    jobs = []
    for k, split in enumerate(splits):
        sid = first_sid + k
        lo, hi = np.searchsorted(dropped, [offsets[sid], offsets[sid + 1]])
        jobs.append(WriteJob(split, sid, out_dir, work, dropped[lo:hi] - offsets[sid], _packed(targets[lo:hi], offsets),
                             best[lo:hi], targets[lo:hi] < refs))
    return jobs
