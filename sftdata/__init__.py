"""sftdata: raw labelled data → validated, rendered SFT data, with every reject explained.

The public API is imported lazily so that ``import sftdata`` (and the CLI's start-up) stays light:
nothing heavy (torch, transformers, datasets, openai) is imported until a function needs it.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "RunResult": "sftdata.items",
    "SftDataError": "sftdata.errors", "InputError": "sftdata.errors", "MappingError": "sftdata.errors",
    "TemplateError": "sftdata.errors", "TokenizerError": "sftdata.errors", "OutputError": "sftdata.errors",
    "OptionError": "sftdata.errors",
    "InstructionRecord": "sftdata.schemas", "ChatRecord": "sftdata.schemas", "QARecord": "sftdata.schemas",
    "Message": "sftdata.schemas", "RecordKind": "sftdata.schemas",
    "MappingSpec": "sftdata.schemas.mapping", "load_mapping": "sftdata.ingest.mapping",
    "Style": "sftdata.items", "load_template": "sftdata.rendering.templating", "Renderer": "sftdata.rendering.templating",
    "load_tokenizer": "sftdata.tokenize.load",
    "ExportFormat": "sftdata.formats.targets", "make_card": "sftdata.formats.card",
}


def __getattr__(name: str) -> Any:
    """The names above, and one function per command (sftdata.api: the registry of commands), imported on use."""
    import importlib
    import importlib.util

    if name == "__all__":
        api = importlib.import_module("sftdata.api")
        return sorted({*_EXPORTS, *(n for n in api.__all__ if n[0].islower())})
    module = _EXPORTS.get(name)
    if module is None:
        if name.startswith("_") or importlib.util.find_spec(f"{__name__}.{name}") is not None:
            raise AttributeError(name)  # a submodule (`from sftdata import templates` imports it), or private
        api = importlib.import_module("sftdata.api")
        if name not in api.__all__:
            raise AttributeError(f"module 'sftdata' has no attribute {name!r}")
        module = "sftdata.api"
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value
