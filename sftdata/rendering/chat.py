"""Chat templates rendered exactly as Hugging Face renders them, and where each assistant turn sits.

`make_chat_env` is Hugging Face's chat-template environment (transformers' `render_jinja_template`):
Jinja's sandbox with trim_blocks/lstrip_blocks, loop controls (`{% continue %}`), `{% generation %}`
blocks, `tojson` with its keyword arguments and without HTML escaping, `strftime_now`, `raise_exception`,
and messages whose reasoning is also passed as `thinking`. So `ChatTemplate.render` gives, byte for byte,
what `tokenizer.apply_chat_template(messages, tokenize=False, **args)` gives (tests/test_chat_templates.py).

`locate_turns` finds the text each assistant turn trains inside the rendering of the *whole*
conversation, so templates that render earlier turns differently from the last one (Qwen3 drops
earlier reasoning, DeepSeek-R1 drops all of it) are handled exactly:
- a template with `{% generation %}` blocks says so itself (as `return_assistant_tokens_mask` reads it);
- otherwise the conversation is rendered again with a sentinel in place of the turn's content (and
  reasoning): the first difference from the real rendering is where the turn's own text starts. The
  span starts after the assistant header (the generation prompt's text, less any part of it the
  template prefills at inference, such as an opened or empty think block) and ends with the
  template's end-of-turn marker. The newline some templates write after that marker is context, not
  trained: a model stops at the marker and never generates it.
A turn that cannot be located raises `TurnNotLocated`, which the renderer turns into a per-row reject.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import TemplateError

REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
"""Names a message's reasoning is read under; transformers passes the first two to every template."""

END_OF_TURN_MARKERS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "[|endofturn|]", "<｜end▁of▁sentence｜>",
                       "<|end|>", "<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>")
"""End-of-turn markers of the model families people fine-tune, checked after the tokenizer's own
special tokens when a template's stop token is worked out."""

_SENTINEL = "Sft9d{kind}{index}Q7x"


class TurnNotLocated(Exception):
    """An assistant turn whose trained text cannot be found in the rendered conversation."""


class _GenerationTracker(Extension):
    """`{% generation %}…{% endgeneration %}`: records the character range of what it renders."""

    tags = {"generation"}

    def __init__(self, environment: jinja2.Environment) -> None:
        super().__init__(environment)
        self._tracking: ContextVar[tuple[list[str], list[tuple[int, int]]] | None] = ContextVar(
            "sftdata_generation", default=None)
        environment.extend(track_generation=self.track)

    def parse(self, parser: Any) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_support"), [], [], body).set_lineno(lineno)

    def _support(self, caller: Any) -> str:
        text = caller()
        tracking = self._tracking.get()
        if tracking is not None:
            start = len("".join(tracking[0]))
            tracking[1].append((start, start + len(text)))
        return text

    @contextmanager
    def track(self, blocks: list[str], spans: list[tuple[int, int]]) -> Iterator[None]:
        token = self._tracking.set((blocks, spans))
        try:
            yield
        finally:
            self._tracking.reset(token)


class _Namespace(jinja2.utils.Namespace):
    """Jinja's namespace without underscore attributes (as transformers restricts it)."""

    def __init__(*args: Any, **kwargs: Any) -> None:
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _Namespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _Namespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"a namespace cannot hold the attribute {name!r}")


class _DictFactory:
    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return dict.fromkeys(*args, **kwargs)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    raise TemplateError(f"template raised: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def make_chat_env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now, dict=_DictFactory(),
                       namespace=_Namespace)
    return env


def hf_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as transformers hands them to a template: reasoning also under `thinking`."""
    out = []
    for message in messages:
        reasoning = next((message[k] for k in REASONING_FIELDS if message.get(k) is not None), None)
        out.append({"thinking": reasoning, **message, "reasoning_content": reasoning} if reasoning is not None
                   else message)
    return out


@dataclass(slots=True)
class ChatTemplate:
    """A compiled chat template with the variables every rendering gets (special tokens, template args)."""

    compiled: jinja2.Template
    source: str
    variables: dict[str, Any] = field(default_factory=dict)

    @property
    def has_generation_blocks(self) -> bool:
        return bool(_GENERATION_TAG.search(self.source))

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
               add_generation_prompt: bool = False) -> str:
        return self.compiled.render(**self._context(messages, tools, add_generation_prompt))

    def render_tracked(self, messages: list[dict[str, Any]],
                       tools: list[dict[str, Any]] | None = None) -> tuple[str, list[tuple[int, int]]]:
        blocks: list[str] = []
        spans: list[tuple[int, int]] = []
        with self.compiled.environment.track_generation(blocks, spans):  # type: ignore[attr-defined]
            for block in self.compiled.generate(**self._context(messages, tools, False)):
                blocks.append(block)
        return "".join(blocks), spans

    def _context(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                 add_generation_prompt: bool) -> dict[str, Any]:
        return {**self.variables, "messages": hf_messages(messages), "tools": tools, "documents": None,
                "add_generation_prompt": add_generation_prompt}


_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")


def header_of(template: ChatTemplate, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    """What the generation prompt adds after the conversation so far (`<|im_start|>assistant\\n`, …)."""
    before = template.render(messages, tools, False)
    prompt = template.render(messages, tools, True)
    common = _common_prefix(before, prompt)
    return prompt[common:]


def stop_of(template: ChatTemplate, candidates: list[str]) -> str | None:
    """The template's own end-of-turn marker: the first candidate written right after an answer."""
    answer = _SENTINEL.format(kind="A", index=0)
    try:
        text = template.render([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": answer}])
    except Exception:  # a template that wants another shape of conversation: no probe, no marker
        return None
    at = text.rfind(answer)
    if at < 0:
        return None
    tail = text[at + len(answer):]
    found = [(tail.find(c), -len(c), c) for c in candidates if c and c in tail]
    return min(found)[2] if found else None


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    lo, hi = 0, n
    while lo < hi:  # binary search on equal prefixes: long renderings compare in C, not char by char
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    n = min(len(a), len(b), limit)
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid:] == b[len(b) - mid:]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _with_sentinels(messages: list[dict[str, Any]], index: int) -> tuple[list[dict[str, Any]], list[str]]:
    message = dict(messages[index])
    marks = []
    if message.get("content"):
        message["content"] = _SENTINEL.format(kind="C", index=index)
        marks.append(message["content"])
    reasoning = next((message[k] for k in REASONING_FIELDS if message.get(k)), None)
    if reasoning:
        sentinel = _SENTINEL.format(kind="R", index=index)
        for k in REASONING_FIELDS:
            if message.get(k):
                message[k] = sentinel
        marks.append(sentinel)
    if not marks and message.get("tool_calls"):
        calls = [dict(c) for c in message["tool_calls"]]
        function = dict(calls[0].get("function") or {})
        function["name"] = _SENTINEL.format(kind="T", index=index)
        calls[0] = {**calls[0], "function": function}
        message["tool_calls"] = calls
        marks.append(function["name"])
    out = list(messages)
    out[index] = message
    return out, marks


@dataclass(frozen=True, slots=True)
class Turn:
    """Where one trained assistant turn sits in the rendered conversation: text[start:end]."""

    index: int
    start: int
    end: int
    stop_found: bool  # False: the template wrote no end-of-turn marker, the caller appends one


def locate_turns(template: ChatTemplate, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                 full: str, trained: list[int], stop: str, header: str | None = None) -> list[Turn]:
    """The trained span of each assistant message in `trained` (indexes into messages), in order."""
    turns: list[Turn] = []
    floor = 0
    for index in trained:
        first, last = _turn_text(template, messages, tools, full, index)
        opening = header if header is not None else header_of(template, messages[:index], tools)
        start = _turn_start(full, floor, first, opening, stop)
        if start is None:
            raise TurnNotLocated(f"message {index}: the assistant header before this turn was not found")
        at = full.find(stop, last) if stop else -1
        found = at >= 0 and _no_header_between(full, last, at, opening)
        end = at + len(stop) if found else last
        turns.append(Turn(index, start, end, found))
        floor = end
    return turns


def _turn_text(template: ChatTemplate, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
               full: str, index: int) -> tuple[int, int]:
    """Where the turn's own text (reasoning, content, calls) starts and ends in `full`: rendered again
    with sentinels in its place, the text before the first and after the last sentinel is unchanged."""
    probe, marks = _with_sentinels(messages, index)
    if not marks or any(m in full for m in marks):
        raise TurnNotLocated(f"message {index}: nothing to mark the turn with")
    text = template.render(probe, tools, False)
    found = [(text.find(m), m) for m in marks if m in text]
    if not found:
        raise TurnNotLocated(f"message {index}: the template does not render this turn's text")
    p = min(at for at, _ in found)
    q = max(text.rfind(m) + len(m) for _, m in found)
    first = p if full[:p] == text[:p] else _common_prefix(full, text)
    tail = len(text) - q
    last = len(full) - tail if full.endswith(text[q:]) and len(full) - tail >= first else (
        len(full) - _common_suffix(full, text, len(full) - first))
    return first, last


def _turn_start(full: str, floor: int, first: int, header: str, stop: str) -> int | None:
    """After the header that opens the turn whose text starts at `first`: the whole generation prompt
    when the rendering has it (a prefilled think block is then prompt, as at inference), else the
    longest start of it that the turn's text directly follows (`<｜Assistant｜>` where the prompt
    goes on with `<think>\n` but the trained turn does not)."""
    if not header.strip():
        return first
    at = full.rfind(header, floor, first)
    if at >= 0 and not (stop and stop in full[at:first]):
        return at + len(header)
    for size in range(len(header) - 1, 0, -1):
        part = header[:size]
        if part.strip() and full.endswith(part, floor, first):
            return first
    return None


def _no_header_between(full: str, start: int, end: int, header: str) -> bool:
    core = header.strip()
    return not core or core not in full[start:end]
