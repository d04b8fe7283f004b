"""sftdata: raw labelled data → validated, rendered SFT data, with every reject explained.

The public API is imported lazily so that ``import sftdata`` (and the CLI's start-up) stays light:
nothing heavy (torch, transformers, datasets, openai) is imported until a function needs it.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "convert": "sftdata.api", "render": "sftdata.api", "validate": "sftdata.pipeline",
    "schema": "sftdata.pipeline", "RunResult": "sftdata.items",
    "SftDataError": "sftdata.errors", "InputError": "sftdata.errors", "MappingError": "sftdata.errors",
    "TemplateError": "sftdata.errors", "TokenizerError": "sftdata.errors", "OutputError": "sftdata.errors",
    "InstructionRecord": "sftdata.schemas", "ChatRecord": "sftdata.schemas", "QARecord": "sftdata.schemas",
    "Message": "sftdata.schemas", "RecordKind": "sftdata.schemas",
    "MappingSpec": "sftdata.schemas.mapping", "load_mapping": "sftdata.ingest.mapping",
    "Style": "sftdata.items", "load_template": "sftdata.rendering.templating", "Renderer": "sftdata.rendering.templating",
    "load_tokenizer": "sftdata.tokenize.load",
    "ExportFormat": "sftdata.formats.targets", "make_card": "sftdata.formats.card",
    # one function per remaining command, with the command's options as keyword arguments (sftdata/api.py)
    **{name: "sftdata.api" for name in ("export", "card", "stats", "inspect", "audit", "dedup", "filter", "split", "pretokenize",
                                        "scrub", "decontaminate", "mix", "eval",
                                        "synth", "train", "plan", "merge", "generate", "export_gguf", "serve_check")},
}
__all__ = sorted(_EXPORTS)  # noqa: PLE0605


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sftdata' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value
