"""Why a run wrote nothing, in one line: what the rows hold and the likely fix.

A typo in a mapping path, the wrong preset, a wrong --encoding or an empty file all end with every row
rejected (or none read), and an empty output that a script would go on to train on. The CLI prints this
line and exits 4 (README, exit codes); notebook users get the same text as `result.summary()["nothing_written"]`
(RunResult.summary).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # items asks this module why a run wrote nothing: no import back at run time
    from .items import Reject

_RENDERED = ({"text"}, {"prompt", "completion"})


def nothing_written(summary: dict[str, Any], examples: list[Reject], *, writes: bool = True) -> str | None:
    """None when the run wrote rows; else what happened and what to do about it. A command that writes no rows
    (`writes=False`: validate, a report-only run) is only empty when it read none."""
    if summary.get("written") or (not writes and summary.get("read")):
        return None
    files = ", ".join(summary.get("files") or {}) or "the input"
    read = summary.get("read", 0)
    if read == 0:
        return (f"nothing was read from {files}: it holds no rows (an empty file, or a folder or glob that "
                "matched no data files)")
    if not summary.get("rejected"):
        return f"all {read:,} rows were filtered or deduplicated: nothing is left to write"
    reasons: dict[str, int] = summary.get("by_reason") or {}
    top, count = max(reasons.items(), key=lambda item: item[1]) if reasons else ("rejected", read)
    every = count == summary["rejected"]
    keys = _keys(examples)
    line = f"every row was rejected ({top}{'' if every else f' for {count:,} of them'})"
    if keys is not None:
        line += f"; the rows hold the keys {', '.join(keys) or '(none)'}"
    return f"{line}: {_fix(top, keys, summary, examples)}"


def _keys(examples: list[Reject]) -> list[str] | None:
    for reject in examples:
        if isinstance(reject.raw, dict):
            return sorted(map(str, reject.raw))
    return None


def _fix(reason: str, keys: list[str] | None, summary: dict[str, Any], examples: list[Reject]) -> str:
    held = set(keys or ())
    if reason == "template_error":
        said = next((r.message for r in examples if r.reason == reason), None)
        return ("the template refused every row" + (f" ({said})" if said else "") + ": give it conversations of the "
                "shape it accepts (roles, tool calls, a system turn where it takes one) or pick another --template")
    if reason == "rendered_text" or (held and any(held - {"id", "meta"} == shape for shape in _RENDERED)):
        return ("this is rendered SFT text (what `convert --template` writes), not records: commands over records "
                "need what `sftdata convert` writes without --template")
    if reason == "path_missing":
        return ("the mapping's paths are not in the rows: write the --map fields from the keys above (when `as:` "
                "names each element of an exploded list, the field paths must start with that name), or use the "
                "--preset that matches")
    if reason in ("missing", "extra_forbidden"):
        return ("the rows are not in the layout being read: pick the --preset that matches (alpaca, sharegpt, "
                "openai, qa, trl, llamafactory) or write a --map from the keys above; records commands need what "
                "`sftdata convert` writes")
    if reason == "undecodable":
        encoding = summary.get("encoding")
        return (f"the bytes do not decode{f' as {encoding}' if encoding else ''}: use --encoding auto (UTF-8, "
                "UTF-8 with BOM and CP949/EUC-KR are detected)")
    if reason == "invalid_json":
        return "the lines are not JSON: check the file is JSONL (or name a .json/.csv/.parquet file as such)"
    return "read the rejects file: each row's file, line, field and reason are there"
