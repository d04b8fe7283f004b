"""Every row as the trainer sees it, made by the code `pretokenize` runs (sftdata.curate.samples: records →
Rendered → Tokenized; sftdata.curate.pretokenize: the invariant checks and the truncation rule), labelled token
by token as `inspect` labels them (sftdata.curate.inspection), with the audit's per-row checks
(sftdata.curate.audit.Checks) giving a row's findings."""
from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..curate.audit import Checks
from ..curate.findings import Trainer
from ..curate.inspection import TokenKind, label
from ..curate.pretokenize import Overflow, OverflowCounts, fit
from ..curate.samples import Sample, encoder_for, open_inputs, open_plan, rendered, tokenized
from ..ingest.mapping import Mapped
from ..ingest.records import RecordParser
from ..items import Locator, RawItem, Reject
from ..rendering.plan import RenderPlan, TemplateArgs, TrainOn
from ..tokenize.encode import Encoder, Tokenized, token_texts

SPECIAL = re.compile(r"^<[|｜][^<>\s]{1,40}[|｜]>$|^</?[a-z_]{1,20}>$|^\[/?[A-Z_]{2,20}\]$|^<[a-z_]+_of_[a-z_]+>$")
WHITESPACE = str.maketrans({" ": "·", "\n": "↵\n", "\t": "→", "\r": "␍"})


@dataclass(frozen=True, slots=True)
class TokenCell:
    """One token as the page shows it: its id, its text with whitespace made visible, how it trains, and whether it
    is a control token or cut by the truncation."""

    id: int
    text: str
    kind: str  # bos, prompt, trained, eos, pad
    special: bool = False
    cut: bool = False


@dataclass(slots=True)
class TokenView:
    cells: list[TokenCell] = field(default_factory=list)
    length: int = 0
    trained: int = 0
    cut_at: int | None = None  # first token kept after a front cut (pretokenize --on-overflow truncate)
    problems: list[str] = field(default_factory=list)
    reject: str | None = None  # why the row does not tokenize (what pretokenize would reject it for)
    findings: list[str] = field(default_factory=list)

    @property
    def trained_ids(self) -> list[int]:
        return [c.id for c in self.cells if c.kind in (TokenKind.trained.value, TokenKind.eos.value) and not c.cut]


class RowChecks(Checks):
    """The audit's checks of one row at a time: the codes tallied for it (no cross-row near-duplicate sketch: the
    review shows dedup's own decisions)."""

    def __init__(self, max_seq_length: int | None) -> None:
        super().__init__(max_seq_length=max_seq_length, trainer=Trainer.sftdata)
        self.codes: set[str] = set()

    def tally(self, code: str, where: Any, sample: Sample | None = None) -> None:
        self.codes.add(code)

    def _flush(self) -> None:
        self._pending = []

    def of(self, value: Sample | Reject) -> list[str]:
        self.codes = set()
        if isinstance(value, Reject):
            self.reject(value)
        else:
            self.sample(value)
        return sorted(self.codes)


class Tokens:
    """A tokenizer and template, loaded once, and the row views and per-row checks made with them."""

    def __init__(self, tokenizer: Any, template: str | None = None, *, template_args: TemplateArgs = None,
                 train_on: TrainOn = "all", max_seq_length: int | None = None) -> None:
        self.plan: RenderPlan = open_plan(template, tokenizer, template_args=template_args, train_on=train_on)
        self.encoder: Encoder = encoder_for(self.plan)
        self.max_seq_length = max_seq_length
        self.checks = RowChecks(max_seq_length)
        self.checks.bind(self.plan, self.encoder)
        self.lock = threading.Lock()  # pages are made in worker threads; the checks keep per-row state

    def of_record(self, row: Any, locator: Locator) -> TokenView:
        """A record (a dict as JSONL holds it) rendered and tokenized as pretokenize does."""
        with self.lock:
            return self._of_record(row, locator)

    def _of_record(self, row: Any, locator: Locator) -> TokenView:
        value = next(RecordParser().map(RawItem(row, locator)))
        if isinstance(value, Mapped):
            value = next(rendered([value], self.plan))
        if isinstance(value, Sample):
            value = next(tokenized([value], self.plan, self.encoder, batch=1))
        if isinstance(value, Reject):
            return TokenView(reject=f"{value.reason}: {value.message}", findings=self.checks.of(value))
        findings = self.checks.of(value)
        tok = value.tokenized
        assert tok is not None
        view = self.view(tok)
        view.findings = findings
        if self.max_seq_length is not None:
            kept = fit(Sample(value.record, value.rendered, tok), self.encoder, self.max_seq_length,
                       Overflow.truncate, OverflowCounts(Overflow.truncate))
            if isinstance(kept, Reject):
                view.reject = f"{kept.reason}: {kept.message}"
            elif kept.tokenized is not None and kept.tokenized.length < tok.length:
                self._mark_cut(view, tok, self.max_seq_length)
        return view

    def of_ids(self, ids: list[int], mask: list[int], locator: Locator) -> TokenView:
        """A pretokenized row: its own ids and mask, labelled."""
        with self.lock:
            return self._of_ids(ids, mask, locator)

    def _of_ids(self, ids: list[int], mask: list[int], locator: Locator) -> TokenView:
        bounds, trained, start = [], [], 0
        for i in range(1, len(mask) + 1):
            if i == len(mask) or mask[i] != mask[start]:
                bounds.append(i)
                trained.append(bool(mask[start]))
                start = i
        bos = bool(ids) and ids[0] == self.encoder.specials.bos_id and not mask[0]
        return self.view(Tokenized(list(ids), list(mask), bounds, trained, locator, bos))

    def view(self, tok: Tokenized) -> TokenView:
        cells = []
        stop = self.encoder.stop_ids
        for shown in label(self.encoder, tok):
            special = shown.id in stop or shown.id == self.encoder.specials.bos_id or bool(SPECIAL.match(shown.text))
            cells.append(TokenCell(shown.id, shown.text.translate(WHITESPACE), shown.kind.value, special))
        return TokenView(cells, tok.length, sum(tok.mask), problems=[p.value for p in self.encoder.problems(tok)])

    def texts(self, ids: list[int]) -> list[str]:
        return token_texts(self.encoder, ids)

    @staticmethod
    def _mark_cut(view: TokenView, tok: Tokenized, limit: int) -> None:
        """The tokens pretokenize's truncation cuts (sftdata.curate.pretokenize.truncate): after the BOS up to
        `start`, and the untrained tail after the last trained span."""
        head = int(tok.bos_added)
        spans = tok.spans()
        end = spans[-1][1] if spans else tok.length
        start = max(head, end - (limit - head))
        view.cut_at = start
        view.cells = [TokenCell(c.id, c.text, c.kind, c.special, head <= i < start or i >= end)
                      for i, c in enumerate(view.cells)]

    def scan(self, path: Any) -> Iterator[tuple[int, int, list[str]]]:
        """(line, trained tokens, findings) of every row of a records file that tokenizes, as pretokenize reads
        them; a row that does not still gives its findings, with -1 tokens."""
        inputs = open_inputs([path])
        checks = RowChecks(self.max_seq_length)  # its own: the pages' checks run on the server's thread
        checks.bind(self.plan, self.encoder)
        for value in tokenized(rendered(inputs.records(), self.plan), self.plan, self.encoder):
            line = value.locator.line
            if line is None:
                continue
            if isinstance(value, Reject):
                yield line, -1, checks.of(value)
                continue
            tok = value.tokenized
            assert tok is not None
            yield line, tok.trained_tokens, checks.of(value)
