"""How the core data commands show their results: convert, render, validate, schema (declared in sftdata.api.data)."""
from __future__ import annotations

import sys
from typing import Any

import orjson

from .common import Shown, View, report


def _validated(result: Any, shown: Shown) -> None:
    report(result, shown.as_json, strict=True)


def _schema(result: dict[str, Any], shown: Shown) -> None:
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")


VIEWS = {
    "convert": View(label="converting"),
    "render": View(label="rendering"),
    "validate": View(_validated, label="validating", strict=False),
    "schema": View(_schema, label=None, strict=False, json=False),
}
