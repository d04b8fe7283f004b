"""The .meta.json sidecar every output gets: what made it, from what, with which template and EOS.

Later steps (cards, training runs) read provenance from these files; `parents` links an output to
the sidecars of its inputs, so the chain of steps can be followed back to the raw data.

A command run on one split of its inputs (sftdata.scale) is called with `sidecar=False`: its meta names the
sources without hashing them (a task reads one range of a file, and the driver hashes each file once for the
run's _meta.json) and is returned, not written.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from . import __version__
from .items import Counts
from .writers import file_digest, meta_path


def build_meta(command: str, sources: list[Path], counts: Counts, output: Path | None, rejects: Path | None,
               extra: dict[str, Any], started: float, *, hash_sources: bool = True) -> dict[str, Any]:
    """The sidecar's content; with hash_sources=False (a split's: see above) sources are named, not hashed,
    and no parents are linked."""
    split = not hash_sources
    meta: dict[str, Any] = {"sftdata_version": __version__, "command": command,
                            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "seconds": round(time.perf_counter() - started, 3),
                            "sources": [{"path": str(p)} if split else file_digest(p) for p in sources], **extra}
    meta["counts"] = counts.summary()
    meta["outputs"] = {"data": str(output) if output else None, "rejects": str(rejects) if rejects else None}
    parents = [] if split else [str(meta_path(p)) for p in sources if meta_path(p).is_file()]
    if parents:
        meta["parents"] = parents
    return meta


def read_meta(path: Path) -> dict[str, Any] | None:
    """The sidecar of a data file (or None when it has none or it is unreadable)."""
    try:
        return orjson.loads(meta_path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
