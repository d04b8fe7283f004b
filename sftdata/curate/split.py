"""`sftdata split`: train/eval by a stable hash of each record's content and a seed.

A row goes to eval when blake2b(seed, canonical JSON of the record) / 2^64 < eval_ratio, so the
split is the same on every run and machine, and a row keeps its side when others are added or
removed (the eval share is the ratio in expectation, not exactly). With `group_near_dups`, rows of
one near-duplicate cluster (sftdata.curate.minhash, on the prompt side) all take the side of the
cluster's first row, so no paraphrase of an eval prompt is trained on.
"""
from __future__ import annotations

import hashlib
import os
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..errors import OptionError
from ..ingest.mapping import Mapped
from ..ingest.records import record_row
from ..items import Reject
from ..provenance import build_meta
from ..schemas.records import Record
from ..writers import AtomicFile, dumps_line, write_json
from .dedup import SketchedRows, sketch_stream
from .fields import Side, check_fields
from .minhash import DEFAULT_THRESHOLD, Sketcher, find_duplicates
from .results import CurateResult, Progress, Ticker
from .samples import open_inputs

_SCALE = float(1 << 64)


def content_key(record: Record) -> bytes:
    return orjson.dumps(record_row(record), option=orjson.OPT_SORT_KEYS)


def position(record: Record, seed: int) -> float:
    """Where the record falls in [0, 1): stable across runs, machines and Python versions."""
    digest = hashlib.blake2b(content_key(record), digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(slots=True)
class SplitResult(CurateResult):
    """Where `split` put the rows: `output` is DIR/train.jsonl; the figures go into the summary and both
    .meta.json files."""

    train: int = 0  # rows written to train.jsonl
    eval: int = 0  # rows written to eval.jsonl
    eval_path: Path | None = None  # DIR/eval.jsonl
    eval_ratio: float = 0.05
    seed: int = 0
    group_near_dups: bool = False


def split(inputs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str], *, eval_ratio: float = 0.05,
          seed: int = 0, group_near_dups: bool = False, threshold: float = DEFAULT_THRESHOLD,
          fields: Sequence[str] | None = None, progress: Progress | None = None) -> SplitResult:
    """Records JSONL → DIR/train.jsonl and DIR/eval.jsonl (+ DIR/rejects.jsonl, one .meta.json each)."""
    if not 0.0 <= eval_ratio <= 1.0:
        raise OptionError("must be between 0 and 1", option="eval_ratio", value=eval_ratio)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    train_path, eval_path, rejects = out_dir / "train.jsonl", out_dir / "eval.jsonl", out_dir / "rejects.jsonl"
    inputs_ = open_inputs(inputs)
    counts = inputs_.counts
    sides = _cluster_sides(inputs_, seed, eval_ratio, threshold, fields, progress) if group_near_dups else None
    result = SplitResult("split", counts, train_path, rejects, eval_path=eval_path, eval_ratio=eval_ratio, seed=seed,
                         group_near_dups=group_near_dups)
    ticker = Ticker(progress)
    row = 0
    with AtomicFile(train_path) as train, AtomicFile(eval_path) as evals, AtomicFile(rejects) as rej:
        for value in inputs_.records():
            ticker.tick()
            if isinstance(value, Reject):
                result.write_reject(value, rej)
                continue
            to_eval = sides[row] if sides is not None else position(value.record, seed) < eval_ratio
            row += 1
            (evals if to_eval else train).write(dumps_line(record_row(value.record)))
            if to_eval:
                result.eval += 1
            else:
                result.train += 1
            counts.file(value.locator.file).written += 1
    ticker.close()
    extra: dict[str, Any] = result.figures()
    if group_near_dups:
        extra["near_dups"] = {"threshold": threshold, "compared": list(fields) if fields else Side.prompt.value}
    for side, path in (("train", train_path), ("eval", eval_path)):
        meta = build_meta("split", inputs_.paths, counts, path, rejects, {**extra, "side": side}, started)
        write_json(out_dir / f"{side}.meta.json", meta)
        if side == "train":
            result.meta = meta
    return result


def _cluster_sides(inputs_: Any, seed: int, eval_ratio: float, threshold: float, fields: Sequence[str] | None,
                   progress: Progress | None) -> bytearray:
    """First pass: per record, 1 when its near-duplicate cluster goes to eval."""
    compare: Side | list[str] = check_fields(fields) if fields else Side.prompt
    rows = SketchedRows(Sketcher(threshold))
    positions = array("d")

    def records():
        for value in inputs_.records(counts=type(inputs_.counts)()):
            if isinstance(value, Mapped):
                positions.append(position(value.record, seed))
            yield value

    sketch_stream(records(), rows, compare, ticker=Ticker(progress))
    cluster = find_duplicates(rows.joined(), threshold).cluster
    return bytearray(positions[int(first)] < eval_ratio for first in cluster)
