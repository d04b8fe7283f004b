"""Interop commands: export records to the formats trainers read, and write dataset cards."""
from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import orjson
import typer

from .common import JsonOpt, StrictOpt, err, errors, progress_bar, report


class FormatOpt(str, Enum):
    trl = "trl"
    openai = "openai"
    llamafactory = "llamafactory"
    axolotl = "axolotl"
    hf = "hf"


def export(
    input: Annotated[Path, typer.Argument(help="Records JSONL as convert writes it, or a folder of split files (train.jsonl, eval.jsonl, ...).")],
    to: Annotated[FormatOpt, typer.Option("--to", help="trl, openai (a .jsonl file); llamafactory, axolotl, hf (a folder).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .jsonl file (trl, openai) or folder (llamafactory, axolotl, hf).")],
    eval_file: Annotated[Optional[Path], typer.Option("--eval", help="Records JSONL of a validation split (folder formats).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Dataset name (LLaMA-Factory entry, card title); default: the output's name.")] = None,
    license: Annotated[Optional[str], typer.Option("--license", help="License id for the hf card, e.g. apache-2.0.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output folder that sftdata did not write.")] = False,
    template: Annotated[Optional[str], typer.Option("--template", "-t", help="trl/axolotl: write this chat template (with {% generation %} blocks: chatml, chatml_think, llama3 or a .jinja) beside the data, for TRL's assistant_only_loss.")] = None,
    tokenizer: Annotated[Optional[str], typer.Option("--tokenizer", help="Tokenizer for --template chat (its own chat template).")] = None,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Export records to the format a trainer or platform loads as is.

    Example: `sftdata export train.jsonl --to llamafactory -o lf_data/`
    """
    from .. import api

    with errors(), progress_bar("exporting", as_json) as progress:
        result = api.export(input, output, to.value, eval_file=eval_file, name=name, license=license, force=force,
                            template=template, tokenizer=tokenizer, progress=progress)
    try:
        report(result, as_json, strict)
    finally:
        for notes, label in ((result.dropped, "not carried by"), (result.converted, "re-expressed for")):
            if notes:
                err.print(f"{label} {to.value}: " + ", ".join(f"{k} ({n:,} rows)" for k, n in notes.items()),
                          markup=False)


def card(
    input: Annotated[Path, typer.Argument(help="A data file, a split folder, or a folder written by export --to hf.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="The card to write or update (default: README.md beside the data).")] = None,
    license: Annotated[Optional[str], typer.Option("--license", help="License id for the card's front matter.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write or update a dataset card (README.md) from the data and its .meta.json sidecars.

    Example: `sftdata card train.jsonl -o README.md --license apache-2.0`
    """
    from .. import api

    with errors():
        result = api.card(input, output, license=license)
    summary = result.summary()
    if as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    splits = ", ".join(f"{s} {n:,}" for s, n in result.splits.items())
    err.print(f"card: {result.output} ({splits}; languages {', '.join(result.languages)}; {result.steps} steps)",
              markup=False)
