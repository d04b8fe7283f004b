"""Which files a review serves: the data files given (records, rendered or pretokenized JSONL, or an engine's
folder of part files) and beside each the side files other commands write (OUT.rejects.jsonl, OUT.dupes.jsonl,
OUT.matches.jsonl, OUT.meta.json), found with the same `sidecar_path` they are written with. The files a meta
names (a step's sources, a decontaminate run's eval files) may be read too, for a dropped duplicate's kept row
and a match's eval item; no other file is ever opened."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import orjson

from ..errors import InputError
from ..writers import meta_path, rejects_path, sidecar_path

SIDE_SUFFIXES = (".rejects.jsonl", ".dupes.jsonl", ".matches.jsonl", ".meta.json", ".review.jsonl")


class PartKind(str, Enum):
    """What a file holds: the rows a step wrote, or one of its side files."""

    data = "data"
    rejects = "rejects"
    dupes = "dupes"
    matches = "matches"


@dataclass(slots=True)
class Part:
    """One file of rows the review indexes."""

    path: Path
    kind: PartKind
    data: Path  # the data file it belongs to (itself for data)

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(slots=True)
class Chain:
    """The data files, their side files, their metas, and the files those metas name (read-only, for evidence)."""

    data: list[Path]
    parts: list[Part]
    metas: dict[Path, dict[str, Any]] = field(default_factory=dict)
    related: set[Path] = field(default_factory=set)
    named: dict[str, Path] = field(default_factory=dict)  # a name as a meta (and its step's rows) wrote it → the file
    part_names: dict[str, Path] = field(default_factory=dict)  # a part's own name → the file

    def allowed(self, path: str | os.PathLike[str]) -> Path | None:
        """The file as a resolved path when the review may read it, else None. A name a step wrote in its meta and
        rows (relative to wherever it ran) means the file it was found as, whatever the server's working folder,
        even where a part of the chain has that name too (`dedup train.jsonl -o ../out/train.jsonl`)."""
        resolved = self.named.get(str(path)) or self.part_names.get(str(path)) or Path(path).resolve()
        known = {p.path.resolve() for p in self.parts} | {m.resolve() for m in self.metas} | self.related
        return resolved if resolved in known else None


def is_side_file(path: Path) -> bool:
    return path.name.endswith(SIDE_SUFFIXES) or path.name in ("_meta.json", "_review.jsonl")


def data_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The data files given: files as they are, a folder as its part files (an engine's output)."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            parts = sorted(p for p in path.glob("*.jsonl") if not is_side_file(p))
            if not parts:
                raise InputError(f"{path}: no JSONL data files in this folder", hint="give the files a step wrote")
            found += parts
        elif path.is_file():
            if is_side_file(path):
                raise InputError(f"{path} is a side file", hint="give the data file it sits beside; its side files "
                                 "are found from it")
            found.append(path)
        elif (report := _report(path)) is not None:
            found += report[0]
        else:
            raise InputError(f"{path}: no such file or folder")
    first: dict[Path, Path] = {}
    for path in found:  # a file given twice (by two names) is one
        first.setdefault(path.resolve(), path)
    return list(first.values())


def open_chain(paths: Sequence[str | os.PathLike[str]]) -> Chain:
    data = data_files(paths)
    chain = Chain(data, [])
    for path in data:
        chain.parts.append(Part(path, PartKind.data, path))
        for kind, side in ((PartKind.rejects, rejects_path(path)), (PartKind.dupes, sidecar_path(path, ".dupes.jsonl")),
                           (PartKind.matches, sidecar_path(path, ".matches.jsonl"))):
            if side.is_file():
                chain.parts.append(Part(side, kind, path))
    metas: list[tuple[Path, Path]] = []  # (meta file, the folder its names are relative to)
    for given in paths:
        report = None if Path(given).exists() else _report(Path(given))
        if report is not None:  # its matches beside the inputs whose rows they name; its meta names the eval files
            chain.parts.append(Part(report[1], PartKind.matches, report[0][0]))
            metas.append((report[2], report[2].parent))
    for part in chain.parts:  # a row's "file:line" (and a decision's) names its part by name: one file per name
        if part.name in chain.part_names:
            raise InputError(f"two files named {part.name}: {chain.part_names[part.name]} and {part.path}",
                             hint="review them one at a time (a decision names its row by file name and line)")
        chain.part_names[part.name] = part.path.resolve()
    for path in data:
        metas.append((meta_path(path) if meta_path(path).is_file() else path.parent / "_meta.json", path.parent))
    for file, base in metas:
        meta = _meta(file)
        if meta is not None:
            chain.metas[file] = meta
            for name, found in _named(meta, base).items():
                chain.related.add(found)
                chain.named.setdefault(name, found)
    return chain


def _report(path: Path) -> tuple[list[Path], Path, Path] | None:
    """A `decontaminate --action report -o OUT` run, given as OUT (no data file: the rows stay in its inputs):
    (its inputs, OUT.matches.jsonl, OUT.meta.json), or None when the path is not one."""
    listing, meta_file = sidecar_path(path, ".matches.jsonl"), meta_path(path)
    meta = _meta(meta_file)
    if not listing.is_file() or meta is None:
        return None
    sources = {s.get("path") for s in meta.get("sources") or [] if isinstance(s, dict)}
    inputs = [found for name, found in _named(meta, path.parent).items() if name in sources]
    return (inputs, listing, meta_file) if inputs else None


def _meta(path: Path) -> dict[str, Any] | None:
    try:
        value = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _named(meta: dict[str, Any], base: Path) -> dict[str, Path]:
    """The files a meta names (its sources, a decontaminate run's eval files), each as the name it wrote → the file.
    A relative name is relative to where that step ran: looked for beside the data first, then in the working
    folder, and taken only where its size is the one the meta recorded (a file of the same name elsewhere is not
    the one the step read)."""
    sizes: dict[str, int | None] = {}
    for key in ("sources", "against"):
        for s in meta.get(key) or []:
            if isinstance(s, dict) and isinstance(s.get("path"), str):
                sizes[s["path"]] = s.get("bytes") if isinstance(s.get("bytes"), int) else None
    for name in meta.get("eval") or {} if isinstance(meta.get("eval"), dict) else {}:
        sizes.setdefault(str(name), None)
    out = {}
    for name, size in sizes.items():
        if "://" in name:
            continue
        path = Path(name)
        candidates = [path] if path.is_absolute() else [base / path, base / path.name, path]
        for candidate in candidates:
            if candidate.is_file() and (size is None or candidate.stat().st_size == size):
                out[name] = candidate.resolve()
                break
    return out
