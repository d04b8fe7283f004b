"""How the commands that change what reaches the trainer show their results: dedup, filter, split, pretokenize
(declared in sftdata.api.curate)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import Shown, View, err, report

if TYPE_CHECKING:
    from ..curate.pretokenize import PretokenizeResult
    from ..curate.split import SplitResult


def _deduplicated(result: Any, shown: Shown) -> None:
    report(result, shown.as_json, shown.strict)
    s = result.summary()
    err.print(f"duplicates: {s['exact']:,} exact, {s['near']:,} near (threshold {s['threshold']}) → {s['dupes']}",
              markup=False)


def _split(result: SplitResult, shown: Shown) -> None:
    report(result, shown.as_json, shown.strict)
    err.print(f"train {result.train:,} → {result.output}, eval {result.eval:,} → {result.eval_path}", markup=False)


def _pretokenized(result: PretokenizeResult, shown: Shown) -> None:
    report(result, shown.as_json, shown.strict)
    o = result.overflow
    err.print(f"{result.counts.total('written'):,} samples, {result.tokens:,} tokens (columns input_ids, "
              f"{', '.join(result.columns) or '-'}); over {shown.args['max_seq_length']:,}: "
              f"{o.over:,} ({o.policy.value}: {o.dropped:,} dropped, {o.truncated:,} truncated)")
    if "completion_mask" in result.columns:
        err.print("TRL: pass SFTConfig(completion_only_loss=True) so SFTTrainer applies completion_mask")


VIEWS = {
    "dedup": View(_deduplicated, label="deduplicating"),
    "filter": View(label="filtering"),
    "split": View(_split, label="splitting"),
    "pretokenize": View(_pretokenized, label="tokenizing"),
}
