"""The notebook API: one function per `sftdata` command, with the command's options as keyword arguments.

`import sftdata` exposes each of these lazily (`sftdata.stats(...)`, `sftdata.dedup(...)`, …). Each function is
the command's one declaration (sftdata.api.registry): the CLI is built from its signature, so a flag and its
keyword argument cannot drift apart. Each returns a typed result; progress, where a command reports any, goes to
the `progress` callback. Importing this package imports no heavy library.
"""
from __future__ import annotations

from . import curate, data, evaluate, interop, production, review, serve, synth, train  # noqa: F401 - each declares commands
from .curate import Inspection
from .registry import COMMANDS, Arg, Command, Opt

# one function per declared command (`sftdata.api.dedup`, `sftdata.dedup`): a new command needs no line here
globals().update({declared.function.__name__: declared.function for declared in COMMANDS.values()})

__all__ = ["COMMANDS", "Arg", "Command", "Inspection", "Opt", *(d.function.__name__ for d in COMMANDS.values())]  # noqa: PLE0604
