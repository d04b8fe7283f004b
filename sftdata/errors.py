"""One hierarchy for every error the library raises.

Each error carries the context a user needs to fix the cause (file, line, field, template);
the CLI turns them into one line and an exit code, the library never prints.
"""
from __future__ import annotations

import re
from collections.abc import Callable

_UNSET = object()
_NAMED = re.compile("\x02([A-Za-z_][A-Za-z0-9_]*)(?:\x1f([^\x02]*))?\x02")
_SWITCH = "\x1e"


def option(name: str, value: object = _UNSET) -> str:
    """An option named inside an error's message or hint, written as its caller knows it: `--tokenizer DIR`
    on the command line, `tokenizer=DIR` in a notebook (`spelled`). `value` is what to show after it (a
    placeholder such as "DIR", or a value); True is a switch (`--base`, `base=True`)."""
    if value is _UNSET:
        return f"\x02{name}\x02"
    return f"\x02{name}\x1f{_SWITCH if value is True else value}\x02"


def dashed(name: str) -> str:
    """How the command line names an option that declares no flag of its own: `--name-with-dashes`."""
    return "--" + name.replace("_", "-")


def keyword(name: str) -> str:
    """How a notebook names an option: the keyword argument (`max_chars=`)."""
    return f"{name}="


def spelled(text: str, flag: Callable[[str], str] = keyword) -> str:
    """`text` with each `option(...)` in it written by `flag` (the CLI's: `--max-chars`; default `keyword`)."""

    def one(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        named = flag(name)
        if value is None:
            return named
        if value == _SWITCH:
            return named if not named.endswith("=") else f"{named}True"
        return f"{named}{value}" if named.endswith("=") else f"{named} {value}"

    return _NAMED.sub(one, text)


class SftDataError(Exception):
    """Base of all sftdata errors. `exit_code` is what the CLI exits with."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        self.hint = hint

    def said(self, flag: Callable[[str], str] = keyword) -> str:
        """The error as one line, the options it names written by `flag` (`spelled`)."""
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line is not None else "") + ": "
        text = where + self.message
        if self.field:
            text += f" (field {self.field})"
        if self.hint:
            text += f". {self.hint}"
        return spelled(text, flag)

    def __str__(self) -> str:
        return self.said()


class OptionError(SftDataError):
    """An option's value cannot work (out of range, contradicting another option, unknown name).

    `option` is the keyword argument's name: a notebook shows `threshold=1.5: …`, and the CLI shows the same
    error under the option's flag (`--threshold 1.5: …`, sftdata.cli.build)."""

    def __init__(self, message: str, *, option: str, value: object = _UNSET, hint: str | None = None,
                 file: str | None = None) -> None:
        super().__init__(message, hint=hint, file=file)
        self.option = option
        self.value = value

    def said(self, flag: Callable[[str], str] = keyword) -> str:
        """The error with its option (and any other it names) written by `flag`: `--threshold 1.5: …` on the
        command line, `threshold=1.5: …` in a notebook."""
        name = flag(self.option)
        shown = name if self.value is _UNSET else (f"{name}{self.value!r}" if name.endswith("=")
                                                   else f"{name} {self.value}")
        message = spelled(self.message + (f". {self.hint}" if self.hint else ""), flag)
        return f"{self.file}: {shown}: {message}" if self.file else f"{shown}: {message}"


class InputError(SftDataError):
    """An input file is missing, unreadable, undecodable or not in the expected format."""


class MappingError(SftDataError):
    """A mapping file or preset is invalid (not a per-row problem: those are rejects)."""


class TemplateError(SftDataError):
    """A template is missing, invalid, unsafe, or its EOS policy cannot be satisfied."""


class TokenizerError(SftDataError):
    """A tokenizer could not be loaded or lacks what the command needs (e.g. an EOS token)."""


class OutputError(SftDataError):
    """An output cannot be written (permissions, disk full, a path outside the allowed place)."""


class BackendError(SftDataError):
    """A model or server backend failed in a way that retries cannot fix."""


class TrainError(SftDataError):
    """A training, merge or generate run cannot start or failed (config, model source, memory)."""
