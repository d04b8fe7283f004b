"""Interop commands: export records to the formats trainers read, and write dataset cards (the library is
sftdata.formats)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from ..items import Progress
from .options import PathLike
from .registry import Arg, Opt, command

if TYPE_CHECKING:
    from ..formats.card import CardResult
    from ..formats.exporting import ExportResult

Format = Literal["trl", "openai", "llamafactory", "axolotl", "hf"]


@command(group="interop")
def export(
    input: Annotated[PathLike, Arg("Records JSONL as convert writes it, or a folder of split files (train.jsonl, "
                                   "eval.jsonl, ...).")],
    output: Annotated[PathLike, Opt("--output", "-o", help="Output .jsonl file (trl, openai) or folder (llamafactory, "
                                    "axolotl, hf).")],
    to: Annotated[Format, Opt("--to", help="trl, openai (a .jsonl file); llamafactory, axolotl, hf (a folder).")],
    *,
    eval_file: Annotated[PathLike | None, Opt("--eval", help="Records JSONL of a validation split (folder "
                                              "formats).")] = None,
    name: Annotated[str | None, Opt(help="Dataset name (LLaMA-Factory entry, card title); default: the output's "
                                    "name.")] = None,
    license: Annotated[str | None, Opt(help="License id for the hf card, e.g. apache-2.0.")] = None,
    force: Annotated[bool, Opt(help="Replace an existing output folder that sftdata did not write.")] = False,
    template: Annotated[str | None, Opt("--template", "-t", help="trl/axolotl: write this chat template (with "
                                        "{% generation %} blocks: chatml, chatml_think, llama3 or a .jinja) beside "
                                        "the data, for TRL's assistant_only_loss.")] = None,
    tokenizer: Annotated[str | None, Opt(help="Tokenizer for --template chat (its own chat template).")] = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Export records to the format a trainer or platform loads as is.

    Example: `sftdata export train.jsonl --to llamafactory -o lf_data/`
    """
    from ..formats.exporting import export as run

    return run(input, output, to, eval_file=eval_file, name=name, license=license, overwrite=force, template=template,
               tokenizer=tokenizer, progress=progress)


@command(group="interop")
def card(
    input: Annotated[PathLike, Arg("A data file, a split folder, or a folder written by export --to hf.")],
    output: Annotated[PathLike | None, Opt("--output", "-o", help="The card to write or update (default: README.md "
                                           "beside the data).")] = None,
    *,
    license: Annotated[str | None, Opt(help="License id for the card's front matter.")] = None,
) -> CardResult:
    """Write or update a dataset card (README.md) from the data and its .meta.json sidecars.

    Example: `sftdata card train.jsonl -o README.md --license apache-2.0`
    """
    from ..formats.card import make_card

    return make_card(input, output, license=license)
