"""Commands that show or change what reaches the trainer: stats, inspect, audit, dedup, filter, split,
pretokenize (the library is sftdata.curate)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from ..curate.filters import filter_records
from ..curate.pretokenize import pretokenize as pretokenize_records
from ..items import Progress
from . import scaled
from .options import (
    Address,
    Concat,
    Engine,
    Files,
    MaxSeqLength,
    Output,
    PathLike,
    RecordFiles,
    SplitMib,
    TemplateArgs,
    TemplateAuto,
    Threshold,
    TokenizerRequired,
    TrainOn,
)
from .registry import Opt, command

if TYPE_CHECKING:
    from ..curate.audit import AuditResult
    from ..curate.dedup import DedupResult
    from ..curate.filters import FilterResult
    from ..curate.inspection import Shown
    from ..curate.pretokenize import PretokenizeResult
    from ..curate.split import SplitResult
    from ..curate.stats import StatsResult
    from ..tokenize.encode import Specials

Fields = Annotated[Sequence[str] | None, Opt(
    help="Fields to compare (comma-separated or repeated): instruction, input, output, question, context, answer, "
         "system, or chat roles user, assistant, tool. Default: what a row teaches (question + answer, instruction + "
         "input + output, a chat's user and assistant turns), never a shared context or system prompt.")]


@command(group="views")
def stats(
    inputs: RecordFiles,
    tokenizer: TokenizerRequired,
    *,
    template: TemplateAuto = None,
    max_seq_length: MaxSeqLength = None,
    template_args: TemplateArgs = None,
    train_on: TrainOn = "all",
    report: Annotated[PathLike | None, Opt(help="Write a self-contained HTML report (with the audit's findings).")] = None,
    show_pii: Annotated[bool, Opt(help="Show personal information in the report's samples and examples as it is "
                                       "(by default it is masked as `scrub` masks it: [전화번호], [이메일], ...).")] = False,
    progress: Progress | None = None,
) -> StatsResult:
    """Lengths in characters and tokens (prompt, completion, sample) and what max_seq_length would cut.

    Example: `sftdata stats train.jsonl --tokenizer ./tokenizer --max-seq-length 1024 --report report.html`
    """
    from ..curate.stats import stats as run

    return run(inputs, tokenizer, template=template, template_args=template_args, train_on=train_on,
               max_seq_length=max_seq_length, report=report, show_pii=show_pii, progress=progress)


class Inspection:
    """What `sftdata inspect` shows: samples labelled token by token, and the tokenizer's special tokens. With no
    sample shown (none renders, or `skip` passes the last), `nothing_shown` says why and `rendered` how many
    samples render; the CLI prints it and exits 4."""

    def __init__(self, samples: list[Shown], specials: Specials, rendered: int = 0,
                 nothing_shown: str | None = None) -> None:
        self.samples, self.specials = samples, specials
        self.rendered, self.nothing_shown = rendered, nothing_shown


@command(group="views")
def inspect(
    inputs: RecordFiles,
    tokenizer: TokenizerRequired,
    *,
    template: TemplateAuto = None,
    template_args: TemplateArgs = None,
    train_on: TrainOn = "all",
    n: Annotated[int, Opt("-n", help="How many samples to show.")] = 3,
    skip: Annotated[int, Opt(help="Skip this many samples first.")] = 0,
    ids: Annotated[bool, Opt(help="Show each token's id.")] = False,
    pad_to: Annotated[int | None, Opt(help="Append padding up to this length, as a collator would.")] = None,
) -> Inspection:
    """Show samples token by token: masked prompt, trained completion, EOS, padding.

    The ids and masks are the ones `pretokenize` writes; `ids` only changes how the CLI prints tokens.
    Example: `sftdata inspect train.jsonl --tokenizer ./tok -n 2 --ids`
    """
    from ..curate.inspection import inspect_samples

    found = inspect_samples(inputs, tokenizer, template=template, template_args=template_args, train_on=train_on,
                            n=n, skip=skip, pad_to=pad_to)
    return Inspection(found.samples, found.encoder.specials, found.rendered, found.nothing_shown)


@command(group="views")
def audit(
    inputs: RecordFiles,
    tokenizer: TokenizerRequired,
    *,
    template: TemplateAuto = None,
    max_seq_length: MaxSeqLength = None,
    template_args: TemplateArgs = None,
    train_on: TrainOn = "all",
    trainer: Annotated[Literal["generic", "trl", "sftdata"], Opt(
        help="generic: a collator that masks pad ids; trl (>= 1.0) and sftdata mask by position.")] = "generic",
    eval_files: Annotated[Files, Opt("--eval", help="An eval set to check for overlap with.")] = (),
    lang: Annotated[str | None, Opt(help="Expected language (ko, zh, ja, en, ...) for the language-mix check.")] = None,
    min_lang_share: Annotated[float, Opt(help="Least share of letters in that script.")] = 0.5,
    threshold: Annotated[float, Opt(help="Near-duplicate Jaccard threshold.")] = 0.7,
    progress: Progress | None = None,
) -> AuditResult:
    """Check data + tokenizer + template for known training pitfalls; exit 1 on any error finding.

    `result.findings` lists them. Example:
    `sftdata audit train.jsonl --tokenizer ./tok --max-seq-length 2048 --eval eval.jsonl --lang ko`
    """
    from ..curate.audit import audit as run
    from ..curate.findings import Trainer

    return run(inputs, tokenizer, template=template, template_args=template_args, train_on=train_on,
               max_seq_length=max_seq_length, trainer=Trainer(trainer), eval_files=eval_files, lang=lang,
               min_lang_share=min_lang_share, threshold=threshold, progress=progress)


@command(group="curate")
def dedup(
    inputs: RecordFiles,
    output: Output,
    *,
    threshold: Threshold = 0.7,
    against: Annotated[Files, Opt(help="Also drop rows found in these files (e.g. the eval set); repeatable.")] = (),
    fields: Fields = None,
    engine: Engine = "local",
    address: Address = None,
    split_mib: SplitMib = 64.0,
    concat: Concat = False,
    progress: Progress | None = None,
) -> DedupResult:
    """Drop exact and near-duplicate rows (MinHash LSH candidates over character n-grams, each pair verified on
    its exact Jaccard similarity; works for Korean/CJK).

    Keeps the first row of each cluster; dropped rows go to OUT.dupes.jsonl with the row they duplicate and the
    exact similarity. On an engine (sftdata.scale.dedup) the kept rows and dupes are the same.
    Example: `sftdata dedup train.jsonl -o train.dedup.jsonl --against eval.jsonl`
    """
    fields = _comma_separated(fields)
    if engine != "local":
        from ..scale.dedup import dedup as distributed

        return distributed(inputs, output, threshold=threshold, fields=fields, against=against, engine=engine,
                           address=address, split_mib=split_mib, concat=concat)
    from ..curate.dedup import dedup as run

    return run(inputs, output, threshold=threshold, fields=fields, against=against, progress=progress)


def _comma_separated(values: Sequence[str] | None) -> list[str] | None:
    """`--fields a,b --fields c` as a list; None (the default) stays None."""
    if not values:
        return None
    return [f.strip() for value in values for f in value.split(",") if f.strip()]


@command(group="curate", split=filter_records, split_tokenizer="light")
def filter(
    inputs: RecordFiles,
    output: Output,
    *,
    min_chars: Annotated[int | None, Opt(help="Drop rows whose text (prompt + answer) is shorter.")] = None,
    max_chars: Annotated[int | None, Opt(help="Drop rows whose text is longer.")] = None,
    max_tokens: Annotated[int | None, Opt(help="Drop samples longer than this many tokens (needs --tokenizer).")] = None,
    max_reasoning_tokens: Annotated[int | None, Opt(
        help="Drop chats whose reasoning (reasoning_content or a leading `<think>` block) is longer (needs "
             "--tokenizer).")] = None,
    tokenizer: Annotated[str | None, Opt(help="Tokenizer directory, .gguf file or hub id.")] = None,
    template: Annotated[str | None, Opt("--template", "-t", help="Template for --max-tokens (default: chat for chats, "
                                        "alpaca otherwise).")] = None,
    template_args: TemplateArgs = None,
    train_on: TrainOn = "all",
    deny: Annotated[Sequence[str], Opt(help="Drop rows matching this regular expression; repeatable.")] = (),
    lang: Annotated[str | None, Opt(help="Expected language: ko, zh, ja, en, latin, ru.")] = None,
    min_lang_share: Annotated[float | None, Opt(help="Least share of letters in the --lang script (default 0.5; "
                                                "needs --lang).")] = None,
    drop_refusals: Annotated[bool, Opt(help="Drop answers that refuse ('As an AI language model', "
                                       "'죄송하지만 … 수 없습니다', ...).")] = False,
    engine: Engine = "local",
    address: Address = None,
    split_mib: SplitMib = 64.0,
    concat: Concat = False,
    progress: Progress | None = None,
) -> FilterResult:
    """Drop rows by length, tokens, patterns, language mix or refusals; each dropped row is in OUT.rejects.jsonl.

    Example: `sftdata filter train.jsonl -o kept.jsonl --lang ko --min-lang-share 0.5 --drop-refusals`
    """
    from ..curate.filters import FilterSpec, RowFilter

    spec = FilterSpec(min_chars=min_chars, max_chars=max_chars, max_tokens=max_tokens,
                      max_reasoning_tokens=max_reasoning_tokens, deny=list(deny), lang=lang,
                      min_lang_share=min_lang_share, drop_refusals=drop_refusals)
    options: dict[str, Any] = dict(spec=spec, tokenizer=tokenizer, template=template, template_args=template_args,
                                   train_on=train_on)
    if engine == "local":
        return filter_records(inputs, output, **options, progress=progress)
    RowFilter(spec)  # a bad --deny pattern or --lang fails here, as locally, before any task runs
    return scaled.on_engine("filter", inputs, output, engine, address, split_mib, concat, options)


@command(group="curate")
def split(
    inputs: RecordFiles,
    output: Annotated[PathLike, Opt("--output", "-o", help="Directory for train.jsonl and eval.jsonl.")],
    *,
    eval_ratio: Annotated[float, Opt(help="Share of rows for eval (in expectation).")] = 0.05,
    seed: Annotated[int, Opt(help="Changes which rows go to eval; same seed, same split.")] = 0,
    group_near_dups: Annotated[bool, Opt(help="Keep near-duplicate prompts on one side.")] = False,
    threshold: Threshold = 0.7,
    progress: Progress | None = None,
) -> SplitResult:
    """Split into DIR/train.jsonl and DIR/eval.jsonl by a stable hash of each record and the seed.

    Example: `sftdata split all.jsonl -o data/ --eval-ratio 0.05 --seed 1 --group-near-dups`
    """
    from ..curate.split import split as run

    return run(inputs, output, eval_ratio=eval_ratio, seed=seed, group_near_dups=group_near_dups,
               threshold=threshold, progress=progress)


@command(group="curate", split=pretokenize_records, split_tokenizer="light",
         sums=("tokens", "overflow.over", "overflow.dropped", "overflow.truncated", "columns"))
def pretokenize(
    inputs: RecordFiles,
    output: Output,
    *,
    tokenizer: TokenizerRequired,
    template: Annotated[str, Opt("--template", "-t", help="alpaca, alpaca_ko, qa_ko, chat, chatml, chatml_think, "
                                 "llama3, or a .jinja file.")],
    max_seq_length: Annotated[int, Opt(help="No written sample is longer.")],
    on_overflow: Annotated[Literal["drop", "truncate"], Opt(
        help="drop longer samples, or truncate them (prompt first; the completion's end and EOS are kept).")] = "drop",
    template_args: TemplateArgs = None,
    train_on: TrainOn = "all",
    engine: Engine = "local",
    address: Address = None,
    split_mib: SplitMib = 64.0,
    concat: Concat = False,
    progress: Progress | None = None,
) -> PretokenizeResult:
    """Write input_ids with completion_mask (instruction/QA) or assistant_masks (chats) for TRL's SFTTrainer.

    Example: `sftdata pretokenize train.jsonl -o train.tok.jsonl --tokenizer ./tok --template chat --max-seq-length 2048`
    """
    from ..curate.pretokenize import Overflow

    options: dict[str, Any] = dict(tokenizer=tokenizer, template=template, max_seq_length=max_seq_length,
                                   on_overflow=Overflow(on_overflow), template_args=template_args, train_on=train_on)
    if engine == "local":
        return pretokenize_records(inputs, output, **options, progress=progress)
    return scaled.on_engine("pretokenize", inputs, output, engine, address, split_mib, concat, options)
