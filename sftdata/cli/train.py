"""How the training commands show their results: train, plan, merge, generate (declared in sftdata.api.train).

Every TrainConfig field is an option of `train` and `plan`, built from the config model (sftdata.cli.build).
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .common import Shown, View, err, quiet_hf


@contextlib.contextmanager
def _training(shown: Shown) -> Iterator[Callable[[Any], None] | None]:
    quiet_hf()
    # transformers prints its log dicts on stdout; with --json, stdout holds only the summary line
    quiet = contextlib.redirect_stdout(sys.stderr) if shown.as_json else contextlib.nullcontext()
    with quiet, _progress(shown.as_json) as progress:
        yield progress


def _trained(result: Any, shown: Shown) -> None:
    summary = {"command": "train", "output": str(result.out_dir), **result.metrics}
    if shown.as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    err.print(f"trained {result.steps} steps: loss {summary.get('first_loss')} → {summary.get('final_loss')}; "
              f"adapter in {result.out_dir}", markup=False)
    if summary.get("dropped_too_long"):
        err.print(f"{summary['dropped_too_long']:,} samples longer than --max-length were left out (--overlong "
                  "truncate keeps them cut)", markup=False)
    if summary.get("cpu_threads"):
        err.print(f"trained on the CPU with {summary['cpu_threads']} thread(s) (--cpu-threads N)", markup=False)


class _progress:
    """A rich bar with loss, tokens/s and ETA, fed by TrainProgress events."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.bar, self.task = quiet or not err.is_terminal, None, None

    def __enter__(self) -> Callable[[Any], None] | None:
        if self.quiet:
            return None
        self.bar = Progress(TextColumn("training"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False)
        self.bar.__enter__()
        self.task = self.bar.add_task("train", total=None, loss="-", tps="-")
        return self.update

    def update(self, event: Any) -> None:
        loss = f"{event.loss:.4f}" if event.loss is not None else "-"
        self.bar.update(self.task, completed=event.step, total=event.max_steps or None, loss=loss,
                        tps=f"{event.tokens_per_s:,.0f}")

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _planned(result: Any, shown: Shown) -> None:
    if shown.as_json:
        sys.stdout.write(orjson.dumps(result.as_dict()).decode() + "\n")
    _print_plan(result, result.config)


def _print_plan(result: Any, cfg: Any) -> None:
    gib = result.estimate.gib()
    table = Table(title=f"peak GPU memory, batch {cfg.batch_size} x {cfg.max_length} tokens", title_justify="left")
    table.add_column("part")
    table.add_column("GiB", justify="right")
    for key in ("weights_4bit", "weights_16bit", "lora", "activations", "lm_head", "overhead", "total"):
        table.add_row(key.replace("_", " "), f"{gib[key]:.2f}", style="bold" if key == "total" else None)
    err.print(table)
    err.print(f"{result.arch.params / 1e9:.2f}B parameters, {result.estimate.lora_params / 1e6:.1f}M LoRA parameters")
    if result.gpu:
        verdict = "[green]fits[/]" if result.fits else "[red]does not fit[/]"
        err.print(f"{escape(str(result.gpu))} ({result.capacity_gib} GiB): {verdict}")
        if result.batch:
            err.print(f"largest per-device batch that fits: --batch-size {result.batch} --grad-accum "
                      f"{result.grad_accum} (effective batch {cfg.effective_batch})")
    if result.note:
        err.print(f"[yellow]note:[/] {escape(str(result.note))}")


@contextlib.contextmanager
def _quiet_context(shown: Shown) -> Iterator[None]:
    quiet_hf()
    yield None


def _merged(target: Any, shown: Shown) -> None:
    err.print(f"merged model in {target} (loads with transformers alone, no peft)", markup=False)


@contextlib.contextmanager
def _generating(shown: Shown) -> Iterator[Callable[[Any], None]]:
    quiet_hf()
    yield _generated


def _generated(event: Any) -> None:
    err.print(f"prompt {event.done}/{event.total} ({event.model}): {event.tokens} tokens in {event.seconds:.1f} s, "
              f"{event.tokens_per_s:.1f} tokens/s", markup=False)


def _answers(results: Any, shown: Shown) -> None:
    if shown.as_json:
        for r in results:
            sys.stdout.write(orjson.dumps({"prompt": r.prompt, "tuned": r.tuned, "tuned_stopped": r.tuned_stopped,
                                           "base": r.base, "base_stopped": r.base_stopped}).decode() + "\n")
        return
    compare_base = shown.args.get("compare_base", False)
    table = Table(show_lines=True)
    table.add_column("prompt")
    if compare_base:
        table.add_column("base")
    table.add_column("tuned")
    for r in results:
        cells = [escape(r.prompt)] + ([_answer(r.base, r.base_stopped)] if compare_base else []) + [_answer(r.tuned, r.tuned_stopped)]
        table.add_row(*cells)
    Console(highlight=False).print(table)  # the answers are the command's output: stdout


def _answer(text: str | None, stopped: bool | None, limit: str = "--max-new-tokens") -> str:
    """An answer as a table cell: literal text, marked when it was cut at the length limit."""
    return escape(text or "") + ("" if stopped else f" [dim](cut at {limit})[/]")


VIEWS = {
    "train": View(_trained, strict=False, context=_training),
    "plan": View(_planned, label=None, strict=False),
    "merge": View(_merged, strict=False, json=False, context=_quiet_context),
    "generate": View(_answers, strict=False, context=_generating),
}
