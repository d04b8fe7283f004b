"""The core data commands: convert, render, validate, schema (the library is sftdata.pipeline)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any, Literal

from ..errors import OptionError
from ..items import Progress, RunResult, Style
from ..pipeline import convert as convert_records
from ..pipeline import render as render_records
from ..schemas.records import RecordKind
from . import scaled
from .options import (
    Address,
    Concat,
    Engine,
    Eos,
    Files,
    Output,
    PathLike,
    RecordFiles,
    SplitMib,
    SplitThinking,
    SplitTurns,
    Template,
    TemplateArgs,
    Tokenizer,
    TrainOn,
)
from .registry import Arg, Opt, command

if TYPE_CHECKING:
    from ..schemas.mapping import MappingSpec

Preset = Literal["alpaca", "sharegpt", "openai", "qa", "korquad", "klue-mrc", "korquad2", "llamafactory", "trl", "hf"]
Kind = Annotated[RecordKind | None, Opt("--as", help="Record kind (default: from each row's keys).")]


@command(group="core", split=convert_records)
def convert(
    inputs: Annotated[Files, Arg("Files, directories (recursive) or globs: .json .jsonl .csv .tsv .parquet")],
    output: Output,
    *,
    preset: Annotated[Preset | None, Opt(help="A built-in field layout.")] = None,
    mapping: Annotated[str | os.PathLike[str] | MappingSpec | None, Opt(
        "--map", help="A mapping YAML file (see docs/mapping.md).")] = None,
    to: Annotated[RecordKind | None, Opt(help="Convert records to this kind.")] = None,
    encoding: Annotated[str, Opt(help="auto, utf-8, cp949, euc-kr, ...")] = "auto",
    records_path: Annotated[str | None, Opt(help="Path of the record list inside a JSON file.")] = None,
    template: Template = None,
    tokenizer: Tokenizer = None,
    eos: Eos = None,
    style: Annotated[Style | None, Opt(help="text, prompt-completion or messages.")] = None,
    template_args: TemplateArgs = None,
    train_on: TrainOn = "all",
    split_thinking: SplitThinking = False,
    split_turns: SplitTurns = False,
    dataset_info: Annotated[PathLike | None, Opt(help="LLaMA-Factory dataset_info.json (--preset llamafactory).")] = None,
    name: Annotated[str | None, Opt(help="The dataset_info entry to use (default: the one whose file_name is the "
                                         "input).")] = None,
    engine: Engine = "local",
    address: Address = None,
    split_mib: SplitMib = 64.0,
    concat: Concat = False,
    progress: Progress | None = None,
) -> RunResult:
    """Convert raw labelled data into records (and, with --template, into SFT text).

    On an engine (`engine="ray"` or `"spark"`, sftdata.scale) the inputs are cut into splits of about
    `split_mib` MiB, `address` names the Ray cluster or Spark master (none runs one locally), OUTPUT is a
    folder of part files with one _meta.json, and `concat` also writes the single files a local run writes.

    Example: `sftdata convert labels/ --map mapping.yaml -o train.jsonl --template alpaca_ko --eos "</s>"`
    """
    options: dict[str, Any] = dict(
        preset=preset, mapping=mapping, to=to, encoding=encoding, records_path=records_path, template=template,
        tokenizer=tokenizer, eos=eos, style=style, template_args=template_args, train_on=train_on,
        split_thinking=split_thinking, split_turns=split_turns, dataset_info=dataset_info, name=name)
    if engine == "local":
        return convert_records(list(inputs), output, **options, progress=progress)
    if dataset_info is not None or name is not None or preset == "llamafactory":
        raise OptionError("the llamafactory preset runs locally only", option="engine", value=engine)
    return scaled.on_engine("convert", inputs, output, engine, address, split_mib, concat, options)


@command(group="core", split=render_records)
def render(
    inputs: Annotated[Files, Arg("Records JSONL as convert writes it.")],
    output: Output,
    *,
    template: Annotated[str, Opt("--template", "-t", help="auto (chat for chat records, alpaca otherwise), a built-in "
                                 "name or a .jinja file.")] = "auto",
    tokenizer: Tokenizer = None,
    eos: Eos = None,
    style: Annotated[Style, Opt(help="text, prompt-completion or messages.")] = Style.text,
    kind: Kind = None,
    template_args: TemplateArgs = None,
    train_on: TrainOn = "all",
    split_thinking: SplitThinking = False,
    split_turns: SplitTurns = False,
    engine: Engine = "local",
    address: Address = None,
    split_mib: SplitMib = 64.0,
    concat: Concat = False,
    progress: Progress | None = None,
) -> RunResult:
    """Render records into SFT text with a template and exactly one EOS per trained span.

    Example: `sftdata render records.jsonl -o sft.jsonl --template alpaca_ko --tokenizer ./tokenizer`
    """
    options: dict[str, Any] = dict(template=template, tokenizer=tokenizer, eos=eos, style=Style(style),
                                   kind=RecordKind(kind) if kind is not None else None, template_args=template_args,
                                   train_on=train_on, split_thinking=split_thinking, split_turns=split_turns)
    if engine == "local":
        return render_records(list(inputs), output, **options, progress=progress)
    return scaled.on_engine("render", inputs, output, engine, address, split_mib, concat, options)


@command(group="core")
def validate(
    inputs: RecordFiles,
    *,
    kind: Kind = None,
    rejects: Annotated[PathLike | None, Opt(help="Also write the invalid rows here.")] = None,
    progress: Progress | None = None,
) -> RunResult:
    """Check records against the schemas; exit 1 if any row is invalid.

    Example: `sftdata validate train.jsonl --as instruction`
    """
    from ..pipeline import validate as run

    return run(list(inputs), kind=RecordKind(kind) if kind is not None else None, rejects=rejects, progress=progress)


@command(group="core")
def schema(kind: Annotated[RecordKind, Arg("instruction, chat or qa")]) -> dict[str, Any]:
    """Print the JSON Schema of a record kind.

    Example: `sftdata schema chat > chat.schema.json`
    """
    from ..pipeline import schema as record_schema

    return record_schema(RecordKind(kind))
