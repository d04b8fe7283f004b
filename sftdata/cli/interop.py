"""How the interop commands show their results: export, card (declared in sftdata.api.interop)."""
from __future__ import annotations

import sys
from typing import Any

import orjson

from .common import Shown, View, err, report


def _exported(result: Any, shown: Shown) -> None:
    to = shown.args["to"]
    try:
        report(result, shown.as_json, shown.strict)
    finally:
        for notes, label in ((result.dropped, "not carried by"), (result.converted, "re-expressed for")):
            if notes:
                err.print(f"{label} {to}: " + ", ".join(f"{k} ({n:,} rows)" for k, n in notes.items()), markup=False)


def _card(result: Any, shown: Shown) -> None:
    summary = result.summary()
    if shown.as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    splits = ", ".join(f"{s} {n:,}" for s, n in result.splits.items())
    err.print(f"card: {result.output} ({splits}; languages {', '.join(result.languages)}; {result.steps} steps)",
              markup=False)


VIEWS = {
    "export": View(_exported, label="exporting"),
    "card": View(_card, label=None, strict=False),
}
