"""Typer commands built from the registry (sftdata.api.registry): one per declared command, its options read
from the notebook function's signature, its output from the command's `View` (sftdata.cli.common).

Types become what a command line can carry: a sequence is a repeatable option (or a variadic argument), a
`Literal` a fixed choice listed in --help, an Enum its values, a path text; the values go back to the function
as it declares them (a choice as its string, an omitted list as the function's default).
"""
from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from ..api.registry import Arg, Command, Option
from ..errors import dashed
from .common import Shown, View, errors

_CHOICES: dict[tuple[str, ...], type[enum.Enum]] = {}
_PANEL = "Training options (override the preset)"


def _members(annotation: Any) -> tuple[list[Any], bool]:
    """The types of a union (or the one type), and whether None is one of them."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        found = list(typing.get_args(annotation))
    else:
        found = [annotation]
    return [m for m in found if m is not type(None)], type(None) in found or annotation is None


def _is_sequence(member: Any) -> bool:
    origin = typing.get_origin(member) or member
    return isinstance(origin, type) and issubclass(origin, (Sequence, list, tuple, set)) \
        and not issubclass(origin, (str, bytes))


def _choices(values: tuple[Any, ...]) -> type[enum.Enum]:
    key = tuple(str(v) for v in values)
    if key not in _CHOICES:
        _CHOICES[key] = enum.Enum("Choice", {v: v for v in key}, type=str)  # type: ignore[misc]
    return _CHOICES[key]


def cli_type(annotation: Any) -> tuple[Any, bool]:
    """(the type Typer parses, whether it is a list) for a parameter's declared type."""
    members, _ = _members(annotation)
    for member in members:
        if isinstance(member, type) and issubclass(member, enum.Enum):
            return member, False
    for member in members:
        if typing.get_origin(member) is Literal:
            return _choices(typing.get_args(member)), False
    for member in members:
        if _is_sequence(member) or (typing.get_origin(member) or member) is Mapping:
            if not any(_is_sequence(m) for m in members):
                continue
            return list[str], True
    for kind in (bool, int, float, Path):
        if kind in members:
            return kind, False
    return str, False


def _parameter(option: Option) -> inspect.Parameter:
    kind, many = cli_type(option.annotation)
    spec = option.spec
    default = option.default
    if default is inspect.Parameter.empty:
        default = inspect.Parameter.empty
    elif many or default is None:
        default = None
    elif isinstance(default, str) and isinstance(kind, type) and issubclass(kind, enum.Enum):
        default = kind(default)
    if isinstance(spec, Arg):
        info: Any = typer.Argument(help=spec.help, show_default=False)
    else:
        flags = list(spec.flags) or [dashed(option.name)]
        if kind is bool and spec.negatable:
            flags[0] = f"{flags[0]}/--no-{flags[0][2:]}"
        info = typer.Option(*flags, help=spec.help, metavar=spec.metavar)
    annotation = Optional[kind] if default is None else kind
    return inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[annotation, info])


def _value(option: Option, value: Any) -> Any:
    """A parsed value as the function declares it: a choice as its string, an omitted list as its default."""
    if value is None and option.default is not inspect.Parameter.empty:
        return option.default
    if isinstance(value, enum.Enum) and type(value) in _CHOICES.values():
        return value.value
    return value


def _override(name: str, field: Any, flag: str) -> inspect.Parameter:
    """An option for a field of a command's config model (train, plan: `--lora-r 16 --packing`) under `flag`
    (`Command.flag`: the field's own where it declares one)."""
    if field.annotation is bool:
        kind: Any = Optional[bool]
        decls = [f"{flag}/--no-{flag[2:]}"]
    elif typing.get_origin(field.annotation) is Literal:
        kind, decls = Optional[_choices(typing.get_args(field.annotation))], [flag]
    else:
        members, _ = _members(field.annotation)
        base = next((t for t in (int, float) if t in members), str)
        kind, decls = Optional[base], [flag]
    option = typer.Option(*decls, help=field.description, rich_help_panel=_PANEL, show_default=False)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[kind, option])


def build(command: Command, view: View) -> Callable[..., None]:
    """The Typer command for `command`: its options, --json and --strict where the view has them."""
    params = [_parameter(o) for o in command.options if getattr(o.spec, "cli", True)]
    fields = dict(command.overrides.model_fields) if command.overrides is not None else {}
    params += [_override(n, f, command.flag(n)) for n, f in fields.items() if command.option(n) is None]
    if view.strict:
        params.append(inspect.Parameter("strict", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
            bool, typer.Option("--strict", help="Exit 1 if any row was rejected.")]))
    if view.json:
        params.append(inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
            bool, typer.Option("--json", help="Print one compact JSON summary line on stdout.")]))

    def run(**given: Any) -> None:
        shown = Shown(as_json=given.pop("as_json", False), strict=given.pop("strict", False), args={})
        args = {o.name: _value(o, given.pop(o.name)) for o in command.options if o.name in given}
        overrides = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in given.items() if v is not None}
        shown.args.update(args)
        with errors(command), view.progress(shown) as progress:
            if command.takes_progress:
                args["progress"] = progress
            result = command.function(**args, **overrides)
        view.show(result, shown)

    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__name__ = command.function.__name__
    run.__doc__ = inspect.getdoc(command.function)
    return run

