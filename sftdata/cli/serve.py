"""How the serving commands show their results: export-gguf (llama.cpp's converters) and serve-check (llama.cpp's
server), declared in sftdata.api.serve; the library is sftdata.trainers.gguf and sftdata.trainers.serve."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .common import Shown, View, err, quiet_hf
from .train import _answer


def _quiet() -> None:
    """No transformers progress bars (loading, saving the merged weights) among ours."""
    quiet_hf()
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # without the train extra the library says what is missing
        pass


@contextmanager
def _quiet_context(shown: Shown) -> Iterator[None]:
    _quiet()
    yield None


def _exported(result: Any, shown: Shown) -> None:
    if shown.as_json:
        sys.stdout.write(orjson.dumps({"command": "export-gguf", **result.as_dict()}).decode() + "\n")
    what = "merged model" if result.kind == "merged" else "LoRA adapter"
    err.print(escape(f"{what} ({result.outtype}, {result.bytes / 1e6:.1f} MB): {result.path}"), soft_wrap=True)
    stop = f"{result.eos!r}" + (f" (id {result.eos_id})" if result.eos_id is not None else "")
    err.print(escape(f"template {result.template}, stop token {stop}"
                     + ("; in the GGUF metadata" if result.kind == "merged" and result.chat_template else "")),
              soft_wrap=True)
    if result.modelfile:
        err.print(escape(f"Ollama Modelfile: {result.modelfile}"), soft_wrap=True)
    for note in result.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    err.print("serve it with:")
    for command in result.serve_commands():
        err.print(f"  {escape(command)}", soft_wrap=True)
    err.print(escape(f"check it with: sftdata serve-check {result.path} --prompt \"...\""), soft_wrap=True)


def _checked(result: Any, shown: Shown) -> None:
    compare_base, expect = shown.args.get("compare_base", False), shown.args.get("expect")
    if shown.as_json:
        sys.stdout.write(orjson.dumps(result.as_dict()).decode() + "\n")
    else:
        table = Table(show_lines=True)
        table.add_column("prompt")
        if compare_base:
            table.add_column("base")
        table.add_column("answer")
        table.add_column("stopped")
        if expect is not None:
            table.add_column(escape(f"has {expect!r}"))
        for a in result.answers:
            cells = [escape(a.prompt)] + ([_answer(a.base_text, a.base_stopped, "--max-tokens")] if compare_base else [])
            cells += [escape(a.text), "yes" if a.stopped else f"[red]no ({a.finish_reason})[/]"]
            if expect is not None:
                cells.append("yes" if a.contains_expect else "[red]no[/]")
            table.add_row(*cells)
        Console(highlight=False).print(table)  # the answers are the command's output: stdout
    served = result.model + (f" + LoRA {result.lora}" if result.lora else "")
    err.print(escape(f"served {served} by llama.cpp; /v1/{'completions' if result.endpoint == 'completion' else 'chat/completions'}"
                     + (f", template {result.template}, stop {result.stop!r}" if result.template else "")), soft_wrap=True)
    for note in result.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    _parity(result.parity)
    _parity(result.llama_server_parity)
    if not result.answers_ok:
        err.print("[bold red]check failed:[/] an answer ran to --max-tokens or lacks the expected text")
    elif not result.ok:
        err.print("[bold red]check failed:[/] the server's chat template does not render what training rendered")
    if not result.ok:
        raise typer.Exit(1)


def _parity(parity: Any) -> None:
    if parity is None:
        return
    err.print(escape(f"template parity, {parity.path}" + ("" if parity.required else " (reported only: not the "
                                                                "training template)") + ":"), soft_wrap=True)
    for case in parity.cases:
        if case.ok:
            tokens = f" ({case.prompt_tokens} prompt tokens on the server)" if case.prompt_tokens is not None else ""
            err.print(escape(f"  {case.label}: byte for byte the training text{tokens}"), soft_wrap=True)
        elif case.position is None:
            err.print(escape(f"  {case.label}: the same text, but the server counted {case.prompt_tokens} prompt "
                             f"tokens for {case.expected_tokens}"), soft_wrap=True)
        else:
            err.print("  [red]" + escape(f"{case.label}: differs at character {case.position}: training wrote "
                                         f"{case.trained!r}, the server wrote {case.served!r}") + "[/]", soft_wrap=True)


VIEWS = {
    "export-gguf": View(_exported, strict=False, context=_quiet_context),
    "serve-check": View(_checked, strict=False, context=_quiet_context),
}
