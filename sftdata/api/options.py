"""Options several commands share, declared once: their types, flags and help (sftdata.api.registry)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Annotated, Literal

from ..rendering.plan import TemplateArgs as TemplateArgsValue
from ..rendering.templating import TrainOn as TrainOnValue
from ..trainers.config import BaseWeights as BaseWeightsValue
from .registry import Arg, Opt

Files = Sequence[str | os.PathLike[str]]
PathLike = str | os.PathLike[str]
EngineName = Literal["local", "ray", "spark"]

RecordFiles = Annotated[Files, Arg("Records JSONL as convert writes it (instruction, chat or QA).")]
Output = Annotated[PathLike, Opt("--output", "-o", help="Output JSONL (or with --engine a folder), a path or a URL "
                                 "(s3://, gs://, hdfs://); rejects go to OUT.rejects.jsonl.")]
Template = Annotated[str | None, Opt("--template", "-t", help="alpaca, alpaca_ko, qa_ko, chat, chatml, chatml_think, "
                                     "llama3, or a .jinja file.")]
TemplateAuto = Annotated[str | None, Opt("--template", "-t", help="Template (default: chat for chat records, "
                                         "alpaca otherwise).")]
Tokenizer = Annotated[str | None, Opt(help="Tokenizer directory, .gguf file or hub id; its EOS is used.")]
TokenizerRequired = Annotated[str, Opt("--tokenizer", help="Tokenizer directory, .gguf file or hub id.")]
Eos = Annotated[str | None, Opt(help="EOS token text, when no tokenizer is given.")]
TemplateArgs = Annotated[TemplateArgsValue, Opt(
    "--template-arg", metavar="KEY=VALUE",
    help="KEY=VALUE passed to the template, repeatable (enable_thinking=false, skip_think=false, "
         "date_string='26 Jul 2024'); values are JSON where they parse. Recorded in the .meta.json.")]
TrainOn = Annotated[TrainOnValue, Opt(help="Chats: train every assistant turn (all) or only the last; a message's "
                                      "own weight (0/1) overrides.")]
BaseWeights = Annotated[BaseWeightsValue, Opt(
    help="The base weights the adapter goes on: trained (the 4-bit round trip of the base that a QLoRA adapter "
         "learned against, NF4 quantized as in training and dequantized) or dequantized (the plain 16-bit weights).")]
MaxSeqLength = Annotated[int | None, Opt(help="The trainer's max_seq_length.")]
SplitThinking = Annotated[bool, Opt(help="Move a leading `<think>…</think>` in assistant content into "
                                    "reasoning_content.")]
SplitTurns = Annotated[bool, Opt(help="One chat per trained assistant turn, ending at it, so each turn is rendered as "
                                 "the last one (faithful for templates that render history differently).")]
Engine = Annotated[EngineName, Opt(help="local (this process); ray or spark: split the inputs and run on a Ray "
                                   "cluster or with Spark; OUT is then a folder of part files with one _meta.json.")]
Address = Annotated[str | None, Opt(help="Ray: auto or ray://host:port (default: start a local cluster); Spark: a "
                                    "master URL (default local[*]).")]
SplitMib = Annotated[float, Opt(help="Size of a split in MiB: JSON Lines and CSV/TSV byte ranges, runs of Parquet "
                                "row groups (a JSON file is one split).")]
Concat = Annotated[bool, Opt(help="With --engine: also write the single files a local run writes (OUT.jsonl and its "
                             "sidecars).")]
Threshold = Annotated[float, Opt(help="Jaccard similarity over character n-grams at or above which rows are near "
                                 "duplicates (default 0.7: see docs/curation.md).")]
