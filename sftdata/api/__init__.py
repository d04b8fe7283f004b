"""The notebook API: one function per `sftdata` command, with the command's options as keyword arguments.

`import sftdata` exposes each of these lazily (`sftdata.stats(...)`, `sftdata.dedup(...)`, …). Each function is
the command's one declaration (sftdata.api.registry): the CLI is built from its signature, so a flag and its
keyword argument cannot drift apart. Each returns a typed result; progress, where a command reports any, goes to
the `progress` callback. Importing this package imports no heavy library.
"""
from __future__ import annotations

from .commands_old import (
           card,
           decontaminate,
           eval,
           export,
           export_gguf,
           generate,
           merge,
           mix,
           plan,
           scrub,
           serve_check,
           synth,
           train,
)
from .curate import Inspection, audit, dedup, filter, inspect, pretokenize, split, stats
from .data import convert, render, schema, validate
from .registry import COMMANDS, Arg, Command, Opt

__all__ = ["COMMANDS", "Arg", "Command", "Inspection", "Opt", "audit", "card", "convert", "decontaminate", "dedup",
           "eval", "export", "export_gguf", "filter", "generate", "inspect", "merge", "mix", "plan", "pretokenize",
           "render", "schema", "scrub", "serve_check", "split", "stats", "synth", "train", "validate"]
