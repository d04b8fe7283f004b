"""Commands that make data fit to leave the team and to mix: scrub, decontaminate, mix."""
from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from .common import JsonOpt, StrictOpt, TemplateArgsOpt, TrainOnArg, TrainOnOpt, err, errors, progress_bar, report

FilesArg = Annotated[list[str], typer.Argument(help="Records JSONL as convert writes it (instruction, chat or QA).")]
ListOpt = Optional[list[str]]


class ScrubAction(str, Enum):
    mask = "mask"
    drop = "drop"
    report = "report"


class ConfidenceOpt(str, Enum):
    high = "high"
    low = "low"


def scrub(
    inputs: FilesArg,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Output JSONL (a path or a URL); rejects go to OUT.rejects.jsonl, masked. With --action report: only OUT.meta.json (counts).")] = None,
    action: Annotated[ScrubAction, typer.Option("--action", help="mask each hit with a typed placeholder, drop rows with hits (to the rejects file, masked), or report counts only.")] = ScrubAction.mask,
    types: Annotated[ListOpt, typer.Option("--types", help="PII types to look for (comma-separated or repeated): rrn, frn, phone, email, brn, card, account, passport, driver_license, address, ip, name. Default: all.")] = None,
    fields: Annotated[ListOpt, typer.Option("--fields", help="Only these fields: instruction, input, output, system, question, context, answer, the chat roles user, assistant, tool, or meta. Default: every text field.")] = None,
    name_field: Annotated[ListOpt, typer.Option("--name-field", help="A field whose value is a person's name (dotted path, e.g. meta.customer_name); the name is masked wherever it appears in the row. Repeatable.")] = None,
    placeholder: Annotated[ListOpt, typer.Option("--placeholder", help="TYPE=TEXT replaces a default placeholder ([전화번호], [주민등록번호], ...). Repeatable.")] = None,
    min_confidence: Annotated[ConfidenceOpt, typer.Option("--min-confidence", help="low also masks bank-account and passport numbers that no label names (more hits, more false alarms).")] = ConfidenceOpt.high,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Mask Korean and general personal information: resident/foreign registration numbers, phones, e-mail,
    business numbers, cards, accounts, passports, licences, addresses, IPs, labelled names.

    Numbers with a check digit or date part are validated; nothing written or shown holds a hit.
    Example: `sftdata scrub logs.jsonl -o logs.clean.jsonl --name-field meta.customer`
    """
    from .. import api

    with errors(), progress_bar("scrubbing", as_json) as progress:
        result = api.scrub(inputs, output, action=action.value, types=types or (), fields=fields or (),
                           name_field=name_field or (), placeholder=placeholder or (),
                           min_confidence=min_confidence.value, progress=progress)
    report(result, as_json, strict, writes=action is not ScrubAction.report)
    if action is ScrubAction.report:
        err.print("report only: no data was written (the counts above are of the rows as they are)", markup=False)
    s = result.summary()
    hits = ", ".join(f"{t} {n:,}" for t, n in s["hits"].items()) or "none"
    err.print(f"personal information: {s['rows_with_pii']:,} rows; hits {hits}", markup=False)
    if s["low_confidence_left"]:
        left = ", ".join(f"{t} {n:,}" for t, n in s["low_confidence_left"].items())
        err.print(f"left alone (no label before them; --min-confidence low masks them): {left}", markup=False)


class ReportOrDrop(str, Enum):
    drop = "drop"
    report = "report"


def decontaminate(
    inputs: FilesArg,
    against: Annotated[list[str], typer.Option("--against", help="Eval files (any format convert reads; raw files with --against-preset/--against-map); repeatable.")],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Output JSONL (a path or a URL) without contaminated rows; they go to OUT.rejects.jsonl with the eval item and span. With --action report: only OUT.matches.jsonl (the rows it would drop) and OUT.meta.json.")] = None,
    ngram: Annotated[Optional[int], typer.Option("--ngram", help="Characters per n-gram (after spaces and punctuation are removed). Default: 4 for Hangul/CJK text, 8 otherwise.")] = None,
    threshold: Annotated[float, typer.Option("--threshold", help="Share of an eval item's characters that shared n-grams must cover.")] = 0.8,
    min_span: Annotated[int, typer.Option("--min-span", help="Also contaminated: one shared run of at least this many characters.")] = 50,
    fields: Annotated[ListOpt, typer.Option("--fields", help="Fields of the eval items compared (default: the prompt side: instruction + input, question + context, user turns).")] = None,
    action: Annotated[ReportOrDrop, typer.Option("--action", help="drop contaminated rows, or report the rates only.")] = ReportOrDrop.drop,
    against_preset: Annotated[Optional[str], typer.Option("--against-preset", help="Read the eval files with this preset: alpaca, qa, openai, sharegpt.")] = None,
    against_map: Annotated[Optional[str], typer.Option("--against-map", help="Read the eval files with this mapping YAML.")] = None,
    common: Annotated[int, typer.Option("--common", help="n-grams held by more eval items than this are boilerplate and ignored.")] = 20,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Drop training rows that hold an eval item: character n-grams after NFKC, casefold and removing spaces,
    so changed particles and moved spaces in Korean still match.

    Example: `sftdata decontaminate train.jsonl --against korquad_dev.jsonl --against-preset qa -o clean.jsonl`
    """
    from .. import api

    with errors(), progress_bar("decontaminating", as_json) as progress:
        result = api.decontaminate(inputs, output, against=against, ngram=ngram, threshold=threshold,
                                   min_span=min_span, fields=fields or (), action=action.value,
                                   against_preset=against_preset, against_map=against_map, common=common,
                                   progress=progress)
    report(result, as_json, strict, writes=action is not ReportOrDrop.report)
    if action is ReportOrDrop.report:
        err.print("report only: no row was dropped" + (f"; the rows that would be: {result.rejects}" if result.rejects
                                                         else " (add -o OUT to list them in OUT.matches.jsonl)"),
                  markup=False)
    for name, c in result.summary()["eval"].items():
        err.print(f"{name}: {c['found']:,} of {c['items']:,} eval items found in training data ({c['rate']:.1%}), "
                  f"{c['train_rows']:,} training rows", markup=False)


class ByOpt(str, Enum):
    trained_tokens = "trained-tokens"
    rows = "rows"


def mix(
    sources: Annotated[list[str], typer.Argument(help="PATH:WEIGHT for each source (records JSONL); weights need not sum to 1.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Output JSONL (a path or a URL); rows not drawn are listed in OUT.rejects.jsonl.")],
    by: Annotated[ByOpt, typer.Option("--by", help="Match the weights by trained tokens (as pretokenize masks them) or by rows.")] = ByOpt.trained_tokens,
    total: Annotated[Optional[int], typer.Option("--total", help="Rows in the mix.")] = None,
    tokens: Annotated[Optional[int], typer.Option("--tokens", help="Trained tokens in the mix (--by trained-tokens). Default (no --total either): the largest mix within --max-repeat.")] = None,
    tokenizer: Annotated[Optional[str], typer.Option("--tokenizer", help="Tokenizer directory, .gguf file or hub id.")] = None,
    template: Annotated[Optional[str], typer.Option("--template", "-t", help="Template the data will be trained with (default: chat for chats, alpaca otherwise).")] = None,
    template_args: TemplateArgsOpt = None,
    train_on: TrainOnArg = TrainOnOpt.all,
    max_seq_length: Annotated[Optional[int], typer.Option("--max-seq-length", help="Count trained tokens as pretokenize --on-overflow truncate keeps them.")] = None,
    max_repeat: Annotated[float, typer.Option("--max-repeat", help="The most passes over one source (1: no row twice).")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Same sources, weights and seed: the same mix.")] = 0,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Mix sources so each one's share of trained tokens (or rows) is its weight, with a cap on repeats.

    Example: `sftdata mix cs.jsonl:0.6 reasoning.jsonl:0.4 -o mix.jsonl --tokenizer ./tok -t chatml --max-repeat 2`
    """
    from .. import api

    with errors(), progress_bar("mixing", as_json) as progress:
        result = api.mix(sources, output, by=by.value, total=total, tokens=tokens, tokenizer=tokenizer,
                         template=template, template_args=template_args, train_on=train_on.value,
                         max_seq_length=max_seq_length, max_repeat=max_repeat, seed=seed, progress=progress)
    report(result, as_json, strict)
    for row in result.summary()["sources"]:
        share = (f"trained tokens {row['trained_tokens']:,} ({row['token_share']:.1%}) → "
                 f"{row['trained_tokens_out']:,} ({row['token_share_out']:.1%}); " if "trained_tokens" in row else "")
        copies = f" (up to {row['max_copies']}x)" if row["max_copies"] > 1 else ""
        err.print(f"{row['source']} (weight {row['weight']:.0%}): {share}rows {row['rows']:,} → {row['rows_out']:,}"
                  f"{copies}", markup=False)
