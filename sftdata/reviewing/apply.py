"""`sftdata review-apply`: a review file's decisions applied to the data it reviews.

The data files' rows are written in order (a rejected row to OUT.rejects.jsonl, an edited one as edited, the rest
byte for byte), then the dropped rows a reviewer restored, in the order of their side files; the rows still
dropped are copied to OUT.rejects.jsonl as their step wrote them. The counts keep `read = written + rejected +
filtered + deduplicated` over the rows the chain read; OUT.meta.json names the review file (with its SHA-256) and
its counts (accepted, rejected, edited, restored), and links the data's own sidecars as parents, so the dataset
card shows the review as a step. Rerun on the same review, the data and rejects come out byte for byte the same.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..curate.results import CurateResult
from ..errors import InputError, OptionError
from ..items import Counts, Locator, Reject, Stage
from ..provenance import build_meta
from ..writers import AtomicFile, dumps_line, file_digest, meta_path, rejects_path, write_json
from .chain import PartKind, open_chain
from .decisions import Action, Decision, RowKey, data_paths, load
from .index import Outcome, lines_of, outcome_of_reject
from .session import DecisionRefused, checked_record


@dataclass(slots=True)
class ReviewFigures:
    accepted: int = 0
    rejected: int = 0
    edited: int = 0
    restored: int = 0
    stale: int = 0  # decisions left out: made on what a line held before its file changed


@dataclass(slots=True)
class ApplyResult(CurateResult):
    """What `review-apply` wrote: its figures go into the summary and OUT.meta.json."""

    review: str = ""
    reviewers: list[str] = field(default_factory=list)
    decisions: ReviewFigures = field(default_factory=ReviewFigures)


def review_apply(review: str | os.PathLike[str], output: str | os.PathLike[str]) -> ApplyResult:
    started = time.perf_counter()
    review_file, output = Path(review), Path(output)
    state = load(review_file)
    if not state.data:
        raise InputError(f"{review_file}: not a review file (no line names the data it reviews)",
                         hint="give the DATA.review.jsonl that `sftdata review` wrote")
    chain = open_chain(data_paths(state, review_file))
    if output.resolve() in {p.path.resolve() for p in chain.parts} | {review_file.resolve()}:
        raise OptionError("would overwrite a file of the review", option="output", value=str(output))
    counts = Counts()
    result = ApplyResult("review-apply", counts, output, rejects_path(output), review=str(review_file),
                         reviewers=list(state.reviewers))
    figures = result.decisions
    restored: list[bytes] = []
    stale: set[RowKey] = set()
    with AtomicFile(output) as out, AtomicFile(rejects_path(output)) as rej:
        for part in chain.parts:
            name = part.data.name
            counts.file(name)
            for _, line, text in lines_of(part):
                if not text.strip():
                    continue
                decision = state.latest.get(RowKey(part.name, line))
                if decision is not None and not decision.fits(text):
                    stale.add(decision.key)
                    decision = None
                if part.kind is PartKind.matches:  # rows `--action report` kept: the data file holds them
                    continue
                counts.file(name).read += 1
                if part.kind is PartKind.data:
                    _kept_row(text, decision, name, line, out, rej, result)
                else:
                    _dropped_row(text, decision, name, line, restored, rej, result)
        for text in restored:
            out.write(text)
    _tally([d for d in state.latest.values() if d.key not in stale], chain, figures)
    figures.stale = len(stale)
    sources = [*chain.data, review_file]
    review_meta = {"file": review_file.name, "sha256": file_digest(review_file).get("sha256"),
                   "reviewers": state.reviewers,
                   **{k: getattr(figures, k) for k in ("accepted", "rejected", "edited", "restored", "stale")}}
    extra: dict[str, Any] = {"review": review_meta}
    result.meta = build_meta("review-apply", sources, counts, output, result.rejects, extra, started)
    write_json(meta_path(output), result.meta)
    return result


def _kept_row(text: bytes, decision: Decision | None, name: str, line: int, out: Any, rej: Any,
              result: ApplyResult) -> None:
    if decision is not None and decision.action is Action.reject:
        raw = _json(text)
        reject = Reject(Stage.review, "rejected_in_review", decision.note or f"rejected by {decision.reviewer}",
                        Locator(name, line), raw=raw)
        result.write_reject(reject, rej)
        return
    if decision is not None and decision.action is Action.edit and decision.record is not None:
        out.write(dumps_line(decision.record))
    else:
        out.write(text + b"\n")
    result.counts.file(name).written += 1


def _dropped_row(text: bytes, decision: Decision | None, name: str, line: int, restored: list[bytes], rej: Any,
                 result: ApplyResult) -> None:
    row = _json(text)
    if decision is not None and decision.action in (Action.restore, Action.edit) and isinstance(row, dict):
        record = decision.record if decision.action is Action.edit and decision.record is not None else row.get("raw")
        if _is_record(record, name, line):  # the server checks this; a review file made by hand may not
            restored.append(dumps_line(record))
            result.counts.file(name).written += 1
            return
    outcome = outcome_of_reject(row) if isinstance(row, dict) else Outcome.rejected
    stage = Stage(row["stage"]) if isinstance(row, dict) and row.get("stage") in Stage._value2member_map_ \
        else Stage.dedup if outcome is Outcome.duplicate else Stage.read
    reject = Reject(stage, str(row.get("reason", "unknown")) if isinstance(row, dict) else "invalid_json",
                    str(row.get("message", "")) if isinstance(row, dict) else "", Locator(name, line))
    if outcome in (Outcome.duplicate, Outcome.filtered, Outcome.contaminated):
        result.counts.drop(reject)
    else:
        result.counts.reject(reject)
    result.add_example(reject)
    rej.write(text + b"\n")


def _tally(decisions: Any, chain: Any, figures: ReviewFigures) -> None:
    known = {p.name for p in chain.parts}
    for decision in decisions:
        if decision.key.file not in known:
            continue
        if decision.action is Action.accept:
            figures.accepted += 1
        elif decision.action is Action.reject:
            figures.rejected += 1
        elif decision.action is Action.edit:
            figures.edited += 1
        elif decision.action is Action.restore:
            figures.restored += 1


def _is_record(record: Any, name: str, line: int) -> bool:
    try:
        checked_record(record, Locator(name, line), "a restored row")
    except DecisionRefused:
        return False
    return True


def _json(text: bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text.decode("utf-8", "replace")
