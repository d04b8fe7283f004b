"""The training commands: train, plan, merge, generate (the library is sftdata.trainers).

Every TrainConfig field is an option of `train` and `plan` (`--lora-r 16 --lr 2e-4 --max-steps 30
--packing`), generated from the config model so the help, the flags and the errors always agree.
"""
from __future__ import annotations

import contextlib
import inspect
import os
import sys
import typing
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..trainers.config import TrainConfig, flag_of, presets
from .common import JsonOpt, TemplateArgsOpt, TrainOnArg, TrainOnOpt, err, errors

_PANEL = "Training options (override the preset)"
_TYPES: dict[Any, Any] = {int: int, float: float, bool: bool}


def _option(name: str, field: Any) -> inspect.Parameter:
    flag = flag_of(name)
    if field.annotation is bool:
        kind: Any = Optional[bool]
        decls = [f"{flag}/--no-{flag[2:]}"]
    elif typing.get_origin(field.annotation) is Literal:  # fixed choices: listed in --help and checked
        choices = typing.get_args(field.annotation)
        kind, decls = Optional[Enum(name, {str(c): str(c) for c in choices}, type=str)], [flag]  # type: ignore[misc]
    else:
        base = field.annotation if field.annotation in _TYPES else next(
            (t for t in getattr(field.annotation, "__args__", ()) if t in (int, float)), str)
        kind, decls = Optional[base], [flag]
    option = typer.Option(*decls, help=field.description, rich_help_panel=_PANEL, show_default=False)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[kind, option])


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _with_config_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give `command` one option per TrainConfig field; they arrive as `overrides`."""
    fields = TrainConfig.model_fields
    signature = inspect.signature(command)
    hints = typing.get_type_hints(command, include_extras=True)  # this module's annotations are strings
    own = [p.replace(annotation=hints[p.name]) for p in signature.parameters.values() if p.name != "overrides"]

    def wrapper(**kwargs: Any) -> None:
        overrides = {k: _plain(kwargs.pop(k)) for k in list(kwargs) if k in fields and kwargs[k] is not None}
        for k in fields:
            kwargs.pop(k, None)
        if isinstance(overrides.get("target_modules"), str) and overrides["target_modules"] != "all-linear":
            overrides["target_modules"] = overrides["target_modules"].split(",")
        command(overrides=overrides, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + [_option(n, f) for n, f in fields.items()])  # type: ignore[attr-defined]
    wrapper.__name__, wrapper.__doc__ = command.__name__, command.__doc__
    return wrapper


ConfigOpt = Annotated[Optional[str], typer.Option("--config", "-c", help=f"A preset ({', '.join(presets())}) or a YAML file.")]


def _quiet_hf() -> None:
    """transformers/datasets progress bars and warnings would interleave with ours."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


@_with_config_options
def train(
    data: Annotated[list[str], typer.Argument(help="Records JSONL (as convert writes it) or pretokenize output.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Base model: HF directory, .gguf file or hub id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory (adapter, template, metrics).")],
    config: ConfigOpt = None,
    template: Annotated[Optional[str], typer.Option("--template", "-t", help="Template for records input (default: auto).")] = None,
    template_args: TemplateArgsOpt = None,
    train_on: TrainOnArg = TrainOnOpt.all,
    eval_data: Annotated[Optional[list[str]], typer.Option("--eval", help="Evaluation data, same formats as DATA.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in OUT_DIR.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous run in OUT_DIR.")] = False,
    as_json: JsonOpt = False,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Train a QLoRA adapter on SFT data (TRL SFTTrainer + peft + bitsandbytes).

    Example: `sftdata train train.jsonl --model SmolLM2.gguf -o runs/a --config cpu-smoke --max-steps 40`.
    Several GPUs: `accelerate launch --num_processes 4 -m sftdata.cli train ...` (DDP).
    """
    from .. import api

    _quiet_hf()
    # transformers prints its log dicts on stdout; with --json, stdout holds only the summary line
    quiet = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    with errors(), quiet, _progress(as_json) as progress:
        result = api.train(data, model, output, config=config, template=template, template_args=template_args,
                           train_on=train_on.value, eval_data=eval_data, resume=resume,
                           overwrite=overwrite, progress=progress, **(overrides or {}))
    summary = {"command": "train", "output": str(result.out_dir), **result.metrics}
    if as_json:
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


@_with_config_options
def plan(
    model: Annotated[str, typer.Option("--model", "-m", help="Model directory (config.json), .gguf file or hub id.")],
    config: ConfigOpt = None,
    gpu: Annotated[Optional[str], typer.Option("--gpu", help="t4, a100-40, a100-80 or h100: say whether it fits.")] = None,
    as_json: JsonOpt = False,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Estimate peak GPU memory of a run from the model's config alone, before anything is loaded.

    Example: `sftdata plan --model ./Llama-3-8B --config t4-8b --gpu t4`
    """
    from .. import api

    with errors():
        result = api.plan(model, config=config, gpu=gpu, **(overrides or {}))
    cfg = result.config
    if as_json:
        sys.stdout.write(orjson.dumps(result.as_dict()).decode() + "\n")
    _print_plan(result, cfg)


def _print_plan(result: Any, cfg: TrainConfig) -> None:
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


def merge(
    run: Annotated[Path, typer.Argument(help="A training output directory.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the merged model.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Write into a non-empty directory.")] = False,
) -> None:
    """Merge the adapter into the (dequantized) base weights and save plain safetensors.

    Example: `sftdata merge runs/a -o runs/a-merged`
    """
    from .. import api

    _quiet_hf()
    with errors():
        target = api.merge(run, output, overwrite=overwrite)
    err.print(f"merged model in {target} (loads with transformers alone, no peft)", markup=False)


def generate(
    run: Annotated[Path, typer.Argument(help="A training output directory.")],
    prompt: Annotated[list[str], typer.Option("--prompt", "-p", help="A prompt (repeatable).")],
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Longest answer in tokens.")] = 128,
    compare_base: Annotated[bool, typer.Option("--compare-base", help="Also answer with the adapter off.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Answer prompts with the tuned model, rendered with the training template, stopping at its EOS.

    Example: `sftdata generate runs/a --prompt "Who are you?" --compare-base`
    """
    from .. import api

    _quiet_hf()
    with errors():
        results = api.generate(run, prompt, max_new_tokens=max_new_tokens, compare_base=compare_base,
                               progress=_generated)
    if as_json:
        for r in results:
            sys.stdout.write(orjson.dumps({"prompt": r.prompt, "tuned": r.tuned, "tuned_stopped": r.tuned_stopped,
                                           "base": r.base, "base_stopped": r.base_stopped}).decode() + "\n")
        return
    table = Table(show_lines=True)
    table.add_column("prompt")
    if compare_base:
        table.add_column("base")
    table.add_column("tuned")
    for r in results:
        cells = [escape(r.prompt)] + ([_answer(r.base, r.base_stopped)] if compare_base else []) + [_answer(r.tuned, r.tuned_stopped)]
        table.add_row(*cells)
    Console(highlight=False).print(table)  # the answers are the command's output: stdout


def _generated(event: Any) -> None:
    err.print(f"prompt {event.done}/{event.total} ({event.model}): {event.tokens} tokens in {event.seconds:.1f} s, "
              f"{event.tokens_per_s:.1f} tokens/s", markup=False)


def _answer(text: str | None, stopped: bool | None, limit: str = "--max-new-tokens") -> str:
    """An answer as a table cell: literal text, marked when it was cut at the length limit."""
    return escape(text or "") + ("" if stopped else f" [dim](cut at {limit})[/]")
