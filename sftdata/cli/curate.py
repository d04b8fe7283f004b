"""How the commands that change what reaches the trainer show their results: dedup, filter, split, pretokenize
(declared in sftdata.api.curate)."""
from __future__ import annotations

from typing import Any

from .common import Shown, View, err, report


def _deduplicated(result: Any, shown: Shown) -> None:
    report(result, shown.as_json, shown.strict)
    s = result.summary()
    err.print(f"duplicates: {s['exact']:,} exact, {s['near']:,} near (threshold {s['threshold']}) → {s['dupes']}",
              markup=False)


def _split(result: Any, shown: Shown) -> None:
    report(result, shown.as_json, shown.strict)
    s = result.summary()
    err.print(f"train {s['train']:,} → {s['output']}, eval {s['eval']:,} → {s['eval_path']}", markup=False)


def _pretokenized(result: Any, shown: Shown) -> None:
    report(result, shown.as_json, shown.strict)
    s = result.summary()
    o = s["overflow"]
    err.print(f"{s['written']:,} samples, {s['tokens']:,} tokens (columns input_ids, {', '.join(s['columns']) or '-'}); "
              f"over {shown.args['max_seq_length']:,}: "
              f"{o['over']:,} ({o['policy']}: {o['dropped']:,} dropped, {o['truncated']:,} truncated)")
    if "completion_mask" in s["columns"]:
        err.print("TRL: pass SFTConfig(completion_only_loss=True) so SFTTrainer applies completion_mask")


VIEWS = {
    "dedup": View(_deduplicated, label="deduplicating"),
    "filter": View(label="filtering"),
    "split": View(_split, label="splitting"),
    "pretokenize": View(_pretokenized, label="tokenizing"),
}
