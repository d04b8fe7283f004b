"""The notebook API: one function per `sftdata` command, with the command's options as keyword arguments.

`import sftdata` exposes each of these lazily (`sftdata.stats(...)`, `sftdata.dedup(...)`, …). Each function is
the command's one declaration (sftdata.api.registry): the CLI is built from its signature, so a flag and its
keyword argument cannot drift apart. Each returns a typed result; progress, where a command reports any, goes to
the `progress` callback. Importing this package imports no heavy library.
"""
from __future__ import annotations

from .curate import Inspection, audit, dedup, filter, inspect, pretokenize, split, stats
from .data import convert, render, schema, validate
from .evaluate import eval
from .interop import card, export
from .production import decontaminate, mix, scrub
from .registry import COMMANDS, Arg, Command, Opt
from .serve import export_gguf, serve_check
from .synth import synth
from .train import generate, merge, plan, train

__all__ = ["COMMANDS", "Arg", "Command", "Inspection", "Opt", "audit", "card", "convert", "decontaminate", "dedup",
           "eval", "export", "export_gguf", "filter", "generate", "inspect", "merge", "mix", "plan", "pretokenize",
           "render", "schema", "scrub", "serve_check", "split", "stats", "synth", "train", "validate"]
