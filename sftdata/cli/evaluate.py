"""How `sftdata eval` shows its result (declared in sftdata.api.evaluate; the library is sftdata.evaluation)."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from .common import Shown, View, err, quiet_hf

_ROWS = (("loss", "loss (trained tokens)"), ("perplexity", "perplexity"), ("stop_rate", "stop rate"),
         ("chrf", "chrF"), ("rouge_l", "char ROUGE-L"), ("exact_match", "exact match"), ("lang_share", "language share"),
         ("repetition", "repetition"), ("length_ratio", "length / reference"), ("answers_per_s", "answers/s"))


@contextmanager
def _answering(shown: Shown) -> Iterator[Callable[[str, int], None] | None]:
    quiet_hf()
    yield None if shown.as_json else _progress


def _progress(model: str, done: int) -> None:
    err.print(f"{model}: {done} more answered", markup=False)


def _evaluated(result: Any, shown: Shown) -> None:
    summary = result.summary()
    if shown.as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
        sys.stdout.flush()
    else:
        _print(summary)
    if summary["failed"]:
        err.print("gates failed: " + "; ".join(summary["failed"]), markup=False)
        raise typer.Exit(1)


def _print(summary: dict[str, Any]) -> None:
    table = Table(title=f"sftdata eval: {summary['samples']} records ({summary['rejected']} rejected)",
                  title_justify="left")
    table.add_column("figure")
    table.add_column("tuned", justify="right")
    base = summary.get("base") or {}
    if base:
        table.add_column("base", justify="right")
    for key, label in _ROWS:
        if key in summary["tuned"] or key in base:
            table.add_row(label, str(summary["tuned"].get(key, "—")), *([str(base.get(key, "—"))] if base else []))
    Console(highlight=False).print(table)  # the figures are the command's output: stdout
    if summary.get("judge"):
        j = summary["judge"]
        err.print(f"judge: win {j['win_rate']:.1%} [{j['win_ci95'][0]:.1%}, {j['win_ci95'][1]:.1%}], tie "
                  f"{j['tie_rate']:.1%}, loss {j['loss_rate']:.1%} over {j['judged']} pairs (both orders; "
                  f"{j['requests']} requests sent, {j['cached']} replayed from the cache)", markup=False)
    err.print(f"answers: {summary['output']}" + (f"; report: {summary['report']}" if summary.get("report") else ""),
              markup=False)


VIEWS = {
    "eval": View(_evaluated, strict=False, context=_answering),
}
