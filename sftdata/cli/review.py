"""How the review commands show their results (declared in sftdata.api.review): `review` prints its URL (with
--json one JSON line holding `url`), opens a browser unless --no-open and serves until Ctrl-C; `review-apply` the
counts table and the review's own counts."""
from __future__ import annotations

import sys
import webbrowser
from typing import Any

import orjson
from rich.markup import escape

from .common import Shown, View, err, report


def _served(handle: Any, shown: Shown) -> None:
    if shown.as_json:
        sys.stdout.write(orjson.dumps(handle.as_dict()).decode() + "\n")
    else:
        sys.stdout.write(handle.url + "\n")
    sys.stdout.flush()
    if handle.tokenizer_seconds:
        err.print(f"tokenizer and template loaded in {handle.tokenizer_seconds:.1f} s")
    err.print(escape(f"decisions are saved as made in {handle.review_file}; Ctrl-C stops"), soft_wrap=True)
    for note in handle.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    if not shown.args.get("no_open"):
        webbrowser.open(handle.url)
    try:
        handle.wait()
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()


def _applied(result: Any, shown: Shown) -> None:
    report(result, shown.as_json, shown.strict)
    d = result.decisions
    err.print(f"review {escape(result.review)}: {d.accepted:,} accepted, {d.rejected:,} rejected, {d.edited:,} edited, "
              f"{d.restored:,} restored")
    if d.stale:
        err.print(f"[yellow]note:[/] {d.stale:,} decisions left out: made on what their line held before its file "
                  "changed (the step was rerun); review those rows again", soft_wrap=True)


VIEWS = {
    "review": View(_served, label=None, strict=False),
    "review-apply": View(_applied, label=None),
}
