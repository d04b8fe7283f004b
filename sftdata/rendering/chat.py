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
- otherwise the conversation is rendered again with sentinels in place of the turn's content,
  reasoning and first call's name: the first difference from the real rendering is where the turn's
  own text starts. The span starts after the assistant header (the generation prompt's, else the one
  history answers get, else the start of it a call turn shares; an answer right after a tool's output
  with no header starts with its own text) and ends with the first of the template's end-of-turn
  markers (sftdata.rendering.markers) after the turn's text; it never holds the next message. The
  newline some templates write after that marker is context, not trained: a model stops at the
  marker and never generates it.
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


def history_headers(template: ChatTemplate) -> tuple[str, ...]:
    """What the template writes before a rendered answer, the last one and an earlier one (either may differ
    from the generation prompt: `<｜Assistant｜></think>` against `<｜Assistant｜><think></think>`)."""
    user = {"role": "user", "content": "Hi"}
    answer = _SENTINEL.format(kind="H", index=0)
    before = template.render([user])
    found = []
    for tail in ([], [user, {"role": "assistant", "content": "Ok"}]):
        text = template.render([user, {"role": "assistant", "content": answer}, *tail])
        at = text.find(answer)
        if at >= 0:
            found.append(text[_common_prefix(before, text[:at]):at])
    return tuple(found)


def header_of(template: ChatTemplate, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    """What the generation prompt adds after the conversation so far (`<|im_start|>assistant\\n`, …)."""
    before = template.render(messages, tools, False)
    prompt = template.render(messages, tools, True)
    common = _common_prefix(before, prompt)
    return prompt[common:]


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
    if message.get("tool_calls"):  # also beside content: a template may drop the content and render the call
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
                 full: str, trained: list[int], ends: tuple[str, ...],
                 headers: tuple[str, ...] | None = None) -> list[Turn]:
    """The trained span of each assistant message in `trained` (indexes into messages), in order; each starts
    after the assistant header before it (`headers`: the generation prompt's, then the one history turns get;
    None: worked out per turn) and ends with the first of the template's end-of-turn markers `ends` after the
    turn's own text."""
    turns: list[Turn] = []
    floor = 0
    for index in trained:
        first, last, own = _turn_text(template, messages, tools, full, index)
        openings = headers if headers is not None else (header_of(template, messages[:index], tools),)
        start = _turn_start(full, floor, first, openings, ends, _texts(messages, index))
        if start is None and own and _after_other_turn(full, floor, first, messages, index):
            start = first  # an answer right after a tool's output, with no header of its own (DeepSeek-V3)
        if start is None:
            start = _opener_start(full, floor, first, openings, ends, messages)
        if start is None:
            raise TurnNotLocated(f"message {index}: the assistant header before this turn was not found")
        at, marker = _first_marker(full, last, ends)
        found = at >= 0 and all(_no_header_between(full, last, at, h) for h in openings)
        end = at + len(marker) if found else last
        following = _next_text(messages, index)
        if following and following in full[start:end]:  # never a tool's output trained as the assistant's
            raise TurnNotLocated(f"message {index}: the next message is rendered inside this turn")
        turns.append(Turn(index, start, end, found))
        floor = end
    return turns


_BOUNDARY = (">", "\n", "]")


def _opener_start(full: str, floor: int, first: int, headers: tuple[str, ...], ends: tuple[str, ...],
                  messages: list[dict[str, Any]]) -> int | None:
    """After the longest start of an assistant header, cut at a marker's end, that the turn follows (Cohere opens a
    call turn `<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|><|START_ACTION|>`, an answer `…<|START_TEXT|>`); never a
    start every turn shares (`<|im_start|>`), found before a user's or a tool's text."""
    others = [m["content"] for m in messages if m["role"] != "assistant" and isinstance(m.get("content"), str)
              and m["content"].strip()]
    for header in headers:
        for size in range(len(header) - 1, 0, -1):
            if not header[:size].endswith(_BOUNDARY):
                continue
            part = header[:size]
            at = full.rfind(part, floor, first)
            if at < 0 or any(end in full[at + size:first] for end in ends):
                continue
            if any(part in full[max(0, p - size - 64):p] for p in _positions(full, others)):
                break  # this start opens other turns too
            return at + size
    return None


def _positions(full: str, texts: list[str]) -> list[int]:
    return [at for at in (full.find(t) for t in texts) if at >= 0]


def _texts(messages: list[dict[str, Any]], index: int) -> list[str]:
    """The text of every other message (each user's, tool's and other assistant's turn)."""
    return [m["content"] for i, m in enumerate(messages) if i != index and isinstance(m.get("content"), str)
            and m["content"].strip()]


def _next_text(messages: list[dict[str, Any]], index: int) -> str | None:
    following = messages[index + 1] if index + 1 < len(messages) else None
    content = following.get("content") if following else None
    return content.strip() if isinstance(content, str) and content.strip() else None


def _after_other_turn(full: str, floor: int, first: int, messages: list[dict[str, Any]], index: int) -> bool:
    """Whether the text before the turn holds the previous message's (a tool's output): the turn follows it."""
    previous = messages[index - 1].get("content") if index > 0 else None
    return isinstance(previous, str) and bool(previous.strip()) and previous.strip() in full[floor:first]


def _first_marker(full: str, start: int, ends: tuple[str, ...]) -> tuple[int, str]:
    best, marker = -1, ""
    for end in ends:
        at = full.find(end, start)
        if at >= 0 and (best < 0 or at < best):
            best, marker = at, end
    return best, marker


def _turn_text(template: ChatTemplate, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
               full: str, index: int) -> tuple[int, int, bool]:
    """Where the turn's own text (reasoning, content, calls) starts and ends in `full`: rendered again
    with sentinels in its place, the text before the first and after the last sentinel is unchanged.
    The flag: the start is that of the turn's content or reasoning (not a call's name inside its markup)."""
    probe, marks = _with_sentinels(messages, index)
    if not marks or any(m in full for m in marks):
        raise TurnNotLocated(f"message {index}: nothing to mark the turn with")
    text = template.render(probe, tools, False)
    found = [(text.find(m), m) for m in marks if m in text]
    if not found:
        raise TurnNotLocated(f"message {index}: the template does not render this turn's text")
    p, opener = min(found)
    q, closer = max((at + len(m), m) for at, m in found)  # first places: a call's name may recur in its reply's header
    first = p if full[:p] == text[:p] else _common_prefix(full, text)
    call = _SENTINEL.format(kind="T", index=index)
    name = str(((messages[index].get("tool_calls") or [{}])[0].get("function") or {}).get("name") or "")
    named = full.find(name, first) if closer == call and name else -1
    if named >= 0:  # the call's name ends its own text; the suffixes differ where the template names the reply
        return first, named + len(name), call != opener
    tail = len(text) - q
    last = len(full) - tail if full.endswith(text[q:]) and len(full) - tail >= first else (
        len(full) - _common_suffix(full, text, len(full) - first))
    return first, last, call != opener


def _turn_start(full: str, floor: int, first: int, headers: tuple[str, ...], ends: tuple[str, ...],
                others: list[str]) -> int | None:
    """After the header that opens the turn whose text starts at `first`: the whole generation prompt
    when the rendering has it (a prefilled think block is then prompt, as at inference), else the header
    history turns get (`<｜Assistant｜></think>` where the prompt writes `<｜Assistant｜><think></think>`:
    what the template writes there is not the model's), else the longest start of the prompt that the
    turn's text directly follows (`<｜Assistant｜>` where the prompt goes on with `<think>\n`)."""
    if not any(h.strip() for h in headers):
        return first
    for header in headers:
        at = full.rfind(header, floor, first) if header.strip() else -1
        between = full[at + len(header):first]
        # a header of this turn, not an earlier one: no other turn ends between it and the turn's text (an end
        # marker there is the turn's own, with no other message's text: Kimi-K3's empty response before a call)
        if at >= 0 and not (any(end in between for end in ends) and any(o in between for o in others)):
            return at + len(header)
    header = headers[0]
    for size in range(len(header) - 1, 0, -1):
        part = header[:size]
        if part.strip() and full.endswith(part, floor, first):
            return first
    return None


def _no_header_between(full: str, start: int, end: int, header: str) -> bool:
    core = header.strip()
    return not core or core not in full[start:end]
