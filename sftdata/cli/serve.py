"""Serving what was trained: export-gguf (llama.cpp's converters) and serve-check (llama.cpp's server).

The library is sftdata.trainers.gguf and sftdata.trainers.serve; this module parses options and prints.
"""
from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .common import JsonOpt, err, errors
from .train import _answer, _quiet_hf


class OutType(str, Enum):
    f16 = "f16"
    q8_0 = "q8_0"
    bf16 = "bf16"


class Endpoint(str, Enum):
    auto = "auto"
    completion = "completion"
    chat = "chat"


LlamaCppOpt = Annotated[Optional[str], typer.Option(
    "--llama-cpp", help="llama.cpp source tree with convert_hf_to_gguf.py, convert_lora_to_gguf.py and gguf-py/ "
                        "(default: $LLAMA_CPP_DIR); the llama-cpp-python sdist's vendor/llama.cpp will do.")]


def _quiet() -> None:
    """No transformers progress bars (loading, saving the merged weights) among ours."""
    _quiet_hf()
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # without the train extra the library says what is missing
        pass


def export_gguf(
    run: Annotated[Path, typer.Argument(help="A finished training output directory.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The GGUF file to write (OUT.gguf).")],
    merge: Annotated[bool, typer.Option("--merge", help="Merge the adapter into the base and convert the whole "
                                                        "model; without it, convert the LoRA adapter alone.")] = False,
    outtype: Annotated[OutType, typer.Option("--outtype", help="Tensor type of the GGUF.")] = OutType.f16,
    llama_cpp: LlamaCppOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing OUT.gguf.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert a run to GGUF for llama.cpp / Ollama, with the training template and stop token.

    A merged GGUF carries the template as tokenizer.chat_template and the stop token as its EOS; a LoRA
    GGUF is applied on the base model's GGUF (`--lora`). Block templates (Alpaca, Q&A) also get an Ollama
    OUT.Modelfile. Prints the command that serves the export.

    Example: `sftdata export-gguf runs/a -o runs/a.gguf --merge --llama-cpp llama.cpp/`
    """
    from .. import api

    _quiet()
    with errors():
        result = api.export_gguf(run, output, merge=merge, outtype=outtype.value, llama_cpp=llama_cpp, overwrite=overwrite)
    if as_json:
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


def serve_check(
    target: Annotated[Path, typer.Argument(help="A training output directory (served as base + LoRA GGUF) or a "
                                                ".gguf written by export-gguf (a merged model or a LoRA).")],
    prompt: Annotated[list[str], typer.Option("--prompt", "-p", help="A prompt (repeatable).")],
    expect: Annotated[Optional[str], typer.Option("--expect", help="Text every answer must contain.")] = None,
    base: Annotated[Optional[Path], typer.Option("--base", help="The base model GGUF a LoRA applies to "
                                                                "(default: the run's base, when it was a .gguf).")] = None,
    endpoint: Annotated[Endpoint, typer.Option("--endpoint", help="completion: prompts rendered with the training "
                                                             "template; chat: the GGUF's own chat template; auto: "
                                                             "completion when the template is known.")] = Endpoint.auto,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Longest answer in tokens.")] = 128,
    compare_base: Annotated[bool, typer.Option("--compare-base", help="Also ask the base model.")] = False,
    threads: Annotated[Optional[int], typer.Option("--threads", help="Server threads (default: up to 4).")] = None,
    llama_cpp: LlamaCppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Serve an export with llama.cpp's server on 127.0.0.1 and ask it, as a client would.

    Reports each answer, whether it ended at the stop token, and whether it contains --expect; exits 1
    if any answer ran to --max-tokens or lacks the expected text.

    Example: `sftdata serve-check runs/a.gguf --prompt "Who are you?" --expect Hanbit --compare-base`
    """
    from .. import api

    _quiet()
    with errors():
        result = api.serve_check(target, prompt, expect=expect, base=base, endpoint=endpoint.value, max_tokens=max_tokens,
                           compare_base=compare_base, llama_cpp=llama_cpp, threads=threads)
    if as_json:
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
    if not result.ok:
        err.print("[bold red]check failed:[/] an answer ran to --max-tokens or lacks the expected text")
        raise typer.Exit(1)
