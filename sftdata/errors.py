"""One hierarchy for every error the library raises.

Each error carries the context a user needs to fix the cause (file, line, field, template);
the CLI turns them into one line and an exit code, the library never prints.
"""
from __future__ import annotations


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

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line is not None else "") + ": "
        text = where + self.message
        if self.field:
            text += f" (field {self.field})"
        if self.hint:
            text += f". {self.hint}"
        return text


_UNSET = object()


class OptionError(SftDataError):
    """An option's value cannot work (out of range, contradicting another option, unknown name).

    `option` is the keyword argument's name: a notebook shows `threshold=1.5: …`, and the CLI shows the same
    error under the option's flag (`--threshold 1.5: …`, sftdata.cli.build)."""

    def __init__(self, message: str, *, option: str, value: object = _UNSET, hint: str | None = None,
                 file: str | None = None) -> None:
        super().__init__(message, hint=hint, file=file)
        self.option = option
        self.value = value

    def named(self, name: str) -> str:
        """The error with the option written as `name` (a flag, or `option=`)."""
        shown = name if self.value is _UNSET else (f"{name}{self.value!r}" if name.endswith("=")
                                                   else f"{name} {self.value}")
        message = self.message + (f". {self.hint}" if self.hint else "")
        return f"{self.file}: {shown}: {message}" if self.file else f"{shown}: {message}"

    def __str__(self) -> str:
        return self.named(f"{self.option}=")


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
