"""Reviewing rows in a browser and applying the decisions: review, review-apply (the library is
sftdata.reviewing)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from .options import Files, MaxSeqLength, PathLike, TemplateArgs, TemplateAuto, TrainOn
from .registry import Arg, Opt, command

if TYPE_CHECKING:
    from ..reviewing.apply import ApplyResult
    from ..reviewing.server import ReviewServer


@command(group="review")
def review(
    inputs: Annotated[Files, Arg("Data files a step wrote (records, rendered or pretokenized JSONL, an engine's "
                                 "folder of part files, or the OUT of decontaminate --action report); their "
                                 ".rejects/.dupes/.matches/.meta.json are found beside.")],
    *,
    tokenizer: Annotated[str | None, Opt(help="Tokenizer directory, .gguf file or hub id: show every row token by "
                                              "token, as pretokenize makes them.")] = None,
    template: TemplateAuto = None,
    template_args: TemplateArgs = None,
    train_on: TrainOn = "all",
    max_seq_length: MaxSeqLength = None,
    host: Annotated[str, Opt(help="Address to listen on (default loopback only; any other still needs the "
                                  "token).")] = "127.0.0.1",
    port: Annotated[int, Opt(help="Port (0: a free one).")] = 0,
    no_open: Annotated[bool, Opt("--no-open", help="Do not open a browser.")] = False,
    read_only: Annotated[bool, Opt(help="Show rows; refuse every decision.")] = False,
    reviewer: Annotated[str | None, Opt(help="Name saved with each decision (default: $SFTDATA_REVIEWER or the "
                                             "login name).")] = None,
    show_pii: Annotated[bool, Opt(help="Show personal information as it is (by default masked as `scrub` masks "
                                       "it).")] = False,
) -> ReviewServer:
    """Review rows in a local browser app: trained tokens, findings, rejects, duplicates; overrule decisions.

    Serves until stopped (Ctrl-C); in a notebook it runs in the background and returns a handle with `.url` and
    `.stop()`. Decisions are saved as made in DATA.review.jsonl; `sftdata review-apply` writes the result.
    Example: `sftdata review train.dedup.jsonl --tokenizer ./tok --no-open`
    """
    from ..reviewing.server import start
    from ..reviewing.session import Options

    options = Options(tokenizer=tokenizer, template=template, template_args=template_args, train_on=train_on,
                      max_seq_length=max_seq_length, read_only=read_only, reviewer=reviewer, show_pii=show_pii)
    return start(inputs, options, host=host, port=port)  # no_open: the CLI opens the browser (sftdata.cli.review)


@command(group="review")
def review_apply(
    review_file: Annotated[PathLike, Arg("The DATA.review.jsonl `sftdata review` wrote.")],
    output: Annotated[PathLike, Opt("--output", "-o", help="Curated records JSONL; rejects go to "
                                    "OUT.rejects.jsonl.")],
) -> ApplyResult:
    """Apply a review's decisions: the curated rows, the rows still dropped, and a .meta.json naming the review.

    Example: `sftdata review-apply train.dedup.review.jsonl -o train.reviewed.jsonl`
    """
    from ..reviewing.apply import review_apply as run

    return run(review_file, output)
