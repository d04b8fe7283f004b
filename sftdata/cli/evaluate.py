"""`sftdata eval`: a tuned model against its base on held-out records; the library is sftdata.evaluation."""
from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import orjson
import typer
from rich.console import Console
from rich.table import Table

from .common import JsonOpt, err, errors
from .train import _quiet_hf


class JudgeLang(str, Enum):
    ko = "ko"
    en = "en"


class Versus(str, Enum):
    base = "base"
    reference = "reference"


_ROWS = (("loss", "loss (trained tokens)"), ("perplexity", "perplexity"), ("stop_rate", "stop rate"),
         ("chrf", "chrF"), ("rouge_l", "char ROUGE-L"), ("exact_match", "exact match"), ("lang_share", "language share"),
         ("repetition", "repetition"), ("length_ratio", "length / reference"), ("answers_per_s", "answers/s"))


def eval_(
    target: Annotated[Path, typer.Argument(help="A finished training output directory, or a .gguf file (served with llama.cpp).")],
    data: Annotated[list[str], typer.Option("--data", help="Eval records JSONL (held out from training); repeatable.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Per-record answers and scores (default: RUN/eval.jsonl, or ./eval.jsonl for a GGUF).")] = None,
    base: Annotated[bool, typer.Option("--base", help="Also evaluate the base model (the adapter switched off, or the export's base GGUF).")] = False,
    n: Annotated[Optional[int], typer.Option("-n", help="Evaluate the first N records.")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Longest answer in tokens.")] = 128,
    lang: Annotated[Optional[str], typer.Option("--lang", help="Expected answer language (ko, en, zh, ja, latin, ru): its script's share of letters.")] = None,
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="Answer through this OpenAI-compatible server (chat completions) instead.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Model name on --base-url.")] = None,
    api_key_env: Annotated[str, typer.Option("--api-key-env", help="Environment variable holding the --base-url key.")] = "OPENAI_API_KEY",
    base_gguf: Annotated[Optional[Path], typer.Option("--base-gguf", help="The base model as GGUF, for a LoRA GGUF or a merged export whose base is unknown.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Requests in flight to a server.")] = 4,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Prompts generated together in-process.")] = 8,
    judge_base_url: Annotated[Optional[str], typer.Option("--judge-base-url", help="An OpenAI-compatible server whose model judges tuned against base (or the reference), pairwise, both orders.")] = None,
    judge_model: Annotated[Optional[str], typer.Option("--judge-model", help="The judge's model name (default: the server's first).")] = None,
    judge_api_key_env: Annotated[str, typer.Option("--judge-api-key-env", help="Environment variable holding the judge's API key.")] = "OPENAI_API_KEY",
    judge_lang: Annotated[JudgeLang, typer.Option("--judge-lang", help="Language of the judge prompt (templates judge_pairwise_ko / _en).")] = JudgeLang.ko,
    judge_versus: Annotated[Versus, typer.Option("--judge-versus", help="Compare the tuned answer with the base's answer or with the reference.")] = Versus.base,
    judge_template: Annotated[Optional[str], typer.Option("--judge-template", help="A .jinja judge prompt (blocks system and user).")] = None,
    judge_concurrency: Annotated[int, typer.Option("--judge-concurrency", help="Judge requests in flight.")] = 4,
    judge_rpm: Annotated[Optional[float], typer.Option("--judge-rpm", help="Judge requests per minute at most.")] = None,
    judge_tpm: Annotated[Optional[float], typer.Option("--judge-tpm", help="Judge tokens per minute at most.")] = None,
    judge_retries: Annotated[int, typer.Option("--judge-retries", help="Retries of a failed judge request.")] = 6,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write an offline HTML report here.")] = None,
    fail_under: Annotated[Optional[list[str]], typer.Option("--fail-under", help="METRIC=VALUE: exit 1 when the tuned model's METRIC is below VALUE (chrf, rouge_l, exact_match, stop_rate, lang_share, loss_gain, win_rate); repeatable.")] = None,
    llama_cpp: Annotated[Optional[str], typer.Option("--llama-cpp", help="llama.cpp source tree for converting a run's adapter (default: $LLAMA_CPP_DIR).")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads of a llama.cpp server.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Did the fine-tune help? Loss, stop rate, chrF / character ROUGE-L / exact match, language share and
    repetition of the tuned model and its base on held-out records, and optionally a pairwise judge.

    Example: `sftdata eval runs/a --data eval.jsonl --base --lang ko --report eval.html --fail-under stop_rate=0.9`
    """
    from .. import api

    _quiet_hf()
    with errors():
        result = api.eval(target, data, output=output, base=base, n=n, max_new_tokens=max_new_tokens, lang=lang,
                          base_url=base_url, model=model, api_key_env=api_key_env, base_gguf=base_gguf,
                          concurrency=concurrency, batch_size=batch_size, judge_base_url=judge_base_url,
                          judge_model=judge_model, judge_api_key_env=judge_api_key_env, judge_lang=judge_lang.value,
                          judge_versus=judge_versus.value, judge_template=judge_template,
                          judge_concurrency=judge_concurrency, judge_rpm=judge_rpm, judge_tpm=judge_tpm,
                          judge_retries=judge_retries, report=report, fail_under=fail_under or (), llama_cpp=llama_cpp,
                          threads=threads, progress=None if as_json else _progress)
    summary = result.summary()
    if as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
        sys.stdout.flush()
    else:
        _print(summary)
    if summary["failed"]:
        err.print("gates failed: " + "; ".join(summary["failed"]), markup=False)
        raise typer.Exit(1)


def _progress(model: str, done: int) -> None:
    err.print(f"{model}: {done} more answered", markup=False)


def _print(summary: dict[str, Any]) -> None:
    table = Table(title=f"sftdata eval: {summary['samples']} records ({summary['rejected']} rejected)",
                  title_justify="left")
    table.add_column("figure")
    table.add_column("tuned", justify="right")
    base = summary.get("base") or {}
    if base:
        table.add_column("base", justify="right")
    for key, label in _ROWS:
        if key in summary["tuned"] or key in base:
            table.add_row(label, str(summary["tuned"].get(key, "—")), *([str(base.get(key, "—"))] if base else []))
    Console(highlight=False).print(table)  # the figures are the command's output: stdout
    if summary.get("judge"):
        j = summary["judge"]
        err.print(f"judge: win {j['win_rate']:.1%} [{j['win_ci95'][0]:.1%}, {j['win_ci95'][1]:.1%}], tie "
                  f"{j['tie_rate']:.1%}, loss {j['loss_rate']:.1%} over {j['judged']} pairs (both orders; "
                  f"{j['requests']} requests sent, {j['cached']} replayed from the cache)", markup=False)
    err.print(f"answers: {summary['output']}" + (f"; report: {summary['report']}" if summary.get("report") else ""),
              markup=False)
