"""`sftdata eval`: a tuned model against its base on held-out records (the library is sftdata.evaluation)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from .options import Files, PathLike
from .registry import Arg, Opt, command

if TYPE_CHECKING:
    from ..evaluation.evaluate import EvalResult


@command(group="evaluate")
def eval(
    target: Annotated[PathLike, Arg("A finished training output directory, or a .gguf file (served with "
                                    "llama.cpp).")],
    data: Annotated[Files, Opt("--data", help="Eval records JSONL (held out from training); repeatable.")],
    *,
    output: Annotated[PathLike | None, Opt("--output", "-o", help="Per-record answers and scores (default: "
                                           "RUN/eval.jsonl, or ./eval.jsonl for a GGUF).")] = None,
    base: Annotated[bool, Opt(help="Also evaluate the base model (the adapter switched off, or the export's base "
                              "GGUF).")] = False,
    n: Annotated[int | None, Opt("-n", help="Evaluate the first N records.")] = None,
    max_new_tokens: Annotated[int, Opt(help="Longest answer in tokens.")] = 128,
    lang: Annotated[str | None, Opt(help="Expected answer language (ko, en, zh, ja, latin, ru): its script's share "
                                    "of letters.")] = None,
    base_url: Annotated[str | None, Opt(help="Answer through this OpenAI-compatible server (chat completions) "
                                        "instead.")] = None,
    model: Annotated[str | None, Opt(help="Model name on --base-url.")] = None,
    api_key_env: Annotated[str, Opt(help="Environment variable holding the --base-url key.")] = "OPENAI_API_KEY",
    base_gguf: Annotated[PathLike | None, Opt(help="The base model as GGUF, for a LoRA GGUF or a merged export whose "
                                              "base is unknown.")] = None,
    concurrency: Annotated[int, Opt(help="Requests in flight to a server.")] = 4,
    batch_size: Annotated[int, Opt(help="Prompts generated together in-process.")] = 8,
    judge_base_url: Annotated[str | None, Opt(help="An OpenAI-compatible server whose model judges tuned against "
                                              "base (or the reference), pairwise, both orders.")] = None,
    judge_model: Annotated[str | None, Opt(help="The judge's model name (default: the server's first).")] = None,
    judge_api_key_env: Annotated[str, Opt(help="Environment variable holding the judge's API key.")] = "OPENAI_API_KEY",
    judge_lang: Annotated[Literal["ko", "en"], Opt(help="Language of the judge prompt (templates judge_pairwise_ko / "
                                                   "_en).")] = "ko",
    judge_versus: Annotated[Literal["base", "reference"], Opt(help="Compare the tuned answer with the base's answer "
                                                              "or with the reference.")] = "base",
    judge_template: Annotated[str | None, Opt(help="A .jinja judge prompt (blocks system and user).")] = None,
    judge_concurrency: Annotated[int, Opt(help="Judge requests in flight.")] = 4,
    judge_rpm: Annotated[float | None, Opt(help="Judge requests per minute at most.")] = None,
    judge_tpm: Annotated[float | None, Opt(help="Judge tokens per minute at most.")] = None,
    judge_retries: Annotated[int, Opt(help="Retries of a failed judge request.")] = 6,
    report: Annotated[PathLike | None, Opt(help="Write an offline HTML report here.")] = None,
    fail_under: Annotated[Sequence[str], Opt(
        help="METRIC=VALUE: exit 1 when the tuned model's METRIC is below VALUE (chrf, rouge_l, exact_match, "
             "stop_rate, lang_share, loss_gain, win_rate); repeatable.")] = (),
    llama_cpp: Annotated[PathLike | None, Opt(help="llama.cpp source tree for converting a run's adapter (default: "
                                              "$LLAMA_CPP_DIR).")] = None,
    threads: Annotated[int | None, Opt(help="CPU threads of a llama.cpp server.")] = None,
    progress: Any = None,
) -> EvalResult:
    """Did the fine-tune help? Loss, stop rate, chrF / character ROUGE-L / exact match, language share and
    repetition of the tuned model and its base on held-out records, and optionally a pairwise judge.

    Example: `sftdata eval runs/a --data eval.jsonl --base --lang ko --report eval.html --fail-under stop_rate=0.9`
    """
    from ..evaluation.evaluate import evaluate
    from ..evaluation.judge import JudgeOptions, check_options

    judge = None
    if judge_base_url:
        judge = JudgeOptions(judge_base_url, judge_model, judge_api_key_env, judge_lang, judge_template, judge_versus,
                             judge_concurrency, judge_rpm, judge_tpm, retries=judge_retries)
        check_options(judge)
    return evaluate(target, data, output=output, base=base, n=n, max_new_tokens=max_new_tokens, lang=lang,
                    base_url=base_url, model=model, api_key_env=api_key_env, base_gguf=base_gguf,
                    concurrency=concurrency, batch_size=batch_size, judge=judge, report=report,
                    fail_under=fail_under or (), llama_cpp=llama_cpp, threads=threads, progress=progress)
