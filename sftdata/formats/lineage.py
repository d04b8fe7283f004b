"""The provenance of a data file: the chain of `.meta.json` sidecars behind it, followed back through
`parents`, and the files the chain started from (what a dataset card lists as its sources)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from ..writers import meta_path

_BOOKKEEPING = {"sftdata_version", "command", "created", "seconds", "sources", "counts", "outputs", "parents",
                "mapping_spec", "fast_path"}


def _load(path: Path) -> dict[str, Any] | None:
    try:
        value = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def pipeline_steps(data: Path) -> list[dict[str, Any]]:
    """The sidecars behind a data file, oldest first: its own, and its parents' (each once)."""
    return pipeline_chain(data)[0]


def pipeline_chain(data: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The sidecars behind a data file, oldest first (its own, and its parents', each once), and the sources of
    the chain: every step's inputs that no step in it made (the raw files, of every input of every step)."""
    steps: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    seen: set[Path] = set()

    def visit(sidecar: Path, base: Path) -> bool:
        if not sidecar.name.endswith(".meta.json"):  # a sidecar names only sidecars: read nothing else
            return False
        for candidate in (sidecar, base / sidecar):
            meta = _load(candidate)
            if meta is not None:
                break
        else:
            return False
        key = candidate.resolve()
        if key in seen:
            return True
        seen.add(key)
        followed = {str(parent) for parent in meta.get("parents") or [] if visit(Path(parent), candidate.parent)}
        steps.append(meta)
        sources.extend(s for s in _sources(meta) if _sidecar_of(s) not in followed)
        return True

    visit(meta_path(data), data.parent)
    return steps, sources


def _sources(meta: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in meta.get("sources") or [] if isinstance(s, dict)]


def _sidecar_of(source: dict[str, Any]) -> str:
    """The sidecar path `parents` names for a source (provenance.build_meta writes str(meta_path(source)))."""
    path = str(source.get("path", ""))
    return str(meta_path(Path(path))) if path and "://" not in path else ""


def origin_sources(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sources of a chain of steps (pipeline_steps) that no step in it made: those whose sidecar a step does
    not name among its parents. (pipeline_chain knows which parents it could read; this has only the steps.)"""
    return [s for meta in steps for s in _sources(meta)
            if _sidecar_of(s) not in {str(p) for p in meta.get("parents") or []}]


def step_summary(meta: dict[str, Any]) -> dict[str, Any]:
    """What a step did and with what: command, counts, and its small parameters (model, prompt hash, ...)."""
    counts = meta.get("counts") or {}
    params = {}
    for key, value in meta.items():
        if key in _BOOKKEEPING or value in (None, "", [], {}):
            continue
        if len(orjson.dumps(value)) <= 400:
            params[key] = value
    return {"command": meta.get("command", "?"), "created": meta.get("created"),
            "sources": source_names(meta),
            "counts": {k: counts[k] for k in ("read", "written", "rejected", "filtered", "deduplicated") if k in counts},
            "by_reason": counts.get("by_reason") or {}, "params": params}


def source_names(meta: dict[str, Any]) -> list[str]:
    """A step's inputs as paths relative to their common folder: AI-Hub repeats file names across
    category folders (life/LIFE_0001.json, science/…), so bare names would not tell them apart."""
    return relative_names(_sources(meta))


def relative_names(sources: list[dict[str, Any]]) -> list[str]:
    paths = [str(s.get("path", "?")) for s in sources]
    if len(paths) <= 1:
        return [Path(p).name for p in paths]
    try:
        root = os.path.commonpath([os.path.dirname(p) or "." for p in paths])
    except ValueError:  # relative and absolute paths mixed
        return paths
    return [Path(os.path.relpath(p, root)).as_posix() for p in paths]


def step_key(meta: dict[str, Any]) -> str:
    """Steps that are one run written to several files (split's train and eval sidecars) share a key."""
    shared = {k: v for k, v in meta.items() if k not in ("outputs", "side", "seconds")}
    return orjson.dumps(shared, option=orjson.OPT_SORT_KEYS, default=str).decode()


RENDERING = ("convert", "render", "pretokenize", "export")


def templates_used(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The templates the data was rendered with (a filter that only counted tokens renders nothing)."""
    for meta in reversed(steps):
        if meta.get("template") and meta.get("command") in RENDERING:
            return [t for t in meta["template"] if isinstance(t, dict)]
    return []


def unique_sources(sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each source once (two inputs made from one raw file name it twice), in order of first mention."""
    seen: set[tuple[str, str]] = set()
    out = []
    for source in sources:
        key = (str(source.get("path")), str(source.get("sha256")))
        if key not in seen:
            seen.add(key)
            out.append(source)
    return out
