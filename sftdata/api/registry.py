"""The registry of commands: each `sftdata` command is declared once, as its notebook function.

A command is a function of sftdata.api decorated with `@command(...)`. Its parameters are the command's
options, each described where it is declared (`Annotated[float, Opt("--threshold", help=...)]`, or
`Arg(help=...)` for a positional argument), so the CLI (sftdata.cli.build), the notebook API, the engines
(sftdata.scale, through `split` and `sums`) and the docs' command table all read the same declaration.
Adding a command is one decorated function here plus the library function it calls.

What a notebook passes is checked here, once for every command, as the CLI's parser checks a command line: a
`Literal` or Enum option given a value outside its choices is an OptionError naming them, and a list option (the
input files, a repeatable option) given one path or string takes it as a list of one.
"""
from __future__ import annotations

import builtins
import enum
import functools
import inspect
import os
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from ..errors import OptionError, dashed

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Opt:
    """An option on the command line: its flags (default `--name-with-dashes`) and help. `negatable` gives
    a boolean a `--no-` form; `cli=False` keeps a keyword argument out of the CLI (a notebook-only value)."""

    flags: tuple[str, ...] = ()
    help: str = ""
    negatable: bool = False
    cli: bool = True
    metavar: str | None = None

    def __init__(self, *flags: str, help: str = "", negatable: bool = False, cli: bool = True,
                 metavar: str | None = None) -> None:
        object.__setattr__(self, "flags", tuple(flags))
        object.__setattr__(self, "help", help)
        object.__setattr__(self, "negatable", negatable)
        object.__setattr__(self, "cli", cli)
        object.__setattr__(self, "metavar", metavar)


@dataclass(frozen=True, slots=True)
class Arg:
    """A positional argument on the command line."""

    help: str = ""


@dataclass(frozen=True, slots=True)
class Option:
    """One parameter of a command as the registry sees it: name, type, default, and how the CLI shows it."""

    name: str
    annotation: Any  # the type without its Annotated metadata
    default: Any  # inspect.Parameter.empty when required
    spec: Opt | Arg

    @property
    def flag(self) -> str:
        """How the CLI names it: its first long flag, or the argument's name in capitals."""
        if isinstance(self.spec, Arg):
            return self.name.upper()
        flags = self.spec.flags
        return next((f for f in flags if f.startswith("--")), flags[0] if flags else dashed(self.name))

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


@dataclass(frozen=True, slots=True)
class Command:
    """A command: its name, its notebook function (whose parameters are the options) and what an engine needs.

    `split` is the library function an engine runs on each split of the inputs (sftdata.scale); `sums` names
    the result's figures that add up over splits, and `split_tokenizer` the loader that function uses
    (sftdata.tokenize.light or transformers); `overrides` a config model whose fields the function also takes
    as keyword arguments (train, plan: every TrainConfig field is an option)."""

    name: str
    function: Callable[..., Any]
    group: str
    split: Callable[..., Any] | None = None
    sums: tuple[str, ...] = ()
    overrides: Any = None
    options: tuple[Option, ...] = field(default=())
    split_tokenizer: Literal["full", "light"] = "full"

    @property
    def summary(self) -> str:
        return (inspect.getdoc(self.function) or "").split("\n\n", 1)[0].replace("\n", " ")

    @property
    def takes_progress(self) -> bool:
        return "progress" in inspect.signature(self.function).parameters

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    def flag(self, name: str) -> str:
        """How the command line names the keyword argument `name`: its option's flag, a config field's own flag
        (`json_schema_extra={"flag": "--lr"}`), else `--name-with-dashes`; errors name options by it."""
        declared = self.option(name)
        if declared is not None:
            return declared.flag
        field = (self.overrides.model_fields if self.overrides is not None else {}).get(name)
        extra = getattr(field, "json_schema_extra", None)
        if isinstance(extra, dict) and extra.get("flag"):
            return str(extra["flag"])
        return dashed(name)


COMMANDS: dict[str, Command] = {}  # in the order the commands are declared: `sftdata --help` lists them so


def options_of(function: Callable[..., Any]) -> tuple[Option, ...]:
    """The options of a command function, from its annotations (`progress` and **kwargs are not options)."""
    found = []
    for name, param in inspect.signature(function).parameters.items():
        if name == "progress" or param.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        hint = _evaluated(param.annotation, function)
        spec: Opt | Arg | None = None
        if typing.get_origin(hint) is typing.Annotated:
            hint, *extras = typing.get_args(hint)
            spec = next((e for e in extras if isinstance(e, (Opt, Arg))), None)
        if spec is None:
            spec = Arg() if param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and param.default is param.empty \
                else Opt()
        found.append(Option(name, hint, param.default, spec))
    return tuple(found)


def _evaluated(annotation: Any, function: Callable[..., Any]) -> Any:
    """A parameter's annotation as a type (this package writes them as strings: `from __future__ import
    annotations`); the return annotation may name types imported only for type checkers, so it is not read."""
    if annotation is inspect.Parameter.empty:
        return Any
    if isinstance(annotation, str):
        scope = inspect.unwrap(function).__globals__  # a declared command is its checking wrapper (`_checked`)
        return eval(annotation, scope, _Lenient(scope))  # our own source's annotations
    return annotation


class _Lenient(dict):  # type: ignore[type-arg]
    """Names in annotations resolve in the module, then the builtins; a type imported only for type checkers
    (under TYPE_CHECKING) reads as Any, which the CLI shows as text."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        super().__init__()
        self.namespace = namespace

    def __missing__(self, key: str) -> Any:
        if key in self.namespace:
            return self.namespace[key]
        return getattr(builtins, key, Any)


def command(name: str | None = None, *, group: str, split: Callable[..., Any] | None = None,
            sums: tuple[str, ...] = (), overrides: Any = None,
            split_tokenizer: Literal["full", "light"] = "full") -> Callable[[F], F]:
    """Declare a command: the decorated function is its notebook function; the CLI is built from it."""

    def register(function: F) -> F:
        key = name or function.__name__.rstrip("_").replace("_", "-")
        options = options_of(function)
        checked = _checked(function, options)
        COMMANDS[key] = Command(key, checked, group, split, sums, overrides, options, split_tokenizer)
        return checked

    return register


def _members(annotation: Any) -> list[Any]:
    """The types of a union (or the one type)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return list(typing.get_args(annotation))
    return [annotation]


def _is_list(member: Any) -> bool:
    origin = typing.get_origin(member) or member
    return isinstance(origin, type) and issubclass(origin, (Sequence, list, tuple, set)) \
        and not issubclass(origin, (str, bytes))


def choices_of(annotation: Any) -> tuple[Any, ...] | None:
    """The values an option may take when its type is a `Literal` or an Enum (None, where allowed, aside);
    None when it is neither."""
    found: list[Any] = []
    for member in _members(annotation):
        if typing.get_origin(member) is Literal:
            found += typing.get_args(member)
        elif isinstance(member, type) and issubclass(member, enum.Enum):
            found += [m.value for m in member]
    return tuple(found) or None


def _one_is_a_list(annotation: Any) -> bool:
    """Whether one path or string given for this option means a list of one: the type is a list (the input
    files, a repeatable option) and admits no single path or string."""
    members = _members(annotation)
    return any(_is_list(m) for m in members) and not any(
        m in (str, os.PathLike) or typing.get_origin(m) is os.PathLike or m is Any for m in members)


def _checked(function: F, options: tuple[Option, ...]) -> F:
    """The command's function, checking what a notebook passes as the CLI's parser checks a command line (the
    signature, name and docs stay the function's: functools.wraps)."""
    lists = {o.name for o in options if _one_is_a_list(o.annotation)}
    choices = {o.name: found for o in options if (found := choices_of(o.annotation)) is not None}
    nullable = {o.name for o in options if type(None) in _members(o.annotation) or o.default is None}
    if not lists and not choices:
        return function
    signature = inspect.signature(function)

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return function(*args, **kwargs)  # the function's own TypeError, as Python words it
        given = bound.arguments
        for name in lists & given.keys():
            if isinstance(given[name], (str, os.PathLike)):
                given[name] = [given[name]]
        for name in choices.keys() & given.keys():
            value = given[name]
            if value is None and name in nullable:
                continue
            if isinstance(value, enum.Enum):
                value = value.value
            if value not in choices[name]:
                raise OptionError(f"is not one of {', '.join(map(str, choices[name]))}", option=name, value=value)
        return function(*bound.args, **bound.kwargs)

    return typing.cast(F, checked)
