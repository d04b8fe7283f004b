"""Dotted paths into nested JSON: ``annotations.qa[0].question``, ``instances[-1]``, ``["odd.key"]``.

``[]`` stands for each element of a list, at any depth: the explode path ``data[].paragraphs[].qas[]`` reaches
every question of a KorQuAD/SQuAD file (`expand`), and a field path under it, ``data[].paragraphs[].context``,
reads the element being mapped at each ``[]`` it shares with the explode path (`bind`). `resolve` follows
paths without ``[]``."""
from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any


class Each:
    """The `[]` step: each element of a list."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "EACH"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Each)

    def __hash__(self) -> int:
        return hash("[]")

    def __reduce__(self) -> str:
        return "EACH"  # unpickled as this module's EACH


EACH = Each()
Step = str | int | Each
_TOKEN = re.compile(r'\.?([^.\[\]"]+)|\[(-?\d+)\]|\["((?:[^"\\]|\\.)*)"\]|(\[\])')


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
        name, index, quoted, each = match.groups()
        if quoted is not None:  # ["say \\"hi\\""]: a backslash keeps the next character as it is
            quoted = re.sub(r"\\(.)", r"\1", quoted)
        steps.append(EACH if each else int(index) if index is not None else (quoted if quoted is not None else name))
        position = match.end()
    if not steps:
        raise PathSyntaxError("empty path")
    return tuple(steps)


def format_path(steps: tuple[Step, ...]) -> str:
    out = ""
    for step in steps:
        if isinstance(step, Each):
            out += "[]"
        elif isinstance(step, int):
            out += f"[{step}]"
        elif re.fullmatch(r"[^.\[\]\"]+", step) and step == step.strip():
            out += ("." if out else "") + step
        else:  # quoted, so that parse_path gives the same step back
            out += '["' + step.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out


def resolve(value: Any, steps: tuple[Step, ...]) -> Any:
    for depth, step in enumerate(steps):
        where = format_path(steps[: depth + 1])
        if isinstance(step, Each):
            raise PathNotFound(f"{where}: [] (each element) belongs in an explode path and the field paths under it")
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


def expand(value: Any, steps: tuple[Step, ...]) -> Iterator[tuple[tuple[Step, ...], Any]]:
    """(concrete path, value) for every value a path reaches, `[]` taking each element of a list in order (the
    concrete path has the index taken in its place). A branch the path cannot follow gives (its concrete path,
    the PathNotFound saying why) and the other branches go on; an empty list gives nothing."""
    stack: list[tuple[tuple[Step, ...], Any, int]] = [((), value, 0)]
    while stack:
        where, value, depth = stack.pop()
        while depth < len(steps) and not isinstance(steps[depth], Each):
            try:
                value = resolve(value, (steps[depth],))
            except PathNotFound as error:  # name the step by its whole concrete path
                yield where, PathNotFound(f"{format_path((*where, steps[depth]))}:{str(error).partition(':')[2]}")
                break
            where, depth = (*where, steps[depth]), depth + 1
        else:
            if depth == len(steps):
                yield where, value
            elif not isinstance(value, list):
                yield where, PathNotFound(f"{format_path((*where, EACH))}: expected a list, found {type(value).__name__}")
            else:
                stack.extend(((*where, i), element, depth + 1) for i, element in reversed(list(enumerate(value))))


def check_bound(steps: tuple[Step, ...], pattern: tuple[Step, ...]) -> None:
    """A field path's `[]` steps must each be one of the explode path's, reached the same way
    (`data[].paragraphs[].context` under `data[].paragraphs[].qas[]`); PathSyntaxError if not."""
    for depth, step in enumerate(steps):
        if isinstance(step, Each) and steps[: depth + 1] != pattern[: depth + 1]:
            raise PathSyntaxError(f"{format_path(steps)}: [] stands for the element being read, so the path up to "
                                  f"each [] must be a start of the explode path ({format_path(pattern) or 'none'})")


def bind(steps: tuple[Step, ...], concrete: tuple[Step, ...]) -> tuple[Step, ...]:
    """A checked field path (check_bound) with each `[]` replaced by the index the explode path took there."""
    return tuple(concrete[depth] if isinstance(step, Each) else step for depth, step in enumerate(steps))
