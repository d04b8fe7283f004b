"""Audit checks for reasoning data and chat templates that treat turns differently.

What a thinking template does to training data is easy to get silently wrong: DeepSeek-R1-Distill and
EXAONE 4.0 (with its default skip_think=true) drop the reasoning from every trained turn; Qwen3 renders
earlier assistant turns without their think block, so with --train-on all those turns are trained in a
shape the model never sees them in later; an empty think block may carry loss; a row may open a
<think> it never closes; Llama 3.x templates write today's date unless date_string is pinned.
`ThinkingChecks` tallies each per row (audit.Checks feeds it); the codes are explained in findings.py.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..ingest.records import inline_thinking
from ..items import Rendered
from ..rendering.templating import Renderer
from ..schemas.records import ChatRecord, Record

EMPTY_THINK = re.compile(r"<think>\s*</think>")
Tally = Callable[[str, Any], None]


def reasoning_of(message: Any) -> str | None:
    """A message's reasoning: its reasoning_content, or an inline <think>…</think> at the start."""
    if message.reasoning_content:
        return message.reasoning_content
    inline = inline_thinking(message.content or "")
    return (inline[0].strip() or None) if inline else None


class ThinkingChecks:
    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.with_reasoning = 0
        self.without_reasoning = 0
        self.first: dict[bool, Any] = {}

    def sample(self, record: Record, rendered: Rendered, renderer: Renderer) -> None:
        if not isinstance(record, ChatRecord):
            return
        where = rendered.locator
        trained_turns = renderer.trained_turns(record)
        trained = [s.text for s in rendered.segments if s.train]
        for text in trained:
            if EMPTY_THINK.search(text):
                self.tally("empty_think_trained", where)
                break
        for message in record.messages:
            content = message.content or ""
            if content.count("<think>") != content.count("</think>"):
                self.tally("unclosed_think", where)
                break
        has = [reasoning_of(record.messages[i]) for i in trained_turns]
        if any(has):
            self.with_reasoning += 1
            self.first.setdefault(True, where)
        else:
            self.without_reasoning += 1
            self.first.setdefault(False, where)
        for index, reasoning, text in zip(trained_turns, has, trained):
            if reasoning and _first_words(reasoning) not in text:
                self.tally("reasoning_dropped", f"{where} (message {index})")
            message = record.messages[index]
            if message.tool_calls and message.content.strip() and _first_words(message.content) not in text:
                self.tally("content_dropped", f"{where} (message {index})")
        self._history(record, renderer, trained_turns, trained, where)

    def _history(self, record: ChatRecord, renderer: Renderer, turns: list[int], trained: list[str],
                 where: Any, most: int = 2) -> None:
        """The trained earlier turns (the last `most` of them: a template that renders history differently
        does so for every turn, and each check renders the conversation again) compared with how the
        template renders each as the last turn."""
        for index, text in list(zip(turns[:-1], trained[:-1]))[-most:]:
            alone = ChatRecord(messages=record.messages[: index + 1], tools=record.tools)
            out = renderer.render(alone, where)
            if isinstance(out, Rendered):
                last = [s.text for s in out.segments if s.train]
                if last and last[-1] != text:
                    self.tally("history_differs", f"{where} (message {index})")
                    return

    def finish(self, renderers: list[Renderer]) -> None:
        if self.with_reasoning and self.without_reasoning:
            self.tally("reasoning_mixed", f"{self.with_reasoning:,} rows with reasoning (e.g. {self.first[True]}), "
                                          f"{self.without_reasoning:,} without (e.g. {self.first[False]})")
        for renderer in renderers:
            template = renderer.template
            if "strftime_now" in template.source and "date_string" not in template.args:
                self.tally("template_reads_date", f"template {template.name}")


def _first_words(text: str, size: int = 40) -> str:
    return text.strip()[:size]


class ReasoningLengths:
    """Reasoning and answer tokens of the trained turns that carry reasoning (for `stats`)."""

    def __init__(self) -> None:
        self.encoder: Any = None
        self.reasoning: list[int] = []
        self.answer: list[int] = []

    def bind(self, plan: Any, encoder: Any) -> None:
        self.encoder = encoder

    def sample(self, sample: Any) -> None:
        record, tok = sample.record, sample.tokenized
        if not isinstance(record, ChatRecord) or tok is None or self.encoder is None:
            return
        trained = "".join(s.text for s in sample.rendered.segments if s.train)
        texts = [r for r in (reasoning_of(m) for m in record.messages if m.role.value == "assistant")
                 if r and _first_words(r) in trained]
        if texts:
            count = sum(len(ids) for ids in self.encoder.token_ids(texts))
            self.reasoning.append(count)
            self.answer.append(max(tok.trained_tokens - count, 0))

    def reject(self, reject: Any) -> None:
        pass

    def summary(self) -> dict[str, Any] | None:
        from .lengths import describe  # numpy, with it, loads only for a summary

        if not self.reasoning:
            return None
        import numpy as np

        return {"rows": len(self.reasoning), "reasoning_tokens": describe(np.array(self.reasoning)),
                "answer_tokens": describe(np.array(self.answer))}


def reasoning_tokens(record: Record, encoder: Any) -> int:
    """Tokens of the longest reasoning among a chat's assistant turns (0 without reasoning)."""
    if not isinstance(record, ChatRecord):
        return 0
    texts = [r for r in (reasoning_of(m) for m in record.messages if m.role.value == "assistant") if r]
    return max((len(ids) for ids in encoder.token_ids(texts)), default=0)
