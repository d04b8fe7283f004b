"""A chat template's own end-of-turn markers, found from what it renders (never from a list of names).

Three probe conversations are rendered once per template:
- a final answer: what the template writes right after it is the **stop** marker (`<|im_end|>`,
  `<end_of_turn>`, `<|eot_id|>`, `<seed:eos>`, `<turn|>`, gpt-oss's `<|return|>` …), the one every
  trained answer ends with;
- an answer followed by another user turn: the marker an answer in the history ends with (gpt-oss
  writes `<|end|>` there);
- a tool-call turn followed by the tool's reply: the marker a call ends with (`<|eom_id|>` of
  functionary v3.1, `<|call|>` of gpt-oss), where the rendering of the call alone and of the call
  with its reply part.
A marker is the tokenizer's control token the text starts (or the call's text ends) with, else the
first run of non-space text (cut where one `<…>` tag meets the next), or the `<|…|>` tag a call ends with. A template that writes nothing
after an answer has no marker: the caller falls back to the tokenizer's EOS.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .chat import ChatTemplate

_ANSWER = "Sft9dM{0}Q7x"
_CITY = "Seoul"
_TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}]
_RUN = re.compile(r"\S+")
_TAG = re.compile(r"<[|｜]?[^<>\s|｜]+[|｜]>$|<[|｜][^<>\s|｜]+>$")


@dataclass(frozen=True, slots=True)
class EndMarkers:
    """`stop`: what a final answer ends with (None: the template writes nothing there); `ends`: every
    marker an assistant turn may end with, `stop` first."""

    stop: str | None
    ends: tuple[str, ...]


def end_markers(template: ChatTemplate, controls: tuple[str, ...]) -> EndMarkers:
    """The template's own end-of-turn markers; `controls` are the tokenizer's control tokens."""
    user = {"role": "user", "content": "Hi"}
    final = _tail(template, [user, {"role": "assistant", "content": _ANSWER.format(0)}], _ANSWER.format(0))
    stop = _leading(final, controls) if final is not None else None
    found: list[str | None] = [stop]
    middle = _tail(template, [user, {"role": "assistant", "content": _ANSWER.format(0)},
                              {"role": "user", "content": _ANSWER.format(1)},
                              {"role": "assistant", "content": "Ok"}], _ANSWER.format(0), _ANSWER.format(1))
    if middle is not None:
        marker = _leading(middle, controls)
        if stop is None and marker and (marker in controls or _TAG.fullmatch(marker)):
            stop = marker  # no marker after the last answer (Apertus, GLM): the one earlier answers end with
        found.append(marker)
    found.append(_call_end(template, user, controls))
    ends = tuple(dict.fromkeys(m for m in (stop, *found) if m))
    return EndMarkers(stop, ends)


_TURN_TAG = re.compile(r"<\|[^<>\s|]{1,40}\|>|<｜[^<>\s｜]{1,40}｜>|\[\|[^\[\]\s|]{1,40}\|\]")


def turn_markers(template: ChatTemplate, headers: tuple[str, ...], ends: tuple[str, ...]) -> tuple[str, ...]:
    """The markers the template writes around turns: its end-of-turn markers, and the `<|…|>`, `<｜…｜>` and
    `[|…|]` tags of its role headers (DeepSeek's `<｜User｜>`, `<｜Assistant｜>` are no special tokens of its
    tokenizer, yet data holding them would be read as a turn boundary)."""
    user = _ANSWER.format(3)
    try:
        text = template.render([{"role": "user", "content": user}, {"role": "assistant", "content": "Ok"}])
    except Exception:  # a template that wants another shape: its headers and ends are still known
        text = ""
    found = [*ends, *(m for piece in (*headers, text.replace(user, " ")) for m in _TURN_TAG.findall(piece))]
    return tuple(dict.fromkeys(found))


def _tail(template: ChatTemplate, messages: list[dict[str, Any]], after: str, before: str | None = None) -> str | None:
    """The rendered text after `after` (up to `before` when given); None where the template refuses the probe."""
    try:
        text = template.render(messages)
    except Exception:  # a template that wants another shape of conversation: no marker from this probe
        return None
    at = text.rfind(after) if before is None else text.find(after)
    if at < 0:
        return None
    rest = text[at + len(after):]
    if before is not None:
        cut = rest.find(before)
        rest = rest[:cut] if cut >= 0 else None  # type: ignore[assignment]
    return rest


def _leading(text: str, controls: tuple[str, ...]) -> str | None:
    text = text.lstrip()
    for control in controls:  # longest first
        if text.startswith(control):
            return control
    run = _RUN.match(text)
    if run is None:
        return None
    word = run.group(0)
    joint = word.find("><")
    return word[:joint + 1] if joint > 0 else word


def _call_end(template: ChatTemplate, user: dict[str, Any], controls: tuple[str, ...]) -> str | None:
    """The marker a tool-call turn ends with: the control token ending what the call and the call followed
    by its reply both render."""
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": {"city": _CITY}}}]}
    reply = {"role": "tool", "name": "get_weather", "tool_call_id": "call12345", "content": _ANSWER.format(2)}
    try:
        alone = template.render([user, call], _TOOLS)
        followed = template.render([user, call, reply, {"role": "assistant", "content": "Ok"}], _TOOLS)
    except Exception:  # no tool calls in this template
        return None
    common = _common(alone, followed).rstrip()
    if not common or _ANSWER.format(2) in common:
        return None
    for control in controls:
        if common.endswith(control):
            return control
    tag = _TAG.search(common)  # a marker this tokenizer does not hold as one token (`<|eom_id|>` in Llama 3.0's)
    if tag:
        return tag.group(0)
    after = common[common.rfind(_CITY):]  # what follows the call's arguments, where the call alone goes on
    first = _TURN_TAG.search(after)  # with a prompt for the next turn (Command R7B): its first tag ends the call
    return first.group(0) if first else None


def _common(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:n]
