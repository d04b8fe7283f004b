"""Serving what was trained: export-gguf (llama.cpp's converters) and serve-check (llama.cpp's server).

The library is sftdata.trainers.gguf and sftdata.trainers.serve.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Literal

from .options import BaseWeights, PathLike
from .registry import Arg, Opt, command

if TYPE_CHECKING:
    from ..trainers.gguf import GgufExport
    from ..trainers.serve import ServeCheck

LlamaCpp = Annotated[PathLike | None, Opt(
    "--llama-cpp", help="llama.cpp source tree with convert_hf_to_gguf.py, convert_lora_to_gguf.py and gguf-py/ "
                        "(default: $LLAMA_CPP_DIR); the llama-cpp-python sdist's vendor/llama.cpp will do.")]


@command(group="serve")
def export_gguf(
    run: Annotated[PathLike, Arg("A finished training output directory.")],
    output: Annotated[PathLike, Opt("--output", "-o", help="The GGUF file to write (OUT.gguf).")],
    *,
    merge: Annotated[bool, Opt(help="Merge the adapter into the base and convert the whole model; without it, "
                                    "convert the LoRA adapter alone.")] = False,
    outtype: Annotated[Literal["f16", "q8_0", "bf16"], Opt(help="Tensor type of the GGUF.")] = "f16",
    llama_cpp: LlamaCpp = None,
    overwrite: Annotated[bool, Opt(help="Replace an existing OUT.gguf.")] = False,
    base_weights: BaseWeights = "trained",
) -> GgufExport:
    """Convert a run to GGUF for llama.cpp / Ollama, with the training template and stop token.

    A merged GGUF carries the template as tokenizer.chat_template and the stop token as its EOS; a LoRA
    GGUF is applied on the base model's GGUF (`--lora`). Block templates (Alpaca, Q&A) also get an Ollama
    OUT.Modelfile. Prints the command that serves the export.

    Example: `sftdata export-gguf runs/a -o runs/a.gguf --merge --llama-cpp llama.cpp/`
    """
    from ..trainers.gguf import export_gguf as run_export

    return run_export(run, output, merge=merge, outtype=outtype, llama_cpp=llama_cpp, overwrite=overwrite,
                      base_weights=base_weights)


@command(group="serve")
def serve_check(
    target: Annotated[PathLike, Arg("A training output directory (served as base + LoRA GGUF) or a .gguf written by "
                                    "export-gguf (a merged model or a LoRA).")],
    prompt: Annotated[Sequence[str], Opt("--prompt", "-p", help="A prompt (repeatable).")],
    *,
    expect: Annotated[str | None, Opt(help="Text every answer must contain.")] = None,
    base: Annotated[PathLike | None, Opt(help="The base model GGUF a LoRA applies to (default: the run's base, when "
                                              "it was a .gguf).")] = None,
    endpoint: Annotated[Literal["auto", "completion", "chat"], Opt(
        help="completion: prompts rendered with the training template; chat: the GGUF's own chat template; auto: "
             "completion when the template is known.")] = "auto",
    max_tokens: Annotated[int, Opt(help="Longest answer in tokens.")] = 128,
    compare_base: Annotated[bool, Opt(help="Also ask the base model.")] = False,
    threads: Annotated[int | None, Opt(help="Server threads (default: up to 4).")] = None,
    llama_cpp: LlamaCpp = None,
    base_weights: BaseWeights = "trained",
    llama_server: Annotated[PathLike | None, Opt(
        help="llama.cpp's own llama-server executable: also compare the prompts its /apply-template (--jinja) "
             "renders from the GGUF's chat template with the training text (default: $SFTDATA_LLAMA_SERVER).")] = None,
) -> ServeCheck:
    """Serve an export with llama.cpp's server on 127.0.0.1 and ask it, as a client would.

    Reports each answer, whether it ended at the stop token, and whether it contains --expect; exits 1
    if any answer ran to --max-tokens or lacks the expected text.

    Example: `sftdata serve-check runs/a.gguf --prompt "Who are you?" --expect Hanbit --compare-base`
    """
    from ..trainers.serve import serve_check as run_check

    return run_check(target, list(prompt), expect=expect, base=base, endpoint=endpoint, max_tokens=max_tokens,
                     compare_base=compare_base, llama_cpp=llama_cpp, threads=threads, base_weights=base_weights,
                     llama_server=llama_server)
