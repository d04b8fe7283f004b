"""The `sftdata` command: parses options, calls the library, shows progress and results with rich.

Each group of commands lives in its own module and is registered here; only the CLI prints.
`main()` imports only the module of the command being run (the train commands alone cost a third of
a second of start-up), so `sftdata convert` stays quick; `--help` and `app` register all of them.
"""
from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from typing import Any

import typer
from rich.markup import escape

from ..errors import SftDataError
from .common import err

# command name -> (module in sftdata.cli, function), in the order `sftdata --help` lists them
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("core", "convert"), "render": ("core", "render"), "validate": ("core", "validate"),
    "schema": ("core", "schema"), "synth": ("synth", "synth"), "export": ("interop", "export"),
    "card": ("interop", "card"), "train": ("train", "train"), "plan": ("train", "plan"),
    "merge": ("train", "merge"), "generate": ("train", "generate"), "export-gguf": ("serve", "export_gguf"),
    "serve-check": ("serve", "serve_check"), "stats": ("views", "stats"),
    "inspect": ("views", "inspect_"), "audit": ("views", "audit"), "dedup": ("curate", "dedup"),
    "filter": ("curate", "filter_"), "split": ("curate", "split"), "pretokenize": ("curate", "pretokenize"),
    "eval": ("evaluate", "eval_"), "scrub": ("production", "scrub"), "decontaminate": ("production", "decontaminate"), "mix": ("production", "mix"),
}


def build_app(names: Iterable[str] | None = None) -> typer.Typer:
    """The Typer app with the named commands (all of them by default)."""
    app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                      rich_markup_mode="markdown",
                      help="Raw labelled data → validated SFT data, every reject explained.")
    app.callback()(_group)  # keeps `sftdata NAME ...` a group even when one command is registered
    for name in (COMMANDS if names is None else names):
        module, function = COMMANDS[name]
        app.command(name)(getattr(importlib.import_module(f".{module}", __name__), function))
    return app


def _group() -> None:
    """Raw labelled data → validated SFT data, every reject explained."""


def _requested(argv: list[str]) -> list[str] | None:
    """The command named on the command line, when it is the only one needed."""
    name = next((a for a in argv if not a.startswith("-")), None)
    return [name] if name in COMMANDS else None


def __getattr__(name: str) -> Any:  # `from sftdata.cli import app`: the full app, built on first use
    if name == "app":
        globals()["app"] = build_app()
        return globals()["app"]
    raise AttributeError(name)


def _quiet_flags(command: Any) -> None:
    """No `<bool>` type column beside on/off flags in --help: the flag says it all."""
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _quiet_flags(sub)


def main() -> None:
    try:
        command = typer.main.get_command(build_app(_requested(sys.argv[1:])))
        _quiet_flags(command)
        command(prog_name="sftdata")
    except SftDataError as error:  # raised outside a command body, e.g. while parsing
        err.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)
        sys.exit(error.exit_code)
    except Exception as error:  # a bug in sftdata, never bad data: keep it to one line unless asked
        if os.environ.get("SFTDATA_DEBUG"):
            raise
        err.print(f"[bold red]internal error:[/] {type(error).__name__}: {escape(str(error))} "
                  "(set SFTDATA_DEBUG=1 for a traceback)", soft_wrap=True)
        sys.exit(3)
