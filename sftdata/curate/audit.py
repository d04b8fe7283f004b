"""`sftdata audit`: data + tokenizer + template checked for the pitfalls that silently break SFT.

Each Finding says what breaks in training and the fix, with a severity, a count and example row
locators. Exit 1 (CLI) when a finding of severity error exists, so it can gate CI.

The pad check depends on the trainer: a collator that masks labels by *pad id* (transformers'
DataCollatorForLanguageModeling, older TRL collators: ``--trainer generic``) also masks every EOS
when ``pad_token == eos_token``, so the model never learns to stop (error). TRL 1.x's collator and
sftdata's pretokenized masks mask by position (``--trainer trl|sftdata``), so it is a warning there.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import TemplateError
from ..ingest.mapping import Mapped
from ..ingest.records import record_row
from ..items import Reject
from ..rendering.plan import AUTO, RenderPlan, TemplateArgs, TrainOn
from ..schemas.records import RecordKind
from ..tokenize.encode import Encoder
from .dedup import SketchedRows, read_references
from .fields import Side, record_text
from .findings import CHECKS, Finding, Severity, Trainer
from .lengths import LengthObserver, scan
from .minhash import DEFAULT_THRESHOLD, Sketcher, find_duplicates
from .results import OMIT_NONE, CurateResult, Progress
from .samples import Sample, load, open_plan
from .scrub import Scrubber, ScrubSpec
from .textquality import check_lang, mojibake, script_share
from .thinking import ThinkingChecks

FAMILIES = {"chatml": ("<|im_start|>", "<|im_end|>"), "llama3": ("<|start_header_id|>", "<|eot_id|>"),
            "gemma": ("<start_of_turn>", "<end_of_turn>")}


@dataclass(slots=True)
class Tally:
    count: int = 0
    examples: list[str] = field(default_factory=list)
    samples: list[list[tuple[str, str]]] = field(default_factory=list)  # the first two, token by token

    def add(self, where: Any, keep: int = 5) -> None:
        self.count += 1
        if len(self.examples) < keep:
            self.examples.append(str(where))


class Checks:
    """The per-row checks of an audit, fed one sample or reject at a time by `lengths.scan`."""

    def __init__(self, *, max_seq_length: int | None = None, trainer: Trainer = Trainer.generic,
                 lang: str | None = None, min_lang_share: float = 0.5, threshold: float = DEFAULT_THRESHOLD,
                 eval_files: Sequence[str | os.PathLike[str]] = ()) -> None:
        self.max_seq_length, self.trainer = max_seq_length, trainer
        self.lang = check_lang(lang) if lang else None
        self.min_lang_share, self.threshold = min_lang_share, threshold
        self.tallies: dict[str, Tally] = {}
        self.kinds: set[str] = set()
        self.missing_chat_template = False
        self.encoder: Encoder | None = None
        self.rows = SketchedRows(Sketcher(threshold))
        self.refs = len(self.rows.locators)
        self.eval_files = list(eval_files)
        if self.eval_files:
            read_references(self.eval_files, self.rows, Side.prompt)
            self.refs = len(self.rows.locators)
        self._pending: list[Mapped] = []
        self.thinking = ThinkingChecks(self.tally)
        self.pii = Scrubber(ScrubSpec())  # what scrub would find, with its defaults
        self.plan: RenderPlan | None = None

    def tally(self, code: str, where: Any, sample: Sample | None = None) -> None:
        tally = self.tallies.setdefault(code, Tally())
        tally.add(where)
        if sample is not None and sample.tokenized is not None and self.encoder is not None and len(tally.samples) < 2:
            tally.samples.append(_view(self.encoder, sample))

    def bind(self, plan: RenderPlan, encoder: Encoder) -> None:
        self.encoder, self.plan = encoder, plan

    def sample(self, sample: Sample) -> None:
        assert self.encoder is not None and sample.tokenized is not None
        encoder, tok, where = self.encoder, sample.tokenized, sample.locator
        self.kinds.add(sample.record.kind)
        for problem in encoder.problems(tok):
            self.tally(problem.value, where, sample)
        bos = encoder.specials.bos
        if (self.trainer is not Trainer.sftdata and encoder.specials.adds_bos and bos
                and sample.rendered.text.startswith(bos)):  # pretokenized data holds it once: nothing to report
            self.tally("bos_in_text", where, sample)
        if self.plan is not None and sample.record.kind == RecordKind.chat.value:
            self.thinking.sample(sample.record, sample.rendered, self.plan.renderer_for(RecordKind.chat))
        self._truncation(tok, where, sample)
        text = record_text(sample.record, Side.all)
        found = self.pii.scan(record_row(sample.record))[0]
        if found:  # no token view: it would show the personal information itself
            self.tally("pii", f"{where} ({found.describe()})")
        if mojibake(text):
            self.tally("mojibake", where)
        if self.lang:
            share = script_share(text, self.lang)
            if share is not None and share < self.min_lang_share:
                self.tally("language_mix", where)
        self._pending.append(Mapped(sample.record, where))
        if len(self._pending) >= 4096:
            self._flush()

    def _truncation(self, tok: Any, where: Any, sample: Sample) -> None:
        limit = self.max_seq_length
        if limit is None or tok.length <= limit:
            return
        spans = tok.spans()
        if not spans or spans[0][0] >= limit:
            self.tally("fully_truncated", where, sample)
        elif spans[-1][1] > limit:
            self.tally("eos_truncated", where, sample)
        else:
            self.tally("over_limit", where, sample)

    def _flush(self) -> None:
        if self._pending:
            self.rows.add(self._pending, Side.prompt)
            self._pending = []

    def reject(self, reject: Reject) -> None:
        if reject.reason == "eos_in_text":
            self.tally("eos_in_data", reject.locator)
        elif reject.reason in ("special_token_in_text", "turn_not_located"):
            self.tally(reject.reason, f"{reject.locator} ({reject.field or reject.message})")
        elif reject.reason == "blank" and _is_answer(reject.field):
            self.tally("empty_answer", reject.locator)
        else:
            self.tally("invalid_rows", f"{reject.locator} ({reject.reason})")

    def findings(self, plan: RenderPlan, encoder: Encoder) -> list[Finding]:
        self._flush()
        self._duplicates()
        self._tokenizer_checks(plan, encoder)
        self.thinking.finish(list(plan.renderers.values()))
        out = [CHECKS[code].finding(code, tally.count, tally.examples, self.trainer, tally.samples)
               for code, tally in self.tallies.items() if tally.count]
        order = list(Severity)
        return sorted(out, key=lambda f: (order.index(f.severity), -f.count, f.code))

    def _duplicates(self) -> None:
        matches = find_duplicates(self.rows.joined(), self.threshold, refs=self.refs)
        locators = self.rows.locators
        for row in range(self.refs, len(locators)):
            target = int(matches.dup_of[row])
            if target < 0:
                continue
            code = "eval_overlap" if target < self.refs else (
                "exact_duplicates" if matches.exact[row] else "near_duplicates")
            self.tally(code, f"{locators[row]} ~ {locators[target]} ({float(matches.similarity[row]):.2f})")

    def _tokenizer_checks(self, plan: RenderPlan, encoder: Encoder) -> None:
        specials, tok = encoder.specials, plan.tokenizer_obj
        if specials.pad_id is None or specials.pad_id == specials.eos_id:
            self.tally("pad_is_eos", f"pad {specials.pad!r}, eos {specials.eos!r}")
        if specials.adds_eos:
            self.tally("tokenizer_adds_eos", f"eos {specials.eos!r}")
        for renderer in plan.renderers.values():
            if renderer.eos in encoder.multi_token_stops:
                self.tally("eos_not_single_token",
                           f"{renderer.eos!r} → {len(encoder.multi_token_stops[renderer.eos])} tokens")
        own = _family_of_tokenizer(encoder)
        for renderer in plan.renderers.values():
            template = renderer.template
            if template.origin == "tokenizer":
                continue
            used = _family_of_template(template.source)
            if template.kind is RecordKind.chat and used and used != own:
                self.tally("template_mismatch", f"template {template.name} ({used} markers) vs tokenizer "
                           f"({own or 'no known chat markers'})")
            elif template.kind is not RecordKind.chat and getattr(tok, "chat_template", None):
                self.tally("prompt_format_differs", f"template {template.name}; the tokenizer has a chat template")


def _view(encoder: Encoder, sample: Sample, head: int = 96, tail: int = 48) -> list[tuple[str, str]]:
    """A sample token by token (text, prompt/trained/eos/bos), the middle of a long one left out."""
    from .inspection import label

    tokens = [(t.text, t.kind.value) for t in label(encoder, sample.tokenized)]  # type: ignore[arg-type]
    if len(tokens) > head + tail:
        tokens = tokens[:head] + [(f" … {len(tokens) - head - tail:,} tokens … ", "gap")] + tokens[-tail:]
    return tokens


def _is_answer(name: str | None) -> bool:
    return bool(name) and (name in ("output", "answer") or (name.startswith("messages[") and "content" in name))


def _family_of_tokenizer(encoder: Encoder) -> str | None:
    vocab = encoder.tokenizer.get_vocab()
    for family, markers in FAMILIES.items():
        if all(m in vocab for m in markers):
            return family
    return None


def _family_of_template(source: str) -> str | None:
    for family, markers in FAMILIES.items():
        if all(m in source for m in markers):
            return family
    return None


def _chat_plan(template: str | None, tokenizer: Any, spec: str, checks: Checks, **options: Any) -> RenderPlan:
    """The plan to audit with. A tokenizer without a chat template cannot render chats with `chat`:
    that is reported (when chats are rendered) and the audit goes on with chatml."""
    try:
        plan = open_plan(template, tokenizer, spec=spec, **options)
    except TemplateError:
        if template != "chat":
            raise
        checks.missing_chat_template = True
        return open_plan("chatml", tokenizer, spec=spec, **options)
    if plan.template == AUTO and not getattr(tokenizer, "chat_template", None):
        checks.missing_chat_template = True
        plan.substitute("chat", "chatml")
    return plan


@dataclass(slots=True)
class AuditResult(CurateResult):
    """What `audit` found: the findings (Finding.as_dict, worst first), how many are errors and warnings, the
    lengths' summary (as `stats` gives it) and how the samples were rendered (RenderPlan.provenance)."""

    findings: list[dict[str, Any]] = field(default_factory=list)
    errors: int = 0
    warnings: int = 0
    trainer: Trainer = Trainer.generic
    stats: dict[str, Any] = field(default_factory=dict)
    style: str = ""
    template: list[dict[str, str]] = field(default_factory=list)
    tokenizer: str | None = None
    eos: list[str] | str | None = None
    template_args: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)
    train_on: str | None = field(default=None, metadata=OMIT_NONE)


def audit(inputs: Sequence[str | os.PathLike[str]], tokenizer: Any, *, template: str | None = None,
          template_args: TemplateArgs = None, train_on: TrainOn = "all",
          max_seq_length: int | None = None, trainer: Trainer = Trainer.generic,
          eval_files: Sequence[str | os.PathLike[str]] = (), lang: str | None = None, min_lang_share: float = 0.5,
          threshold: float = DEFAULT_THRESHOLD, progress: Progress | None = None) -> AuditResult:
    """Check records JSONL against a tokenizer and template; `result.findings` lists them."""
    started = time.perf_counter()
    checks = Checks(max_seq_length=max_seq_length, trainer=trainer, lang=lang, min_lang_share=min_lang_share,
                    threshold=threshold, eval_files=eval_files)
    lengths = LengthObserver(max_seq_length)
    tokenizer, spec = load(tokenizer)
    plan = _chat_plan(template, tokenizer, spec, checks, template_args=template_args, train_on=train_on)
    inputs_, plan, encoder = scan(inputs, plan, [checks, lengths], progress)
    if checks.missing_chat_template:
        if template == "chat" or RecordKind.chat.value in checks.kinds:
            checks.tally("chat_template_missing", f"tokenizer {spec}")
        else:  # no chat was rendered: the stand-in template played no part
            plan.renderers.pop("chat", None)
    findings = checks.findings(plan, encoder)
    result = AuditResult("audit", inputs_.counts, examples=lengths.rejects, findings=[f.as_dict() for f in findings],
                         errors=sum(1 for f in findings if f.severity is Severity.error),
                         warnings=sum(1 for f in findings if f.severity is Severity.warning),
                         trainer=trainer, stats=lengths.lengths.summary(), **plan.provenance())
    result.meta = {"seconds": round(time.perf_counter() - started, 3)}
    return result
