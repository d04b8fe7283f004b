"""`sftdata stats`: lengths in characters and tokens, and what a max_seq_length would cut.

One pass over records JSONL: read → render (template, tokenizer EOS) → tokenize (sftdata.tokenize.encode,
the trainer's ids) → per sample, the char and token lengths of the prompt (everything before the
completion), the completion (the last trained span: the answer, or the last assistant turn) and
the whole sample. With max_seq_length N, a trainer that truncates (keeping the start, as TRL and
transformers do) cuts the end of every longer sample: `eos_lost` counts samples whose final EOS is
cut (the model never learns to stop on them), `completion_lost` those whose completion is cut
entirely, `nothing_trained` those left with no trained token at all. The lengths and the pass that
measures them live in sftdata.curate.lengths, which the audit runs too.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..provenance import build_meta
from ..rendering.plan import TemplateArgs, TrainOn
from ..writers import meta_path, write_json
from .lengths import LengthObserver, scan
from .results import OMIT_NONE, CurateResult, Progress
from .samples import open_plan
from .thinking import ReasoningLengths


@dataclass(slots=True)
class StatsResult(CurateResult):
    """What `stats` measured: `stats` is the lengths' summary (sftdata.curate.lengths: samples, lengths,
    histograms, max_seq_length; reasoning where samples have it); `report` the HTML report's path, if written."""

    stats: dict[str, Any] = field(default_factory=dict)
    report: str | None = field(default=None, metadata=OMIT_NONE)


def stats(inputs: Sequence[str | os.PathLike[str]], tokenizer: Any, *, template: str | None = None,
          template_args: TemplateArgs = None, train_on: TrainOn = "all",
          max_seq_length: int | None = None, report: str | os.PathLike[str] | None = None,
          show_pii: bool = False, progress: Progress | None = None) -> StatsResult:
    """Length statistics of records JSONL as a trainer would see them; with `report`, also runs the
    audit in the same pass and writes a self-contained HTML page (and its .meta.json), the personal
    information in the rows' text it shows masked unless `show_pii` (sftdata.curate.report)."""
    started = time.perf_counter()
    lengths = LengthObserver(max_seq_length)
    reasoning = ReasoningLengths()
    observers: list[Any] = [lengths, reasoning]
    checks = None
    if report is not None:
        from .audit import Checks  # the audit's checks (PII, MinHash) load only for a report

        checks = Checks(max_seq_length=max_seq_length)
        observers.append(checks)
    inputs_, plan, encoder = scan(inputs, open_plan(template, tokenizer, template_args=template_args, train_on=train_on), observers, progress)
    result = StatsResult("stats", inputs_.counts, examples=lengths.rejects, stats=lengths.lengths.summary())
    if reasoning.summary() is not None:
        result.stats["reasoning"] = reasoning.summary()
    result.meta = plan.provenance()  # the summary takes template, EOS and tokenizer from here
    if report is not None and checks is not None:
        from .report import write_report

        findings = checks.findings(plan, encoder)
        result.output = Path(report)
        result.report = str(report)
        meta = build_meta("stats", inputs_.paths, inputs_.counts, result.output, None,
                          {"stats": result.stats, **plan.provenance(), "show_pii": show_pii}, started)
        write_report(Path(report), result.summary(), [f.as_dict() for f in findings], inputs_.paths,
                     show_pii=show_pii)
        write_json(meta_path(Path(report)), meta)
        result.meta = meta
    return result
