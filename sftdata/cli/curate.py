"""Commands that change what reaches the trainer: dedup, filter, split, pretokenize."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (
    AddressOpt,
    ConcatOpt,
    EngineArg,
    EngineOpt,
    JsonOpt,
    SplitMibOpt,
    StrictOpt,
    TemplateArgsOpt,
    TrainOnArg,
    TrainOnOpt,
    err,
    errors,
    progress_bar,
    report,
)

FilesArg = Annotated[list[str], typer.Argument(help="Records JSONL as convert writes it (instruction, chat or QA).")]
OutOpt = Annotated[str, typer.Option("--output", "-o", help="Output JSONL (or with --engine a folder), a path or a URL (s3://, gs://, hdfs://); rejects go to OUT.rejects.jsonl.")]
ThresholdOpt = Annotated[float, typer.Option("--threshold", help="Jaccard similarity over character n-grams at or above which rows are near duplicates (default 0.7: see README, Curation).")]
FieldsOpt = Annotated[Optional[list[str]], typer.Option("--fields", help="Fields to compare (comma-separated or repeated): instruction, input, output, question, context, answer, system, or chat roles user, assistant, tool. Default: the prompt side.")]


def _fields(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [f.strip() for value in values for f in value.split(",") if f.strip()]


def dedup(
    inputs: FilesArg,
    output: OutOpt,
    threshold: ThresholdOpt = 0.7,
    against: Annotated[Optional[list[str]], typer.Option("--against", help="Also drop rows found in these files (e.g. the eval set); repeatable.")] = None,
    fields: FieldsOpt = None,
    engine: EngineArg = EngineOpt.local,
    address: AddressOpt = None,
    split_mib: SplitMibOpt = 64.0,
    concat: ConcatOpt = False,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Drop exact and near-duplicate rows (MinHash LSH over character n-grams; works for Korean/CJK).

    Keeps the first row of each cluster; dropped rows go to OUT.dupes.jsonl with the row they duplicate.
    Example: `sftdata dedup train.jsonl -o train.dedup.jsonl --against eval.jsonl`
    """
    from .. import api

    with errors(), progress_bar("deduplicating", as_json) as progress:
        result = api.dedup(inputs, output, threshold=threshold, fields=_fields(fields), against=against or (),
                           engine=engine.value, address=address, split_mib=split_mib, concat=concat, progress=progress)
    report(result, as_json, strict)
    s = result.summary()
    err.print(f"duplicates: {s['exact']:,} exact, {s['near']:,} near (threshold {s['threshold']}) → {s['dupes']}",
              markup=False)


def filter_(
    inputs: FilesArg,
    output: OutOpt,
    min_chars: Annotated[Optional[int], typer.Option("--min-chars", help="Drop rows whose text (prompt + answer) is shorter.")] = None,
    max_chars: Annotated[Optional[int], typer.Option("--max-chars", help="Drop rows whose text is longer.")] = None,
    max_tokens: Annotated[Optional[int], typer.Option("--max-tokens", help="Drop samples longer than this many tokens (needs --tokenizer).")] = None,
    max_reasoning_tokens: Annotated[Optional[int], typer.Option("--max-reasoning-tokens", help="Drop chats whose reasoning (reasoning_content or a leading `<think>` block) is longer (needs --tokenizer).")] = None,
    tokenizer: Annotated[Optional[str], typer.Option("--tokenizer", help="Tokenizer directory, .gguf file or hub id.")] = None,
    template: Annotated[Optional[str], typer.Option("--template", "-t", help="Template for --max-tokens (default: chat for chats, alpaca otherwise).")] = None,
    template_args: TemplateArgsOpt = None,
    train_on: TrainOnArg = TrainOnOpt.all,
    deny: Annotated[Optional[list[str]], typer.Option("--deny", help="Drop rows matching this regular expression; repeatable.")] = None,
    lang: Annotated[Optional[str], typer.Option("--lang", help="Expected language: ko, zh, ja, en, latin, ru.")] = None,
    min_lang_share: Annotated[float, typer.Option("--min-lang-share", help="Least share of letters in the --lang script.")] = 0.5,
    drop_refusals: Annotated[bool, typer.Option("--drop-refusals", help="Drop answers that refuse ('As an AI language model', '죄송하지만 … 수 없습니다', ...).")] = False,
    engine: EngineArg = EngineOpt.local,
    address: AddressOpt = None,
    split_mib: SplitMibOpt = 64.0,
    concat: ConcatOpt = False,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Drop rows by length, tokens, patterns, language mix or refusals; each dropped row is in OUT.rejects.jsonl.

    Example: `sftdata filter train.jsonl -o kept.jsonl --lang ko --min-lang-share 0.5 --drop-refusals`
    """
    from .. import api

    with errors(), progress_bar("filtering", as_json) as progress:
        result = api.filter(inputs, output, min_chars=min_chars, max_chars=max_chars, max_tokens=max_tokens,
                            max_reasoning_tokens=max_reasoning_tokens,
                            tokenizer=tokenizer, template=template, template_args=template_args, train_on=train_on.value, deny=deny or (), lang=lang,
                            min_lang_share=min_lang_share, drop_refusals=drop_refusals, engine=engine.value,
                            address=address, split_mib=split_mib, concat=concat, progress=progress)
    report(result, as_json, strict)


def split(
    inputs: FilesArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for train.jsonl and eval.jsonl.")],
    eval_ratio: Annotated[float, typer.Option("--eval-ratio", help="Share of rows for eval (in expectation).")] = 0.05,
    seed: Annotated[int, typer.Option("--seed", help="Changes which rows go to eval; same seed, same split.")] = 0,
    group_near_dups: Annotated[bool, typer.Option("--group-near-dups", help="Keep near-duplicate prompts on one side.")] = False,
    threshold: ThresholdOpt = 0.7,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Split into DIR/train.jsonl and DIR/eval.jsonl by a stable hash of each record and the seed.

    Example: `sftdata split all.jsonl -o data/ --eval-ratio 0.05 --seed 1 --group-near-dups`
    """
    from .. import api

    with errors(), progress_bar("splitting", as_json) as progress:
        result = api.split(inputs, output, eval_ratio=eval_ratio, seed=seed, group_near_dups=group_near_dups,
                     threshold=threshold, progress=progress)
    report(result, as_json, strict)
    s = result.summary()
    err.print(f"train {s['train']:,} → {s['output']}, eval {s['eval']:,} → {s['eval_path']}", markup=False)


class OverflowOpt(str, Enum):
    drop = "drop"
    truncate = "truncate"


def pretokenize(
    inputs: FilesArg,
    output: OutOpt,
    tokenizer: Annotated[str, typer.Option("--tokenizer", help="Tokenizer directory, .gguf file or hub id.")],
    template: Annotated[str, typer.Option("--template", "-t", help="alpaca, alpaca_ko, qa_ko, chat, chatml, chatml_think, llama3, or a .jinja file.")],
    max_seq_length: Annotated[int, typer.Option("--max-seq-length", help="No written sample is longer.")],
    template_args: TemplateArgsOpt = None,
    train_on: TrainOnArg = TrainOnOpt.all,
    on_overflow: Annotated[OverflowOpt, typer.Option("--on-overflow", help="drop longer samples, or truncate them (prompt first; the completion's end and EOS are kept).")] = OverflowOpt.drop,
    engine: EngineArg = EngineOpt.local,
    address: AddressOpt = None,
    split_mib: SplitMibOpt = 64.0,
    concat: ConcatOpt = False,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write input_ids with completion_mask (instruction/QA) or assistant_masks (chats) for TRL's SFTTrainer.

    Example: `sftdata pretokenize train.jsonl -o train.tok.jsonl --tokenizer ./tok --template chat --max-seq-length 2048`
    """
    from .. import api

    with errors(), progress_bar("tokenizing", as_json) as progress:
        result = api.pretokenize(inputs, output, tokenizer=tokenizer, template=template, max_seq_length=max_seq_length,
                                 on_overflow=on_overflow.value, template_args=template_args, train_on=train_on.value,
                                 engine=engine.value, address=address, split_mib=split_mib, concat=concat,
                                 progress=progress)
    report(result, as_json, strict)
    s = result.summary()
    o = s["overflow"]
    err.print(f"{s['written']:,} samples, {s['tokens']:,} tokens (columns input_ids, {', '.join(s['columns']) or '-'}); "
              f"over {max_seq_length:,}: "
              f"{o['over']:,} ({o['policy']}: {o['dropped']:,} dropped, {o['truncated']:,} truncated)")
    if "completion_mask" in s["columns"]:
        err.print("TRL: pass SFTConfig(completion_only_loss=True) so SFTTrainer applies completion_mask")
