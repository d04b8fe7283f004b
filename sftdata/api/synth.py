"""`sftdata synth`: expand seed records with an LLM (OpenAI-compatible server or local model); the library is
sftdata.synthesis."""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from .options import PathLike
from .registry import Arg, Opt, command

if TYPE_CHECKING:
    from ..synthesis import SynthResult


@command(group="synth")
def synth(
    seeds: Annotated[PathLike, Arg("Seed records JSONL (as convert writes it; outputs may be missing).")],
    output: Annotated[PathLike, Opt("--output", "-o", help="Output records JSONL (appended; re-run to resume).")],
    *,
    count: Annotated[int, Opt("--count", "-n", help="Records the output holds when done (earlier runs count).")],
    mode: Annotated[Literal["self-instruct", "answer", "evolve"], Opt(
        help="self-instruct, answer or evolve.")] = "self-instruct",
    model: Annotated[str | None, Opt(help="Model name on the server (default: its first), or a local model directory "
                                          "/ .gguf file.")] = None,
    base_url: Annotated[str | None, Opt(help="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 (without it: "
                                             "local model).")] = None,
    api_key_env: Annotated[str, Opt(help="Environment variable holding the API key.")] = "OPENAI_API_KEY",
    concurrency: Annotated[int, Opt("--concurrency", "-c", help="Requests in flight (local backend: batch size).")] = 4,
    rpm: Annotated[float | None, Opt(help="Requests per minute limit.")] = None,
    tpm: Annotated[float | None, Opt(help="Tokens per minute limit.")] = None,
    template: Annotated[str | None, Opt("--template", "-t", help="A synth template name or .jinja file (default: "
                                        "synth_MODE_LANG).")] = None,
    lang: Annotated[Literal["ko", "en"] | None, Opt(
        help="Language of the prompts (default en); given, records not written in it are rejected (see "
             "--check-lang).")] = None,
    seed: Annotated[int, Opt(help="Seed of the plan (few-shot sampling, sampling seeds).")] = 0,
    max_requests: Annotated[int | None, Opt(help="Stop (exit 1) after this many requests; default 10 x COUNT.")] = None,
    response_format: Annotated[Literal["auto", "json_schema", "json_object", "none"], Opt(
        help="auto tries json_schema, json_object, none.")] = "auto",
    max_tokens: Annotated[int, Opt(help="Reply length limit per request.")] = 1024,
    temperature: float = 0.7,
    top_p: float = 1.0,
    few_shot: Annotated[int, Opt(help="Seed examples shown per request.")] = 3,
    per_request: Annotated[int, Opt(help="New tasks asked for per self-instruct request.")] = 3,
    timeout: Annotated[float, Opt(help="Seconds to wait for one reply.")] = 120.0,
    retries: Annotated[int, Opt(help="Retries of a request on 429/5xx/timeouts/connection errors.")] = 6,
    backoff: Annotated[float, Opt(help="First retry delay in seconds (doubles each time).")] = 1.0,
    novelty: Annotated[float, Opt(help="Reject instructions at least this similar (character n-grams) to a seed or "
                                       "an accepted one.")] = 0.5,
    check_lang: Annotated[bool | None, Opt(negatable=True, help="Reject records not written in --lang (default: on "
                                                                "when --lang is given).")] = None,
    min_output_chars: Annotated[int, Opt(help="Reject outputs shorter than this (after trimming).")] = 2,
    deny_list: Annotated[PathLike | None, Opt(help="File of denied phrases, one per line (replaces the default "
                                                   "list).")] = None,
    price_in: Annotated[float | None, Opt(help="Price per 1M prompt tokens, for the cost line.")] = None,
    price_out: Annotated[float | None, Opt(help="Price per 1M completion tokens.")] = None,
    progress: Any = None,
) -> SynthResult:
    """Generate records from seeds with an LLM: self-instruct, answer or evolve.

    Example: `sftdata synth seeds.jsonl -o synth.jsonl --mode self-instruct -n 1000 --base-url http://127.0.0.1:8080/v1 --rpm 60 --lang ko`
    """
    from ..synthesis import SynthOptions
    from ..synthesis import synth as run

    options = SynthOptions(
        mode=mode, count=count, model=model, base_url=base_url, api_key_env=api_key_env, concurrency=concurrency,
        rpm=rpm, tpm=tpm, template=template, lang=lang, seed=seed, max_requests=max_requests,
        response_format=response_format, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
        few_shot=few_shot, per_request=per_request, timeout=timeout, retries=retries, backoff=backoff,
        novelty=novelty, check_lang=check_lang, min_output_chars=min_output_chars,
        deny_list=str(deny_list) if deny_list else None,
        price_in=price_in, price_out=price_out)
    return run(seeds, output, options, progress=progress)
