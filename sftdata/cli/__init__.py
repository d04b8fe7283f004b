"""The `sftdata` command: parses options, calls the library, shows progress and results with rich.

Every command is declared once, in sftdata.api (the registry, sftdata.api.registry); sftdata.cli.build makes
the Typer command from that declaration, and the command's group module here (`core`, `curate`, `views`, …)
holds only how its result is shown (`VIEWS`). Only the CLI prints. `main()` builds only the command being run,
so `sftdata convert` stays quick; `--help` and `app` build all of them.
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

GROUPS = ("core", "synth", "interop", "train", "serve", "views", "curate", "evaluate", "production", "review")


def command_names() -> list[str]:
    """Every command, in the order `sftdata --help` lists them: by group (the flow's order), then as declared."""
    from ..api import COMMANDS

    declared = sorted(COMMANDS, key=lambda n: GROUPS.index(COMMANDS[n].group))
    return declared


def build_app(names: Iterable[str] | None = None) -> typer.Typer:
    """The Typer app with the named commands (all of them by default)."""
    from ..api import COMMANDS
    from .build import build
    from .common import View

    app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                      rich_markup_mode="markdown",
                      help="Raw labelled data → validated SFT data, every reject explained.")
    app.callback()(_group)  # keeps `sftdata NAME ...` a group even when one command is registered
    for name in (command_names() if names is None else names):
        declared = COMMANDS[name]
        views = getattr(importlib.import_module(f".{declared.group}", __name__), "VIEWS", {})
        app.command(name)(build(declared, views.get(name, View())))
    return app


def _group() -> None:
    """Raw labelled data → validated SFT data, every reject explained."""


def _requested(argv: list[str]) -> list[str] | None:
    """The command named on the command line, when it is the only one needed."""
    name = next((a for a in argv if not a.startswith("-")), None)
    return [name] if name in command_names() else None


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
