"""The core data commands: convert, render, validate, schema."""
from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import orjson
import typer

from .common import (
    AddressOpt,
    ConcatOpt,
    EngineArg,
    EngineOpt,
    EosOpt,
    JsonOpt,
    Kind,
    SplitMibOpt,
    StrictOpt,
    StyleOpt,
    TemplateArgsOpt,
    TemplateOpt,
    TokenizerOpt,
    TrainOnArg,
    TrainOnOpt,
    errors,
    progress_bar,
    report,
)


class PresetOpt(str, Enum):
    alpaca = "alpaca"
    sharegpt = "sharegpt"
    openai = "openai"
    qa = "qa"
    llamafactory = "llamafactory"  # with --dataset-info (sftdata.formats.llamafactory)
    trl = "trl"
    hf = "hf"


def convert(
    inputs: Annotated[list[str], typer.Argument(help="Files, directories (recursive) or globs: .json .jsonl .csv .tsv .parquet")],
    output: Annotated[str, typer.Option("--output", "-o", help="Output JSONL (or with --engine a folder), a path or a URL (s3://, gs://, hdfs://); rejects go to OUT.rejects.jsonl.")],
    preset: Annotated[Optional[PresetOpt], typer.Option("--preset", help="A built-in field layout.")] = None,
    mapping: Annotated[Optional[Path], typer.Option("--map", help="A mapping YAML file (see README).")] = None,
    to: Annotated[Optional[Kind], typer.Option("--to", help="Convert records to this kind.")] = None,
    encoding: Annotated[str, typer.Option("--encoding", help="auto, utf-8, cp949, euc-kr, ...")] = "auto",
    records_path: Annotated[Optional[str], typer.Option("--records-path", help="Path of the record list inside a JSON file.")] = None,
    template: TemplateOpt = None,
    tokenizer: TokenizerOpt = None,
    eos: EosOpt = None,
    style: Annotated[Optional[StyleOpt], typer.Option("--style", help="text, prompt-completion or messages.")] = None,
    template_args: TemplateArgsOpt = None,
    train_on: TrainOnArg = TrainOnOpt.all,
    split_thinking: Annotated[bool, typer.Option("--split-thinking", help="Move a leading `<think>…</think>` in assistant content into reasoning_content.")] = False,
    split_turns: Annotated[bool, typer.Option("--split-turns", help="One chat per trained assistant turn, ending at it, so each turn is rendered as the last one (faithful for templates that render history differently).")] = False,
    dataset_info: Annotated[Optional[Path], typer.Option("--dataset-info", help="LLaMA-Factory dataset_info.json (--preset llamafactory).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="The dataset_info entry to use (default: the one whose file_name is the input).")] = None,
    engine: EngineArg = EngineOpt.local,
    address: AddressOpt = None,
    split_mib: SplitMibOpt = 64.0,
    concat: ConcatOpt = False,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert raw labelled data into records (and, with --template, into SFT text).

    Example: `sftdata convert labels/ --map mapping.yaml -o train.jsonl --template alpaca_ko --eos "</s>"`
    """
    from .. import api
    from ..items import Style
    from ..schemas.records import RecordKind

    with errors(), progress_bar("converting", as_json) as progress:
        result = api.convert(
            inputs, output, preset=preset.value if preset else None, mapping=mapping,
            to=RecordKind(to.value) if to else None, encoding=encoding, records_path=records_path,
            template=template, tokenizer=tokenizer, eos=eos, style=Style(style.value) if style else None,
            template_args=template_args, train_on=train_on.value, split_thinking=split_thinking,
            split_turns=split_turns, dataset_info=dataset_info, name=name, engine=engine.value, address=address,
            split_mib=split_mib, concat=concat, progress=progress)
    report(result, as_json, strict)


def render(
    inputs: Annotated[list[str], typer.Argument(help="Records JSONL as convert writes it.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Output JSONL (or with --engine a folder), a path or a URL (s3://, gs://, hdfs://).")],
    template: Annotated[str, typer.Option("--template", "-t", help="auto (chat for chat records, alpaca otherwise), a built-in name or a .jinja file.")] = "auto",
    tokenizer: TokenizerOpt = None,
    eos: EosOpt = None,
    style: Annotated[StyleOpt, typer.Option("--style")] = StyleOpt.text,
    kind: Annotated[Optional[Kind], typer.Option("--as", help="Record kind (default: from each row's keys).")] = None,
    template_args: TemplateArgsOpt = None,
    train_on: TrainOnArg = TrainOnOpt.all,
    split_thinking: Annotated[bool, typer.Option("--split-thinking", help="Move a leading `<think>…</think>` in assistant content into reasoning_content.")] = False,
    split_turns: Annotated[bool, typer.Option("--split-turns", help="One chat per trained assistant turn, ending at it, so each turn is rendered as the last one (faithful for templates that render history differently).")] = False,
    engine: EngineArg = EngineOpt.local,
    address: AddressOpt = None,
    split_mib: SplitMibOpt = 64.0,
    concat: ConcatOpt = False,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Render records into SFT text with a template and exactly one EOS per trained span.

    Example: `sftdata render records.jsonl -o sft.jsonl --template alpaca_ko --tokenizer ./tokenizer`
    """
    from .. import api
    from ..items import Style
    from ..schemas.records import RecordKind

    with errors(), progress_bar("rendering", as_json) as progress:
        result = api.render(inputs, output, template=template, tokenizer=tokenizer, eos=eos,
                            style=Style(style.value), kind=RecordKind(kind.value) if kind else None,
                            template_args=template_args, train_on=train_on.value, split_thinking=split_thinking,
                            split_turns=split_turns, engine=engine.value, address=address, split_mib=split_mib,
                            concat=concat, progress=progress)
    report(result, as_json, strict)


def validate(
    inputs: Annotated[list[str], typer.Argument(help="Records JSONL files.")],
    kind: Annotated[Optional[Kind], typer.Option("--as", help="Record kind (default: from each row's keys).")] = None,
    rejects: Annotated[Optional[Path], typer.Option("--rejects", help="Also write the invalid rows here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check records against the schemas; exit 1 if any row is invalid.

    Example: `sftdata validate train.jsonl --as instruction`
    """
    from .. import pipeline
    from ..schemas.records import RecordKind

    with errors(), progress_bar("validating", as_json) as progress:
        result = pipeline.validate(inputs, kind=RecordKind(kind.value) if kind else None, rejects=rejects,
                                   progress=progress)
    report(result, as_json, strict=True, writes=False)


def schema(kind: Annotated[Kind, typer.Argument(help="instruction, chat or qa")]) -> None:
    """Print the JSON Schema of a record kind.

    Example: `sftdata schema chat > chat.schema.json`
    """
    from ..pipeline import schema as record_schema
    from ..schemas.records import RecordKind

    sys.stdout.write(orjson.dumps(record_schema(RecordKind(kind.value)), option=orjson.OPT_INDENT_2).decode() + "\n")
