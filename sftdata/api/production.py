"""Commands that make data fit to leave the team and to mix: scrub, decontaminate, mix (the library is
sftdata.curate)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Literal

from ..items import Progress
from .options import Files, PathLike, RecordFiles, TemplateArgs, TrainOn
from .registry import Arg, Opt, command

if TYPE_CHECKING:
    from ..curate.decontaminate import DecontaminateResult
    from ..curate.mix import MixResult
    from ..curate.scrub import ScrubResult


EvalPreset = Literal["korquad", "klue-mrc", "korquad2", "alpaca", "qa", "openai", "sharegpt"]


def _comma_separated(values: Sequence[str] | None) -> list[str]:
    """`--types a,b --types c` as a list; None or () is []."""
    return [v.strip() for value in values or () for v in value.split(",") if v.strip()]


@command(group="production")
def scrub(
    inputs: RecordFiles,
    output: Annotated[PathLike | None, Opt("--output", "-o", help="Output JSONL (a path or a URL); rejects go to "
                                           "OUT.rejects.jsonl, masked. With --action report: only OUT.meta.json "
                                           "(counts).")] = None,
    *,
    action: Annotated[Literal["mask", "drop", "report"], Opt(
        help="mask each hit with a typed placeholder, drop rows with hits (to the rejects file, masked), or report "
             "counts only.")] = "mask",
    types: Annotated[Sequence[str], Opt(
        help="PII types to look for (comma-separated or repeated): rrn, frn, phone, email, brn, card, account, "
             "passport, driver_license, address, ip, name. Default: all.")] = (),
    fields: Annotated[Sequence[str], Opt(
        help="Only these fields: instruction, input, output, system, question, context, answer, the chat roles user, "
             "assistant, tool, or meta. Default: every text field.")] = (),
    name_field: Annotated[Sequence[str], Opt(
        help="A field whose value is a person's name (dotted path, e.g. meta.customer_name); the name is masked "
             "wherever it appears in the row. Repeatable.")] = (),
    placeholder: Annotated[Sequence[str], Opt(
        help="TYPE=TEXT replaces a default placeholder ([전화번호], [주민등록번호], ...). Repeatable.")] = (),
    min_confidence: Annotated[Literal["high", "low"], Opt(
        help="low also masks bank-account and passport numbers that no label names (more hits, more false "
             "alarms).")] = "high",
    progress: Progress | None = None,
) -> ScrubResult:
    """Mask Korean and general personal information: resident/foreign registration numbers, phones, e-mail,
    business numbers, cards, accounts, passports, licences, addresses, IPs, labelled names.

    Numbers with a check digit or date part are validated; nothing written or shown holds a hit.
    Example: `sftdata scrub logs.jsonl -o logs.clean.jsonl --name-field meta.customer`
    """
    from ..curate.scrub import parse_spec
    from ..curate.scrub import scrub as run

    spec = parse_spec(action, _comma_separated(types), _comma_separated(fields), name_field or (), placeholder or (),
                      min_confidence)
    return run(inputs, output, spec, progress=progress)


@command(group="production")
def decontaminate(
    inputs: RecordFiles,
    output: Annotated[PathLike | None, Opt("--output", "-o", help="Output JSONL (a path or a URL) without contaminated "
                                           "rows; they go to OUT.rejects.jsonl with the eval item and span. With "
                                           "--action report: only OUT.matches.jsonl (the rows it would drop) and "
                                           "OUT.meta.json.")] = None,
    *,
    against: Annotated[Files, Opt(help="Eval files (any format convert reads; raw files with "
                                  "--against-preset/--against-map); repeatable.")],
    ngram: Annotated[int | None, Opt(help="Characters per n-gram (after spaces and punctuation are removed). Default: "
                                     "4 for Hangul/CJK text, 8 otherwise.")] = None,
    threshold: Annotated[float, Opt(help="Share of an eval item's characters that shared n-grams must cover (0.73: "
                                    "finds 95% of one-word edits of Korean questions; docs/curation.md).")] = 0.73,
    min_span: Annotated[int, Opt(help="Also contaminated: one shared run of at least this many characters.")] = 50,
    fields: Annotated[Sequence[str], Opt(help="Fields of the eval items compared (default: the prompt side: "
                                         "instruction + input, question + context, user turns).")] = (),
    action: Annotated[Literal["drop", "report"], Opt(help="drop contaminated rows, or report the rates "
                                                     "only.")] = "drop",
    against_preset: Annotated[EvalPreset | None, Opt(
        help="Read the eval files with this preset: korquad (KorQuAD 1.0, SQuAD: data[].paragraphs[].qas[]), "
             "klue-mrc (the same layout, guid ids), korquad2 (KorQuAD 2.x: data[].qas[]), or a convert preset.")] = None,
    against_map: Annotated[str | None, Opt(help="Read the eval files with this mapping YAML; its explode path may go "
                                           "through lists in lists: data[].paragraphs[].qas[].")] = None,
    common: Annotated[int, Opt(help="n-grams held by more eval items than this are boilerplate: they alone make no "
                               "match.")] = 20,
    progress: Progress | None = None,
) -> DecontaminateResult:
    """Drop training rows that hold an eval item: character n-grams after NFKC, casefold and removing spaces,
    so changed particles and moved spaces in Korean still match.

    Example: `sftdata decontaminate train.jsonl --against KorQuAD_v1.0_dev.json --against-preset korquad -o clean.jsonl`
    """
    from ..curate.decontaminate import decontaminate as run

    return run(inputs, output, against=against, ngram=ngram, threshold=threshold, min_span=min_span,
               fields=list(fields or ()) or None, action=action, against_preset=against_preset, against_map=against_map,
               common=common, progress=progress)


@command(group="production")
def mix(
    sources: Annotated[Sequence[str], Arg("PATH:WEIGHT for each source (records JSONL); weights need not sum to 1.")],
    output: Annotated[PathLike, Opt("--output", "-o", help="Output JSONL (a path or a URL); rows not drawn are listed "
                                    "in OUT.rejects.jsonl.")],
    *,
    by: Annotated[Literal["trained-tokens", "rows"], Opt(
        help="Match the weights by trained tokens (as pretokenize masks them) or by rows.")] = "trained-tokens",
    total: Annotated[int | None, Opt(help="Rows in the mix.")] = None,
    tokens: Annotated[int | None, Opt(help="Trained tokens in the mix (--by trained-tokens). Default (no --total "
                                      "either): the largest mix within --max-repeat.")] = None,
    tokenizer: Annotated[str | None, Opt(help="Tokenizer directory, .gguf file or hub id.")] = None,
    template: Annotated[str | None, Opt("--template", "-t", help="Template the data will be trained with (default: "
                                        "chat for chats, alpaca otherwise).")] = None,
    template_args: TemplateArgs = None,
    train_on: TrainOn = "all",
    max_seq_length: Annotated[int | None, Opt(help="Count trained tokens as pretokenize --on-overflow truncate keeps "
                                              "them.")] = None,
    max_repeat: Annotated[float, Opt(help="The most passes over one source (1: no row twice).")] = 1.0,
    seed: Annotated[int, Opt(help="Same sources, weights and seed: the same mix.")] = 0,
    progress: Progress | None = None,
) -> MixResult:
    """Mix sources so each one's share of trained tokens (or rows) is its weight, with a cap on repeats.

    Example: `sftdata mix cs.jsonl:0.6 reasoning.jsonl:0.4 -o mix.jsonl --tokenizer ./tok -t chatml --max-repeat 2`
    """
    from ..curate.mix import mix as run

    return run(sources, output, by=by, total=total, tokens=tokens, tokenizer=tokenizer, template=template,
               template_args=template_args, train_on=train_on, max_seq_length=max_seq_length, max_repeat=max_repeat,
               seed=seed, progress=progress)
