"""The `sftdata` command: parses options, calls the library, shows progress and results with rich.

Each group of commands lives in its own module and is registered here; only the CLI prints.
"""
from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape

from ..errors import SftDataError
from . import core
from .common import err


def build_app() -> typer.Typer:
    app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                      rich_markup_mode="markdown",
                      help="Raw labelled data → validated SFT data, every reject explained.")
    for command in (core.convert, core.render, core.validate, core.schema):
        app.command()(command)
    from .synth import synth
    app.command()(synth)
    from . import interop
    app.command()(interop.export)
    app.command()(interop.card)
    from . import train
    for command in (train.train, train.plan, train.merge, train.generate):
        app.command()(command)
    from . import curate, views
    app.command("stats")(views.stats)
    app.command("inspect")(views.inspect_)
    app.command("audit")(views.audit)
    app.command("dedup")(curate.dedup)
    app.command("filter")(curate.filter_)
    app.command("split")(curate.split)
    app.command("pretokenize")(curate.pretokenize)
    return app


app = build_app()


def main() -> None:
    try:
        app()
    except SftDataError as error:  # raised outside a command body, e.g. while parsing
        err.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)
        sys.exit(error.exit_code)
    except Exception as error:  # a bug in sftdata, never bad data: keep it to one line unless asked
        if os.environ.get("SFTDATA_DEBUG"):
            raise
        err.print(f"[bold red]internal error:[/] {type(error).__name__}: {escape(str(error))} "
                  "(set SFTDATA_DEBUG=1 for a traceback)", soft_wrap=True)
        sys.exit(3)
