"""How the commands that make data fit to leave the team and to mix show their results: scrub, decontaminate,
mix (declared in sftdata.api.production)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .common import Shown, View, err, report

if TYPE_CHECKING:
    from ..curate.decontaminate import DecontaminateResult
    from ..curate.mix import MixResult
    from ..curate.scrub import ScrubResult


def _scrubbed(result: ScrubResult, shown: Shown) -> None:
    reported = shown.args.get("action", "mask") == "report"
    report(result, shown.as_json, shown.strict)
    if reported:
        err.print("report only: no data was written (the counts above are of the rows as they are)", markup=False)
    hits = ", ".join(f"{t} {n:,}" for t, n in result.hits.items()) or "none"
    err.print(f"personal information: {result.rows_with_pii:,} rows; hits {hits}", markup=False)
    if result.low_confidence_left:
        left = ", ".join(f"{t} {n:,}" for t, n in result.low_confidence_left.items())
        err.print(f"left alone (no label before them; --min-confidence low masks them): {left}", markup=False)


def _decontaminated(result: DecontaminateResult, shown: Shown) -> None:
    reported = shown.args.get("action", "drop") == "report"
    report(result, shown.as_json, shown.strict)
    if reported:
        err.print("report only: no row was dropped" + (f"; the rows that would be: {result.rejects}" if result.rejects
                                                         else " (add -o OUT to list them in OUT.matches.jsonl)"),
                  markup=False)
    for name, c in result.eval.items():
        err.print(f"{name}: {c['found']:,} of {c['items']:,} eval items found in training data ({c['rate']:.1%}), "
                  f"{c['train_rows']:,} training rows", markup=False)
        if c.get("warning"):  # read fewer (or more) items than the file holds, or rows rejected
            err.print(f"warning: {name}: {c['warning']}", style="yellow", markup=False, soft_wrap=True)


def _mixed(result: MixResult, shown: Shown) -> None:
    report(result, shown.as_json, shown.strict)
    for row in result.sources:
        share = (f"trained tokens {row['trained_tokens']:,} ({row['token_share']:.1%}) → "
                 f"{row['trained_tokens_out']:,} ({row['token_share_out']:.1%}); " if "trained_tokens" in row else "")
        copies = f" (up to {row['max_copies']}x)" if row["max_copies"] > 1 else ""
        err.print(f"{row['source']} (weight {row['weight']:.0%}): {share}rows {row['rows']:,} → {row['rows_out']:,}"
                  f"{copies}", markup=False)


VIEWS = {
    "scrub": View(_scrubbed, label="scrubbing"),
    "decontaminate": View(_decontaminated, label="decontaminating"),
    "mix": View(_mixed, label="mixing"),
}
