"""Dotted paths into nested JSON: ``annotations.qa[0].question``, ``instances[-1]``, ``["odd.key"]``."""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

Step = str | int
_TOKEN = re.compile(r'\.?([^.\[\]"]+)|\[(-?\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


class PathNotFound(LookupError):
    """A path step is missing or meets the wrong type; the message names the step."""


class PathSyntaxError(ValueError):
    pass


@lru_cache(maxsize=1024)
def parse_path(text: str) -> tuple[Step, ...]:
    steps: list[Step] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise PathSyntaxError(f"bad path {text!r} at character {position + 1}")
        name, index, quoted = match.groups()
        if quoted is not None:  # ["say \\"hi\\""]: a backslash keeps the next character as it is
            quoted = re.sub(r"\\(.)", r"\1", quoted)
        steps.append(int(index) if index is not None else (quoted if quoted is not None else name))
        position = match.end()
    if not steps:
        raise PathSyntaxError("empty path")
    return tuple(steps)


def format_path(steps: tuple[Step, ...]) -> str:
    out = ""
    for step in steps:
        if isinstance(step, int):
            out += f"[{step}]"
        elif re.fullmatch(r"[^.\[\]\"]+", step) and step == step.strip():
            out += ("." if out else "") + step
        else:  # quoted, so that parse_path gives the same step back
            out += '["' + step.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out


def resolve(value: Any, steps: tuple[Step, ...]) -> Any:
    for depth, step in enumerate(steps):
        where = format_path(steps[: depth + 1])
        if isinstance(step, int):
            if not isinstance(value, list):
                raise PathNotFound(f"{where}: expected a list, found {type(value).__name__}")
            if not -len(value) <= step < len(value):
                raise PathNotFound(f"{where}: index out of range (list has {len(value)} items)")
            value = value[step]
        else:
            if not isinstance(value, dict):
                raise PathNotFound(f"{where}: expected an object, found {type(value).__name__}")
            if step not in value:
                raise PathNotFound(f"{where}: missing")
            value = value[step]
    return value
